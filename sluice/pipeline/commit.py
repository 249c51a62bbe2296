"""The write stage: split, stage, prove conservation, judge, report and commit the partition."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from sluice.audit.keep import archive_manifest, keep_run
from sluice.audit.records import AuditRecord
from sluice.audit.store import StoreError
from sluice.config import TABLE_SIDES
from sluice.core.failures import concat_failures
from sluice.core.frame import ROW_ID
from sluice.core.memory import note_stage
from sluice.core.versions import versions
from sluice.decide import (
    add_checksums,
    checksum,
)
from sluice.ingest import polars_dtype
from sluice.lineage import run_completed
from sluice.pipeline.budget import batch_rows
from sluice.pipeline.handoff import get, in_memory_only, release
from sluice.pipeline.manifest import (
    Checksums,
    Conservation,
    Counts,
    Manifest,
    OutputFile,
    PartitionRef,
    SchemaDrift,
    ScreenSummary,
    SpecFile,
    SuiteFile,
    TableVersion,
    Timings,
    Validation,
    now,
)
from sluice.pipeline.manifest import Verdict as ManifestVerdict
from sluice.pipeline.recovery import recover_dead_work, recover_for_run
from sluice.pipeline.run import Run, log, output_roots
from sluice.preflight import with_model_path
from sluice.screening import count_rows, critical_checks, judge_rows, split_rows
from sluice.storage import DeltaTables, OutputBackend, PosixParquet, Written, kill_point
from sluice.verdict import (
    Verdict,
    report_cause,
    with_cause,
)
from sluice.write import (
    MANIFEST_NAME,
    PartitionCommit,
    check_conservation,
    describe,
    partition_lock,
    recover_pending,
    write_json,
    write_parquet,
)

REPORT_FILE = "report.html"


def _judge(
    run: Run, failures: pl.DataFrame, counts: dict[str, Any], critical: list[str]
) -> Verdict:
    """Measure the run and judge it against the dataset's policies (sluice.screening)."""
    screened = run.facts("screen")
    return judge_rows(
        failures,
        counts,
        critical,
        verdicts=run.facts("validate")["verdicts"],
        policies=run.loaded.spec.policies,
        columns=run.loaded.spec.columns,
        detectors=screened["models"],
        screened_rows=screened["rows"],
    )


Orchestrator = Literal["in-process", "prefect", "dask"]


Expected = Mapping[str, Mapping[str, Any]]
"""Each side's ``rows`` and ``checksum`` as the manifest will give them."""


@dataclass(frozen=True)
class _Staged:
    """What the write stage staged: the failures, each side's rows and checksum (``in``,
    ``clean``, ``quarantine``), the reasons and outputs, and the proof of conservation.

    ``prove`` reads the staged outputs back and raises :class:`sluice.write.ConservationError`
    unless they hold every input row exactly once and agree with what it is given; it returns
    each side's ``rows`` and ``checksum`` as read back. ``held``: the sides written whole from
    frames in memory (``clean``, ``quarantine``), those frames, for the report.
    """

    failures: pl.DataFrame
    critical: tuple[str, ...]
    rows: dict[str, int]
    sums: dict[str, str]
    reasons: list[str]
    meta: dict[str, str]
    written: dict[str, Written]
    prove: Callable[[Expected], dict[str, dict[str, Any]]]
    held: dict[str, pl.DataFrame] = field(default_factory=dict)


def backend_for(run: Run, commit: PartitionCommit) -> OutputBackend:
    """The dataset's storage backend (``outputs.format``) for this run's commit."""
    loaded = run.loaded
    if not loaded.delta:
        return PosixParquet(commit, write=_write_parquet)
    return DeltaTables(
        {side: loaded.table_uri(side) for side in TABLE_SIDES},
        column=run.partition.key,
        value=str(run.partition),
        run_id=run.run_id,
        storage_options=loaded.storage_options(),
    )


