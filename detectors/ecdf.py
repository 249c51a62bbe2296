"""ECOD and COPOD with fast inductive scoring against the fitted reference.

PyOD scores new rows by sorting them together with every training row. Here ``fit`` keeps, per
feature, the sorted distinct values of the fit sample and one table of the per-feature outlier score
of a value equal to each of them or falling between two of them, plus a bucket index over the
values; scoring is a look-up per value: a bucket, a few halving steps, one table read. The
bucket index is derived from the values: it is not pickled, and is built (by numpy) when a batch
of ``COMPILED_MIN_ROWS`` rows or more is first scored. Three paths give the same answers:

- a batch of fewer than ``COMPILED_MIN_ROWS`` rows: numpy's binary search over the values;
- larger batches, until the process has scored ``COMPILED_MIN_CELLS`` values (rows x features):
  the bucket look-up written in numpy (:func:`bucket_lookup`), about 35 ns a value, features in
  parallel threads (numpy releases the GIL for most of it);
- past that, or once numba is loaded anyway: the compiled look-up (``detectors/_ecdf_kernel.py``),
  about 15 ns a value with features in parallel threads without the GIL, but numba's import and
  first load cost a process about 0.6 CPU s, more than a 1M-row partition's whole scoring.

A new row's tail probabilities are those PyOD gives when that row alone is appended to the fit
sample: ``(count + 1) / (n + 1)``. The scores of the fit rows themselves (``fit_scores_``) are
PyOD's ``decision_scores_``: ``count / n``. The skewness sign per feature is the fit sample's.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from detectors.base import Detector, FloatArray
from detectors.threshold import DEFAULT_FALSE_FLAG_RATE
from sluice.core.errors import ConfigError

BUCKETS_PER_VALUE = 1
MAX_BUCKETS = 1 << 21
MIN_PARALLEL_ROWS = 2048
LOG_LIKE_MIN_SAVING = 1  # halving steps the log-like map must save over the linear one
COMPILED_MIN_ROWS = 65_536
COMPILED_MIN_CELLS = 32_000_000
"""Values a process scores by numpy's bucket look-up before it loads the compiled kernel: about
where the kernel's 20 ns a value saved pay for numba's 0.6 CPU s (bench/README.md)."""
LINEAR = 0
LOG_LIKE = 1
_SIGN = np.int64(0x7FFFFFFFFFFFFFFF)
_scored_cells = 0  # values this process has scored by bucket look-ups (either path)


def skewness(X: FloatArray) -> FloatArray:
    """The sample skewness of each column (Fisher-Pearson, biased): :func:`scipy.stats.skew` with
    ``axis=0``, computed the same way (so the same floats), NaN for a column whose variance is
    lost to rounding. Here because scipy.stats costs about half a second to import, every run."""
    with np.errstate(all="ignore"):  # huge values overflow to inf, as in scipy
        mean = np.mean(X, axis=0, keepdims=True)
        d = X - mean
        m2 = np.mean(d**2, axis=0)
        m3 = np.mean(d**2 * d, axis=0)
        zero = m2 <= (np.finfo(m2.dtype).eps * mean[0]) ** 2
        out: FloatArray = np.where(zero, np.nan, m3 / m2**1.5)
    return out


class _ECDFDetector(Detector):
    default_max_fit_rows = 100_000
    extra_params: ClassVar[dict[str, str]] = {
        "n_jobs": "threads used to score features in parallel; null for one per core",
    }
    _INDEX = ("buckets_", "bucket_offsets_", "steps_", "maps_", "map_params_")
    compiled_min_rows = COMPILED_MIN_ROWS
    """Batches of fewer rows are scored by numpy's binary search (the same answers), without
    the bucket index."""
    use_kernel: Literal["auto", "always", "never"] = "auto"
    """Whether bucket look-ups run compiled: ``auto`` once numba is loaded in this process or
    past ``COMPILED_MIN_CELLS`` values scored; the others for tests."""

    def __init__(
        self,
        *,
        false_flag_rate: float = DEFAULT_FALSE_FLAG_RATE,
        max_fit_rows: int | Literal["auto"] | None = "auto",
        random_state: int = 0,
        chunk_rows: int = 262_144,
        n_jobs: int | None = None,
    ) -> None:
        super().__init__(
            false_flag_rate=false_flag_rate,
            max_fit_rows=max_fit_rows,
            random_state=random_state,
            chunk_rows=chunk_rows,
        )
        self.n_jobs = n_jobs

    @classmethod
    def check_params(cls, params: Any, *, detector: str) -> None:
        """Common checks plus ``n_jobs`` must be a positive integer or null."""
        super().check_params(params, detector=detector)
        j = params.get("n_jobs")
        if j is not None and (isinstance(j, bool) or not isinstance(j, int) or j < 1):
            raise ConfigError(
                f"bad n_jobs for detector {detector!r}",
                key="params.n_jobs",
                found=j,
                allowed="a positive integer or null",
            )

    def _combine(self, u_l: FloatArray, u_r: FloatArray, sign: float) -> FloatArray:
        raise NotImplementedError

    def _fit(self, X: FloatArray) -> FloatArray:
        for stale in self._INDEX:
            self.__dict__.pop(stale, None)
        n, d = X.shape
        signs = np.sign(np.nan_to_num(skewness(X)))
        self.skew_sign_ = signs.astype(np.float64)
        values: list[FloatArray] = []
        tables: list[FloatArray] = []
        fit_parts = np.empty((n, d), dtype=np.float64)
        for j in range(d):
            col = X[:, j]
            u, counts = np.unique(col, return_counts=True)
            le = np.cumsum(counts).astype(np.float64)
            lt = le - counts
            s = float(signs[j])
            le0 = np.concatenate(([0.0], le))
            btw = self._combine(
                -np.log((le0 + 1.0) / (n + 1.0)), -np.log((n - le0 + 1.0) / (n + 1.0)), s
            )
            eq = self._combine(
                -np.log((le + 1.0) / (n + 1.0)), -np.log((n - lt + 1.0) / (n + 1.0)), s
            )
            in_sample = self._combine(-np.log(le / n), -np.log((n - lt) / n), s)
            k = np.searchsorted(u, col, side="right")
            fit_parts[:, j] = in_sample[k - 1]
            table = np.empty(2 * len(btw), dtype=np.float64)
            table[0::2] = btw
            table[1::2] = np.concatenate((btw[:1], eq))
            values.append(u)
            tables.append(table)
        self.value_offsets_ = np.concatenate(([0], np.cumsum([len(u) for u in values]))).astype(
            np.int64
        )
        self.values_ = np.concatenate(values)
        self.tables_ = np.concatenate(tables)
        total: FloatArray = fit_parts.sum(axis=1)
        return total

    def _index(self) -> None:
        """Build the bucket index unless built (it is derived: built when first needed)."""
        if not hasattr(self, "buckets_"):
            self._build_index()

    def _build_index(self) -> None:
        """Bucket index per feature: a linear or log-like map, whichever leaves shorter runs."""
        d = len(self.value_offsets_) - 1
        buckets: list[npt.NDArray[np.int32]] = []
        steps = np.empty(d, dtype=np.int64)
        maps = np.empty(d, dtype=np.int64)
        params = np.empty((d, 3), dtype=np.float64)
        for j in range(d):
            u = self.values_[self.value_offsets_[j] : self.value_offsets_[j + 1]]
            k = int(min(max(BUCKETS_PER_VALUE * len(u), 1), MAX_BUCKETS))
            best: tuple[int, int, npt.NDArray[np.int32], list[float]] | None = None
            for kind, center in _candidate_maps(u):
                with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                    if kind == LINEAR:
                        lo, hi = float(u[0]), float(u[-1])
                    else:  # through the look-ups' own map, so the ends are what they compute
                        ends = ordered_bits(u[[0, -1]] - center)
                        lo, hi = float(ends[0]), float(ends[1])
                    w = k / (hi - lo) if hi > lo else 0.0
                if not np.isfinite(w):
                    w = 0.0
                s = fill_buckets(u, kind, center, lo, w, k)
                n_steps = int(np.diff(s).max(initial=0)).bit_length()
                if best is None or n_steps + LOG_LIKE_MIN_SAVING <= best[0]:
                    best = (n_steps, kind, s, [center, lo, w])
            assert best is not None
            steps[j], maps[j], s_best, params[j] = best[0], best[1], best[2], best[3]
            buckets.append(s_best)
        self.bucket_offsets_ = np.concatenate(([0], np.cumsum([len(s) for s in buckets]))).astype(
            np.int64
        )
        self.buckets_ = np.concatenate(buckets)
        self.steps_ = steps
        self.maps_ = maps
        self.map_params_ = params

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the bucket index (derived; rebuilt on load)."""
        return {k: v for k, v in self.__dict__.items() if k not in self._INDEX}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _threads(self) -> int:
        n = self.n_jobs if self.n_jobs is not None else (os.cpu_count() or 1)
        return max(1, min(int(n), self.n_features_in_))

    def _feature(self, j: int, col: FloatArray, out: FloatArray) -> None:
        from detectors import _ecdf_kernel as kernel

        kernel.lookup(*self._lookup_args(j, col), out)

    def _feature_by_numpy(self, j: int, col: FloatArray, out: FloatArray) -> None:
        out[...] = bucket_lookup(*self._lookup_args(j, col))

    def _lookup_args(self, j: int, col: FloatArray) -> tuple[Any, ...]:
        """Feature ``j``'s look-up of ``col``: (col, values, buckets, table, map, center, lo, w,
        halving steps)."""
        u0, u1 = self.value_offsets_[j], self.value_offsets_[j + 1]
        s0, s1 = self.bucket_offsets_[j], self.bucket_offsets_[j + 1]
        t0 = 2 * (u0 + j)
        center, lo, w = self.map_params_[j]
        return (
            col,
            self.values_[u0:u1],
            self.buckets_[s0:s1],
            self.tables_[t0 : t0 + 2 * (u1 - u0) + 2],
            int(self.maps_[j]),
            center,
            lo,
            w,
            int(self.steps_[j]),
        )

    def _compiled(self, cells: int) -> bool:
        """Whether ``cells`` more values are looked up by the compiled kernel (module docstring);
        counts them either way."""
        global _scored_cells
        before, _scored_cells = _scored_cells, _scored_cells + cells
        if self.use_kernel != "auto":
            return self.use_kernel == "always"
        return "numba" in sys.modules or before + cells >= COMPILED_MIN_CELLS

    def _parts(self, arr: FloatArray) -> Iterator[tuple[int, FloatArray]]:
        """``(start, parts)`` per chunk of rows of a checked ``arr``: ``parts`` is features x
        rows. Features are looked up in parallel threads (numpy's look-ups release the GIL for
        most of their work, the kernel for all of it)."""
        if len(arr) < self.compiled_min_rows:
            yield 0, self._searched(arr)
            return
        self._index()
        d = arr.shape[1]
        compiled = self._compiled(arr.shape[0] * d)
        if compiled:
            from detectors import _ecdf_kernel as kernel
        step = max(1, int(self.chunk_rows))
        workers = self._threads()
        parallel = workers > 1 and len(arr) >= MIN_PARALLEL_ROWS
        pool = ThreadPoolExecutor(workers) if parallel else None
        try:
            width = min(step, len(arr))
            # reused across chunks: every fresh page costs a fault
            col_buf = np.empty((d, width), dtype=np.float64)
            part_buf = np.empty((d, width), dtype=np.float64)
            look = self._feature if compiled else self._feature_by_numpy
            for start in range(0, len(arr), step):
                stop = min(len(arr), start + step)
                cols, parts = col_buf[:, : stop - start], part_buf[:, : stop - start]
                if compiled:
                    kernel.columns(arr, start, stop, cols)
                else:
                    cols[...] = arr[start:stop].T
                if pool is None:
                    for j in range(d):
                        look(j, cols[j], parts[j])
                else:
                    list(pool.map(look, range(d), cols, parts))
                yield start, parts
        finally:
            if pool is not None:
                pool.shutdown()

    def _searched(self, arr: FloatArray) -> FloatArray:
        """Features x rows parts by numpy's binary search: ``k`` values ``<= x``, as the kernel."""
        parts = np.empty((arr.shape[1], len(arr)), dtype=np.float64)
        for j in range(arr.shape[1]):
            u0, u1 = self.value_offsets_[j], self.value_offsets_[j + 1]
            u, x = self.values_[u0:u1], arr[:, j]
            t0 = 2 * (u0 + j)
            k = np.searchsorted(u, x, side="right")
            eq = (k > 0) & (u[np.maximum(k - 1, 0)] == x)
            parts[j] = self.tables_[t0 : t0 + 2 * (u1 - u0) + 2][2 * k + eq]
        return parts

    def feature_scores(self, X: FloatArray) -> FloatArray:
        """Per-feature outlyingness of new rows (``-log`` tail probabilities); sums to ``score``."""
        arr = self._check_input(X)
        out = np.empty(arr.shape, dtype=np.float64)
        for start, parts in self._parts(arr):
            out[start : start + parts.shape[1]] = parts.T
        return out

    def score(self, X: Any) -> FloatArray:
        """Scores of new rows, in chunks, features in parallel threads (features summed in
        order, so the result does not depend on the number of threads)."""
        arr = self._check_input(X)
        out = np.empty(len(arr), dtype=np.float64)
        for start, parts in self._parts(arr):
            acc = parts[0].copy()
            for p in parts[1:]:
                acc += p
            out[start : start + len(acc)] = acc
        return out

    def _score(self, X: FloatArray) -> FloatArray:
        return self.score(X)


