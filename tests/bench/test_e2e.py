"""bench.e2e's pieces that need no long run: the stage seconds it reads from a manifest, the
table, and the same generated data in every format."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from bench.e2e import (
    DAY,
    FLOOR,
    PACKAGES,
    ROOT,
    Measured,
    byte_compile,
    make_data,
    stage_seconds,
    table,
    write_spec,
)
from sluice.pipeline import run_partition


def test_stage_seconds_come_from_the_manifest_in_stage_order(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    timings = {"report": 3.5, "write": 1.25, "ingest": 2.0, "screen": 0.5, "validate": 0.75}
    manifest.write_text(json.dumps({"timings_s": timings}))
    got = stage_seconds(manifest)
    assert list(got) == ["ingest", "validate", "screen", "write", "report"]
    assert got == timings


def test_a_missing_or_broken_manifest_gives_no_stages(tmp_path: Path) -> None:
    assert stage_seconds(tmp_path / "absent.json") == {}
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert stage_seconds(broken) == {}


def test_the_table_sets_each_sluice_run_beside_the_peer_of_its_detector() -> None:
    def m(name: str, cpu: float) -> Measured:
        return Measured(name=name, cpu_s=cpu, wall_s=cpu, peak_rss_mb=1.0, code=0, sys_s=cpu / 4)

    results = {
        "1M csv": [
            m("floor", 2.0),
            m("peer iforest", 30.0),
            m("peer ecod", 20.0),
            m("sluice ecod", 10.0),
            m("sluice default", 15.0),
        ],
        "10M csv": [m("floor", 20.0), m("sluice ecod", 50.0)],
    }
    rows = {
        tuple(cell.strip() for cell in line.strip("|").split("|")[:2]): line.split("|")[7:10]
        for line in table(results).splitlines()[2:]
    }
    assert [c.strip() for c in rows[("1M csv", "sluice ecod")]] == ["0.33", "0.50", "5.0"]
    assert [c.strip() for c in rows[("1M csv", "sluice default")]] == ["0.50", "0.50", "7.5"]
    assert [c.strip() for c in rows[("10M csv", "sluice ecod")]] == ["", "", "2.5"]
    kernel = {
        line.split("|")[2].strip(): line.split("|")[4].strip()
        for line in table(results).splitlines()[2:]
        if "1M" in line
    }
    assert kernel["sluice ecod"] == "2.5"


@pytest.fixture(scope="module")
def screened_in_each_format(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("formats")
    got: dict[str, Any] = {}
    for fmt in ("csv", "parquet", "ndjson"):
        data = make_data(base / fmt, 3000, fmt)
        floor = base / fmt / "floor.parquet"
        subprocess.run([sys.executable, "-c", FLOOR, str(data), str(floor)], check=True)
        result = run_partition(str(write_spec(base / fmt, fmt, "ecod")), DAY)
        got[fmt] = (pl.read_parquet(floor).height, result["status"], result["counts"])
    return got


@pytest.mark.parametrize("fmt", ["parquet", "ndjson"])
def test_the_generated_partition_screens_alike_in_every_format(
    fmt: str, screened_in_each_format: dict[str, Any]
) -> None:
    floor_rows, status, counts = screened_in_each_format[fmt]
    assert floor_rows == 3000
    assert (status, counts) == screened_in_each_format["csv"][1:]
    assert counts["quarantine"] > 0


def test_sluices_packages_are_byte_compiled_before_timing() -> None:
    byte_compile()
    for name in PACKAGES:
        for source in (ROOT / name).rglob("*.py"):
            assert Path(importlib.util.cache_from_source(str(source))).exists(), source
