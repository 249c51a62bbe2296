"""Render a :class:`~sluice.report.build.Report` as one self-contained HTML file.

Inline CSS, inline SVG plots, no script and no external resource: the file reads the same on a
laptop with no network. The markup lives in Jinja2 templates (``sluice/report/templates``,
loaded from the installed package) with autoescaping on, so everything taken from the data
reaches the page as text; this module computes the view model: which rows, which numbers, in
which words. The output depends only on the report (no clock, no random ids), so rebuilding a
report from unchanged outputs gives the same bytes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
from collections.abc import Callable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import jinja2
import jinja2.bccache
import numpy as np
import polars as pl
from markupsafe import Markup, escape

from sluice.report import plots
from sluice.report.anomalies import WEEKDAYS, Finding, method_text
from sluice.report.drift import DriftResult
from sluice.report.markup import fmt_num, fmt_pct
from sluice.report.metrics import (
    Categories,
    ColumnProfile,
    DetectorStats,
    Example,
    Histogram,
)
from sluice.report.monitor_view import baseline_attention, baselines_view
from sluice.report.segments import SegmentBias
from sluice.verdict import verdict_state, why_not_run

if TYPE_CHECKING:
    from sluice.report.build import Report

TREND_RUNS = 28
STAGE_LABELS = {
    "ingest": "ingest (did not parse)",
    "validate": "validate (suite rules)",
    "screen": "screen (outliers)",
    "partition": "partition (critical check)",
}
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
NAV = (
    ("expectations", "Expectations"),
    ("rules", "Failed rules"),
    ("outliers", "Outliers"),
    ("columns", "Columns"),
    ("drift", "Drift"),
    ("trends", "Trends"),
    ("provenance", "Provenance"),
)
BASELINES_NAV = ("baselines", "Baselines")
View = dict[str, Any]


class _TemplateCache(jinja2.FileSystemBytecodeCache):
    """jinja2's cache of compiled templates, in a folder of the user's own (jinja2's default: in
    the system's temporary folder, mode 0700, refused when another user owns it). Compiling the
    templates costs a process about 0.04 CPU s, loading them compiled about 1 ms; an entry
    is used only for the same template source and jinja2 version. A cache that cannot be read or
    written is passed over: it never fails a report."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # any unreadable entry is a miss: compiled afresh
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _template_cache() -> jinja2.BytecodeCache | None:
    try:
        return _TemplateCache()
    except (OSError, RuntimeError):  # no temporary folder, or not a safe one
        return None


@cache
def environment() -> jinja2.Environment:
    """The report's template environment: package templates only, autoescaped, strict."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("sluice.report", "templates"),
        bytecode_cache=_template_cache(),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )


def esc(value: object) -> str:
    """Any value as HTML text (quotes included), as the templates escape it."""
    return str(escape("" if value is None else value))


def svg(plot: plots.Plot) -> Markup:
    """One plot as its inline ``<svg>`` element, written by the templates' ``svg`` macro."""
    macro = environment().get_template("macros.html.j2").module.svg  # type: ignore[attr-defined]
    return Markup(macro(plot))


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _metric_format(kind: str) -> Callable[[float], str]:
    if kind == "rate":
        return fmt_pct
    if kind == "count":
        return lambda v: fmt_num(round(v))
    return fmt_num


def _plain(value: Any, dtype: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return fmt_num(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return fmt_num(value) if "Int" in dtype else str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    return str(value)


def _finding_view(f: Finding) -> View:
    fmt = _metric_format(f.kind)
    where = {"run": "", "column": "column ", "rule": "rule ", "detector": "detector "}[f.scope]
    return {
        "where": where,
        "name": f.name,
        "metric": f.metric.replace("_", " "),
        "text": f" is {fmt(f.value)}, {f.direction} the expected "
        f"{fmt(f.low or 0.0)} to {fmt(f.high or 0.0)} (median {fmt(f.median or 0.0)} of "
        f"{f.reference})",
    }


def _drift_view(d: DriftResult) -> View:
    return {"column": d.column, "text": f"{_drift_stat(d)}; {d.reference_text}"}


def _segment_view(s: SegmentBias) -> View:
    return {
        "detector": s.detector,
        "column": s.column,
        "value": s.value,
        "rows": f"{s.rows:,}",
        "flagged": f"{s.flagged:,}",
        "share": f"{s.share:.0%}",
        "share_pct": fmt_pct(s.share),
        "overall": f"{s.overall:.2%}",
        "overall_pct": fmt_pct(s.overall),
        "ratio": f"{s.ratio:.0f}",
        "p_value": f"{s.p_value:.1e}",
        "fate": "quarantined" if s.severity == "error" else "flagged (kept clean, with a warning)",
    }


def _drift_stat(d: DriftResult) -> str:
    if d.test == "ks":
        return f"KS D = {d.statistic:.3f}, p = {d.p_value:.2g}"
    if d.test == "chi2":
        return f"chi-square Cramér's V = {d.statistic:.3f}, p = {d.p_value:.2g}"
    if d.test == "psi":
        return f"PSI = {d.statistic:.3f}"
    return ""


def _header(r: Report) -> View:
    m = r.outputs.manifest
    part = r.outputs.partition
    day = f" ({WEEKDAYS[part.start.weekday()]})" if part.kind != "month" else ""
    return {
        "title": f"{m['dataset']} · {part.dirname}",
        "sub": f"run {m.get('run_id', '')} · partition {part}{day} · finished "
        f"{m.get('finished_at', '')} · sluice {m.get('versions', {}).get('sluice', '')}",
        "nav": NAV if not (r.monitoring or r.shifts) else (*NAV[:5], BASELINES_NAV, *NAV[5:]),
    }


def _verdict(r: Report) -> View:
    m = r.outputs.manifest
    c = m["counts"]
    n = max(int(c["in"]), 1)
    crit = m.get("critical") or []
    causes = (m.get("verdict") or {}).get("causes") or []
    attention = len(r.alarms) + len(r.drifted)
    detail = (
        f"critical checks failed: {', '.join(crit)}" if crit else "no critical check failed"
    ) + (
        f" · {_count(len(r.alarms), 'metric alarm')} · {_count(len(r.drifted), 'drifted column')}"
        if attention
        else " · no metric alarm, no drift"
    )
    holds = "holds" if m.get("conservation", {}).get("holds") else "BROKEN"
    return {
        "status": str(m.get("status", "passed")),
        "text": f"{fmt_num(int(c['clean']))} of {fmt_num(int(c['in']))} rows clean "
        f"({fmt_pct(c['clean'] / n)}); {fmt_num(int(c['quarantine']))} quarantined",
        "detail": f"{detail} · conservation {holds}",
        "causes": [
            {
                "level": cause.get("level", ""),
                "word": "error" if cause.get("level") == "error" else "warning",
                "kind": "failed" if cause.get("level") == "error" else "warn",
                "message": cause.get("message", ""),
            }
            for cause in causes
        ],
    }


def _cards(r: Report) -> View:
    c = r.outputs.manifest["counts"]
    n = max(int(c["in"]), 1)
    return {
        "cards": [
            (fmt_num(int(c["in"])), "rows in", ""),
            (fmt_num(int(c["clean"])), "clean", fmt_pct(c["clean"] / n)),
            (fmt_num(int(c["quarantine"])), "quarantined", fmt_pct(c["quarantine"] / n)),
            (fmt_num(int(c.get("warned_rows", 0))), "warned (kept clean)", ""),
        ],
        "stages": [(STAGE_LABELS[s], fmt_num(k), fmt_pct(k / n)) for s, k in r.stages.items()],
    }


def _attention(r: Report) -> View:
    judged = sum(1 for f in r.findings if f.status != "learning")
    learning = len(r.findings) - judged
    tested = sum(1 for d in r.drift if d.kind != "skipped")
    return {
        "alarms": [_finding_view(f) for f in r.alarms],
        "drifted": [_drift_view(d) for d in r.drifted],
        "segments": [_segment_view(s) for s in r.segments],
        "baselines": baseline_attention(r),
        "passed": r.outputs.manifest.get("status", "passed") == "passed",
        "note": f"{judged} metrics judged against their history"
        + (f", {learning} still learning (too little reference history)" if learning else "")
        + f"; {tested} columns tested for drift.",
    }


def _example(e: Example, columns: Sequence[str]) -> View:
    return {
        "source": f"{e.source_file or ''}:{e.source_row}" if e.source_row is not None else "–",
        "value": e.value,
        "reasons": ", ".join(e.reasons),
        "details": e.details or "",
        "raw": [(c, v) for c, v in e.raw.items() if c in columns] if e.raw else [],
    }


STATE_LABELS = {"passed": "passed", "failed": "failed", "could_not_run": "could not run"}
OBSERVED_CHARS = 120


def _observed(value: Any) -> str:
    if value is None:
        return "–"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= OBSERVED_CHARS else text[: OBSERVED_CHARS - 1] + "…"


def _expectations(r: Report) -> View:
    m = r.outputs.manifest
    validation = m.get("validation", {})
    verdicts = validation.get("verdicts", [])
    n_in = max(int(m["counts"]["in"]), 1)
    rows: list[View] = []
    for v in verdicts:
        state = verdict_state(v)
        failing = v.get("failing_rows")
        if failing is None:
            failing = v.get("unexpected_count")
        column = str(v.get("reason", "")).split("|", 1)[0]
        rows.append(
            {
                "row_class": f"expectation {state}" + (" alarm" if state != "passed" else ""),
                "index": v.get("index", ""),
                "type": v.get("type", ""),
                "column": "(table)" if column == "_table" else column,
                "severity": v.get("severity", ""),
                "state": STATE_LABELS[state],
                "badge": {"passed": "ok", "failed": "failed"}.get(state, "could_not_run"),
                "observed": _observed(v.get("observed_value")),
                "rows": "–" if failing is None else fmt_num(int(failing)),
                "share": "–" if failing is None else fmt_pct(int(failing) / n_in),
                "note": why_not_run(v) if state == "could_not_run" else (v.get("note") or ""),
            }
        )
    keys = validation.get("keys") or {}
    if keys.get("columns"):
        dup = int(keys.get("duplicate_rows", 0))
        by = str(keys.get("enforced_by", ""))
        own = by == "keys check"
        ok = dup == 0 or not own
        rows.append(
            {
                "row_class": "expectation keys" + ("" if ok else " alarm"),
                "index": "keys",
                "type": f"keys unique ({keys.get('duplicates', '')})",
                "column": ",".join(keys["columns"]),
                "severity": "error",
                "state": "passed" if ok else "failed",
                "badge": "ok" if ok else "failed",
                "observed": "–",
                "rows": fmt_num(dup) if own else "–",
                "share": fmt_pct(dup / n_in) if own else "–",
                "note": f"enforced by {by}",
            }
        )
    counts: dict[str, int] = {}
    for v in verdicts:
        state = verdict_state(v)
        counts[state] = counts.get(state, 0) + 1
    tally = ", ".join(f"{counts[s]} {STATE_LABELS[s]}" for s in STATE_LABELS if counts.get(s))
    return {"rows": rows, "tally": tally or "none"}


def _rules(r: Report) -> View:
    cols = list(r.outputs.columns)
    rows: list[View] = []
    for s in r.rules:
        verdict = kind = ""
        if s.verdict is not None:
            state = verdict_state(s.verdict)
            verdict = STATE_LABELS[state]
            kind = {"passed": "ok", "failed": "failed"}.get(state, state)
        rows.append(
            {
                "reason": s.reason,
                "stage": s.stage,
                "severity": s.severity,
                "severity_kind": "warn" if s.severity == "warn" else "failed",
                "rows": fmt_num(s.rows),
                "share": fmt_pct(s.share),
                "verdict": verdict,
                "verdict_kind": kind,
                "n_examples": _count(len(s.examples), "example"),
                "examples": [_example(e, cols) for e in s.examples],
            }
        )
    return {"rows": rows}


def _detector(d: DetectorStats, model: dict[str, Any]) -> View:
    params = model.get("params", {})
    members = params.get("members")
    hist = (
        plots.histogram(
            [plots.Series("rows screened", d.histogram.clean.tolist(), plots.CLEAN)],
            d.histogram.edges,
            label=f"outlier scores of {d.name} with the threshold",
            shares=False,
            log_y=True,
            marker=d.threshold,
            marker_label="threshold",
            width=420,
            height=190,
        )
        if d.histogram is not None
        else None
    )
    feats = (
        plots.bars(
            [f.column for f in d.features],
            [float(f.top1) for f in d.features],
            label=f"features that drove the flags of {d.name}",
            value_format=lambda v: f"{v:,.0f} rows",
        )
        if d.features
        else None
    )
    return {
        "name": d.name,
        "desc": f"{model.get('detector', '')}" + (f" ({', '.join(members)})" if members else ""),
        "kv": [
            ("screened", fmt_num(d.scored)),
            ("flagged", f"{fmt_num(d.flagged)} ({fmt_pct(d.flagged_rate)})"),
            ("threshold", fmt_num(d.threshold)),
            ("false-flag rate", fmt_num(model.get("false_flag_rate"))),
            ("flagged rows", "quarantined" if model.get("severity") == "error" else "kept, warned"),
            ("threshold from", _threshold_source(model)),
            ("median score", fmt_num(d.p50)),
            ("99th pct.", fmt_num(d.p99)),
        ],
        "histogram": hist,
        "features": feats,
        "feature_rows": [
            (f.column, fmt_num(f.top1), fmt_num(f.top3), fmt_num(f.mean_contribution))
            for f in d.features
        ],
    }


def _threshold_source(model: dict[str, Any]) -> str:
    how = model.get("threshold_method") or {}
    if not how:
        return "-"
    rows = how.get("held_out_rows")
    method = "tail model" if str(how.get("method", "")).startswith("generalized") else "quantile"
    return f"{method} of {rows:,} held-out scores" if isinstance(rows, int) else method


def _outliers(r: Report) -> View:
    models = {m["name"]: m for m in r.outputs.manifest.get("detectors", [])}
    screen = r.outputs.manifest.get("screen", {})
    skipped = (screen.get("skipped") or "no detector ran") if not r.detectors else None
    return {
        "skipped": skipped,
        "detectors": [_detector(d, models.get(d.name, {})) for d in r.detectors],
    }


def epoch_text(seconds: float, pattern: str) -> str:
    """Seconds since 1970 (UTC) as text, clamped to years 1 to 9999 (a bin edge can lie a
    little beyond the values it holds)."""
    if not math.isfinite(seconds):
        return fmt_num(seconds)
    try:
        when = EPOCH + dt.timedelta(seconds=seconds)
    except OverflowError:
        when = dt.datetime.max if seconds > 0 else dt.datetime.min
    return when.strftime(pattern)


EPOCH = dt.datetime(1970, 1, 1)


def _x_format(h: Histogram) -> Callable[[float], str]:
    if h.temporal:
        span = float(h.edges[-1] - h.edges[0])
        pattern = "%H:%M" if span <= 2 * 86400 else "%Y-%m-%d"
        return lambda v: epoch_text(v, pattern)
    if h.lengths:
        return lambda v: f"{math.ceil(v)} chars"
    return fmt_num


def _distribution_plot(
    dist: Histogram | Categories | None, names: tuple[str, str], colors: tuple[str, str], label: str
) -> plots.Plot | None:
    if dist is None:
        return None
    series = [
        plots.Series(names[0], dist.clean.tolist(), colors[0]),
        plots.Series(names[1], dist.quarantine.tolist(), colors[1]),
    ]
    if float(np.sum(dist.quarantine)) == 0:
        series = series[:1]
    if isinstance(dist, Categories):
        return plots.category_bars(dist.labels, series, label=label)
    return plots.histogram(
        series, dist.edges, label=label, x_format=_x_format(dist), open_ends=not dist.lengths
    )


def _column(c: ColumnProfile, drift: DriftResult | None, alarms: list[Finding]) -> View:
    badges = []
    if drift is not None and drift.drifted:
        badges.append("drift")
    if alarms:
        badges.append("alarm")
    stats = [
        ("null rate", fmt_pct(c.null_rate)),
        ("unparsed", fmt_num(c.unparsed)),
        ("distinct (clean)", fmt_num(c.distinct)),
        ("clean rows", fmt_num(c.clean_rows)),
        ("min", _plain(c.minimum, c.dtype)),
        ("max", _plain(c.maximum, c.dtype)),
    ]
    if c.kind == "numeric":
        stats += [("mean", fmt_num(c.mean)), ("median", fmt_num(c.p50))]
    lengths = isinstance(c.distribution, Histogram) and c.distribution.lengths
    return {
        "name": c.name,
        "dtype": c.dtype,
        "badges": badges,
        "stats": stats,
        "what": "string length" if lengths else "",
        "plot": _distribution_plot(
            c.distribution,
            ("clean", "quarantined (parsed values)"),
            (plots.CLEAN, plots.QUARANTINE),
            f"distribution of {c.name}: clean against quarantined",
        ),
    }


def _columns(r: Report) -> list[View]:
    drift = {d.column: d for d in r.drift}
    alarms: dict[str, list[Finding]] = {}
    for f in r.alarms:
        if f.scope == "column":
            alarms.setdefault(f.name, []).append(f)
    return [_column(c, drift.get(c.name), alarms.get(c.name, [])) for c in r.columns]


DRIFT_HEAD = ("column", "kind", "test", "statistic", "p", "Wasserstein (sd)", "rows", "reference",
              "verdict")  # fmt: skip
DRIFT_NUMERIC = frozenset({"statistic", "p", "Wasserstein (sd)", "rows"})


def _drift(r: Report) -> View:
    rows: list[View] = []
    for d in r.drift:
        ref = f"{len(d.reference)} partitions ({d.span})" if d.reference else "–"
        if d.pinned and d.reference:
            ref = f"pinned baseline: {ref}"
        rows.append(
            {
                "drifted": d.drifted,
                "column": d.column,
                "kind": d.kind,
                "test": d.test or "–",
                "statistic": fmt_num(d.statistic),
                "p": f"{d.p_value:.2g}" if d.p_value is not None else "–",
                "wasserstein": fmt_num(d.wasserstein),
                "rows": f"{fmt_num(d.n_current)} / {fmt_num(d.n_reference)}",
                "reference": ref,
                "verdict": "drift" if d.drifted else "skipped" if d.kind == "skipped" else "ok",
                "note": d.note,
            }
        )
    shown = [
        {
            "column": d.column,
            "stat": _drift_stat(d),
            "plot": _distribution_plot(
                d.distribution,
                ("this partition", "reference"),
                (plots.ALARM, plots.CLEAN),
                f"drift of {d.column}: this partition against the reference",
            ),
        }
        for d in r.drifted
    ]
    return {"head": DRIFT_HEAD, "numeric": DRIFT_NUMERIC, "rows": rows, "plots": shown}


def _trend_series(
    r: Report, scope: str, name: str, metric: str
) -> tuple[list[str], list[float | None], list[int]]:
    """Labels, values (this run last) and the indices of the runs this one was judged against."""
    h = r.history.filter(
        (pl.col("scope") == scope) & (pl.col("name") == name) & (pl.col("metric") == metric)
    ).sort("partition_start")
    past = dict(zip(h["partition"].to_list(), h["value"].to_list(), strict=True))
    starts = dict(r.history.select("partition", "partition_start").unique().iter_rows())
    parts = sorted(starts)[-(TREND_RUNS - 1) :]
    now = r.metrics.filter(
        (pl.col("scope") == scope) & (pl.col("name") == name) & (pl.col("metric") == metric)
    )
    fill = 0.0 if scope == "rule" else None
    values: list[float | None] = [past.get(p, fill) for p in parts]
    labels = [*parts, str(r.outputs.partition)]
    values.append(float(now["value"][0]) if now.height and now["value"][0] is not None else fill)
    key = (scope, name, metric)
    found = next((f for f in r.findings if (f.scope, f.name, f.metric) == key), None)
    used = set(found.reference_partitions) if found is not None else set()
    return labels, values, [i for i, p in enumerate(parts) if p in used]


def _trends(r: Report) -> View:
    by_key = {(f.scope, f.name, f.metric): f for f in r.findings}
    wanted: list[tuple[str, str, str]] = [("run", "", "rows_in"), ("run", "", "quarantine_rate")]
    for d in r.detectors:
        wanted += [("detector", d.name, "flagged_rate"), ("detector", d.name, "score_p99")]
    nulls = r.history.filter((pl.col("metric") == "null_rate") & (pl.col("value") > 0))
    null_cols = set(nulls["name"].to_list()) | {c.name for c in r.columns if c.null_rate > 0}
    wanted += [("column", c.name, "null_rate") for c in r.columns if c.name in null_cols]
    for f in r.alarms:
        if (f.scope, f.name, f.metric) not in wanted:
            wanted.insert(0, (f.scope, f.name, f.metric))
    panels: list[View] = []
    for scope, name, metric in wanted:
        found = by_key.get((scope, name, metric))
        labels, values, refs = _trend_series(r, scope, name, metric)
        if found is not None:
            kind = found.kind
        else:
            kind = "count" if metric == "rows_in" else "rate" if "rate" in metric else "level"
        fmt = _metric_format(kind)
        title = " ".join(p for p in (name, metric.replace("_", " ")) if p)
        status = found.status if found is not None else "learning"
        band = None
        note = "not judged"
        if found is not None:
            note = found.reference
            if found.low is not None and found.high is not None:
                band = (found.low, found.high)
                note = f"expected {fmt(band[0])} to {fmt(band[1])} from {found.reference}"
        plot = plots.trend(
            labels, values, label=f"trend of {title}", band=band, reference=refs,
            alarm=status == "alarm", value_format=fmt,
        )  # fmt: skip
        panels.append({"title": title, "status": status, "plot": plot, "note": note})
    metrics = []
    for f in r.findings:
        fmt = _metric_format(f.kind)
        expected = "–"
        if f.low is not None and f.high is not None:
            expected = f"{fmt(f.low)} to {fmt(f.high)}"
        metrics.append(
            {
                "scope": f.scope,
                "name": f.name,
                "metric": f.metric,
                "value": fmt(f.value),
                "expected": expected,
                "reference": f.reference,
                "status": f.status,
            }
        )
    n_runs = r.history["partition"].n_unique() if r.history.height else 0
    intro = (
        f"This run (the last, dark point) after {n_runs} earlier partitions. "
        f"{method_text(r.outputs.partition.kind, r.policy, r.baseline)} (the ringed points; "
        "each metric names its reference partitions and how old they are); the shaded bar is "
        "the range this run was expected in: their median ± the largest of "
        f"{r.policy.k:g} robust deviations, the sampling noise and a floor."
    )
    return {"intro": intro, "panels": panels, "metrics": metrics}


def _provenance(r: Report) -> list[tuple[str, object]]:
    m = r.outputs.manifest
    rows: list[tuple[str, object]] = []
    for i in m.get("inputs", []):
        rows.append(
            ("input", f"{i.get('path')} ({fmt_num(i.get('rows'))} rows, sha256 {i.get('sha256')})")
        )
    suite = m.get("suite", {})
    rows.append(
        (
            "suite",
            f"{suite.get('name')}: {suite.get('path')} ({suite.get('entries')} entries, "
            f"sha256 {suite.get('sha256')})",
        )
    )
    spec = m.get("spec", {})
    rows.append(("dataset spec", f"{spec.get('path')} (sha256 {spec.get('sha256')})"))
    rows.append(("engine", m.get("validation", {}).get("engine", "")))
    timings = m.get("timings_s", {})
    stages = ("ingest", "validate", "screen", "write")
    rows.append(("timings", ", ".join(f"{s} {timings[s]} s" for s in stages if s in timings)))
    for which in ("clean", "quarantine", "failures"):
        o = m.get("outputs", {}).get(which)
        if o:
            rows.append((which, o.get("path", "")))
    checks = m.get("checksums", {})
    rows.append(
        (
            "checksums",
            f"in {checks.get('in')} = clean {checks.get('clean')} "
            f"+ quarantine {checks.get('quarantine')}",
        )
    )
    versions = m.get("versions", {})
    rows.append(("versions", ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))))
    return rows


def view(r: Report) -> View:
    """Everything the report template shows, computed: text, numbers, rows and plot geometry."""
    m = r.outputs.manifest
    return {
        "title": f"sluice report: {m['dataset']} {r.outputs.partition.dirname} "
        f"({m.get('status', '')})",
        "header": _header(r),
        "verdict": _verdict(r),
        "attention": _attention(r),
        "cards": _cards(r),
        "expectations": _expectations(r),
        "rules": _rules(r),
        "outliers": _outliers(r),
        "segments": [_segment_view(s) for s in r.segments],
        "columns": _columns(r),
        "drift": _drift(r),
        "baselines": baselines_view(r),
        "trends": _trends(r),
        "provenance": _provenance(r),
        "footer": {"dataset": m["dataset"], "partition": str(r.outputs.partition)},
    }


def render(r: Report) -> str:
    """The report as one HTML document."""
    return environment().get_template("report.html.j2").render(view(r))


__all__ = ["CSP", "environment", "esc", "render", "svg", "view"]
