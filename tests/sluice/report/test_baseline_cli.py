"""``sluice baseline`` and a saved model's training partitions as a baseline, through the real
command: four demo days are screened, ``sluice model`` fits the detector on them, the spec then
uses the model and monitors against it and a saved baseline, and a fifth day's report says
what it was compared with."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sluice.demo_data import generate
from sluice.pipeline import run_partition
from tests.sluice.report.conftest import trips_spec

DAYS = [dt.date(2024, 3, 4) + dt.timedelta(days=i) for i in range(5)]


def sluice(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``sluice`` command, run to its end."""
    exe = str(Path(sys.executable).with_name("sluice"))
    return subprocess.run([exe, *args], check=False, capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_model_and_saved_baselines_through_the_cli(tmp_path: Path) -> None:
    spec = trips_spec(tmp_path)
    for day in DAYS:
        generate(tmp_path, [day], rows_per_partition=400, seed=11)
    for day in DAYS[:4]:
        run_partition(str(spec), day)

    model = tmp_path / "models" / "trips.sluice-model"
    fitted = sluice("model", str(spec), "--start", str(DAYS[0]), "--end", str(DAYS[3]),
                    "--out", str(model))  # fmt: skip
    assert fitted.returncode == 0, fitted.stderr
    (sha,) = re.findall(r"(?m)^sha256 ([0-9a-f]{64})$", fitted.stdout)

    saved = sluice("baseline", str(spec), "--name", "week", "--start", str(DAYS[0]),
                   "--end", str(DAYS[2]))  # fmt: skip
    assert saved.returncode == 0, saved.stderr
    assert "saved baseline week v1 of trips" in saved.stdout
    assert "monitor:\n      baselines: [week]" in saved.stdout
    again = sluice("baseline", str(spec), "--name", "week", "--model", str(model))
    assert again.returncode == 0, again.stderr
    assert "saved baseline week v2" in again.stdout
    assert "from 4 training partitions of trips.sluice-model" in again.stdout

    text = spec.read_text().replace(
        "    seed: 7\n",
        f"    seed: 7\n    fit: model\n    model: {model}\n    model_sha256: {sha}\n",
    )
    spec.write_text(text + "monitor:\n  baselines: [week, {model: default}]\n")
    summary = run_partition(str(spec), DAYS[4])
    manifest = json.loads(Path(summary["manifest"]).read_text())
    week, trained = manifest["findings"]["baselines"]
    assert week["baseline"] == "week"
    assert week["version"] == 2
    assert week["reference"].startswith(
        "baseline week v2 (the training partitions of detector default's saved model "
        "trips.sluice-model): 4 partitions, 2024-03-04 to 2024-03-07"
    )
    assert trained["reference"].startswith(
        "the training partitions of detector default's saved model trips.sluice-model: "
        "4 partitions, 2024-03-04 to 2024-03-07, 1 to 4 days before this partition"
    )
    html = Path(manifest["outputs"]["report"]["path"]).read_text()
    assert "Reference: the training partitions of detector default&#39;s saved model" in html

    nothing = sluice("baseline", "acknowledge", str(spec), "--name", "week", "--by", "ana",
                     "--reason", "known")  # fmt: skip
    if week["drifted"]:
        assert nothing.returncode == 0, nothing.stderr
    else:
        assert nothing.returncode == 2
        assert "nothing to acknowledge: no column drifted against baseline 'week'" in (
            nothing.stderr
        )
    acked = sluice("baseline", "acknowledge", str(spec), "--name", "week", "--by", "ana",
                   "--reason", "tariff change", "--columns", "fare_amount")  # fmt: skip
    assert acked.returncode == 0, acked.stderr
    listed = sluice("baseline", "list", str(spec))
    assert listed.returncode == 0, listed.stderr
    assert "week  v2 (versions: v1, v2)" in listed.stdout
    assert "by ana: tariff change (columns: fare_amount" in listed.stdout
    assert "monitored by the spec: week, model default" in listed.stdout

    bad = sluice("baseline", "acknowledge", str(spec), "--name", "week", "--by", "ana",
                 "--reason", "x", "--columns", "nope")  # fmt: skip
    assert bad.returncode == 2
    assert "--columns" in bad.stderr
    assert "nope" in bad.stderr
    empty = sluice("baseline", str(spec), "--name", "later", "--start", "2030-01-01")
    assert empty.returncode == 2
    assert "no partition of trips from 2030-01-01 to 2030-01-01" in empty.stderr
    usage = sluice("baseline", str(spec), "extra")
    assert usage.returncode == 2
    assert "usage: sluice baseline" in usage.stderr
