"""Keep what a run used, for an audit: its spec, suite, saved models, inputs and manifests.

:func:`keep_run` stores the exact bytes in the dataset's content-addressed stores before the
manifest is written (the manifest is the commit point, and it references them by sha256);
:func:`archive_manifest` keeps a copy of every committed manifest under
``<reports>/_manifests/<partition>/<run id>.json``, write-once, so the history of a partition's
runs outlives the replacement of its folder.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from sluice.audit.records import AuditRecord, StoredObject
from sluice.audit.store import ObjectStore, StoreError, inputs_store, objects_store
from sluice.core.errors import SluiceError
from sluice.core.files import Limit, input_error, read_regular

MANIFESTS_DIR = "_manifests"
"""Under a dataset's reports root: a copy of every committed manifest, by partition and run."""
_SAFE = re.compile(r"[A-Za-z0-9_.=-]{1,200}")
MANIFEST_LIMIT = Limit("SLUICE_MAX_MANIFEST_BYTES", 64 << 20)


def read_manifest_bytes(path: Path) -> bytes:
    """A manifest's bytes: a regular file (never a FIFO or device) of bounded size, else
    :class:`~sluice.core.errors.InputError` naming it."""
    return read_regular(path, input_error(path), MANIFEST_LIMIT)


def _stored(store: ObjectStore, reports_root: Path, sha256: str) -> StoredObject:
    path = store.path(sha256)
    return StoredObject(
        sha256=sha256, size=path.stat().st_size, path=path.relative_to(reports_root).as_posix()
    )


def keep_run(
    reports_root: Path,
    *,
    spec: tuple[Path, str],
    suite: tuple[Path | None, str],
    models: Mapping[str, tuple[str, str]] = {},
    inputs: Sequence[tuple[str, str]] | None = None,
) -> AuditRecord:
    """Store the bytes of a run's spec, suite, saved models and (when given) inputs.

    Each is ``(path, sha256)``: the sha256 the run used, which the bytes read now must have (a
    file changed since the run read it stops the commit with :class:`StoreError`). ``inputs``
    is None unless the spec asks for ``archive_inputs``.
    """
    objs = objects_store(reports_root)
    spec_obj = _stored(objs, reports_root, objs.put_file(*spec))
    suite_path, suite_sha = suite
    suite_obj = (
        None
        if suite_path is None
        else _stored(objs, reports_root, objs.put_file(suite_path, suite_sha))
    )
    model_objs = {
        name: _stored(objs, reports_root, objs.put_file(path, sha))
        for name, (path, sha) in sorted(models.items())
    }
    kept: dict[str, StoredObject] = {}
    if inputs is not None:
        store = inputs_store(reports_root)
        for path, sha in inputs:
            kept[path] = _stored(store, reports_root, store.put_file(path, sha))
    return AuditRecord(
        spec=spec_obj,
        suite=suite_obj,
        models=model_objs,
        inputs_archived=inputs is not None,
        inputs=kept,
    )


def manifests_dir(reports_root: Path) -> Path:
    """Where the copies of a dataset's committed manifests are."""
    return reports_root / MANIFESTS_DIR


def archive_manifest(manifest: Path) -> Path | None:
    """Keep a write-once copy of a committed ``manifest.json`` under ``_manifests``.

    Returns the copy, or None when ``manifest`` is absent or not a manifest (nothing to keep).
    A copy already there is left as it is.
    """
    try:
        data = read_manifest_bytes(manifest)
        doc = json.loads(data)
        dirname = f"{doc['partition']['key']}={doc['partition']['value']}"
        run_id = str(doc["run_id"])
    except (SluiceError, ValueError, KeyError, TypeError):
        return None
    if not (_SAFE.fullmatch(dirname) and _SAFE.fullmatch(run_id)) or dirname.startswith("."):
        return None
    reports_root = manifest.parent.parent
    folder = manifests_dir(reports_root) / dirname
    target = folder / f"{run_id}.json"
    if target.exists():
        return target
    tmp = folder / f".tmp-{uuid.uuid4().hex[:12]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tmp.open("xb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o444)
        try:
            os.link(tmp, target)
        except FileExistsError:
            return target
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StoreError(f"cannot keep a copy of {manifest} in {folder}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target
