"""Monitoring against baselines: drift of every column, the drift share, a classifier test,
alarms that stay on until acknowledged or re-pinned, and change points in the metric history.

:func:`check_baseline` compares one partition's clean rows with a saved baseline's sample
(:mod:`sluice.report.baseline`) using the report's own per-column tests
(:func:`sluice.report.drift.detect_drift`), then the share of tested columns that drifted and a
classifier two-sample test (scikit-learn's ``HistGradientBoostingClassifier`` telling the two
samples apart, ROC AUC on a held-out third; 0.5 means indistinguishable). The baseline never
moves, so a shift alarms on every run for as long as it lasts; an acknowledgement of the drifted
columns (:func:`sluice.report.baseline.acknowledge`) quiets it until another column drifts, and
saving the baseline again (a new version) starts afresh.

:func:`change_points` finds level shifts in a metric's history with ``ruptures`` (PELT, an L2
cost, a penalty scaled to the series' own noise), so a new level is reported as a shift rather
than absorbed into a rolling band.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from sluice.config import LoadedSpec, ModelBaseline, Partition
from sluice.report.baseline import (
    BaselineError,
    SavedBaseline,
    acknowledgements,
    load_baseline,
    model_baseline,
    pick,
)
from sluice.report.drift import REF_PARTITION, DriftPolicy, DriftResult, detect_drift
from sluice.report.history import Baseline
from sluice.report.metrics import kind_of

Status = Literal["ok", "alarm", "acknowledged", "unavailable"]
CLASSIFIER_ROWS = 2_000
HOLDOUT = 1 / 3
MIN_CLASSIFIER_ROWS = 50
MIN_CHANGE_RUNS = 6
BASELINE_SCOPE = "baseline"
BASELINE_COLUMN_SCOPE = "baseline_column"


@dataclass(frozen=True)
class Classifier:
    """The classifier two-sample test: how well a model tells this partition from the baseline."""

    auc: float | None
    threshold: float | None
    rows: int
    reference_rows: int
    features: int
    note: str = ""

    @property
    def alarm(self) -> bool:
        """The AUC reached its threshold."""
        return self.auc is not None and self.threshold is not None and self.auc >= self.threshold


@dataclass(frozen=True)
class BaselineCheck:
    """This partition against one baseline."""

    name: str
    what: str
    reference: str
    drift: list[DriftResult]
    share: float | None
    share_threshold: float
    classifier: Classifier | None
    status: Status
    causes: list[str] = field(default_factory=list)
    acknowledged: list[dict[str, Any]] = field(default_factory=list)
    version: int | None = None
    source: str = "saved"

    @property
    def tested(self) -> list[DriftResult]:
        """Columns that were tested (not skipped)."""
        return [d for d in self.drift if d.kind != "skipped"]

    @property
    def drifted(self) -> list[DriftResult]:
        """Columns whose distribution moved away from the baseline."""
        return [d for d in self.drift if d.drifted]

    def as_dict(self) -> dict[str, Any]:
        """Plain values for the manifest, the artifacts and the alert event."""
        c = self.classifier
        return {
            "baseline": self.name,
            "version": self.version,
            "source": self.source,
            "what": self.what,
            "reference": self.reference,
            "status": self.status,
            "causes": self.causes,
            "drift_share": None if self.share is None else round(self.share, 6),
            "drift_share_threshold": self.share_threshold,
            "columns_tested": len(self.tested),
            "drifted": [d.column for d in self.drifted],
            "columns": [d.as_dict() for d in self.drift],
            "classifier_auc": None if c is None or c.auc is None else round(c.auc, 6),
            "classifier_threshold": None if c is None else c.threshold,
            "acknowledged": self.acknowledged,
        }


def unavailable(name: str, why: str, threshold: float) -> BaselineCheck:
    """A named baseline that could not be compared with: said, and alarmed, never skipped."""
    return BaselineCheck(
        name, f"baseline {name}", why, [], None, threshold, None, "unavailable", [why]
    )


def _slots(columns: Sequence[str]) -> dict[str, str]:
    return {c: f"_c{i}" for i, c in enumerate(columns)}


def column_drift(
    current: pl.DataFrame,
    baseline: SavedBaseline,
    columns: Sequence[str],
    partition: Partition,
    policy: DriftPolicy,
) -> list[DriftResult]:
    """Every column of ``current`` against the baseline's sample, under positional names (a
    column called ``*`` would otherwise be read as a pattern)."""
    sample = baseline.sample
    changed = {
        c: f"type changed since the baseline ({sample.get_column(c).dtype} there, "
        f"{current.get_column(c).dtype} here)"
        for c in columns
        if c in sample.columns
        and c in current.columns
        and kind_of(sample.get_column(c).dtype) != kind_of(current.get_column(c).dtype)
        and not sample.get_column(c).is_null().all()
    }
    tested = [
        c for c in columns if c in sample.columns and c in current.columns and c not in changed
    ]
    slot = _slots(tested)
    name = {v: k for k, v in slot.items()}
    n_parts = max(len(baseline.partitions), 1)
    pol = replace(policy, reference_partitions=n_parts, min_reference_partitions=1)
    cur = pl.DataFrame([current.get_column(c).alias(slot[c]) for c in tested])
    ref = pl.DataFrame(
        [sample.get_column(c).alias(slot[c]) for c in tested] + [sample.get_column(REF_PARTITION)]
    )
    got = detect_drift(cur, ref, list(slot.values()), policy=pol, partition=partition, pinned=True)
    by_column = {name[d.column]: replace(d, column=name[d.column]) for d in got}
    out = []
    for c in columns:
        if c in by_column:
            out.append(by_column[c])
        elif c in current.columns:
            out.append(
                DriftResult(
                    c,
                    "skipped",
                    "",
                    None,
                    None,
                    None,
                    current.height,
                    0,
                    [],
                    False,
                    changed.get(c, "not in the baseline"),
                )
            )
    return out


def _features(
    frame: pl.DataFrame, columns: Sequence[str], categories: Mapping[str, list[str]]
) -> np.ndarray[Any, np.dtype[np.float64]]:
    cols: list[np.ndarray[Any, np.dtype[np.float64]]] = []
    for c in columns:
        s = frame.get_column(c).rename("v")
        if c in categories:
            codes = {v: float(i) for i, v in enumerate(categories[c])}
            vals = [
                codes.get(v, float(len(codes))) if v is not None else math.nan
                for v in s.cast(pl.String).to_list()
            ]
            cols.append(np.asarray(vals, dtype=np.float64))
        else:
            arr = s.cast(pl.Float64).to_numpy().astype(np.float64)
            arr[~np.isfinite(arr)] = np.nan
            cols.append(arr)
    return np.column_stack(cols) if cols else np.empty((frame.height, 0))


def classifier_test(
    current: pl.DataFrame,
    reference: pl.DataFrame,
    columns: Sequence[str],
    threshold: float | None,
    *,
    seed: int = 0,
    rows: int = CLASSIFIER_ROWS,
) -> Classifier:
    """Held-out ROC AUC of a gradient-boosting classifier telling ``current`` rows from
    ``reference`` rows on ``columns`` (numbers as they are, strings and booleans as codes of
    their 50 most common baseline values, nulls as missing). Each side is sampled to ``rows``,
    the two sides weighted equally, and a seeded third of the rows held out to score."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits

    usable = [
        c
        for c in columns
        if c in reference.columns
        and kind_of(current.get_column(c).dtype) in ("numeric", "string", "boolean")
        and kind_of(reference.get_column(c).dtype) in ("numeric", "string", "boolean")
    ]
    if threshold is None:
        return Classifier(None, None, current.height, reference.height, 0, "switched off")
    if not usable:
        return Classifier(None, threshold, current.height, reference.height, 0, "no column to use")
    cur = pick(current, usable)
    ref = pick(reference, usable)
    if cur.height > rows:
        cur = cur.sample(rows, seed=seed)
    if ref.height > rows:
        ref = ref.sample(rows, seed=seed)
    if min(cur.height, ref.height) < MIN_CLASSIFIER_ROWS:
        return Classifier(
            None, threshold, cur.height, ref.height, len(usable),
            f"needs {MIN_CLASSIFIER_ROWS} rows on each side",
        )  # fmt: skip
    categories: dict[str, list[str]] = {}
    for c in usable:
        if kind_of(ref.get_column(c).dtype) != "numeric":
            values = ref.get_column(c).rename("v").cast(pl.String).drop_nulls()
            top = values.value_counts(sort=True, name="n")
            categories[c] = [str(v) for v in top.get_column("v").head(50).to_list()]
    x = np.vstack([_features(cur, usable, categories), _features(ref, usable, categories)])
    y = np.concatenate([np.ones(cur.height), np.zeros(ref.height)])
    w = np.where(y == 1, 0.5 / cur.height, 0.5 / ref.height) * len(y)
    model = HistGradientBoostingClassifier(
        max_iter=40, learning_rate=0.1, max_leaf_nodes=15, random_state=seed
    )
    fit_x, test_x, fit_y, test_y, fit_w, test_w = train_test_split(
        x, y, w, test_size=HOLDOUT, stratify=y, random_state=seed
    )
    # HistGradientBoosting's OpenMP threads spin against each other on a loaded machine (a
    # 0.2 s fit took 13 s on 2 busy cores): one thread is steady and fast enough at this size.
    with threadpool_limits(limits=1, user_api="openmp"):
        model.fit(fit_x, fit_y, sample_weight=fit_w)
        proba = model.predict_proba(test_x)[:, 1]
    auc = float(roc_auc_score(test_y, proba, sample_weight=test_w))
    return Classifier(auc, threshold, cur.height, ref.height, len(usable))


