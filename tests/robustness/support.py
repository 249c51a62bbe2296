"""Shared helpers: a dataset on disk built from code, and the checks every outcome must pass."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from sluice.audit.keep import MANIFESTS_DIR
from sluice.decide import add_checksums, checksum
from sluice.write import load_partition
from tests.conftest import TINY_SCHEMA, tiny_suite

EXT = {"csv": "csv", "ndjson": "ndjson", "parquet": "parquet"}
SIDES = ("clean", "quarantine", "reports")
LEFTOVER_MARKS = (".staging-", ".replaced-", ".commit-", ".work")
VOLATILE = ("run_id", "started_at", "finished_at", "timings_s")


def write_dataset(
    root: Path,
    files: Mapping[str, bytes | Mapping[str, bytes]],
    *,
    fmt: str = "csv",
    schema: Mapping[str, Any] | None = None,
    suite: Mapping[str, Any] | None = None,
    detectors: list[dict[str, Any]] | None = None,
    name: str = "tiny",
) -> Path:
    """Write a spec, its suite and source files under ``root``; returns the spec's path.

    ``files`` maps a partition (YYYY-MM-DD) to the bytes of its one file, or to a mapping of
    file names to bytes when the partition has several files.
    """
    for part, content in files.items():
        folder = root / "raw" / f"date={part}"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        named = content if isinstance(content, Mapping) else {f"data.{EXT[fmt]}": content}
        for file_name, data in named.items():
            (folder / file_name).write_bytes(data)
    (root / "suite.json").write_text(json.dumps(suite or tiny_suite()))
    spec: dict[str, Any] = {
        "name": name,
        "source": {"path": f"raw/date={{date}}/*.{EXT[fmt]}", "format": fmt},
        "partition": {"key": "date", "kind": "day"},
        "schema": dict(schema or TINY_SCHEMA),
        "keys": ["id"],
        "suite": "suite.json",
        "detectors": detectors or [],
        "outputs": {side: f"out/{side}" for side in SIDES},
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def manifest_path(root: Path, partition: str) -> Path:
    """Where a partition's manifest is under a dataset written by :func:`write_dataset`."""
    return root / "out" / "reports" / f"date={partition}" / "manifest.json"


def check_conserved(manifest: Path, rows_in: int | None = None) -> dict[str, Any]:
    """Every check of "nothing lost", from the manifest and from the files it names.

    Reads the partition through the documented read protocol (sha256 of every file), then checks
    ``in == clean + quarantine`` in the manifest and in the files, disjoint row ids, checksums of
    the files' ids equal to the manifest's, a reason on every quarantined row, a report and, when
    given, ``rows_in`` (the records of the source, counted independently).
    """
    part = load_partition(manifest)
    m = part.manifest
    counts, sums = m["counts"], m["checksums"]
    clean, quarantine = part.frames["clean"], part.frames["quarantine"]
    assert m["conservation"]["holds"] is True
    assert counts["in"] == counts["clean"] + counts["quarantine"]
    assert (clean.height, quarantine.height) == (counts["clean"], counts["quarantine"])
    if rows_in is not None:
        assert counts["in"] == rows_in, (counts["in"], rows_in)
    ids_clean, ids_quarantine = set(clean["_row_id"]), set(quarantine["_row_id"])
    assert len(ids_clean) == clean.height
    assert len(ids_quarantine) == quarantine.height
    assert ids_clean.isdisjoint(ids_quarantine)
    assert checksum(clean["_row_id"]) == sums["clean"]
    assert checksum(quarantine["_row_id"]) == sums["quarantine"]
    assert sums["in"] == add_checksums(sums["clean"], sums["quarantine"])
    if quarantine.height:
        assert quarantine["_reasons"].list.len().min() >= 1  # type: ignore[operator]
    # the data scientists' view of the run: a hostile input still gets its report
    assert "report" in m["outputs"], m.get("findings", {}).get("report_error")
    return m


def reasons(manifest: Mapping[str, Any]) -> set[str]:
    """The reasons that quarantined rows of a run."""
    return set(manifest["counts"]["quarantined_by_reason"])


def quarantine_of(manifest: Mapping[str, Any]) -> pl.DataFrame:
    """The quarantine file a manifest names."""
    return pl.read_parquet(manifest["outputs"]["quarantine"]["path"])


def leftovers(out: Path) -> list[str]:
    """Staging, replaced, journal and work entries left under the output roots."""
    return sorted(
        str(p.relative_to(out))
        for p in out.rglob("*")
        if any(p.name.startswith(mark) for mark in LEFTOVER_MARKS)
    )


def snapshot(out: Path) -> dict[str, bytes]:
    """Every file under ``out`` by relative path; lock files aside, and the kept copies of
    committed manifests (``_manifests``), which gain one file per run by design."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and ".locks" not in p.parts and MANIFESTS_DIR not in p.parts
    }


def stable(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """A manifest without what differs from run to run (ids, clocks, timings, report bytes)."""
    out = {k: v for k, v in manifest.items() if k not in VOLATILE}
    out["screen"] = {k: v for k, v in manifest.get("screen", {}).items() if k != "seconds"}
    out["outputs"] = {
        k: v for k, v in manifest["outputs"].items() if k in ("clean", "quarantine", "failures")
    }
    return out


def same_outputs(a: Mapping[str, bytes], b: Mapping[str, bytes]) -> list[str]:
    """Paths whose content differs between two snapshots, judged as an auditor would.

    Data files (clean, quarantine, failures) must be byte for byte equal; manifests equal but for
    :func:`stable`'s volatile fields; the report and metrics files (which record timings) and the
    metric history only have to exist on both sides.
    """
    diff = sorted(set(a) ^ set(b))
    for path in sorted(set(a) & set(b)):
        if path.endswith("manifest.json"):
            if stable(json.loads(a[path])) != stable(json.loads(b[path])):
                diff.append(path)
        elif path.endswith(("part-00000.parquet", "failures.parquet")) and a[path] != b[path]:
            diff.append(path)
    return diff
