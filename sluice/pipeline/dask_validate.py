"""One bounded partition's validate stage split into tasks (issue 16, part b).

:func:`check_split` is the batch pass and the hash buckets of
:func:`sluice.pipeline.bounded_validate.check_partition` run by a task runner
(:class:`sluice.pipeline.task_map.Tasks` here, :class:`sluice.pipeline.dask_partition.DaskTasks`
on a cluster), with the single-process stage's verdicts and failures:

1. **pass**: one task per range of row groups of ``frame.parquet`` (about
   :data:`RANGE_BATCHES` batches each) runs the batched entries over its rows
   (:func:`~sluice.pipeline.bounded_validate.batch_pass`) and writes, under the stage's spill
   folder, each entry's row failures (``t<range>.e<entry>.arrow``) and the rows uniqueness
   considers and the keyed rows, each with its hash bucket, into one file per shuffle
   (``t<range>.u<entry>.s<shuffle>.arrow``, ``t<range>.k.s<shuffle>.arrow``: a shuffle holds a
   contiguous range of the stage's hash buckets, so every occurrence of a key value is in one
   shuffle). It returns its states, exact sums and failure counts.
2. **buckets**: one task per shuffle reads that shuffle's files of every range in range order
   (so in position order), spills them into its buckets and judges each bucket alone, as the
   single-process stage does; it writes the failures it found (with their position) to
   ``s<shuffle>.u<entry>.arrow`` and ``s<shuffle>.k.arrow`` and returns what it counted.
3. **here**: the ranges' facts are merged in range order; each entry's row failures are the
   ranges' files in order; the shuffles' failures go back into position order through the
   same spilled ranges as in one process; the ``whole`` entries, the verdicts and
   ``validation_failures.parquet`` are the single-process stage's code.

Every task writes under a folder of its own attempt and renames its files into place
(:func:`sluice.pipeline.task_map.attempt_folder`), so a task run again after its worker died
replaces its files whole; tasks read only the files of tasks that finished.

Memory of a task: one batch and its failures (pass), one bucket at a time (buckets). Here: one
batch of failures at a time, plus what the single-process stage holds for ``whole`` entries.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from expectations.batched import Entry, RowState
from sluice.core.spill import PartSpill, RowStream, read_stream
from sluice.pipeline.bounded_validate import (
    POS,
    Layout,
    Passed,
    PassFacts,
    Split,
    _by_ranges,
    _in_position_order,
    batch_pass,
    empty_facts,
    frame_batches,
    judge_keys,
    judge_unique,
    with_positions,
)
from sluice.pipeline.dask_backfill import hold_for_tests
from sluice.pipeline.task_map import Tasks, attempt_folder

RANGE_BATCHES = 4
"""Batches of rows per pass task."""
MAX_SHUFFLES = 32
"""Bucket tasks at most (each pass task writes a file per shuffle it has rows for)."""
HOLD_RANGE_ENV = "SLUICE_TEST_HOLD_RANGE"
"""A test hook: the first attempt at this pass task waits once its files are written (see
:func:`sluice.pipeline.dask_backfill.hold_for_tests`), so that a test can kill its worker."""
BUCKET = "__sluice_bucket"
SHUFFLE = "__sluice_shuffle"


@dataclass(frozen=True)
class RowRange:
    """Row groups ``[first, last)`` of ``frame.parquet``, whose first row is at ``offset``."""

    index: int
    first: int
    last: int
    offset: int
    rows: int


def row_ranges(path: Path, rows: int) -> list[RowRange]:
    """``path``'s row groups cut into ranges of about ``rows`` rows (at least one group each)."""
    meta = pq.ParquetFile(path).metadata
    ranges: list[RowRange] = []
    first = offset = held = 0
    for g in range(meta.num_row_groups):
        held += meta.row_group(g).num_rows
        if held >= rows or g == meta.num_row_groups - 1:
            ranges.append(RowRange(len(ranges), first, g + 1, offset, held))
            first, offset, held = g + 1, offset + held, 0
    return ranges


