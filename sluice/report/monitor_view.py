"""The "Drift against baselines" section of report.html: what :mod:`sluice.report.monitor`
found, as rows, sentences and plot geometry for the template (no markup here)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from sluice.report import plots
from sluice.report.markup import fmt_num, fmt_pct
from sluice.report.metrics import Categories
from sluice.report.monitor import BASELINE_SCOPE, BaselineCheck

if TYPE_CHECKING:
    from sluice.report.build import Report

View = dict[str, Any]
MAX_OVERLAYS = 6
SHARE_RUNS = 28


def _overlay(d: Any, baseline: str) -> plots.Plot | None:
    dist = d.distribution
    if dist is None:
        return None
    series = [
        plots.Series(
            "this partition", dist.clean.tolist(), plots.ALARM if d.drifted else plots.QUARANTINE
        ),
        plots.Series(f"baseline {baseline}", dist.quarantine.tolist(), plots.CLEAN),
    ]
    label = f"{d.column}: this partition against baseline {baseline}"
    if isinstance(dist, Categories):
        return plots.category_bars(dist.labels, series, label=label)
    return plots.histogram(series, dist.edges, label=label, x_format=fmt_num)


def _share_trend(r: Report, c: BaselineCheck) -> plots.Plot:
    h = (
        r.history.filter(
            (pl.col("scope") == BASELINE_SCOPE)
            & (pl.col("name") == c.name)
            & (pl.col("metric") == "drift_share")
        )
        .sort("partition_start")
        .tail(SHARE_RUNS - 1)
    )
    labels = [*h["partition"].to_list(), str(r.outputs.partition)]
    values: list[float | None] = [*h["value"].to_list(), c.share]
    return plots.trend(
        labels,
        values,
        label=f"drift share against baseline {c.name}, last {len(labels)} runs",
        band=(0.0, c.share_threshold),
        alarm=c.status == "alarm",
        value_format=fmt_pct,
    )


def _ack_text(c: BaselineCheck) -> str:
    if not c.acknowledged:
        return ""
    parts = [
        f"{a.get('by')} on {str(a.get('at', ''))[:10]}: {a.get('reason')} "
        f"({', '.join(a.get('columns') or []) or 'no column'}"
        f"{', classifier' if a.get('classifier') else ''})"
        for a in c.acknowledged
    ]
    return "Acknowledged by " + "; ".join(parts)


def _check(r: Report, c: BaselineCheck) -> View:
    rows = [
        {
            "column": d.column,
            "kind": d.kind,
            "test": d.test or "–",
            "statistic": fmt_num(d.statistic),
            "p": f"{d.p_value:.2g}" if d.p_value is not None else "–",
            "rows": f"{fmt_num(d.n_current)} / {fmt_num(d.n_reference)}",
            "verdict": "drift" if d.drifted else "skipped" if d.kind == "skipped" else "ok",
            "drifted": d.drifted,
            "note": d.note,
        }
        for d in c.drift
    ]
    tested = sorted(c.tested, key=lambda d: (not d.drifted, -(d.statistic or 0.0), d.column))
    overlays = []
    for d in tested[:MAX_OVERLAYS]:
        plot = _overlay(d, c.name)
        if plot is not None:
            overlays.append({"column": d.column, "drifted": d.drifted, "plot": plot})
    clf = c.classifier
    if clf is None:
        clf_text = "classifier test: not run"
    elif clf.auc is None:
        clf_text = f"classifier test: not run ({clf.note})"
    else:
        clf_text = (
            f"classifier test: ROC AUC {clf.auc:.3f} telling {fmt_num(clf.rows)} rows of this "
            f"partition from {fmt_num(clf.reference_rows)} of the baseline on {clf.features} "
            f"columns (0.5: indistinguishable; alarm at {clf.threshold})"
        )
    share = "–" if c.share is None else f"{fmt_pct(c.share)} ({len(c.drifted)} of {len(c.tested)})"
    return {
        "name": c.name,
        "status": c.status,
        "what": c.what,
        "reference": c.reference,
        "share": share,
        "threshold": fmt_pct(c.share_threshold),
        "classifier": clf_text,
        "causes": c.causes,
        "ack": _ack_text(c),
        "rows": rows,
        "overlays": overlays,
        "trend": _share_trend(r, c) if c.status != "unavailable" else None,
    }


HEAD = ("column", "kind", "test", "statistic", "p", "rows (this / baseline)", "verdict")
NUMERIC = frozenset({"statistic", "p", "rows (this / baseline)"})


def baselines_view(r: Report) -> View:
    """The section's view: one block per named baseline, and the change points."""
    shifts = [
        {
            "what": s.label,
            "text": f"from {fmt_num(s.before)} to {fmt_num(s.after)} at {s.partition} "
            f"({s.runs_after} run{'s' if s.runs_after != 1 else ''} at the new level, "
            "this one included)",
        }
        for s in r.shifts
    ]
    return {
        "shown": bool(r.monitoring or r.shifts),
        "checks": [_check(r, c) for c in r.monitoring],
        "head": HEAD,
        "numeric": NUMERIC,
        "shifts": shifts,
    }


def baseline_attention(r: Report) -> list[View]:
    """The "Needs attention" lines of baselines this run alarms against."""
    return [
        {"name": c.name, "text": "; ".join(c.causes), "reference": c.reference}
        for c in r.monitoring
        if c.status in ("alarm", "unavailable")
    ]


__all__ = ["baseline_attention", "baselines_view"]
