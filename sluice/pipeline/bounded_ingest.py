"""The ingest stage in bounded memory (issue 16): a partition's files read piece by piece.

Run by :func:`sluice.pipeline.stages._ingest` when :func:`sluice.pipeline.budget.use_bounded`
says so. A first pass scans every file (:func:`sluice.ingest.pieces.plan_partition`: sha256,
record boundaries, header, keys or schema), then each piece of at most ``batch_rows`` records
(:func:`sluice.pipeline.budget.batch_rows`) is read, typed and appended to ``frame.parquet``,
``raw.parquet`` and ``ingest_failures.parquet`` as row groups (``pyarrow.parquet.ParquetWriter``)
with the schemas, rows, row order and stage facts of the in-memory stage. Within a file,
``ingest_failures.parquet`` holds a piece's failures after the previous piece's (the in-memory
stage lists a whole file's by rule and column): the same rows, in another order.

Memory: one piece's bytes and rows (read, typed, as text) and one scan block (8 MiB) at a time;
what grows with the partition is the list of piece offsets (about 100 bytes per piece) and one small
record per file. Nothing per row.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from sluice.core.failures import FAILURE_SCHEMA
from sluice.ingest import list_source_files
from sluice.ingest.pieces import Plan, plan_partition, read_pieces
from sluice.pipeline.budget import batch_rows
from sluice.pipeline.run import Run
from sluice.write import OutputError


class RowGroupWriter:
    """A work file written as a stream of row groups of at most ``rows`` rows, in the schema of
    a polars frame: zstd level 1 (a fifth less CPU than :func:`sluice.write.write_parquet`'s
    level 3, for about 5% more bytes), with dictionaries and statistics (the validate stage
    reads null counts from them); ``scratch``, for a file only the write stage reads whole,
    without either (statistics of text columns are half the cost of writing them)."""

    def __init__(self, path: Path, schema: pl.Schema, rows: int, *, scratch: bool = False) -> None:
        self.path = path
        self.rows = max(1, rows)
        self.schema = pl.DataFrame(schema=schema).to_arrow().schema
        try:
            self.writer = pq.ParquetWriter(
                path,
                self.schema,
                compression="zstd",
                compression_level=1,
                use_dictionary=not scratch,
                write_statistics=not scratch,
            )
        except (OSError, pa.ArrowException) as exc:
            raise OutputError(f"cannot write {path}: {exc}") from None
        self.written = 0

    def write(self, frame: pl.DataFrame) -> None:
        """Append ``frame``'s rows (in the writer's schema) as row groups."""
        if not frame.height:
            return
        table = frame.to_arrow()
        if table.schema != self.schema:
            table = table.cast(self.schema)
        try:
            self.writer.write_table(table, row_group_size=self.rows)
        except (OSError, pa.ArrowException) as exc:
            raise OutputError(f"cannot write {self.path}: {exc}") from None
        self.written += frame.height

    def close(self) -> None:
        """Finish the file (a file of no rows still has the schema)."""
        try:
            if not self.written:
                self.writer.write_table(self.schema.empty_table())
            self.writer.close()
        except (OSError, pa.ArrowException) as exc:
            raise OutputError(f"cannot write {self.path}: {exc}") from None

    def __enter__(self) -> RowGroupWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.writer.close()


def ingest_bounded(run: Run) -> dict[str, Any]:
    """Ingest the run's partition piece by piece into its work folder; the stage's facts,
    those of the in-memory stage."""
    loaded = run.loaded
    paths = list_source_files(loaded, run.partition)
    rows = batch_rows(len(loaded.spec.columns) + 3)
    plan = plan_partition(loaded, run.partition, paths, rows)
    total = failures = 0
    with (
        RowGroupWriter(run.file("frame.parquet"), plan.frame_schema, rows) as frames,
        RowGroupWriter(run.file("raw.parquet"), plan.raw_schema, rows, scratch=True) as raws,
        RowGroupWriter(run.file("ingest_failures.parquet"), FAILURE_SCHEMA, rows) as fails,
    ):
        for piece in read_pieces(loaded, plan):
            frames.write(piece.frame)
            raws.write(piece.raw)
            fails.write(piece.failures)
            total += piece.frame.height
            failures += piece.failures.height
    return ingest_facts(plan, total, failures)


def ingest_facts(plan: Plan, rows: int, failures: int) -> dict[str, Any]:
    """The ingest stage's facts for a partition read by ``plan``: ``rows`` rows read, with
    ``failures`` ingest failures."""
    sources = [f.source() for f in plan.files]
    return {
        "rows": rows,
        "inputs": [s.as_dict() for s in sources],
        "missing_columns": list(plan.missing),
        "extra_columns": list(plan.extra),
        "aliases": [
            {"file": s.path, "column": column, "alias": alias}
            for s in sources
            for column, alias in s.aliases
        ],
        "retyped_columns": plan.retyped,
        "failures": failures,
    }


__all__ = ["RowGroupWriter", "ingest_bounded"]
