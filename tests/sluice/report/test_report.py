"""The report of small runs: what it measures, what it shows, where it goes."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from sluice.core.errors import ConfigError, SluiceError
from sluice.pipeline import run_partition
from sluice.report.build import REBUILT_NAME, rebuild_report
from sluice.report.history import HISTORY_DIR, load_history, rebuild_history
from sluice.report.metrics import load_outputs, profiles, rule_summaries, stage_counts
from tests.conftest import SpecFactory

CSV = (
    "id,amount,count,when,kind\n"
    "a,1.5,1,2024-01-01 10:00:00,a\n"
    "b,200,2,2024-01-01 11:00:00,<b>bold</b>\n"
    "c,,3,2024-01-01 12:00:00,a\n"
    "d,abc,4,2024-01-01 13:00:00,b\n"
    "a,2.5,5,2024-01-01 14:00:00,a\n"
    "e,3.5,,2024-01-01 15:00:00,b\n"
)


def _run(spec: Path, day: str = "2024-01-01") -> tuple[dict[str, Any], dict[str, Any]]:
    summary = run_partition(str(spec), day)
    return summary, json.loads(Path(summary["manifest"]).read_text())


def test_counts_rules_and_profiles_of_a_small_run(make_dataset: SpecFactory) -> None:
    spec = make_dataset({"2024-01-01": CSV})
    _, manifest = _run(spec)
    folder = Path(manifest["outputs"]["report"]["path"]).parent
    out = load_outputs(manifest, folder, {"when": "%Y-%m-%d %H:%M:%S"})
    assert stage_counts(out) == {"ingest": 1, "validate": 3, "screen": 0, "partition": 0}
    rules = {r.reason: r for r in rule_summaries(out)}
    assert rules["amount|type"].examples[0].value == "abc"
    assert rules["amount|type"].stage == "ingest"
    assert rules["id|expect_column_values_to_be_unique"].examples[0].source_row == 4
    assert rules["amount|expect_column_values_to_be_between"].examples[0].raw["kind"] == (
        "<b>bold</b>"
    )
    warn = rules["kind|expect_column_values_to_be_in_set"]
    assert warn.severity == "warn"
    assert warn.rows == 1
    cols = {c.name: c for c in profiles(out)}
    assert cols["amount"].missing == 1
    assert cols["amount"].unparsed == 1
    assert cols["count"].missing == 1
    assert cols["count"].null_rate == pytest.approx(1 / 6)
    assert cols["amount"].clean_rows == 2
    assert cols["amount"].maximum == 3.5


def test_the_run_measures_what_it_wrote_without_reading_it_again(
    make_dataset: SpecFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write stage's report takes the clean rows, quarantine, failures and scores it has
    just written from memory (reading them again cost 2 of 30 CPU s at 10M rows), the scores
    from the screen stage without a file between, and it is the report ``sluice report``
    rebuilds from the files, byte for byte."""
    detectors = [{"name": "odd", "detector": "ecod", "features": ["amount", "count"]}]
    rows = "".join(f"r{i},{i % 17}.5,{i % 5},2024-01-01 10:00:00,a\n" for i in range(300))
    spec = make_dataset({"2024-01-01": CSV + rows}, detectors=detectors)
    read: list[str] = []
    real = pl.read_parquet

    def reading(source: Any, *args: Any, **kwargs: Any) -> pl.DataFrame:
        read.append(Path(str(source)).name)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(pl, "read_parquet", reading)
    _, manifest = _run(spec)
    monkeypatch.undo()
    assert manifest["counts"]["quarantine"] > 0
    assert "scores" in manifest["outputs"]
    assert not {"part-00000.parquet", "failures.parquet", "scores.parquet"} & set(read)
    kept = pl.read_parquet(manifest["outputs"]["scores"]["path"])
    assert kept.columns == ["_row_id", "detector", "score"]
    assert kept.height == manifest["screen"]["rows"] > 300
    report = Path(manifest["outputs"]["report"]["path"])
    report.unlink()
    rebuilt = rebuild_report(str(spec), "2024-01-01")
    assert rebuilt.matches_manifest is True
    assert rebuilt.path == report


