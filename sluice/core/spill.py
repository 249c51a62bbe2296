"""Rows spilled to disk in numbered parts, read back one part at a time, in part order.

A bounded stage that must see rows together (every occurrence of a key value, every failure
of a range of positions) writes them to a :class:`PartSpill` with each row's part number, then
reads the parts back one by one. The number of parts grows with the partition (so a part holds
a bounded number of rows), but at most :data:`FANOUT` files are open at once: rows go first to
at most ``FANOUT`` files, each holding a contiguous range of parts; a file holding more than
one part is split the same way when it is read, level after level, so every part is written at
most once per level (``log_FANOUT(parts)`` levels). Files are Arrow IPC streams (LZ4): unlike a
Parquet writer, a stream keeps no metadata per written batch in memory.

Memory: one batch being written, plus, when reading, one file's batches up to ``rows`` rows
while it is split, then one part.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from sluice.core.errors import OutputError

FANOUT = 64
"""Files a spill writes to at once."""
PART = "__sluice_part"
_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


def part_count(rows: int, per_part: int) -> int:
    """Parts for ``rows`` rows so that each holds about ``per_part`` of them (at least one)."""
    return max(1, math.ceil(max(0, rows) / max(1, per_part)))


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn a failed write (a full disk, a read-only folder) into an :class:`OutputError`."""
    try:
        yield
    except (OSError, pa.ArrowException) as exc:
        raise OutputError(f"cannot write {path}: {exc}") from None


class RowStream:
    """Arrow record batches appended to one IPC stream file (created on the first rows)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        self._sink: pa.NativeFile | None = None
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, table: pa.Table) -> None:
        """Append ``table``'s rows (cast to the first table's schema)."""
        if not table.num_rows:
            return
        with writing(self.path):
            if self._writer is None:
                self._schema = table.schema
                self._sink = pa.OSFile(str(self.path), "wb")
                self._writer = pa.ipc.new_stream(self._sink, table.schema, options=_OPTIONS)
            self._writer.write_table(table.cast(self._schema))
        self.rows += table.num_rows

    def close(self) -> None:
        """Finish the file (a no-op when nothing was written or it is closed)."""
        with writing(self.path):
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            if self._sink is not None:
                self._sink.close()
                self._sink = None


def read_stream(path: Path, rows: int = 1) -> Iterator[pl.DataFrame]:
    """The rows of a :class:`RowStream`'s file in written order, as polars frames of written
    batches put together up to ``rows`` rows (a larger written batch is a frame alone)."""
    with pa.OSFile(str(path), "rb") as source:
        reader = pa.ipc.open_stream(source)
        held: list[pa.RecordBatch] = []
        count = 0
        for batch in reader:
            if held and count + batch.num_rows > rows:
                yield _frame(held)
                held, count = [], 0
            held.append(batch)
            count += batch.num_rows
        if held:
            yield _frame(held)


def _frame(batches: list[pa.RecordBatch]) -> pl.DataFrame:
    frame = pl.from_arrow(pa.Table.from_batches(batches))
    assert isinstance(frame, pl.DataFrame)
    return frame


class PartSpill:
    """Rows written with a part number in ``[0, parts)``, read back whole part by whole part
    (``read_parts`` and ``largest`` count the parts read and the rows of the largest)."""

    def __init__(self, folder: Path, name: str, parts: int, rows: int) -> None:
        self.folder = folder
        self.name = name
        self.parts = max(1, parts)
        self.rows = max(1, rows)
        self.written = 0
        self.read_parts = 0
        self.largest = 0
        self._schema: pl.Schema | None = None
        self._top = self._fan(0, self.parts, "")

    def _fan(self, lo: int, hi: int, tag: str) -> tuple[int, int, list[RowStream]]:
        width = min(FANOUT, hi - lo)
        group = math.ceil((hi - lo) / width)
        streams = [RowStream(self.folder / f"{self.name}{tag}_{j}.arrow") for j in range(width)]
        return lo, group, streams

    @staticmethod
    def _route(lo: int, group: int, streams: list[RowStream], frame: pl.DataFrame) -> None:
        table = frame.to_arrow()
        slots = (table.column(PART).to_numpy() - lo) // group
        order = np.argsort(slots, kind="stable")
        table = table.take(pa.array(order))
        bounds = np.searchsorted(slots[order], np.arange(len(streams) + 1))
        for j, stream in enumerate(streams):
            if bounds[j + 1] > bounds[j]:
                stream.write(table.slice(bounds[j], bounds[j + 1] - bounds[j]))

    def write(self, frame: pl.DataFrame, part: pl.Series) -> None:
        """Append ``frame``'s rows, row ``i`` to part ``part[i]``."""
        if frame.is_empty():
            return
        if self._schema is None:
            self._schema = frame.schema
        lo, group, streams = self._top
        self._route(lo, group, streams, frame.with_columns(part.cast(pl.Int64).alias(PART)))
        self.written += frame.height

    def close(self) -> None:
        """Finish writing (reading closes the files too)."""
        for stream in self._top[2]:
            stream.close()

    def read(self, *, keep: bool = False) -> Iterator[tuple[int, pl.DataFrame]]:
        """Every non-empty part as ``(number, rows)``, in increasing part order. Each file is
        removed once read; ``keep``: the first level's files are kept, so the parts can be
        read again (the deeper levels are written again on every read)."""
        self.close()
        lo, group, streams = self._top
        for j, stream in enumerate(streams):
            start = lo + j * group
            yield from self._parts(stream, start, min(self.parts, start + group), keep=keep)

    def _parts(
        self, stream: RowStream, lo: int, hi: int, *, keep: bool = False
    ) -> Iterator[tuple[int, pl.DataFrame]]:
        if not stream.rows:
            return
        if hi - lo <= 1:
            whole = pl.concat(list(read_stream(stream.path, stream.rows)), how="vertical")
            if not keep:
                stream.path.unlink()
            self.read_parts += 1
            self.largest = max(self.largest, whole.height)
            assert self._schema is not None
            yield lo, whole.drop(PART).cast(self._schema)
            return
        sub_lo, group, subs = self._fan(lo, hi, stream.path.stem.removeprefix(self.name))
        for frame in read_stream(stream.path, self.rows):
            self._route(sub_lo, group, subs, frame)
        for sub in subs:
            sub.close()
        if not keep:
            stream.path.unlink()
        for j, sub in enumerate(subs):
            start = sub_lo + j * group
            yield from self._parts(sub, start, min(hi, start + group))


__all__ = ["FANOUT", "PartSpill", "RowStream", "part_count", "read_stream"]
