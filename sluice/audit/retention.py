"""``sluice retention``: delete only what has expired and is not held, and log every deletion.

What a dataset keeps, and from when its age is counted (``retention`` in the spec; a period left
out keeps that kind forever):

| kind | what | age from |
|---|---|---|
| ``outputs`` | a partition's clean, quarantine and reports folders | its last run's end |
| ``history`` | ``_history/<partition>.parquet`` | the partition's last run, else the file's time |
| ``manifests`` | kept copies ``_manifests/<partition>/<run>.json`` | that run's ``finished_at`` |
| ``objects`` | ``_objects/``: specs, suites, saved models | the object's last use |
| ``archived_inputs`` | ``_inputs/``: archived input files | the object's last use |

A partition under a legal hold keeps all of it. An object any kept manifest names (by sha256:
spec, suite, inputs, models) is never deleted, whatever its age. Partition folders are deleted
with the partition's lock held, only when sluice made them, and only when the manifest read
under the lock is still the expired one; its kept copy is made first, unless manifests of its
age have expired too. Each deletion is appended
to ``_audit/retention.log`` (JSON lines, flushed to disk) before it is done.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sluice.audit.keep import archive_manifest, read_manifest_bytes
from sluice.audit.lookup import MANIFEST_NAME, current_manifests, kept_manifests
from sluice.audit.records import ManifestFacts
from sluice.audit.store import ObjectStore, inputs_store, objects_store
from sluice.config import DURATION_RE, LoadedSpec, RetentionSpec
from sluice.core.errors import SluiceError
from sluice.core.values import json_safe
from sluice.write import PartitionBusy, foreign_reason, partition_lock

AUDIT_DIR = "_audit"
LOG_NAME = "retention.log"
HISTORY_DIR = "_history"


def expiry(written: dt.datetime, period: str) -> dt.datetime:
    """When something written at ``written`` and kept ``period`` (``7y``, ``18m``, ``90d``)
    expires; months and years are calendar ones (a day past the month's end is its last)."""
    m = DURATION_RE.fullmatch(period.strip())
    if m is None:
        raise ValueError(f"{period!r} is not a period")
    n, unit = int(m.group(1)), m.group(2)
    if unit == "d":
        return written + dt.timedelta(days=n)
    if unit == "w":
        return written + dt.timedelta(weeks=n)
    months = n * (12 if unit == "y" else 1)
    total = written.year * 12 + written.month - 1 + months
    year, month = divmod(total, 12)
    day = min(written.day, calendar.monthrange(year, month + 1)[1])
    return written.replace(year=year, month=month + 1, day=day)


@dataclass(frozen=True)
class Item:
    """One thing retention deletes (or would, but for a hold)."""

    kind: str
    path: str
    partition: str | None
    written: dt.datetime
    expires: dt.datetime
    reason: str
    run_id: str | None = None
    held_by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON types."""
        data: dict[str, Any] = json_safe(asdict(self))
        return data


@dataclass(frozen=True)
class Plan:
    """What has expired (``expired``: to delete) and what has expired but is held."""

    dataset: str
    as_of: dt.datetime
    expired: list[Item]
    held: list[Item]

    def as_dict(self) -> dict[str, Any]:
        """JSON types (what ``--json`` prints)."""
        return {
            "dataset": self.dataset,
            "as_of": self.as_of.isoformat(),
            "expired": [i.as_dict() for i in self.expired],
            "held": [i.as_dict() for i in self.held],
        }


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)


def _mtime(path: Path) -> dt.datetime:
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)


class Holds:
    """The spec's legal holds, as partition ranges."""

    def __init__(self, loaded: LoadedSpec) -> None:
        spec = loaded.spec
        self.ranges: list[tuple[dt.date, dt.date, str]] = []
        for h in spec.retention.holds:
            ends = [spec.partition.parse(x.strip()).start for x in h.partitions.split("..", 1)]
            self.ranges.append((ends[0], ends[-1], f"{h.partitions}: {h.reason}"))
        self.parse = spec.partition.parse

    def of(self, value: str | None) -> str | None:
        """The hold that keeps partition ``value``, if any."""
        if value is None:
            return None
        try:
            day = self.parse(value).start
        except ValueError:
            return None
        return next((why for a, b, why in self.ranges if a <= day <= b), None)


def _names(facts: ManifestFacts) -> set[str]:
    """Every sha256 a manifest names: spec, suite, inputs, stored objects, saved models."""
    shas = {facts.spec.sha256, facts.suite.sha256, *(f.sha256 for f in facts.inputs)}
    if facts.audit is not None:
        shas |= {o.sha256 for o in facts.audit.objects()}
    for d in facts.detectors:
        sha = d.get("model_sha256")
        if isinstance(sha, str):
            shas.add(sha)
    return shas


def _value(dirname: str) -> str | None:
    return dirname.split("=", 1)[1] if "=" in dirname else None


def plan(loaded: LoadedSpec, as_of: dt.datetime | None = None) -> Plan:
    """What retention would delete now (or ``as_of``), and what is held."""
    now = _aware(as_of or dt.datetime.now(dt.UTC))
    policy: RetentionSpec = loaded.spec.retention
    holds = Holds(loaded)
    reports = loaded.output_root("reports")
    expired: list[Item] = []
    held: list[Item] = []
    kept: list[ManifestFacts] = []

    def judge(item: Item) -> bool:
        """File the item; True when it is deleted."""
        if item.expires > now:
            return False
        hold = holds.of(item.partition)
        if hold is not None:
            held.append(Item(**{**asdict(item), "held_by": hold}))
            return False
        expired.append(item)
        return True

    current = current_manifests(reports)
    last_run = {facts.dirname: facts for _, facts in current}
    for path, facts in current:
        # Delta partitions live in their tables: retention keeps them (and what their manifests
        # name); they expire by a predicate delete and a vacuum no shorter than the period
        gone = (
            policy.outputs is not None
            and not loaded.delta
            and judge(_item("outputs", path.parent, facts, policy.outputs))
        )
        if not gone:
            kept.append(facts)
    for path, facts in kept_manifests(reports):
        gone = policy.manifests is not None and judge(
            _item("manifests", path, facts, policy.manifests)
        )
        if not gone:
            kept.append(facts)
    if policy.history is not None:
        for path in sorted((reports / HISTORY_DIR).glob("*=*.parquet")):
            dirname = path.name.removesuffix(".parquet")
            facts_or_none = last_run.get(dirname)
            written = _aware(facts_or_none.finished_at) if facts_or_none else _mtime(path)
            judge(
                Item(
                    "history",
                    str(path),
                    _value(dirname),
                    written,
                    expiry(written, policy.history),
                    f"metric history kept {policy.history}",
                )
            )
    named = set().union(*(_names(f) for f in kept)) if kept else set()
    for kind, period, store in (
        ("objects", policy.objects, objects_store(reports)),
        ("archived_inputs", policy.archived_inputs, inputs_store(reports)),
    ):
        if period is not None:
            _objects(kind, period, store, named, judge)
    return Plan(loaded.name, now, expired, held)


def _item(kind: str, path: Path, facts: ManifestFacts, period: str) -> Item:
    written = _aware(facts.finished_at)
    what = "partition outputs" if kind == "outputs" else "kept manifest"
    return Item(
        kind,
        str(path),
        facts.partition.value,
        written,
        expiry(written, period),
        f"{what} of run {facts.run_id} kept {period}",
        facts.run_id,
    )


def _objects(kind: str, period: str, store: ObjectStore, named: set[str], judge: Any) -> None:
    for sha in store.objects():
        if sha in named:
            continue
        path = store.path(sha)
        written = _mtime(path)
        judge(
            Item(
                kind,
                str(path),
                None,
                written,
                expiry(written, period),
                f"no kept manifest names it; kept {period} from its last use",
            )
        )


def log_path(reports_root: Path) -> Path:
    """The append-only log of retention's deletions."""
    return reports_root / AUDIT_DIR / LOG_NAME


def append_log(reports_root: Path, entries: Iterable[dict[str, Any]]) -> None:
    """Append entries to the deletion log (one JSON object a line), flushed to disk."""
    path = log_path(reports_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        for entry in entries:
            os.write(fd, (json.dumps(json_safe(entry), sort_keys=True) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Applied:
    """What ``--apply`` deleted, and what it left and why."""

    deleted: list[Item]
    skipped: list[tuple[Item, str]]


OBJECT_KINDS = ("objects", "archived_inputs")


def apply(loaded: LoadedSpec, planned: Plan) -> Applied:
    """Delete what ``planned`` lists as expired, logging each deletion before it is done.

    Partitions, history and manifests go first; stored objects then only if no manifest left on
    disk names them (a partition left because a run held it keeps its objects).
    """
    reports = loaded.output_root("reports")
    deleted: list[Item] = []
    skipped: list[tuple[Item, str]] = []
    objects = [i for i in planned.expired if i.kind in OBJECT_KINDS]
    for item in [i for i in planned.expired if i.kind not in OBJECT_KINDS]:
        why = _delete(loaded, reports, item)
        if why is None:
            deleted.append(item)
        else:
            skipped.append((item, why))
    on_disk = current_manifests(reports) + kept_manifests(reports) if objects else []
    named = set().union(*(_names(f) for _, f in on_disk)) if on_disk else set()
    for item in objects:
        if Path(item.path).name in named:
            skipped.append((item, "a manifest still on disk names it (its partition was left)"))
        elif _delete(loaded, reports, item) is None:
            deleted.append(item)
    return Applied(deleted, skipped)


def _entry(item: Item, path: Path) -> dict[str, Any]:
    return {
        "at": dt.datetime.now(dt.UTC).isoformat(),
        "action": "delete",
        **item.as_dict(),
        "path": str(path),
    }


def _delete(loaded: LoadedSpec, reports: Path, item: Item) -> str | None:
    if item.kind != "outputs":
        path = Path(item.path)
        if not path.exists():
            return None
        append_log(reports, [_entry(item, path)])
        path.unlink(missing_ok=True)
        return None
    dirname = Path(item.path).name
    try:
        with partition_lock(reports, dirname, timeout=0):
            manifest = Path(item.path) / MANIFEST_NAME
            try:
                doc = json.loads(read_manifest_bytes(manifest))
            except (SluiceError, ValueError):
                return f"{manifest} cannot be read now"
            if doc.get("run_id") != item.run_id:
                return f"partition {dirname} was screened again since the plan was made"
            folders = [
                loaded.output_root("clean") / dirname,
                loaded.output_root("quarantine") / dirname,
                reports / dirname,
            ]
            for folder in folders:
                why = foreign_reason(folder, dataset=loaded.name, manifest=manifest)
                if why is not None:
                    return f"{folder}: not a folder sluice made ({why}); left as it is"
            period = loaded.spec.retention.manifests
            if period is None or expiry(item.written, period) > dt.datetime.now(dt.UTC):
                archive_manifest(manifest)
            present = [f for f in folders if f.exists()]
            append_log(reports, [_entry(item, f) for f in present])
            for folder in present:
                shutil.rmtree(folder)
    except PartitionBusy:
        return f"partition {dirname} is being written by a run; left for the next pass"
    return None
