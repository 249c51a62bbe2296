"""The bounded screen stage with its passes split into tasks gives the single-process stage's
scores, outliers and facts.

The task functions run here, in order and last first with each task run twice (a rerun after a
lost worker), after the bounded ingest and validate of hostile partitions (nulls, unicode,
unparsable cells, duplicates, outliers) and of the robustness corpus, in batches of a few rows:
``scores.parquet`` and ``screen_failures.parquet`` hold the same rows in the same order and row
groups, and the stage records the same facts.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest

from sluice.core.errors import SluiceError
from sluice.pipeline import Run
from sluice.pipeline.bounded_screen import screen_bounded
from sluice.pipeline.dask_screen import PARTS_DIR, split_screen
from sluice.pipeline.stages import _ingest, _validate
from sluice.pipeline.task_map import Tasks
from tests.conftest import SpecFactory
from tests.robustness.corpus import CASES, Case
from tests.robustness.support import write_dataset
from tests.sluice.pipeline.bounded_support import DETECTORS, hostile_csv
from tests.sluice.pipeline.test_dask_validate import Reversed

DAY = "2024-01-02"
FILES = ("scores.parquet", "screen_failures.parquet")


def _screened(run: Run, tasks: Tasks | None) -> Any:
    """The stage's facts, its two files and their row groups, or its error."""
    try:
        facts = screen_bounded(run, None, None if tasks is None else split_screen(tasks))
    except SluiceError as exc:
        return f"{type(exc).__name__}: {exc}"
    assert not (run.work / PARTS_DIR).exists()
    files: dict[str, tuple[pl.DataFrame | None, list[int]]] = {}
    for name in FILES:
        if not run.file(name).exists():
            files[name] = (None, [])
            continue
        meta = pq.ParquetFile(run.file(name)).metadata
        groups = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        files[name] = (pl.read_parquet(run.file(name)), groups)
        run.file(name).unlink()
    return json.dumps(facts, sort_keys=True, default=repr), files


def _same(run: Run) -> dict[str, Any]:
    """The split stage (in order, then reversed and rerun) against the single-process one."""
    want = _screened(run, None)
    for tasks in (Tasks(), Reversed()):
        got = _screened(run, tasks)
        if isinstance(want, str) or isinstance(got, str):
            assert got == want
            continue
        assert got[0] == want[0]
        for name in FILES:
            frames = (got[1][name][0], want[1][name][0])
            assert frames[0] is frames[1] is None or frames[0].equals(frames[1]), name
            assert got[1][name][1] == want[1][name][1], name
    if isinstance(want, str):
        return {"error": want}
    facts: dict[str, Any] = json.loads(want[0])
    return facts


def _prepared(spec: Path, monkeypatch: pytest.MonkeyPatch, rows: int = 7) -> Run:
    monkeypatch.setenv("SLUICE_BOUNDED", "1")
    monkeypatch.setenv("SLUICE_BATCH_ROWS", str(rows))
    run = Run.prepare(str(spec), DAY)
    run.record("ingest", 0.0, **_ingest(run))
    run.record("validate", 0.0, **_validate(run))
    return run


@pytest.mark.parametrize(
    "detectors", [d if d == "ecod" else pytest.param(d, marks=pytest.mark.slow) for d in DETECTORS]
)
def test_split_scoring_matches_one_process(
    detectors: str, make_dataset: SpecFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_dataset(
        {DAY: hostile_csv(240, seed=len(detectors))}, detectors=DETECTORS[detectors]
    )
    run = _prepared(spec, monkeypatch)
    try:
        facts = _same(run)
    finally:
        run.discard()
    assert facts["rows"] > 160
    assert all(not m["skipped"] for m in facts["models"])
    assert facts["failures"] > 0


def test_fit_scores_reused_across_tasks(
    make_dataset: SpecFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With more rows than the fit takes, the sample and its reused scores span tasks."""
    for module in ("detectors.screen", "sluice.pipeline.bounded_screen"):
        monkeypatch.setattr(importlib.import_module(module), "CALIBRATION_ROWS", 40)
    detectors = [
        {**d, "params": {**d.get("params", {}), "max_fit_rows": 60}}
        for d in DETECTORS["ensemble"] + DETECTORS["ecod"]
    ]
    spec = make_dataset({DAY: hostile_csv(400, seed=9)}, detectors=detectors)
    run = _prepared(spec, monkeypatch, rows=11)
    try:
        facts = _same(run)
    finally:
        run.discard()
    assert [m["n_fit"] for m in facts["models"]] == [60, 60, 60]


CORPUS = [
    pytest.param(c, id=c.name, marks=() if i % 4 == 1 else (pytest.mark.slow,))
    for i, c in enumerate(CASES)
    if c.error is None
]


@pytest.mark.parametrize("case", CORPUS)
def test_corpus_split_scoring_matches_one_process(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_dataset(
        tmp_path,
        {DAY: case.content},
        fmt=case.fmt,
        schema=case.schema,
        detectors=DETECTORS["default"],
    )
    try:
        run = _prepared(spec, monkeypatch, rows=2)
    except SluiceError:
        return  # refused before the screen: tests/sluice/pipeline/test_dask_partition.py
    try:
        _same(run)
    finally:
        run.discard()
