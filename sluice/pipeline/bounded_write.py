"""The write stage's split in bounded batches: clean and quarantine written as row-group streams.

:func:`write_bounded` does what ``sluice.pipeline.commit._write`` does without holding the
partition: ``frame.parquet`` and ``raw.parquet`` are read side by side in batches of
``batch_rows`` rows (the same rows, in the same order), each batch is split with the failures of
its rows (:func:`sluice.screening.split_rows`, which proves the batch's split conserves its rows)
and its clean and quarantined rows are appended as row groups. On POSIX Parquet they go straight
into the commit's staging files; for Delta tables they are staged in the work folder, then each
side is streamed into its table as a :class:`pyarrow.RecordBatchReader`, one table version per
side as today. The rest of the write stage (checksums, counts, conservation, verdict, manifest,
report) is the in-memory stage's, fed with the ``_row_id`` of each side instead of whole frames:
its numbers are the in-memory path's. :class:`StreamedParquet` reads the ``_row_id`` of a staged
file back by streaming its row groups from the hashed bytes.

What grows with the partition's rows:

- the failures of every stage (``ingest``, ``validation``, ``screen``), read whole: the counts,
  the verdict, the rule list and ``failures.parquet`` are made from them as in memory; they grow
  with failures, not rows, except when a critical check fails: then every row gets one failure
  per failed critical check (about 100 bytes per row each), as in the in-memory path;
- the ``_row_id`` of the rows in (8 bytes per row) with a side mask (1 byte), split into each
  side's ids (8 bytes per row in all); for conservation the ids read back from the staged files
  (8 bytes per row) and what :func:`sluice.write.check_conservation` builds over them (their
  concatenation and polars' hash sets, a few tens of bytes per row while it runs).

Measured on the ``bench.bounded_stages`` partition (20 columns, ``SLUICE_MEMORY_BUDGET=4G``:
batches of about 61,000 rows), split, write, read-back and conservation peak at 0.64 GB for
1 M rows and 1.0 GB for 10 M rows (0.78 GB before conservation); the rest of the write stage
(the report builder) is not bounded yet.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from sluice.core.errors import SluiceError
from sluice.core.failures import concat_failures
from sluice.core.frame import ROW_ID
from sluice.decide import Split, checksum, partition_failures
from sluice.pipeline.bounded_screen import StreamWriter, arrow_schema, iter_frames
from sluice.pipeline.budget import batch_rows
from sluice.pipeline.run import Run
from sluice.screening import split_rows
from sluice.storage import DeltaTables, OutputBackend, PosixParquet, Written, kill_point
from sluice.storage.delta import _storable, refuse_key_column, replace_partition
from sluice.write import PARQUET_NAME, ConservationError, describe

if TYPE_CHECKING:
    from sluice.pipeline.commit import _Staged

SIDES = ("clean", "quarantine")
READ_CHUNK = 1 << 20


class StreamedParquet(PosixParquet):
    """POSIX Parquet outputs whose ids are read back by streaming the staged file."""

    def read_back(self, written: Written, column: str) -> pl.Series:
        """The column of the staged file, from bytes whose sha256 is the entry's."""
        assert written.staged is not None
        return read_back_stream(written.staged, str(written.entry["sha256"]), column)


def read_back_stream(path: Path, sha256: str, column: str) -> pl.Series:
    """``column`` of a Parquet file, streamed by row groups from an open file whose bytes hash
    to ``sha256``; :class:`ConservationError` when they do not or the file cannot be read."""
    try:
        with open(path, "rb") as f:
            digest = hashlib.sha256()
            while chunk := f.read(READ_CHUNK):
                digest.update(chunk)
            if digest.hexdigest() != sha256:
                raise ConservationError(f"{path} changed after it was written (sha256 differs)")
            f.seek(0)
            parquet = pq.ParquetFile(f, pre_buffer=False)
            ids = np.empty(parquet.metadata.num_rows, dtype=np.uint64)
            at = 0
            for b in parquet.iter_batches(batch_size=1 << 16, columns=[column]):
                ids[at : at + b.num_rows] = b.column(0).to_numpy(zero_copy_only=False)
                at += b.num_rows
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise ConservationError(f"cannot read back {path}: {exc}") from None
    return pl.Series(column, ids[:at], dtype=pl.UInt64)


