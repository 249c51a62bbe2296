"""End to end: the real ``sluice`` command in a subprocess, against Prefect's temporary API."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from sluice.demo_data import generate
from tests.conftest import ROOT, SpecFactory, add_extra_specs, demo_datasets, tiny_suite

pytestmark = pytest.mark.e2e
DAYS = [dt.date(2024, 3, 4), dt.date(2024, 3, 5)]


def sluice(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run the installed ``sluice`` command."""
    exe = Path(sys.executable).with_name("sluice")
    return subprocess.run(
        [str(exe), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture
def demo_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The demo's data, and a datasets folder holding a copy of its spec beside another valid
    spec and an invalid one, which must change nothing for the demo dataset. Each test has its
    own: the tests may run on different workers, in any order."""
    root = tmp_path_factory.mktemp("demo")
    generate(root, DAYS, rows_per_partition=4000, seed=11)
    datasets = demo_datasets(tmp_path_factory.mktemp("project"))
    add_extra_specs(datasets)
    env = {
        **os.environ,
        "SLUICE_DATASETS": str(datasets),
        "SLUICE_DEMO_DIR": str(root),
        "PREFECT_HOME": str(tmp_path_factory.mktemp("prefect-home")),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    }
    return root, env


def _manifest(root: Path, day: dt.date) -> dict[str, Any]:
    path = root / "reports" / "trips" / f"pickup_date={day}" / "manifest.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_run_conserves_every_row_and_rerun_is_identical(
    demo_env: tuple[Path, dict[str, str]],
) -> None:
    root, env = demo_env
    first = sluice("run", "trips", "--partition", str(DAYS[0]), env=env)
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    assert "quarantined" in first.stdout

    m = _manifest(root, DAYS[0])
    counts = m["counts"]
    assert m["conservation"]["holds"] is True
    assert counts["in"] == counts["clean"] + counts["quarantine"]
    assert int(m["checksums"]["in"], 16) == (
        int(m["checksums"]["clean"], 16) + int(m["checksums"]["quarantine"], 16)
    ) % (1 << 64)

    source = root / "raw" / f"pickup_date={DAYS[0]}" / "trips.csv"
    n_source = pl.read_csv(source, infer_schema=False, truncate_ragged_lines=True).height
    clean = pl.read_parquet(m["outputs"]["clean"]["path"])
    quarantine = pl.read_parquet(m["outputs"]["quarantine"]["path"])
    assert clean.height + quarantine.height == counts["in"] == n_source
    assert set(clean["_row_id"]).isdisjoint(set(quarantine["_row_id"]))
    assert quarantine["_reasons"].list.len().min() >= 1  # type: ignore[operator]
    assert quarantine["_source_row"].n_unique() == quarantine.height
    for part in (m["inputs"][0], m["suite"], m["spec"]):
        assert len(part["sha256"]) == 64
    assert m["versions"]["great-expectations"].startswith("1.24")

    clean_bytes = Path(m["outputs"]["clean"]["path"]).read_bytes()
    skipped = sluice("run", "trips", "--partition", str(DAYS[0]), env=env)
    assert skipped.returncode == 0, skipped.stderr
    assert "skipped" in skipped.stdout
    second = sluice("run", "trips", "--partition", str(DAYS[0]), "--force", env=env)
    assert second.returncode == 0, second.stderr
    assert "skipped" not in second.stdout
    assert _manifest(root, DAYS[0])["run_id"] != m["run_id"]
    assert Path(m["outputs"]["clean"]["path"]).read_bytes() == clean_bytes
    for side in ("clean", "quarantine", "reports"):
        entries = sorted(
            p.name for p in (root / side / "trips").iterdir() if not p.name.startswith(("_", "."))
        )
        assert entries == [f"pickup_date={DAYS[0]}"], entries


def test_backfill_screens_each_partition(demo_env: tuple[Path, dict[str, str]]) -> None:
    root, env = demo_env
    first = sluice("run", "trips", "--partition", str(DAYS[0]), env=env)
    assert first.returncode == 0, first.stderr
    out = sluice("backfill", "trips", "--start", str(DAYS[0]), "--end", str(DAYS[1]), env=env)
    assert out.returncode == 0, out.stderr
    assert "1 screened, 1 skipped, 0 failed" in out.stdout  # the first day is already done
    assert f"[1/2] trips {DAYS[0]}: skipped (passed: " in out.stderr
    assert f"[2/2] trips {DAYS[1]}: passed: " in out.stderr
    for day in DAYS:
        assert _manifest(root, day)["conservation"]["holds"] is True


def test_misspelt_expectation_is_exit_2_with_position(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    suite = tiny_suite()
    suite["expectations"][1]["type"] = "expect_column_values_to_not_be_nul"
    spec = make_dataset({"2024-01-01": "id,amount,count,when,kind\na,1,1,,a\n"}, suite=suite)
    out = sluice("run", str(spec), "--partition", "2024-01-01", env=dict(os.environ))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "suite.json" in out.stderr
    assert "expect_column_values_to_not_be_nul" in out.stderr
    assert "expect_column_values_to_not_be_null" in out.stderr  # the suggestion
    assert not (tmp_path / "out").exists()


def test_unknown_spec_key_is_exit_2(make_dataset: SpecFactory) -> None:
    spec = make_dataset({"2024-01-01": "id\n"}, extra={"ouputs": {}})
    out = sluice("run", str(spec), "--partition", "2024-01-01", env=dict(os.environ))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "ouputs: unknown key" in out.stderr
    assert "tiny.yaml:" in out.stderr


def test_bad_partition_and_usage_are_exit_2(make_dataset: SpecFactory) -> None:
    spec = make_dataset({"2024-01-01": "id\n"})
    out = sluice("run", str(spec), "--partition", "2024-13-01", env=dict(os.environ))
    assert out.returncode == 2
    assert "YYYY-MM-DD" in out.stderr
    out = sluice("frobnicate", env=dict(os.environ))
    assert out.returncode == 2


@pytest.mark.slow  # the same path runs in-process in tests/robustness (quick)
def test_ragged_csv_rows_are_quarantined_not_a_crash(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    content = (
        "id,amount,count,when,kind\n"
        "a,1,1,2024-01-01 10:00:00,a\n"
        "b,2\n"
        "c,3,3,2024-01-01 10:00:00,b,surplus\n"
        "d,4,4,2024-01-01 10:00:00,b\n"
    )
    spec = make_dataset({"2024-01-01": content})
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    out = sluice("run", str(spec), "--partition", "2024-01-01", env=env)
    assert out.returncode == 0, out.stderr
    q = pl.read_parquet(tmp_path / "out" / "quarantine" / "date=2024-01-01" / "part-00000.parquet")
    assert q["_source_row"].to_list() == [1, 2]
    assert q["_reasons"].to_list() == [["_row|malformed"], ["_row|malformed"]]
    clean = pl.read_parquet(tmp_path / "out" / "clean" / "date=2024-01-01" / "part-00000.parquet")
    assert clean["id"].to_list() == ["a", "d"]
