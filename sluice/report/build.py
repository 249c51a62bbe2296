"""Build a run's report from its outputs: measure, judge against history, test drift, render.

:func:`stage_report` is called by the write stage while the partition's reports folder is still
staged, so ``report.html``, ``metrics.parquet`` and ``scores.parquet`` are committed with the
manifest; :func:`rebuild_report` builds the same report later from the committed outputs.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from sluice.config import LoadedSpec, Partition, find_spec
from sluice.core.errors import ConfigError, SluiceError
from sluice.report.anomalies import AnomalyPolicy, Finding, detect
from sluice.report.bounded import Mode, copy_columns
from sluice.report.drift import (
    DriftPolicy,
    DriftResult,
    Source,
    detect_drift,
    load_reference,
    reference_files,
    source_schema,
    table_partitions,
)
from sluice.report.history import METRICS_NAME, Baseline, load_history
from sluice.report.metrics import (
    METRICS_SCHEMA,
    ColumnProfile,
    DetectorStats,
    RuleSummary,
    RunOutputs,
    detector_stats,
    failure_ids,
    load_outputs,
    metrics_frame,
    profiles,
    rule_summaries,
    stage_counts,
)
from sluice.report.monitor import (
    BaselineCheck,
    ChangePoint,
    MonitorPlan,
    change_keys,
    change_points,
    check_all,
    metric_rows,
    plan_monitoring,
)
from sluice.report.segments import SegmentBias, segment_bias
from sluice.write import MANIFEST_NAME, PARQUET_NAME, describe, write_parquet

if TYPE_CHECKING:
    from sluice.write import PartitionWriter

REPORT_NAME = "report.html"
SCORES_NAME = "scores.parquet"
REBUILT_NAME = "report.rebuilt.html"
SCORE_COLUMNS = ("_row_id", "detector", "score")


@dataclass(frozen=True)
class Report:
    """Everything a report shows about one run."""

    outputs: RunOutputs
    stages: dict[str, int]
    rules: list[RuleSummary]
    columns: list[ColumnProfile]
    detectors: list[DetectorStats]
    findings: list[Finding]
    drift: list[DriftResult]
    metrics: pl.DataFrame
    history: pl.DataFrame
    policy: AnomalyPolicy = field(default_factory=AnomalyPolicy)
    segments: list[SegmentBias] = field(default_factory=list)
    baseline: Baseline | None = None
    monitoring: list[BaselineCheck] = field(default_factory=list)
    shifts: list[ChangePoint] = field(default_factory=list)

    @property
    def alarms(self) -> list[Finding]:
        """Metrics outside their band."""
        return [f for f in self.findings if f.status == "alarm"]

    @property
    def drifted(self) -> list[DriftResult]:
        """Columns whose distribution moved."""
        return [d for d in self.drift if d.drifted]

    def summary(self) -> dict[str, Any]:
        """What the manifest and the Prefect artifacts record of the findings."""
        judged = [f for f in self.findings if f.status != "learning"]
        return {
            "quarantined_by_stage": dict(self.stages),
            "alarms": [f.as_dict() for f in self.alarms],
            "drift": [d.as_dict() for d in self.drifted],
            "judged_metrics": len(judged),
            "learning_metrics": len(self.findings) - len(judged),
            "drift_tested": [d.column for d in self.drift if d.kind != "skipped"],
            "drift_skipped": {d.column: d.note for d in self.drift if d.kind == "skipped"},
            "segment_bias": [s.as_dict() for s in self.segments],
            **({"baselines": [c.as_dict() for c in self.monitoring]} if self.monitoring else {}),
            **({"change_points": [c.as_dict() for c in self.shifts]} if self.shifts else {}),
        }


def _drifted_before(history: pl.DataFrame) -> dict[str, set[str]]:
    rows = history.filter(
        (pl.col("scope") == "column") & (pl.col("metric") == "drift") & (pl.col("value") >= 1)
    )
    out: dict[str, set[str]] = {}
    for name, part in rows.select("name", "partition").iter_rows():
        out.setdefault(name, set()).add(part)
    return out


def _drift(
    outputs: RunOutputs,
    files: list[tuple[Partition, Source]],
    history: pl.DataFrame,
    policy: DriftPolicy,
    *,
    partition: Partition,
    pinned: bool,
    bounded: bool = False,
) -> list[DriftResult]:
    """Drift of every column, tested under positional names (``_c0``, ``_c1``...): a column
    called ``*``, ``^a.*$`` or like a frame's own column would otherwise be read as a pattern or
    clash. A column that some earlier partition lacks is skipped, with a note. Against a pinned
    baseline no partition is left out for having drifted before."""
    columns = list(outputs.columns)
    schemas = [source_schema(f) for _, f in files]
    present = set(columns).intersection(*schemas)
    tested = [c for c in columns if c in present]
    slot = {c: f"_c{i}" for i, c in enumerate(tested)}
    name = {v: k for k, v in slot.items()}
    mode: Mode = "row_groups" if bounded else "exact"
    reference = load_reference(files, tested, policy, schemas=schemas, names=slot, mode=mode)

    sample = outputs.clean_sample(tested, policy.current_rows, policy.seed)

    def current(column: str) -> pl.Series:
        return sample.get_column(name[column]).alias(column)

    drifted = {} if pinned else _drifted_before(history)
    before = {slot[c]: p for c, p in drifted.items() if c in slot}
    got = detect_drift(
        current,
        reference,
        list(slot.values()),
        drifted_before=before,
        policy=policy,
        partition=partition,
        pinned=pinned,
    )
    sampled = ""
    if sample.height < outputs.clean_rows:
        sampled = (
            f"this partition: a seeded sample of {sample.height:,} of its "
            f"{outputs.clean_rows:,} clean rows, drawn by row group"
        )
    by_column = {
        name[d.column]: replace(
            d, column=name[d.column], note=d.note or (sampled if d.kind != "skipped" else "")
        )
        for d in got
    }
    missing = DriftResult("", "skipped", "", None, None, None, 0, 0, [], False)
    note = "not in every earlier partition it would be compared with"
    return [
        by_column.get(c) or replace(missing, column=c, n_current=outputs.clean_rows, note=note)
        for c in columns
    ]


def compose(
    outputs: RunOutputs,
    *,
    reports_root: Path,
    clean_root: Path | None,
    anomaly_policy: AnomalyPolicy | None = None,
    drift_policy: DriftPolicy | None = None,
    baseline: Baseline | None = None,
    storage_options: Mapping[str, str] | None = None,
    monitor: MonitorPlan | None = None,
    bounded: bool = False,
) -> Report:
    """Measure a run, judge its metrics against the history before it (or the pinned
    ``baseline``), test drift, and compare it with the named baselines of ``monitor``.
    ``bounded``: drift references from a seeded choice of row groups of each earlier
    partition (:mod:`sluice.report.bounded`)."""
    apol = anomaly_policy or AnomalyPolicy()
    dpol = drift_policy or DriftPolicy()
    part = outputs.partition
    history = (
        load_history(reports_root, before=part.start)
        if part.kind != "hour"
        else pl.DataFrame(schema=METRICS_SCHEMA)
    )
    ids = failure_ids(outputs)  # once: profiles, metrics, stage counts and rules read them
    cols = profiles(outputs, ids)
    dets = detector_stats(outputs)
    candidates = (
        None if clean_root is not None else table_partitions(reports_root, part, storage_options)
    )
    files, dpol = reference_files(
        clean_root or reports_root, part, dpol, baseline, candidates=candidates
    )
    drift = _drift(
        outputs,
        files,
        history,
        dpol,
        partition=part,
        pinned=baseline is not None,
        bounded=bounded,
    )
    extra: list[tuple[str, str, str, float | None, int]] = []
    for d in drift:
        if d.kind == "skipped":
            continue
        extra.append(("column", d.column, "drift", 1.0 if d.drifted else 0.0, d.n_current))
        extra.append(("column", d.column, "drift_statistic", d.statistic, d.n_current))
    checks = (
        check_all(
            outputs.clean_frame(list(outputs.clean.columns)), list(outputs.columns), part, monitor
        )
        if monitor and monitor.baselines
        else []
    )
    extra += metric_rows(checks)
    metrics = metrics_frame(outputs, cols, dets, extra, ids)
    shifts = change_points(history, metrics, change_keys(metrics))
    judged_on = history
    if baseline is not None:
        judged_on = load_history(reports_root).filter(pl.col("partition_start") != part.start)
    findings = (
        detect(metrics, judged_on, partition_kind=part.kind, policy=apol, baseline=baseline)
        if part.kind != "hour"
        else []
    )
    return Report(
        outputs=outputs,
        stages=stage_counts(outputs, ids),
        rules=rule_summaries(outputs, ids=ids),
        columns=cols,
        detectors=dets,
        findings=findings,
        drift=drift,
        metrics=metrics,
        history=history,
        policy=apol,
        segments=segment_bias(outputs, distinct={c.name: c.distinct for c in cols}),
        baseline=baseline,
        monitoring=checks,
        shifts=shifts,
    )


def formats_of(loaded: LoadedSpec) -> dict[str, str]:
    """The declared text formats of date and time columns."""
    return {c: s.format for c, s in loaded.spec.columns.items() if s.format}


def write_text_atomic(text: str, path: Path) -> None:
    """Write a text file under a temporary name, then rename it into place."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class StagedReport:
    """What :func:`stage_report` added to the staged reports folder, for the manifest."""

    outputs: dict[str, dict[str, Any]]
    findings: dict[str, Any]
    seconds: float
    problem: str | None = None