def _candidate_maps(u: FloatArray) -> list[tuple[int, float]]:
    """Linear, then log-like maps anchored below the smallest (a long right tail) or above the
    largest value (a long left tail), at a few distances so the dense part is not squeezed."""
    out: list[tuple[int, float]] = [(LINEAR, 0.0)]
    lo, hi = u[0], u[-1]
    with np.errstate(over="ignore", invalid="ignore"):
        for q in (0.5, 0.1, 0.01):
            v = u[int(q * (len(u) - 1))]
            w = u[int((1 - q) * (len(u) - 1))]
            for center in (lo - (v - lo), hi + (hi - w)):
                if np.isfinite(center) and (center < lo or center > hi):
                    out.append((LOG_LIKE, float(center)))
    return out


def ordered_bits(x: FloatArray) -> FloatArray:
    """Each float64's bits as an integer that orders like the float (a piecewise-linear log2),
    as a float64: the compiled kernel's ``ordered_bits``, vectorised."""
    i = np.ascontiguousarray(x, dtype=np.float64).view(np.int64)
    out: FloatArray = np.where(i < 0, i ^ _SIGN, i).astype(np.float64)
    return out


def bucket_numbers(  # noqa: PLR0917 (the kernel's argument order)
    x: FloatArray, kind: int, center: float, lo: float, w: float, k: int
) -> npt.NDArray[np.int64]:
    """The bucket in ``[0, k)`` of each value (the kernel's ``_bucket``): the map's position
    times ``w``, truncated; 0 below the first bucket or when that is not a number, ``k - 1``
    at or past the last."""
    with np.errstate(over="ignore", invalid="ignore"):
        g = x if kind == LINEAR else ordered_bits(x - center)
        f = (g - lo) * w
        return np.where(f > 0.0, np.minimum(f, k - 1), 0.0).astype(np.int64)


