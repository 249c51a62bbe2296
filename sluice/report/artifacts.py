"""Prefect artifacts for every screened partition, under stable keys per dataset.

Three artifacts (four with baselines), so the Prefect UI shows each one's history across runs:

- ``sluice-<dataset>-summary`` (markdown): the verdict (passed, WARNED or FAILED) with each of
  its causes, the counts, and what needs attention (metric alarms and drifted columns, as the
  report shows them);
- ``sluice-<dataset>-failed-rules`` (table): every reason that marked rows, with its row count;
- ``sluice-<dataset>-report`` (link): the run's ``report.html``;
- ``sluice-<dataset>-baseline-drift`` (table, when the spec names ``monitor.baselines``): every
  column's drift against every named baseline, with the baseline's status and drift share.

:func:`artifact_payloads` builds their content from a run summary and its manifest (plain data,
tested without Prefect); :func:`publish_artifacts` sends them.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sluice.report.markup import fmt_num, fmt_pct
from sluice.report.metrics import stage_of

TOP_RULES = 10


def artifact_key(dataset: str, what: str) -> str:
    """A Prefect artifact key: lowercase letters, digits and dashes only."""
    slug = re.sub(r"[^a-z0-9]+", "-", dataset.lower()).strip("-") or "dataset"
    return f"sluice-{slug}-{what}"


@dataclass(frozen=True)
class ArtifactPayloads:
    """What the three artifacts of one run hold."""

    dataset: str
    partition: str
    markdown: str
    table: list[dict[str, Any]]
    report_uri: str | None
    baselines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def keys(self) -> dict[str, str]:
        """The stable keys of the summary, rules table, report link and baseline drift."""
        return {
            w: artifact_key(self.dataset, w)
            for w in ("summary", "failed-rules", "report", "baseline-drift")
        }


def baseline_table(findings: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per column and named baseline: the test, its statistic, drift or not, and the
    baseline's status, drift share and reference (the report's "Drift against baselines")."""
    rows = []
    for b in findings.get("baselines") or []:
        common = {
            "baseline": b.get("baseline"),
            "status": b.get("status"),
            "drift_share": b.get("drift_share"),
            "drift_share_threshold": b.get("drift_share_threshold"),
            "classifier_auc": b.get("classifier_auc"),
            "reference": b.get("reference"),
        }
        columns = b.get("columns") or [{}]
        for c in columns:
            rows.append(
                {
                    **common,
                    "column": c.get("column", ""),
                    "test": c.get("test", ""),
                    "statistic": c.get("statistic"),
                    "drifted": c.get("drifted", False),
                    "note": c.get("note", ""),
                }
            )
    return rows


def baseline_alarm_line(b: dict[str, Any]) -> str:
    """A run alarming against a named baseline, as a markdown list item."""
    causes = "; ".join(str(c) for c in b.get("causes") or [])
    return f"- **baseline** {_code(b.get('baseline', ''))}: {causes} ({b.get('reference', '')})"


def baseline_lines(findings: dict[str, Any]) -> list[str]:
    """The markdown summary's "Drift against baselines" table (empty without baselines)."""
    got = findings.get("baselines") or []
    if not got:
        return []
    lines = [
        "",
        "## Drift against baselines",
        "",
        "| baseline | status | drift share | classifier AUC | drifted columns | reference |",
        "|---|---|---:|---:|---|---|",
    ]
    for b in got:
        share = b.get("drift_share")
        auc = b.get("classifier_auc")
        lines.append(
            f"| {_code(b.get('baseline', ''))} | {b.get('status')} | "
            f"{fmt_pct(share) if share is not None else '–'} | "
            f"{f'{auc:.3f}' if auc is not None else '–'} | "
            f"{', '.join(_code(c) for c in b.get('drifted') or []) or '–'} | "
            f"{str(b.get('reference', '')).replace('|', '/')} |"
        )
    return lines


def _code(text: str) -> str:
    return "`" + str(text).replace("`", "'").replace("|", "\\|") + "`"


