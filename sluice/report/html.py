"""Render a :class:`~sluice.report.build.Report` as one self-contained HTML file.

Inline CSS, inline SVG plots, no script and no external resource: the file reads the same on a
laptop with no network. Everything taken from the data goes through :mod:`sluice.report.markup`,
which escapes it. The output depends only on the report (no clock, no random ids), so rebuilding
a report from unchanged outputs gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from sluice.report import plots
from sluice.report.anomalies import WEEKDAYS, Finding, method_text
from sluice.report.drift import DriftResult
from sluice.report.markup import Safe, el, esc, fmt_num, fmt_pct, join
from sluice.report.metrics import (
    Categories,
    ColumnProfile,
    DetectorStats,
    Example,
    Histogram,
)
from sluice.report.segments import segment_item, segments_section
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

CSS = """
:root{--ink:#1a202c;--muted:#4a5568;--line:#e2e8f0;--bg:#f7fafc;--ok:#276749;--okbg:#f0fff4;
--bad:#c53030;--badbg:#fff5f5;--warn:#b7791f;--warnbg:#fffff0;--accent:#2b6cb0}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:var(--ink);background:var(--bg)}
main{max-width:1180px;margin:0 auto;padding:16px 20px 48px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 10px;padding-top:8px;
border-top:1px solid var(--line)}h3{font-size:15px;margin:14px 0 6px}
.sub{color:var(--muted);font-size:12px}
nav{margin:10px 0 0;font-size:13px}nav a{margin-right:14px;color:var(--accent);text-decoration:none}
.verdict{display:flex;gap:14px;align-items:center;padding:14px 16px;border-radius:8px;
margin:14px 0;border:1px solid}
.verdict.passed{background:var(--okbg);border-color:#9ae6b4}
.verdict.failed{background:var(--badbg);border-color:#feb2b2}
.verdict.warned{background:var(--warnbg);border-color:#f6e05e}
.causes{margin:6px 0 0;padding-left:18px}.causes li{margin:2px 0}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;font-size:12px;font-weight:600;
color:#fff}
.badge.passed,.badge.ok{background:var(--ok)}.badge.failed,.badge.alarm,.badge.drift{
background:var(--bad)}.badge.learning,.badge.skipped{background:#718096}
.badge.warn,.badge.warned,.badge.could_not_run{background:var(--warn)}
.badge.big{font-size:16px;padding:4px 12px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.card .n{font-size:22px;font-weight:600}.card .l{color:var(--muted);font-size:12px}
.attention{background:#fff;border:1px solid var(--line);border-left:4px solid var(--bad);
border-radius:6px;padding:8px 14px;margin:12px 0}
.attention.quiet{border-left-color:var(--ok)}
.attention li{margin:3px 0}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:#edf2f7;font-weight:600;position:sticky;top:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.alarm td{background:var(--badbg)}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.val{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;
background:#fefcbf;padding:0 3px;border-radius:3px;white-space:pre-wrap;word-break:break-all}
details{margin:2px 0}summary{cursor:pointer;color:var(--accent)}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(370px,1fr));gap:12px}
.tgrid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:10px}
.panel{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.panel.alarm{border-color:#feb2b2;box-shadow:0 0 0 2px #fed7d7}
.panel h3{margin:0 0 4px;display:flex;gap:8px;align-items:center;flex-wrap:wrap}
.kv{display:grid;grid-template-columns:auto auto auto auto;gap:1px 10px;font-size:12px;
margin:4px 0 6px}.kv span:nth-child(odd){color:var(--muted)}
.muted{color:var(--muted)}.small{font-size:12px}
svg.plot{display:block;max-width:100%;height:auto}
footer{margin-top:30px;color:var(--muted);font-size:12px}
@media print{nav{display:none}th{position:static}}
"""


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _badge(text: str, kind: str, big: bool = False) -> Safe:
    return el("span", {"class": f"badge {kind}{' big' if big else ''}"}, text)


def _td_num(value: object) -> Safe:
    return el("td", {"class": "num"}, value)


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


def _finding_text(f: Finding) -> Safe:
    fmt = _metric_format(f.kind)
    where = {"run": "", "column": "column ", "rule": "rule ", "detector": "detector "}[f.scope]
    name = el("code", None, f.name) if f.name else ""
    return join(
        _badge("alarm", "alarm"),
        " ",
        where,
        name,
        " ",
        el("b", None, f.metric.replace("_", " ")),
        f" is {fmt(f.value)}, {f.direction} the expected ",
        f"{fmt(f.low or 0.0)} to {fmt(f.high or 0.0)} (median {fmt(f.median or 0.0)} of ",
        f"{f.reference})",
    )


def _drift_text(d: DriftResult) -> Safe:
    return join(
        _badge("drift", "drift"),
        " column ",
        el("code", None, d.column),
        f": {_drift_stat(d)}; {d.reference_text}",
    )


def _drift_stat(d: DriftResult) -> str:
    if d.test == "ks":
        return f"KS D = {d.statistic:.3f}, p = {d.p_value:.2g}"
    if d.test == "chi2":
        return f"chi-square Cramér's V = {d.statistic:.3f}, p = {d.p_value:.2g}"
    if d.test == "psi":
        return f"PSI = {d.statistic:.3f}"
    return ""


def _header(r: Report) -> Safe:
    m = r.outputs.manifest
    part = r.outputs.partition
    day = f" ({WEEKDAYS[part.start.weekday()]})" if part.kind == "day" else ""
    return join(
        el("h1", None, f"{m['dataset']} · {part.dirname}"),
        el(
            "div",
            {"class": "sub"},
            f"run {m.get('run_id', '')} · partition {part}{day} · finished ",
            m.get("finished_at", ""),
            f" · sluice {m.get('versions', {}).get('sluice', '')}",
        ),
        el(
            "nav",
            None,
            [
                el("a", {"href": f"#{a}"}, t)
                for a, t in (
                    ("expectations", "Expectations"),
                    ("rules", "Failed rules"),
                    ("outliers", "Outliers"),
                    ("columns", "Columns"),
                    ("drift", "Drift"),
                    ("trends", "Trends"),
                    ("provenance", "Provenance"),
                )
            ],
        ),
    )


def _verdict(r: Report) -> Safe:
    m = r.outputs.manifest
    c = m["counts"]
    n = max(int(c["in"]), 1)
    status = str(m.get("status", "passed"))
    crit = m.get("critical") or []
    causes = (m.get("verdict") or {}).get("causes") or []
    text = (
        f"{fmt_num(int(c['clean']))} of {fmt_num(int(c['in']))} rows clean "
        f"({fmt_pct(c['clean'] / n)}); {fmt_num(int(c['quarantine']))} quarantined"
    )
    attention = len(r.alarms) + len(r.drifted)
    listed = el(
        "ul",
        {"class": "causes", "id": "causes"},
        [
            el(
                "li",
                {"class": f"cause {cause.get('level', '')}"},
                _badge(
                    "error" if cause.get("level") == "error" else "warning",
                    "failed" if cause.get("level") == "error" else "warn",
                ),
                " ",
                cause.get("message", ""),
            )
            for cause in causes
        ],
    )
    return el(
        "div",
        {"class": f"verdict {status}", "id": "verdict"},
        _badge(status.upper(), status, big=True),
        el(
            "div",
            None,
            el("b", None, text),
            el("br"),
            el(
                "span",
                {"class": "small"},
                f"critical checks failed: {', '.join(crit)}"
                if crit
                else "no critical check failed",
                f" · {_count(len(r.alarms), 'metric alarm')} · "
                f"{_count(len(r.drifted), 'drifted column')}"
                if attention
                else " · no metric alarm, no drift",
                " · conservation ",
                "holds" if m.get("conservation", {}).get("holds") else "BROKEN",
            ),
            listed if causes else "",
        ),
    )


def _cards(r: Report) -> Safe:
    c = r.outputs.manifest["counts"]
    n = max(int(c["in"]), 1)

    def card(value: object, label: str, note: str = "") -> Safe:
        return el(
            "div",
            {"class": "card"},
            el("div", {"class": "n"}, value),
            el("div", {"class": "l"}, label, el("br") if note else "", note),
        )

    cards = [
        card(fmt_num(int(c["in"])), "rows in"),
        card(fmt_num(int(c["clean"])), "clean", fmt_pct(c["clean"] / n)),
        card(fmt_num(int(c["quarantine"])), "quarantined", fmt_pct(c["quarantine"] / n)),
        card(fmt_num(int(c.get("warned_rows", 0))), "warned (kept clean)"),
    ]
    stage_rows = [
        el(
            "tr",
            None,
            el("td", None, STAGE_LABELS[s]),
            _td_num(fmt_num(k)),
            _td_num(fmt_pct(k / n)),
        )
        for s, k in r.stages.items()
    ]
    stages = el(
        "table",
        {"id": "by-stage"},
        el(
            "tr",
            None,
            el("th", None, "quarantined by stage"),
            el("th", {"class": "num"}, "rows"),
            el("th", {"class": "num"}, "of rows in"),
        ),
        stage_rows,
    )
    return join(
        el("div", {"class": "cards"}, cards),
        el("p", {"class": "small muted"}, "A row failing in two stages counts in both."),
        stages,
    )


def _attention(r: Report) -> Safe:
    items = [el("li", None, _finding_text(f)) for f in r.alarms]
    items += [el("li", None, _drift_text(d)) for d in r.drifted]
    items += [el("li", None, segment_item(s)) for s in r.segments]
    judged = sum(1 for f in r.findings if f.status != "learning")
    learning = len(r.findings) - judged
    tested = sum(1 for d in r.drift if d.kind != "skipped")
    note = (
        f"{judged} metrics judged against their history"
        + (f", {learning} still learning (too little reference history)" if learning else "")
        + f"; {tested} columns tested for drift."
    )
    if not items:
        passed = r.outputs.manifest.get("status", "passed") == "passed"
        return el(
            "div",
            {"class": f"attention{' quiet' if passed else ''}", "id": "attention"},
            el(
                "b",
                None,
                "Nothing unusual. "
                if passed
                else "No metric alarm and no drift; the verdict above says what is wrong. ",
            ),
            note,
        )
    return el(
        "div",
        {"class": "attention", "id": "attention"},
        el("b", None, "Needs attention"),
        el("ul", None, items),
        el("span", {"class": "small muted"}, note),
    )


def _example_rows(ex: Sequence[Example], columns: Sequence[str]) -> Safe:
    head = el(
        "tr",
        None,
        [el("th", None, h) for h in ("source row", "failing value", "all reasons", "details")],
    )
    rows = []
    for e in ex:
        raw = (
            el(
                "details",
                None,
                el("summary", None, "raw record"),
                el(
                    "table",
                    None,
                    [
                        el(
                            "tr",
                            None,
                            el("td", {"class": "mono"}, c),
                            el(
                                "td",
                                None,
                                el("span", {"class": "val"}, v) if v is not None else "null",
                            ),
                        )
                        for c, v in e.raw.items()
                        if c in columns
                    ],
                ),
            )
            if e.raw
            else ""
        )
        rows.append(
            el(
                "tr",
                None,
                el("td", {"class": "num mono"}, f"{e.source_file or ''}:{e.source_row}"
                   if e.source_row is not None else "–"),
                el("td", None, el("span", {"class": "val"}, e.value) if e.value is not None
                   else el("span", {"class": "muted"}, "null")),
                el("td", {"class": "mono"}, ", ".join(e.reasons)),
                el("td", {"class": "mono small"}, e.details or "", raw),
            )
        )  # fmt: skip
    return el("table", {"class": "examples"}, head, rows)


STATE_LABELS = {"passed": "passed", "failed": "failed", "could_not_run": "could not run"}
OBSERVED_CHARS = 120


def _observed(value: Any) -> str:
    if value is None:
        return "–"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= OBSERVED_CHARS else text[: OBSERVED_CHARS - 1] + "…"


def _expectations(r: Report) -> Safe:
    m = r.outputs.manifest
    validation = m.get("validation", {})
    verdicts = validation.get("verdicts", [])
    n_in = max(int(m["counts"]["in"]), 1)
    head = el(
        "tr",
        None,
        [
            el("th", {"class": "num"} if h in ("#", "rows failing", "of rows in") else None, h)
            for h in ("#", "expectation", "column", "severity", "verdict", "observed",
                      "rows failing", "of rows in", "note")
        ],
    )  # fmt: skip
    body = []
    for v in verdicts:
        state = verdict_state(v)
        failing = v.get("failing_rows")
        if failing is None:
            failing = v.get("unexpected_count")
        column = str(v.get("reason", "")).split("|", 1)[0]
        note = why_not_run(v) if state == "could_not_run" else (v.get("note") or "")
        body.append(
            el(
                "tr",
                {"class": f"expectation {state}" + (" alarm" if state != "passed" else "")},
                _td_num(v.get("index", "")),
                el("td", {"class": "mono"}, v.get("type", "")),
                el("td", {"class": "mono"}, "(table)" if column == "_table" else column),
                el("td", None, v.get("severity", "")),
                el(
                    "td",
                    {"class": "state"},
                    _badge(
                        STATE_LABELS[state],
                        {"passed": "ok", "failed": "failed"}.get(state, "could_not_run"),
                    ),
                ),
                el("td", {"class": "mono small"}, _observed(v.get("observed_value"))),
                _td_num("–" if failing is None else fmt_num(int(failing))),
                _td_num("–" if failing is None else fmt_pct(int(failing) / n_in)),
                el("td", {"class": "small"}, note),
            )
        )
    keys = validation.get("keys") or {}
    if keys.get("columns"):
        rows = int(keys.get("duplicate_rows", 0))
        by = str(keys.get("enforced_by", ""))
        own = by == "keys check"
        body.append(
            el(
                "tr",
                {"class": "expectation keys" + ("" if rows == 0 or not own else " alarm")},
                _td_num("keys"),
                el("td", {"class": "mono"}, f"keys unique ({keys.get('duplicates', '')})"),
                el("td", {"class": "mono"}, ",".join(keys["columns"])),
                el("td", None, "error"),
                el(
                    "td",
                    {"class": "state"},
                    _badge("passed", "ok") if rows == 0 or not own else _badge("failed", "failed"),
                ),
                el("td", {"class": "mono small"}, "–"),
                _td_num(fmt_num(rows) if own else "–"),
                _td_num(fmt_pct(rows / n_in) if own else "–"),
                el("td", {"class": "small"}, f"enforced by {by}"),
            )
        )
    counts: dict[str, int] = {}
    for v in verdicts:
        state = verdict_state(v)
        counts[state] = counts.get(state, 0) + 1
    tally = ", ".join(f"{counts[s]} {STATE_LABELS[s]}" for s in STATE_LABELS if counts.get(s))
    return join(
        el("h2", {"id": "expectations"}, "Expectations"),
        el(
            "p",
            {"class": "small muted"},
            f"Every expectation of the suite with its verdict ({tally or 'none'}), batch-level "
            "ones included. A check that could not run checked no row: its rows are not "
            "vouched for. Rows failing are the rows the check named, before a cell that did not "
            "parse is judged by its type failure alone.",
        ),
        el("table", {"id": "expectations-table"}, head, body),
    )


def _rules(r: Report) -> Safe:
    if not r.rules:
        return join(el("h2", {"id": "rules"}, "Failed rules"), el("p", None, "No rule failed."))
    cols = list(r.outputs.columns)
    head = el(
        "tr",
        None,
        el("th", None, "reason (column | rule)"),
        el("th", None, "stage"),
        el("th", None, "severity"),
        el("th", {"class": "num"}, "rows"),
        el("th", {"class": "num"}, "of rows in"),
        el("th", None, "suite verdict"),
        el("th", None, "examples"),
    )
    body = []
    for s in r.rules:
        verdict = ""
        if s.verdict is not None:
            state = verdict_state(s.verdict)
            verdict = _badge(
                STATE_LABELS[state], {"passed": "ok", "failed": "failed"}.get(state, state)
            )
        sev = _badge(s.severity, "warn" if s.severity == "warn" else "failed")
        body.append(
            el(
                "tr",
                {"class": "rule"},
                el("td", {"class": "mono"}, s.reason),
                el("td", None, s.stage),
                el("td", None, sev),
                _td_num(fmt_num(s.rows)),
                _td_num(fmt_pct(s.share)),
                el("td", None, verdict),
                el(
                    "td",
                    None,
                    el(
                        "details",
                        None,
                        el("summary", None, _count(len(s.examples), "example")),
                        _example_rows(s.examples, cols),
                    )
                    if s.examples
                    else "",
                ),
            )
        )
    return join(
        el("h2", {"id": "rules"}, "Failed rules"),
        el(
            "p",
            {"class": "small muted"},
            "Every reason that marked rows, most rows first. Warnings keep rows clean. "
            "Open examples to see the raw value that failed and the whole raw record.",
        ),
        el("table", {"id": "rules-table"}, head, body),
    )


def _detector(d: DetectorStats, model: dict[str, Any]) -> Safe:
    params = model.get("params", {})
    members = params.get("members")
    desc = f"{model.get('detector', '')}" + (f" ({', '.join(members)})" if members else "")
    kv = el(
        "div",
        {"class": "kv"},
        el("span", None, "screened"),
        el("span", None, fmt_num(d.scored)),
        el("span", None, "flagged"),
        el("span", None, f"{fmt_num(d.flagged)} ({fmt_pct(d.flagged_rate)})"),
        el("span", None, "threshold"),
        el("span", None, fmt_num(d.threshold)),
        el("span", None, "false-flag rate"),
        el("span", None, fmt_num(model.get("false_flag_rate"))),
        el("span", None, "flagged rows"),
        el("span", None, "quarantined" if model.get("severity") == "error" else "kept, warned"),
        el("span", None, "threshold from"),
        el("span", None, _threshold_source(model)),
        el("span", None, "median score"),
        el("span", None, fmt_num(d.p50)),
        el("span", None, "99th pct."),
        el("span", None, fmt_num(d.p99)),
    )
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
        else el("p", {"class": "muted"}, "Scores were not kept for this run.")
    )
    feats = (
        plots.bars(
            [f.column for f in d.features],
            [float(f.top1) for f in d.features],
            label=f"features that drove the flags of {d.name}",
            value_format=lambda v: f"{v:,.0f} rows",
        )
        if d.features
        else el("p", {"class": "muted"}, "No row was flagged.")
    )
    table = (
        el(
            "table",
            None,
            el(
                "tr",
                None,
                el("th", None, "feature"),
                el("th", {"class": "num"}, "top reason"),
                el("th", {"class": "num"}, "in top 3"),
                el("th", {"class": "num"}, "mean contribution"),
            ),
            [
                el(
                    "tr",
                    None,
                    el("td", {"class": "mono"}, f.column),
                    _td_num(fmt_num(f.top1)),
                    _td_num(fmt_num(f.top3)),
                    _td_num(fmt_num(f.mean_contribution)),
                )
                for f in d.features
            ],
        )
        if d.features
        else ""
    )
    return el(
        "div",
        {"class": "panel"},
        el("h3", None, "detector ", el("code", None, d.name), el("span", {"class": "sub"}, desc)),
        kv,
        el("div", {"class": "grid"}, el("div", None, hist), el("div", None, feats, table)),
    )


def _threshold_source(model: dict[str, Any]) -> str:
    how = model.get("threshold_method") or {}
    if not how:
        return "-"
    rows = how.get("held_out_rows")
    method = "tail model" if str(how.get("method", "")).startswith("generalized") else "quantile"
    return f"{method} of {rows:,} held-out scores" if isinstance(rows, int) else method


def _outliers(r: Report) -> Safe:
    models = {m["name"]: m for m in r.outputs.manifest.get("detectors", [])}
    screen = r.outputs.manifest.get("screen", {})
    if not r.detectors:
        why = screen.get("skipped") or "no detector ran"
        return join(el("h2", {"id": "outliers"}, "Outliers"), el("p", None, why))
    return join(
        el("h2", {"id": "outliers"}, "Outliers"),
        el(
            "p",
            {"class": "small muted"},
            "Scores of the rows that passed every rule (higher is more abnormal). The threshold "
            "is set so that about a false-flag rate of clean rows lies above it, from scores of "
            "rows the model was not fitted on; rows above it are marked outlier|<detector> "
            "(quarantined with severity error, kept clean with a warning with severity warn). "
            "The features are the source columns that contributed most to each flagged row's "
            "score.",
        ),
        [_detector(d, models.get(d.name, {})) for d in r.detectors],
    )


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
) -> Safe:
    if dist is None:
        return el("p", {"class": "muted small"}, "no values")
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


def _column(c: ColumnProfile, drift: DriftResult | None, alarms: list[Finding]) -> Safe:
    badges = []
    if drift is not None and drift.drifted:
        badges.append(_badge("drift", "drift"))
    if alarms:
        badges.append(_badge("alarm", "alarm"))
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
    what = (
        "string length" if isinstance(c.distribution, Histogram) and c.distribution.lengths else ""
    )
    label = f"distribution of {c.name}: clean against quarantined"
    return el(
        "div",
        {"class": f"panel{' alarm' if badges else ''}", "id": f"col-{c.name}"},
        el("h3", None, el("code", None, c.name), el("span", {"class": "sub"}, c.dtype), badges),
        el(
            "div",
            {"class": "kv"},
            [join(el("span", None, k), el("span", None, v)) for k, v in stats],
        ),
        el("div", {"class": "small muted"}, what) if what else "",
        _distribution_plot(
            c.distribution,
            ("clean", "quarantined (parsed values)"),
            (plots.CLEAN, plots.QUARANTINE),
            label,
        ),
    )


def _columns(r: Report) -> Safe:
    drift = {d.column: d for d in r.drift}
    alarms: dict[str, list[Finding]] = {}
    for f in r.alarms:
        if f.scope == "column":
            alarms.setdefault(f.name, []).append(f)
    return join(
        el("h2", {"id": "columns"}, "Columns"),
        el(
            "p",
            {"class": "small muted"},
            "Null rate counts values missing in the source over every row; the other statistics "
            "are over clean rows. Plots compare the shape of clean and quarantined values (each "
            "scaled to its own total); the end bins hold everything beyond.",
        ),
        el(
            "div",
            {"class": "grid"},
            [_column(c, drift.get(c.name), alarms.get(c.name, [])) for c in r.columns],
        ),
    )


DRIFT_HEAD = ("column", "kind", "test", "statistic", "p", "Wasserstein (sd)", "rows", "reference",
              "verdict")  # fmt: skip
DRIFT_NUMERIC = frozenset({"statistic", "p", "Wasserstein (sd)", "rows"})


def _drift(r: Report) -> Safe:
    head = el(
        "tr",
        None,
        [el("th", {"class": "num"} if h in DRIFT_NUMERIC else None, h) for h in DRIFT_HEAD],
    )
    rows = []
    for d in r.drift:
        verdict = (
            _badge("drift", "drift")
            if d.drifted
            else (_badge("skipped", "skipped") if d.kind == "skipped" else _badge("ok", "ok"))
        )
        ref = f"{len(d.reference)} partitions ({d.span})" if d.reference else "–"
        if d.pinned and d.reference:
            ref = f"pinned baseline: {ref}"
        rows.append(
            el(
                "tr",
                {"class": "alarm" if d.drifted else None},
                el("td", {"class": "mono"}, d.column),
                el("td", None, d.kind),
                el("td", None, d.test or "–"),
                _td_num(fmt_num(d.statistic)),
                _td_num(f"{d.p_value:.2g}" if d.p_value is not None else "–"),
                _td_num(fmt_num(d.wasserstein)),
                _td_num(f"{fmt_num(d.n_current)} / {fmt_num(d.n_reference)}"),
                el("td", {"class": "small"}, ref),
                el("td", None, verdict, " ", el("span", {"class": "small muted"}, d.note)),
            )
        )
    plots_ = [
        el(
            "div",
            {"class": "panel alarm"},
            el("h3", None, el("code", None, d.column), _badge("drift", "drift")),
            el("div", {"class": "small"}, _drift_stat(d)),
            _distribution_plot(
                d.distribution,
                ("this partition", "reference"),
                (plots.ALARM, plots.CLEAN),
                f"drift of {d.column}: this partition against the reference",
            ),
        )
        for d in r.drifted
    ]
    return join(
        el("h2", {"id": "drift"}, "Drift"),
        el(
            "p",
            {"class": "small muted"},
            "Clean rows of this partition against clean rows of up to 7 earlier partitions "
            "(leaving out partitions where the column itself drifted). Small samples: "
            "Kolmogorov-Smirnov (numeric) or chi-square (categorical), drift when significant "
            "after Bonferroni and the effect is at least 0.1; large samples: population "
            "stability index, drift at 0.2.",
        ),
        el("div", {"class": "grid"}, plots_) if plots_ else "",
        el("table", {"id": "drift-table"}, head, rows),
    )


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


def _trends(r: Report) -> Safe:
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
    panels = []
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
        panels.append(
            el(
                "div",
                {"class": f"panel{' alarm' if status == 'alarm' else ''}"},
                el("h3", None, el("span", {"class": "mono"}, title), _badge(status, status)),
                plots.trend(
                    labels, values, label=f"trend of {title}", band=band, reference=refs,
                    alarm=status == "alarm", value_format=fmt,
                ),
                el("div", {"class": "small muted"}, note),
            )
        )  # fmt: skip
    judged = list(r.findings)
    table = el(
        "details",
        None,
        el("summary", None, f"all {len(judged)} monitored metrics"),
        el(
            "table",
            {"id": "metrics-table"},
            el(
                "tr",
                None,
                [el("th", None, h) for h in ("scope", "name", "metric", "value", "expected",
                                              "reference", "status")],
            ),
            [
                el(
                    "tr",
                    {"class": "alarm" if f.status == "alarm" else None},
                    el("td", None, f.scope),
                    el("td", {"class": "mono"}, f.name),
                    el("td", None, f.metric),
                    _td_num(_metric_format(f.kind)(f.value)),
                    _td_num(
                        f"{_metric_format(f.kind)(f.low)} to {_metric_format(f.kind)(f.high)}"
                        if f.low is not None and f.high is not None
                        else "–"
                    ),
                    el("td", {"class": "small"}, f.reference),
                    el("td", None, _badge(f.status, f.status)),
                )
                for f in judged
            ],
        ),
    )  # fmt: skip
    n_runs = r.history["partition"].n_unique() if r.history.height else 0
    return join(
        el("h2", {"id": "trends"}, "Trends"),
        el(
            "p",
            {"class": "small muted"},
            f"This run (the last, dark point) after {n_runs} earlier partitions. "
            f"{method_text(r.outputs.partition.kind, r.policy, r.baseline)} (the ringed points; "
            "each metric names its reference partitions and how old they are); the shaded bar is "
            "the range this run was expected in: their median ± the largest of "
            f"{r.policy.k:g} robust deviations, the sampling noise and a floor.",
        ),
        el("div", {"class": "tgrid"}, panels),
        table,
    )


def _provenance(r: Report) -> Safe:
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
    rows.append(
        (
            "timings",
            ", ".join(
                f"{s} {timings[s]} s"
                for s in ("ingest", "validate", "screen", "write")
                if s in timings
            ),
        )
    )
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
    return join(
        el("h2", {"id": "provenance"}, "Provenance"),
        el(
            "table",
            None,
            [
                el("tr", None, el("th", None, k), el("td", {"class": "mono small"}, v))
                for k, v in rows
            ],
        ),
    )


def render(r: Report) -> str:
    """The report as one HTML document."""
    m = r.outputs.manifest
    title = f"sluice report: {m['dataset']} {r.outputs.partition.dirname} ({m.get('status', '')})"
    body = el(
        "main",
        None,
        _header(r),
        _verdict(r),
        _attention(r),
        _cards(r),
        _expectations(r),
        _rules(r),
        _outliers(r),
        segments_section(r.segments),
        _columns(r),
        _drift(r),
        _trends(r),
        _provenance(r),
        el(
            "footer",
            None,
            "Generated by sluice from the run's outputs; rebuild with ",
            el("code", None, f"sluice report {m['dataset']} --partition {r.outputs.partition}"),
            ".",
        ),
    )
    head = el(
        "head",
        None,
        Safe('<meta charset="utf-8">'),
        Safe('<meta name="viewport" content="width=device-width,initial-scale=1">'),
        Safe(
            '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
            "style-src 'unsafe-inline'; img-src data:\">"
        ),
        el("title", None, title),
        el("style", None, Safe(CSS)),
    )
    return "<!doctype html>\n" + el("html", {"lang": "en"}, head, el("body", None, body)) + "\n"


__all__ = ["esc", "render"]