def fill_buckets(  # noqa: PLR0917 (the kernel's argument order)
    u: FloatArray, kind: int, center: float, lo: float, w: float, k: int
) -> npt.NDArray[np.int32]:
    """Bucket starts (``k + 1`` of them) over the sorted distinct values ``u``: bucket ``b``
    holds ``u[s[b]:s[b + 1]]``, the values whose bucket, or an earlier value's, first reaches
    ``b`` (so the runs cover ``u`` in order even where the map is not strictly monotone)."""
    reached = np.maximum.accumulate(bucket_numbers(u, kind, center, lo, w, k))
    return np.searchsorted(reached, np.arange(k + 1), side="left").astype(np.int32)


def bucket_lookup(  # noqa: PLR0917 (the kernel's argument order)
    col: FloatArray,
    u: FloatArray,
    s: npt.NDArray[np.int32],
    t: FloatArray,
    kind: int,
    center: float,
    lo: float,
    w: float,
    n_steps: int,
) -> FloatArray:
    """The compiled ``lookup`` in numpy: each value's bucket, ``n_steps`` halving steps within
    its run, then ``k`` checked (the number of values ``<= x``) and searched again where the
    map misled the steps; the table read at ``2k`` or ``2k + 1`` (equal to ``u[k - 1]``)."""
    m = len(u)
    b = bucket_numbers(col, kind, center, lo, w, len(s) - 1)
    k = s[b].astype(np.int64)
    end = s[b + 1]
    step = (1 << n_steps) >> 1
    while step > 0:
        probe = np.minimum(k + step, end)
        k = np.where(u[np.maximum(probe - 1, 0)] <= col, probe, k)
        step >>= 1
    below = u[np.maximum(k - 1, 0)]
    wrong = ((k > 0) & (below > col)) | ((k < m) & (u[np.minimum(k, m - 1)] <= col))
    if wrong.any():
        k[wrong] = np.searchsorted(u, col[wrong], side="right")
        below = u[np.maximum(k - 1, 0)]
    out: FloatArray = t[2 * k + ((k > 0) & (below == col))]
    return out


def _skewed(u_l: FloatArray, u_r: FloatArray, sign: float) -> FloatArray:
    out: FloatArray = u_l * -np.sign(sign - 1.0) + u_r * np.sign(sign + 1.0)
    return out


class ECOD(_ECDFDetector):
    """Empirical-CDF outlier detection (the ECOD score), scored against the fit sample."""

    def _combine(self, u_l: FloatArray, u_r: FloatArray, sign: float) -> FloatArray:
        return np.maximum(np.maximum(u_l, u_r), _skewed(u_l, u_r, sign))


class COPOD(_ECDFDetector):
    """Copula-based outlier detection (the COPOD score), scored against the fit sample."""

    def _combine(self, u_l: FloatArray, u_r: FloatArray, sign: float) -> FloatArray:
        return np.maximum(_skewed(u_l, u_r, sign), (u_l + u_r) / 2.0)
