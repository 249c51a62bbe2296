"""``sluice audit``: where one row is now, every rule it failed, and the run that decided it.

A row is named by its ``_row_id`` or by its source file and 0-based record number. Row ids are
splitmix64 of (the first 8 bytes of the file's sha256 + the record number), and splitmix64 is a
bijection, so :func:`origin` inverts an id and finds, from the manifests alone, the file and
record it came from; only that partition's files are then read, each only if its sha256 is the
one its manifest gives. The answer (:class:`RowAudit`) keeps a list of ``decisions`` that later
decisions about the row (a release from quarantine) are appended to.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import ValidationError

from sluice.audit.keep import manifests_dir, read_manifest_bytes
from sluice.audit.records import ManifestFacts
from sluice.core.errors import SluiceError
from sluice.core.frame import ROW_ID, row_ids
from sluice.core.values import json_safe
from sluice.review.audit import entries
from sluice.storage import open_output

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
MANIFEST_NAME = "manifest.json"


class RowNotFound(SluiceError):
    """No committed partition of the dataset holds the row asked for (exit code 2)."""


def _unshift(y: int, s: int) -> int:
    x = y
    for _ in range(64 // s + 1):
        x = y ^ (x >> s)
    return x & _MASK


def unmix(row_id: int) -> int:
    """The inverse of the splitmix64 step of :func:`sluice.core.frame.row_ids`: base + row."""
    z = _unshift(row_id & _MASK, 31)
    z = (z * pow(_M2, -1, 1 << 64)) & _MASK
    z = _unshift(z, 27)
    z = (z * pow(_M1, -1, 1 << 64)) & _MASK
    z = _unshift(z, 30)
    return (z - _GOLDEN) & _MASK


def origin(row_id: int, facts: ManifestFacts) -> tuple[str, str, int] | None:
    """The (path, sha256, record number) of the input of ``facts`` the row came from, if any."""
    value = unmix(row_id)
    for f in facts.inputs:
        n = (value - int(f.sha256[:16], 16)) & _MASK
        if n < f.rows:
            return f.path, f.sha256, n
    return None


@dataclass
class RowAudit:
    """The answer to an auditor's question about one row."""

    dataset: str
    row_id: int
    source: dict[str, Any]
    where: str
    partition: str
    file: str
    run: dict[str, Any]
    failures: list[dict[str, Any]]
    values: dict[str, Any]
    raw: dict[str, Any] | None
    spec: dict[str, Any]
    suite: dict[str, Any]
    versions: dict[str, str]
    earlier_runs: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON types (what ``--json`` prints)."""
        data: dict[str, Any] = json_safe(asdict(self))
        return data


def _facts(path: Path) -> ManifestFacts | None:
    try:
        return ManifestFacts.model_validate(json.loads(read_manifest_bytes(path)))
    except (SluiceError, ValueError, ValidationError):
        return None


def _partition_manifests(reports_root: Path) -> list[Path]:
    return [
        path
        for path in sorted(reports_root.glob(f"*=*/{MANIFEST_NAME}"))
        if not path.parent.name.startswith((".", "_"))
    ]


def current_manifests(reports_root: Path) -> list[tuple[Path, ManifestFacts]]:
    """Every committed partition's manifest under a reports root, readable ones only."""
    found = []
    for path in _partition_manifests(reports_root):
        facts = _facts(path)
        if facts is not None:
            found.append((path, facts))
    return found


def unreadable_manifests(reports_root: Path) -> list[Path]:
    """The partitions' manifests under a reports root that cannot be read as manifests
    (truncated, edited): a search that passes over them says so."""
    return [path for path in _partition_manifests(reports_root) if _facts(path) is None]


def kept_manifests(reports_root: Path) -> list[tuple[Path, ManifestFacts]]:
    """Every kept copy of a manifest under ``_manifests``, readable ones only."""
    found = []
    for path in sorted(manifests_dir(reports_root).glob("*=*/*.json")):
        facts = _facts(path)
        if facts is not None:
            found.append((path, facts))
    return found


def _same_file(a: str, b: str) -> bool:
    if a == b:
        return True
    return "://" not in a and "://" not in b and os.path.realpath(a) == os.path.realpath(b)


def row_id_of(reports_root: Path, source_file: str, source_row: int) -> int:
    """The ``_row_id`` of record ``source_row`` (0-based) of ``source_file``, from the manifests."""
    for _, facts in current_manifests(reports_root) + kept_manifests(reports_root):
        for f in facts.inputs:
            if _same_file(f.path, source_file):
                if not 0 <= source_row < f.rows:
                    raise RowNotFound(
                        f"{source_file} had {f.rows} records in run {facts.run_id}; record "
                        f"{source_row} is not one of them (allowed: 0 to {f.rows - 1})"
                    )
                return int(row_ids(f.sha256, source_row + 1)[source_row])
    raise RowNotFound(
        f"no run of this dataset read {source_file} (manifests under {reports_root}); give "
        "the path as the manifest's inputs[].path records it"
    )


