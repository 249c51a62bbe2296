"""The audit log of review decisions: append-only, one JSON line per decision.

Each partition's log is ``<reports>/_audit/<key>=<value>/decisions.jsonl``, beside the manifests
its releases replaced (``manifests/<run id>.json``). Nothing under ``_audit`` is ever replaced
or removed by sluice: screening the partition again replaces its outputs, not its audit trail.
:func:`row_decisions` gives every decision ever taken about a row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from sluice.config import find_spec
from sluice.core.errors import SluiceError

AUDIT_DIR = "_audit"
LOG_NAME = "decisions.jsonl"
MANIFESTS_DIR = "manifests"

Outcome = Literal["released", "fixed", "still_quarantined", "rejected"]


class RowState(BaseModel):
    """A row on one side of a decision: where it was, its reasons and its declared values."""

    model_config = ConfigDict(extra="forbid")

    side: Literal["clean", "quarantine"]
    reasons: list[str]
    values: dict[str, Any] = Field(description="declared columns as text")


class CommitRef(BaseModel):
    """A commit of the partition, by its run id and manifest sha256."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    manifest_sha256: str | None = None


class AuditEntry(BaseModel):
    """One decision about one row, as the audit log keeps it."""

    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime
    by: str
    dataset: str
    partition: str
    row_id: int = Field(ge=0)
    decision: Literal["release", "fix", "reject"]
    note: str | None = None
    flag_wrong: bool = False
    outcome: Outcome
    before: RowState
    after: RowState
    fixed: dict[str, list[str | None]] = Field(
        default_factory=dict, description="column to [value before, value after] of each fix"
    )
    overturned: list[str] = Field(
        default_factory=list, description="detectors whose flag this decision overturned"
    )
    previous: CommitRef = Field(description="the commit the decision was taken on")
    commit: CommitRef = Field(description="the commit that applied it")
    decisions_file: str
    decisions_sha256: str


def audit_folder(reports_root: Path, dirname: str) -> Path:
    """The audit folder of one partition."""
    return reports_root / AUDIT_DIR / dirname


def append_entries(reports_root: Path, dirname: str, entries: Sequence[AuditEntry]) -> Path:
    """Append entries to a partition's log and flush them to disk; returns the log's path."""
    log = audit_folder(reports_root, dirname) / LOG_NAME
    text = "".join(e.model_dump_json() + "\n" for e in entries)
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise SluiceError(f"cannot append to the audit log {log}: {exc.strerror}") from None
    return log


def read_log(log: Path) -> list[AuditEntry]:
    """Every entry of one log, oldest first; a line that does not validate stops with its number."""
    out: list[AuditEntry] = []
    try:
        lines = log.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return out
    except OSError as exc:
        raise SluiceError(f"cannot read the audit log {log}: {exc.strerror}") from None
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(AuditEntry.model_validate_json(line))
        except ValueError as exc:
            first = str(exc).splitlines()[0]
            raise SluiceError(f"{log}:{n}: not an audit entry ({first})") from None
    return out


def logs(reports_root: Path) -> list[Path]:
    """The audit logs of every partition of a dataset."""
    return sorted((reports_root / AUDIT_DIR).glob(f"*/{LOG_NAME}"))


def entries(reports_root: Path) -> Iterable[AuditEntry]:
    """Every decision ever logged for a dataset, partition by partition, oldest first."""
    for log in logs(reports_root):
        yield from read_log(log)


def row_decisions(dataset: str, row_id: int) -> list[AuditEntry]:
    """Every decision ever taken about the row ``row_id`` of ``dataset``, oldest first."""
    reports = find_spec(dataset).output_root("reports")
    found = [e for e in entries(reports) if e.row_id == row_id]
    return sorted(found, key=lambda e: e.at)


def overturned_flags(reports_root: Path) -> pl.DataFrame:
    """Per partition and detector, how many of its flags reviewers overturned (rows it flagged
    that a release or a fix moved to clean): ``partition``, ``detector``, ``overturned``."""
    rows = [
        {"partition": e.partition, "detector": d}
        for e in entries(reports_root)
        if e.outcome in ("released", "fixed")
        for d in e.overturned
    ]
    if not rows:
        return pl.DataFrame(
            schema={"partition": pl.String, "detector": pl.String, "overturned": pl.UInt32}
        )
    return (
        pl.DataFrame(rows)
        .group_by("partition", "detector")
        .agg(pl.len().alias("overturned"))
        .sort("partition", "detector")
    )


def dump_manifest(reports_root: Path, dirname: str, run_id: str, data: bytes) -> Path:
    """Keep a replaced manifest's bytes in the audit folder (never overwritten); its path."""
    target = audit_folder(reports_root, dirname) / MANIFESTS_DIR / f"{run_id}.json"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists() and target.read_bytes() == data:
            return target
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        if target.exists():
            raise SluiceError(f"{target} exists with other bytes; refusing to replace it")
        tmp.replace(target)
    except OSError as exc:
        raise SluiceError(
            f"cannot keep the replaced manifest in {target}: {exc.strerror}"
        ) from None
    return target


def as_json(value: Any) -> str:
    """A value as one JSON line (the audit log's encoding)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
