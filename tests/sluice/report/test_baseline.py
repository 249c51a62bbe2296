"""A sustained shift against the rolling window and against a pinned baseline.

Two years of monthly partitions go through the report functions the pipeline calls
(:func:`sluice.report.build.compose`, then ``metrics.parquet`` is committed and added to the
history). From 2020-01 on, 8% of the rows are quarantined (1-3% before) and the fare is 30%
higher. With the rolling window the new level fills the history and the alarm goes quiet; with
``monitor.baseline`` pinned to 2019 it stays on for every shifted partition.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sluice.config import MonitorSpec, Partition
from sluice.core.failures import make_failures
from sluice.demo_data import generate
from sluice.pipeline import run_partition
from sluice.report.build import Report, compose
from sluice.report.history import METRICS_NAME, Baseline, append_history
from sluice.report.html import render
from sluice.report.metrics import RunOutputs
from sluice.write import PARQUET_NAME
from tests.sluice.report.conftest import trips_spec

MONTHS = [Partition(dt.date(2019 + i // 12, i % 12 + 1, 1), "month", "month") for i in range(24)]
SHIFT = 12
ROWS = 2_000


def outputs(i: int, part: Partition) -> RunOutputs:
    """Month ``i``: 1-3% quarantined before the shift, 8% from it on; fares 30% higher."""
    rng = np.random.default_rng(100 + i)
    rate = 0.08 if i >= SHIFT else 0.01 + 0.02 * rng.random()
    fare = rng.gamma(4.0, 4.0, ROWS) * (1.3 if i >= SHIFT else 1.0)
    frame = pl.DataFrame(
        {
            "_row_id": pl.Series(np.arange(ROWS), dtype=pl.UInt64),
            "fare": fare,
            "payment": rng.choice(["card", "cash"], ROWS, p=[0.7, 0.3]).tolist(),
        }
    )
    bad = rng.random(ROWS) < rate
    quarantine = frame.filter(pl.Series(bad)).select(
        "_row_id",
        pl.lit("taxi.csv").alias("_source_file"),
        (pl.col("_row_id") + 2).alias("_source_row"),
        pl.lit("fare|fare_in_range").alias("_reasons"),
        pl.col("fare").cast(pl.String),
        "payment",
    )
    n_bad = int(bad.sum())
    return RunOutputs(
        manifest={
            "dataset": "taxi",
            "run_id": f"run-{i}",
            "finished_at": "",
            "counts": {"in": ROWS, "clean": ROWS - n_bad, "quarantine": n_bad},
            "detectors": [],
        },
        partition=part,
        clean=frame.filter(~pl.Series(bad)),
        quarantine=quarantine,
        failures=make_failures(
            quarantine["_row_id"], column="fare", rule="fare_in_range", severity="error"
        ),
        scores=None,
    )


def screen_all(root: Path, baseline: Baseline | None) -> list[Report]:
    """Report every month in order, committing each one's clean rows and metrics as a run does."""
    reports = []
    for i, part in enumerate(MONTHS):
        out = outputs(i, part)
        report = compose(
            out, reports_root=root / "reports", clean_root=root / "clean", baseline=baseline
        )
        clean = root / "clean" / part.dirname
        clean.mkdir(parents=True)
        out.clean.write_parquet(clean / PARQUET_NAME)
        folder = root / "reports" / part.dirname
        folder.mkdir(parents=True)
        report.metrics.write_parquet(folder / METRICS_NAME)
        append_history(folder)
        reports.append(report)
    return reports


def quarantine_status(r: Report) -> str:
    """The verdict on the run's quarantine rate."""
    (f,) = [f for f in r.findings if f.metric == "quarantine_rate"]
    return f.status


def fare_drifted(r: Report) -> bool:
    """Whether the fare column was found to drift."""
    (d,) = [d for d in r.drift if d.column == "fare"]
    return d.drifted


@pytest.fixture(scope="module")
def rolling(tmp_path_factory: pytest.TempPathFactory) -> list[Report]:
    """The months judged against the rolling window."""
    return screen_all(tmp_path_factory.mktemp("rolling"), None)


@pytest.fixture(scope="module")
def pinned(tmp_path_factory: pytest.TempPathFactory) -> list[Report]:
    """The months judged against a baseline pinned to 2019."""
    spec = MonitorSpec.model_validate({"baseline": {"start": "2019-01", "end": "2019-12"}})
    start, end = spec.parsed("month", "month")
    return screen_all(tmp_path_factory.mktemp("pinned"), Baseline("month", start, end))


def test_rolling_history_goes_quiet_after_a_sustained_shift(rolling: list[Report]) -> None:
    status = [quarantine_status(r) for r in rolling]
    assert status[SHIFT] == "alarm"
    assert status[-4:] == ["ok"] * 4, status


