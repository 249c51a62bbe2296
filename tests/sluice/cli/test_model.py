"""``sluice model``: the real command in a subprocess, then the model it saved used by a run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import yaml

from sluice.pipeline import run_partition
from tests.conftest import SpecFactory
from tests.sluice.test_pipeline_screen import SCHEMA, SUITE, _day, _manifest

DETECTOR = {
    "name": "pairs",
    "detector": "knn",
    "features": ["x", "y"],
    "seed": 2,
    "severity": "error",
}


def _sluice(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("sluice")
    return subprocess.run(
        [str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def _screened(make_dataset: SpecFactory) -> Path:
    files = {
        "2024-01-01": _day(1),
        "2024-01-02": _day(2, extra=[(99.0, 198.0)]),  # quarantined by the x rule
        "2024-01-04": _day(4, extra=[(4.5, -9.0)]),  # plausible alone, impossible together
    }
    spec = make_dataset(files, schema=SCHEMA, suite=SUITE, detectors=[DETECTOR], extra={"keys": []})
    for day in ("2024-01-01", "2024-01-02"):
        run_partition(str(spec), day)
    return spec


def _use_model(spec: Path, out: str) -> None:
    model = re.search(r"^ +model: (\S+)$", out, re.M)
    sha = re.search(r"model_sha256: ([0-9a-f]{64})", out)
    assert model, out
    assert sha, out
    data: dict[str, Any] = yaml.safe_load(spec.read_text())
    data["detectors"][0].update(fit="model", model=model.group(1), model_sha256=sha.group(1))
    spec.write_text(yaml.safe_dump(data))


def test_model_learns_from_verified_clean_output_and_a_run_uses_it(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    spec = _screened(make_dataset)
    done = _sluice("model", str(spec), "--start", "2024-01-01", "--end", "2024-01-03", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "left out: 2024-01-03" in done.stdout  # never screened
    path = tmp_path / "models" / "tiny-pairs-2024-01-03.sluice-model"
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("meta.json"))
    first = _manifest_of(spec, "2024-01-01")
    second = _manifest_of(spec, "2024-01-02")
    fitted_on = meta["provenance"]["fitted_on"]
    assert [f["partition"] for f in fitted_on] == ["2024-01-01", "2024-01-02"]
    assert [f["sha256"] for f in fitted_on] == [
        first["outputs"]["clean"]["sha256"],
        second["outputs"]["clean"]["sha256"],
    ]
    # only clean rows: the quarantined row of day 2 is not among the rows learnt from
    assert meta["n_fit"] == first["counts"]["clean"] + second["counts"]["clean"]

    _use_model(spec, done.stdout)
    third = _manifest(run_partition(str(spec), "2024-01-04"))
    record = third["detectors"][0]
    assert record["fit_mode"] == "model"
    assert record["model_provenance"]["fitted_on"] == fitted_on
    assert third["counts"]["quarantined_by_reason"]["outlier|pairs"] >= 1


def _manifest_of(spec: Path, day: str) -> dict[str, Any]:
    path = spec.parent / "out" / "reports" / f"date={day}" / "manifest.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_model_without_screened_partitions_is_a_clear_usage_error(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    spec = make_dataset({"2024-01-01": _day(1)}, schema=SCHEMA, suite=SUITE, detectors=[DETECTOR])
    done = _sluice("model", str(spec), "--start", "2024-01-01", cwd=tmp_path)
    assert done.returncode == 2
    assert "screen them first" in done.stderr
    assert "Traceback" not in done.stderr
    unknown = _sluice("model", str(spec), "--start", "2024-01-01", "--detector", "x", cwd=tmp_path)
    assert unknown.returncode == 2
    assert "it has: pairs" in unknown.stderr