def _batches(run: Run, rows: int) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """``frame.parquet`` and ``raw.parquet`` side by side, ``rows`` rows at a time."""
    raws = iter_frames(run.file("raw.parquet"), None, rows)
    for frame in iter_frames(run.file("frame.parquet"), None, rows):
        raw = next(raws, None)
        if raw is None or not raw.get_column(ROW_ID).equals(frame.get_column(ROW_ID)):
            raise SluiceError(
                f"{run.work}: raw.parquet does not hold frame.parquet's rows in the same order; "
                "the work folder is damaged: screen the partition again"
            )
        yield frame, raw
    if next(raws, None) is not None:
        raise SluiceError(f"{run.work}: raw.parquet holds more rows than frame.parquet")


def write_bounded(run: Run, backend: OutputBackend) -> _Staged:
    """Split the partition batch by batch and write each side as a stream through ``backend``;
    what ``sluice.pipeline.commit._write`` returns, with each side's ``_row_id`` only."""
    from sluice.pipeline.commit import _Staged, split_inputs

    failures, declared, critical = split_inputs(run)
    frame_schema = pl.read_parquet_schema(run.file("frame.parquet"))
    raw_schema = pl.read_parquet_schema(run.file("raw.parquet"))
    empty = split_rows(
        pl.DataFrame(schema=frame_schema),
        pl.DataFrame(schema=raw_schema),
        failures.head(0),
        declared,
        critical,
    )
    part = run.partition
    meta = {
        "sluice.dataset": run.loaded.name,
        "sluice.partition": f"{part.key}={part}",
        "sluice.suite_sha256": run.suite.sha256,
        "sluice.spec_sha256": run.loaded.sha256,
    }
    posix = isinstance(backend, PosixParquet)
    targets = {
        side: backend.commit.writer(side).path(PARQUET_NAME)
        if isinstance(backend, PosixParquet)
        else run.file(f"bounded_{side}.parquet")
        for side in SIDES
    }
    n_in = pq.ParquetFile(run.file("frame.parquet")).metadata.num_rows
    ids_in = np.empty(n_in, dtype=np.uint64)
    is_clean = np.empty(n_in, dtype=np.bool_)
    at = 0
    rows = batch_rows(len(frame_schema) + len(raw_schema))
    by_row = FailuresByRow(failures)
    reasons: set[str] = set(failures.get_column("reason").unique().to_list())
    if critical and n_in:
        reasons.update(f"{c}|{r}" for c, r, _ in critical)
    qmeta = {**meta, "sluice.rules": json.dumps(sorted(reasons))}
    meta_of = {"clean": meta, "quarantine": qmeta}
    with (
        _writer(targets["clean"], empty.clean, meta if posix else None) as clean,
        _writer(targets["quarantine"], empty.quarantine, qmeta if posix else None) as held,
    ):
        for frame, raw in _batches(run, rows):
            batch_ids = frame.select(ROW_ID)
            got = split_rows(
                frame, raw, by_row.of(batch_ids.get_column(ROW_ID)), declared, critical
            )
            write_batch(clean, got.clean)
            write_batch(held, got.quarantine)
            batch = batch_ids.get_column(ROW_ID).to_numpy()
            if at + len(batch) > n_in:
                raise SluiceError(f"{run.work}: frame.parquet holds more rows than it counts")
            ids_in[at : at + len(batch)] = batch
            is_clean[at : at + len(batch)] = np.isin(batch, got.clean.get_column(ROW_ID).to_numpy())
            at += len(batch)
    if at != n_in:
        raise SluiceError(f"{run.work}: frame.parquet holds fewer rows than it counts")
    side_ids = {
        "in": pl.Series(ROW_ID, ids_in, dtype=pl.UInt64),
        "clean": pl.Series(ROW_ID, ids_in[is_clean], dtype=pl.UInt64),
        "quarantine": pl.Series(ROW_ID, ids_in[~is_clean], dtype=pl.UInt64),
    }
    del ids_in, is_clean
    if isinstance(backend, PosixParquet):
        written = {side: _posix_entry(backend, side, targets[side]) for side in SIDES}
    elif isinstance(backend, DeltaTables):
        written = {
            side: _delta_write(backend, side, targets[side], meta_of[side], rows) for side in SIDES
        }
    else:
        raise SluiceError(f"no bounded write for the {backend.format} storage backend")
    all_failures = concat_failures([failures, partition_failures(side_ids["in"], critical)])
    result = Split(
        clean=side_ids["clean"].to_frame(),
        quarantine=side_ids["quarantine"].to_frame(),
        failures=all_failures,
        critical=tuple(sorted({f"{c}|{r}" for c, r, _ in critical})),
    )
    return _Staged(result, side_ids["in"], sorted(reasons), qmeta, written)


