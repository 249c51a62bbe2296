"""Reviewers' decisions re-applied after a partition is screened again (docs/review.md).

Screening a partition again (``sluice run --force``, or a run on changed inputs) judges its rows
afresh from the source, so rows a reviewer released or fixed are back in quarantine. After the
run's commit, :func:`reapply_decisions` reads the partition's audit log and, for each row whose
latest decision moved it to clean (outcome ``released`` or ``fixed``), applies that decision
again when the row is back in quarantine with the same ``_row_id`` and the same values the
reviewer saw. It writes those decisions as a review file of the new commit (kept in the
partition's audit folder) and applies it with :func:`~sluice.pipeline.release.release_partition`:
a release commit like any other, with conservation proven and the audit log appended. A decision
that no longer applies (the row changed, left the partition, or is clean on its own) is
reported, never applied silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from sluice.config import ColumnSpec, LoadedSpec
from sluice.core.errors import SluiceError
from sluice.core.files import sha256_hex
from sluice.core.frame import ROW_ID
from sluice.pipeline.release import release_partition
from sluice.pipeline.run import log, output_roots
from sluice.review.audit import LOG_NAME, AuditEntry, audit_folder, read_log
from sluice.review.export import (
    DECISION,
    FLAG_WRONG,
    NOTE,
    as_text,
    review_frame,
)
from sluice.write import MANIFEST_NAME, NotCommitted, load_partition, partition_lock

REAPPLIED_DIR = "reapplied"
MOVED = ("released", "fixed")


@dataclass(frozen=True)
class NotApplied:
    """A recorded decision that was not applied again, and why."""

    row_id: int
    decision: str
    by: str
    at: str
    why: str


def _latest(entries: list[AuditEntry]) -> dict[int, AuditEntry]:
    latest: dict[int, AuditEntry] = {}
    for e in sorted(entries, key=lambda e: e.at):
        latest[e.row_id] = e
    return latest


def _texts(frame: pl.DataFrame, columns: Mapping[str, ColumnSpec]) -> dict[int, dict[str, Any]]:
    text = as_text(frame.select(ROW_ID, *columns), columns)
    return {int(r.pop(ROW_ID)): r for r in text.iter_rows(named=True)}


def _changed(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    return sorted(c for c in set(before) | set(now) if before.get(c) != now.get(c))


def _skip(e: AuditEntry, why: str) -> NotApplied:
    return NotApplied(e.row_id, e.decision, e.by, e.at.isoformat(), why)


def reapply_decisions(loaded: LoadedSpec, partition: str) -> dict[str, Any] | None:
    """Apply again the decisions of the partition's audit log that its last run undid; None
    when the log holds no decision that moved a row to clean.

    Returns what was done: ``applied`` (row ids), ``not_applied`` (each with why), and the
    release's summary (``release``) when anything was applied.
    """
    part = loaded.spec.partition.parse(partition)
    reports = output_roots(loaded)["reports"]
    folder = audit_folder(reports, part.dirname)
    wanted = [e for e in _latest(read_log(folder / LOG_NAME)).values() if e.outcome in MOVED]
    if not wanted:
        return None
    manifest_path = reports / part.dirname / MANIFEST_NAME
    with partition_lock(reports, part.dirname):
        try:
            committed = load_partition(manifest_path, storage_options=loaded.storage_options())
        except NotCommitted as exc:
            raise SluiceError(f"{loaded.name} {part}: {exc}") from None
        manifest_bytes = manifest_path.read_bytes()
    manifest = committed.manifest
    run_id = str(manifest["run_id"])
    columns = loaded.spec.columns
    quarantine: pl.DataFrame = committed.frames["quarantine"]
    now = _texts(quarantine, columns)
    clean_ids = set(committed.frames["clean"].get_column(ROW_ID).to_list())
    applied: list[AuditEntry] = []
    skipped: list[NotApplied] = []
    critical = list(manifest.get("critical") or [])
    for e in sorted(wanted, key=lambda e: e.row_id):
        if critical:
            skipped.append(_skip(e, f"critical checks failed ({', '.join(critical)})"))
        elif e.row_id in now:
            diff = _changed(e.before.values, now[e.row_id])
            if diff:
                skipped.append(
                    _skip(e, f"its values changed since the decision ({', '.join(diff)})")
                )
            else:
                applied.append(e)
        elif e.row_id in clean_ids:
            skipped.append(_skip(e, "the run put the row in clean on its own"))
        else:
            skipped.append(_skip(e, "the row is no longer in the partition (its source changed)"))
    for s in skipped:
        log.warning(
            "%s %s: the %s of row %d by %s (%s) is not applied again: %s",
            loaded.name,
            part,
            s.decision,
            s.row_id,
            s.by,
            s.at,
            s.why,
        )
    out: dict[str, Any] = {
        "applied": [e.row_id for e in applied],
        "not_applied": [asdict(s) for s in skipped],
        "release": None,
    }
    if not applied:
        return out
    path = folder / REAPPLIED_DIR / f"{run_id}.csv"
    _write_decisions(
        path,
        quarantine,
        columns,
        applied,
        run_id=run_id,
        manifest_sha256=sha256_hex(manifest_bytes),
    )
    by = ", ".join(sorted({e.by for e in applied}))
    out["release"] = release_partition(str(loaded.path), str(part), path, by)
    out["decisions"] = str(path)
    log.info(
        "%s %s: %d decisions re-applied after run %s (%s)",
        loaded.name,
        part,
        len(applied),
        run_id,
        out["release"]["manifest"],
    )
    return out


def _write_decisions(
    path: Path,
    quarantine: pl.DataFrame,
    columns: Mapping[str, ColumnSpec],
    applied: list[AuditEntry],
    *,
    run_id: str,
    manifest_sha256: str,
) -> None:
    """The review file of the new commit with the recorded decisions filled in (CSV, as text:
    a fixed row holds the corrected values its decision recorded)."""
    by_id = {e.row_id: e for e in applied}
    frame = review_frame(quarantine, columns, run_id=run_id, manifest_sha256=manifest_sha256)
    frame = as_text(frame, columns).filter(pl.col(ROW_ID).is_in(list(by_id)))
    rows = []
    for row in frame.iter_rows(named=True):
        e = by_id[int(row[ROW_ID])]
        note = f"{e.note or ''} [re-applied after run {run_id}: {e.decision} by {e.by}, {e.at}]"
        row.update({DECISION: e.decision, NOTE: note.strip(), FLAG_WRONG: e.flag_wrong})
        if e.decision == "fix":
            row.update({c: e.after.values.get(c) for c in columns})
        rows.append(row)
    out = pl.DataFrame(rows, schema=frame.schema, orient="row").with_columns(
        pl.col(ROW_ID).cast(pl.String)
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        out.write_csv(path)
    except OSError as exc:
        raise SluiceError(f"cannot write {path}: {exc.strerror}") from None


def with_decisions_reapplied(loaded: LoadedSpec, summary: dict[str, Any]) -> dict[str, Any]:
    """A run's summary after :func:`reapply_decisions` (``reapplied``; status, counts and causes
    then those of the release commit). An error is logged and recorded under ``reapplied``,
    never raised: the run's commit stands and the decisions stay in the audit log."""
    if summary.get("skipped"):
        return summary
    try:
        done = reapply_decisions(loaded, str(summary["partition"]))
    except Exception as exc:  # the run is committed: a failed re-apply is reported, not raised
        why = str(exc) if isinstance(exc, SluiceError) else f"{type(exc).__name__}: {exc}"
        log.warning("%s %s: decisions not re-applied: %s", loaded.name, summary["partition"], why)
        return {**summary, "reapplied": {"error": why}}
    if done is None:
        return summary
    release = done["release"]
    if release is None:
        return {**summary, "reapplied": done}
    verdict = json.loads(Path(release["manifest"]).read_text(encoding="utf-8"))["verdict"]
    return {
        **summary,
        "status": release["status"],
        "counts": release["counts"],
        "causes": verdict.get("causes", []),
        "manifest": release["manifest"],
        "reapplied": done,
    }
