"""The screen stage inside the pipeline: reference windows, saved models and explanations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from detectors.persist import save_model
from detectors.screen import fit_model
from detectors.spec import DetectorSpec
from sluice.core.errors import ConfigError
from sluice.pipeline import run_partition
from tests.conftest import SpecFactory

SCHEMA = {"id": "string", "x": "float", "y": "float"}
SUITE: dict[str, Any] = {
    "name": "xy",
    "expectations": [
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "x", "min_value": -50, "max_value": 50},
        }
    ],
}


def _day(seed: int, n: int = 400, extra: list[tuple[float, float]] = ()) -> str:  # type: ignore[assignment]
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    y = x * 2 + rng.normal(0, 0.1, n)
    rows = [f"r{seed}-{i},{a:.4f},{b:.4f}" for i, (a, b) in enumerate(zip(x, y, strict=True))]
    rows += [f"o{seed}-{i},{a},{b}" for i, (a, b) in enumerate(extra)]
    return "id,x,y\n" + "\n".join(rows) + "\n"


def _manifest(summary: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(summary["manifest"]).read_text())
    return data


def test_reference_window_fits_on_earlier_clean_rows_only(make_dataset: SpecFactory) -> None:
    files = {
        "2024-01-01": _day(1),
        # 99 breaks the x rule: quarantined on day 2, so it must never reach the reference
        "2024-01-02": _day(2, extra=[(99.0, 198.0)]),
        "2024-01-03": _day(3, extra=[(4.5, -9.0)]),  # plausible alone, impossible together
    }
    detectors = [
        {
            "name": "default",
            "detector": "knn",  # a broken relation; isolation forest ranks it below the extremes
            "features": ["x", "y"],
            "seed": 3,
            "severity": "error",
            "params": {"false_flag_rate": 0.01},  # 800 reference rows: too few to see 1 in 1,000
        }
    ]
    spec = str(
        make_dataset(
            files,
            schema=SCHEMA,
            suite=SUITE,
            detectors=detectors,
            extra={"reference": {"partitions": 2}, "keys": []},
        )
    )
    first = _manifest(run_partition(spec, "2024-01-01"))
    assert first["detectors"][0]["fit_mode"] == "batch"  # nothing earlier yet
    second = _manifest(run_partition(spec, "2024-01-02"))
    assert second["counts"]["quarantined_by_reason"]["x|expect_column_values_to_be_between"] == 1
    third = _manifest(run_partition(spec, "2024-01-03"))

    used = third["screen"]["reference"]
    assert [u["partition"] for u in used] == ["2024-01-02", "2024-01-01"]
    assert [u["sha256"] for u in used] == [
        second["outputs"]["clean"]["sha256"],
        first["outputs"]["clean"]["sha256"],
    ]
    model = third["detectors"][0]
    assert model["fit_mode"] == "reference"
    assert model["n_fit"] == first["counts"]["clean"] + second["counts"]["clean"]

    q = pl.read_parquet(third["outputs"]["quarantine"]["path"])
    outlier = q.filter(pl.col("_reasons").list.contains("outlier|default"))
    assert "o3-0" in outlier["id"].to_list()
    failure = next(
        f for f in outlier.filter(pl.col("id") == "o3-0")["_failures"][0] if f["rule"] == "default"
    )
    details = json.loads(failure["details"])
    assert details["score"] > details["threshold"]
    assert {t["column"] for t in details["top_features"]} <= {"x", "y"}
    assert details["top_features"], "a flagged row names the features that drove it"


def test_saved_model_is_used_and_a_wrong_hash_is_refused(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, 500)
    train = pl.DataFrame({"x": x, "y": x * 2 + rng.normal(0, 0.1, 500)})
    base = DetectorSpec(
        name="default", detector="knn", features=["x", "y"], seed=1, severity="error"
    )
    sha = save_model(fit_model(train, base), tmp_path / "models" / "xy.model")

    def spec_with(digest: str) -> str:
        detectors = [
            {
                "name": "default",
                "detector": "knn",
                "features": ["x", "y"],
                "seed": 1,
                "severity": "error",
                "fit": "model",
                "model": "models/xy.model",  # relative to the spec file's folder
                "model_sha256": digest,
            }
        ]
        return str(
            make_dataset(
                {"2024-01-01": _day(5, extra=[(4.5, -9.0)])},
                schema=SCHEMA,
                suite=SUITE,
                detectors=detectors,
                extra={"keys": []},
            )
        )

    manifest = _manifest(run_partition(spec_with(sha), "2024-01-01"))
    model = manifest["detectors"][0]
    assert model["fit_mode"] == "model"
    assert model["model_sha256"] == sha
    assert model["n_fit"] == 500
    q = pl.read_parquet(manifest["outputs"]["quarantine"]["path"])
    assert "o5-0" in q.filter(pl.col("_reasons").list.contains("outlier|default"))["id"].to_list()

    with pytest.raises(ConfigError, match="sha256"):
        run_partition(spec_with("0" * 64), "2024-01-01")


def test_contamination_in_a_spec_is_exit_2_naming_the_file_and_what_replaced_it(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    detectors = [{"name": "default", "features": ["x", "y"], "params": {"contamination": 0.01}}]
    spec = make_dataset({"2024-01-01": _day(1)}, schema=SCHEMA, suite=SUITE, detectors=detectors)
    exe = Path(sys.executable).with_name("sluice")
    done = subprocess.run(
        [str(exe), "run", str(spec), "--partition", "2024-01-01"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")},
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "tiny.yaml" in done.stderr
    assert "detectors[0].params.contamination" in done.stderr
    assert "false_flag_rate" in done.stderr
    assert not (tmp_path / "out").exists()
