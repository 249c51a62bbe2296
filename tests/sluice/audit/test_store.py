"""The content-addressed store: write-once, verified, deduplicated; runs keep what they used."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from sluice.audit.keep import archive_manifest, keep_run
from sluice.audit.store import ObjectStore, StoreError
from sluice.pipeline import run_partition
from tests.conftest import SpecFactory

CSV = "id,amount,count,when,kind\na1,1.5,1,2024-01-01 00:00:00,a\na2,-3,2,2024-01-01 01:00:00,b\n"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_put_names_the_object_by_its_sha256_and_makes_it_read_only(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "objects")
    sha = store.put_bytes(b"suite bytes")
    path = store.path(sha)
    assert sha == _sha(b"suite bytes")
    assert path == tmp_path / "objects" / "sha256" / sha[:2] / sha
    assert path.read_bytes() == b"suite bytes"
    assert path.stat().st_mode & 0o777 == 0o444
    assert store.objects() == [sha]
    assert not [p for p in store.root.iterdir() if p.name.startswith(".tmp-")]


def test_a_second_put_deduplicates_and_never_rewrites(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    src = tmp_path / "in.csv"
    src.write_bytes(b"a,b\n1,2\n")
    sha = store.put_file(src, _sha(src.read_bytes()))
    os.utime(store.path(sha), (1_000_000, 1_000_000))
    before = store.path(sha).stat()
    assert store.put_file(src, sha) == sha
    after = store.path(sha).stat()
    assert before.st_ino == after.st_ino
    assert after.st_mtime > before.st_mtime, "reuse marks the object as used now"
    assert store.path(sha).read_bytes() == src.read_bytes()
    assert store.objects() == [sha]


def test_a_damaged_object_is_reported_not_repaired(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path)
    sha = store.put_bytes(b"original")
    path = store.path(sha)
    os.chmod(path, 0o644)
    path.write_bytes(b"tampered")
    with pytest.raises(StoreError, match="damaged"):
        store.put_bytes(b"original", sha)
    assert path.read_bytes() == b"tampered"
    with pytest.raises(StoreError, match="damaged"):
        store.read(sha)


def test_a_file_changed_since_the_run_read_it_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(b"new bytes")
    store = ObjectStore(tmp_path / "s")
    with pytest.raises(StoreError, match="changed since the run read them"):
        store.put_file(src, _sha(b"old bytes"))
    assert store.objects() == []


def test_keep_run_stores_spec_suite_and_inputs_relative_to_the_reports_root(
    tmp_path: Path,
) -> None:
    spec, suite, data = tmp_path / "s.yaml", tmp_path / "suite.json", tmp_path / "d.csv"
    for p, b in ((spec, b"name: x\n"), (suite, b"{}"), (data, b"a\n1\n")):
        p.write_bytes(b)
    reports = tmp_path / "reports"
    record = keep_run(
        reports,
        spec=(spec, _sha(b"name: x\n")),
        suite=(suite, _sha(b"{}")),
        inputs=[(str(data), _sha(b"a\n1\n"))],
    )
    assert (reports / record.spec.path).read_bytes() == b"name: x\n"
    assert record.suite is not None
    assert (reports / record.suite.path).read_bytes() == b"{}"
    assert record.inputs_archived
    assert (reports / record.inputs[str(data)].path).read_bytes() == b"a\n1\n"
    assert record.inputs[str(data)].path.startswith("_inputs/sha256/")


def test_a_run_keeps_its_spec_suite_and_inputs_and_every_manifest(
    make_dataset: SpecFactory,
) -> None:
    spec = make_dataset({"2024-01-01": CSV}, extra={"archive_inputs": True})
    first = json.loads(Path(run_partition(str(spec), "2024-01-01")["manifest"]).read_text())
    second_path = Path(run_partition(str(spec), "2024-01-01")["manifest"])
    second = json.loads(second_path.read_text())
    reports = second_path.parent.parent
    audit = second["audit"]
    assert (reports / audit["spec"]["path"]).read_bytes() == spec.read_bytes()
    assert audit["spec"]["sha256"] == second["spec"]["sha256"]
    suite = spec.parent / "suite.json"
    assert (reports / audit["suite"]["path"]).read_bytes() == suite.read_bytes()
    (source,) = second["inputs"]
    kept = audit["inputs"][source["path"]]
    assert kept["sha256"] == source["sha256"]
    assert (reports / kept["path"]).read_bytes() == Path(source["path"]).read_bytes()
    copies = sorted((reports / "_manifests" / "date=2024-01-01").glob("*.json"))
    assert [c.stem for c in copies] == sorted([first["run_id"], second["run_id"]])
    by_run = {c.stem: json.loads(c.read_text()) for c in copies}
    assert by_run[second["run_id"]] == second
    assert by_run[first["run_id"]] == first


def test_archive_manifest_ignores_what_is_not_a_manifest(tmp_path: Path) -> None:
    bad = tmp_path / "reports" / "p" / "manifest.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    assert archive_manifest(bad) is None
    assert archive_manifest(tmp_path / "absent.json") is None
