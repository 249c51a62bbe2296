"""The write stage: split, stage, prove conservation, judge, report and commit the partition."""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Any

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
from sluice.pipeline.recovery import recover_dead_work, recover_for_run
from sluice.pipeline.run import Run, log, output_roots
from sluice.report import SCORES_NAME, append_history, stage_report
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

MANIFEST_VERSION = 1


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


def stage_write(run: Run, started: dt.datetime | None = None) -> dict[str, Any]:
    """Write clean, quarantine and reports as one commit, the manifest's folder last.

    Holds the partition's lock throughout, first finishing or undoing what a dead run left
    (docs/robustness.md has the commit and read protocol).
    """
    roots = output_roots(run.loaded)
    dirname = run.partition.dirname
    with partition_lock(roots["reports"], dirname):
        recover_for_run(run, roots)
        for line in recover_pending(roots["reports"], skip=dirname):
            log.warning("%s: %s", run.loaded.name, line)
        recover_dead_work(run.loaded, skip=dirname)
        with PartitionCommit(roots, dirname, run.run_id, dataset=run.loaded.name) as commit:
            summary = _write_committed(run, commit, started)
    run.discard()
    return summary


def _write_committed(
    run: Run, commit: PartitionCommit, started: dt.datetime | None
) -> dict[str, Any]:
    t0 = time.perf_counter()
    staged = _write(run, commit)
    result, ids_in = staged.split, staged.ids_in
    part = run.partition
    sums = {
        "in": checksum(ids_in),
        "clean": checksum(result.clean[ROW_ID]),
        "quarantine": checksum(result.quarantine[ROW_ID]),
    }
    counts = _counts(result.failures, len(ids_in), result.clean.height, result.quarantine.height)
    read_back = prove_conservation(
        {
            side: (commit.writer(side).path(PARQUET_NAME), staged.outputs[side]["sha256"])
            for side in ("clean", "quarantine")
        },
        ids_in,
        ROW_ID,
        {side: {"rows": counts[side], "checksum": sums[side]} for side in ("clean", "quarantine")},
    )
    holds = counts["in"] == counts["clean"] + counts["quarantine"] and sums["in"] == add_checksums(
        sums["clean"], sums["quarantine"]
    )
    ingest_facts, val, scr = run.facts("ingest"), run.facts("validate"), run.facts("screen")
    verdict = _judge(run, result.failures, counts, list(result.critical))
    manifest: dict[str, Any] = {
        "manifest_version": MANIFEST_VERSION,
        "run_id": run.run_id,
        "dataset": run.loaded.name,
        "partition": {"key": part.key, "value": str(part), "kind": part.kind},
        "status": verdict.status,
        "critical": list(result.critical),
        "verdict": {**verdict.as_dict(), "policies": _policies(run)},
        "started_at": (started or dt.datetime.now(dt.UTC)).isoformat(),
        "counts": counts,
        "checksums": {**sums, "algorithm": "sum of _row_id mod 2^64, hex"},
        "conservation": {"holds": holds, "read_back": read_back},
        "inputs": ingest_facts["inputs"],
        "schema": {
            "missing_columns": ingest_facts["missing_columns"],
            "extra_columns": ingest_facts["extra_columns"],
            "aliases": ingest_facts.get("aliases", []),
            "retyped_columns": ingest_facts.get("retyped_columns", {}),
        },
        "spec": {"path": str(run.loaded.path), "sha256": run.loaded.sha256},
        "suite": {
            "name": run.suite.name,
            "path": str(run.suite.path),
            "sha256": run.suite.sha256,
            "entries": len(run.suite.entries),
        },
        "validation": {
            "engine": val["engine"],
            "verdicts": val["verdicts"],
            "keys": val.get("keys", {}),
        },
        "detectors": scr.get("models", []),
        "screen": {
            k: v for k, v in scr.items() if k in ("skipped", "rows", "seconds", "reference")
        },
        "reasons": staged.reasons,
        "versions": versions(),
    }
    commit.swap("clean", "quarantine")
    w = commit.writer("reports")
    write_parquet(result.failures, w.path("failures.parquet"))
    outputs = {**staged.outputs, "failures": describe(w.path("failures.parquet"))}
    outputs["failures"]["path"] = str(w.final / "failures.parquet")
    manifest["outputs"] = outputs
    timings = {s: run.facts(s)["seconds"] for s in ("ingest", "validate", "screen")}
    timings["write"] = round(time.perf_counter() - t0, 4)
    manifest["timings_s"] = timings
    manifest["finished_at"] = dt.datetime.now(dt.UTC).isoformat()
    # report: scores, metrics.parquet and report.html, committed with the manifest
    report = stage_report(run.loaded, run.partition, run.file(SCORES_NAME), w, manifest)
    outputs.update(report.outputs)
    manifest["findings"] = report.findings
    if report.problem is not None:
        verdict = with_cause(verdict, report_cause(report.problem))
        manifest["status"] = verdict.status
        manifest["verdict"] = {**verdict.as_dict(), "policies": _policies(run)}
    timings["report"] = report.seconds
    write_json(manifest, w.path(MANIFEST_NAME))
    final = commit.commit()["reports"]
    append_history(final)
    return {
        "dataset": run.loaded.name,
        "partition": str(part),
        "status": manifest["status"],
        "critical": manifest["critical"],
        "causes": [c.as_dict() for c in verdict.causes],
        "counts": counts,
        "manifest": str(final / MANIFEST_NAME),
        "conservation": holds,
    }


def _policies(run: Run) -> dict[str, Any]:
    data: dict[str, Any] = run.loaded.spec.policies.model_dump(mode="json", by_alias=True)
    return data


def _counts(failures: pl.DataFrame, n_in: int, n_clean: int, n_quarantine: int) -> dict[str, Any]:
    return count_rows(failures, n_in, n_clean, n_quarantine)
