"""One bounded partition's ingest split into tasks on a Dask cluster (issue 16, part b).

``sluice run --dask ADDRESS`` (or ``SLUICE_DASK_ADDRESS``, or the spec's ``execution.dask``) on a
partition the bounded path screens: the first pass over the partition's files
(:func:`sluice.ingest.pieces.plan_partition`: sha256, record boundaries, header, keys, schema)
runs as one task per file, and this process lays out the partition's columns from them; it cuts
the partition into units (one piece of a CSV or NDJSON file, one row group of a Parquet file)
and runs them as tasks (``distributed.Client.submit``):

1. **read**: each unit is read, typed and conformed to the partition's layout as the
   single-process ingest does, and written to ``ingest_pieces/`` in the run's work folder:
   its typed rows, raw text and ingest failures, each to a name unique to the attempt, renamed
   into place (a rerun writes the same bytes). A text unit does not know where its first
   record is in its file, so its row ids and ``_source_row`` count from 0; a Parquet unit's
   first row comes from the file's metadata (a unit that reads another number of rows stops
   the run: exit 3).
2. **read again**: the single-process ingest reads the rest of a CSV file with the exact reader
   once a piece needed it; a later unit of that file that the fast reader read is read again
   with the exact reader (rare: pyarrow refused a piece the scan found regular).

Then three tasks, one per work file (:func:`join_units`), put the units' files together in
order, row group by row group, into ``frame.parquet``, ``raw.parquet`` and
``ingest_failures.parquet``, moving each text unit's row ids and ``_source_row`` to its place in
its file (the rows before it in its file are known by then; ids are splitmix64 of the file's
hash plus the row number, and splitmix64 is a bijection, so an id is moved by undoing the mix,
adding the unit's first row and mixing again: :func:`moved_ids`): the bytes and row groups of
the single-process bounded ingest. Validate and screen then run their passes as tasks too
(:mod:`sluice.pipeline.dask_validate`, :mod:`sluice.pipeline.dask_screen`); the write and the
one commit run here. Concatenating keeps the later stages unchanged and bounded (one row group
in memory) at the cost of one more sequential copy of the work files.

A worker killed mid-task costs its task only: Dask runs it again elsewhere (up to
``distributed.scheduler.allowed-failures``); its files are replaced whole. When every worker is
gone for ``SLUICE_DASK_NO_WORKERS_SECONDS``, or the scheduler is lost, the run stops, nothing
committed. A partition that is not bounded runs in this process as without a cluster.

Memory here: per unit a few numbers; on a worker, one unit (at most ``batch_rows`` records, or
one Parquet batch), or one row group while concatenating.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sluice.config import LoadedSpec, find_spec
from sluice.core.errors import EXIT_INTERNAL, InputError, SluiceError
from sluice.core.failures import FAILURE_SCHEMA
from sluice.core.frame import ROW_ID, SOURCE_ROW, EngineChoice
from sluice.ingest import list_source_files
from sluice.ingest.file import typed_records
from sluice.ingest.pieces import (
    Plan,
    PlannedFile,
    _check_distinct,
    _conform,
    _parquet_file,
    _plan_file,
    _shifted,
    open_source,
    plan_partition,
    read_range,
    row_group_frames,
)
from sluice.ingest.text import BadRecord, _csv_exact, _csv_fast, _read_ndjson
from sluice.lineage import run_stopped
from sluice.pipeline.bounded_ingest import RowGroupWriter, ingest_facts
from sluice.pipeline.budget import batch_rows
from sluice.pipeline.cluster import (
    Address,
    ClusterError,
    check_shared_storage,
    connect,
    quiet_distributed,
    resolve_address,
)
from sluice.pipeline.commit import Orchestrator, stage_write
from sluice.pipeline.dask_backfill import hold_for_tests
from sluice.pipeline.dask_backfill import no_workers_seconds as _no_workers_seconds
from sluice.pipeline.idempotence import check_done, skipped_summary
from sluice.pipeline.local import screen_local, with_io_retries
from sluice.pipeline.reapply import with_decisions_reapplied
from sluice.pipeline.run import Run, log, timed
from sluice.pipeline.stages import _ingest, stage_screen, stage_validate
from sluice.pipeline.task_map import TaskFailed, Tasks
from sluice.progress import progress
from sluice.write import OutputError

PIECES_DIR = "ingest_pieces"
WORK_FILES = ("frame", "raw", "ingest_failures")
HOLD_UNIT_ENV = "SLUICE_TEST_HOLD_UNIT"
POLL_SECONDS = 0.2


class UnitMismatch(SluiceError):
    """A Parquet unit's task read another number of rows than its file's metadata says: the
    file changed while it was read, or a bug (exit 3)."""

    exit_code = EXIT_INTERNAL


@dataclass(frozen=True)
class Unit:
    """A part of a partition read by one task: pieces ``[first, last)`` of a text file, or row
    groups ``[first, last)`` of a Parquet file; ``start`` is the row number of its first record
    in its file, ``exact`` whether it is read by the exact CSV reader from its first piece."""

    index: int
    file: int
    first: int
    last: int
    start: int = 0
    exact: bool = False


def _portable(fn: Callable[..., Any], item: Any, *args: Any) -> Any:
    """On a worker: ``fn(item, *args)``, its :class:`SluiceError` as a :class:`TaskFailed`."""
    try:
        return fn(item, *args)
    except SluiceError as exc:
        raise TaskFailed(str(exc), exc.exit_code) from None


def _shared(value: Any) -> Any:
    """On a worker: ``value`` (see :meth:`DaskTasks.share`)."""
    return value


class DaskTasks(Tasks):
    """Runs each item as a task on a Dask cluster through ``client``."""

    def __init__(self, client: Any, address: Address, grace: float) -> None:
        self.client = client
        self.address = address
        self.grace = grace

    def map(self, fn: Callable[..., Any], items: Sequence[Any], *args: Any) -> list[Any]:
        """``fn(item, *args)`` for every item on the cluster, results in the items' order; the
        error of the first item (in order) whose task raised is raised here. A task
        whose worker dies runs again on another; every worker gone for ``grace`` seconds, or
        the scheduler lost, is a :class:`ClusterError`."""
        token = uuid.uuid4().hex[:12]
        name = getattr(fn, "__name__", "task")
        pending = {
            self.client.submit(
                _portable, fn, item, *args, key=f"sluice-{name}-{i}-{token}", pure=False
            ): i
            for i, item in enumerate(items)
        }
        results: dict[int, Any] = {}
        errors: dict[int, BaseException] = {}
        alone_since: float | None = None
        try:
            while pending:
                done = [f for f in pending if f.done()]
                for future in done:
                    i = pending.pop(future)
                    try:
                        results[i] = self._result(future)
                    except ClusterError:
                        raise
                    except Exception as exc:
                        errors[i] = exc
                    future.release()
                if done:
                    alone_since = None
                    continue
                alone_since = self._wait(alone_since)
        finally:
            for future in pending:
                with contextlib.suppress(Exception):
                    future.cancel()
        if errors:
            raise errors[min(errors)]
        return [results[i] for i in range(len(items))]

    def share(self, value: Any) -> Any:
        """``value`` as the result of a task of its own, for many tasks to take as an argument:
        shipped to the cluster once rather than with every task. Not ``Client.scatter``: the
        scheduler's active memory manager drops a scattered value's extra replicas within
        seconds, and a scattered value whose last worker dies is lost with no task to compute it
        again, so every task needing it is cancelled; a task's result is computed again."""
        token = uuid.uuid4().hex[:12]
        return self.client.submit(_shared, value, key=f"sluice-shared-{token}", pure=False)

    def _wait(self, alone_since: float | None) -> float | None:
        try:
            workers = len(self.client.nthreads())
        except Exception as exc:
            raise self._lost(f"the scheduler was lost ({type(exc).__name__}: {exc})") from None
        if workers:
            time.sleep(POLL_SECONDS)
            return None
        alone_since = alone_since or time.monotonic()
        if time.monotonic() - alone_since >= self.grace:
            raise self._lost(f"every worker is gone (none for {self.grace:g} s)")
        time.sleep(POLL_SECONDS)
        return alone_since

    def _result(self, future: Any) -> Any:
        try:
            return future.result()
        except SluiceError:
            raise
        except Exception as exc:
            kind = type(exc).__name__
            if kind == "KilledWorker":
                raise ClusterError(
                    f"every worker that ran one of this partition's tasks died ({exc}); Dask "
                    "gave up after distributed.scheduler.allowed-failures attempts. Nothing was "
                    "committed: look at the workers' memory and logs, then run again"
                ) from None
            if kind in ("CancelledError", "FutureCancelledError"):
                raise self._lost("a task was cancelled (the scheduler was lost)") from None
            raise

    def _lost(self, why: str) -> ClusterError:
        return ClusterError(
            f"the Dask cluster at {self.address.address}: {why}; nothing of this partition was "
            "committed: run it again"
        )


