"""Exact statistics of a column read in batches: order statistics, quantiles, distinct counts.

A column is a :data:`Batches`: a function that starts a fresh pass over it and yields its
values batch by batch (a clean Parquet column read with ``iter_batches``, or one in-memory
series as a single batch). Every number here is the same for any split into batches.

- :func:`order_statistics`: the values at given ranks of the sorted column, by a radix
  selection over an order-preserving 64-bit key of each float. A first pass counts the keys'
  top 16 bits (65,536 buckets); each rank's bucket is then either collected and sorted, when
  it holds at most :data:`COLLECT` values, or counted again by its next 16 bits. At most five
  passes; memory: the bucket counts (0.5 MB a rank) and at most :data:`COLLECT` values a rank.
- :func:`exact_quantiles`: :func:`numpy.quantile` (``linear``) from those order statistics,
  computed as numpy computes it (the same interpolation, NaN when any value is NaN).
- :class:`DistinctCount`: the distinct values merged batch by batch while there are at most
  ``limit`` of them; past that, every batch's distinct values go to hash buckets on disk
  (each value lands in one bucket) and the count is the sum of the buckets' counts, so the
  answer is exact with one bucket in memory at a time. Values count as polars' ``n_unique``
  counts them (``-0.0`` is ``0.0``, every NaN one value).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl

from expectations.exact import SCALE_BITS, ExactSum
from sluice.core.spill import PartSpill, writing

FloatArray = npt.NDArray[np.float64]
KeyArray = npt.NDArray[np.uint64]
Batches = Callable[[], Iterator[pl.Series]]
FloatBatches = Callable[[], Iterator[FloatArray]]

COLLECT = 1 << 16
RADIX = 16
_SIGN = np.uint64(1 << 63)
_ALL = np.uint64((1 << 64) - 1)
DISTINCT_LIMIT = 1 << 18
TABLE_LIMIT = 1 << 16
HASH_SEED = 11


def float_keys(values: FloatArray) -> KeyArray:
    """Unsigned keys in the order of the floats (``-0.0`` as ``0.0``; no NaN): a negative
    float's bits all flipped, a positive one's sign bit set. Two arrays are made, the rest is
    done in place (each new array of a large column is fresh memory the kernel must clear)."""
    keys: KeyArray = np.add(values, 0.0, dtype=np.float64).view(np.uint64)
    flip = keys >> np.uint64(63)  # 1 for a negative float
    np.negative(flip, out=flip)  # all bits set for a negative float, else none
    np.bitwise_or(flip, _SIGN, out=flip)
    np.bitwise_xor(keys, flip, out=keys)
    return keys


def key_value(key: int) -> float:
    """The float of a key from :func:`float_keys`."""
    k = np.uint64(key)
    bits = k ^ (_SIGN if k >> np.uint64(63) == 1 else _ALL)
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


def _locate(counts: npt.NDArray[np.int64], local: int) -> tuple[int, int]:
    """The bucket holding the ``local``-th value (0-based) and its rank within the bucket."""
    cum = np.cumsum(counts)
    bucket = int(np.searchsorted(cum, local, side="right"))
    before = int(cum[bucket - 1]) if bucket else 0
    return bucket, local - before


def weighted_sum(values: FloatArray, weights: npt.NDArray[np.int64]) -> ExactSum:
    """The exact sum of ``values[i]`` taken ``weights[i]`` times (:class:`ExactSum` of the
    repeated values, without repeating them)."""
    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.int64)
    finite = np.isfinite(v)
    mantissa, exponent = np.frexp(v[finite])
    whole = (mantissa * 2.0**53).astype(np.int64)
    shift = exponent.astype(np.int64) - 53 + SCALE_BITS
    scaled = sum(
        (int(a) * int(c)) << int(k) for a, c, k in zip(whole, w[finite], shift, strict=True)
    )
    special, present = v[~finite], w[~finite] > 0
    return ExactSum(
        scaled=scaled,
        count=int(w.sum()),
        pos_inf=bool((special[present] == np.inf).any()),
        neg_inf=bool((special[present] == -np.inf).any()),
        nan=bool(np.isnan(special[present]).any()),
    )


class ValueTable:
    """Exact counts of a float column's distinct values (NaN left out), merged batch by batch
    while there are at most ``limit`` of them; ``None`` past that."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = TABLE_LIMIT if limit is None else limit
        self.table: pl.DataFrame | None = pl.DataFrame(schema={"v": pl.Float64(), "n": pl.Int64()})

    def add(self, values: FloatArray, *, distinct: int | None = None) -> None:
        """Count one batch's NaN-free values; ``distinct``: how many distinct values the batch
        holds, when known (past ``limit`` the table is dropped without counting them)."""
        if self.table is None or not values.size:
            return
        if distinct is not None and distinct > self.limit:
            self.table = None
            return
        self._merge(pl.Series("v", values).value_counts(name="n").cast({"n": pl.Int64}))

    def add_counts(self, values: pl.Series, counts: pl.Series, *, distinct: int) -> None:
        """:meth:`add` of a batch already counted: its distinct values as floats (NaN among
        them left out here) and how often each occurs; ``distinct`` as for :meth:`add`."""
        if self.table is None:
            return
        if distinct > self.limit:
            self.table = None
            return
        got = (
            pl.DataFrame({"v": values.cast(pl.Float64), "n": counts.cast(pl.Int64)})
            .filter(~pl.col("v").is_nan())
            .group_by("v")
            .agg(pl.col("n").sum())
        )
        if not got.is_empty():
            self._merge(got)

    def _merge(self, counts: pl.DataFrame) -> None:
        assert self.table is not None
        merged = (
            counts
            if self.table.is_empty()
            else pl.concat([self.table, counts]).group_by("v").agg(pl.col("n").sum())
        )
        self.table = merged if merged.height <= self.limit else None

    def arrays(self) -> tuple[FloatArray, npt.NDArray[np.int64]] | None:
        """The distinct values and their counts, or ``None`` when there were too many."""
        if self.table is None:
            return None
        values = np.asarray(self.table.get_column("v").to_numpy(), dtype=np.float64)
        return values, np.asarray(self.table.get_column("n").to_numpy(), dtype=np.int64)


