"""Planted shifts across successive demo partitions: flagged exactly, and nothing else is."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from sluice.cli.report import main as report_main
from sluice.core.files import file_sha256
from sluice.report.anomalies import band, judge
from sluice.report.artifacts import artifact_payloads
from sluice.report.build import rebuild_report
from sluice.report.history import HISTORY_DIR, load_history
from tests.sluice.report.conftest import (
    DAYS,
    FARE_DAY,
    HALF_DAY,
    NULL_COLUMN,
    NULL_DAY,
    SHIFTED_COLUMN,
    ShiftedRuns,
)

EXPECTED: dict[int, set[str]] = {
    FARE_DAY: {f"drift {SHIFTED_COLUMN}"},
    NULL_DAY: {f"alarm column {NULL_COLUMN} null_rate"},
    HALF_DAY: {"alarm run  rows_in"},
}
SHOWN: dict[int, tuple[str, str]] = {
    FARE_DAY: ("drift", SHIFTED_COLUMN),
    NULL_DAY: ("alarm", NULL_COLUMN),
    HALF_DAY: ("alarm", "rows in"),
}
FIRST_JUDGED = 21


def flags(manifest: dict[str, Any]) -> set[str]:
    """The manifest's alarms and drifted columns as short strings."""
    f = manifest["findings"]
    got = {f"alarm {a['scope']} {a['name']} {a['metric']}" for a in f["alarms"]}
    return got | {f"drift {d['column']}" for d in f["drift"]}


def test_exactly_the_planted_shifts_are_flagged(shifted_runs: ShiftedRuns) -> None:
    got = {i: flags(m) for i, m in enumerate(shifted_runs.manifests)}
    assert got == {i: EXPECTED.get(i, set()) for i in range(DAYS)}


def test_the_unshifted_days_were_judged_not_just_learning(shifted_runs: ShiftedRuns) -> None:
    for i, m in enumerate(shifted_runs.manifests):
        f = m["findings"]
        if i < FIRST_JUDGED:
            assert f["judged_metrics"] == 0, f"day {i} judged before three same weekdays"
        else:
            assert f["judged_metrics"] >= 40, f"day {i}: {f['judged_metrics']} judged"
            assert f["learning_metrics"] <= 3
        if i >= 2:
            assert SHIFTED_COLUMN in f["drift_tested"]
            assert NULL_COLUMN in f["drift_tested"]


def test_the_weekend_dip_alarms_only_without_the_weekly_season(
    shifted_runs: ShiftedRuns,
) -> None:
    saturday = 26
    assert shifted_runs.days[saturday].weekday() == 5
    rows = [float(m["counts"]["in"]) for m in shifted_runs.manifests]
    naive = band(rows[:saturday], "count", int(rows[saturday]))
    assert not naive.low <= rows[saturday] <= naive.high, "the scenario has no weekly season"
    history = list(zip(shifted_runs.days[:saturday], rows[:saturday], strict=True))
    seasonal = judge(rows[saturday], 0, history, shifted_runs.days[saturday], kind="count")
    assert seasonal.status == "ok"
    assert seasonal.n_reference == 3


def _attention(html: str) -> str:
    m = re.search(r'<div class="attention[^"]*" id="attention">(.*?)</div>', html, re.S)
    assert m is not None, "no attention box in the report"
    return m.group(1)


@pytest.mark.parametrize("day", [FARE_DAY, NULL_DAY, HALF_DAY, DAYS - 1])
def test_report_and_artifacts_flag_the_same(shifted_runs: ShiftedRuns, day: int) -> None:
    manifest = shifted_runs.manifests[day]
    box = _attention(shifted_runs.report(day).read_text(encoding="utf-8"))
    found = re.findall(r"<li>(.*?)</li>", box, re.S)
    items = [i for i in found if 'href="#baseline-' not in i]
    payload = artifact_payloads(shifted_runs.summaries[day], manifest)
    bullets = [ln for ln in payload.markdown.splitlines() if ln.startswith("- **")]
    listed = [ln for ln in bullets if not ln.startswith("- **baseline**")]
    expected = EXPECTED.get(day, set())
    assert len(items) == len(expected) == len(listed)
    baselines = manifest["findings"].get("baselines", [])
    against = [b for b in baselines if b["status"] in ("alarm", "unavailable")]
    assert len(found) - len(items) == len(bullets) - len(listed) == len(against)
    if not expected and not against:
        assert "Nothing unusual" in box
        assert "Nothing unusual" in payload.markdown
        return
    if not expected:
        return
    word, name = SHOWN[day]
    assert name in items[0]
    assert f"{word}</span>" in items[0]
    assert listed[0].startswith(f"- **{word}**")
    assert name in listed[0]
    assert payload.keys == {
        "summary": "sluice-trips-summary",
        "failed-rules": "sluice-trips-failed-rules",
        "report": "sluice-trips-report",
        "baseline-drift": "sluice-trips-baseline-drift",
    }
    assert payload.report_uri == shifted_runs.report(day).resolve().as_uri()


def test_history_has_one_queryable_file_per_partition(shifted_runs: ShiftedRuns) -> None:
    reports = shifted_runs.root / "reports" / "trips"
    assert len(list((reports / HISTORY_DIR).glob("*.parquet"))) == DAYS
    nulls = (
        pl.scan_parquet(reports / HISTORY_DIR / "*.parquet")
        .filter((pl.col("name") == NULL_COLUMN) & (pl.col("metric") == "null_rate"))
        .sort("partition_start")
        .collect()
    )
    assert nulls.height == DAYS
    spikes = nulls.filter(pl.col("value") > 0.05)["partition"].to_list()
    assert spikes == [str(shifted_runs.days[NULL_DAY])]
    before = load_history(reports, before=shifted_runs.days[10])
    assert before["partition"].n_unique() == 10


def test_rebuilding_a_report_gives_the_same_bytes(
    shifted_runs: ShiftedRuns, capsys: pytest.CaptureFixture[str]
) -> None:
    report = shifted_runs.report(FARE_DAY)
    recorded = shifted_runs.manifests[FARE_DAY]["outputs"]["report"]["sha256"]
    assert file_sha256(report) == recorded
    report.unlink()
    rebuilt = rebuild_report(str(shifted_runs.spec), str(shifted_runs.days[FARE_DAY]))
    assert rebuilt.matches_manifest is True
    assert rebuilt.path == report
    assert file_sha256(report) == recorded
    args = argparse.Namespace(
        dataset=str(shifted_runs.spec), partition=str(shifted_runs.days[FARE_DAY]), open=False
    )
    assert report_main(args) == 0
    out = capsys.readouterr().out
    assert "identical to the report the run recorded" in out
    assert f"drift: {SHIFTED_COLUMN}" in out


def test_scores_are_kept_beside_the_report(shifted_runs: ShiftedRuns) -> None:
    outputs = shifted_runs.manifests[0]["outputs"]
    scores = pl.read_parquet(outputs["scores"]["path"])
    assert scores.columns == ["_row_id", "detector", "score"]
    assert scores.height == shifted_runs.manifests[0]["screen"]["rows"]
    assert Path(outputs["metrics"]["path"]).exists()