def _acknowledged(
    drifted: set[str], classifier_alarm: bool, acks: Sequence[Mapping[str, Any]], version: int
) -> list[dict[str, Any]]:
    """The acknowledgements (of this baseline version) that cover all of what alarms now; empty
    when something alarms that no one acknowledged."""
    mine = [dict(a) for a in acks if a.get("version") == version]
    covered = set().union(*(set(a.get("columns") or []) for a in mine)) if mine else set()
    classifier_ok = not classifier_alarm or any(a.get("classifier") for a in mine)
    if mine and drifted <= covered and classifier_ok:
        return mine
    return []


def check_baseline(
    current: pl.DataFrame,
    baseline: SavedBaseline,
    columns: Sequence[str],
    partition: Partition,
    *,
    share_threshold: float,
    classifier_auc: float | None,
    acks: Sequence[Mapping[str, Any]] = (),
    policy: DriftPolicy | None = None,
) -> BaselineCheck:
    """This partition's clean rows against ``baseline``: per-column drift, the drift share, the
    classifier test, and the alarm (quieted only by acknowledgements covering all of it)."""
    drift = column_drift(current, baseline, columns, partition, policy or DriftPolicy())
    tested = [d for d in drift if d.kind != "skipped"]
    drifted = [d for d in drift if d.drifted]
    share = len(drifted) / len(tested) if tested else None
    clf = classifier_test(current, baseline.sample, [d.column for d in tested], classifier_auc)
    causes = []
    if share is not None and share >= share_threshold:
        causes.append(
            f"{len(drifted)} of {len(tested)} columns drifted ({share:.0%}, threshold "
            f"{share_threshold:.0%}): {', '.join(d.column for d in drifted[:8])}"
        )
    if clf.alarm:
        causes.append(
            f"a classifier tells this partition from the baseline with ROC AUC {clf.auc:.3f} "
            f"(threshold {clf.threshold})"
        )
    if not tested:
        causes.append("no column could be compared with the baseline")
    status: Status = "alarm" if causes else "ok"
    acked: list[dict[str, Any]] = []
    if causes and tested:
        acked = _acknowledged({d.column for d in drifted}, clf.alarm, acks, baseline.version)
        if acked:
            status = "acknowledged"
    return BaselineCheck(
        name=baseline.name,
        what=baseline.what,
        reference=baseline.reference_text(partition),
        drift=drift,
        share=share,
        share_threshold=share_threshold,
        classifier=clf,
        status=status,
        causes=causes,
        acknowledged=acked,
        version=baseline.version or None,
        source=baseline.source,
    )


