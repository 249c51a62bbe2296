"""A run's verdict: passed, warned or failed, and every cause, in words that name it.

Measuring is kept apart from judging. :func:`measure` reads what a run produced (the failures of
every stage, the expectations' verdicts, the critical checks) into :class:`Measurements`, plain
numbers and names; :func:`judge` compares them with the dataset's policies
(``sluice.config.PoliciesSpec``) and returns a :class:`Verdict`. The judge does no I/O and is
unit-tested with hand-fed numbers.

A run **fails** when a critical check failed, an expectation of severity ``error`` that marks no
rows (a batch-level one: row count, mean, column set) failed, a share of quarantined rows (the
run's, a stage's or one reason's) is above its ``error`` threshold, or an expectation could not
run and ``could_not_run`` is ``error``. It is **warned** when such an expectation of severity
``warn`` failed, a share is above its ``warn`` threshold, or an expectation could not run.
A detector that did not run on rows it should have screened (too few rows to fit on) counts as
a check that could not run.
Otherwise it **passed**. The write stage adds one cause after judging: a report that could not
be built warns the run (:func:`with_cause`, :func:`report_cause`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import polars as pl

from sluice.config import ColumnSpec, PoliciesSpec, Threshold
from sluice.core.failures import TABLE_COLUMN

Status = Literal["passed", "warned", "failed"]
Level = Literal["warn", "error"]
CauseKind = Literal["critical", "check", "could_not_run", "rule", "stage", "run", "report"]
VerdictState = Literal["passed", "failed", "could_not_run"]
STATUSES: tuple[Status, ...] = ("passed", "warned", "failed")
JUDGED_STAGES = ("ingest", "validate", "screen")
STAGE_WORDS = {
    "ingest": "did not parse (type, malformed or encoding)",
    "validate": "failed suite rules or keys",
    "screen": "were flagged as outliers",
}
MALFORMED_COLUMN = "_row"
OUTLIER_COLUMN = "outlier"
QUARANTINING = ("error", "critical")
TOP_IN_STAGE = 3
HINTED = 5


@dataclass(frozen=True)
class CouldNotRun:
    """An expectation that could not run, and why."""

    reason: str
    index: int
    type: str
    why: str


@dataclass(frozen=True)
class DetectorNotRun:
    """A detector that screened none of the rows that passed validation, and why."""

    name: str
    why: str
    rows: int

    @property
    def reason(self) -> str:
        """The reason its flags would have carried: ``outlier|<name>``."""
        return f"{OUTLIER_COLUMN}|{self.name}"


@dataclass(frozen=True)
class FailedCheck:
    """An expectation that failed without marking rows (a batch-level one), and what it saw."""

    reason: str
    index: int
    severity: str
    observed: str


@dataclass(frozen=True)
class Measurements:
    """What a run produced, as the judge needs it: counts of rows and names of checks.

    ``by_stage`` and ``by_reason`` count rows quarantined (severity error), each row once per
    stage or reason. ``hints`` says, for a reason, what its failing values look like.
    """

    rows_in: int
    quarantined: int
    by_stage: Mapping[str, int] = field(default_factory=dict)
    by_reason: Mapping[str, int] = field(default_factory=dict)
    critical: Sequence[str] = ()
    could_not_run: Sequence[CouldNotRun] = ()
    failed_checks: Sequence[FailedCheck] = ()
    hints: Mapping[str, str] = field(default_factory=dict)
    detectors_not_run: Sequence[DetectorNotRun] = ()


@dataclass(frozen=True)
class Cause:
    """One reason a run is not ``passed``."""

    level: Level
    kind: CauseKind
    name: str
    message: str
    share: float | None = None
    threshold: float | None = None
    policy: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The cause as plain JSON types, for the manifest."""
        return {
            "level": self.level,
            "kind": self.kind,
            "name": self.name,
            "message": self.message,
            "share": None if self.share is None else round(self.share, 6),
            "threshold": self.threshold,
            "policy": self.policy,
        }


@dataclass(frozen=True)
class Verdict:
    """The status of a run and its causes, failures first."""

    status: Status
    causes: tuple[Cause, ...] = ()

    @property
    def errors(self) -> list[Cause]:
        """The causes that fail the run."""
        return [c for c in self.causes if c.level == "error"]

    @property
    def warnings(self) -> list[Cause]:
        """The causes that warn."""
        return [c for c in self.causes if c.level == "warn"]

    def as_dict(self) -> dict[str, Any]:
        """The verdict as plain JSON types, for the manifest and the run summary."""
        return {"status": self.status, "causes": [c.as_dict() for c in self.causes]}


def with_cause(verdict: Verdict, cause: Cause) -> Verdict:
    """``verdict`` with one more cause: failed stays failed, otherwise the cause's level sets
    the status (a warning makes a passed run warned)."""
    causes = tuple(sorted((*verdict.causes, cause), key=lambda c: c.level != "error"))
    if verdict.status == "failed" or cause.level == "error":
        return Verdict("failed", causes)
    return Verdict("warned", causes)