def test_rolling_drift_says_its_reference_has_aged(rolling: list[Report]) -> None:
    """Drifted months are left out of the rolling reference, so after a sustained shift the
    reference is the last months before it, older every run; the finding says so."""
    (d,) = [d for d in rolling[-1].drift if d.column == "fare"]
    assert d.drifted
    assert d.reference_text == (
        "reference: 3 earlier partitions, 2019-10 to 2019-12, 12 to 14 months before this partition"
    )


def test_pinned_baseline_keeps_alarming_on_every_later_partition(pinned: list[Report]) -> None:
    status = [quarantine_status(r) for r in pinned[SHIFT:]]
    assert status == ["alarm"] * len(status), status
    assert all(fare_drifted(r) for r in pinned[SHIFT:])
    assert [quarantine_status(r) for r in pinned[:SHIFT]].count("alarm") == 0


def test_pinned_findings_name_the_baseline_and_its_age(pinned: list[Report]) -> None:
    last = pinned[-1]
    (f,) = [f for f in last.alarms if f.metric == "quarantine_rate"]
    assert f.pinned
    assert f.reference_partitions == tuple(str(p) for p in MONTHS[:SHIFT])
    assert f.reference == (
        "12 partitions of the pinned baseline 2019-01 to 2019-12: "
        "2019-01 to 2019-12, 12 to 23 months before this partition"
    )
    (d,) = [d for d in last.drifted if d.column == "fare"]
    assert d.reference == [str(p) for p in MONTHS[:SHIFT]]
    assert d.reference_text == (
        "reference: 12 partitions of the pinned baseline, "
        "2019-01 to 2019-12, 12 to 23 months before this partition"
    )
    summary = last.summary()
    drift = summary["drift"][0]
    assert drift["reference_span"] == "2019-01 to 2019-12, 12 to 23 months before this partition"
    assert drift["pinned_baseline"] is True
    alarm = next(a for a in summary["alarms"] if a["metric"] == "quarantine_rate")
    assert alarm["pinned"] is True
    assert alarm["reference"] == f.reference


def test_rolling_findings_say_which_months_and_how_old(rolling: list[Report]) -> None:
    r = rolling[SHIFT]
    (f,) = [f for f in r.findings if f.metric == "quarantine_rate"]
    assert (
        f.reference
        == "12 previous months: 2019-01 to 2019-12, 1 to 12 months before this partition"
    )
    assert not f.pinned
    (d,) = [d for d in r.drift if d.column == "fare"]
    assert d.reference_text == (
        "reference: 7 earlier partitions, 2019-06 to 2019-12, 1 to 7 months before this partition"
    )


def test_the_report_says_what_the_months_were_judged_against(
    rolling: list[Report], pinned: list[Report]
) -> None:
    month = render(rolling[SHIFT])
    assert "same weekday" not in month
    assert "Monthly metrics are judged against up to 12 previous months" in month
    assert "2019-06 to 2019-12, 1 to 7 months before this partition" in month
    html = render(pinned[-1])
    assert "Metrics are judged against the pinned baseline 2019-01 to 2019-12" in html
    assert "12 to 23 months before this partition" in html


def test_run_partition_judges_against_the_pinned_baseline(tmp_path: Path) -> None:
    """Six demo days pinned as the baseline, then two days at half the rows: both alarm on
    ``rows_in`` against the baseline, in the manifest the run commits."""

    spec = trips_spec(tmp_path)
    days = [dt.date(2024, 3, 4) + dt.timedelta(days=i) for i in range(8)]
    spec.write_text(
        spec.read_text() + f"\nmonitor:\n  baseline: {{start: {days[0]}, end: {days[5]}}}\n"
    )
    for i, day in enumerate(days):
        generate(tmp_path, [day], rows_per_partition=300 if i < 6 else 150, seed=7)
    manifests = [run_partition(str(spec), day)["manifest"] for day in days]
    for i in (6, 7):
        found = json.loads(Path(manifests[i]).read_text())["findings"]
        (rows,) = [a for a in found["alarms"] if a["metric"] == "rows_in"]
        assert rows["pinned"] is True
        assert rows["reference"].startswith(
            f"6 partitions of the pinned baseline 2024-03-04 to 2024-03-09: 2024-03-04 to "
            f"2024-03-09, {i - 5} to {i} days before this partition"
        )


def test_rolling_history_names_the_level_shift_it_absorbed(rolling: list[Report]) -> None:
    """The band has taken in the new level, but the history search reports it as a shift."""
    last = rolling[-1]
    assert quarantine_status(last) == "ok"
    shifts = [c for c in last.shifts if (c.scope, c.metric) == ("run", "quarantine_rate")]
    (up,) = [c for c in shifts if c.after > 0.07]
    assert up.partition == str(MONTHS[SHIFT])
    assert up.before < 0.035
    assert up.runs_after == len(MONTHS) - SHIFT
    recorded = last.summary()["change_points"]
    assert {"scope": "run", "metric": "quarantine_rate", "partition": "2020-01"}.items() <= next(
        c for c in recorded if c["metric"] == "quarantine_rate" and c["after"] > 0.07
    ).items()
    assert "at 2020-01 (12 runs at the new level, this one included)" in render(last)
