"""bench/scale: the generated partition, the printed table and the bounded/in-memory check."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from bench import scale

ROOT = Path(__file__).resolve().parents[2]
ROWS = 2000


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "SLUICE_BOUNDED")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "bench.scale", *args],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def checked(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    data = tmp_path_factory.mktemp("scale")
    return data, _bench("--rows", str(ROWS), "--data", str(data), "--check")


def test_the_cli_prints_one_row_per_command_with_the_stage_times(
    checked: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    data, got = checked
    assert got.returncode == 0, got.stdout + got.stderr
    rows = {
        cells[1]: cells
        for line in got.stdout.splitlines()
        if line.startswith("| 2,000 |")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    assert set(rows) == {"floor", "sluice bounded", "sluice in-memory"}
    for name, cells in rows.items():
        wall, cpu, rss = (float(c) for c in cells[2:5])
        assert min(wall, cpu) > 0, (name, cells)
        # the peak is sampled every 0.1 s: the floor's 2,000 rows take a quarter of a second,
        # and its last sample may come before polars is even loaded
        assert rss > (50 if name != "floor" else 0), (name, cells)
        assert cells[-2] in ("0", "1"), cells
    for name in ("sluice bounded", "sluice in-memory"):
        ingest, validate, screen, write, report = (float(c) for c in rows[name][6:11])
        assert min(ingest, validate, screen, write, report) >= 0
        # the bounded run spills its work files; an in-process in-memory run hands its frames
        # from stage to stage in memory and may leave next to nothing there
        spilled = float(rows[name][5])
        assert spilled > 0 if name == "sluice bounded" else spilled >= 0, (name, spilled)
        peaks = [float(p) for p in rows[name][-1].split(" / ")]
        assert len(peaks) == len(scale.STAGES), rows[name]
        assert peaks == sorted(peaks), "a high-water mark never falls"
        assert peaks[0] > 50, rows[name]
    assert float(rows["sluice bounded"][11]) > 1, "sluice costs more than the floor"
    for which in scale.COMPARED:
        assert re.search(rf"check 2,000 {which}: identical", got.stdout), got.stdout
    csv = data / f"rows-{ROWS}" / "raw" / "date=2024-01-01" / "trips.csv"
    assert pl.read_csv(csv).height == ROWS


def test_the_check_finds_a_row_that_differs(
    checked: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    data, _ = checked
    folder = data / f"rows-{ROWS}"
    assert all(v["only_bounded"] == 0 for v in scale.compare(folder).values())
    path = scale._table_path(folder, "bounded", "failures")
    assert path is not None
    kept = path.read_bytes()
    try:
        frame = pl.read_parquet(path)
        changed = frame.with_columns(
            pl.when(pl.int_range(pl.len()) == 0)
            .then(pl.lit("somewhere|else"))
            .otherwise(pl.col("reason"))
            .alias("reason")
        )
        changed.write_parquet(path)
        got = scale.compare(folder)
        assert got["failures"]["only_bounded"] == 1
        assert got["failures"]["only_in_memory"] == 1
        assert got["clean"]["only_bounded"] == 0
        frame.head(frame.height - 1).write_parquet(path)
        got = scale.compare(folder)
        assert got["failures"] == {
            "rows_bounded": frame.height - 1,
            "rows_in_memory": frame.height,
            "only_bounded": 0,
            "only_in_memory": 1,
        }
    finally:
        path.write_bytes(kept)


def test_the_partition_is_written_in_chunks_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scale, "CHUNK_ROWS", 300)
    csv = scale.partition_csv(tmp_path, 1000)
    frame = pl.read_csv(csv)
    assert frame.shape == (1000, 20)
    ids = frame.get_column("trip_id")
    assert ids.null_count() == 1, "one planted null id, at row 0 of the whole partition"
    assert ids.drop_nulls().str.contains(r"^T\d{9}$").all()
    assert frame.get_column("vendor_id")[997] == 3, "planted by position across chunks"
    stamp = csv.stat().st_mtime_ns
    assert scale.partition_csv(tmp_path, 1000).stat().st_mtime_ns == stamp
    assert not list(csv.parent.glob(".*.tmp"))


@pytest.mark.slow
def test_dask_runs_the_partition_on_a_local_cluster_with_the_bounded_runs_outputs(
    tmp_path: Path,
) -> None:
    got = _bench("--rows", str(ROWS), "--data", str(tmp_path), "--dask", "--check")
    assert got.returncode == 0, got.stdout + got.stderr
    row = next(line for line in got.stdout.splitlines() if "| sluice dask |" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[4]) > 150, "the workers' and scheduler's memory counts in the peak"
    assert "check 2,000 dask clean: identical" in got.stdout
    assert "check 2,000 dask quarantine: identical" in got.stdout
    manifest = tmp_path / f"rows-{ROWS}" / "out-dask" / "reports" / "date=2024-01-01"
    assert '"orchestrator": "dask"' in (manifest / "manifest.json").read_text()
    assert not list((tmp_path / f"rows-{ROWS}").glob("worker*/*.lock")), "workers stopped"