def report_cause(problem: str) -> Cause:
    """The warning of a run whose ``report.html`` could not be built; ``problem`` is cut to its
    first line."""
    line = (problem.strip().splitlines() or ["no reason given"])[0]
    line = line if len(line) <= 300 else line[:299] + "…"
    return Cause("warn", "report", "report", f"report.html could not be built: {line}")


def stage_of_reason(reason: str) -> str:
    """The stage a quarantining reason comes from: ingest, validate or screen."""
    column, _, rule = reason.partition("|")
    if column == MALFORMED_COLUMN or rule == "type":
        return "ingest"
    if column == OUTLIER_COLUMN:
        return "screen"
    return "validate"


def verdict_state(verdict: Mapping[str, Any]) -> VerdictState:
    """An expectation verdict's state: its ``state`` field, else derived from the older fields.

    A verdict whose check raised (``exception`` set) could not run, whatever ``success`` says.
    """
    state = verdict.get("state")
    if state in ("passed", "failed", "could_not_run"):
        return state  # type: ignore[no-any-return]
    if verdict.get("exception"):
        return "could_not_run"
    return "passed" if verdict.get("success") else "failed"


def why_not_run(verdict: Mapping[str, Any]) -> str:
    """One line on why an expectation could not run."""
    why = verdict.get("why") or verdict.get("exception") or "no reason given"
    lines = str(why).strip().splitlines() or ["no reason given"]
    return lines[0][:300]


def _pct(share: float) -> str:
    return f"{share:.1%}" if share < 0.999 or share == 1 else f"{share:.2%}"


def _level(share: float, t: Threshold) -> tuple[Level, float] | None:
    if t.error is not None and share > t.error:
        return "error", t.error
    if t.warn is not None and share > t.warn:
        return "warn", t.warn
    return None


def _crossing(
    m: Measurements, rows: int, t: Threshold, *, kind: CauseKind, name: str, what: str, policy: str
) -> Cause | None:
    share = rows / m.rows_in if m.rows_in else 0.0
    hit = _level(share, t)
    if hit is None:
        return None
    level, limit = hit
    message = (
        f"{name}: {rows:,} of {m.rows_in:,} rows ({_pct(share)}) {what}, above the "
        f"{_pct(limit)} {level} threshold ({policy}.{level})"
    )
    return Cause(level, kind, name, message, share, limit, f"{policy}.{level}")


