"""Shared pieces of the bounded-path tests: hostile generated partitions, and one stage run on
the in-memory path and on the bounded path over the same work files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from sluice.pipeline import Run, stage_ingest, stage_validate

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


def row_sets(frame: pl.DataFrame) -> list[tuple[Any, ...]]:
    """The rows of ``frame`` as a sorted list (lists in cells made tuples)."""
    rows = [tuple(tuple(v) if isinstance(v, list) else v for v in r) for r in frame.rows()]
    return sorted(rows, key=repr)