def split_inputs(
    run: Run,
) -> tuple[pl.DataFrame, dict[str, pl.DataType], list[tuple[str, str, str]]]:
    """What the split of a run's rows needs besides the rows: the failures of every stage, the
    declared columns' types and the critical checks that failed."""
    failures = concat_failures(
        get(run, f"{s}_failures.parquet") for s in ("ingest", "validation", "screen")
    )
    declared = {c: polars_dtype(s) for c, s in run.loaded.spec.columns.items()}
    critical = critical_checks(
        run.facts("ingest")["missing_columns"], run.facts("validate")["verdicts"]
    )
    return failures, declared, critical


def _write(run: Run, backend: OutputBackend) -> _Staged:
    """Split rows into clean and quarantine and write them through the backend."""
    if run.bounded:
        from sluice.pipeline.bounded_write import write_bounded

        return write_bounded(run, backend)
    frame = get(run, "frame.parquet")
    raw = get(run, "raw.parquet")
    failures, declared, critical = split_inputs(run)
    result = split_rows(frame, raw, failures, declared, critical)
    # the split is the last use of the rows held in memory: the report reads what was written
    release(run, "frame.parquet", "raw.parquet")
    ids_in = frame.get_column(ROW_ID)
    del raw, frame
    part = run.partition
    meta = {
        "sluice.dataset": run.loaded.name,
        "sluice.partition": f"{part.key}={part}",
        "sluice.suite_sha256": run.suite.sha256,
        "sluice.spec_sha256": run.loaded.sha256,
    }
    reasons = sorted(result.failures["reason"].unique().to_list())
    qmeta = {**meta, "sluice.rules": json.dumps(reasons)}
    written = {
        "clean": backend.write("clean", result.clean, meta),
        "quarantine": backend.write("quarantine", result.quarantine, qmeta),
    }
    sides = {"in": ids_in, "clean": result.clean[ROW_ID], "quarantine": result.quarantine[ROW_ID]}

    def prove(expected: Expected) -> dict[str, dict[str, Any]]:
        return check_conservation(
            {side: backend.read_back(w, ROW_ID) for side, w in written.items()},
            ids_in,
            ROW_ID,
            expected,
            names=", ".join(_where(w) for w in written.values()),
        )

    return _Staged(
        failures=result.failures,
        critical=result.critical,
        rows={k: len(v) for k, v in sides.items()},
        sums={k: checksum(v) for k, v in sides.items()},
        reasons=reasons,
        meta=qmeta,
        written=written,
        prove=prove,
        # a side written to a Delta table is read at its version: its frame is not kept
        held={
            side: frame
            for side, frame in (("clean", result.clean), ("quarantine", result.quarantine))
            if not written[side].table
        },
    )


def stage_write(
    run: Run, started: dt.datetime | None = None, orchestrator: Orchestrator | None = None
) -> dict[str, Any]:
    """Write clean, quarantine and reports as one commit, the manifest's folder last.

    ``orchestrator`` is recorded in the manifest: what ran the stages.

    Holds the partition's lock throughout, first finishing or undoing what a dead run left
    (docs/robustness.md has the commit and read protocol). Refuses, before touching any output,
    a run whose spec or suite file changed since it was prepared (:class:`ConfigChanged`).
    """
    run.check_unchanged()
    roots = output_roots(run.loaded)
    dirname = run.partition.dirname
    with partition_lock(roots["reports"], dirname):
        recover_for_run(run, roots)
        for line in recover_pending(roots["reports"], skip=dirname):
            log.warning("%s: %s", run.loaded.name, line)
        recover_dead_work(run.loaded, skip=dirname)
        _warn_if_released(roots["reports"] / dirname / MANIFEST_NAME, run)
        with PartitionCommit(roots, dirname, run.run_id, dataset=run.loaded.name) as commit:
            summary = _write_committed(run, commit, backend_for(run, commit), started, orchestrator)
    run.discard()
    return summary


def _warn_if_released(manifest: Path, run: Run) -> None:
    """Say so when this run replaces a commit that released reviewed rows (docs/review.md)."""
    try:
        release = json.loads(manifest.read_text(encoding="utf-8")).get("release")
    except (OSError, ValueError, AttributeError):
        return
    if release:
        moved = len(release.get("released", [])) + len(release.get("fixed", []))
        log.warning(
            "%s %s: this run replaces release %s (%d rows released by %s); they are judged "
            "afresh from the source, then the audit log's decisions are applied again to the "
            "rows that are unchanged",
            run.loaded.name,
            run.partition,
            release.get("at"),
            moved,
            release.get("by"),
        )


