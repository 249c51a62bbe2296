"""The path of one partition: ingest, validate, screen, write.

Each stage is a plain function that reads its inputs from, and leaves its results in, the run's
work folder, so an orchestrator passes paths between stages, never frames. :func:`run_partition`
calls them in order without Prefect; ``flows/`` wraps the same functions as Prefect tasks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import polars as pl

from detectors.screen import screen
from expectations.engine import validate
from expectations.failures import failures_from_outcomes
from expectations.results import Suite
from expectations.suite import UNIQUENESS_TYPES
from sluice.config import LoadedSpec, Partition
from sluice.core.failures import concat_failures
from sluice.core.frame import ROW_ID, EngineChoice
from sluice.core.versions import versions
from sluice.decide import (
    Split,
    add_checksums,
    checksum,
    drop_shadowed,
    key_duplicates,
    split,
    trace_duplicates,
)
from sluice.ingest import ingest, polars_dtype
from sluice.preflight import preflight, with_model_path
from sluice.report import append_history, stage_report
from sluice.report.history import history_dir
from sluice.verdict import (
    Verdict,
    hinted_reasons,
    judge,
    measure,
    report_cause,
    type_hints,
    verdict_state,
    why_not_run,
    with_cause,
)
from sluice.write import (
    MANIFEST_NAME,
    PARQUET_NAME,
    PartitionBusy,
    PartitionCommit,
    describe,
    partition_lock,
    prove_conservation,
    recover,
    recover_pending,
    refuse_foreign,
    write_json,
    write_parquet,
)

STAGES = ("ingest", "validate", "screen", "write")
Side = Literal["clean", "quarantine", "reports"]
SIDES: tuple[Side, ...] = ("clean", "quarantine", "reports")
OWNER_NAME = "owner.json"
log = logging.getLogger("sluice")
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Run:
    """One run of one partition: what it reads and where its work folder is."""

    loaded: LoadedSpec
    suite: Suite
    partition: Partition
    run_id: str
    work: Path
    engine: EngineChoice

    @classmethod
    def prepare(
        cls,
        dataset: str,
        partition: str | dt.date,
        *,
        engine: EngineChoice | None = None,
        run_id: str | None = None,
        check_detectors: bool = True,
    ) -> Run:
        """Load and check every piece of configuration before any data moves."""
        checked = preflight(dataset, partition, check_detectors_too=check_detectors)
        loaded, suite, part = checked.loaded, checked.suite, checked.partition
        rid = run_id or f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        work = loaded.output_root("reports") / ".work" / f"{part.dirname}-{rid}"
        return cls(loaded, suite, part, rid, work, engine or loaded.spec.validation.engine)

    @classmethod
    def resume(cls, spec_path: str, partition: str, run_id: str, engine: EngineChoice) -> Run:
        """Rebuild a prepared run from the plain values an orchestrator passes between tasks.

        The run was checked when it was prepared; the detectors are not checked again.
        """
        return cls.prepare(
            spec_path, partition, engine=engine, run_id=run_id, check_detectors=False
        )

    def discard(self) -> None:
        """Remove the work folder, and its parent when no other run uses it."""
        shutil.rmtree(self.work, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.work.parent.rmdir()

    def file(self, name: str) -> Path:
        """A file in the work folder."""
        return self.work / name

    def record(self, stage: str, seconds: float, **facts: Any) -> None:
        """Keep a stage's timing and facts for the manifest."""
        path = self.file(f"{stage}.json")
        write_json({"seconds": round(seconds, 4), **facts}, path)

    def facts(self, stage: str) -> dict[str, Any]:
        """What a finished stage recorded."""
        data: dict[str, Any] = json.loads(self.file(f"{stage}.json").read_text())
        return data


def _timed(fn: Callable[[Run], dict[str, Any]], stage: str) -> Callable[[Run], None]:
    def wrapper(run: Run) -> None:
        t0 = time.perf_counter()
        facts = fn(run)
        run.record(stage, time.perf_counter() - t0, **facts)

    wrapper.__name__ = f"stage_{stage}"
    wrapper.__doc__ = fn.__doc__
    return wrapper