def plan_units(plan: Plan) -> list[Unit]:
    """The units of a planned partition, in file order then record order: one per piece of
    a text file, one per row group of a Parquet file (with its first row from the metadata)."""
    units: list[Unit] = []
    for f, planned in enumerate(plan.files):
        if planned.scan is not None:
            for i in range(len(planned.scan.pieces)):
                units.append(Unit(len(units), f, i, i + 1))
            continue
        with open_source(planned.path) as fh:
            meta = _parquet_file(fh, planned.path).metadata
            start = 0
            for g in range(meta.num_row_groups):
                units.append(Unit(len(units), f, g, g + 1, start=start))
                start += meta.row_group(g).num_rows
    return units


def _text_records(
    loaded: LoadedSpec, planned: PlannedFile, unit: Unit
) -> Iterator[tuple[pl.DataFrame, list[BadRecord], bool]]:
    """A text unit's pieces read as :func:`sluice.ingest.pieces.read_pieces` reads them, each
    with whether the exact reader read it."""
    spec = loaded.spec
    fmt = spec.source.format
    path = planned.path
    scan = planned.scan
    assert scan is not None
    with open_source(path) as fh:
        head = read_range(fh, 0, scan.header_end) if fmt == "csv" else b""
        exact = unit.exact or not scan.valid or scan.ragged
        for i in range(unit.first, unit.last):
            start, end = scan.pieces[i]
            data = read_range(fh, start, end)
            if fmt == "ndjson":
                read, bad = _read_ndjson(
                    data, path, keys=planned.keys, at_start=i == 0, first_line=scan.lines[i] + 1
                )
                yield read, bad, False
                continue
            data = data if i == 0 else head + data
            shift = 0 if i == 0 else scan.lines[i] - scan.header_lines
            fast = None if exact else _csv_fast(data, spec.source.csv, path)
            if fast is not None:
                yield fast, [], False
                continue
            exact = True
            try:
                read, bad = _csv_exact(data, spec.source.csv, path)
            except InputError as exc:
                raise _shifted(exc, path, shift) from None
            yield read, bad, True


