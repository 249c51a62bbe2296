"""Frames between in-process stages stay in memory, and the outputs are those of the work files."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from sluice.pipeline import commit, local, run_partition, stage_ingest
from sluice.pipeline.run import Run
from tests.conftest import SpecFactory
from tests.sluice.pipeline.bounded_support import hostile_csv

DAY = "2024-01-01"
DETECTORS = [
    {"name": "odd", "detector": "ecod", "features": ["amount", "count"], "severity": "error"}
]
HANDED = ("frame.parquet", "raw.parquet", "ingest_failures.parquet", "validation_failures.parquet")


def _outputs(spec: Path) -> dict[str, str]:
    """sha256 of each committed Parquet output that does not record the run itself."""
    out = spec.parent / "out"
    files = [
        out / "clean" / f"date={DAY}" / "part-00000.parquet",
        out / "quarantine" / f"date={DAY}" / "part-00000.parquet",
        out / "reports" / f"date={DAY}" / "failures.parquet",
        out / "reports" / f"date={DAY}" / "scores.parquet",
    ]
    return {
        f.name + f.parent.parent.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files
    }


@pytest.fixture
def spec(make_dataset: SpecFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A hostile partition (bad cells, ragged records, duplicates, outliers) with a detector."""
    monkeypatch.setenv("SLUICE_BOUNDED", "0")
    return make_dataset({DAY: hostile_csv(400, seed=11)}, detectors=DETECTORS)


def test_in_process_stages_write_no_frames_to_the_work_folder(
    spec: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, list[str]] = {}
    real = commit.stage_write

    def write(run: Run, *args: Any) -> Any:
        seen["work"] = sorted(p.name for p in run.work.iterdir())
        return real(run, *args)

    monkeypatch.setattr(local, "stage_write", write)
    summary = local.screen_local(str(spec), DAY)
    assert summary["counts"]["in"] == 400
    assert "ingest.json" in seen["work"]
    assert not set(HANDED) & set(seen["work"])


def test_outputs_in_memory_equal_those_through_work_files(spec: Path) -> None:
    through_files = run_partition(str(spec), DAY)
    files = _outputs(spec)
    in_memory = local.screen_local(str(spec), DAY, force=True)
    assert in_memory["counts"] == through_files["counts"]
    assert in_memory["counts"]["quarantine"] > 0
    assert _outputs(spec) == files


def test_a_write_retried_after_the_split_gives_the_same_outputs(
    spec: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sluice.report

    through_files = run_partition(str(spec), DAY)
    files = _outputs(spec)
    real = sluice.report.stage_report
    calls: list[int] = []

    def report(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise TimeoutError("slow disk")
        return real(*args, **kwargs)

    monkeypatch.setattr(sluice.report, "stage_report", report)
    monkeypatch.setattr(local, "IO_BACKOFF_SECONDS", 0.0)
    ingested: list[int] = []
    real_ingest = stage_ingest

    def ingest(run: Run) -> None:
        ingested.append(1)
        real_ingest(run)

    monkeypatch.setattr(local, "stage_ingest", ingest)
    retried = local.screen_local(str(spec), DAY, force=True)
    assert len(calls) == 2
    # the split let go of the rows held in memory: the retry read the source again
    assert len(ingested) == 2
    assert retried["counts"] == through_files["counts"]
    assert _outputs(spec) == files


def test_stages_in_separate_calls_still_pass_files(spec: Path) -> None:
    from sluice.pipeline import stage_ingest, stage_validate
    from sluice.pipeline.handoff import held

    run = Run.prepare(str(spec), DAY)
    try:
        stage_ingest(run)
        stage_validate(run)
        assert not held(run)
        assert all(run.file(name).is_file() for name in HANDED)
    finally:
        run.discard()
