"""The report's readers in bounded memory: earlier partitions' rows and this run's columns.

Drift references (:func:`sample_rows`). Every earlier partition lends a seeded sample of
``rows_per_partition`` rows. Read whole, an earlier partition costs its size in memory, and a
report's cost grows with its history (issue 17). Here a Parquet file is read one row group at
a time and only the sampled rows are kept:

- ``exact`` (the default): the same rows, in the same order, as ``frame.sample(n, seed=seed)``
  of the whole file (polars draws the row positions from ``(height, n, seed)`` alone, so the
  positions are drawn first and the rows gathered by row group). Memory: the projected columns
  of one row group, the ``n`` sampled rows, and 4 bytes per row of the file for the positions
  while they are drawn. Time: the whole file is still read, row group by row group.
- ``row_groups`` (bounded runs, :func:`sluice.pipeline.budget.use_bounded`): a seeded choice of
  whole row groups holding at least ``n`` rows, then the seeded sample of those rows. Memory and
  time grow with ``n``, not with the earlier partition. The sample is another random sample of
  the same partition than the exact one, so a drift statistic can differ from the exact path's
  by its sampling error; row groups are contiguous runs of rows, so a partition whose rows were
  written sorted by a column gives a sample clustered in it. Partitions of at most ``n`` rows
  are read whole, exactly as in the exact mode.

This partition's clean rows: a bounded report reads them in batches from the clean Parquet file
(:meth:`sluice.report.metrics.RunOutputs.clean_batches`) and keeps merged states
(:mod:`sluice.report.streaming`); its drift reads a seeded sample of them by row group
(:meth:`sluice.report.metrics.RunOutputs.clean_sample`). :func:`column_values` reads one
column whole, for callers that need it.

What a bounded report holds that grows with the partition: nothing but what grows with the
failing rows (the failures and the quarantined rows). Named baselines (``monitor.baselines``)
and Delta outputs still read every clean column.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from sluice.write import OutputError

Mode = Literal["exact", "row_groups"]


def _groups(path: Path) -> list[tuple[int, int]]:
    """``(first row, rows)`` of every row group of a Parquet file."""
    meta = pq.ParquetFile(path).metadata
    out, start = [], 0
    for i in range(meta.num_row_groups):
        n = meta.row_group(i).num_rows
        out.append((start, n))
        start += n
    return out


def _read_rows(path: Path, columns: Sequence[int], start: int, length: int) -> pl.DataFrame:
    """Rows ``start`` to ``start + length`` of the columns at ``columns`` (polars reads only
    the row groups the slice touches)."""
    return pl.scan_parquet(path).select(pl.nth(list(columns))).slice(start, length).collect()


def sample_rows(
    path: Path, columns: Sequence[int], n: int, seed: int, mode: Mode = "exact"
) -> pl.DataFrame:
    """A seeded sample of ``n`` rows of the columns at positions ``columns`` of a Parquet file
    (every row when it has at most ``n``), read one row group at a time (module docstring)."""
    groups = _groups(path)
    height = sum(rows for _, rows in groups)
    if n < 1:
        return _read_rows(path, columns, 0, 0)
    if height <= n:
        parts = [_read_rows(path, columns, s, r) for s, r in groups if r]
        return pl.concat(parts) if parts else _read_rows(path, columns, 0, 0)
    if mode == "row_groups":
        order = np.random.default_rng(seed).permutation(len(groups))
        chosen, held = [], 0
        for i in order:
            chosen.append(groups[i])
            held += groups[i][1]
            if held >= n:
                break
        chosen.sort()
        kept = pl.concat([_read_rows(path, columns, s, r) for s, r in chosen])
        return kept.sample(n, seed=seed) if kept.height > n else kept
    positions = pl.int_range(height, eager=True, dtype=pl.UInt32 if height < 2**32 else pl.UInt64)
    drawn = positions.sample(n, seed=seed)
    del positions
    wanted = drawn.sort()
    parts, at = [], 0
    for start, rows in groups:
        stop = start + rows
        end = int(wanted.search_sorted(stop, side="left"))
        if end > at:
            local = (wanted.slice(at, end - at) - start).cast(pl.UInt32)
            parts.append(_read_rows(path, columns, start, rows)[local])
            at = end
    kept = pl.concat(parts)
    rank = drawn.rank("ordinal").cast(pl.Int64) - 1
    return kept[rank]


def copy_columns(source: Path, target: Path, columns: Sequence[str]) -> int:
    """Copy ``columns`` of a Parquet file to ``target`` through polars' streaming engine
    (zstd level 3, with statistics, as :func:`sluice.write.write_parquet`); the rows copied.

    The rows and their order are the source's; the row groups, and so the bytes, can differ
    from an eager write of the same rows."""
    try:
        pl.scan_parquet(source).select(pl.col(list(columns))).sink_parquet(
            target, compression="zstd", compression_level=3, statistics=True
        )
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise OutputError(f"cannot copy {source} to {target}: {exc}") from None
    return parquet_rows(target)


def parquet_rows(path: Path) -> int:
    """Rows in a Parquet file, from its footer."""
    return int(pq.ParquetFile(path).metadata.num_rows)


def column_values(path: Path, column: int) -> pl.Series:
    """The column at position ``column`` of a Parquet file, read alone."""
    # one chunk: polars' float sums and means depend on how a column is chunked, and the
    # in-memory report reads the clean file as one chunk
    return pl.scan_parquet(path).select(pl.nth(column)).collect().to_series().rechunk()


__all__ = ["Mode", "column_values", "copy_columns", "parquet_rows", "sample_rows"]
