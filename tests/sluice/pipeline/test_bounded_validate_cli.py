"""``sluice run`` with the bounded validate stage equals the in-memory run, through the real
command: the same exit code, clean, quarantine and failures rows, and manifest."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from sluice.demo_data import generate
from tests.conftest import demo_datasets
from tests.sluice.pipeline.test_local_cli import _env, _manifest, _normal
from tests.test_e2e import sluice

pytestmark = pytest.mark.e2e
DAY = dt.date(2024, 3, 4)


def _run(tmp_path: Path, name: str, **extra: str) -> tuple[Path, int, str]:
    datasets = demo_datasets(tmp_path / f"{name}-project")
    root = tmp_path / name
    generate(root, [DAY], rows_per_partition=1200, seed=7)
    done = sluice(
        "run", "trips", "--partition", str(DAY), "--json", env=_env(datasets, root, None, **extra)
    )
    assert "Traceback" not in done.stderr, done.stderr
    return root, done.returncode, done.stdout


def test_bounded_validate_run_equals_the_in_memory_run(tmp_path: Path) -> None:
    memory, code_m, out_m = _run(tmp_path, "memory", SLUICE_BOUNDED="0")
    bounded, code_b, out_b = _run(tmp_path, "bounded", SLUICE_BOUNDED="1", SLUICE_BATCH_ROWS="7")
    assert code_m == code_b
    assert _normal(json.loads(out_m), memory) == _normal(json.loads(out_b), bounded)
    ma, mb = _manifest(memory, DAY), _manifest(bounded, DAY)
    for side in ("clean", "quarantine", "failures"):
        fa = pl.read_parquet(ma["outputs"][side]["path"])
        fb = pl.read_parquet(mb["outputs"][side]["path"])
        assert fa.schema == fb.schema
        # the same rows; a bounded ingest lists a file's parse failures piece by piece
        order = [c for c in ("_row_id", "reason") if c in fa.columns]
        assert _normal(fa.sort(order).to_dicts(), memory) == _normal(
            fb.sort(order).to_dicts(), bounded
        )
    assert ma["counts"]["quarantine"] > 0
    for m in (ma, mb):
        for entry in m["outputs"].values():
            del entry["sha256"], entry["bytes"]
    assert _normal(ma, memory) == _normal(mb, bounded)


def test_an_entry_a_bounded_run_cannot_hold_is_refused_with_exit_2(tmp_path: Path) -> None:
    datasets = demo_datasets(tmp_path / "project")
    root = tmp_path / "data"
    generate(root, [DAY], rows_per_partition=100, seed=3)
    env = _env(datasets, root, None, SLUICE_BOUNDED="1", SLUICE_BATCH_ROWS="7")
    done = sluice("run", "trips", "--partition", str(DAY), "--engine", "gx", env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "trips.json" in done.stderr
    assert "trips.json:4: expectations[0]" in done.stderr
    assert "expect_table_columns_to_match_set needs every column" in done.stderr
    assert "SLUICE_BOUNDED=0" in done.stderr
    assert not (root / "reports" / "trips" / f"pickup_date={DAY}" / "manifest.json").exists()
