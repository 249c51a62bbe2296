"""bench/bounded_io: the bounded ingest and write stages measured alone, each in its process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ingest_and_write_are_measured_with_their_cpu_and_peak(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "SLUICE_BOUNDED")}
    env["PYTHONPATH"] = str(ROOT)
    got = subprocess.run(
        [sys.executable, "-m", "bench.bounded_io", "--rows", "2000", "--data", str(tmp_path)],
        cwd=ROOT,
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert got.returncode == 0, got.stderr
    result = json.loads(got.stdout.strip().splitlines()[-1])
    assert result["rows"] == 2000
    assert "failed" not in result
    for stage in ("ingest", "write"):
        measured = result[stage]
        assert measured["code"] == 0
        line = measured["stages"][stage]
        assert line["s"] > 0
        assert line["cpu_s"] > 0
        assert 50 < line["peak_mb"] <= measured["tree_peak_mb"] + 1
    assert "report" in result["write"]["stages"]
    assert (tmp_path / "rows-2000" / "raw").is_dir()