def metric_rows(checks: Sequence[BaselineCheck]) -> list[tuple[str, str, str, float | None, int]]:
    """The figures of each check as metric-history rows: scope ``baseline`` (name: the
    baseline) and ``baseline_column`` (name: ``<baseline>|<column>``)."""
    rows: list[tuple[str, str, str, float | None, int]] = []
    for c in checks:
        n = len(c.tested)
        rows.append((BASELINE_SCOPE, c.name, "drift_share", c.share, n))
        rows.append(
            (
                BASELINE_SCOPE,
                c.name,
                "alarm",
                1.0 if c.status in ("alarm", "unavailable") else 0.0,
                n,
            )
        )
        rows.append(
            (BASELINE_SCOPE, c.name, "acknowledged", 1.0 if c.status == "acknowledged" else 0.0, n)
        )
        auc = c.classifier.auc if c.classifier is not None else None
        rows.append(
            (
                BASELINE_SCOPE,
                c.name,
                "classifier_auc",
                auc,
                c.classifier.rows if c.classifier else 0,
            )
        )
        for d in c.tested:
            key = f"{c.name}|{d.column}"
            rows.append(
                (BASELINE_COLUMN_SCOPE, key, "drift", 1.0 if d.drifted else 0.0, d.n_current)
            )
            rows.append((BASELINE_COLUMN_SCOPE, key, "drift_statistic", d.statistic, d.n_current))
    return rows


