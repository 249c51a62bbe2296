"""The anomaly judge, fed numbers by hand."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
from scipy import stats

from sluice.report.anomalies import (
    AnomalyPolicy,
    _spread,
    band,
    detect,
    judge,
    reference_values,
)
from sluice.report.metrics import METRICS_SCHEMA

MONDAY = dt.date(2024, 3, 4)
NORMAL_QUARTILE = 0.6744897501960817  # the standard normal's 75th percentile: MAD / sd


def days(n: int, start: dt.date = MONDAY) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range(n)]


def test_rate_band_has_a_floor_when_history_never_moved() -> None:
    b = band([0.0, 0.0, 0.0], "rate", 2000)
    assert b.median == 0.0
    assert b.low == 0.0
    assert b.high == pytest.approx(0.005)


def test_rate_band_widens_with_sampling_noise_at_few_rows() -> None:
    many = band([0.3, 0.3, 0.3], "rate", 100_000)
    few = band([0.3, 0.3, 0.3], "rate", 50)
    assert few.high - few.low > 10 * (many.high - many.low)
    assert few.high == pytest.approx(0.3 + 4 * (0.3 * 0.7 / 50) ** 0.5)


def test_count_band_uses_the_robust_spread_when_it_is_wider_than_the_floor() -> None:
    ref = [1000.0, 1200.0, 800.0, 1100.0, 900.0, 5000.0]
    b = band(ref, "count", 0)
    mad = 150.0 / NORMAL_QUARTILE
    assert b.median == 1050.0
    assert b.high == pytest.approx(1050.0 + 4 * mad)


def test_recent_spread_keeps_a_lucky_same_weekday_band_from_being_too_narrow() -> None:
    narrow = band([10.0, 10.0, 10.0], "level", 0, scale=0.0)
    wide = band([10.0, 10.0, 10.0], "level", 0, recent=[9.0, 10.0, 11.0, 10.0, 12.0], scale=0.0)
    assert narrow.high - narrow.low < 1e-9
    assert wide.high == pytest.approx(10.0 + 4 / NORMAL_QUARTILE)


def test_the_spread_ignores_nan_and_inf_and_is_zero_without_data() -> None:
    assert _spread([1.0, 2.0, 3.0, 4.0, 100.0]) == pytest.approx(1.0 / NORMAL_QUARTILE)
    assert _spread([1.0, 2.0, math.nan, 3.0, 4.0, 100.0, math.inf]) == pytest.approx(
        1.0 / NORMAL_QUARTILE
    )
    assert _spread([]) == 0.0
    assert _spread([math.nan]) == 0.0
    assert _spread([7.0, 7.0, 7.0]) == 0.0
    b = band([5.0, 5.0, 5.0], "level", 0, recent=[math.nan, math.nan], scale=1.0)
    assert (b.low, b.high) == pytest.approx((4.9, 5.1)), "the floor decides"


def test_level_floor_follows_the_given_scale_not_a_median_near_zero() -> None:
    b = band([0.0, 0.0, 0.0], "level", 0, scale=0.5)
    assert b.high == pytest.approx(0.05)


def test_reference_is_the_same_weekday_and_needs_three() -> None:
    hist = [(d, float(i)) for i, d in enumerate(days(20))]
    monday = MONDAY + dt.timedelta(days=21)
    ref, recent, what, enough = reference_values(hist, monday, "day")
    assert ref == [0.0, 7.0, 14.0]
    assert len(recent) == 20
    assert enough
    assert what == "3 earlier Mondays"
    ref, _, _, enough = reference_values(hist[:14], monday, "day")
    assert ref == [0.0, 7.0]
    assert not enough


def test_reference_ignores_later_partitions_and_keeps_the_last_weeks() -> None:
    hist = [(d, float(i)) for i, d in enumerate(days(120))]
    day = MONDAY + dt.timedelta(days=70)
    ref, _, _, _ = reference_values(hist, day, "day", AnomalyPolicy(weeks=4))
    assert ref == [42.0, 49.0, 56.0, 63.0]


def test_monthly_partitions_use_the_previous_months() -> None:
    months = [dt.date(2023, m, 1) for m in range(1, 13)]
    hist = [(d, 100.0) for d in months]
    f = judge(50.0, 0, hist, dt.date(2024, 1, 1), kind="count", partition_kind="month")
    assert f.status == "alarm"
    assert (
        f.reference
        == "12 previous months: 2023-01 to 2023-12, 1 to 12 months before this partition"
    )
    f = judge(50.0, 0, hist[:5], dt.date(2023, 6, 1), kind="count", partition_kind="month")
    assert f.status == "learning"


def test_judge_learns_then_alarms_on_either_side() -> None:
    hist = [(d, 2000.0 if d.weekday() < 5 else 1400.0) for d in days(21)]
    monday, sunday = MONDAY + dt.timedelta(days=21), MONDAY + dt.timedelta(days=27)
    assert judge(1000.0, 0, hist[:14], monday, kind="count").status == "learning"
    assert judge(1000.0, 0, hist, monday, kind="count").status == "alarm"
    assert judge(1000.0, 0, hist, monday, kind="count").direction == "below"
    assert judge(3000.0, 0, hist, monday, kind="count").direction == "above"
    assert judge(2050.0, 0, hist, monday, kind="count").status == "ok"
    assert judge(1400.0, 0, hist, sunday, kind="count").status == "ok"
    assert judge(1400.0, 0, hist, monday, kind="count").status == "alarm"


def _metrics(day: dt.date, rows: list[tuple[str, str, str, float, int]]) -> pl.DataFrame:
    base = {
        "dataset": "d",
        "partition": str(day),
        "partition_start": day,
        "weekday": day.weekday(),
        "run_id": "r",
        "finished_at": "",
    }
    return pl.DataFrame(
        [
            {**base, "scope": s, "name": n, "metric": m, "value": v, "denominator": d}
            for s, n, m, v, d in rows
        ],
        schema=METRICS_SCHEMA,
    )


def test_detect_counts_a_rule_absent_from_a_partition_as_zero() -> None:
    history = pl.concat(
        [
            _metrics(
                d,
                [("run", "", "rows_in", 1000.0, 1000)]
                + ([("rule", "x|old", "rate", 0.2, 1000)] if i != 0 else []),
            )
            for i, d in enumerate(days(21))
        ]
    )
    today = MONDAY + dt.timedelta(days=21)
    current = _metrics(
        today, [("run", "", "rows_in", 1000.0, 1000), ("rule", "x|new", "rate", 0.05, 1000)]
    )
    found = {(f.name, f.metric): f for f in detect(current, history)}
    assert found[("x|new", "rate")].status == "alarm"
    assert found[("x|new", "rate")].median == 0.0
    old = found[("x|old", "rate")]
    assert old.value == 0.0
    assert old.median == pytest.approx(0.2)
    assert old.status == "alarm"
    assert found[("", "rows_in")].status == "ok"


@pytest.mark.parametrize("seed", range(4))
def test_the_robust_spread_is_scipys_scaled_mad(seed: int) -> None:
    values = np.random.default_rng(seed).standard_t(2, size=seed * 7 + 1)
    assert _spread(list(values)) == stats.median_abs_deviation(values, scale="normal")
