"""``sluice review`` and ``sluice release`` through the real command, on a demo partition.

The partition is screened in-process (the test is about review and release); every review and
release runs the installed ``sluice`` in a subprocess.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from sluice.decide import add_checksums
from sluice.demo_data import generate
from sluice.pipeline import run_partition
from sluice.pipeline.manifest import Manifest
from tests.conftest import demo_datasets
from tests.test_e2e import sluice

pytestmark = pytest.mark.e2e
DAY = dt.date(2024, 3, 4)
VENDOR = "vendor_id|expect_column_values_to_be_in_set"
OUTLIER = "outlier|default"


def _json(path: str | Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], dict[str, Any]]:
    """A screened demo partition: its folder, the environment and its first manifest."""
    root = tmp_path_factory.mktemp("demo")
    generate(root, [DAY], rows_per_partition=3000, seed=11)
    datasets = demo_datasets(tmp_path_factory.mktemp("project"))
    env = {**os.environ, "SLUICE_DATASETS": str(datasets), "SLUICE_DEMO_DIR": str(root)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLUICE_DATASETS", str(datasets))
        mp.setenv("SLUICE_DEMO_DIR", str(root))
        summary = run_partition("trips", DAY)
    return root, env, _json(summary["manifest"])


def test_review_then_release_outliers_and_vendor_codes(
    demo: tuple[Path, dict[str, str], dict[str, Any]],
) -> None:
    root, env, first = demo
    clean_before = pl.read_parquet(first["outputs"]["clean"]["path"])
    review = root / "review.csv"
    made = sluice("review", "trips", "--partition", str(DAY), "--out", str(review), env=env)
    assert made.returncode == 0, made.stderr
    frame = pl.read_csv(review, infer_schema=False)
    assert frame.height == first["counts"]["quarantine"]

    outliers = frame.filter(pl.col("_reasons") == OUTLIER)["_row_id"].to_list()
    vendors = frame.filter(pl.col("_reasons") == VENDOR)["_row_id"].to_list()
    assert outliers, frame["_reasons"].value_counts()
    assert len(vendors) >= 2, frame["_reasons"].value_counts()
    still = vendors[0]  # fixed, but its distance is made impossible: stays with the new reason
    fixed = vendors[1:]
    decided = frame.with_columns(
        pl.when(pl.col("_row_id").is_in(outliers))
        .then(pl.lit("release"))
        .when(pl.col("_row_id").is_in(vendors))
        .then(pl.lit("fix"))
        .otherwise(None)
        .alias("decision"),
        pl.when(pl.col("_row_id").is_in(vendors))
        .then(pl.lit("1"))
        .otherwise(pl.col("vendor_id"))
        .alias("vendor_id"),
        pl.when(pl.col("_row_id") == still)
        .then(pl.lit("500.0"))
        .otherwise(pl.col("trip_distance"))
        .alias("trip_distance"),
        pl.lit("checked against the vendor's corrected file").alias("note"),
    )
    decisions = root / "decisions.csv"
    first_id = frame["_row_id"][0]
    decided.with_columns(
        pl.when(pl.col("_row_id") == first_id)
        .then(pl.lit("keep"))
        .otherwise(pl.col("decision"))
        .alias("decision")
    ).write_csv(decisions)
    args = ("release", "trips", "--partition", str(DAY), "--decisions", str(decisions))
    refused = sluice(*args, "--by", "alice", env=env)
    assert refused.returncode == 2, refused.stderr
    assert f"line 2 (_row_id {first_id}): column decision: 'keep'" in refused.stderr
    assert "Traceback" not in refused.stderr
    manifest = root / "reports" / "trips" / f"pickup_date={DAY}" / "manifest.json"
    assert _json(manifest)["run_id"] == first["run_id"], "nothing was committed"
    decided.write_csv(decisions)
    done = sluice(*args, "--by", "alice", "--json", env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["released"] == len(outliers)
    assert summary["fixed"] == len(fixed)
    assert summary["still_failing"] == 1

    after = _json(summary["manifest"])
    clean = pl.read_parquet(after["outputs"]["clean"]["path"])
    quarantine = pl.read_parquet(after["outputs"]["quarantine"]["path"])
    moved = {int(i) for i in [*outliers, *fixed]}
    gained = set(clean["_row_id"].to_list()) - set(clean_before["_row_id"].to_list())
    assert gained == moved
    assert not moved & set(quarantine["_row_id"].to_list())
    new_rows = clean.filter(pl.col("_row_id").is_in(list(moved)))
    assert set(new_rows["_released_by"].to_list()) == {"alice"}
    assert new_rows["_released_at"].null_count() == 0
    assert set(new_rows.filter(pl.col("_released_as") == "fix")["vendor_id"].to_list()) == {1}
    assert new_rows.filter(pl.col("_released_as") == "release")["_fixed_from"].null_count() == (
        len(outliers)
    )
    kept = quarantine.filter(pl.col("_row_id") == int(still)).to_dicts()
    assert kept[0]["_reasons"] == ["trip_distance|expect_column_values_to_be_between"]

    c, s = after["counts"], after["checksums"]
    assert after["conservation"]["holds"] is True
    assert c["in"] == c["clean"] + c["quarantine"] == first["counts"]["in"]
    assert s["in"] == add_checksums(s["clean"], s["quarantine"]) == first["checksums"]["in"]
    previous = Manifest.model_validate(_json(after["previous"]["path"]))
    assert previous.run_id == first["run_id"]
    audit = Path(after["release"]["audit_log"]).read_text().splitlines()
    assert len(audit) == len(outliers) + len(vendors)

    manifest_bytes = Path(summary["manifest"]).read_bytes()
    again = sluice(*args, "--by", "alice", env=env)
    assert again.returncode == 0, again.stderr
    assert "applied already" in again.stdout
    assert Path(summary["manifest"]).read_bytes() == manifest_bytes
    assert len(Path(after["release"]["audit_log"]).read_text().splitlines()) == len(audit)

    stale = root / "stale.csv"
    frame.with_columns(pl.lit("reject").alias("decision")).write_csv(stale)
    refused = sluice(
        "release",
        "trips",
        "--partition",
        str(DAY),
        "--decisions",
        str(stale),
        "--by",
        "bob",
        env=env,
    )
    assert refused.returncode == 2
    assert "another commit" in refused.stderr
    assert "Traceback" not in refused.stderr