def _parquet_records(
    planned: PlannedFile, unit: Unit, rows: int
) -> Iterator[tuple[pl.DataFrame, list[BadRecord], bool]]:
    """A Parquet unit's row groups in batches of at most ``rows`` rows, each checked against
    its metadata, as :func:`sluice.ingest.pieces.read_pieces` reads them."""
    path = planned.path
    with open_source(path) as fh:
        source = _parquet_file(fh, path)
        for frame in row_group_frames(source, path, range(unit.first, unit.last), rows):
            yield frame, [], False


def _unit_records(
    loaded: LoadedSpec, plan: Plan, unit: Unit
) -> Iterator[tuple[pl.DataFrame, list[BadRecord], bool]]:
    planned = plan.files[unit.file]
    if planned.scan is None:
        return _parquet_records(planned, unit, plan.rows)
    return _text_records(loaded, planned, unit)


def _hold_for_tests(unit: Unit) -> None:
    """A test hook: the first attempt at unit ``SLUICE_TEST_HOLD_UNIT`` writes its process id
    to ``SLUICE_TEST_HOLD_FILE`` and waits (``SLUICE_TEST_HOLD_SECONDS``), so that a test can
    kill its worker mid-task; later attempts (the file exists) go on."""
    hold_for_tests(os.environ.get(HOLD_UNIT_ENV) == str(unit.index))


