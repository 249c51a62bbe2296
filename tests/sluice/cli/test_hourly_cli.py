"""Hourly partitions through the real ``sluice`` command, in one process (no Prefect API).

Three hours of a feed laid out ``raw/YYYY/MM/DD/HH/``: ``sluice run`` screens one hour,
``sluice backfill`` the three, ``sluice audit`` finds a row; ends that are not hours are refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from tests.conftest import TINY_SCHEMA, thin, tiny_suite

HOURS = ("2024-03-04T04", "2024-03-04T05", "2024-03-04T06")
ROWS = 40


def _feed(root: Path) -> Path:
    """Write three hours of CSV (row 3 of each out of range) and an hourly spec; returns it."""
    for text in HOURS:
        day, hour = text.split("T")
        folder = root / "raw" / day.replace("-", "/") / hour
        folder.mkdir(parents=True)
        lines = ["id,amount,count,when,kind"]
        for i in range(ROWS):
            amount = 500 if i == 3 else i
            lines.append(f"h{hour}-{i},{amount},{i},{day} {hour}:{i:02d}:00,a")
        (folder / "feed.csv").write_text("\n".join(lines) + "\n")
    (root / "suite.json").write_text(json.dumps(tiny_suite()))
    spec = {
        "name": "hourly",
        "source": {"path": "raw/{stamp:%Y/%m/%d/%H}/*.csv", "format": "csv"},
        "partition": {"key": "stamp", "kind": "hour", "timezone": "Europe/Paris", "lag": 1},
        "schema": TINY_SCHEMA,
        "keys": ["id"],
        "suite": "suite.json",
        "detectors": [],
        "outputs": {"clean": "out/clean", "quarantine": "out/quarantine", "reports": "out/reports"},
    }
    path = root / "hourly.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _sluice(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["SLUICE_PREFECT"] = "0"
    exe = str(Path(sys.executable).with_name("sluice"))
    return subprocess.run(
        [exe, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _manifest(root: Path, hour: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (root / "out" / "reports" / f"stamp={hour}" / "manifest.json").read_text()
    )
    return data


@pytest.fixture(scope="module")
def screened(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The feed after ``sluice run`` of 05 then ``sluice backfill`` of 04 to 06."""
    root = tmp_path_factory.mktemp("hourly")
    spec = _feed(root)
    run = _sluice("run", str(spec), "--partition", "2024-03-04 05", "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["partition"] == "2024-03-04T05"
    fill = _sluice("backfill", str(spec), "--start", "2024-03-04T04", "--end", "2024-03-04T06:00")
    assert fill.returncode == 0, fill.stderr
    assert "Traceback" not in fill.stderr
    assert "backfill: 2 screened, 1 skipped, 0 failed" in fill.stdout
    return root, spec


def test_each_hour_lands_in_its_own_folders_with_its_manifest(screened: tuple[Path, Path]) -> None:
    root, _ = screened
    for side in ("clean", "quarantine", "reports"):
        folders = sorted(p.name for p in (root / "out" / side).glob("stamp=*"))
        assert folders == [f"stamp={h}" for h in HOURS]
    for hour in HOURS:
        m = _manifest(root, hour)
        assert m["partition"] == {"key": "stamp", "value": hour, "kind": "hour"}
        assert m["counts"]["in"] == ROWS
        assert m["counts"]["quarantine"] == 1
        assert m["conservation"]["holds"] is True
        (source,) = m["inputs"]
        assert source["path"].endswith(f"raw/2024/03/04/{hour[-2:]}/feed.csv")
        clean = pl.read_parquet(m["outputs"]["clean"]["path"])
        assert sorted(clean["id"].str.slice(0, 3).unique()) == [f"h{hour[-2:]}"]


def test_audit_finds_a_row_of_an_hour(screened: tuple[Path, Path]) -> None:
    root, spec = screened
    m = _manifest(root, "2024-03-04T06")
    quarantined = pl.read_parquet(m["outputs"]["quarantine"]["path"])
    row_id = str(quarantined["_row_id"][0])
    got = _sluice("audit", str(spec), "--row-id", row_id)
    assert got.returncode == 0, got.stderr
    assert "QUARANTINE in partition 2024-03-04T06" in got.stdout
    assert "raw/2024/03/04/06/feed.csv record 3" in got.stdout


@pytest.mark.parametrize(
    ("start", "end", "message"),
    thin(
        [
            ("2024-03-04", "2024-03-04T06", "partition 2024-03-04 is a day, not an hour"),
            ("2024-03-04T04", "2024-03-05", "partition 2024-03-05 is a day, not an hour"),
            ("2024-03-04T06", "2024-03-04T04", "end 2024-03-04T04 is before start 2024-03-04T06"),
            ("2024-03-04T04:30", "2024-03-04T06", "is not a partition of the form YYYY-MM-DD"),
        ],
        keep=(0, 2),
    ),
)
def test_a_backfill_whose_ends_are_not_hours_is_refused(
    screened: tuple[Path, Path], start: str, end: str, message: str
) -> None:
    _, spec = screened
    got = _sluice("backfill", str(spec), "--start", start, "--end", end)
    assert got.returncode == 2, got.stderr
    assert message in got.stderr
    assert "Traceback" not in got.stderr
