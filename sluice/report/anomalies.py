"""Judge today's metrics against their history, allowing for the season of the partition.

For a daily dataset a metric is compared with its values on the same weekday in the previous
``weeks`` weeks (Mondays with Mondays), so a quiet Sunday is not an alarm; for a monthly dataset,
with the previous ``window`` months, or with the same month of earlier years once there are
``min_same_month`` of them. Nothing is judged until there are at least ``min_same_weekday``
(daily) or ``min_history`` (monthly) earlier values: until then the metric is *learning*. A spec
can pin a baseline (``monitor.baseline``): then only its partitions are the reference, so a
sustained shift keeps alarming instead of becoming the new normal. Every finding names its
reference partitions and how old they are.

The band is the reference median plus or minus a tolerance: the largest of ``k`` robust standard
deviations (1.4826 times the median absolute deviation, of the same-weekday values or of all
recent values, whichever is wider), the sampling noise of a rate (``k``
binomial standard deviations at today's row count) and a floor (an absolute one for rates, a
relative one for counts and score levels), so a metric that never moved does not alarm on the
first row that differs. Measuring (:mod:`sluice.report.metrics`) is kept apart from this judging,
which takes plain numbers.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import polars as pl

from sluice.report.history import Baseline, age_span

MetricKind = Literal["count", "rate", "level"]
Status = Literal["alarm", "ok", "learning"]
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = tuple(dt.date(2000, m, 1).strftime("%B") for m in range(1, 13))


@dataclass(frozen=True)
class AnomalyPolicy:
    """How wide the band is and how much history it needs."""

    k: float = 4.0
    min_same_weekday: int = 3
    weeks: int = 8
    min_history: int = 6
    window: int = 12
    min_same_month: int = 3
    years: int = 5
    rate_floor: float = 0.005
    count_floor: float = 0.10
    level_floor: float = 0.10


@dataclass(frozen=True)
class Band:
    """The range a value was expected in."""

    median: float
    low: float
    high: float


NORMAL_MAD = 0.6744897501960817
"""The median absolute deviation of a standard normal (its 0.75 quantile), as scipy divides by."""


def _spread(values: Sequence[float]) -> float:
    """The robust standard deviation (the median absolute deviation scaled to a normal's sd)
    of the finite values; 0 when there are none (the band's floors then decide)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0
    # scipy.stats.median_abs_deviation(v, scale="normal"), without its half-second import
    return float(np.median(np.abs(v - np.median(v))) / NORMAL_MAD)


def band(
    reference: Sequence[float],
    kind: MetricKind,
    n: int,
    *,
    policy: AnomalyPolicy = AnomalyPolicy(),
    recent: Sequence[float] = (),
    scale: float | None = None,
) -> Band:
    """The expected range given earlier values; ``n`` is today's denominator (rows) for rates.

    ``recent`` are the values of all recent partitions, weekdays mixed: their spread is a steadier
    estimate of the noise than a handful of same-weekday values, so the band is never narrower.
    ``scale`` is the natural unit of a level (for detector scores, the typical distance from the
    median score to the 90th percentile); the floor of a level is ``level_floor`` of it, or of
    the median when no scale is given.
    """
    med = float(np.median(np.asarray(reference, dtype=np.float64)))
    tol = policy.k * max(_spread(reference), _spread(recent))
    if kind == "rate":
        p = min(max(med, 1.0 / max(n, 1)), 1.0)
        noise = math.sqrt(p * (1 - p) / max(n, 1))
        tol = max(tol, policy.k * noise, policy.rate_floor)
        return Band(med, max(med - tol, 0.0), min(med + tol, 1.0))
    if kind == "count":
        tol = max(tol, policy.count_floor * abs(med), 1.0)
        return Band(med, max(med - tol, 0.0), med + tol)
    unit = abs(scale) if scale is not None else abs(med)
    tol = max(tol, policy.level_floor * unit, 1e-12)
    return Band(med, med - tol, med + tol)


def reference_points(
    history: Sequence[tuple[dt.date, float]],
    day: dt.date,
    partition_kind: str,
    policy: AnomalyPolicy = AnomalyPolicy(),
    baseline: Baseline | None = None,
) -> tuple[list[tuple[dt.date, float]], list[float], str, int]:
    """The partitions today is compared with, all recent values, what they are, and how many
    are needed.

    Daily: the same weekday of the previous ``weeks`` weeks. Monthly: the previous ``window``
    months, or the same month of earlier years once there are ``min_same_month`` of them. With
    a pinned ``baseline`` only its partitions count (the same weekday among them when there are
    enough, else all of them), however old.
    """
    if baseline is not None:
        pinned = sorted((d, v) for d, v in history if d in baseline and d != day)
        pinned = [(d, v) for d, v in pinned if not math.isnan(v)]
        values = [v for _, v in pinned]
        if partition_kind == "day":
            same = [(d, v) for d, v in pinned if d.weekday() == day.weekday()]
            if len(same) >= policy.min_same_weekday:
                what = f"{len(same)} {WEEKDAYS[day.weekday()]}s of the {baseline}"
                return same, values, what, policy.min_same_weekday
        return pinned, values, f"{len(pinned)} partitions of the {baseline}", policy.min_history
    earlier = sorted((d, v) for d, v in history if d < day and not math.isnan(v))
    if partition_kind == "day":
        recent = [v for d, v in earlier if (day - d).days <= 7 * policy.weeks]
        same = [(d, v) for d, v in earlier if d.weekday() == day.weekday()][-policy.weeks :]
        what = f"{len(same)} earlier {WEEKDAYS[day.weekday()]}s"
        return same, recent, what, policy.min_same_weekday
    last = earlier[-policy.window :]
    recent = [v for _, v in last]
    years = [(d, v) for d, v in earlier if d.month == day.month][-policy.years :]
    if len(years) >= policy.min_same_month:
        what = f"{len(years)} earlier {MONTHS[day.month - 1]}s"
        return years, recent, what, policy.min_same_month
    return last, recent, f"{len(last)} previous months", policy.min_history


def reference_values(
    history: Sequence[tuple[dt.date, float]],
    day: dt.date,
    partition_kind: str,
    policy: AnomalyPolicy = AnomalyPolicy(),
) -> tuple[list[float], list[float], str, bool]:
    """The earlier values today is compared with, all recent values, a description, and whether
    there are enough of them."""
    points, recent, what, need = reference_points(history, day, partition_kind, policy)
    return [v for _, v in points], recent, what, len(points) >= need


def method_text(partition_kind: str, policy: AnomalyPolicy, baseline: Baseline | None) -> str:
    """How this dataset's metrics are judged, in words, for the report."""
    if partition_kind == "hour":
        return (
            "Hourly metrics are recorded in the metric history but not judged against it: "
            "hourly partitions have no anomaly bands yet (docs/design.md, hourly partitions)"
        )
    if baseline is not None:
        return (
            f"Metrics are judged against the {baseline} (the same weekday among its partitions "
            "when it holds enough of them), however old, until the spec's monitor.baseline is "
            "moved"
            if partition_kind == "day"
            else f"Metrics are judged against the {baseline}, however old, until the spec's "
            "monitor.baseline is moved"
        )
    if partition_kind == "day":
        return (
            f"Daily metrics are judged against the same weekday of up to {policy.weeks} earlier "
            f"weeks; nothing is judged before {policy.min_same_weekday} such runs"
        )
    return (
        f"Monthly metrics are judged against up to {policy.window} previous months, or against "
        f"the same month of up to {policy.years} earlier years once there are "
        f"{policy.min_same_month}; nothing is judged before {policy.min_history} earlier months"
    )


@dataclass(frozen=True)
class Finding:
    """The verdict on one metric of this run."""

    scope: str
    name: str
    metric: str
    kind: MetricKind
    value: float
    status: Status
    reference: str
    n_reference: int
    median: float | None = None
    low: float | None = None
    high: float | None = None
    reference_partitions: tuple[str, ...] = ()
    pinned: bool = False

    @property
    def label(self) -> str:
        """``scope name metric`` for people."""
        return " ".join(p for p in (self.name, self.metric.replace("_", " ")) if p)

    @property
    def direction(self) -> str:
        """``above`` or ``below`` the band (empty unless an alarm)."""
        if self.status != "alarm" or self.median is None:
            return ""
        return "above" if self.value > self.median else "below"

    def as_dict(self) -> dict[str, Any]:
        """Plain values for the manifest and artifacts."""
        return {**asdict(self), "direction": self.direction}


def judge(
    value: float,
    n: int,
    history: Sequence[tuple[dt.date, float]],
    day: dt.date,
    *,
    kind: MetricKind,
    partition_kind: str = "day",
    policy: AnomalyPolicy = AnomalyPolicy(),
    key: tuple[str, str, str] = ("", "", ""),
    scale: float | None = None,
    baseline: Baseline | None = None,
) -> Finding:
    """Judge one value against its history; the finding names its reference partitions and
    how old they are."""
    points, recent, what, need = reference_points(history, day, partition_kind, policy, baseline)
    days = [d for d, _ in points]
    parts = tuple(d.isoformat() if partition_kind == "day" else d.strftime("%Y-%m") for d in days)
    pinned = baseline is not None
    where = f"{what}: {age_span(days, day, partition_kind)}" if days else what
    if len(points) < need:
        note = f"{where}; needs {need}"
        if pinned:
            note += "; screen the baseline's partitions or move monitor.baseline"
        return Finding(*key, kind, value, "learning", note, len(points), None, None, None,
                       parts, pinned)  # fmt: skip
    ref = [v for _, v in points]
    b = band(ref, kind, n, policy=policy, recent=recent, scale=scale)
    status: Status = "alarm" if value < b.low or value > b.high else "ok"
    return Finding(*key, kind, value, status, where, len(ref), b.median, b.low, b.high,
                   parts, pinned)  # fmt: skip


JUDGED: tuple[tuple[str, str, MetricKind], ...] = (
    ("run", "rows_in", "count"),
    ("run", "quarantine_rate", "rate"),
    ("column", "null_rate", "rate"),
    ("rule", "rate", "rate"),
    ("detector", "flagged_rate", "rate"),
    ("detector", "score_p50", "level"),
    ("detector", "score_p90", "level"),
    ("detector", "score_p99", "level"),
)


def detect(
    current: pl.DataFrame,
    history: pl.DataFrame,
    *,
    partition_kind: str = "day",
    policy: AnomalyPolicy = AnomalyPolicy(),
    baseline: Baseline | None = None,
) -> list[Finding]:
    """Judge every monitored metric of ``current`` (one run's metrics) against ``history``
    (the rolling window before it, or the pinned ``baseline``'s partitions).

    A rule that marked no rows in an earlier partition counts as rate 0 there, and a rule seen
    before but not today is judged at 0 too (a check that suddenly stops failing is news).
    """
    if current.is_empty():
        return []
    day: dt.date = current["partition_start"][0]
    scales = _score_scales(current, history)
    now: dict[tuple[str, str, str], tuple[float | None, int]] = {
        (sc, nm, mt): (v, d)
        for sc, nm, mt, v, d in current.select(
            "scope", "name", "metric", "value", "denominator"
        ).iter_rows()
    }
    past: dict[tuple[str, str, str], dict[dt.date, float | None]] = {}
    for sc, nm, mt, d, v in history.select(
        "scope", "name", "metric", "partition_start", "value"
    ).iter_rows():
        past.setdefault((sc, nm, mt), {})[d] = v
    past_parts = sorted(set(history["partition_start"].to_list()))
    n_default = int(now.get(("run", "", "rows_in"), (0.0, 0))[1])
    findings: list[Finding] = []
    for scope, metric, kind in JUDGED:
        names = {k[1] for k in now if k[0] == scope and k[2] == metric}
        if scope == "rule":
            names |= {k[1] for k in past if k[0] == scope and k[2] == metric}
        for name in sorted(names):
            key = (scope, name, metric)
            value, n = now.get(key, (None, n_default))
            if value is None:
                if scope != "rule":
                    continue
                value = 0.0
            series = past.get(key, {})
            if scope == "rule":
                points = [(d, float(series.get(d) or 0.0)) for d in past_parts]
            else:
                points = [(d, float(v)) for d, v in series.items() if v is not None]
            findings.append(
                judge(
                    float(value),
                    int(n),
                    points,
                    day,
                    kind=kind,
                    partition_kind=partition_kind,
                    policy=policy,
                    key=key,
                    scale=scales.get(name) if kind == "level" else None,
                    baseline=baseline,
                )
            )
    return findings


def _score_scales(current: pl.DataFrame, history: pl.DataFrame) -> dict[str, float]:
    """Per detector, the median over runs of (90th percentile - median) of its scores."""
    both = pl.concat([history, current], how="vertical_relaxed")
    wide = (
        both.filter(
            (pl.col("scope") == "detector") & pl.col("metric").is_in(["score_p50", "score_p90"])
        )
        .pivot(on="metric", index=["name", "partition"], values="value", aggregate_function="first")
        .drop_nulls()
    )
    if wide.is_empty() or "score_p90" not in wide.columns or "score_p50" not in wide.columns:
        return {}
    got = wide.group_by("name").agg((pl.col("score_p90") - pl.col("score_p50")).median().alias("s"))
    return {n: float(v) for n, v in got.iter_rows() if v is not None}