class _UnitWriter(RowGroupWriter):
    """A unit's work file: row groups as :class:`RowGroupWriter` writes them, compressed with
    lz4 (fast to write and to read back; the concatenation compresses the partition's files)."""

    def __init__(self, path: Path, schema: pl.Schema, rows: int) -> None:
        self.path = path
        self.rows = max(1, rows)
        self.schema = pl.DataFrame(schema=schema).to_arrow().schema
        try:
            self.writer = pq.ParquetWriter(path, self.schema, compression="lz4")
        except (OSError, pa.ArrowException) as exc:
            raise OutputError(f"cannot write {path}: {exc}") from None
        self.written = 0


def unit_files(folder: Path, unit: Unit) -> dict[str, Path]:
    """Where a unit's typed rows, raw text and ingest failures go."""
    return {name: folder / f"{unit.index:08d}.{name}.parquet" for name in WORK_FILES}


def read_unit(unit: Unit, loaded: LoadedSpec, plan: Plan, folder: str) -> dict[str, int]:
    """On a worker: read, type and conform a unit's records and write its three files (each
    under a name unique to this attempt, then renamed into place); its rows, failures, and
    whether the exact CSV reader read it (``exact``, 0 or 1). A text unit's row ids and
    ``_source_row`` count from its first record (``unit.start`` is 0): the concatenation moves
    them to the unit's place in its file."""
    planned = plan.files[unit.file]
    attempt = uuid.uuid4().hex[:12]
    final = unit_files(Path(folder), unit)
    temp = {name: path.with_name(f".{path.name}.{attempt}") for name, path in final.items()}
    schemas = {
        "frame": plan.frame_schema,
        "raw": plan.raw_schema,
        "ingest_failures": pl.Schema(FAILURE_SCHEMA),
    }
    rows = failures = exact = 0
    try:
        with contextlib.ExitStack() as stack:
            writers = {
                name: stack.enter_context(_UnitWriter(temp[name], schemas[name], plan.rows))
                for name in WORK_FILES
            }
            start = unit.start
            for read, bad, was_exact in _unit_records(loaded, plan, unit):
                exact = exact or int(was_exact)
                got = typed_records(read, bad, planned.sha256, planned.path, loaded, start=start)
                frame, raw, failed = _conform(got, plan, loaded)
                start += read.height
                writers["frame"].write(frame)
                writers["raw"].write(raw)
                writers["ingest_failures"].write(failed)
                rows += frame.height
                failures += failed.height
        _hold_for_tests(unit)
        for name in WORK_FILES:
            os.replace(temp[name], final[name])
    finally:
        for path in temp.values():
            with contextlib.suppress(OSError):
                path.unlink()
    return {"rows": rows, "failures": failures, "exact": exact}


def _reruns(plan: Plan, units: list[Unit], got: list[dict[str, int]]) -> list[Unit]:
    """The text units the fast CSV reader read after an earlier piece of their file needed the
    exact one: the single-process ingest reads them with the exact reader, so they are read
    again with it."""
    again: list[Unit] = []
    fell: dict[int, bool] = {}
    for unit, facts in zip(units, got, strict=True):
        if plan.files[unit.file].scan is None:
            continue
        if fell.get(unit.file) and not facts["exact"]:
            again.append(replace(unit, exact=True))
        fell[unit.file] = fell.get(unit.file, False) or bool(facts["exact"])
    return again


