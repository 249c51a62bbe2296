"""Review and release: apply people's decisions about quarantined rows as a new commit.

:func:`review_partition` writes the review file of a committed partition
(:mod:`sluice.review.export`). :func:`release_partition` applies a filled-in one:

- ``release`` (held wrongly): the row moves to clean with its values;
- ``fix``: the corrected row is checked again against the current suite, with the rest of the
  partition around it (so keys and uniqueness see every row), by the pipeline's own
  :func:`~sluice.screening.check_rows`, and scored by the detectors as the screen stage scores
  (:func:`~detectors.screen.screen` on every row that passes, reference window included), unless
  ``flag_wrong`` says the detectors' flag was wrong; a row that passes moves to clean, one that
  fails stays quarantined with its new reasons;
- ``reject``: the row stays quarantined; the decision is logged.

Rows keep their ``_row_id`` and provenance; clean gains the release columns
(:data:`RELEASE_COLUMNS`). The new rows are committed as any run's are, through the dataset's
storage backend (:mod:`sluice.storage`) under the partition's lock: staged Parquet files, or a
new version of each Delta table; conservation is proven from what the backend reads back, before
the manifest is written. The manifest names the commit it replaced (``previous``, whose
manifest is kept in the audit folder) and what the release did (``release``); then every
decision is appended to the audit log (:mod:`sluice.review.audit`). A decision file made from
another commit is refused, except that applying the very file that made the current commit
again changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from detectors.screen import screen as score_detectors
from sluice.config import TABLE_SIDES, ColumnSpec, LoadedSpec, Partition, find_spec
from sluice.core.errors import SluiceError
from sluice.core.failures import concat_failures, empty_failures
from sluice.core.files import sha256_hex
from sluice.core.frame import PROVENANCE, ROW_ID, SOURCE_FILE, SOURCE_ROW, EngineChoice
from sluice.decide import QUARANTINING, add_checksums, checksum
from sluice.ingest import polars_dtype
from sluice.lineage import run_completed, run_started, run_stopped
from sluice.pipeline.manifest import Manifest, now
from sluice.pipeline.reference import reference_rows
from sluice.pipeline.run import log, output_roots
from sluice.preflight import preflight, with_model_path
from sluice.report import SCORES_NAME, append_history, stage_report
from sluice.review.audit import (
    LOG_NAME,
    AuditEntry,
    CommitRef,
    RowState,
    append_entries,
    audit_folder,
    dump_manifest,
    overturned_flags,
    read_log,
)
from sluice.review.decisions import Decision, Decisions, StaleDecisions, read_decisions
from sluice.review.export import as_text, review_frame, write_review
from sluice.screening import check_rows, count_rows, judge_rows, rows_to_score, why_not_scored
from sluice.storage import DeltaTables, OutputBackend, PosixParquet, Written, kill_point
from sluice.write import (
    MANIFEST_NAME,
    ConservationError,
    NotCommitted,
    PartitionCommit,
    check_conservation,
    describe,
    load_partition,
    partition_lock,
    recover,
    write_json,
)

RELEASED_AS = "_released_as"
RELEASED_BY = "_released_by"
RELEASED_AT = "_released_at"
RELEASED_WHY = "_released_why"
FIXED_FROM = "_fixed_from"
RELEASE_COLUMNS: dict[str, pl.DataType] = {
    RELEASED_AS: pl.String(),
    RELEASED_BY: pl.String(),
    RELEASED_AT: pl.Datetime("us", "UTC"),
    RELEASED_WHY: pl.String(),
    FIXED_FROM: pl.String(),
}
"""Columns clean gains in a partition with released rows (null on rows that never were
quarantined): release or fix, by whom, when, the note, and each fixed cell's original text
(a JSON object, column to text)."""
DECISIONS_NAME = "decisions.jsonl"


def _committed_at(loaded: LoadedSpec, part: Partition) -> Path:
    return output_roots(loaded)["reports"] / part.dirname / MANIFEST_NAME


def _load(manifest_path: Path, loaded: LoadedSpec, part: Partition) -> tuple[Any, bytes]:
    if not manifest_path.exists():
        raise SluiceError(
            f"{loaded.name} {part}: no committed run (no {manifest_path}); run `sluice run "
            f"{loaded.name} --partition {part}` first"
        )
    try:
        committed = load_partition(manifest_path, storage_options=loaded.storage_options())
    except NotCommitted as exc:
        raise SluiceError(f"{loaded.name} {part}: {exc}") from None
    return committed, manifest_path.read_bytes()


def review_partition(
    dataset: str, partition: str | dt.date, out: Path | None = None
) -> tuple[Path, int]:
    """Write the review file of a partition's quarantine; returns its path and rows."""
    loaded = find_spec(dataset)
    part = _parse(loaded, partition)
    manifest_path = _committed_at(loaded, part)
    with partition_lock(manifest_path.parent.parent, part.dirname):
        committed, data = _load(manifest_path, loaded, part)
    frame = review_frame(
        committed.frames["quarantine"],
        loaded.spec.columns,
        run_id=str(committed.manifest["run_id"]),
        manifest_sha256=sha256_hex(data),
    )
    target = out or Path(f"review-{loaded.name}-{part.dirname.replace('=', '-')}.csv")
    return write_review(frame, target, loaded.spec.columns), frame.height