def _fmt(kind: str, value: float | None) -> str:
    if value is None:
        return "–"
    if kind == "rate":
        return fmt_pct(value)
    if kind == "count":
        return fmt_num(round(value))
    return fmt_num(value)


def alarm_line(alarm: dict[str, Any]) -> str:
    """One metric alarm as a markdown list item."""
    kind = alarm.get("kind", "level")
    scope = {"run": "", "column": "column ", "rule": "rule ", "detector": "detector "}.get(
        alarm["scope"], ""
    )
    name = f"{_code(alarm['name'])} " if alarm.get("name") else ""
    return (
        f"- **alarm**: {scope}{name}{alarm['metric'].replace('_', ' ')} is "
        f"{_fmt(kind, alarm['value'])}, {alarm.get('direction', '')} the expected "
        f"{_fmt(kind, alarm.get('low'))} to {_fmt(kind, alarm.get('high'))} "
        f"(median {_fmt(kind, alarm.get('median'))} of {alarm.get('reference', '')})"
    )


def drift_line(drift: dict[str, Any]) -> str:
    """One drifted column as a markdown list item."""
    test = drift.get("test", "")
    stat = drift.get("statistic")
    p = drift.get("p_value")
    what = {"ks": "KS D", "chi2": "Cramér's V", "psi": "PSI"}.get(test, test)
    text = f"{what} = {stat:.3f}" if stat is not None else what
    if p is not None:
        text += f", p = {p:.2g}"
    what = (
        "partitions of the pinned baseline"
        if drift.get("pinned_baseline")
        else "earlier partitions"
    )
    span = f" ({drift['reference_span']})" if drift.get("reference_span") else ""
    return (
        f"- **drift**: column {_code(drift['column'])}: {text} against "
        f"{len(drift.get('reference', []))} {what}{span}"
    )


def segment_line(segment: dict[str, Any]) -> str:
    """One biased segment (:mod:`sluice.report.segments`) as a markdown list item."""
    where = _code(f"{segment.get('column')} = {segment.get('value')}")
    return (
        f"- **segment bias**: {where}: {fmt_pct(float(segment.get('share', 0.0)))} of its "
        f"{fmt_num(int(segment.get('rows', 0)))} screened rows flagged by "
        f"{_code(str(segment.get('detector', '')))}, {float(segment.get('ratio', 0.0)):.0f}x the "
        f"overall {fmt_pct(float(segment.get('overall', 0.0)))}"
    )


