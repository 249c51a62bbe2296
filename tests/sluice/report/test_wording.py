"""Findings say which partitions they were judged against, how old they are, and by what season."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from sluice.report.anomalies import AnomalyPolicy, judge, method_text
from sluice.report.artifacts import drift_line
from sluice.report.history import Baseline, age_span
from tests.conftest import SpecFactory, thin


def months(first: dt.date, n: int) -> list[dt.date]:
    """``n`` month starts from ``first`` on."""
    return [dt.date(first.year + (first.month - 1 + i) // 12, (first.month - 1 + i) % 12 + 1, 1)
            for i in range(n)]  # fmt: skip


@pytest.mark.parametrize(
    ("days", "kind", "expected"),
    [
        (
            [dt.date(2018, 5, 1), dt.date(2018, 6, 1), dt.date(2018, 7, 1)],
            "month",
            "2018-05 to 2018-07, 18 to 20 months before this partition",
        ),
        ([dt.date(2019, 12, 1)], "month", "2019-12, 1 month before this partition"),
        (
            [dt.date(2020, 3, 1), dt.date(2020, 5, 1)],
            "month",
            "2020-03 to 2020-05, 2 to 4 months after this partition",
        ),
        (
            [dt.date(2019, 11, 1), dt.date(2020, 2, 1)],
            "month",
            "2019-11 to 2020-02, 2 months before to 1 month after this partition",
        ),
        (
            [dt.date(2019, 12, 4), dt.date(2019, 12, 25)],
            "day",
            "2019-12-04 to 2019-12-25, 7 to 28 days before this partition",
        ),
    ],
)
def test_age_span_words_which_partitions_and_how_old(
    days: list[dt.date], kind: str, expected: str
) -> None:
    assert age_span(days, dt.date(2020, 1, 1), kind) == expected


def test_monthly_data_is_never_described_by_weekday() -> None:
    hist = [(d, 100.0) for d in months(dt.date(2019, 1, 1), 12)]
    f = judge(100.0, 0, hist, dt.date(2020, 1, 1), kind="count", partition_kind="month")
    assert f.status == "ok"
    assert "day" not in f.reference
    assert f.reference.startswith("12 previous months: 2019-01 to 2019-12, 1 to 12 months before")
    assert "weekday" not in method_text("month", AnomalyPolicy(), None)
    assert "same weekday" in method_text("day", AnomalyPolicy(), None)


def test_monthly_data_uses_the_same_month_of_earlier_years_once_there_are_enough() -> None:
    # Every December is twice the other months: against the previous months it would alarm.
    hist = [(d, 200.0 if d.month == 12 else 100.0) for d in months(dt.date(2016, 1, 1), 48)]
    f = judge(200.0, 0, hist, dt.date(2020, 12, 1), kind="count", partition_kind="month")
    assert f.status == "ok"
    assert f.reference == (
        "4 earlier Decembers: 2016-12 to 2019-12, 12 to 48 months before this partition"
    )
    assert f.reference_partitions == ("2016-12", "2017-12", "2018-12", "2019-12")
    few = [(d, v) for d, v in hist if d >= dt.date(2018, 1, 1)]
    g = judge(200.0, 0, few, dt.date(2020, 12, 1), kind="count", partition_kind="month")
    assert g.status == "alarm"
    assert g.reference.startswith("12 previous months: 2019-01 to 2019-12, 12 to 23 months")


def test_daily_data_is_judged_by_weekday_and_says_how_many_days_back() -> None:
    monday = dt.date(2024, 3, 25)
    hist = [(monday - dt.timedelta(days=d), 10.0) for d in range(1, 36)]
    f = judge(10.0, 0, hist, monday, kind="count", partition_kind="day")
    assert f.reference == (
        "5 earlier Mondays: 2024-02-19 to 2024-03-18, 7 to 35 days before this partition"
    )


def test_a_pinned_baseline_without_screened_partitions_learns_and_says_what_to_do() -> None:
    baseline = Baseline("month", dt.date(2018, 1, 1), dt.date(2018, 12, 1))
    hist = [(d, 0.02) for d in months(dt.date(2019, 1, 1), 12)]
    f = judge(
        0.08, 1000, hist, dt.date(2020, 1, 1), kind="rate", partition_kind="month",
        baseline=baseline,
    )  # fmt: skip
    assert f.status == "learning"
    assert f.pinned
    assert "0 partitions of the pinned baseline 2018-01 to 2018-12" in f.reference
    assert "screen the baseline's partitions or move monitor.baseline" in f.reference


def test_a_listed_baseline_is_named_in_the_finding() -> None:
    listed = frozenset(months(dt.date(2019, 1, 1), 6))
    baseline = Baseline("month", partitions=listed)
    hist = [(d, 0.02) for d in months(dt.date(2019, 1, 1), 12)] + [
        (d, 0.08) for d in months(dt.date(2020, 1, 1), 11)
    ]
    f = judge(
        0.08, 100_000, hist, dt.date(2020, 12, 1), kind="rate", partition_kind="month",
        baseline=baseline,
    )  # fmt: skip
    assert f.status == "alarm"
    assert f.reference == (
        "6 partitions of the pinned baseline 2019-01, 2019-02, 2019-03, 2019-04 and 2 more: "
        "2019-01 to 2019-06, 18 to 23 months before this partition"
    )


def _sluice(*args: str) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("sluice"))
    return subprocess.run([exe, *args], check=False, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("baseline", "expected"),
    thin(
        [
            ({"start": "2024-02", "end": "2024-03"}, "is not a day of the form YYYY-MM-DD"),
            (
                {"start": "2024-03-01", "end": "2024-02-01"},
                "baseline starts at 2024-03-01 after its end",
            ),
            ([], "an empty baseline list pins nothing"),
            ({"from": "2024-01-01"}, "from"),
        ]
    ),
)
def test_a_wrong_baseline_is_a_config_error_naming_the_key(
    make_dataset: SpecFactory, baseline: object, expected: str
) -> None:
    spec = make_dataset({}, extra={"monitor": {"baseline": baseline}})
    ran = _sluice("run", str(spec), "--partition", "2024-01-01")
    assert ran.returncode == 2, ran.stderr
    assert expected in ran.stderr
    assert "monitor" in ran.stderr
    assert "tiny.yaml" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_the_prefect_artifact_says_how_old_the_drift_reference_is() -> None:
    drift = {
        "column": "fare", "test": "psi", "statistic": 0.31, "p_value": None,
        "reference": ["2019-01", "2019-02"], "pinned_baseline": True,
        "reference_span": "2019-01 to 2019-02, 11 to 12 months before this partition",
    }  # fmt: skip
    assert drift_line(drift) == (
        "- **drift**: column `fare`: PSI = 0.310 against 2 partitions of the pinned baseline "
        "(2019-01 to 2019-02, 11 to 12 months before this partition)"
    )