def _parse(loaded: LoadedSpec, partition: str | dt.date) -> Partition:
    try:
        return loaded.spec.partition.parse(partition)
    except ValueError as exc:
        raise SluiceError(f"{loaded.name}: partition {partition}: {exc}") from None


def release_partition(
    dataset: str,
    partition: str | dt.date,
    decisions: Path,
    by: str,
    *,
    engine: EngineChoice | None = None,
) -> dict[str, Any]:
    """Apply a decision file to a committed partition as a new commit; returns a summary.

    Raises :class:`~sluice.review.decisions.DecisionError` (exit 2) for a file that cannot be
    applied, naming row and column, and :class:`StaleDecisions` (exit 2) for a file made from
    another commit of the partition.
    """
    who = by.strip()
    if not who:
        raise SluiceError("--by must name who took the decisions; found an empty name")
    checked = preflight(dataset, partition, engine=engine)
    loaded, part = checked.loaded, checked.partition
    clash = sorted(set(RELEASE_COLUMNS) & set(loaded.spec.columns))
    if clash:
        raise SluiceError(
            f"{loaded.path}: schema declares {', '.join(clash)}, which a release adds to clean "
            f"({', '.join(RELEASE_COLUMNS)}); rename the column (with aliases) to release rows"
        )
    roots = output_roots(loaded)
    manifest_path = _committed_at(loaded, part)
    started = time.perf_counter()
    release_id = f"{now():%Y%m%dT%H%M%SZ}-release-{uuid.uuid4().hex[:8]}"
    with partition_lock(roots["reports"], part.dirname):
        for line in recover(roots, part.dirname):
            log.warning("%s: %s", loaded.name, line)
        committed, data = _load(manifest_path, loaded, part)
        _log_missing(roots["reports"], part, committed)
        current = sha256_hex(data)
        try:
            chosen = read_decisions(
                decisions, committed.frames["quarantine"], loaded.spec.columns, commit=current
            )
        except StaleDecisions as exc:
            if _applied_already(committed.manifest, exc):
                return _summary(committed.manifest, manifest_path, applied_already=True)
            raise
        if not chosen.decisions:
            raise SluiceError(
                f"{decisions}: no row has a decision (column decision: release, fix or reject); "
                "nothing to do"
            )
        run_started(loaded.name, release_id, part, job="release")
        try:
            return _release(
                loaded,
                rid=release_id,
                suite=checked.suite,
                part=part,
                committed=committed,
                manifest_bytes=data,
                chosen=chosen,
                who=who,
                engine=engine,
                started=started,
            )
        except BaseException as exc:
            run_stopped(loaded.name, release_id, part, exc, job="release")
            raise


def _log_missing(reports_root: Path, part: Partition, committed: Any) -> None:
    """Append the current release's entries to the audit log if a crash kept them out of it
    (they are appended just after the commit; the committed ``decisions.jsonl`` holds them)."""
    manifest = committed.manifest
    data = committed.files.get("decisions")
    if not manifest.get("release") or data is None:
        return
    log_path = audit_folder(reports_root, part.dirname) / LOG_NAME
    if any(e.commit.run_id == manifest["run_id"] for e in read_log(log_path)):
        return
    entries = [AuditEntry.model_validate_json(line) for line in data.splitlines() if line.strip()]
    append_entries(reports_root, part.dirname, entries)
    log.warning(
        "%s: audit entries of commit %s appended from its decisions.jsonl", part, manifest["run_id"]
    )