def test_report_escapes_data_and_lists_outputs_in_the_manifest(make_dataset: SpecFactory) -> None:
    spec = make_dataset({"2024-01-01": CSV})
    _, manifest = _run(spec)
    outputs = manifest["outputs"]
    for name in ("report", "metrics"):
        path = Path(outputs[name]["path"])
        assert path.exists()
        assert len(outputs[name]["sha256"]) == 64
    assert "scores" not in outputs, "no detector declared, no scores"
    assert manifest["timings_s"]["report"] > 0
    assert manifest["findings"]["alarms"] == []
    html = Path(outputs["report"]["path"]).read_text(encoding="utf-8")
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "<b>bold</b>" not in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)
    assert "no detectors declared" in html


def test_a_run_again_replaces_its_history_file(make_dataset: SpecFactory, tmp_path: Path) -> None:
    spec = make_dataset({"2024-01-01": CSV, "2024-01-02": CSV})
    _run(spec, "2024-01-01")
    _run(spec, "2024-01-02")
    _, again = _run(spec, "2024-01-01")
    reports = tmp_path / "out" / "reports"
    files = sorted(p.name for p in (reports / HISTORY_DIR).iterdir())
    assert files == ["date=2024-01-01.parquet", "date=2024-01-02.parquet"]
    hist = load_history(reports)
    first = hist.filter(pl.col("partition") == "2024-01-01")
    assert first["run_id"].unique().to_list() == [again["run_id"]]
    assert load_history(reports, before=dt.date(2024, 1, 2))["partition"].unique().to_list() == [
        "2024-01-01"
    ]
    (reports / HISTORY_DIR / "date=2024-01-02.parquet").unlink()
    assert rebuild_history(reports) == 2
    assert len(list((reports / HISTORY_DIR).glob("*.parquet"))) == 2


def test_a_failed_partition_still_gets_a_report(make_dataset: SpecFactory) -> None:
    suite = {
        "name": "crit",
        "expectations": [
            {
                "type": "expect_table_row_count_to_be_between",
                "kwargs": {"min_value": 100},
                "meta": {"severity": "critical"},
            }
        ],
    }
    spec = make_dataset({"2024-01-01": CSV}, suite=suite)
    summary, manifest = _run(spec)
    assert summary["status"] == "failed"
    html = Path(manifest["outputs"]["report"]["path"]).read_text(encoding="utf-8")
    assert 'class="verdict failed"' in html
    assert "_table|expect_table_row_count_to_be_between" in html
    assert manifest["findings"]["quarantined_by_stage"]["partition"] == 6


def test_rebuild_keeps_the_recorded_report_when_the_history_changed(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    spec = make_dataset({"2024-01-01": CSV, "2024-01-02": CSV})
    _run(spec, "2024-01-01")
    _, manifest = _run(spec, "2024-01-02")
    recorded = Path(manifest["outputs"]["report"]["path"])
    before = recorded.read_bytes()
    (tmp_path / "out" / "reports" / HISTORY_DIR / "date=2024-01-01.parquet").unlink()
    rebuilt = rebuild_report(str(spec), "2024-01-02")
    assert rebuilt.matches_manifest is False
    assert rebuilt.path.name == REBUILT_NAME
    assert recorded.read_bytes() == before


def test_rebuild_says_what_is_missing(make_dataset: SpecFactory) -> None:
    spec = make_dataset({"2024-01-01": CSV})
    with pytest.raises(SluiceError, match="no finished run"):
        rebuild_report(str(spec), "2024-01-05")
    with pytest.raises(ConfigError, match="partition"):
        rebuild_report(str(spec), "yesterday")


def test_a_report_that_cannot_be_built_does_not_stop_the_run(
    make_dataset: SpecFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from sluice.report import build

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("plot exploded")

    monkeypatch.setattr(build, "compose", broken)
    spec = make_dataset({"2024-01-01": CSV})
    summary, manifest = _run(spec)
    assert summary["conservation"] is True
    assert manifest["findings"] == {"report_error": "RuntimeError: plot exploded"}
    assert "report" not in manifest["outputs"]
    reports = tmp_path / "out" / "reports"
    assert not (reports / "date=2024-01-01" / "report.html").exists()
    assert not (reports / HISTORY_DIR).exists()