def _placed(plan: Plan, units: list[Unit], got: list[dict[str, int]]) -> list[Unit]:
    """The units with the row number of their first record in their file: text units from
    the rows of the units before them, Parquet units from the metadata (checked against the
    rows read). Sets each planned file's rows."""
    placed: list[Unit] = []
    for planned in plan.files:
        planned.rows = 0
    for i, (unit, facts) in enumerate(zip(units, got, strict=True)):
        planned = plan.files[unit.file]
        if planned.scan is None:
            following = units[i + 1] if i + 1 < len(units) else None
            if following is not None and following.file == unit.file:
                want = following.start - unit.start
            else:
                with open_source(planned.path) as fh:
                    want = _parquet_file(fh, planned.path).metadata.num_rows - unit.start
            if facts["rows"] != want:
                raise UnitMismatch(
                    f"{plan.where}: {planned.path}: a task read {facts['rows']} rows from unit "
                    f"{unit.index} where the file's metadata says {want}; the partition is not "
                    "screened (run it without --dask)"
                )
            placed.append(unit)
        else:
            placed.append(replace(unit, start=planned.rows))
        planned.rows += facts["rows"]
    return placed


_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))
_UNMIX = tuple(np.uint64(pow(int(m), -1, 2**64)) for m in _MIX)


def _unshift(z: npt.NDArray[np.uint64], bits: int) -> npt.NDArray[np.uint64]:
    """The ``x`` with ``x ^ (x >> bits) == z``."""
    x = z.copy()
    for _ in range(64 // bits):
        x = z ^ (x >> np.uint64(bits))
    return x


def moved_ids(ids: npt.NDArray[np.uint64], by: int) -> npt.NDArray[np.uint64]:
    """The ids of the rows ``by`` rows after those of ``ids`` in the same file: each id of
    :func:`sluice.core.frame.row_ids` taken back through splitmix64 (a bijection: xor-shifts and
    multiplications by odd numbers, each undone), moved, and mixed again."""
    with np.errstate(over="ignore"):
        z = _unshift(ids.astype(np.uint64, copy=False), 31) * _UNMIX[1]
        z = _unshift(z, 27) * _UNMIX[0]
        z = _unshift(z, 30) + np.uint64(by % 2**64)
        z = (z ^ (z >> np.uint64(30))) * _MIX[0]
        z = (z ^ (z >> np.uint64(27))) * _MIX[1]
        out: npt.NDArray[np.uint64] = z ^ (z >> np.uint64(31))
        return out


def _moved(table: pa.Table, unit: Unit) -> pa.Table:
    """A text unit's rows (read with row ids and ``_source_row`` from 0) at its place in its
    file: each ``_row_id`` that of the same record ``unit.start`` records on."""
    if not unit.start or ROW_ID not in table.column_names:
        return table
    at = table.column_names.index(ROW_ID)
    column = table.column(at).combine_chunks()
    ids = column.fill_null(0).to_numpy(zero_copy_only=False)
    nulls = column.is_null().to_numpy(zero_copy_only=False)
    moved = pa.array(moved_ids(ids, unit.start), type=pa.uint64(), mask=nulls)
    table = table.set_column(at, table.field(at), moved.cast(table.field(at).type))
    if SOURCE_ROW in table.column_names:
        at = table.column_names.index(SOURCE_ROW)
        shifted = pc.add(table.column(at), pa.scalar(unit.start, table.field(at).type))
        table = table.set_column(at, table.field(at), shifted)
    return table


@dataclass(frozen=True)
class Joined:
    """What a task joining the units' files into one work file needs: each unit's place (its
    file is a text file: its rows are moved to ``unit.start``), the file's schema and rows per
    row group."""

    name: str
    units: tuple[Unit, ...]
    text: tuple[bool, ...]
    schema: pl.Schema
    rows: int


def join_units(joined: Joined, folder: str, work: str) -> int:
    """On a worker: the units' files of one kind (``joined.name``) put together in order into
    ``work/<name>.parquet``, row group by row group, each text unit's rows moved to its place in
    its file (written under a name of this attempt, renamed into place; the units' files are
    kept); its rows."""
    name = joined.name
    target = Path(work) / f"{name}.parquet"
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}")
    try:
        with RowGroupWriter(temp, joined.schema, joined.rows, scratch=name == "raw") as out:
            for unit, text in zip(joined.units, joined.text, strict=True):
                source = pq.ParquetFile(unit_files(Path(folder), unit)[name])
                for g in range(source.num_row_groups):
                    table = source.read_row_group(g)
                    if table.num_rows:
                        table = _moved(table, unit) if text else table
                        out.writer.write_table(table.cast(out.schema), row_group_size=out.rows)
                        out.written += table.num_rows
                source.close()
        os.replace(temp, target)
    finally:
        with contextlib.suppress(OSError):
            temp.unlink()
    return out.written