def judge(m: Measurements, policies: PoliciesSpec) -> Verdict:
    """The verdict of a run from its measurements and the dataset's policies.

    A share is above a threshold when it is strictly greater (a threshold of 0 means any row).
    """
    causes: list[Cause] = []
    for reason in m.critical:
        causes.append(
            Cause(
                "error",
                "critical",
                reason,
                f"{reason}: a critical check failed; every row is quarantined",
            )
        )
    for f in m.failed_checks:
        if f.severity not in ("error", "warn"):
            continue
        level: Level = "error" if f.severity == "error" else "warn"
        causes.append(
            Cause(
                level,
                "check",
                f.reason,
                f"{f.reason}: expectation {f.index} failed (severity {f.severity}, observed "
                f"{f.observed}); it marks no rows",
            )
        )
    for c in m.could_not_run:
        level = policies.could_not_run
        causes.append(
            Cause(
                level,
                "could_not_run",
                c.reason,
                f"{c.reason}: expectation {c.index} could not run: {c.why}; "
                f"its rows were not checked (policies.could_not_run: {level})",
                policy="could_not_run",
            )
        )
    for d in m.detectors_not_run:
        level = policies.could_not_run
        causes.append(
            Cause(
                level,
                "could_not_run",
                d.reason,
                f"{d.reason}: detector {d.name!r} did not run ({d.why}); the {d.rows:,} rows "
                f"that passed validation were not screened by it "
                f"(policies.could_not_run: {level})",
                policy="could_not_run",
            )
        )
    critical = set(m.critical)
    for reason, rows in sorted(m.by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
        if reason in critical:
            continue
        policy = f"policies.rules[{reason!r}]" if reason in policies.rules else "policies.per_rule"
        cause = _crossing(
            m,
            rows,
            policies.rule(reason),
            kind="rule",
            name=reason,
            what="did not parse" if reason.endswith("|type") else "quarantined",
            policy=policy,
        )
        if cause is not None:
            hint = m.hints.get(reason)
            causes.append(replace(cause, message=f"{cause.message}; {hint}") if hint else cause)
    for stage in JUDGED_STAGES:
        rows = int(m.by_stage.get(stage, 0))
        cause = _crossing(
            m,
            rows,
            policies.stages.of(stage),
            kind="stage",
            name=stage,
            what=STAGE_WORDS[stage],
            policy=f"policies.stages.{stage}",
        )
        if cause is not None:
            top = [
                (r, n)
                for r, n in sorted(m.by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
                if r not in critical and stage_of_reason(r) == stage
            ][:TOP_IN_STAGE]
            if top:
                most = ", ".join(f"{r} {n:,}" for r, n in top)
                own = {c.name for c in causes if c.kind == "rule"}
                hints = "".join(
                    f"; {r}: {m.hints[r]}" for r, _ in top if r in m.hints and r not in own
                )
                cause = replace(cause, message=f"{cause.message}; most: {most}{hints}")
            causes.append(cause)
    if not critical:
        cause = _crossing(
            m,
            m.quarantined,
            policies.quarantine,
            kind="run",
            name="run",
            what="quarantined",
            policy="policies.quarantine",
        )
        if cause is not None:
            causes.append(cause)
    causes.sort(key=lambda c: c.level != "error")
    if any(c.level == "error" for c in causes):
        return Verdict("failed", tuple(causes))
    return Verdict("warned" if causes else "passed", tuple(causes))


def measure(
    failures: pl.DataFrame,
    *,
    rows_in: int,
    quarantined: int,
    critical: Sequence[str],
    verdicts: Sequence[Mapping[str, Any]],
    detectors: Sequence[Mapping[str, Any]] = (),
    screened_rows: int = 0,
) -> Measurements:
    """Measure a run from its failures table (every stage), its expectations' verdicts, the
    reasons of the critical checks that failed and its detectors' records (as in the manifest),
    of which those ``skipped`` did not screen the ``screened_rows`` that passed validation."""
    q = failures.filter(pl.col("severity") == "error")
    by_reason = dict(
        q.group_by("reason").agg(pl.col("_row_id").n_unique().alias("rows")).iter_rows()
    )
    stage = (
        pl.when((pl.col("column") == MALFORMED_COLUMN) | (pl.col("rule") == "type"))
        .then(pl.lit("ingest"))
        .when(pl.col("column") == OUTLIER_COLUMN)
        .then(pl.lit("screen"))
        .otherwise(pl.lit("validate"))
    )
    by_stage = dict(
        q.with_columns(stage.alias("stage"))
        .group_by("stage")
        .agg(pl.col("_row_id").n_unique().alias("rows"))
        .iter_rows()
    )
    could_not = [
        CouldNotRun(
            str(v.get("reason") or f"{TABLE_COLUMN}|{v.get('type')}"),
            int(v.get("index", -1)),
            str(v.get("type", "")),
            why_not_run(v),
        )
        for v in verdicts
        if verdict_state(v) == "could_not_run"
    ]
    failed_checks = [
        FailedCheck(
            str(v.get("reason")),
            int(v.get("index", -1)),
            str(v.get("severity")),
            _observed(v.get("observed_value")),
        )
        for v in verdicts
        if verdict_state(v) == "failed" and not v.get("failing_rows")
    ]
    return Measurements(
        rows_in=rows_in,
        quarantined=quarantined,
        by_stage={s: int(n) for s, n in by_stage.items()},
        by_reason={r: int(n) for r, n in by_reason.items()},
        critical=tuple(critical),
        could_not_run=tuple(could_not),
        failed_checks=tuple(failed_checks),
        hints={},
        detectors_not_run=tuple(
            DetectorNotRun(str(d.get("name")), str(d.get("reason") or "skipped"), screened_rows)
            for d in detectors
            if d.get("skipped") and screened_rows > 0
        ),
    )


def _observed(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:79] + "…"


def type_hints(
    failures: pl.DataFrame, columns: Mapping[str, ColumnSpec], reasons: Sequence[str]
) -> dict[str, str]:
    """For each ``column|type`` reason among ``reasons``: what its failing values look like and
    which declaration would read them (:func:`sluice.hints.type_hint`)."""
    from sluice.hints import SAMPLE, type_hint

    out: dict[str, str] = {}
    for reason in reasons:
        column, _, rule = reason.partition("|")
        if rule != "type" or column not in columns:
            continue
        values = (
            failures.filter(pl.col("reason") == reason)
            .get_column("value")
            .head(SAMPLE * 50)
            .to_list()
        )
        spec = columns[column]
        declared = f"declared {spec.type}" + (
            f" with format {spec.format!r}" if spec.format else ""
        )
        out[reason] = f"{declared}; {type_hint(values, spec)}"
    return out


def hinted_reasons(verdict: Verdict, m: Measurements) -> list[str]:
    """The reasons whose values a verdict's causes should describe: each rule cause, and the
    largest reasons of an ingest stage cause."""
    wanted = [c.name for c in verdict.causes if c.kind == "rule"]
    if any(c.kind == "stage" and c.name == "ingest" for c in verdict.causes):
        wanted += [
            r
            for r, _ in sorted(m.by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
            if stage_of_reason(r) == "ingest"
        ][:TOP_IN_STAGE]
    return list(dict.fromkeys(wanted))[:HINTED]
