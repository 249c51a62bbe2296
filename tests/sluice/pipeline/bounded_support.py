"""Shared pieces of the bounded-path tests: hostile generated partitions, and one stage run on
the in-memory path and on the bounded path over the same work files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml

from sluice.pipeline import Run, stage_ingest, stage_screen, stage_validate, stage_write
from sluice.write import load_partition
from tests.conftest import tiny_spec, tiny_suite

HEADER = "id,amount,count,when,kind"
DETECTORS: dict[str, list[dict[str, Any]]] = {
    "default": [{"name": "default", "features": ["amount", "count"], "severity": "error"}],
    "ecod": [
        {
            "name": "ecod",
            "features": ["amount", "count", {"column": "kind", "kind": "categorical"}],
            "params": {"false_flag_rate": 0.05},
        }
    ],
    "ensemble": [
        {
            "name": "ens",
            "detector": "ensemble",
            "features": ["amount", {"column": "when", "kind": "timestamp"}],
            "params": {"false_flag_rate": 0.05},
            "severity": "error",
            "seed": 4,
        },
        {"name": "hbos", "features": ["count"], "params": {"false_flag_rate": 0.1}},
    ],
}


def hostile_csv(n: int, seed: int) -> str:
    """``n`` records of the tiny schema with nulls, unicode, unparsable cells, malformed
    records, duplicated ids far apart (across batches), outliers and an all-null column."""
    rng = np.random.default_rng(seed)
    lines = [HEADER]
    for i in range(n):
        amount = f"{rng.normal(40, 10):.3f}"
        count = str(int(rng.integers(0, 50)))
        kind = ["a", "b", "ü", "日本"][int(rng.integers(0, 4))]
        when = f"2024-01-01 {int(rng.integers(0, 24)):02d}:{i % 60:02d}:00"
        ident = f"r{i}"
        roll = rng.random()
        if roll < 0.05:
            amount = ""
        elif roll < 0.08:
            amount = "x"
        elif roll < 0.11:
            amount = f"{rng.normal(40, 10) * 1000:.1f}"
        elif roll < 0.13:
            ident = f"r{int(rng.integers(0, max(1, i)))}"
        elif roll < 0.15:
            lines.append(f"{ident},{amount},{count}")
            continue
        elif roll < 0.17:
            count = "9e9"
        lines.append(f"{ident},{amount},{count},{when},{kind}")
    return "\n".join(lines) + "\n"


def prepared(spec: Path, day: str) -> Run:
    """A run of ``spec``'s partition ``day`` after the in-memory ingest and validate stages."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLUICE_BOUNDED", "0")
        run = Run.prepare(str(spec), day)
        stage_ingest(run)
        stage_validate(run)
    return run


def read_work(run: Run, *names: str) -> dict[str, pl.DataFrame | None]:
    """The named work files of ``run`` (None for one that is absent)."""
    return {n: pl.read_parquet(run.file(n)) if run.file(n).exists() else None for n in names}


def row_sets(frame: pl.DataFrame, root: Path | None = None) -> list[str]:
    """The rows of ``frame``, each as its repr with ``root`` (the dataset's folder, in source
    paths) written ``<root>``, sorted."""
    rows = [repr(r) for r in frame.rows()]
    if root is not None:
        rows = [r.replace(str(root), "<root>") for r in rows]
    return sorted(rows)


def dataset(
    root: Path,
    files: dict[str, str],
    *,
    detectors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """A dataset of the tiny schema and suite under ``root`` (its own folder), one CSV per
    partition; returns the spec's path."""
    root.mkdir(parents=True, exist_ok=True)
    for day, text in files.items():
        folder = root / "raw" / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "data.csv").write_text(text, encoding="utf-8")
    (root / "suite.json").write_text(json.dumps(tiny_suite()))
    spec = {**tiny_spec(), "detectors": detectors or [], **(extra or {})}
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run_stages(spec: Path, day: str, *, bounded: bool) -> dict[str, Any]:
    """Ingest, validate and screen in memory, then the write stage bounded or in memory;
    returns the committed manifest."""
    run = prepared(spec, day)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLUICE_BOUNDED", "0")
        stage_screen(run)
        mp.setenv("SLUICE_BOUNDED", "1" if bounded else "0")
        summary = stage_write(run)
    manifest: dict[str, Any] = json.loads(Path(summary["manifest"]).read_text())
    return manifest


NUMBERS = (
    "status",
    "critical",
    "verdict",
    "counts",
    "checksums",
    "conservation",
    "reasons",
    "detectors",
    "validation",
    "schema",
)


def same_partition(memory: Path, bounded: Path) -> dict[str, Any]:
    """Assert that two committed partitions (manifest paths of two copies of a dataset) hold
    the same rows with the same reasons and numbers, Parquet files' rows in the same order (a
    Delta table's order is its reader's); returns the in-memory manifest."""
    want, got = load_partition(memory), load_partition(bounded)
    for key in NUMBERS:
        assert _rooted(got.manifest.get(key), bounded) == _rooted(want.manifest.get(key), memory), (
            key
        )
    for side in ("clean", "quarantine", "failures"):
        w, g = want.frames[side], got.frames[side]
        assert g.schema == w.schema, side
        assert row_sets(g, _root(bounded)) == row_sets(w, _root(memory)), side
        if side != "failures" and side not in (want.manifest.get("tables") or {}):
            assert g.get_column("_row_id").equals(w.get_column("_row_id")), side
    for kind in ("outputs", "tables"):
        for side, entry in (want.manifest.get(kind) or {}).items():
            other = got.manifest[kind][side]
            assert other.get("rows") == entry.get("rows"), side
            assert other.get("checksum") == entry.get("checksum"), side
    return want.manifest


def _root(manifest: Path) -> Path:
    """The dataset folder of a manifest at ``<root>/out/reports/<partition>/manifest.json``."""
    return manifest.parents[3]


def _rooted(value: Any, manifest: Path) -> str:
    return json.dumps(value, sort_keys=True).replace(str(_root(manifest)), "<root>")