def stage_report(
    loaded: LoadedSpec,
    partition: Partition,
    scores: Path | pl.DataFrame,
    writer: PartitionWriter,
    manifest: Mapping[str, Any],
    *,
    bounded: bool = False,
    batch_rows: int | None = None,
    held: Mapping[str, pl.DataFrame] | None = None,
) -> StagedReport:
    """Keep the scores, measure the run, and stage ``metrics.parquet`` and ``report.html``.

    ``scores``: the screen stage's scores, as a file in the work folder (absent when nothing was
    scored) or the frame itself when the stages share a process. Called by the write stage
    after the clean and quarantine folders are committed and ``failures.parquet`` is staged; the
    caller adds the returned entries to the manifest. A report that cannot be built does not
    stop the run: the result says why (``problem``) and the caller warns the run with that
    cause. ``bounded`` (a run in bounded batches): the scores are copied by polars' streaming
    engine and drift references read by row groups (:mod:`sluice.report.bounded`). ``held``:
    the frames the write stage wrote and still holds (:func:`sluice.report.metrics.load_outputs`),
    measured without reading their files again.
    """
    from sluice.report.html import render

    t0 = time.perf_counter()
    staged: dict[str, dict[str, Any]] = {}

    def keep(name: str, rows: int | None = None) -> None:
        entry = describe(writer.path(name), rows)
        entry["path"] = str(writer.final / name)
        staged[name.split(".", maxsplit=1)[0]] = entry

    if isinstance(scores, pl.DataFrame):
        frame = scores.select(SCORE_COLUMNS)
    elif scores.exists() and bounded:
        keep(SCORES_NAME, copy_columns(scores, writer.path(SCORES_NAME), SCORE_COLUMNS))
        frame = None
    else:
        frame = pl.read_parquet(scores, columns=list(SCORE_COLUMNS)) if scores.exists() else None
    if frame is not None:
        write_parquet(frame, writer.path(SCORES_NAME))
        keep(SCORES_NAME, frame.height)
        held = {**(held or {}), "scores": frame}
    try:
        outputs = load_outputs(
            dict(manifest),
            writer.staging,
            formats_of(loaded),
            storage_options=loaded.storage_options(),
            bounded=bounded,
            spill_dir=scores.parent if bounded and isinstance(scores, Path) else None,
            batch_rows=batch_rows,
            held=held,
        )
        plan = plan_monitoring(loaded, partition)
        report = compose(
            outputs,
            reports_root=loaded.output_root("reports"),
            clean_root=None if loaded.delta else loaded.output_root("clean"),
            baseline=plan.bands or Baseline.of(loaded.spec),
            storage_options=loaded.storage_options(),
            monitor=plan,
            bounded=bounded,
        )
        text = render(report)
    except Exception as exc:
        # The manifest is the record of the run: a report that cannot be built must not stop it.
        problem = f"{type(exc).__name__}: {exc}"
        logging.getLogger(__name__).warning(
            "%s %s: no report (%s); rebuild it later with `sluice report`",
            loaded.name,
            partition,
            problem,
        )
        seconds = round(time.perf_counter() - t0, 4)
        return StagedReport(staged, {"report_error": problem}, seconds, problem)
    write_parquet(report.metrics, writer.path(METRICS_NAME))
    keep(METRICS_NAME, report.metrics.height)
    writer.path(REPORT_NAME).write_text(text, encoding="utf-8")
    keep(REPORT_NAME)
    return StagedReport(staged, report.summary(), round(time.perf_counter() - t0, 4))