def _applied_already(manifest: Mapping[str, Any], exc: StaleDecisions) -> bool:
    rel, prev = manifest.get("release"), manifest.get("previous")
    return bool(
        rel
        and prev
        and rel.get("decisions_sha256") == exc.file_sha256
        and prev.get("sha256") == exc.made_from
    )


def _summary(
    manifest: Mapping[str, Any], path: Path, *, applied_already: bool = False
) -> dict[str, Any]:
    rel = manifest.get("release") or {}
    return {
        "dataset": manifest["dataset"],
        "partition": manifest["partition"]["value"],
        "run_id": manifest["run_id"],
        "status": manifest["status"],
        "applied_already": applied_already,
        "released": len(rel.get("released", [])),
        "fixed": len(rel.get("fixed", [])),
        "still_failing": len(rel.get("still_failing", [])),
        "rejected": len(rel.get("rejected", [])),
        "counts": manifest["counts"],
        "conservation": manifest["conservation"]["holds"],
        "manifest": str(path),
        "audit_log": rel.get("audit_log"),
    }


def _recheck(
    loaded: LoadedSpec,
    *,
    suite: Any,
    part: Partition,
    engine: EngineChoice,
    clean: pl.DataFrame,
    quarantine: pl.DataFrame,
    fixed: pl.DataFrame,
    rescore: Sequence[int],
) -> pl.DataFrame:
    """Failures of the fixed rows, checked with the whole partition around them."""
    declared = list(loaded.spec.columns)
    ids = fixed.get_column(ROW_ID).implode()
    rest = quarantine.filter(~pl.col(ROW_ID).is_in(ids)).select(*PROVENANCE, *declared)
    mended = (
        quarantine.select(PROVENANCE)
        .join(fixed, on=ROW_ID, how="inner", maintain_order="left")
        .select(*PROVENANCE, *declared)
    )
    accepted = clean.select(
        ROW_ID,
        pl.col(SOURCE_FILE)
        if SOURCE_FILE in clean.columns
        else pl.lit(None, pl.String).alias(SOURCE_FILE),
        pl.col(SOURCE_ROW)
        if SOURCE_ROW in clean.columns
        else pl.lit(None, pl.Int64).alias(SOURCE_ROW),
        *declared,
    )
    schema = rest.schema
    frame = pl.concat([f.cast(schema) for f in (accepted, rest, mended)], how="vertical")
    spec = loaded.spec
    got = check_rows(
        frame, empty_failures(), suite, engine=engine, keys=spec.keys, duplicates=spec.duplicates
    )
    found = [got.failures.filter(pl.col(ROW_ID).is_in(ids))]
    why = why_not_scored(spec.detectors, critical_failed=got.critical_failed, missing_columns=[])
    if rescore and why is None:
        passed = rows_to_score(frame, got.failures, declared)
        reference, _ = reference_rows(loaded, part, declared)
        specs = [with_model_path(loaded, i, s) for i, s in enumerate(spec.detectors)]
        scored = score_detectors(passed, specs, reference=reference)
        wanted = pl.Series(ROW_ID, list(rescore), pl.UInt64).implode()
        found.append(scored.failures.filter(pl.col(ROW_ID).is_in(wanted)))
    return concat_failures(found)


def _reasons_of(failures: pl.DataFrame, failures_dtype: pl.DataType) -> pl.DataFrame:
    return (
        failures.sort(ROW_ID, "reason")
        .group_by(ROW_ID, maintain_order=True)
        .agg(
            pl.col("reason").unique(maintain_order=True).alias("_reasons"),
            pl.struct("reason", "column", "rule", "severity", "value", "details").alias(
                "_failures"
            ),
        )
        .with_columns(pl.col("_failures").cast(failures_dtype))
    )