@dataclass(frozen=True)
class Shuffles:
    """The bucket tasks: ``count`` of them, each judging ``per`` consecutive hash buckets."""

    count: int
    per: int

    @classmethod
    def of(cls, buckets: int, most: int | None = None) -> Shuffles:
        """Shuffles for ``buckets`` hash buckets: at most ``most`` (:data:`MAX_SHUFFLES`),
        none empty."""
        per = math.ceil(max(1, buckets) / max(1, most or MAX_SHUFFLES))
        return cls(math.ceil(max(1, buckets) / per), per)


def _entry_file(folder: Path, task: int, entry: int) -> Path:
    return folder / f"t{task:06d}.e{entry}.arrow"


def _shuffle_file(folder: Path, task: int, what: str, shuffle: int) -> Path:
    return folder / f"t{task:06d}.{what}.s{shuffle:04d}.arrow"


def _judged_file(folder: Path, shuffle: int, what: str) -> Path:
    return folder / f"s{shuffle:04d}.{what}.arrow"


class _Shuffled:
    """A bucket sink writing each row, with its bucket, to its shuffle's file."""

    def __init__(self, folder: Path, task: int, what: str, shuffles: Shuffles) -> None:
        self.streams = [
            RowStream(_shuffle_file(folder, task, what, s)) for s in range(shuffles.count)
        ]
        self.per = shuffles.per

    def write(self, frame: pl.DataFrame, part: pl.Series) -> None:
        """Append ``frame``'s rows, row ``i`` (of bucket ``part[i]``) to its shuffle, in
        order."""
        if frame.is_empty():
            return
        tagged = frame.with_columns(
            part.cast(pl.Int64).alias(BUCKET), (part.cast(pl.Int64) // self.per).alias(SHUFFLE)
        )
        for (s,), rows in tagged.partition_by(SHUFFLE, maintain_order=True, as_dict=True).items():
            self.streams[int(s)].write(rows.drop(SHUFFLE).to_arrow())

    def close(self) -> None:
        """Finish every file."""
        for stream in self.streams:
            stream.close()


def validate_range(task: RowRange, layout: Layout, shuffles: Shuffles) -> PassFacts:
    """On a worker: the batch pass over ``task``'s row groups, its files written (see the
    module's docstring); its states, exact sums and failure counts."""
    items = layout.items()
    unique = layout.unique(items)
    folder = layout.spill_dir
    with attempt_folder(folder, f"t{task.index:06d}") as temp:
        entries = {
            item.entry.index: RowStream(_entry_file(temp, task.index, item.entry.index))
            for item in items
        }
        uniques = {
            u.entry.index: _Shuffled(temp, task.index, f"u{u.entry.index}", shuffles)
            for u in unique
        }
        keyed = _Shuffled(temp, task.index, "k", shuffles) if layout.key_check_runs else None
        try:
            batches = frame_batches(
                layout.frame_path,
                layout.size,
                layout.batch_columns(items),
                range(task.first, task.last),
            )
            facts = batch_pass(
                layout,
                items,
                with_positions(batches, task.offset),
                entry_sinks=entries,
                unique_sinks=uniques,
                key_sink=keyed,
            )
        finally:
            for stream in entries.values():
                stream.close()
            for shuffled in [*uniques.values(), *([keyed] if keyed else [])]:
                shuffled.close()
        hold_for_tests(os.environ.get(HOLD_RANGE_ENV) == str(task.index))
    return facts


@dataclass(frozen=True)
class ShuffleFacts:
    """What one bucket task found: each uniqueness entry's state, and the largest bucket."""

    unique: dict[int, RowState]
    largest: int


def _gathered(
    folder: Path, tasks: int, what: str, shuffle: int, *, size: int, lo: int
) -> Iterator[tuple[pl.DataFrame, pl.Series]]:
    """The rows every range task wrote to one shuffle, in range order, with their bucket
    counted from ``lo``."""
    for t in range(tasks):
        path = _shuffle_file(folder, t, what, shuffle)
        if not path.exists():
            continue
        for frame in read_stream(path, size):
            yield frame.drop(BUCKET), frame.get_column(BUCKET) - lo


def judge_shuffle(shuffle: int, layout: Layout, tasks: int, shuffles: Shuffles) -> ShuffleFacts:
    """On a worker: every bucket of one shuffle judged alone, for every uniqueness entry and
    the keys check; the failures found written (see the module's docstring)."""
    items = layout.items()
    folder = layout.spill_dir
    lo = shuffle * shuffles.per
    width = max(1, min(layout.buckets, lo + shuffles.per) - lo)
    found: dict[int, RowState] = {}
    largest = 0
    with attempt_folder(folder, f"s{shuffle:04d}") as temp:
        jobs: list[tuple[str, Entry | None]] = [
            (f"u{u.entry.index}", u) for u in layout.unique(items)
        ]
        if layout.key_check_runs:
            jobs.append(("k", None))
        for what, item in jobs:
            spill = PartSpill(temp, f"{what}_b", width, layout.size)
            for frame, part in _gathered(folder, tasks, what, shuffle, size=layout.size, lo=lo):
                spill.write(frame, part)
            out = RowStream(_judged_file(temp, shuffle, what))
            try:
                if item is None:
                    failed = judge_keys(spill.read(), list(layout.keys), layout.duplicates)
                    for frame in failed:
                        out.write(frame.to_arrow())
                else:
                    state, judged = judge_unique(item, spill.read(), layout.nulls)
                    for frame in judged:
                        out.write(frame.to_arrow())
                    found[item.entry.index] = state[0]
            finally:
                out.close()
            largest = max(largest, spill.largest)
    return ShuffleFacts(found, largest)


def _judged(folder: Path, shuffles: int, what: str, size: int) -> Iterator[pl.DataFrame]:
    for s in range(shuffles):
        path = _judged_file(folder, s, what)
        if path.exists():
            yield from read_stream(path, size)


def check_split(layout: Layout, items: list[Entry], tasks: Tasks) -> Passed:
    """The batch pass and the buckets of ``layout``'s stage run by ``tasks``, as
    :func:`sluice.pipeline.bounded_validate.check_partition` takes them from one process."""
    folder, size = layout.spill_dir, layout.size
    ranges = row_ranges(layout.frame_path, size * RANGE_BATCHES)
    shuffles = Shuffles.of(layout.buckets)
    facts = empty_facts(items)
    for got in tasks.map(validate_range, ranges, layout, shuffles):
        facts = facts.merge(got)
    entry_spills: dict[int, RowStream] = {}
    for item in items:
        i = item.entry.index
        spill = entry_spills[i] = RowStream(folder / f"entry_{i}.arrow")
        for r in ranges:
            path = _entry_file(folder, r.index, i)
            if path.exists():
                for frame in read_stream(path, size):
                    spill.write(frame.to_arrow())
                path.unlink()
    unique = layout.unique(items)
    judged: list[ShuffleFacts] = []
    if unique or layout.key_check_runs:
        judged = tasks.map(
            judge_shuffle, list(range(shuffles.count)), layout, len(ranges), shuffles
        )
    for path in folder.glob("t*.s*.arrow"):
        path.unlink()
    found: dict[int, tuple[RowState, Iterator[pl.DataFrame]]] = {}
    for u in unique:
        i = u.entry.index
        state = RowState()
        for facts_of in judged:
            state = state.merge(facts_of.unique[i])
        spilled = _by_ranges(
            _judged(folder, shuffles.count, f"u{i}", size), folder, f"u{i}_f", layout.n_rows, size
        )
        found[i] = (state, _in_position_order(spilled))
    keys: Iterator[pl.DataFrame] = iter(())
    if layout.key_check_runs:
        spilled = _by_ranges(
            _judged(folder, shuffles.count, "k", size), folder, "keys_f", layout.n_rows, size
        )
        keys = _in_position_order(spilled)
    for path in folder.glob("s*.arrow"):
        path.unlink()
    largest = max((j.largest for j in judged), default=0)
    return Passed(facts.states, facts.sums, facts.marked, entry_spills, found, keys, largest)


def split_validate(tasks: Tasks) -> Split:
    """The ``split`` of :func:`sluice.pipeline.bounded_validate.check_partition` that runs the
    stage's pass and buckets as ``tasks``."""
    return lambda layout, items: check_split(layout, items, tasks)


__all__ = [
    "HOLD_RANGE_ENV",
    "MAX_SHUFFLES",
    "POS",
    "RANGE_BATCHES",
    "RowRange",
    "ShuffleFacts",
    "Shuffles",
    "check_split",
    "judge_shuffle",
    "row_ranges",
    "split_validate",
    "validate_range",
]