class FailuresByRow:
    """A partition's failures, those of a batch of rows found in time that grows with the
    batch, not with the failures (a join per batch would read every failure for every batch).

    Holds the failures' row ids sorted (8 bytes per failure) and their order (8 bytes more).
    """

    def __init__(self, failures: pl.DataFrame) -> None:
        self.failures = failures
        ids = failures.get_column(ROW_ID)
        known = np.flatnonzero(ids.is_not_null().to_numpy())
        values = ids.drop_nulls().to_numpy().astype(np.uint64, copy=False)
        order = np.argsort(values, kind="stable")
        self.ids = values[order]
        self.rows = known[order]

    def of(self, batch: pl.Series) -> pl.DataFrame:
        """The failures of the rows whose ids are ``batch``, in the order they were given."""
        ids = batch.drop_nulls().to_numpy().astype(np.uint64, copy=False)
        left = np.searchsorted(self.ids, ids, side="left")
        many = np.searchsorted(self.ids, ids, side="right") - left
        hit = many > 0
        if not hit.any():
            return self.failures.head(0)
        starts, many = left[hit], many[hit]
        ends = np.cumsum(many)
        at = np.arange(int(ends[-1])) + np.repeat(starts - (ends - many), many)
        return self.failures[np.sort(self.rows[at])]


def write_batch(writer: StreamWriter, frame: pl.DataFrame) -> None:
    """Append one batch of a side to its stream."""
    writer.write(frame)


def _writer(path: Path, empty: pl.DataFrame, metadata: Mapping[str, str] | None) -> StreamWriter:
    return StreamWriter(path, arrow_schema(empty.schema), dict(metadata) if metadata else None)


def _posix_entry(backend: PosixParquet, side: str, staged: Path) -> Written:
    rows = pq.ParquetFile(staged).metadata.num_rows
    entry = describe(staged, rows)
    entry["path"] = str(backend.commit.writer(side).final / PARQUET_NAME)
    return Written(side, entry, table=False, staged=staged)


def _delta_write(
    backend: DeltaTables, side: str, staged: Path, metadata: Mapping[str, str], rows: int
) -> Written:
    """Stream a staged side into its Delta table: one predicate overwrite of the partition, as
    :func:`sluice.storage.delta.write_partition` makes it."""
    uri, column, value = backend.uris[side], backend.column, backend.value
    schema = pl.read_parquet_schema(staged)
    refuse_key_column(uri, schema, column)
    count = 0
    total = 0

    def storable(frame: pl.DataFrame) -> pa.Table:
        return (
            _storable(frame).with_columns(pl.lit(value, dtype=pl.String).alias(column)).to_arrow()
        )

    target = storable(pl.DataFrame(schema=schema)).schema

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal count, total
        for frame in iter_frames(staged, None, rows):
            count += frame.height
            total = (total + int(checksum(frame.get_column(ROW_ID)), 16)) % (1 << 64)
            yield from storable(frame).cast(target).to_batches()

    version = replace_partition(
        uri,
        pa.RecordBatchReader.from_batches(target, batches()),
        column=column,
        value=value,
        metadata={**metadata, "sluice.side": side},
        run_id=backend.run_id,
        storage_options=dict(backend.storage_options) or None,
    )
    kill_point(side)
    entry: dict[str, Any] = {
        "format": "delta",
        "uri": uri,
        "version": version,
        "partition_column": column,
        "partition_value": value,
        "rows": count,
        "checksum": f"{total:016x}",
    }
    return Written(side, entry, table=True)


__all__ = ["StreamedParquet", "read_back_stream", "write_batch", "write_bounded"]