@dataclass(frozen=True)
class Rebuilt:
    """Where a rebuilt report went and whether it matches the one the run recorded."""

    path: Path
    matches_manifest: bool | None
    report: Report


def _resolve_outputs(manifest: dict[str, Any], loaded: LoadedSpec, dirname: str) -> None:
    for which in ("clean", "quarantine"):
        entry = manifest.get("outputs", {}).get(which)
        if entry is None or not Path(entry["path"]).exists():
            root = loaded.output_root(which)
            candidate = root / dirname / PARQUET_NAME
            if not candidate.exists():
                raise SluiceError(f"the run's {which} data is gone: no {candidate}")
            manifest.setdefault("outputs", {})[which] = {"path": str(candidate)}


def rebuild_report(
    dataset: str,
    partition: str,
    *,
    anomaly_policy: AnomalyPolicy | None = None,
    drift_policy: DriftPolicy | None = None,
) -> Rebuilt:
    """Build the report of a past run again from its outputs and the history before it.

    The report goes to ``report.html`` in the partition's reports folder when there is none, or
    when the rebuilt file is byte for byte the one the manifest records; otherwise (the history
    before the partition or sluice changed since) to ``report.rebuilt.html`` beside it, so the
    file the manifest vouches for stays as it was.
    """
    from sluice.core.files import file_sha256, sha256_hex
    from sluice.report.html import render

    loaded = find_spec(dataset)
    try:
        part = loaded.spec.partition.parse(partition)
    except ValueError as exc:
        raise ConfigError(str(exc), file=loaded.path, key="partition", found=partition) from None
    reports_root = loaded.output_root("reports")
    folder = reports_root / part.dirname
    manifest_path = folder / MANIFEST_NAME
    if not manifest_path.exists():
        raise SluiceError(
            f"{loaded.name} {part}: no finished run (no {manifest_path}); "
            f"run `sluice run {loaded.name} --partition {part}` first"
        )
    manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
    if not manifest.get("tables"):
        _resolve_outputs(manifest, loaded, part.dirname)
    outputs = load_outputs(
        manifest, folder, formats_of(loaded), storage_options=loaded.storage_options()
    )
    plan = plan_monitoring(loaded, part)
    report = compose(
        outputs,
        reports_root=reports_root,
        clean_root=None if loaded.delta else loaded.output_root("clean"),
        storage_options=loaded.storage_options(),
        anomaly_policy=anomaly_policy,
        drift_policy=drift_policy,
        baseline=plan.bands or Baseline.of(loaded.spec),
        monitor=plan,
    )
    text = render(report)
    recorded = manifest.get("outputs", {}).get("report")
    target = folder / REPORT_NAME
    matches: bool | None = None
    if recorded is not None:
        matches = sha256_hex(text.encode("utf-8")) == recorded.get("sha256")
        if not matches:
            target = folder / REBUILT_NAME
        elif target.exists() and file_sha256(target) == recorded.get("sha256"):
            return Rebuilt(target, True, report)
    write_text_atomic(text, target)
    return Rebuilt(target, matches, report)