def last_drifted(history: pl.DataFrame, name: str) -> tuple[str | None, list[str], bool]:
    """The latest partition in ``history`` compared with baseline ``name``, the columns that
    drifted against it there, and whether its classifier test alarmed (for acknowledging)."""
    rows = history.filter(pl.col("scope") == BASELINE_SCOPE, pl.col("name") == name)
    if rows.is_empty():
        return None, [], False
    last = rows.sort("partition_start")["partition"][-1]
    at = history.filter(pl.col("partition") == last)
    prefix = f"{name}|"
    cols = at.filter(
        pl.col("scope") == BASELINE_COLUMN_SCOPE,
        pl.col("metric") == "drift",
        pl.col("value") >= 1,
        pl.col("name").str.starts_with(prefix),
    )["name"].to_list()
    auc = at.filter(
        pl.col("scope") == BASELINE_SCOPE,
        pl.col("name") == name,
        pl.col("metric") == "classifier_auc",
    )
    share = at.filter(
        pl.col("scope") == BASELINE_SCOPE, pl.col("name") == name, pl.col("metric") == "alarm"
    )
    alarmed = bool(share.height and share["value"][0] == 1.0)
    clf = bool(auc.height and auc["value"][0] is not None) and alarmed
    return str(last), sorted(c[len(prefix) :] for c in cols), clf


