"""Skip what is done: a partition already screened from the same inputs, suite and spec.

A partition is done when its manifest says it passed or warned, its input files are the same
files with the same sha256, the suite and the dataset spec have the sha256 the manifest
recorded, and every output file the manifest names is there with the sha256 it gives (the read
protocol of ``sluice.write.load_partition``, hashing only: a partition whose outputs were changed
is screened again), and every Delta table version it names holds the rows it counted. The
manifest is validated with :class:`sluice.pipeline.manifest.Manifest`:
one that is not valid (unreadable, edited into another shape, status and verdict disagreeing,
conservation claimed against its own counts) is never done. The judgement is made with the
partition's lock held, after recovering what dead runs left (a commit that died half way is
finished or rolled back first). A partition whose last run failed is never done: screening it
again fails again and alerts again, which is the point. A warned run is done: the same inputs,
suite and spec would warn the same way, and its manifest keeps the causes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from expectations.suite import load_suite
from sluice.config import LoadedSpec, Partition
from sluice.core.errors import InputError
from sluice.core.files import file_sha256
from sluice.core.frame import ROW_ID
from sluice.ingest import list_source_files
from sluice.pipeline.manifest import Manifest
from sluice.pipeline.recovery import recover_partition
from sluice.storage import open_output
from sluice.write import MANIFEST_NAME, NotCommitted, PartitionBusy, partition_lock


@dataclass(frozen=True)
class Done:
    """Whether a partition is done, and why (or why not), in words for the run's log."""

    done: bool
    reason: str
    manifest: Path


def manifest_path(loaded: LoadedSpec, partition: Partition) -> Path:
    """Where a partition's manifest is (or will be)."""
    return loaded.output_root("reports") / partition.dirname / MANIFEST_NAME


def load_manifest(path: Path) -> Manifest | str:
    """The manifest at ``path``, validated; or why there is none, in words for the run's log."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return "not screened yet"
    except OSError as exc:
        return f"its manifest {path} cannot be read ({exc.strerror or type(exc).__name__})"
    try:
        return Manifest.model_validate_json(text)
    except ValidationError as exc:
        return f"its manifest {path} is not valid: {_first_error(exc)}"


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    if not errors:
        return str(exc)
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "the document"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}"


def read_manifest(path: Path) -> dict[str, Any] | None:
    """A manifest's content as JSON types, or None when it is missing, unreadable or invalid."""
    loaded = load_manifest(path)
    return loaded.dump() if isinstance(loaded, Manifest) else None


def unverified_output(outputs: Any) -> str | None:
    """Why the output files a manifest names are not the ones it hashed; None when all are.

    Every entry needs a ``path`` to a file whose sha256 is the entry's ``sha256``: a missing or
    different file means a run died while replacing the partition, or someone changed it.
    """
    if not isinstance(outputs, dict) or not outputs:
        return "its manifest names no outputs"
    for name, entry in sorted(outputs.items()):
        out = entry.get("path") if isinstance(entry, dict) else None
        sha = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(out, str) or not isinstance(sha, str):
            return f"its manifest gives no path and sha256 for its {name} output"
        try:
            actual = file_sha256(out)
        except (OSError, InputError):
            return f"its {name} output {out} is missing or not a regular file"
        if actual != sha:
            return f"its {name} output {out} is not the file its manifest names (sha256 differs)"
    return None


def unverified_tables(manifest: Mapping[str, Any], loaded: LoadedSpec) -> str | None:
    """Why the table versions a manifest names cannot be read as it counted them (a table
    removed, vacuumed or rewritten); None when each holds the partition's rows it records."""
    options = loaded.storage_options()
    for side in sorted(manifest.get("tables") or {}):
        try:
            open_output(manifest, side, storage_options=options).read([ROW_ID])
        except NotCommitted as exc:
            return f"its {side} table: {exc}"
    return None


def check_done(
    loaded: LoadedSpec, partition: Partition, *, suite_sha256: str | None = None
) -> Done:
    """Take the partition's lock, recover what dead runs left, then judge whether it is done.

    Recovery (:func:`sluice.pipeline.recover_partition`) finishes or rolls back a commit that
    died and removes dead runs' work folders even when the partition is then skipped. A
    partition whose lock another run holds is not done, at once: its own run waits for the lock
    in turn, so a backfill does not stall on one busy partition before screening the others.
    ``suite_sha256`` saves loading the suite again.
    """
    reports = loaded.output_root("reports")
    if not reports.exists():
        return Done(False, "not screened yet", manifest_path(loaded, partition))
    try:
        with partition_lock(reports, partition.dirname, timeout=0):
            recover_partition(loaded, partition)
            return _judge(loaded, partition, suite_sha256)
    except PartitionBusy as exc:
        return Done(False, str(exc), manifest_path(loaded, partition))


def _judge(loaded: LoadedSpec, partition: Partition, suite_sha256: str | None) -> Done:
    path = manifest_path(loaded, partition)
    manifest = load_manifest(path)
    if isinstance(manifest, str):
        return Done(False, manifest, path)
    if manifest.status not in ("passed", "warned"):
        return Done(False, f"its last run ended {manifest.status!r}", path)
    if manifest.spec.sha256 != loaded.sha256:
        return Done(False, "the dataset spec changed", path)
    suite_sha = suite_sha256 or load_suite(loaded.suite_path).sha256
    if manifest.suite.sha256 != suite_sha:
        return Done(False, "the suite changed", path)
    doc = manifest.dump()
    outputs = doc["outputs"]
    for side in ("clean", "quarantine"):
        out = outputs.get(side, {}).get("path")
        if side not in (doc.get("tables") or {}) and (not out or not Path(out).is_file()):
            return Done(False, f"its {side} output is missing", path)
    mismatch = unverified_output(outputs) or unverified_tables(doc, loaded)
    if mismatch is not None:
        return Done(False, mismatch, path)
    try:
        files = list_source_files(loaded, partition)
    except InputError:
        return Done(False, "its input files are gone", path)
    recorded = {i.path: i.sha256 for i in manifest.inputs}
    if set(recorded) != set(files):
        return Done(False, "its input files changed (added, removed or renamed)", path)
    for f in files:
        if file_sha256(f) != recorded[f]:
            return Done(False, f"input {f} changed", path)
    return Done(True, "already screened from the same inputs, suite and spec", path)


def summary_from_manifest(manifest: Manifest | Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The run summary (the shape ``stage_write`` returns) rebuilt from a manifest."""
    m = manifest if isinstance(manifest, Manifest) else Manifest.model_validate(manifest)
    return {
        "dataset": m.dataset,
        "partition": m.partition.value,
        "status": m.status,
        "critical": list(m.critical),
        "causes": [c.model_dump(mode="json") for c in m.verdict.causes],
        "counts": m.counts.model_dump(mode="json"),
        "manifest": str(path),
        "conservation": m.conservation.holds,
    }


def skipped_summary(verdict: Done) -> dict[str, Any] | None:
    """The summary of a done partition, with the reason it is skipped; None when not done."""
    manifest = load_manifest(verdict.manifest) if verdict.done else None
    if not isinstance(manifest, Manifest):
        return None
    return {**summary_from_manifest(manifest, verdict.manifest), "skipped": verdict.reason}
