"""bench/report_scale: the report stage alone, in memory and bounded, through its CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_both_modes_build_the_same_report_of_a_small_partition(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SLUICE_BOUNDED"}
    env["PYTHONPATH"] = str(ROOT)
    got = subprocess.run(
        [sys.executable, "-m", "bench.report_scale", "--rows", "3000", "--data", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert got.returncode == 0, got.stdout + got.stderr
    rows = [line for line in got.stdout.splitlines() if line.startswith("| 3,000 |")]
    assert [r.split("|")[2].strip() for r in rows] == ["in-memory", "bounded"]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[4]) > 50, row
        assert cells[5] == "0", row
    assert "3,000: metrics that differ: none" in got.stdout, got.stdout
    assert (tmp_path / "rows-3000" / "report" / "metrics-bounded.parquet").exists()
