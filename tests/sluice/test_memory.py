"""The stage log a benchmark asks for with ``SLUICE_STAGE_LOG``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluice.core.memory import STAGE_LOG_ENV, note_stage, peak_rss
from sluice.pipeline import run_partition
from tests.conftest import SpecFactory


def test_every_stage_of_a_run_appends_its_line(
    make_dataset: SpecFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "stages.jsonl"
    monkeypatch.setenv(STAGE_LOG_ENV, str(log))
    spec = make_dataset({"2024-01-01": "id,amount,count,when,kind\na,1,1,2024-01-01 10:00:00,a\n"})
    summary = run_partition(str(spec), "2024-01-01")
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["stage"] for x in lines] == ["ingest", "validate", "screen", "write", "report"]
    assert len({x["run_id"] for x in lines}) == 1
    assert summary["status"] in ("passed", "warned", "failed")
    peaks = [x["peak_rss_bytes"] for x in lines]
    assert peaks == sorted(peaks)
    assert peaks[-1] <= peak_rss()
    assert all(x["seconds"] >= 0 for x in lines)


def test_without_the_setting_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(STAGE_LOG_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    note_stage("r", "ingest", 1.0)
    assert list(tmp_path.iterdir()) == []
    assert peak_rss() > 10 * 2**20


def test_a_log_that_cannot_be_written_does_not_fail_the_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STAGE_LOG_ENV, str(tmp_path / "missing" / "stages.jsonl"))
    note_stage("r", "ingest", 1.0)
    assert not (tmp_path / "missing").exists()