@dataclass(frozen=True)
class ChangePoint:
    """A level shift in one metric's history."""

    scope: str
    name: str
    metric: str
    partition: str
    before: float
    after: float
    runs_after: int

    @property
    def label(self) -> str:
        """``scope name metric`` for people."""
        return " ".join(p for p in (self.scope, self.name, self.metric) if p)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for the manifest."""
        return {
            "scope": self.scope,
            "name": self.name,
            "metric": self.metric,
            "partition": self.partition,
            "before": self.before,
            "after": self.after,
            "runs_after": self.runs_after,
        }


def level_shifts(
    values: Sequence[float] | np.ndarray[Any, np.dtype[np.float64]],
    *,
    min_size: int = 3,
    sensitivity: float = 3.0,
) -> list[int]:
    """Indices where a series' level changes (each the first index of a new segment), by PELT
    with an L2 cost and the penalty ``sensitivity * log(n) * noise²``, the noise being the
    robust (MAD) spread of successive differences; a flat series has none."""
    import ruptures as rpt

    x = np.asarray(values, dtype=np.float64)
    n = x.size
    if n < 2 * min_size:
        return []
    diffs = np.diff(x)
    noise = 1.4826 * float(np.median(np.abs(diffs - np.median(diffs)))) / math.sqrt(2)
    span = float(np.max(x) - np.min(x))
    if span == 0:
        return []
    noise = max(noise, 1e-3 * span, 1e-12)
    pen = 2 * sensitivity * math.log(n) * noise**2
    ends = rpt.Pelt(model="l2", min_size=min_size, jump=1).fit(x.reshape(-1, 1)).predict(pen=pen)
    return [int(e) for e in ends[:-1]]


def change_points(
    history: pl.DataFrame,
    metrics: pl.DataFrame,
    keys: Sequence[tuple[str, str, str]],
    *,
    min_effect: float = 0.5,
) -> list[ChangePoint]:
    """Level shifts in the series of ``keys`` (the history then this run): each new level that
    differs from the one before by at least ``min_effect`` times the larger of their spreads
    and by a visible amount (5% of the series' range)."""
    both = pl.concat([history.select(metrics.columns), metrics], how="vertical_relaxed")
    out: list[ChangePoint] = []
    for scope, name, metric in keys:
        s = (
            both.filter(
                pl.col("scope") == scope, pl.col("name") == name, pl.col("metric") == metric
            )
            .drop_nulls("value")
            .unique("partition", keep="last")
            .sort("partition_start")
        )
        vals = s["value"].to_list()
        if len(vals) < MIN_CHANGE_RUNS:
            continue
        x = np.asarray(vals, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            continue
        cuts = level_shifts(x)
        bounds = [0, *cuts, len(x)]
        span = float(np.max(x) - np.min(x))
        parts = s["partition"].to_list()
        for i, cut in enumerate(cuts):
            a, b = x[bounds[i] : cut], x[cut : bounds[i + 2]]
            gap = abs(float(b.mean() - a.mean()))
            spread = max(float(a.std()), float(b.std()))
            if gap < 0.05 * span or gap < min_effect * spread:
                continue
            out.append(
                ChangePoint(
                    scope,
                    name,
                    metric,
                    str(parts[cut]),
                    float(a.mean()),
                    float(b.mean()),
                    len(x) - cut,
                )
            )
    return out


@dataclass(frozen=True)
class MonitorPlan:
    """What one run is compared with: the named baselines (or why one cannot be), their
    acknowledgements, the thresholds, and the baseline that pins the anomaly bands."""

    baselines: list[SavedBaseline | tuple[str, str]]
    acks: dict[str, list[dict[str, Any]]]
    share_threshold: float
    classifier_auc: float | None
    bands: Baseline | None = None
    policy: DriftPolicy = field(default_factory=DriftPolicy)


def model_baseline_name(detector: str) -> str:
    """The name a model's training partitions go by as a baseline."""
    return f"model-{detector}"


def _model_entry(
    loaded: LoadedSpec, entry: ModelBaseline, reports: Any
) -> SavedBaseline | tuple[str, str]:
    name = model_baseline_name(entry.model)
    index = next(i for i, d in enumerate(loaded.spec.detectors) if d.name == entry.model)
    det = loaded.spec.detectors[index]
    path = loaded.resolve(str(det.model), key=f"detectors[{index}].model")
    try:
        return model_baseline(
            reports,
            dataset=loaded.name,
            detector=entry.model,
            path=Path(path),
            sha256=det.model_sha256,
            kind=loaded.spec.partition.kind,
            key=loaded.spec.partition.key,
            storage_options=loaded.storage_options(),
        )
    except BaselineError as exc:
        return name, str(exc)


def plan_monitoring(loaded: LoadedSpec, partition: Partition) -> MonitorPlan:
    """Resolve ``monitor.baselines`` of a spec for one run. A baseline that is missing or does
    not verify stays in the plan with the reason, so the run says so instead of skipping it."""
    m = loaded.spec.monitor
    reports = loaded.output_root("reports")
    got: list[SavedBaseline | tuple[str, str]] = []
    acks: dict[str, list[dict[str, Any]]] = {}
    bands: Baseline | None = None
    for entry in m.baselines:
        if isinstance(entry, ModelBaseline):
            item = _model_entry(loaded, entry, reports)
        else:
            try:
                found = load_baseline(reports, entry)
            except BaselineError as exc:
                found = None
                item = (entry, str(exc))
            else:
                item = found or (
                    entry,
                    f"no saved baseline named {entry!r} under {reports}; save it with "
                    f"`sluice baseline {loaded.name} --name {entry} --start ... --end ...`",
                )
            if found is not None and (found.kind, found.key) != (partition.kind, partition.key):
                item = (entry, f"baseline {entry!r} holds {found.kind} partitions of "
                        f"{found.key!r}; this dataset has {partition.kind} partitions of "
                        f"{partition.key!r}")  # fmt: skip
            if entry == m.bands_from:
                days = frozenset(item.starts) if isinstance(item, SavedBaseline) else frozenset()
                # an unavailable baseline pins no partition rather than falling back silently
                bands = Baseline(partition.kind, partitions=days or frozenset({dt.date.min}))
        name = item[0] if isinstance(item, tuple) else item.name
        acks[name] = acknowledgements(reports, name)
        got.append(item)
    return MonitorPlan(got, acks, m.drift_share, m.classifier_auc, bands)


def check_all(
    clean: pl.DataFrame, columns: Sequence[str], partition: Partition, plan: MonitorPlan
) -> list[BaselineCheck]:
    """This partition's clean rows against every baseline of ``plan``."""
    out = []
    for b in plan.baselines:
        if isinstance(b, tuple):
            out.append(unavailable(b[0], b[1], plan.share_threshold))
            continue
        out.append(
            check_baseline(
                clean,
                b,
                columns,
                partition,
                share_threshold=plan.share_threshold,
                classifier_auc=plan.classifier_auc,
                acks=plan.acks.get(b.name, []),
                policy=plan.policy,
            )
        )
    return out


CHANGE_METRICS = frozenset(
    {
        ("run", "quarantine_rate"),
        ("stage", "rate"),
        ("column", "null_rate"),
        ("detector", "flagged_rate"),
        (BASELINE_SCOPE, "drift_share"),
    }
)


def change_keys(metrics: pl.DataFrame) -> list[tuple[str, str, str]]:
    """The metrics of this run whose history is searched for level shifts: the quarantine
    rate, each stage's rate, null rates, detectors' flagged rates, drift shares."""
    keys = metrics.select("scope", "name", "metric").unique(maintain_order=True).iter_rows()
    return [(s, n, m) for s, n, m in keys if (s, m) in CHANGE_METRICS]


__all__ = [
    "BaselineCheck",
    "ChangePoint",
    "Classifier",
    "MonitorPlan",
    "change_keys",
    "change_points",
    "check_all",
    "check_baseline",
    "classifier_test",
    "column_drift",
    "last_drifted",
    "level_shifts",
    "metric_rows",
    "plan_monitoring",
    "unavailable",
]
