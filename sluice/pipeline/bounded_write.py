"""The write stage's split in bounded batches: clean and quarantine written as row-group streams.

:func:`write_bounded` does what ``sluice.pipeline.commit._write`` does without holding the
partition: ``frame.parquet`` and ``raw.parquet`` are read side by side in batches of
``batch_rows`` rows (the same rows, in the same order), each batch is split with the failures of
its rows (found by :class:`FailuresByRow`; :func:`sluice.screening.split_rows` proves the batch's
split conserves its rows) and its clean and quarantined rows are appended as row groups. On
POSIX Parquet they go straight into the commit's staging files; for Delta tables they are staged
in the work folder, then each side is streamed into its table as a
:class:`pyarrow.RecordBatchReader`, one table version per side as today. Each side's rows and
checksum are summed as the batches go (:class:`IdTally`). The rest of the write stage (counts,
conservation, verdict, manifest, report) is the in-memory stage's: its numbers are the
in-memory path's. Conservation is proven by :func:`prove_streams`, which walks the input's ids
against the staged files' ids (read back from their hashed bytes), a few batches at a time.

What grows with the partition's rows: nothing per row. What grows with its failures: the failures
of every stage, read whole (the counts, the verdict, the rule list and ``failures.parquet`` are
made from them as in memory), about 100 bytes per failure plus 16 for :class:`FailuresByRow`;
when a critical check fails every row gets one failure per failed check (and is quarantined), as
in the in-memory path. Per batch: the batch, its split, and up to two batches of ids per side in
the proof. For Delta outputs the proof reads each table's ``_row_id`` back whole (8 bytes per
row per side, and the input's) as :func:`sluice.write.check_conservation` does.

Measured with ``python -m bench.bounded_io --data DIR --rows 1000000 10000000`` (docs/design.md,
"Ingest and write in bounded memory").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from sluice.core.errors import SluiceError
from sluice.core.failures import concat_failures
from sluice.core.frame import ROW_ID
from sluice.decide import add_checksums, checksum, partition_failures
from sluice.pipeline.bounded_screen import StreamWriter, arrow_schema, iter_frames
from sluice.pipeline.budget import batch_rows
from sluice.pipeline.run import Run
from sluice.screening import split_rows
from sluice.storage import DeltaTables, OutputBackend, PosixParquet, Written, kill_point
from sluice.storage.delta import _storable, refuse_key_column, replace_partition
from sluice.write import PARQUET_NAME, ConservationError, check_conservation, conserved, describe

if TYPE_CHECKING:
    from sluice.pipeline.commit import _Staged

SIDES = ("clean", "quarantine")
READ_CHUNK = 1 << 20


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
    what ``sluice.pipeline.commit._write`` returns, each side's rows and checksum summed as the
    batches go."""
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
    tally = {side: IdTally() for side in ("in", *SIDES)}
    marked: list[pl.DataFrame] = []
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
            batch = frame.get_column(ROW_ID)
            got = split_rows(frame, raw, by_row.of(batch), declared, critical)
            write_batch(clean, got.clean)
            write_batch(held, got.quarantine)
            if tally["in"].rows + len(batch) > n_in:
                raise SluiceError(f"{run.work}: frame.parquet holds more rows than it counts")
            tally["in"].add(batch)
            tally["clean"].add(got.clean.get_column(ROW_ID))
            tally["quarantine"].add(got.quarantine.get_column(ROW_ID))
            if critical:
                marked.append(partition_failures(batch, critical))
    if tally["in"].rows != n_in:
        raise SluiceError(f"{run.work}: frame.parquet holds fewer rows than it counts")
    if isinstance(backend, PosixParquet):
        written = {side: _posix_entry(backend, side, targets[side]) for side in SIDES}
    elif isinstance(backend, DeltaTables):
        written = {
            side: _delta_write(backend, side, targets[side], meta_of[side], rows) for side in SIDES
        }
    else:
        raise SluiceError(f"no bounded write for the {backend.format} storage backend")
    frame_file = run.file("frame.parquet")

    def prove(expected: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        if isinstance(backend, PosixParquet):
            return prove_streams(frame_file, written, expected, rows)
        ids_in = pl.read_parquet(frame_file, columns=[ROW_ID]).get_column(ROW_ID)
        return check_conservation(
            {side: backend.read_back(w, ROW_ID) for side, w in written.items()},
            ids_in,
            ROW_ID,
            expected,
            names=", ".join(
                f"{w.entry['uri']} version {w.entry['version']}" for w in written.values()
            ),
        )

    return _Staged(
        failures=concat_failures([failures, *marked]),
        critical=tuple(sorted({f"{c}|{r}" for c, r, _ in critical})),
        rows={side: t.rows for side, t in tally.items()},
        sums={side: t.checksum for side, t in tally.items()},
        reasons=sorted(reasons),
        meta=qmeta,
        written=written,
        prove=prove,
    )


class IdTally:
    """The rows and checksum (:func:`sluice.decide.checksum`) of row ids added batch by batch."""

    def __init__(self) -> None:
        self.rows = 0
        self.total = 0

    def add(self, ids: pl.Series | npt.NDArray[np.uint64]) -> None:
        """Count ``ids`` in."""
        if len(ids):
            values = ids.cast(pl.UInt64).to_numpy() if isinstance(ids, pl.Series) else ids
            self.total = (self.total + int(values.sum(dtype=np.uint64))) % (1 << 64)
        self.rows += len(ids)

    @property
    def checksum(self) -> str:
        """The sum of the ids so far modulo 2**64, as 16 hex digits."""
        return f"{self.total:016x}"


class _IdStream:
    """A staged file's row ids, read batch by batch from its open file, tallied as they come,
    with a window of the next ids for the walk of :func:`prove_streams`."""

    def __init__(self, batches: Iterator[npt.NDArray[np.uint64]]) -> None:
        self.batches = batches
        self.window: npt.NDArray[np.uint64] = np.empty(0, dtype=np.uint64)
        self.tally = IdTally()

    def peek(self, n: int) -> npt.NDArray[np.uint64]:
        """The next ``n`` ids (fewer at the end of the file)."""
        while len(self.window) < n and (more := next(self.batches, None)) is not None:
            self.tally.add(more)
            self.window = np.concatenate([self.window, more])
        return self.window[:n]

    def take(self, n: int) -> None:
        """Move past the next ``n`` ids."""
        self.window = self.window[n:]

    def rest(self) -> int:
        """Read to the end; the ids not walked past."""
        left = len(self.window)
        for more in self.batches:
            self.tally.add(more)
            left += len(more)
        self.window = self.window[:0]
        return left


def _ids_of(path: Path, column: str, rows: int) -> Iterator[npt.NDArray[np.uint64]]:
    parquet = pq.ParquetFile(path, pre_buffer=False)
    for b in parquet.iter_batches(batch_size=max(1, rows), columns=[column]):
        yield b.column(0).to_numpy(zero_copy_only=False).astype(np.uint64, copy=False)


def _verified_ids(
    f: IO[bytes], path: Path, sha256: str, column: str, rows: int
) -> Iterator[npt.NDArray[np.uint64]]:
    """``column`` of a Parquet file open as ``f``, once its bytes were checked to hash to
    ``sha256``; :class:`ConservationError` when they do not or the file cannot be read."""
    digest = hashlib.sha256()
    try:
        while chunk := f.read(READ_CHUNK):
            digest.update(chunk)
        if digest.hexdigest() != sha256:
            raise ConservationError(f"{path} changed after it was written (sha256 differs)")
        f.seek(0)
        parquet = pq.ParquetFile(f, pre_buffer=False)
        for b in parquet.iter_batches(batch_size=max(1, rows), columns=[column]):
            yield b.column(0).to_numpy(zero_copy_only=False).astype(np.uint64, copy=False)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise ConservationError(f"cannot read back {path}: {exc}") from None


def _walk(ids: npt.NDArray[np.uint64], clean: _IdStream, held: _IdStream) -> int | None:
    """Walk ``ids`` one by one, each the next id of ``clean`` or else of ``held``: the index of
    the first that is neither, or None when every one was (both streams moved past them)."""
    ahead, behind = clean.peek(len(ids)), held.peek(len(ids))
    c = q = 0
    for i, x in enumerate(ids.tolist()):
        if c < len(ahead) and int(ahead[c]) == x:
            c += 1
        elif q < len(behind) and int(behind[q]) == x:
            q += 1
        else:
            return i
    clean.take(c)
    held.take(q)
    return None


def prove_streams(
    frame_file: Path,
    written: Mapping[str, Written],
    expected: Mapping[str, Mapping[str, Any]],
    rows: int,
) -> dict[str, dict[str, Any]]:
    """Prove from the staged files that every row of ``frame_file`` is in exactly one of them,
    holding a few batches of ids at a time; what :func:`sluice.write.check_conservation`
    returns and raises.

    The bounded write appends each side's rows in the input's order, so the files hold every
    input row once exactly when the input's ids, walked in order, are each the next id of the
    clean or of the quarantine file, and both files end with the walk. Each batch of input ids
    is checked against the next ids of both files at once: those among the clean file's next
    ids must be the clean file's next ids in the same order, and the others the quarantine
    file's; when they are not, the batch is walked id by id, to the first id that is neither
    file's next.
    """
    names = ", ".join(str(w.staged) for w in written.values())
    with ExitStack() as stack:
        streams: dict[str, _IdStream] = {}
        for side, w in written.items():
            assert w.staged is not None
            f = stack.enter_context(open(w.staged, "rb"))
            streams[side] = _IdStream(
                _verified_ids(f, w.staged, str(w.entry["sha256"]), ROW_ID, rows)
            )
        clean, held = streams["clean"], streams["quarantine"]
        tally_in = IdTally()
        broken: int | None = None
        for ids in _ids_of(frame_file, ROW_ID, rows):
            if broken is None:
                n = len(ids)
                ahead = clean.peek(n)
                is_clean = pl.Series(ids).is_in(pl.Series(ahead).implode()).to_numpy()
                k = int(is_clean.sum())
                if np.array_equal(ahead[:k], ids[is_clean]) and np.array_equal(
                    held.peek(n - k), ids[~is_clean]
                ):
                    clean.take(k)
                    held.take(n - k)
                else:
                    broken = _walk(ids, clean, held)
                    broken = None if broken is None else tally_in.rows + broken
            tally_in.add(ids)
        beyond = {side: s.rest() for side, s in streams.items()}
    back: dict[str, dict[str, Any]] = {
        side: {"rows": s.tally.rows, "checksum": s.tally.checksum} for side, s in streams.items()
    }
    problems: list[str] = []
    if sum(v["rows"] for v in back.values()) != tally_in.rows:
        held_rows = " + ".join(f"{v['rows']} {k}" for k, v in back.items())
        problems.append(f"{tally_in.rows} rows came in, the files hold {held_rows}")
    if add_checksums(*(str(v["checksum"]) for v in back.values())) != tally_in.checksum:
        problems.append("the checksums of the files' ids do not add up to the input's")
    if broken is not None:
        problems.append(
            f"from input row {broken + 1} on, the files do not hold the input's rows once each in "
            "their order (a row lost, written twice, or not from the input)"
        )
    elif any(beyond.values()):
        extra = " and ".join(f"{n} in {side}" for side, n in beyond.items() if n)
        problems.append(f"rows in the files did not come in ({extra} after the last input row)")
    return conserved(back, expected, problems, names)


class FailuresByRow:
    """A partition's failures, those of a batch of rows found in time that grows with the
    batch, not with the failures (a join per batch would read every failure for every batch).

    Holds the failures' row ids sorted (8 bytes per failure) and their order (8 bytes more). A
    batch's ids are sorted before they are looked up: sorted, their binary searches follow each
    other through the cache (six times faster than in row order for a million failures).
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
        ids = np.sort(batch.drop_nulls().to_numpy().astype(np.uint64, copy=False))
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


__all__ = ["FailuresByRow", "IdTally", "prove_streams", "write_batch", "write_bounded"]