def _texts(frame: pl.DataFrame, columns: Mapping[str, ColumnSpec]) -> dict[int, dict[str, Any]]:
    text = as_text(frame.select(ROW_ID, *columns), columns)
    return {int(r.pop(ROW_ID)): r for r in text.iter_rows(named=True)}


def _release(
    loaded: LoadedSpec,
    *,
    rid: str,
    suite: Any,
    part: Partition,
    committed: Any,
    manifest_bytes: bytes,
    chosen: Decisions,
    who: str,
    engine: EngineChoice | None,
    started: float,
) -> dict[str, Any]:
    columns = loaded.spec.columns
    declared = {c: polars_dtype(s) for c, s in columns.items()}
    old: dict[str, Any] = committed.manifest
    clean: pl.DataFrame = committed.frames["clean"]
    quarantine: pl.DataFrame = committed.frames["quarantine"]
    failures: pl.DataFrame = committed.frames["failures"]
    at = now()
    by_kind: dict[str, list[Decision]] = {"release": [], "fix": [], "reject": []}
    for d in chosen.decisions:
        by_kind[d.decision].append(d)
    fixes = by_kind["fix"]
    fixed = pl.DataFrame(
        [{ROW_ID: d.row_id, **d.values} for d in fixes], schema={ROW_ID: pl.UInt64, **declared}
    )
    new_failures = (
        _recheck(
            loaded,
            suite=suite,
            part=part,
            engine=engine or loaded.spec.validation.engine,
            clean=clean,
            quarantine=quarantine,
            fixed=fixed,
            rescore=[d.row_id for d in fixes if not d.flag_wrong],
        )
        if fixes
        else empty_failures()
    )
    failing = set(
        new_failures.filter(pl.col("severity").is_in(QUARANTINING)).get_column(ROW_ID).to_list()
    )
    still = [d for d in fixes if d.row_id in failing]
    mended = [d for d in fixes if d.row_id not in failing]
    moving = [*by_kind["release"], *mended]
    moving_ids = pl.Series(ROW_ID, [d.row_id for d in moving], pl.UInt64).implode()
    still_ids = pl.Series(ROW_ID, [d.row_id for d in still], pl.UInt64).implode()
    fixed_ids = fixed.get_column(ROW_ID).implode()
    released_ids = pl.Series(ROW_ID, [d.row_id for d in by_kind["release"]], pl.UInt64)

    values = pl.concat(
        [
            quarantine.filter(pl.col(ROW_ID).is_in(released_ids.implode())).select(
                *PROVENANCE, *declared
            ),
            quarantine.select(PROVENANCE)
            .join(fixed.filter(~pl.col(ROW_ID).is_in(still_ids)), on=ROW_ID, how="inner")
            .select(*PROVENANCE, *declared),
        ]
    )
    how = {d.row_id: d for d in moving}
    order = {rid: i for i, rid in enumerate(quarantine.get_column(ROW_ID).to_list())}
    values = values.sort(pl.col(ROW_ID).replace_strict(order, return_dtype=pl.Int64))
    added = values.with_columns(
        pl.Series(RELEASED_AS, [how[r].decision for r in values[ROW_ID]], pl.String),
        pl.lit(who, pl.String).alias(RELEASED_BY),
        pl.lit(at, pl.Datetime("us", "UTC")).alias(RELEASED_AT),
        pl.Series(RELEASED_WHY, [how[r].note for r in values[ROW_ID]], pl.String),
        pl.Series(
            FIXED_FROM,
            [
                json.dumps({c: v[0] for c, v in how[r].changed.items()}, sort_keys=True)
                if how[r].decision == "fix"
                else None
                for r in values[ROW_ID]
            ],
            pl.String,
        ),
    )
    base = clean.with_columns(
        pl.lit(None, t).alias(c) for c, t in RELEASE_COLUMNS.items() if c not in clean.columns
    )
    new_clean = pl.concat([base, added.select(base.columns)], how="vertical_relaxed")

    q_failures_dtype = quarantine.schema["_failures"]
    kept = quarantine.with_row_index("_i").filter(~pl.col(ROW_ID).is_in(moving_ids))
    redone = (
        kept.filter(pl.col(ROW_ID).is_in(still_ids))
        .drop(*declared, "_reasons", "_failures")
        .join(fixed, on=ROW_ID, how="left", maintain_order="left")
        .join(
            _reasons_of(new_failures.filter(pl.col(ROW_ID).is_in(still_ids)), q_failures_dtype),
            on=ROW_ID,
            how="left",
            maintain_order="left",
        )
        .select(kept.columns)
    )
    new_quarantine = (
        pl.concat([kept.filter(~pl.col(ROW_ID).is_in(still_ids)), redone.cast(kept.schema)])
        .sort("_i")
        .drop("_i")
    )
    dropped = pl.col(ROW_ID).is_in(fixed_ids) | (
        pl.col(ROW_ID).is_in(released_ids.implode()) & pl.col("severity").is_in(QUARANTINING)
    )
    all_failures = concat_failures([failures.filter(~dropped), new_failures])

    before_text = _texts(quarantine, columns)
    after_text = _texts(fixed, columns) if fixes else {}
    reasons_before = {
        int(r[ROW_ID]): list(r["_reasons"] or [])
        for r in quarantine.select(ROW_ID, "_reasons").iter_rows(named=True)
    }
    flags_before = {
        int(r[ROW_ID]): sorted(
            {f["rule"] for f in r["_failures"] or [] if f["column"] == "outlier"}
        )
        for r in quarantine.select(ROW_ID, "_failures").iter_rows(named=True)
    }
    new_reasons: dict[int, list[str]] = {}
    for r in _reasons_of(new_failures, q_failures_dtype).iter_rows(named=True):
        new_reasons[int(r[ROW_ID])] = list(r["_reasons"])
    overturned: dict[str, int] = {}
    for d in moving:
        for det in flags_before[d.row_id]:
            overturned[det] = overturned.get(det, 0) + 1

    reports_root = output_roots(loaded)["reports"]
    kept_manifest = dump_manifest(reports_root, part.dirname, str(old["run_id"]), manifest_bytes)
    log_path = audit_folder(reports_root, part.dirname) / LOG_NAME
    entries = []
    for d in chosen.decisions:
        outcome = (
            "rejected"
            if d.decision == "reject"
            else "released"
            if d.decision == "release"
            else "still_quarantined"
            if d.row_id in failing
            else "fixed"
        )
        moved = outcome in ("released", "fixed")
        entries.append(
            AuditEntry(
                at=at,
                by=who,
                dataset=loaded.name,
                partition=str(part),
                row_id=d.row_id,
                decision=d.decision,  # type: ignore[arg-type]
                note=d.note,
                flag_wrong=d.flag_wrong,
                outcome=outcome,  # type: ignore[arg-type]
                before=RowState(
                    side="quarantine",
                    reasons=reasons_before[d.row_id],
                    values=before_text[d.row_id],
                ),
                after=RowState(
                    side="clean" if moved else "quarantine",
                    reasons=new_reasons.get(d.row_id, [])
                    if d.decision == "fix"
                    else ([] if moved else reasons_before[d.row_id]),
                    values=after_text.get(d.row_id, before_text[d.row_id]),
                ),
                fixed={c: [a, b] for c, (a, b) in d.changed.items()},
                overturned=flags_before[d.row_id] if moved else [],
                previous=CommitRef(
                    run_id=str(old["run_id"]), manifest_sha256=sha256_hex(manifest_bytes)
                ),
                commit=CommitRef(run_id=rid),
                decisions_file=str(chosen.path),
                decisions_sha256=chosen.sha256,
            )
        )
    release_record = {
        "by": who,
        "at": at.isoformat(),
        "decisions_path": str(chosen.path),
        "decisions_sha256": chosen.sha256,
        "suite_sha256": suite.sha256,
        "released": [d.row_id for d in by_kind["release"]],
        "fixed": [d.row_id for d in mended],
        "still_failing": [d.row_id for d in still],
        "rejected": [d.row_id for d in by_kind["reject"]],
        "overturned_flags": overturned,
        "audit_log": str(log_path),
    }
    return _commit(
        loaded,
        part=part,
        old=old,
        rid=rid,
        clean=new_clean,
        quarantine=new_quarantine,
        failures=all_failures,
        committed=committed,
        extra={
            "previous": {
                "run_id": old["run_id"],
                "sha256": sha256_hex(manifest_bytes),
                "path": str(kept_manifest),
            },
            "release": release_record,
        },
        entries=entries,
        started=started,
    )