class TopCounts:
    """The first pass of :func:`order_statistics`, fed batch by batch (so it can share a pass
    with other statistics)."""

    def __init__(self) -> None:
        self.counts = np.zeros(1 << RADIX, dtype=np.int64)
        self.batches = 0
        # the keys of the only batch counted so far: a column read as one batch keeps them for
        # the passes after this one, instead of making them again in each
        self.keys: KeyArray | None = None

    def add(self, values: FloatArray) -> None:
        """Count the keys' top bits of NaN-free values."""
        if values.size:
            keys = float_keys(values)
            top = (keys >> np.uint64(64 - RADIX)).view(np.int64)  # below 2**16: no cast
            self.counts += np.bincount(top, minlength=1 << RADIX)
            self.batches += 1
            self.keys = keys if self.batches == 1 else None


def order_statistics(
    batches: FloatBatches, ranks: Sequence[int], first: TopCounts | None = None
) -> dict[int, float]:
    """The ``r``-th smallest value (0-based) for each rank ``r`` of a NaN-free column;
    ``first``: its first pass, already made."""
    wanted = sorted(set(ranks))
    if not wanted:
        return {}
    if first is None:
        first = TopCounts()
        for values in batches():
            first.add(values)
    only = first.keys  # a column read as one batch: its keys, made once

    def key_batches() -> Iterator[KeyArray]:
        if only is not None:
            yield only
            return
        for values in batches():
            if values.size:
                yield float_keys(values)

    top = first.counts
    # a rank's state: (prefix, prefix bits, rank within the prefix, values under the prefix)
    state: dict[int, tuple[int, int, int, int]] = {}
    for r in wanted:
        bucket, local = _locate(top, r)
        state[r] = (bucket, RADIX, local, int(top[bucket]))
    out: dict[int, float] = {}
    while len(out) < len(wanted):
        groups: dict[tuple[int, int], int] = {}
        for r, (prefix, bits, _, size) in state.items():
            if r in out:
                continue
            if bits == 64:
                out[r] = key_value(prefix)
                continue
            groups[(prefix, bits)] = size
        if not groups:
            break
        collect = {g for g, size in groups.items() if size <= COLLECT}
        gathered: dict[tuple[int, int], list[KeyArray]] = {g: [] for g in collect}
        counts = {g: np.zeros(1 << RADIX, dtype=np.int64) for g in groups if g not in collect}
        for keys in key_batches():
            for prefix, bits in groups:
                inside = keys[keys >> np.uint64(64 - bits) == np.uint64(prefix)]
                if (prefix, bits) in collect:
                    gathered[(prefix, bits)].append(inside)
                elif inside.size:
                    digit = (inside >> np.uint64(64 - bits - RADIX)) & np.uint64((1 << RADIX) - 1)
                    counts[(prefix, bits)] += np.bincount(digit, minlength=1 << RADIX)
        for r, (prefix, bits, local, _) in list(state.items()):
            if r in out:
                continue
            if (prefix, bits) in collect:
                held = np.sort(np.concatenate(gathered[(prefix, bits)]))
                out[r] = key_value(int(held[local]))
            else:
                sub = counts[(prefix, bits)]
                digit, within = _locate(sub, local)
                state[r] = ((prefix << RADIX) | digit, bits + RADIX, within, int(sub[digit]))
    return out