def rules_table(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every reason that marked rows: quarantining ones first, most rows first."""
    counts = manifest.get("counts", {})
    n_in = max(int(counts.get("in", 0)), 1)
    critical = set(manifest.get("critical", []))
    rows = []
    for severity, by_reason in (
        ("error", counts.get("quarantined_by_reason", {})),
        ("warn", counts.get("warnings_by_reason", {})),
    ):
        for reason, n in by_reason.items():
            column, _, rule = reason.partition("|")
            sev = "critical" if reason in critical else severity
            rows.append(
                {
                    "reason": reason,
                    "stage": stage_of(column, rule, sev),
                    "severity": sev,
                    "rows": int(n),
                    "share_of_rows_in": round(int(n) / n_in, 6),
                }
            )
    rows.sort(key=lambda r: (r["severity"] == "warn", -r["rows"], r["reason"]))
    return rows


def artifact_payloads(summary: dict[str, Any], manifest: dict[str, Any]) -> ArtifactPayloads:
    """The content of a run's artifacts, from its summary and manifest."""
    dataset = str(summary.get("dataset") or manifest.get("dataset", ""))
    partition = str(summary.get("partition") or manifest.get("partition", {}).get("value", ""))
    counts = manifest.get("counts") or summary.get("counts", {})
    n_in = max(int(counts.get("in", 0)), 1)
    status = str(manifest.get("status") or summary.get("status", ""))
    findings = manifest.get("findings") or {}
    causes = (manifest.get("verdict") or {}).get("causes") or summary.get("causes") or []
    lines = [
        f"# {dataset} {partition}: {status if status == 'passed' else status.upper()}",
        "",
    ]
    if causes:
        lines += [
            *(
                f"- **{'error' if c.get('level') == 'error' else 'warning'}**: "
                f"{c.get('message', '')}"
                for c in causes
            ),
            "",
        ]
    lines += [
        f"**{fmt_num(int(counts.get('clean', 0)))} of {fmt_num(int(counts.get('in', 0)))} rows "
        f"clean ({fmt_pct(counts.get('clean', 0) / n_in)})**, "
        f"{fmt_num(int(counts.get('quarantine', 0)))} quarantined.",
    ]
    stages = findings.get("quarantined_by_stage")
    if stages:
        lines.append(
            "Quarantined by stage: "
            + ", ".join(f"{s} {fmt_num(int(n))}" for s, n in stages.items())
        )
    if manifest.get("critical"):
        lines.append("Critical checks failed: " + ", ".join(_code(c) for c in manifest["critical"]))
    alarms = findings.get("alarms", [])
    drift = findings.get("drift", [])
    segments = findings.get("segment_bias", [])
    against = [
        b for b in findings.get("baselines") or [] if b.get("status") in ("alarm", "unavailable")
    ]
    lines.append("")
    if alarms or drift or segments or against:
        lines.append("## Needs attention")
        lines += [alarm_line(a) for a in alarms]
        lines += [drift_line(d) for d in drift]
        lines += [segment_line(s) for s in segments]
        lines += [baseline_alarm_line(b) for b in against]
    elif findings:
        lines.append(
            f"{'Nothing unusual' if status == 'passed' else 'No metric alarm, no drift'}: "
            f"{findings.get('judged_metrics', 0)} metrics judged against their "
            f"history ({findings.get('learning_metrics', 0)} still learning), "
            f"{len(findings.get('drift_tested', []))} columns tested for drift."
        )
    lines += baseline_lines(findings)
    table = rules_table(manifest)
    if table:
        lines += ["", "## Top failed rules", "", "| reason | stage | rows | of rows in |"]
        lines.append("|---|---|---:|---:|")
        for r in table[:TOP_RULES]:
            lines.append(
                f"| {_code(r['reason'])} | {r['stage']} | {fmt_num(r['rows'])} | "
                f"{fmt_pct(r['share_of_rows_in'])} |"
            )
    report = manifest.get("outputs", {}).get("report", {}).get("path")
    uri = Path(report).resolve().as_uri() if report else None
    if uri:
        lines += ["", f"Report: [{Path(report).name}]({uri})"]
    return ArtifactPayloads(
        dataset, partition, "\n".join(lines) + "\n", table, uri, baseline_table(findings)
    )


def load_manifest(path: str | Path) -> dict[str, Any]:
    """A manifest file's content (empty when it cannot be read)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:
        return logging.getLogger("sluice.report")


def publish_artifacts(summary: dict[str, Any], manifest: dict[str, Any]) -> None:
    """Publish the run's summary, failed-rules table and report link as Prefect artifacts.

    The outputs are already written when this runs, so a Prefect API that cannot take the
    artifacts costs a warning in the flow's log, not the run.
    """
    from prefect.artifacts import (
        create_link_artifact,
        create_markdown_artifact,
        create_table_artifact,
    )

    p = artifact_payloads(summary, manifest)
    keys = p.keys
    what = f"{p.dataset} {p.partition}"
    try:
        create_markdown_artifact(
            p.markdown, key=keys["summary"], description=f"Screening summary of {what}"
        )
        create_table_artifact(
            p.table or [{"reason": "(none)", "stage": "", "severity": "", "rows": 0}],
            key=keys["failed-rules"],
            description=f"Rules that marked rows in {what}",
        )
        if p.baselines:
            create_table_artifact(
                p.baselines,
                key=keys["baseline-drift"],
                description=f"Drift of {what} against its named baselines",
            )
        if p.report_uri:
            create_link_artifact(
                p.report_uri,
                link_text=f"report of {what}",
                key=keys["report"],
                description=f"HTML report of {what} (open on the machine that holds it)",
            )
    except Exception as exc:
        _logger().warning("could not publish the artifacts of %s: %s", what, exc)