def _commit(
    loaded: LoadedSpec,
    *,
    part: Partition,
    old: dict[str, Any],
    rid: str,
    clean: pl.DataFrame,
    quarantine: pl.DataFrame,
    failures: pl.DataFrame,
    committed: Any,
    extra: dict[str, Any],
    entries: list[AuditEntry],
    started: float,
) -> dict[str, Any]:
    roots = output_roots(loaded)
    ids_in = pl.concat(
        [committed.frames["clean"].get_column(ROW_ID), committed.frames["quarantine"][ROW_ID]]
    )
    if checksum(ids_in) != old["checksums"]["in"] or len(ids_in) != old["counts"]["in"]:
        raise ConservationError(
            f"{loaded.name} {part}: the committed clean and quarantine files do not hold the "
            "rows their manifest says came in; nothing was changed"
        )
    reasons = sorted(failures.get_column("reason").unique().to_list())
    meta = {
        "sluice.dataset": loaded.name,
        "sluice.partition": f"{part.key}={part}",
        "sluice.suite_sha256": str(old["suite"]["sha256"]),
        "sluice.spec_sha256": str(old["spec"]["sha256"]),
        "sluice.release": rid,
    }
    qmeta = {**meta, "sluice.rules": json.dumps(reasons)}
    counts = count_rows(failures, len(ids_in), clean.height, quarantine.height)
    sums = {
        "in": checksum(ids_in),
        "clean": checksum(clean[ROW_ID]),
        "quarantine": checksum(quarantine[ROW_ID]),
        "algorithm": old["checksums"]["algorithm"],
    }
    with PartitionCommit(roots, part.dirname, rid, dataset=loaded.name) as commit:
        backend = _backend(loaded, part, rid, commit)
        written = {
            "clean": backend.write("clean", clean, meta),
            "quarantine": backend.write("quarantine", quarantine, qmeta),
        }
        read_back = check_conservation(
            {side: backend.read_back(w, ROW_ID) for side, w in written.items()},
            ids_in,
            ROW_ID,
            {s: {"rows": counts[s], "checksum": sums[s]} for s in ("clean", "quarantine")},
            names=", ".join(_where(w) for w in written.values()),
        )
        holds = counts["in"] == counts["clean"] + counts["quarantine"] and sums[
            "in"
        ] == add_checksums(sums["clean"], sums["quarantine"])
        verdict = judge_rows(
            failures,
            counts,
            list(old.get("critical", [])),
            verdicts=old["validation"]["verdicts"],
            policies=loaded.spec.policies,
            columns=loaded.spec.columns,
            detectors=old.get("detectors") or [],
            screened_rows=int((old.get("screen") or {}).get("rows") or 0),
        )
        if not written["clean"].table:
            commit.swap("clean", "quarantine")
        w = commit.writer("reports")
        outputs = {side: x.entry for side, x in written.items() if not x.table}
        outputs["failures"] = PosixParquet(commit).write("failures", failures, {}).entry
        tables = {side: x.entry for side, x in written.items() if x.table}
        if tables:
            tables["failures"] = backend.write("failures", failures, qmeta).entry
        w.path(DECISIONS_NAME).write_text(
            "".join(e.model_dump_json() + "\n" for e in entries), encoding="utf-8"
        )
        outputs["decisions"] = describe(w.path(DECISIONS_NAME), len(entries))
        outputs["decisions"]["path"] = str(w.final / DECISIONS_NAME)
        policies = loaded.spec.policies.model_dump(mode="json", by_alias=True)
        timings = {**old["timings_s"], "write": round(time.perf_counter() - started, 4)}
        timings.pop("report", None)
        doc = {
            **old,
            "run_id": rid,
            "status": verdict.status,
            "verdict": {**verdict.as_dict(), "policies": policies},
            "started_at": old["started_at"],
            "finished_at": now().isoformat(),
            "counts": counts,
            "checksums": sums,
            "conservation": {"holds": holds, "read_back": read_back},
            "reasons": reasons,
            "outputs": outputs,
            "tables": tables or None,
            "timings_s": timings,
            "findings": {},
            **extra,
        }
        manifest = Manifest.model_validate(doc)
        with tempfile.TemporaryDirectory() as tmp:
            scores = Path(tmp) / SCORES_NAME
            if "scores" in committed.frames:
                committed.frames["scores"].write_parquet(scores)
            report = stage_report(loaded, part, scores, w, manifest.dump())
        if "report" in report.outputs and add_review_section(
            w.path("report.html"), roots["reports"], manifest.dump(), entries
        ):
            report.outputs["report"] = {
                **describe(w.path("report.html")),
                "path": str(w.final / "report.html"),
            }
        manifest = Manifest.model_validate(
            {
                **manifest.dump(),
                "outputs": {**outputs, **report.outputs},
                "findings": report.findings,
                "timings_s": {**timings, "report": report.seconds},
            }
        )
        write_json(manifest.dump(), w.path(MANIFEST_NAME))
        if tables:
            kill_point("manifest")
        final = commit.commit()["reports"]
    append_history(final)
    append_entries(roots["reports"], part.dirname, entries)
    run_completed(
        manifest.dump(),
        list(loaded.spec.columns),
        part,
        job="release",
        storage_options=loaded.storage_options(),
    )
    return _summary(manifest.dump(), final / MANIFEST_NAME)


