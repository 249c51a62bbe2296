"""The write stage: split, stage, prove conservation, judge, report and commit the partition."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from sluice.core.failures import concat_failures
from sluice.core.frame import ROW_ID
from sluice.core.versions import versions
from sluice.decide import (
    Split,
    add_checksums,
    checksum,
)
from sluice.ingest import polars_dtype
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
    Timings,
    Validation,
    now,
)
from sluice.pipeline.manifest import Verdict as ManifestVerdict
from sluice.pipeline.recovery import recover_dead_work, recover_for_run
from sluice.pipeline.run import Run, log, output_roots
from sluice.screening import count_rows, critical_checks, judge_rows, split_rows
from sluice.verdict import (
    Verdict,
    report_cause,
    with_cause,
)
from sluice.write import (
    MANIFEST_NAME,
    PARQUET_NAME,
    PartitionCommit,
    describe,
    partition_lock,
    prove_conservation,
    recover_pending,
    write_json,
    write_parquet,
)


def _judge(
    run: Run, failures: pl.DataFrame, counts: dict[str, Any], critical: list[str]
) -> Verdict:
    """Measure the run and judge it against the dataset's policies (sluice.screening)."""
    return judge_rows(
        failures,
        counts,
        critical,
        verdicts=run.facts("validate")["verdicts"],
        policies=run.loaded.spec.policies,
        columns=run.loaded.spec.columns,
    )


Orchestrator = Literal["in-process", "prefect"]


@dataclass(frozen=True)
class _Staged:
    """What the write stage staged: the split, the ids that came in, the reasons and files."""

    split: Split
    ids_in: pl.Series
    reasons: list[str]
    outputs: dict[str, Any]


def _write(run: Run, commit: PartitionCommit) -> _Staged:
    """Split rows into clean and quarantine and stage them."""
    frame = pl.read_parquet(run.file("frame.parquet"))
    raw = pl.read_parquet(run.file("raw.parquet"))
    failures = concat_failures(
        pl.read_parquet(run.file(f"{s}_failures.parquet"))
        for s in ("ingest", "validation", "screen")
    )
    declared = {c: polars_dtype(s) for c, s in run.loaded.spec.columns.items()}
    critical = critical_checks(
        run.facts("ingest")["missing_columns"], run.facts("validate")["verdicts"]
    )
    result = split_rows(frame, raw, failures, declared, critical)
    part = run.partition
    meta = {
        "sluice.dataset": run.loaded.name,
        "sluice.partition": f"{part.key}={part}",
        "sluice.suite_sha256": run.suite.sha256,
        "sluice.spec_sha256": run.loaded.sha256,
    }
    reasons = sorted(result.failures["reason"].unique().to_list())
    outputs: dict[str, Any] = {}
    w = commit.writer("clean")
    write_parquet(result.clean, w.path(PARQUET_NAME), meta)
    outputs["clean"] = describe(w.path(PARQUET_NAME), result.clean.height)
    outputs["clean"]["path"] = str(w.final / PARQUET_NAME)
    w = commit.writer("quarantine")
    qmeta = {**meta, "sluice.rules": json.dumps(reasons)}
    write_parquet(result.quarantine, w.path(PARQUET_NAME), qmeta)
    outputs["quarantine"] = describe(w.path(PARQUET_NAME), result.quarantine.height)
    outputs["quarantine"]["path"] = str(w.final / PARQUET_NAME)
    return _Staged(result, frame[ROW_ID], reasons, outputs)


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
        with PartitionCommit(roots, dirname, run.run_id, dataset=run.loaded.name) as commit:
            summary = _write_committed(run, commit, started, orchestrator)
    run.discard()
    return summary


def _write_committed(
    run: Run,
    commit: PartitionCommit,
    started: dt.datetime | None,
    orchestrator: Orchestrator | None = None,
) -> dict[str, Any]:
    t0 = time.perf_counter()
    staged = _write(run, commit)
    result, ids_in = staged.split, staged.ids_in
    part = run.partition
    sums = Checksums(
        ids_in=checksum(ids_in),
        clean=checksum(result.clean[ROW_ID]),
        quarantine=checksum(result.quarantine[ROW_ID]),
        algorithm="sum of _row_id mod 2^64, hex",
    )
    counts = _counts(result.failures, len(ids_in), result.clean.height, result.quarantine.height)
    read_back = prove_conservation(
        {
            side: (commit.writer(side).path(PARQUET_NAME), staged.outputs[side]["sha256"])
            for side in ("clean", "quarantine")
        },
        ids_in,
        ROW_ID,
        {
            "clean": {"rows": counts.clean, "checksum": sums.clean},
            "quarantine": {"rows": counts.quarantine, "checksum": sums.quarantine},
        },
    )
    holds = counts.rows_in == counts.clean + counts.quarantine and sums.ids_in == add_checksums(
        sums.clean, sums.quarantine
    )
    ingested, validated, screened = run.ingest_facts(), run.validate_facts(), run.screen_facts()
    verdict = _judge(run, result.failures, counts.model_dump(mode="json"), list(result.critical))
    commit.swap("clean", "quarantine")
    w = commit.writer("reports")
    write_parquet(result.failures, w.path("failures.parquet"))
    outputs = {**staged.outputs, "failures": describe(w.path("failures.parquet"))}
    outputs["failures"]["path"] = str(w.final / "failures.parquet")
    timings = {
        "ingest": ingested.seconds,
        "validate": validated.seconds,
        "screen": screened.seconds,
        "write": round(time.perf_counter() - t0, 4),
    }
    manifest = Manifest(
        run_id=run.run_id,
        dataset=run.loaded.name,
        partition=PartitionRef(key=part.key, value=str(part), kind=part.kind),
        status=verdict.status,
        critical=list(result.critical),
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
        orchestrator=orchestrator,
    )
    # report: scores, metrics.parquet and report.html, committed with the manifest; the report
    # builder is imported only now, when it is used
    from sluice.report import SCORES_NAME, append_history, stage_report

    report = stage_report(run.loaded, run.partition, run.file(SCORES_NAME), w, manifest.dump())
    if report.problem is not None:
        verdict = with_cause(verdict, report_cause(report.problem))
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
    write_json(manifest.dump(), w.path(MANIFEST_NAME))
    final = commit.commit()["reports"]
    append_history(final)
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


def _verdict(run: Run, verdict: Verdict) -> ManifestVerdict:
    return ManifestVerdict.model_validate({**verdict.as_dict(), "policies": _policies(run)})


def _policies(run: Run) -> dict[str, Any]:
    data: dict[str, Any] = run.loaded.spec.policies.model_dump(mode="json", by_alias=True)
    return data


def _counts(failures: pl.DataFrame, n_in: int, n_clean: int, n_quarantine: int) -> Counts:
    return Counts.model_validate(count_rows(failures, n_in, n_clean, n_quarantine))