def _concatenate(folder: Path, units: list[Unit], run: Run, plan: Plan, tasks: Tasks) -> None:
    """The units' files put together into the run's three ingest work files, one task each
    (:func:`join_units`), then removed."""
    schemas = {
        "frame": plan.frame_schema,
        "raw": plan.raw_schema,
        "ingest_failures": pl.Schema(FAILURE_SCHEMA),
    }
    text = tuple(plan.files[u.file].scan is not None for u in units)
    jobs = [Joined(name, tuple(units), text, schemas[name], plan.rows) for name in WORK_FILES]
    tasks.map(join_units, jobs, str(folder), str(run.work))
    for unit in units:
        for path in unit_files(folder, unit).values():
            path.unlink()


def ingest_split(run: Run, tasks: Tasks) -> dict[str, Any]:
    """The bounded ingest of ``run``'s partition with its units read by ``tasks``: the work
    files and stage facts of :func:`sluice.pipeline.bounded_ingest.ingest_bounded`."""
    loaded = run.loaded
    paths = list_source_files(loaded, run.partition)
    rows = batch_rows(len(loaded.spec.columns) + 3)
    t0 = time.perf_counter()
    plan = plan_partition(
        loaded, run.partition, paths, rows, lambda files: tasks.map(_plan_file, files, loaded, rows)
    )
    t1 = time.perf_counter()
    units = plan_units(plan)
    folder = run.work / PIECES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    shared = tasks.share(plan), tasks.share(loaded)
    got = tasks.map(read_unit, units, shared[1], shared[0], str(folder))
    again = _reruns(plan, units, got)
    for unit, facts in zip(
        again, tasks.map(read_unit, again, shared[1], shared[0], str(folder)), strict=True
    ):
        got[unit.index] = facts
    t2 = time.perf_counter()
    units = _placed(plan, units, got)
    _check_distinct(plan)
    _concatenate(folder, units, run, plan, tasks)
    log.info(
        "%s: %d units of %d rows at most (%d read again by the exact reader): plan %.1f s, "
        "read %.1f s, concatenate %.1f s",
        plan.where,
        len(units),
        rows,
        len(again),
        t1 - t0,
        t2 - t1,
        time.perf_counter() - t2,
    )
    with contextlib.suppress(OSError):
        folder.rmdir()
    return ingest_facts(plan, sum(f["rows"] for f in got), sum(f["failures"] for f in got))


class _Cluster:
    """A checked connection to the cluster, and whether the run used it."""

    def __init__(self, address: Address, loaded: LoadedSpec) -> None:
        self.address = address
        self.runner: DaskTasks | None = None
        with quiet_distributed():
            self.client: Any = connect(address)
            try:
                check_shared_storage(self.client, loaded)
            except BaseException:
                self.close()
                raise

    def tasks(self, run: Run) -> DaskTasks:
        """The cluster as the task runner of ``run``'s ingest, validate and screen."""
        log.info(
            "%s %s: ingest, validate and screen split into tasks on the Dask cluster at %s "
            "(from %s; %d workers)",
            run.loaded.name,
            run.partition,
            self.address.address,
            self.address.source,
            len(self.client.nthreads()),
        )
        self.runner = DaskTasks(self.client, self.address, _no_workers_seconds())
        return self.runner

    def close(self) -> None:
        """Close the connection (nothing runs on the cluster after the screen)."""
        with contextlib.suppress(Exception):
            self.client.close(timeout=5)