def _backend(
    loaded: LoadedSpec, part: Partition, rid: str, commit: PartitionCommit
) -> OutputBackend:
    """Where the release writes: the run's own backend for the dataset's ``outputs.format``."""
    if not loaded.delta:
        return PosixParquet(commit)
    return DeltaTables(
        {side: loaded.table_uri(side) for side in TABLE_SIDES},
        column=part.key,
        value=str(part),
        run_id=rid,
        storage_options=loaded.storage_options(),
    )


def _where(written: Written) -> str:
    if written.table:
        return f"{written.entry['uri']} version {written.entry['version']}"
    return str(written.staged)


def review_section(
    reports_root: Path,
    manifest: Mapping[str, Any],
    entries: Sequence[AuditEntry] = (),
) -> str | None:
    """The report's review section: the release this commit made (if any) and the flags
    reviewers overturned per detector and partition; None when nothing was ever reviewed."""
    from sluice.report.html import environment

    partition = str(manifest["partition"]["value"])
    history = overturned_flags(reports_root)
    current = [
        {"partition": partition, "detector": d}
        for e in entries
        if e.outcome in ("released", "fixed")
        for d in e.overturned
    ]
    if current:
        now_rows = (
            pl.DataFrame(current)
            .group_by("partition", "detector")
            .agg(pl.len().cast(pl.UInt32).alias("overturned"))
        )
        history = (
            pl.concat([history, now_rows])
            .group_by("partition", "detector")
            .agg(pl.col("overturned").sum())
            .sort("partition", "detector")
        )
    rel = manifest.get("release")
    if rel is None and history.is_empty():
        return None
    release = None
    if rel is not None:
        release = {
            "run_id": manifest["run_id"],
            "by": rel["by"],
            "at": rel["at"],
            "path": rel["decisions_path"],
            "sha": rel["decisions_sha256"][:12],
            "released": len(rel["released"]),
            "fixed": len(rel["fixed"]),
            "still": len(rel["still_failing"]),
            "rejected": len(rel["rejected"]),
            "previous": (manifest.get("previous") or {}).get("run_id"),
        }
    decisions = [
        {
            "row_id": e.row_id,
            "decision": e.decision,
            "outcome": e.outcome,
            "before": ", ".join(e.before.reasons),
            "after": ", ".join(e.after.reasons),
            "note": e.note or "",
        }
        for e in entries
    ]
    return (
        environment()
        .get_template("released.html.j2")
        .render(release=release, decisions=decisions, overturned=history.to_dicts())
    )


def add_review_section(
    report: Path,
    reports_root: Path,
    manifest: Mapping[str, Any],
    entries: Sequence[AuditEntry] = (),
) -> bool:
    """Add :func:`review_section` to a staged ``report.html``; whether anything was added."""
    section = review_section(reports_root, manifest, entries)
    if section is None:
        return False
    text = report.read_text(encoding="utf-8")
    marker = "</main>" if "</main>" in text else "</body>"
    report.write_text(text.replace(marker, section + marker, 1), encoding="utf-8")
    return True