def quantile_ranks(n: int, quantiles: Sequence[float]) -> list[int]:
    """The ranks whose values :func:`numpy_quantiles` reads for a column of ``n`` values."""
    previous, following, _ = _neighbours(n, quantiles)
    return sorted({*previous.tolist(), *following.tolist()})


def _neighbours(
    n: int, quantiles: Sequence[float]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], FloatArray]:
    q = np.asarray(quantiles, dtype=np.float64)
    virtual = (n - 1) * q
    previous = np.floor(virtual)
    following = previous + 1
    above = virtual >= n - 1
    previous[above] = n - 1
    following[above] = n - 1
    # numpy takes both neighbours at index -1 there, and its gamma from that -1
    gamma: FloatArray = virtual - np.where(above, -1.0, previous)
    return previous.astype(np.int64), following.astype(np.int64), gamma


def numpy_quantiles(
    n: int, quantiles: Sequence[float], statistic: Mapping[int, float], *, nan: bool = False
) -> list[float]:
    """``numpy.quantile(column, quantiles)`` (method ``linear``, the same interpolation) of a
    column of ``n`` values from its order statistics (``statistic[rank]``, ranks from
    :func:`quantile_ranks`); ``nan``: the column holds a NaN, and numpy then gives NaN."""
    if n < 1:
        raise ValueError("the quantiles of no values")
    if nan:
        return [float("nan")] * len(quantiles)
    previous, following, gamma = _neighbours(n, quantiles)
    a = np.array([statistic[int(i)] for i in previous], dtype=np.float64)
    b = np.array([statistic[int(i)] for i in following], dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = b - a
        result = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    return [float(x) for x in result]


def exact_quantiles(
    batches: FloatBatches, n: int, quantiles: Sequence[float], *, nan: bool = False
) -> list[float]:
    """``numpy.quantile(column, quantiles)`` of a column of ``n`` values read in batches that
    yield its values without its NaNs; ``nan``: the column holds a NaN."""
    if nan or n < 1:
        return numpy_quantiles(n, quantiles, {}, nan=nan)
    return numpy_quantiles(n, quantiles, order_statistics(batches, quantile_ranks(n, quantiles)))


def weighted_statistics(
    values: FloatArray, weights: npt.NDArray[np.int64], ranks: Sequence[int]
) -> dict[int, float]:
    """Order statistics of a column given as distinct ``values`` and how often each occurs."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    at = np.searchsorted(cum, np.asarray(ranks, dtype=np.int64), side="right")
    return {int(r): float(values[order][i]) for r, i in zip(ranks, at, strict=True)}


# text columns from this many values on are first counted by their hashes (count_distinct)
HASH_FIRST = 1 << 16


def count_distinct(values: pl.Series) -> int:
    """``values.n_unique()`` of values without nulls, cheaper for text that is nearly all
    distinct (an id): equal values hash alike, so when the 64-bit hashes are all distinct the
    values are too, and a set of hashes costs a fifth of a set of text (10M ids: 0.3 against
    1.5 CPU s). Otherwise, or when an even sample of 65,536 or more says many values repeat, the
    values are counted."""
    n = values.len()
    if (
        n >= HASH_FIRST
        and values.dtype in (pl.String(), pl.Binary())
        and (sample := values.gather_every(n // HASH_FIRST)).n_unique() >= 0.9 * sample.len()
        and values.hash(seed=HASH_SEED).n_unique() == n
    ):
        return n
    return values.n_unique()


class DistinctCount:
    """The exact number of distinct non-null values of a column fed batch by batch.

    Holds the distinct values while there are at most ``limit``; past that, spills every
    batch's distinct values into ``parts`` hash buckets under ``spill_dir`` (a
    :class:`sluice.core.spill.PartSpill`; module docstring). Without ``spill_dir`` it holds
    them all."""

    def __init__(
        self, dtype: pl.DataType, *, limit: int, spill_dir: Path | None, parts: int = 1
    ) -> None:
        self.dtype = dtype
        self.limit = limit
        self.spill_dir = spill_dir
        self.parts = max(1, parts)
        self._held: pl.Series | None = pl.Series("v", [], dtype=dtype)
        # the first batch as given, and its count: its distinct values are made only when a
        # second batch comes (a column read as one batch is counted without copying them)
        self._first: tuple[pl.Series, int] | None = None
        self._folder: Path | None = None
        self._spill: PartSpill | None = None
        self._count: int | None = None

    def _canonical(self, values: pl.Series) -> pl.Series:
        if values.dtype.is_float():
            return (values + 0.0).fill_nan(float("nan"))
        return values

    def add(self, values: pl.Series) -> int:
        """Count the distinct values of one batch (nulls are left out); returns how many the
        batch holds. The first batch is held whole, whatever its count: its distinct values
        are no more than its rows, already in memory, so a column read as one batch is never
        spilled; a later batch spills them when the merged values pass ``limit``."""
        got = self._canonical(values.drop_nulls().rename("v"))
        if self._held is not None and self._held.is_empty() and self._first is None:
            self._first = (got, count_distinct(got))
            return self._first[1]
        if self._first is not None:
            self._held, self._first = self._first[0].unique(), None
        got = got.unique()
        n = got.len()
        if self._held is not None:
            if self._held.is_empty():
                self._held = got
                return n
            merged = pl.concat([self._held, got]).unique()
            if self.spill_dir is None or merged.len() <= self.limit:
                self._held = merged
                return n
            self._folder = Path(tempfile.mkdtemp(prefix="distinct-", dir=self.spill_dir))
            self._spill = PartSpill(self._folder, "v", self.parts, rows=self.limit)
            self._held = None
            got = merged
        assert self._spill is not None
        with writing(self._folder or Path(".")):
            self._spill.write(got.to_frame(), _bucket_of(got, seed=7, count=self.parts))
        return n

    def count(self) -> int:
        """The distinct values seen (spilled buckets are counted once, then removed)."""
        if self._count is not None:
            return self._count
        if self._first is not None:
            self._count = self._first[1]
            return self._count
        if self._held is not None:
            self._count = self._held.len()
            return self._count
        total = 0
        assert self._spill is not None
        try:
            for _, part in self._spill.read():
                total += part.to_series().n_unique()
        finally:
            self.close()
        self._count = total
        return total

    def close(self) -> None:
        """Remove what was spilled."""
        self._first = None
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def _bucket_of(values: pl.Series, *, seed: int, count: int) -> pl.Series:
    """The hash bucket in ``[0, count)`` of each value."""
    return (values.hash(seed=seed) % count).cast(pl.Int64)


def bucket_numbers(frame: pl.DataFrame, key: str, count: int) -> pl.Series:
    """The :class:`HashBuckets` bucket of each row of ``frame`` by its ``key`` column."""
    return _bucket_of(frame.get_column(key), seed=HASH_SEED, count=max(1, count))


def split_by_bucket(frame: pl.DataFrame, key: str, count: int) -> dict[int, pl.DataFrame]:
    """``frame``'s rows by their :class:`HashBuckets` bucket (only buckets with rows), in the
    frame's order within each bucket."""
    if count <= 1:
        return {0: frame}
    tagged = frame.with_columns(bucket_numbers(frame, key, count).alias("__bucket"))
    return {
        int(b): part
        for (b,), part in tagged.partition_by("__bucket", as_dict=True, include_key=False).items()
    }


