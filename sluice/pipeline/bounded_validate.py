"""The validate stage over ``frame.parquet`` in row batches, with the in-memory stage's results.

:func:`check_partition` gives what :func:`sluice.screening.check_rows` gives on the whole frame
(the same verdicts, the same failures in the same order, the same keys facts) while reading
the work files in batches of at most ``batch_rows`` rows and writing
``validation_failures.parquet`` as a stream of row groups. How each suite entry runs is
decided in :mod:`expectations.batched`:

- row-level entries and row counts run per batch; their states merge by addition; the mean
  and sum of a float column merge as exact sums (:class:`expectations.exact.ExactSum`);
- schema checks are judged from the file's schema;
- column and compound uniqueness, and the dataset's keys check, write the rows they consider
  (the key values, ``_row_id``, position and provenance) into hash buckets on disk under the
  work folder (``validate_spill/``, :class:`sluice.core.spill.PartSpill`; every
  occurrence of a value lands in one bucket; one bucket per :data:`BUCKET_BATCHES` batches of
  rows, so the number of buckets grows with the partition and a bucket does not), then judge
  each bucket alone with the same code as the whole frame, so ``keep_first``, ``keep_none``
  and ``duplicate_of`` are the same; the buckets' failures go back into position order
  through spilled ranges of ``batch_rows`` positions, each sorted alone;
- every other entry (aggregates such as min, max, stdev, median, quantiles, distinct values,
  the most common value; increasing/decreasing and z-scores; sluice's group rules; whatever GX
  runs) runs with the ordinary engine on a projection of only the columns it reads, so it is
  exact at the cost of those columns of the partition in memory, one entry at a time. A
  table-level entry that only GX runs would need every column at once: it is refused.

What grows with the partition's rows: the projected columns of one such entry at a time (8
bytes a row for a number and 8 for its ``_row_id``, the text for a string column) and that
entry's failures. What grows with the failures: the ``_row_id`` of each row a failure names as
``duplicate_of`` (and its provenance), the rows of one repeated value (all in one bucket), and
the parse failures while there are at most ``batch_rows`` of them (more are bucketed by
``_row_id`` beside the rule failures). Everything else is a batch or a bucket.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from expectations.batched import Entry, RowState, classify, finish, run_batch
from expectations.engine import validate as run_suite
from expectations.exact import ExactSum
from expectations.failures import entry_verdict, failures_from_outcomes
from expectations.polars_engine import run_polars
from expectations.polars_engine.row import _comparable
from expectations.polars_engine.row_condition import condition_columns
from expectations.results import ExpectationOutcome, Suite
from sluice.core.errors import ConfigError
from sluice.core.failures import FAILURE_SCHEMA, concat_failures
from sluice.core.frame import PROVENANCE, ROW_ID, SOURCE_FILE, SOURCE_ROW, EngineChoice
from sluice.core.spill import PartSpill, RowStream, part_count, read_stream, writing
from sluice.decide import drop_shadowed, key_duplicates, trace_duplicates
from sluice.pipeline.budget import batch_rows
from sluice.pipeline.run import Run
from sluice.screening import key_check
from sluice.verdict import verdict_state, why_not_run
from sluice.write import write_parquet

POS = "__sluice_pos"
SPILL_DIR = "validate_spill"
BUCKET_BATCHES = 8
"""Rows of one hash bucket, in batches: a bucket holds only the key columns, ``_row_id`` and
the position (a tenth of a batch's cells or less for a 20-column partition)."""


@dataclass(frozen=True)
class BoundedChecked:
    """What the bounded validate stage gave: the stage's facts, as the in-memory stage's, and
    the hash buckets of its uniqueness and keys checks (how many, the rows of the largest)."""

    verdicts: list[dict[str, Any]]
    critical_failed: bool
    keys: dict[str, Any]
    failures: int
    buckets: int = 1
    largest_bucket: int = 0


def frame_batches(
    path: Path,
    size: int,
    columns: Sequence[str] | None = None,
    row_groups: Sequence[int] | None = None,
) -> Iterator[pl.DataFrame]:
    """The rows of a work file in order (of ``row_groups`` only, when given), as polars frames
    of at most ``size`` rows, typed as ``polars.read_parquet`` types the whole file.

    ``pre_buffer`` is off: with it, pyarrow keeps every row group it read until the file is
    closed, so memory grows with the rows read (apache/arrow#39808)."""
    schema = pl.read_parquet_schema(path)
    if columns is not None:
        schema = {c: schema[c] for c in columns}
    parquet = pq.ParquetFile(path, pre_buffer=False)
    groups = None if row_groups is None else list(row_groups)
    for batch in parquet.iter_batches(batch_size=size, row_groups=groups, columns=columns):
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        yield frame.cast(schema)  # type: ignore[arg-type]


def _null_counts(path: Path, columns: Sequence[str], size: int) -> dict[str, int]:
    """Each column's nulls in the whole file: from the row groups' statistics, or a pass."""
    meta = pq.ParquetFile(path).metadata
    names = [meta.schema.column(j).path for j in range(meta.num_columns)]
    counts = dict.fromkeys(columns, 0)
    try:
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for j, name in enumerate(names):
                if name in counts:
                    stats = group.column(j).statistics
                    if stats is None or not stats.has_null_count:
                        raise LookupError(name)
                    counts[name] += stats.null_count
        return counts
    except LookupError:
        pass
    counts = dict.fromkeys(columns, 0)
    for frame in frame_batches(path, size, list(columns)):
        for name, n in frame.null_count().row(0, named=True).items():
            counts[name] += int(n)
    return counts


def _bucket_of(keys: pl.DataFrame, buckets: int) -> pl.Series:
    """Each row's bucket from its key values, such that values polars calls equal (0.0 and
    -0.0, NaNs) share one."""
    exprs = []
    for name, dtype in keys.schema.items():
        col = pl.col(name)
        if dtype.is_float():
            col = pl.when(col.is_nan()).then(float("nan")).otherwise(col + 0.0)
        exprs.append(col)
    hashed = keys.select(pl.struct(exprs).hash(seed=16).alias("h")).get_column("h")
    return (hashed % buckets).cast(pl.Int64)


def _read_columns(item: Entry, data_columns: Sequence[str]) -> list[str] | None:
    """The data columns an entry reads (its row condition's too), or None for every one."""
    wanted = set(item.entry.read_columns)
    condition = item.entry.kwargs.get("row_condition")
    if condition:
        names = condition_columns(condition)
        if names is None:
            return None
        wanted |= names
    if not item.entry.read_columns:
        return None
    return [c for c in data_columns if c in wanted]


def _batch_columns(
    items: Sequence[Entry], data_columns: Sequence[str], keys: Sequence[str]
) -> list[str] | None:
    """The columns the batch pass reads: ``_row_id``, the provenance when the keys check runs,
    and what the batched entries read; None (every column) when one reads columns it does not
    name."""
    wanted: set[str] = set(keys)
    for item in items:
        if item.error is not None or item.kind not in ("row", "count", "sum", "unique"):
            continue
        if item.kind == "count":
            condition = item.entry.kwargs.get("row_condition")
            names: set[str] | list[str] | None = (
                condition_columns(condition) if condition else set()
            )
        else:
            names = _read_columns(item, data_columns)
        if names is None:
            return None
        wanted.update(names)
    provenance = [ROW_ID, SOURCE_FILE, SOURCE_ROW] if keys else [ROW_ID]
    return [*provenance, *(c for c in data_columns if c in wanted)]


def _refuse_whole(item: Entry, suite: Suite) -> ConfigError:
    return ConfigError(
        f"{item.entry.type} needs every column of the partition at once, which a bounded run "
        "does not hold (it runs with GX here); run this partition in memory (SLUICE_BOUNDED=0) "
        "or use a check the polars engine compiles",
        file=suite.path if suite.path is not None else "<suite>",
        line=item.entry.line,
        key=f"expectations[{item.entry.index}]",
        found=item.entry.type,
        allowed="entries that name their columns, or table-level checks the polars engine runs",
    )


@dataclass(frozen=True)
class Layout:
    """What every part of one bounded validate stage knows of its partition and suite (small
    and picklable: a task on a Dask worker gets it whole)."""

    frame_path: Path
    suite: Suite
    engine: EngineChoice
    keys: tuple[str, ...]
    duplicates: str
    by_suite: int | None
    key_check_runs: bool
    nulls: dict[str, int]
    data_columns: tuple[str, ...]
    n_rows: int
    size: int
    buckets: int
    spill_dir: Path

    def items(self) -> list[Entry]:
        """The suite's entries compiled and classified for the partition's schema and nulls
        (the same in every process: compiling is deterministic)."""
        schema = pl.read_parquet_schema(self.frame_path)
        data_schema = pl.Schema({c: schema[c] for c in self.data_columns})
        return classify(self.suite.entries, data_schema, self.nulls, self.engine)

    def batch_columns(self, items: Sequence[Entry]) -> list[str] | None:
        """The columns the batch pass reads."""
        keys = list(self.keys) if self.key_check_runs else []
        return _batch_columns(items, list(self.data_columns), keys)

    def unique(self, items: Sequence[Entry]) -> list[Entry]:
        """The uniqueness entries judged through hash buckets."""
        return [item for item in items if item.kind == "unique" and item.error is None]


@dataclass
class Passed:
    """What the batch pass and the hash buckets gave, before the verdicts: merged states and
    exact sums, failures counted per entry, each entry's row failures in position order, each
    uniqueness entry's state from its buckets and its failures in position order, the keys
    check's failures in position order, and the rows of the largest bucket."""

    states: dict[int, RowState]
    sums: dict[int, ExactSum]
    marked: dict[int, int]
    entry_spills: dict[int, RowStream]
    unique: dict[int, tuple[RowState, Iterator[pl.DataFrame]]]
    keys: Iterator[pl.DataFrame]
    largest: int


class BucketSink(Protocol):
    """Where the rows of a uniqueness entry or the keys check go, each with its hash bucket."""

    def write(self, frame: pl.DataFrame, part: pl.Series) -> None:
        """Append ``frame``'s rows, row ``i`` to bucket ``part[i]``."""


class FailureSink(Protocol):
    """Where an entry's row failures go, in position order."""

    def write(self, table: pa.Table) -> None:
        """Append ``table``'s rows."""


@dataclass
class PassFacts:
    """What the batch pass over some rows counted: states, exact sums and failures per entry
    (merged across parts by addition, in position order)."""

    states: dict[int, RowState]
    sums: dict[int, ExactSum]
    marked: dict[int, int]

    def merge(self, other: PassFacts) -> PassFacts:
        """Both parts' facts, this one's rows first."""
        states = dict(self.states)
        for i, state in other.states.items():
            states[i] = states[i].merge(state) if i in states else state
        sums = dict(self.sums)
        for i, exact in other.sums.items():
            sums[i] = sums[i].merge(exact) if i in sums else exact
        marked = dict(self.marked)
        for i, n in other.marked.items():
            marked[i] = marked.get(i, 0) + n
        return PassFacts(states, sums, marked)


def empty_facts(items: Sequence[Entry]) -> PassFacts:
    """The facts of no rows."""
    return PassFacts(
        {item.entry.index: RowState() for item in items if item.kind != "whole"},
        {item.entry.index: ExactSum() for item in items if item.kind == "sum"},
        {item.entry.index: 0 for item in items},
    )


def batch_pass(
    layout: Layout,
    items: Sequence[Entry],
    batches: Iterator[tuple[int, pl.DataFrame]],
    *,
    entry_sinks: Mapping[int, FailureSink],
    unique_sinks: Mapping[int, BucketSink],
    key_sink: BucketSink | None,
) -> PassFacts:
    """Run the batched entries over ``batches`` (each with the position of its first row):
    row failures to ``entry_sinks``, the rows uniqueness considers and the keyed rows to their
    hash buckets; the states, sums and failure counts."""
    by_index = {item.entry.index: item for item in items}
    facts = empty_facts(items)
    states, sums, marked = facts.states, facts.sums, facts.marked
    data_columns = list(layout.data_columns)
    keys = list(layout.keys)
    for offset, batch in batches:
        data = batch.drop(SOURCE_FILE, SOURCE_ROW, strict=False)
        got = run_batch(data.drop(ROW_ID), items)
        for i, state in got.states.items():
            states[i] = states[i].merge(state)
        for i, exact in got.sums.items():
            sums[i] = sums[i].merge(exact)
        for i, rows in got.rows.items():
            if len(rows):
                outcome = ExpectationOutcome(
                    entry=by_index[i].entry, success=False, engine="polars", unexpected_rows=rows
                )
                part = failures_from_outcomes(data, [outcome]).failures
                marked[i] += part.height
                entry_sinks[i].write(part.to_arrow())
        for u in layout.unique(items):
            i = u.entry.index
            mask = got.considered.get(i)
            if mask is None or not mask.any():
                continue
            rows_of = batch.with_columns(
                pl.int_range(offset, offset + batch.height, dtype=pl.Int64).alias(POS)
            ).filter(pl.Series(mask))
            cols = _read_columns(u, data_columns) or data_columns
            assert u.ctx is not None
            key_frame = rows_of.select(
                [_comparable(u.ctx, c).alias(f"k{j}") for j, c in enumerate(u.entry.columns)]
            )
            unique_sinks[i].write(
                rows_of.select(ROW_ID, POS, *cols), _bucket_of(key_frame, layout.buckets)
            )
        if key_sink is not None:
            keyed = batch.with_columns(
                pl.int_range(offset, offset + batch.height, dtype=pl.Int64).alias(POS)
            ).filter(pl.all_horizontal(pl.col(k).is_not_null() for k in keys))
            key_sink.write(
                keyed.select(ROW_ID, SOURCE_FILE, SOURCE_ROW, POS, *keys),
                _bucket_of(keyed.select(keys), layout.buckets),
            )
    return facts


def with_positions(
    batches: Iterator[pl.DataFrame], offset: int = 0
) -> Iterator[tuple[int, pl.DataFrame]]:
    """Each batch with the position of its first row, counting from ``offset``."""
    for batch in batches:
        yield offset, batch
        offset += batch.height


Split = Callable[[Layout, list[Entry]], Passed]
"""A batch pass and bucket judging run elsewhere (as tasks on a cluster)."""


def check_partition(
    frame_path: Path,
    ingest_failures_path: Path,
    suite: Suite,
    out: Path,
    *,
    engine: EngineChoice = "auto",
    keys: Sequence[str] = (),
    duplicates: str = "keep_first",
    rows_per_batch: int,
    spill_dir: Path,
    bucket_rows: int | None = None,
    split: Split | None = None,
) -> BoundedChecked:
    """Run the suite and the keys check over ``frame_path`` in batches and write the failures
    to ``out``, as :func:`sluice.screening.check_rows` on the whole frame would.

    Uniqueness and keys use one hash bucket per ``bucket_rows`` rows of the partition
    (:data:`BUCKET_BATCHES` batches unless given). ``split`` runs the batch pass and the
    buckets instead of this process (:mod:`sluice.pipeline.dask_validate`)."""
    schema = pl.read_parquet_schema(frame_path)
    data_columns = [c for c in schema if c not in PROVENANCE]
    n_rows = pq.ParquetFile(frame_path).metadata.num_rows
    size = max(1, rows_per_batch)
    nulls = _null_counts(frame_path, data_columns, size)
    keys = list(keys)
    by_suite = key_check(suite, keys, duplicates) if keys else None
    layout = Layout(
        frame_path=frame_path,
        suite=suite,
        engine=engine,
        keys=tuple(keys),
        duplicates=duplicates,
        by_suite=by_suite,
        key_check_runs=bool(keys) and by_suite is None and all(k in schema for k in keys),
        nulls=nulls,
        data_columns=tuple(data_columns),
        n_rows=n_rows,
        size=size,
        buckets=part_count(n_rows, bucket_rows or size * BUCKET_BATCHES),
        spill_dir=spill_dir,
    )
    items = layout.items()
    for item in items:
        if item.kind == "whole" and _read_columns(item, data_columns) is None:
            raise _refuse_whole(item, suite)
    shutil.rmtree(spill_dir, ignore_errors=True)
    with writing(spill_dir):
        spill_dir.mkdir(parents=True)
    try:
        passed = (split or _pass_here)(layout, items)
        return _check(layout, items, passed, ingest_failures_path, out)
    finally:
        shutil.rmtree(spill_dir, ignore_errors=True)


def _pass_here(layout: Layout, items: list[Entry]) -> Passed:
    """The batch pass and the buckets in this process."""
    spill_dir, size, buckets = layout.spill_dir, layout.size, layout.buckets
    entry_spills = {
        item.entry.index: RowStream(spill_dir / f"entry_{item.entry.index}.arrow") for item in items
    }
    unique = layout.unique(items)
    unique_spills = {
        u.entry.index: PartSpill(spill_dir, f"u{u.entry.index}_b", buckets, size) for u in unique
    }
    key_spill_in = PartSpill(spill_dir, "keys_b", buckets, size)
    batches = frame_batches(layout.frame_path, size, layout.batch_columns(items))
    facts = batch_pass(
        layout,
        items,
        with_positions(batches),
        entry_sinks=entry_spills,
        unique_sinks=unique_spills,
        key_sink=key_spill_in if layout.key_check_runs else None,
    )
    judged: dict[int, tuple[RowState, Iterator[pl.DataFrame]]] = {}
    largest = 0
    for u in unique:
        i = u.entry.index
        judged[i] = _unique_buckets(
            u,
            unique_spills[i].read(),
            layout.nulls,
            spill_dir=spill_dir,
            n_rows=layout.n_rows,
            size=size,
        )
        largest = max(largest, unique_spills[i].largest)
    key_failed: Iterator[pl.DataFrame] = iter(())
    if layout.key_check_runs:
        key_failed = _key_buckets(
            key_spill_in.read(),
            list(layout.keys),
            layout.duplicates,
            spill_dir=spill_dir,
            n_rows=layout.n_rows,
            size=size,
        )
        largest = max(largest, key_spill_in.largest)
    return Passed(facts.states, facts.sums, facts.marked, entry_spills, judged, key_failed, largest)


def _check(
    layout: Layout,
    items: list[Entry],
    passed: Passed,
    ingest_failures_path: Path,
    out: Path,
) -> BoundedChecked:
    """The verdicts from the merged states, the ``whole`` entries on projections, and the
    failures of every entry then the keys check's, in position order, into ``out``."""
    spill_dir, size, suite = layout.spill_dir, layout.size, layout.suite
    data_columns = list(layout.data_columns)
    states, marked, entry_spills = passed.states, passed.marked, passed.entry_spills
    outcomes: dict[int, ExpectationOutcome] = {}
    verdicts: dict[int, dict[str, Any]] = {}
    for i, (found, failed) in passed.unique.items():
        states[i] = states[i].merge(found)
        for frame in failed:
            marked[i] += frame.height
            entry_spills[i].write(frame.to_arrow())
    for item in items:
        i = item.entry.index
        if item.kind != "whole":
            outcomes[i] = finish(item, states[i], passed.sums.get(i))
            continue
        reads = _read_columns(item, data_columns)
        projected = pl.read_parquet(
            layout.frame_path, columns=[ROW_ID, *(data_columns if reads is None else reads)]
        )
        done = run_suite(
            projected.drop(ROW_ID), replace(suite, entries=(item.entry,)), layout.engine
        )
        result = failures_from_outcomes(projected, done)
        del projected
        verdicts[i] = result.verdicts[0]
        for start in range(0, result.failures.height, size):
            entry_spills[i].write(result.failures.slice(start, size).to_arrow())
    for i, outcome in outcomes.items():
        verdicts[i] = entry_verdict(outcome, marked[i] if outcome.exception is None else 0)
    key_rows = 0
    key_spill = RowStream(spill_dir / "keys.arrow")
    for frame in passed.keys:
        key_rows += frame.height
        key_spill.write(frame.to_arrow())
    for spill in [*entry_spills.values(), key_spill]:
        spill.close()

    ordered = [entry_spills[i] for i in sorted(entry_spills)] + [key_spill]
    written = _write_failures(
        [s for s in ordered if s.rows],
        layout.frame_path,
        ingest_failures_path,
        out,
        spill_dir=spill_dir,
        size=size,
    )
    result_verdicts = [verdicts[i] for i in sorted(verdicts)]
    for v in result_verdicts:
        v.setdefault("state", verdict_state(v))
        if v["state"] == "could_not_run":
            v.setdefault("why", why_not_run(v))
    critical_failed = any(v["severity"] == "critical" and not v["success"] for v in result_verdicts)
    keys, by_suite = list(layout.keys), layout.by_suite
    enforced = (
        "none" if not keys else f"suite entry {by_suite}" if by_suite is not None else "keys check"
    )
    return BoundedChecked(
        verdicts=result_verdicts,
        critical_failed=critical_failed,
        keys={
            "columns": keys,
            "duplicates": layout.duplicates,
            "enforced_by": enforced,
            "duplicate_rows": key_rows,
        },
        failures=written,
        buckets=layout.buckets,
        largest_bucket=passed.largest,
    )


def _by_ranges(
    failed: Iterator[pl.DataFrame], spill_dir: Path, name: str, n_rows: int, size: int
) -> PartSpill:
    """Failures carrying :data:`POS`, from buckets in any order, spilled by ranges of ``size``
    positions."""
    ranges = PartSpill(spill_dir, name, part_count(n_rows, size), size)
    for frame in failed:
        ranges.write(frame, frame.get_column(POS) // size)
    return ranges


def _in_position_order(ranges: PartSpill) -> Iterator[pl.DataFrame]:
    """The failures of :func:`_by_ranges`, range by range, each sorted (stably) by position."""
    for _, part in ranges.read():
        yield part.sort(POS, maintain_order=True).drop(POS)


def judge_unique(
    item: Entry, parts: Iterator[tuple[int, pl.DataFrame]], nulls: Mapping[str, int]
) -> tuple[list[RowState], Iterator[pl.DataFrame]]:
    """Judge each bucket of a uniqueness entry alone: its failures (with :data:`POS`), bucket
    by bucket, lazily; the state found (a list of one, set once the failures are consumed)."""
    found = [RowState()]

    def judged() -> Iterator[pl.DataFrame]:
        unexpected = 0
        exception: str | None = None
        for _, rows in parts:
            data = rows.drop(POS)
            (outcome,) = run_polars(data.drop(ROW_ID), [item.entry], null_counts=nulls)
            if outcome.exception is not None:
                exception = exception or outcome.exception.split(": ", 1)[-1]
                continue
            got = outcome.unexpected_rows
            if got is None or not len(got):
                continue
            unexpected += len(got)
            marked = replace(outcome, success=False)
            failed = failures_from_outcomes(data, [marked]).failures
            yield failed.join(rows.select(ROW_ID, POS), on=ROW_ID, how="left")
        found[0] = RowState(unexpected=unexpected, exception=exception)

    return found, judged()


def judge_keys(
    parts: Iterator[tuple[int, pl.DataFrame]], keys: list[str], policy: str
) -> Iterator[pl.DataFrame]:
    """The keys check's failures (with :data:`POS`), bucket by bucket."""
    for _, rows in parts:
        failed = key_duplicates(rows.drop(POS), keys, policy)
        if not failed.is_empty():
            yield failed.join(rows.select(ROW_ID, POS), on=ROW_ID, how="left")


def _unique_buckets(
    item: Entry,
    parts: Iterator[tuple[int, pl.DataFrame]],
    nulls: Mapping[str, int],
    *,
    spill_dir: Path,
    n_rows: int,
    size: int,
) -> tuple[RowState, Iterator[pl.DataFrame]]:
    """Judge each bucket of a uniqueness entry alone; the unexpected rows found and the
    failures in position order."""
    found, judged = judge_unique(item, parts, nulls)
    ranges = _by_ranges(judged, spill_dir, f"u{item.entry.index}_f", n_rows, size)
    return found[0], _in_position_order(ranges)


def _key_buckets(
    parts: Iterator[tuple[int, pl.DataFrame]],
    keys: list[str],
    policy: str,
    *,
    spill_dir: Path,
    n_rows: int,
    size: int,
) -> Iterator[pl.DataFrame]:
    """The keys check judged bucket by bucket; its failures in position order."""
    ranges = _by_ranges(judge_keys(parts, keys, policy), spill_dir, "keys_f", n_rows, size)
    return _in_position_order(ranges)


DUP_ID = "__sluice_dup"


def _traced_firsts(files: Sequence[RowStream], frame_path: Path, size: int) -> pl.DataFrame:
    """``_row_id`` and provenance of every row a failure's details name as ``duplicate_of``.

    The rows are picked with Arrow's filter, which copies them: a polars filter of a string
    column keeps views into the whole batch's text, so the picked rows would hold every
    batch's file names."""
    wanted: list[pl.Series] = []
    hit = (
        pl.col("details").str.contains('"duplicate_of":', literal=True)
        & ~pl.col("details").str.contains('"duplicate_of_file":', literal=True)
    ).fill_null(False)
    for f in files:
        for chunk in read_stream(f.path, size):
            ids = chunk.filter(hit).select(
                pl.col("details")
                .str.json_path_match("$.duplicate_of")
                .cast(pl.UInt64, strict=False)
            )
            if ids.height:
                wanted.append(ids.to_series().drop_nulls().unique())
    columns = [ROW_ID, SOURCE_FILE, SOURCE_ROW]
    schema = pl.read_parquet_schema(frame_path)
    empty = pl.DataFrame(schema={c: schema[c] for c in columns})
    if not wanted:
        return empty
    known = pl.concat(wanted).unique().implode()
    found: list[pa.RecordBatch] = []
    parquet = pq.ParquetFile(frame_path, pre_buffer=False)
    for batch in parquet.iter_batches(batch_size=size, columns=columns):
        row_ids = pl.from_arrow(batch.column(ROW_ID))
        assert isinstance(row_ids, pl.Series)
        mask = row_ids.cast(pl.UInt64).is_in(known)
        if mask.any():
            found.append(batch.filter(pa.array(mask.to_numpy())))
    if not found:
        return empty
    picked = pl.from_arrow(pa.Table.from_batches(found))
    assert isinstance(picked, pl.DataFrame)
    return picked.cast(empty.schema)


SEQ = "__sluice_seq"


def _shadowed_dropped(
    files: Sequence[RowStream], ingest_failures_path: Path, *, spill_dir: Path, size: int
) -> Iterator[pl.DataFrame]:
    """The failures of ``files`` in order, without those on cells that did not parse.

    Up to ``size`` parse failures are held whole. More are never held: both sides are spilled
    in hash buckets of ``_row_id`` (a bucket of about ``size`` rows), each bucket's failures
    are judged against its parse failures, and what is kept goes back in order through ranges
    of ``size`` failures."""
    n_parse = pq.ParquetFile(ingest_failures_path).metadata.num_rows
    if n_parse <= size:
        parse = pl.read_parquet(ingest_failures_path, columns=[ROW_ID, "column"])
        for f in files:
            for chunk in read_stream(f.path, size):
                yield drop_shadowed(concat_failures([chunk]), parse)
        return
    total = sum(f.rows for f in files)
    parts = part_count(max(total, n_parse), size)

    def bucket(frame: pl.DataFrame) -> pl.Series:
        return frame.get_column(ROW_ID).cast(pl.UInt64).hash(seed=61) % parts

    failed = PartSpill(spill_dir, "vf_b", parts, size)
    seq = 0
    for f in files:
        for chunk in read_stream(f.path, size):
            rows = concat_failures([chunk]).with_columns(
                pl.int_range(seq, seq + chunk.height, dtype=pl.Int64).alias(SEQ)
            )
            failed.write(rows, bucket(rows))
            seq += chunk.height
    parsed = PartSpill(spill_dir, "pf_b", parts, size)
    for chunk in frame_batches(ingest_failures_path, size, [ROW_ID, "column"]):
        parsed.write(chunk, bucket(chunk))
    ranges = PartSpill(spill_dir, "vf_r", part_count(total, size), size)
    parse_parts = parsed.read()
    pending = next(parse_parts, None)
    for n, rows in failed.read():
        while pending is not None and pending[0] < n:
            pending = next(parse_parts, None)
        parse = pending[1] if pending is not None and pending[0] == n else rows.clear()
        kept = drop_shadowed(rows, parse.select(ROW_ID, "column"))
        ranges.write(kept, kept.get_column(SEQ) // size)
    for _ in parse_parts:
        pass
    for _, kept in ranges.read():
        yield kept.sort(SEQ).drop(SEQ)


def _write_failures(
    files: Sequence[RowStream],
    frame_path: Path,
    ingest_failures_path: Path,
    out: Path,
    *,
    spill_dir: Path,
    size: int,
) -> int:
    """Stream the failures of every entry, then the keys check's, into ``out``: rule failures
    on cells that did not parse dropped, every ``duplicate_of`` traced to its source row."""
    firsts = _traced_firsts(files, frame_path, size)
    writer: pq.ParquetWriter | None = None
    schema = concat_failures([]).to_arrow().schema
    written = 0
    try:
        for chunk in _shadowed_dropped(files, ingest_failures_path, spill_dir=spill_dir, size=size):
            kept = trace_duplicates(chunk, firsts)
            if kept.is_empty():
                continue
            with writing(out):
                if writer is None:
                    writer = pq.ParquetWriter(out, schema, compression="zstd")
                writer.write_table(pa.Table.from_batches(kept.to_arrow().to_batches(), schema))
            written += kept.height
    finally:
        if writer is not None:
            with writing(out):
                writer.close()
    if writer is None:
        write_parquet(pl.DataFrame(schema=FAILURE_SCHEMA), out)
    return written


def validate_bounded(run: Run, split: Split | None = None) -> dict[str, Any]:
    """The validate stage of a bounded run: the facts :func:`sluice.pipeline.stages._validate`
    records, from batches of ``frame.parquet`` (their pass and buckets run by ``split`` when
    given)."""
    spec = run.loaded.spec
    frame_path = run.file("frame.parquet")
    columns = len(pl.read_parquet_schema(frame_path))
    checked = check_partition(
        frame_path,
        run.file("ingest_failures.parquet"),
        run.suite,
        run.file("validation_failures.parquet"),
        engine=run.engine,
        keys=spec.keys,
        duplicates=spec.duplicates,
        rows_per_batch=batch_rows(columns),
        spill_dir=run.work / SPILL_DIR,
        split=split,
    )
    return {
        "engine": run.engine,
        "verdicts": checked.verdicts,
        "critical_failed": checked.critical_failed,
        "failures": checked.failures,
        "keys": checked.keys,
    }


__all__ = [
    "POS",
    "BoundedChecked",
    "Layout",
    "PassFacts",
    "Passed",
    "Split",
    "batch_pass",
    "check_partition",
    "empty_facts",
    "frame_batches",
    "judge_keys",
    "judge_unique",
    "validate_bounded",
    "with_positions",
]