def output_roots(loaded: LoadedSpec) -> dict[str, Path]:
    """The output roots of a dataset, the reports root (which holds the manifest) last."""
    return {side: loaded.output_root(side) for side in SIDES}


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_partition(
    loaded: LoadedSpec, partition: Partition, *, keep: Path | None = None
) -> list[str]:
    """Undo or finish what dead runs of one partition left; returns what was done, in words.

    Call with the partition's lock held: finishes or rolls back a dead commit
    (:func:`sluice.write.recover`), removes work folders of dead runs on this host (all but
    ``keep``) and temporary metric history files. A work folder is made and its ``owner.json``
    written with the lock held, so one without a readable owner was left by a run that died in
    between.
    """
    roots = output_roots(loaded)
    dirname = partition.dirname
    done = recover(roots, dirname)
    work_root = roots["reports"] / ".work"
    for folder in sorted(work_root.glob(f"{dirname}-*")):
        try:
            owner = json.loads((folder / OWNER_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            owner = {"partition": dirname, "host": socket.gethostname(), "pid": 0}
        if (
            folder != keep
            and folder.is_dir()
            and isinstance(owner, dict)
            and owner.get("partition") == dirname
            and owner.get("host") == socket.gethostname()
            and not _alive(_pid(owner.get("pid")))
        ):
            shutil.rmtree(folder, ignore_errors=True)
            done.append(f"removed the work folder of a dead run ({folder})")
    with contextlib.suppress(OSError):
        work_root.rmdir()
    for tmp in sorted(history_dir(roots["reports"]).glob(f".{dirname}.*.tmp")):
        tmp.unlink(missing_ok=True)
        done.append(f"removed a metric history file a dead run left ({tmp})")
    for line in done:
        log.warning("%s %s: %s", loaded.name, dirname, line)
    return done


def _pid(value: object) -> int:
    if isinstance(value, int | str):
        with contextlib.suppress(ValueError):
            return int(value)
    return 0


def _recover_dead_work(loaded: LoadedSpec, *, skip: str) -> None:
    """Recover other partitions of the dataset whose work folder a dead run left, when their
    lock is free (a partition whose run is alive is left alone)."""
    partitions: set[str] = set()
    for folder in (loaded.output_root("reports") / ".work").glob("*=*-*"):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            owner = json.loads((folder / OWNER_NAME).read_text(encoding="utf-8"))
            name = owner.get("partition")
            if isinstance(name, str) and name != skip and folder.name.startswith(f"{name}-"):
                partitions.add(name)
    for name in sorted(partitions):
        key, _, value = name.partition("=")
        try:
            part = loaded.spec.partition.parse(value)
        except ValueError:
            continue
        if key != part.key or part.dirname != name:
            continue
        with (
            contextlib.suppress(PartitionBusy),
            partition_lock(loaded.output_root("reports"), name, timeout=0),
        ):
            recover_partition(loaded, part)


def _recover(run: Run, roots: dict[str, Path]) -> None:
    """Recover the partition (:func:`recover_partition`, keeping this run's work folder), then
    refuse partition folders sluice did not make (:func:`sluice.write.refuse_foreign`).

    Call with the partition's lock held.
    """
    dirname = run.partition.dirname
    recover_partition(run.loaded, run.partition, keep=run.work)
    manifest = roots["reports"] / dirname / MANIFEST_NAME
    for root in roots.values():
        refuse_foreign(root / dirname, dataset=run.loaded.name, manifest=manifest)


def _ingest(run: Run) -> dict[str, Any]:
    """Read the partition's files; keep typed rows, raw text and parse failures."""
    roots = output_roots(run.loaded)
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "partition": run.partition.dirname}
    with partition_lock(roots["reports"], run.partition.dirname):
        _recover(run, roots)
        run.work.mkdir(parents=True, exist_ok=True)
        write_json(owner, run.file(OWNER_NAME))
    got = ingest(run.loaded, run.partition)
    write_parquet(got.frame, run.file("frame.parquet"))
    write_parquet(got.raw, run.file("raw.parquet"))
    write_parquet(got.failures, run.file("ingest_failures.parquet"))
    return {
        "rows": got.frame.height,
        "inputs": [f.as_dict() for f in got.files],
        "missing_columns": list(got.missing_columns),
        "extra_columns": list(got.extra_columns),
        "aliases": got.aliases_used,
        "retyped_columns": got.retyped_columns,
        "failures": got.failures.height,
    }


def _validate(run: Run) -> dict[str, Any]:
    """Run the suite; keep the per-row failures and the verdict of every expectation."""
    frame = pl.read_parquet(run.file("frame.parquet"))
    data = frame.drop("_source_file", "_source_row")
    outcomes = validate(data.drop(ROW_ID), run.suite, run.engine)
    result = failures_from_outcomes(data, outcomes)
    for v in result.verdicts:
        v.setdefault("state", verdict_state(v))
        if v["state"] == "could_not_run":
            v.setdefault("why", why_not_run(v))
    keys, by_suite = _key_check(run)
    key_failures = (
        key_duplicates(frame, keys, run.loaded.spec.duplicates)
        if keys and by_suite is None
        else None
    )
    found = concat_failures([result.failures, *([] if key_failures is None else [key_failures])])
    ingest_failures = pl.read_parquet(run.file("ingest_failures.parquet"))
    failures = trace_duplicates(drop_shadowed(found, ingest_failures), frame)
    write_parquet(failures, run.file("validation_failures.parquet"))
    return {
        "engine": run.engine,
        "verdicts": result.verdicts,
        "critical_failed": result.critical_failed,
        "failures": failures.height,
        "keys": {
            "columns": keys,
            "duplicates": run.loaded.spec.duplicates,
            "enforced_by": (
                "none"
                if not keys
                else f"suite entry {by_suite}"
                if by_suite is not None
                else "keys check"
            ),
            "duplicate_rows": 0 if key_failures is None else key_failures.height,
        },
    }


def _key_check(run: Run) -> tuple[list[str], int | None]:
    """The dataset's key columns, and the index of a suite entry that already enforces them.

    A uniqueness entry over exactly the key columns, quarantining (severity error or
    critical), without a row condition and with the spec's duplicate policy does the same job:
    the keys check then adds nothing, so a duplicate row carries one reason, not two.
    """
    keys = list(run.loaded.spec.keys)
    for e in run.suite.entries:
        if (
            e.type in UNIQUENESS_TYPES
            and set(e.columns) == set(keys)
            and e.severity in ("error", "critical")
            and not e.kwargs.get("row_condition")
            and e.duplicates == run.loaded.spec.duplicates
        ):
            return keys, e.index
    return keys, None


def _screen(run: Run) -> dict[str, Any]:
    """Score the rows that passed validation with the dataset's detectors."""
    frame = pl.read_parquet(run.file("frame.parquet"))
    earlier = concat_failures(
        pl.read_parquet(run.file(f))
        for f in ("ingest_failures.parquet", "validation_failures.parquet")
    )
    bad = earlier.filter(pl.col("severity").is_in(["error", "critical"])).select(ROW_ID).unique()
    declared = [c for c in run.loaded.spec.columns if c in frame.columns]
    passed = frame.join(bad, on=ROW_ID, how="anti", maintain_order="left").select(ROW_ID, *declared)
    vfacts = run.facts("validate")
    ifacts = run.facts("ingest")
    if vfacts["critical_failed"] or ifacts["missing_columns"] or not run.loaded.spec.detectors:
        why = "a critical check failed" if run.loaded.spec.detectors else "no detectors declared"
        write_parquet(concat_failures([]), run.file("screen_failures.parquet"))
        return {"skipped": why, "rows": passed.height, "models": []}
    reference, used = reference_rows(run.loaded, run.partition, declared)
    specs = [with_model_path(run.loaded, i, s) for i, s in enumerate(run.loaded.spec.detectors)]
    result = screen(passed, specs, reference=reference)
    write_parquet(result.failures, run.file("screen_failures.parquet"))
    write_parquet(result.scores, run.file("scores.parquet"))
    return {
        "rows": passed.height,
        "models": result.models,
        "failures": result.failures.height,
        "reference": used,
    }


def reference_rows(
    loaded: LoadedSpec, partition: Partition, columns: list[str]
) -> tuple[pl.DataFrame | None, list[dict[str, Any]]]:
    """The clean rows of up to ``reference.partitions`` committed partitions before this one.

    Only clean output is read, so no quarantined row teaches the detectors, and only files
    whose sha256 their manifest gives. Returns the rows (None when there are none) and, for the
    manifest, which partitions they came from.
    """
    wanted = loaded.spec.reference.partitions
    if wanted == 0:
        return None, []
    reports = loaded.output_root("reports")
    earlier: list[tuple[Partition, Path]] = []
    for manifest in reports.glob(f"{partition.key}=*/manifest.json"):
        try:
            part = loaded.spec.partition.parse(manifest.parent.name.split("=", 1)[1])
        except ValueError:
            continue
        if part.start < partition.start:
            earlier.append((part, manifest))
    frames: list[pl.DataFrame] = []
    used: list[dict[str, Any]] = []
    for part, manifest in sorted(earlier, key=lambda pm: pm[0].start, reverse=True):
        if len(used) == wanted:
            break
        got = verified_clean(manifest, columns)
        if got is not None:
            frames.append(got[0])
            used.append({"partition": str(part), **got[1]})
    if not frames:
        return None, []
    return pl.concat(frames, how="vertical_relaxed"), used


def verified_clean(
    manifest: Path, columns: list[str]
) -> tuple[pl.DataFrame, dict[str, Any]] | None:
    """The ``_row_id`` and ``columns`` of a committed partition's clean output, read only if the
    file's sha256 is the one its manifest gives, with ``{"sha256", "rows"}``; else None."""
    try:
        entry = json.loads(manifest.read_text(encoding="utf-8"))["outputs"]["clean"]
        data = Path(entry["path"]).read_bytes()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        return None
    frame = pl.read_parquet(io.BytesIO(data))
    if not set(columns) <= set(frame.columns):
        return None
    return frame.select(ROW_ID, *columns), {"sha256": entry["sha256"], "rows": frame.height}


def _critical_checks(run: Run) -> list[tuple[str, str, str]]:
    checks = [
        (c, "missing_column", f"declared column {c!r} is not in the source")
        for c in run.facts("ingest")["missing_columns"]
    ]
    for v in run.facts("validate")["verdicts"]:
        state = verdict_state(v)
        if v["severity"] == "critical" and state != "passed":
            column, rule = v["reason"].split("|", 1)
            observed = v.get("observed_value")
            if state == "could_not_run":
                detail = f"could not run: {v.get('why') or v.get('exception') or rule}"
            else:
                detail = f"observed {observed!r}" if observed is not None else rule
            checks.append((column, rule, detail))
    return checks


def _judge(
    run: Run, failures: pl.DataFrame, counts: dict[str, Any], critical: list[str]
) -> Verdict:
    """Measure the run and judge it against the dataset's policies (sluice.verdict)."""
    verdicts = run.facts("validate")["verdicts"]
    critical_names = set(critical)
    measured = measure(
        failures,
        rows_in=counts["in"],
        quarantined=counts["quarantine"],
        critical=critical,
        verdicts=[v for v in verdicts if v.get("reason") not in critical_names],
    )
    policies = run.loaded.spec.policies
    verdict = judge(measured, policies)
    wanted = hinted_reasons(verdict, measured)
    if wanted:
        hints = type_hints(failures, run.loaded.spec.columns, wanted)
        verdict = judge(replace(measured, hints=hints), policies)
    return verdict


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
    result = split(frame, raw, failures, declared, _critical_checks(run))
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


stage_ingest = _timed(_ingest, "ingest")
stage_validate = _timed(_validate, "validate")
stage_screen = _timed(_screen, "screen")


def stage_write(run: Run, started: dt.datetime | None = None) -> dict[str, Any]:
    """Write clean, quarantine and reports as one commit, the manifest's folder last.

    Holds the partition's lock throughout, first finishing or undoing what a dead run left
    (docs/robustness.md has the commit and read protocol).
    """
    roots = output_roots(run.loaded)
    dirname = run.partition.dirname
    with partition_lock(roots["reports"], dirname):
        _recover(run, roots)
        for line in recover_pending(roots["reports"], skip=dirname):
            log.warning("%s: %s", run.loaded.name, line)
        _recover_dead_work(run.loaded, skip=dirname)
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
    report = stage_report(run, w, manifest)
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
    quarantining = failures.filter(pl.col("severity").is_in(["error", "critical"]))
    by_reason = (
        quarantining.group_by("reason").agg(pl.col(ROW_ID).n_unique().alias("rows")).sort("reason")
    )
    warned = failures.filter(pl.col("severity") == "warn")
    by_warning = (
        warned.group_by("reason").agg(pl.col(ROW_ID).n_unique().alias("rows")).sort("reason")
    )
    return {
        "in": n_in,
        "clean": n_clean,
        "quarantine": n_quarantine,
        "warned_rows": warned[ROW_ID].n_unique(),
        "quarantined_by_reason": dict(by_reason.iter_rows()),
        "warnings_by_reason": dict(by_warning.iter_rows()),
    }


def run_partition(
    dataset: str, partition: str | dt.date, *, engine: EngineChoice | None = None
) -> dict[str, Any]:
    """Screen one partition without Prefect (for notebooks and tests); returns the run summary."""
    started = dt.datetime.now(dt.UTC)
    run = Run.prepare(dataset, partition, engine=engine)
    try:
        stage_ingest(run)
        stage_validate(run)
        stage_screen(run)
        return stage_write(run, started)
    except BaseException:
        run.discard()
        raise