class HashBuckets:
    """Frames split into ``count`` buckets by a hash of their ``key`` column, so every row of
    one key lands in one bucket, in the order it was added. One bucket is held in memory; more
    go to a :class:`sluice.core.spill.PartSpill` under ``folder`` (any number of buckets, at
    most 64 files open) and are read back one at a time."""

    def __init__(
        self, schema: pl.Schema, key: str, count: int, folder: Path | None, rows: int = 1 << 16
    ) -> None:
        if count > 1 and folder is None:
            raise ValueError("hash buckets past one need a folder to spill to")
        self.schema = schema
        self.key = key
        self.count = max(1, count)
        self._held: list[pl.DataFrame] = []
        self._folder = (
            Path(tempfile.mkdtemp(prefix="buckets-", dir=folder))
            if self.count > 1 and folder is not None
            else None
        )
        self._spill = (
            PartSpill(self._folder, "b", self.count, rows=max(1, rows))
            if self._folder is not None
            else None
        )

    def add(self, frame: pl.DataFrame) -> None:
        """Append rows (columns as ``schema``)."""
        # column by column: a column called "*" or "^a.*$" is not a pattern
        frame = pl.DataFrame([frame.get_column(c).cast(t) for c, t in self.schema.items()])
        if self._spill is None:
            self._held.append(frame)
        else:
            self._spill.write(frame, bucket_numbers(frame, self.key, self.count))

    def buckets(self) -> Iterator[pl.DataFrame]:
        """Every bucket's rows, one bucket at a time (as often as asked: spilled buckets are
        kept until :meth:`close`)."""
        if self._spill is None:
            yield pl.concat(self._held) if self._held else pl.DataFrame(schema=self.schema)
            return
        empty = pl.DataFrame(schema=self.schema)
        at = 0
        for number, part in self._spill.read(keep=True):
            for _ in range(at, number):
                yield empty
            yield part.cast(self.schema) if part.schema != self.schema else part
            at = number + 1
        for _ in range(at, self.count):
            yield empty

    def close(self) -> None:
        """Remove what was spilled."""
        self._first = None
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        self._held = []
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


__all__ = [
    "COLLECT",
    "DISTINCT_LIMIT",
    "Batches",
    "DistinctCount",
    "FloatBatches",
    "HashBuckets",
    "TopCounts",
    "ValueTable",
    "bucket_numbers",
    "exact_quantiles",
    "float_keys",
    "key_value",
    "numpy_quantiles",
    "order_statistics",
    "quantile_ranks",
    "split_by_bucket",
    "weighted_statistics",
    "weighted_sum",
]