def _split_stages(run: Run, tasks: Tasks) -> None:
    """The validate and screen stages of a bounded run with their passes run by ``tasks``."""
    from sluice.pipeline.bounded_screen import screen_bounded
    from sluice.pipeline.bounded_validate import validate_bounded
    from sluice.pipeline.dask_screen import split_screen
    from sluice.pipeline.dask_validate import split_validate

    name, part = run.loaded.name, str(run.partition)
    progress(name, part, "validate")
    timed(lambda r: validate_bounded(r, split_validate(tasks)), "validate")(run)
    progress(name, part, "screen")
    timed(lambda r: screen_bounded(r, None, split_screen(tasks)), "screen")(run)


def screen_partition(
    dataset: str,
    partition: str | dt.date,
    engine: EngineChoice | None = None,
    *,
    force: bool = False,
    dask: str | None = None,
) -> dict[str, Any]:
    """Screen one partition: its bounded ingest split into tasks on the Dask cluster at
    ``dask`` (else ``SLUICE_DASK_ADDRESS``, else the spec's ``execution.dask``), the later
    stages and the one commit here; without an address, :func:`screen_local`. A cluster that
    cannot be used stops the run before any data moves; a partition that is not bounded is
    screened in this process, which says so. Returns the run summary, as :func:`screen_local`
    does."""
    loaded = find_spec(dataset)
    address = resolve_address(dask, loaded)
    if address is None:
        return screen_local(dataset, partition, engine, force=force)
    started = dt.datetime.now(dt.UTC)
    run = Run.prepare(dataset, partition, engine=engine)
    name, part = run.loaded.name, str(run.partition)
    if not force:
        verdict = check_done(run.loaded, run.partition, suite_sha256=run.suite.sha256)
        done = skipped_summary(verdict)
        if done is not None:
            log.info("%s %s: skipped: %s (%s)", name, part, verdict.reason, verdict.manifest)
            return done
    cluster = _Cluster(address, run.loaded)
    stage = timed(
        lambda r: _ingest(r, bounded=lambda b: ingest_split(b, cluster.tasks(b))), "ingest"
    )
    try:
        try:
            with quiet_distributed():
                progress(name, part, "ingest")
                with_io_retries(lambda: stage(run), f"{name} {part}: ingest")
                if cluster.runner is not None:
                    _split_stages(run, cluster.runner)
        finally:
            cluster.close()
        if cluster.runner is None:
            log.warning(
                "%s %s: not screened in bounded batches, so not split on the Dask cluster at "
                "%s: screened in this process (SLUICE_BOUNDED=1 splits it)",
                name,
                part,
                address.address,
            )
            progress(name, part, "validate")
            stage_validate(run)
            progress(name, part, "screen")
            stage_screen(run)
        progress(name, part, "write")
        orchestrator: Orchestrator = "dask" if cluster.runner is not None else "in-process"
        summary = with_io_retries(
            lambda: stage_write(run, started, orchestrator), f"{name} {part}: write"
        )
        return with_decisions_reapplied(run.loaded, summary)
    except BaseException as exc:
        run.discard()
        run_stopped(run.loaded.name, run.run_id, run.partition, exc)
        raise


__all__ = [
    "PIECES_DIR",
    "DaskTasks",
    "Tasks",
    "Unit",
    "UnitMismatch",
    "ingest_split",
    "join_units",
    "plan_units",
    "read_unit",
    "screen_partition",
    "unit_files",
]
