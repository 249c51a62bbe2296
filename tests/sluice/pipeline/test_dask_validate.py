"""The bounded validate stage split into tasks gives the single-process stage's verdicts,
failures and facts.

The task functions run here, in order and last first with each task run twice (a rerun after a
lost worker): on hostile frames (unicode, nulls, NaN and -0.0, duplicates across tasks, every
kind of entry the batched engine runs: row, count, sum, schema, unique, whole) in batches of 1,
3 and 7 rows, and on the robustness corpus through the real ingest, the split stage writes the
same ``validation_failures.parquet`` (rows, order and row groups) and returns the same facts.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest

from expectations.batched import classify
from expectations.results import Suite
from expectations.suite import suite_from_dict
from sluice.core.errors import SluiceError
from sluice.core.failures import concat_failures
from sluice.core.frame import PROVENANCE
from sluice.pipeline import dask_validate
from sluice.pipeline.bounded_validate import BoundedChecked, check_partition, validate_bounded
from sluice.pipeline.dask_validate import Shuffles, row_ranges, split_validate
from sluice.pipeline.run import Run
from sluice.pipeline.stages import _ingest
from sluice.pipeline.task_map import Tasks
from sluice.write import write_parquet
from tests.robustness.corpus import CASES, Case
from tests.robustness.support import write_dataset
from tests.sluice.pipeline.test_bounded_validate import HOSTILE, _hostile_suite, _with_provenance

DAY = "2024-01-01"


class Reversed(Tasks):
    """Runs the tasks last first, each twice (a rerun after a lost worker: the second attempt
    must give the same result and leave the same files)."""

    def map(self, fn: Callable[..., Any], items: Sequence[Any], *args: Any) -> list[Any]:
        """``fn(item, *args)`` for every item, last first, twice; results in the items' order."""
        got: dict[int, Any] = {}
        for i, item in reversed(list(enumerate(items))):
            got[i] = fn(item, *args)
            assert fn(item, *args) == got[i]
        return [got[i] for i in range(len(items))]


def _facts(checked: BoundedChecked) -> str:
    return json.dumps(
        [checked.verdicts, checked.keys, checked.failures, checked.critical_failed],
        sort_keys=True,
        default=repr,
    )


def _check(tmp: Path, suite: Suite, size: int, tasks: Tasks | None, **kw: Any) -> Any:
    out = tmp / f"out-{size}-{type(tasks).__name__}.parquet"
    got = check_partition(
        tmp / "frame.parquet",
        tmp / "ingest_failures.parquet",
        suite,
        out,
        rows_per_batch=size,
        spill_dir=tmp / "spill",
        split=None if tasks is None else split_validate(tasks),
        **kw,
    )
    assert not (tmp / "spill").exists()
    meta = pq.ParquetFile(out).metadata
    groups = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
    return _facts(got), pl.read_parquet(out), groups, got.buckets


def same_split(tmp: Path, data: pl.DataFrame, suite: Suite, sizes: Sequence[int], **kw: Any) -> int:
    """The split stage against the single-process one on ``data`` with row groups of each of
    ``sizes``; the failures found."""
    frame = _with_provenance(data)
    tmp.mkdir(parents=True, exist_ok=True)
    write_parquet(concat_failures([]), tmp / "ingest_failures.parquet")
    found = 0
    for size in sizes:
        pq.write_table(frame.to_arrow(), tmp / "frame.parquet", row_group_size=size)
        want = _check(tmp, suite, size, None, **kw)
        assert len(row_ranges(tmp / "frame.parquet", size * dask_validate.RANGE_BATCHES)) > 1
        for tasks in (Tasks(), Reversed()):
            got = _check(tmp, suite, size, tasks, **kw)
            assert got[0] == want[0], size
            assert got[1].equals(want[1]), size
            assert got[2] == want[2], size
        found = want[1].height
    return found


def _grown(times: int) -> pl.DataFrame:
    """``HOSTILE`` repeated, so that its duplicates fall in other tasks, with unique ``n``."""
    data = pl.concat([HOSTILE] * times)
    return data.with_columns(pl.int_range(1, data.height + 1).alias("n"))


def _kinds(suite: Suite, data: pl.DataFrame) -> set[str]:
    schema = pl.Schema({c: t for c, t in data.schema.items() if c not in PROVENANCE})
    return {
        e.kind
        for e in classify(suite.entries, schema, data.null_count().row(0, named=True), "auto")
    }


@pytest.mark.parametrize(
    "duplicates", ["keep_first", pytest.param("keep_none", marks=pytest.mark.slow)]
)
def test_hostile_partition_split_matches_one_process(
    duplicates: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dask_validate, "MAX_SHUFFLES", 3)  # shuffles of several buckets
    data = _grown(3)
    suite = _hostile_suite()
    assert _kinds(suite, data) == {"row", "count", "sum", "schema", "unique", "whole"}
    found = same_split(tmp_path, data, suite, (2, 7), keys=["city", "zip"], duplicates=duplicates)
    assert found > 3 * 20


def test_every_shuffle_count_gives_the_same_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = pl.DataFrame({"id": [f"k{i % 11}" for i in range(90)], "v": list(range(90))})
    suite = suite_from_dict(
        {
            "name": "d",
            "expectations": [
                {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
                {
                    "type": "expect_column_values_to_be_in_set",
                    "kwargs": {"column": "v", "value_set": list(range(0, 90, 2))},
                },
            ],
        },
        columns=["id", "v"],
    )
    for most in (1, 2, 5, 1000):
        monkeypatch.setattr(dask_validate, "MAX_SHUFFLES", most)
        found = same_split(tmp_path / str(most), data, suite, (4,), keys=["id"])
        assert found == (90 - 11) + 45  # the suite enforces the keys: no keys check
    assert Shuffles.of(10, 3) == Shuffles(3, 4)
    assert Shuffles.of(1, 32) == Shuffles(1, 1)
    assert Shuffles.of(64, 32) == Shuffles(32, 2)


CORPUS = [
    pytest.param(c, id=c.name, marks=() if i % 4 == 0 else (pytest.mark.slow,))
    for i, c in enumerate(CASES)
    if c.error is None
]


@pytest.mark.parametrize("case", CORPUS)
def test_corpus_split_validate_matches_one_process(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLUICE_BOUNDED", "1")
    monkeypatch.setenv("SLUICE_BATCH_ROWS", "2")
    monkeypatch.setattr(dask_validate, "MAX_SHUFFLES", 2)
    spec = write_dataset(tmp_path, {DAY: case.content}, fmt=case.fmt, schema=case.schema)
    run = Run.prepare(str(spec), DAY, check_detectors=False)
    try:
        try:
            _ingest(run)
        except SluiceError:
            return  # refused at ingest: tests/sluice/pipeline/test_dask_partition.py
        got = []
        for tasks in (None, Tasks(), Reversed()):
            facts = validate_bounded(run, None if tasks is None else split_validate(tasks))
            data = run.file("validation_failures.parquet").read_bytes()
            got.append((json.dumps(facts, sort_keys=True, default=repr), data))
        assert got[1] == got[0]
        assert got[2] == got[0]
    finally:
        run.discard()
