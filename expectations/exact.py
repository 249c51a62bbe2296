"""The exact sum of float values, as a state that merges: the same answer for any split.

Every finite double is a whole multiple of 2**-1126 (with room for the 53-bit mantissa of the
smallest subnormal), so a sum of doubles is a Python integer at that scale, whatever the order
or the batches it was added in. The sum and the mean are then rounded once, correctly, to the
nearest double: they depend on the values alone, not on how a column was chunked or split.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

SCALE_BITS = 1126
_HALF = 26


_CHUNK = 1 << 24
_SHIFTS = 1024 + 1074 + 1


def _scaled_sum(values: np.ndarray[Any, np.dtype[np.float64]]) -> int:
    """The sum of at most :data:`_CHUNK` finite doubles times 2**1126, exactly. Each value is
    its 53-bit whole mantissa at a power of two (its ``shift``), split into a high part (under
    2**27 in size) and a low one (under 2**26): per shift, :func:`numpy.bincount` sums each
    part in doubles, exactly, since no sum of 2**24 of them passes 2**53."""
    if not values.size:
        return 0
    mantissa, exponent = np.frexp(values)
    whole = (mantissa * 2.0**53).astype(np.int64)
    shift = exponent.astype(np.int64) - 53 + SCALE_BITS
    hi = np.bincount(shift, weights=(whole >> _HALF).astype(np.float64), minlength=_SHIFTS)
    lo = np.bincount(
        shift, weights=(whole & ((1 << _HALF) - 1)).astype(np.float64), minlength=_SHIFTS
    )
    used = np.flatnonzero((hi != 0.0) | (lo != 0.0))
    return sum(((int(hi[k]) << _HALF) + int(lo[k])) << int(k) for k in used)


@dataclass(frozen=True)
class ExactSum:
    """The exact sum of some values (``scaled`` is the sum times 2**1126), how many there were,
    and whether +inf, -inf or NaN was among them."""

    scaled: int = 0
    count: int = 0
    pos_inf: bool = False
    neg_inf: bool = False
    nan: bool = False

    @classmethod
    def of(cls, values: Any) -> ExactSum:
        """The state of an array of floats (nulls already dropped)."""
        arr = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(arr)
        special = arr[~finite]
        kept = arr[finite] if special.size else arr
        scaled = 0
        for start in range(0, kept.size, _CHUNK):
            scaled += _scaled_sum(kept[start : start + _CHUNK])
        return cls(
            scaled=scaled,
            count=int(arr.size),
            pos_inf=bool((special == np.inf).any()),
            neg_inf=bool((special == -np.inf).any()),
            nan=bool(np.isnan(special).any()),
        )

    def merge(self, other: ExactSum) -> ExactSum:
        """The state of both parts' values together (associative, commutative)."""
        return ExactSum(
            self.scaled + other.scaled,
            self.count + other.count,
            self.pos_inf or other.pos_inf,
            self.neg_inf or other.neg_inf,
            self.nan or other.nan,
        )

    def _special(self) -> float | None:
        if self.nan or (self.pos_inf and self.neg_inf):
            return float("nan")
        if self.pos_inf:
            return float("inf")
        if self.neg_inf:
            return float("-inf")
        return None

    def _rounded(self, value: Fraction) -> float:
        try:
            return float(value)
        except OverflowError:
            return float("inf") if value > 0 else float("-inf")

    def sum(self) -> float:
        """The sum, correctly rounded (0.0 for no values; ±inf past the largest double)."""
        special = self._special()
        if special is not None:
            return special
        return self._rounded(Fraction(self.scaled, 1 << SCALE_BITS))

    def mean(self) -> float | None:
        """The mean, correctly rounded; None for no values."""
        if not self.count:
            return None
        special = self._special()
        if special is not None:
            return special
        return self._rounded(Fraction(self.scaled, self.count << SCALE_BITS))


__all__ = ["ExactSum"]