def _write_committed(
    run: Run,
    commit: PartitionCommit,
    backend: OutputBackend,
    started: dt.datetime | None,
    orchestrator: Orchestrator | None = None,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    staged = _write(run, backend)
    part = run.partition
    sums = Checksums(
        ids_in=staged.sums["in"],
        clean=staged.sums["clean"],
        quarantine=staged.sums["quarantine"],
        algorithm="sum of _row_id mod 2^64, hex",
    )
    rows = staged.rows
    counts = _counts(staged.failures, rows["in"], rows["clean"], rows["quarantine"])
    read_back = staged.prove(
        {
            "clean": {"rows": counts.clean, "checksum": sums.clean},
            "quarantine": {"rows": counts.quarantine, "checksum": sums.quarantine},
        }
    )
    holds = counts.rows_in == counts.clean + counts.quarantine and sums.ids_in == add_checksums(
        sums.clean, sums.quarantine
    )
    ingested, validated, screened = run.ingest_facts(), run.validate_facts(), run.screen_facts()
    verdict = _judge(run, staged.failures, counts.model_dump(mode="json"), list(staged.critical))
    if not staged.written["clean"].table:
        commit.swap("clean", "quarantine")
    w = commit.writer("reports")
    failures_file = PosixParquet(commit, write=_write_parquet).write(
        "failures", staged.failures, {}
    )
    outputs = {side: x.entry for side, x in staged.written.items() if not x.table}
    outputs["failures"] = failures_file.entry
    tables = {side: x.entry for side, x in staged.written.items() if x.table}
    if tables:
        tables["failures"] = backend.write("failures", staged.failures, staged.meta).entry
    timings = {
        "ingest": ingested.seconds,
        "validate": validated.seconds,
        "screen": screened.seconds,
        "write": round(time.perf_counter() - t0, 4),
    }
    note_stage(run.run_id, "write", timings["write"])
    manifest = Manifest(
        run_id=run.run_id,
        dataset=run.loaded.name,
        partition=PartitionRef(key=part.key, value=str(part), kind=part.kind),
        status=verdict.status,
        critical=list(staged.critical),
        verdict=_verdict(run, verdict),
        started_at=started or now(),
        finished_at=now(),
        counts=counts,
        checksums=sums,
        conservation=Conservation.model_validate({"holds": holds, "read_back": read_back}),
        inputs=ingested.inputs,
        schema_drift=SchemaDrift(
            missing_columns=ingested.missing_columns,
            extra_columns=ingested.extra_columns,
            aliases=ingested.aliases,
            retyped_columns=ingested.retyped_columns,
        ),
        spec=SpecFile(path=str(run.loaded.path), sha256=run.loaded.sha256),
        suite=SuiteFile(
            name=run.suite.name,
            path=None if run.suite.path is None else str(run.suite.path),
            sha256=run.suite.sha256,
            entries=len(run.suite.entries),
        ),
        validation=Validation(
            engine=validated.engine, verdicts=validated.verdicts, keys=validated.keys
        ),
        detectors=screened.models,
        screen=ScreenSummary(
            skipped=screened.skipped,
            rows=screened.rows,
            seconds=screened.seconds,
            reference=screened.reference,
        ),
        reasons=staged.reasons,
        versions=versions(),
        outputs={k: OutputFile.model_validate(v) for k, v in outputs.items()},
        timings_s=Timings.model_validate(timings),
        tables={k: TableVersion.model_validate(v) for k, v in tables.items()} or None,
        orchestrator=orchestrator,
    )
    # the input's ids held for the proof are let go of; the report measures the frames just
    # written (the files hold the same rows: reading them again cost 2 of 30 CPU s at 10M rows)
    held = {**staged.held, "failures": staged.failures}
    del staged
    # report: scores, metrics.parquet and report.html, committed with the manifest; the report
    # builder is imported only now, when it is used
    from sluice.pipeline.release import add_review_section
    from sluice.report import SCORES_NAME, append_history, stage_report

    bounded = run.bounded
    scores = in_memory_only(run, SCORES_NAME)
    report = stage_report(
        run.loaded,
        run.partition,
        run.file(SCORES_NAME) if scores is None else scores,
        w,
        manifest.dump(),
        bounded=bounded,
        batch_rows=batch_rows(len(run.loaded.spec.columns)) if bounded else None,
        held=None if bounded else held,
    )
    del held, scores
    note_stage(run.run_id, "report", report.seconds)
    if report.problem is not None:
        verdict = with_cause(verdict, report_cause(report.problem))
    elif "report" in report.outputs and add_review_section(
        w.path(REPORT_FILE), output_roots(run.loaded)["reports"], manifest.dump()
    ):
        report.outputs["report"] = {
            **describe(w.path(REPORT_FILE)),
            "path": str(w.final / REPORT_FILE),
        }
    manifest = Manifest.model_validate(
        {
            **manifest.dump(),
            "status": verdict.status,
            "verdict": _verdict(run, verdict).model_dump(mode="json"),
            "outputs": {**outputs, **report.outputs},
            "findings": report.findings,
            "timings_s": {**timings, "report": report.seconds},
        }
    )
    manifest = Manifest.model_validate(
        {**manifest.dump(), "audit": _keep(run, w.root, manifest).model_dump(mode="json")}
    )
    write_json(manifest.dump(), w.path(MANIFEST_NAME))
    _archive(w.final / MANIFEST_NAME)
    if tables:
        kill_point("manifest")
    final = commit.commit()["reports"]
    _archive(final / MANIFEST_NAME)
    append_history(final)
    run_completed(
        manifest.dump(),
        list(run.loaded.spec.columns),
        run.partition,
        storage_options=run.loaded.storage_options(),
    )
    return {
        "dataset": run.loaded.name,
        "partition": str(part),
        "status": manifest.status,
        "critical": manifest.critical,
        "causes": [c.as_dict() for c in verdict.causes],
        "counts": counts.model_dump(mode="json"),
        "manifest": str(final / MANIFEST_NAME),
        "conservation": holds,
    }


def _keep(run: Run, reports_root: Path, manifest: Manifest) -> AuditRecord:
    """Store the spec, suite, saved models and (archive_inputs) inputs before the commit."""
    spec = run.loaded.spec
    models: dict[str, tuple[str, str]] = {}
    for i, d in enumerate(spec.detectors):
        s = with_model_path(run.loaded, i, d)
        if s.model is not None and s.model_sha256 is not None:
            models[s.name] = (s.model, s.model_sha256)
    inputs = [(f.path, f.sha256) for f in manifest.inputs] if spec.archive_inputs else None
    return keep_run(
        reports_root,
        spec=(run.loaded.path, run.loaded.sha256),
        suite=(run.suite.path, run.suite.sha256),
        models=models,
        inputs=inputs,
    )


def _archive(manifest: Path) -> None:
    """Keep a copy of a committed manifest; a failure is logged (the commit stands)."""
    try:
        archive_manifest(manifest)
    except StoreError as exc:
        log.warning("%s", exc)


def _write_parquet(
    frame: pl.DataFrame, path: Path, metadata: Mapping[str, str] | None = None
) -> None:
    """:func:`sluice.write.write_parquet`, looked up when called (tests replace it here)."""
    write_parquet(frame, path, metadata)


def _where(written: Written) -> str:
    if written.table:
        return f"{written.entry['uri']} version {written.entry['version']}"
    return str(written.staged)


def _verdict(run: Run, verdict: Verdict) -> ManifestVerdict:
    return ManifestVerdict.model_validate({**verdict.as_dict(), "policies": _policies(run)})


def _policies(run: Run) -> dict[str, Any]:
    data: dict[str, Any] = run.loaded.spec.policies.model_dump(mode="json", by_alias=True)
    return data


def _counts(failures: pl.DataFrame, n_in: int, n_clean: int, n_quarantine: int) -> Counts:
    return Counts.model_validate(count_rows(failures, n_in, n_clean, n_quarantine))