def _frame(
    doc: dict[str, Any], side: str, row_id: int, storage_options: Mapping[str, str] | None
) -> pl.DataFrame | None:
    """The row ``row_id`` of one output the manifest ``doc`` names (a verified file, or a Delta
    table at the manifest's version); ``None`` when it names no such output."""
    tables = doc.get("tables") or {}
    if side not in tables and side not in doc.get("outputs", {}):
        return None
    try:
        frame = open_output(doc, side, storage_options=storage_options).read()
    except SluiceError as exc:
        raise SluiceError(
            f"{exc} (the partition is being replaced, or its files were changed or removed "
            "outside sluice)"
        ) from None
    return frame.filter(pl.col(ROW_ID) == row_id)


def _location(doc: dict[str, Any], side: str) -> str:
    table = (doc.get("tables") or {}).get(side)
    if table is not None:
        return f"{table['uri']} (Delta version {table['version']})"
    return str(doc["outputs"][side]["path"])


def _stored(reports_root: Path, facts: ManifestFacts, what: str) -> dict[str, Any]:
    conf = facts.spec if what == "spec" else facts.suite
    out: dict[str, Any] = {"sha256": conf.sha256, "path": conf.path, "stored": None}
    if facts.audit is not None:
        obj = facts.audit.spec if what == "spec" else facts.audit.suite
        out["stored"] = str(reports_root / obj.path) if obj is not None else None
    return out


def audit_row(
    reports_root: Path,
    dataset: str,
    row_id: int,
    *,
    storage_options: Mapping[str, str] | None = None,
) -> RowAudit:
    """Where row ``row_id`` of a dataset is now and why; raises :class:`RowNotFound`.

    ``storage_options`` reach Delta outputs on an object store (``outputs.storage_options``).
    """
    current = current_manifests(reports_root)
    match = next(
        ((p, f, o) for p, f in current if (o := origin(row_id, f)) is not None),
        None,
    )
    if match is None:
        unread = unreadable_manifests(reports_root)
        unsearched = (
            f"; {len(unread)} manifest(s) could not be read, so their partitions were not "
            f"searched: {', '.join(str(p) for p in unread[:5])}"
            + (" ..." if len(unread) > 5 else "")
            + " (a copy of every run's manifest is kept under _manifests/)"
            if unread
            else ""
        )
        raise RowNotFound(
            f"no committed partition of {dataset} holds a row with _row_id {row_id} "
            f"(manifests under {reports_root}){unsearched}"
        )
    path, facts, (source, sha, record) = match
    doc: dict[str, Any] = json.loads(read_manifest_bytes(path))
    empty = pl.DataFrame(schema={ROW_ID: pl.UInt64})
    found: dict[str, pl.DataFrame] = {}
    for side in ("quarantine", "clean"):
        got = _frame(doc, side, row_id, storage_options)
        found[side] = empty if got is None else got
    where = "quarantine" if found["quarantine"].height else "clean"
    if not found[where].height:
        raise SluiceError(
            f"{path} names {source} record {record} as an input, yet neither its clean nor its "
            "quarantine file holds the row: the partition breaks conservation; please report it"
        )
    row = found[where].row(0, named=True)
    got_failures = _frame(doc, "failures", row_id, storage_options)
    failures = [] if got_failures is None else got_failures.drop(ROW_ID).to_dicts()
    values = {k: v for k, v in row.items() if not k.startswith("_")}
    earlier = [
        {"run_id": f.run_id, "status": f.status, "finished_at": f.finished_at, "manifest": str(p)}
        for p, f in kept_manifests(reports_root)
        if f.run_id != facts.run_id and origin(row_id, f) is not None
    ]
    return RowAudit(
        dataset=dataset,
        row_id=row_id,
        source={"file": source, "row": record, "sha256": sha},
        where=where,
        partition=facts.partition.value,
        file=_location(doc, where),
        run={
            "run_id": facts.run_id,
            "status": facts.status,
            "finished_at": facts.finished_at,
            "manifest": str(path),
        },
        failures=failures,
        values=values,
        raw=row.get("_raw"),
        spec=_stored(reports_root, facts, "spec"),
        suite=_stored(reports_root, facts, "suite"),
        versions=facts.versions,
        earlier_runs=earlier,
        decisions=[
            e.model_dump(mode="json")
            for e in sorted(entries(reports_root), key=lambda e: e.at)
            if e.row_id == row_id
        ],
    )
