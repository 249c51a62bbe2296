"""``sluice review``, ``sluice release`` and ``sluice audit`` on Delta outputs, through the real
command, on a local Delta folder and on the local S3 server.

The partition is screened in-process (the test is about review and release); every review,
release and audit runs the installed ``sluice`` in a subprocess.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable

from sluice.decide import add_checksums
from sluice.demo_data import generate
from sluice.pipeline import run_partition
from sluice.pipeline.manifest import Manifest
from sluice.pipeline.release import release_partition, review_partition
from sluice.storage import KILL_AT_ENV, commit_metadata, open_output
from tests.s3 import S3Server
from tests.sluice.storage.conftest import DAYS, subprocess_env, trips_spec

pytestmark = pytest.mark.e2e
DAY = str(DAYS[0])
VENDOR = "vendor_id|expect_column_values_to_be_in_set"
OUTLIER = "outlier|default"


def _sluice(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("sluice"))
    return subprocess.run(
        [exe, *args],
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _json(path: str | Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return data


def _ids(manifest: dict[str, Any], side: str) -> set[int]:
    return set(open_output(manifest, side).read(["_row_id"])["_row_id"].to_list())


def _release_on_delta(spec: Path, root: Path) -> None:
    first = _json(run_partition(str(spec), DAY)["manifest"])
    assert first["tables"], "the dataset writes Delta tables"
    review = root / "review.csv"
    made = _sluice("review", str(spec), "--partition", DAY, "--out", str(review))
    assert made.returncode == 0, made.stderr[-2000:]
    frame = pl.read_csv(review, infer_schema=False)
    assert frame.height == first["counts"]["quarantine"]
    assert set(frame["_row_id"].cast(pl.UInt64).to_list()) == _ids(first, "quarantine")

    outliers = frame.filter(pl.col("_reasons") == OUTLIER)["_row_id"].to_list()
    vendors = frame.filter(pl.col("_reasons") == VENDOR)["_row_id"].to_list()
    assert len(outliers) >= 2, frame["_reasons"].value_counts()
    assert vendors, frame["_reasons"].value_counts()
    still, released, fixed = outliers[0], outliers[1:], vendors
    decided = frame.with_columns(
        pl.when(pl.col("_row_id").is_in(released))
        .then(pl.lit("release"))
        .when(pl.col("_row_id").is_in([still, *vendors]))
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
    decided.write_csv(decisions)
    args = ("release", str(spec), "--partition", DAY, "--decisions", str(decisions))
    done = _sluice(*args, "--by", "alice", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert (summary["released"], summary["fixed"], summary["still_failing"]) == (
        len(released),
        len(fixed),
        1,
    )

    after = _json(summary["manifest"])
    for side in ("clean", "quarantine", "failures"):
        old, new = first["tables"][side], after["tables"][side]
        assert new["uri"] == old["uri"]
        assert new["version"] > old["version"], side
        meta = commit_metadata(new["uri"], new["version"])
        assert meta["sluice.release"] == after["run_id"] == meta["sluice.run_id"]
        assert meta["sluice.side"] == side
    moved = {int(i) for i in [*released, *fixed]}
    assert _ids(after, "clean") - _ids(first, "clean") == moved
    assert _ids(first, "quarantine") - _ids(after, "quarantine") == moved
    clean = open_output(after, "clean").read()
    new_rows = clean.filter(pl.col("_row_id").is_in(list(moved)))
    assert set(new_rows["_released_by"].to_list()) == {"alice"}
    assert set(new_rows.filter(pl.col("_released_as") == "fix")["vendor_id"].to_list()) == {1}
    assert clean.filter(~pl.col("_row_id").is_in(list(moved)))["_released_as"].null_count() == (
        clean.height - len(moved)
    )
    kept = open_output(after, "quarantine").read().filter(pl.col("_row_id") == int(still))
    assert kept["_reasons"].to_list() == [["trip_distance|expect_column_values_to_be_between"]]
    failures = open_output(after, "failures").read()
    assert not set(failures.filter(pl.col("severity") == "error")["_row_id"].to_list()) & moved

    c, s = after["counts"], after["checksums"]
    assert after["conservation"]["holds"] is True
    assert after["conservation"]["read_back"]["clean"]["rows"] == c["clean"]
    assert c["in"] == c["clean"] + c["quarantine"] == first["counts"]["in"]
    assert s["in"] == add_checksums(s["clean"], s["quarantine"]) == first["checksums"]["in"]
    assert after["previous"]["run_id"] == first["run_id"]
    previous = Manifest.model_validate(_json(after["previous"]["path"])).dump()
    assert previous["run_id"] == first["run_id"]
    assert _ids(previous, "quarantine") == _ids(first, "quarantine"), "old versions still read"
    audit_log = Path(after["release"]["audit_log"])
    assert len(audit_log.read_text().splitlines()) == len(outliers) + len(vendors)
    assert "Released" in Path(after["outputs"]["report"]["path"]).read_text(encoding="utf-8")

    manifest_bytes = Path(summary["manifest"]).read_bytes()
    again = _sluice(*args, "--by", "alice")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "applied already" in again.stdout
    assert Path(summary["manifest"]).read_bytes() == manifest_bytes
    for side in ("clean", "quarantine", "failures"):
        table = after["tables"][side]
        assert DeltaTable(table["uri"]).version() == table["version"], "no new version"
    assert len(audit_log.read_text().splitlines()) == len(outliers) + len(vendors)

    stale = root / "stale.csv"
    frame.with_columns(pl.lit("reject").alias("decision")).write_csv(stale)
    refused = _sluice(
        "release", str(spec), "--partition", DAY, "--decisions", str(stale), "--by", "bob"
    )
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "made from another commit" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert Path(summary["manifest"]).read_bytes() == manifest_bytes

    row = str(released[0])
    audited = _sluice("audit", str(spec), "--row-id", row, "--json")
    assert audited.returncode == 0, audited.stderr[-2000:]
    answer = json.loads(audited.stdout)
    assert answer["where"] == "clean"
    assert "Delta version" in answer["file"]
    assert [(d["decision"], d["outcome"], d["by"]) for d in answer["decisions"]] == [
        ("release", "released", "alice")
    ]


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo day large enough to hold several outliers and wrong vendor codes."""
    folder = tmp_path_factory.mktemp("release-raw")
    generate(folder, [DAYS[0]], rows_per_partition=3000, seed=11)
    return folder


@pytest.mark.slow
def test_release_on_a_local_delta_folder(raw: Path, tmp_path: Path) -> None:
    spec = trips_spec(tmp_path, raw, name="trips_release", delta=True)
    _release_on_delta(spec, tmp_path)


@pytest.mark.slow
def test_release_on_delta_tables_in_s3(s3_env: S3Server, raw: Path, tmp_path: Path) -> None:
    spec = trips_spec(
        tmp_path,
        raw,
        name="trips_release_s3",
        delta=True,
        tables=f"s3://{s3_env.bucket}/release",
    )
    _release_on_delta(spec, tmp_path)


def test_a_release_is_a_new_version_of_each_table(demo_raw: Path, tmp_path: Path) -> None:
    spec = trips_spec(tmp_path, demo_raw, name="trips_release_quick", delta=True)
    first = _json(run_partition(str(spec), DAY)["manifest"])
    review, _ = review_partition(str(spec), DAY, tmp_path / "review.parquet")
    frame = pl.read_parquet(review)
    outliers = frame.filter(pl.col("_reasons") == OUTLIER)["_row_id"].to_list()
    assert outliers, frame["_reasons"].value_counts()
    decided = frame.with_columns(
        pl.when(pl.col("_row_id").is_in(outliers))
        .then(pl.lit("release"))
        .otherwise(pl.lit("reject"))
        .alias("decision")
    )
    decided.write_parquet(review)
    summary = release_partition(str(spec), DAY, review, "carol")
    after = _json(summary["manifest"])
    assert [after["tables"][s]["version"] for s in ("clean", "quarantine", "failures")] == [
        first["tables"][s]["version"] + 1 for s in ("clean", "quarantine", "failures")
    ]
    assert _ids(after, "clean") == _ids(first, "clean") | set(outliers)
    assert _ids(after, "quarantine") == _ids(first, "quarantine") - set(outliers)
    assert after["conservation"]["holds"] is True
    assert after["release"]["rejected"]
    assert after["release"]["released"] == outliers
    again = release_partition(str(spec), DAY, review, "carol")
    assert again["applied_already"] is True
    assert (
        DeltaTable(after["tables"]["clean"]["uri"]).version() == after["tables"]["clean"]["version"]
    )


@pytest.mark.slow
def test_a_release_killed_before_its_manifest_is_not_seen_and_is_applied_again(
    demo_raw: Path, tmp_path: Path
) -> None:
    spec = trips_spec(tmp_path, demo_raw, name="trips_release_kill", delta=True)
    summary = run_partition(str(spec), DAY)
    first = _json(summary["manifest"])
    before = Path(summary["manifest"]).read_bytes()
    review, _ = review_partition(str(spec), DAY, tmp_path / "review.parquet")
    pl.read_parquet(review).with_columns(pl.lit("reject").alias("decision")).write_parquet(review)
    args = ("release", str(spec), "--partition", DAY, "--decisions", str(review), "--by", "dan")
    killed = _sluice(*args, env={KILL_AT_ENV: "manifest"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    clean = first["tables"]["clean"]
    assert DeltaTable(clean["uri"]).version() > clean["version"], "the tables were written"
    assert Path(summary["manifest"]).read_bytes() == before
    assert _ids(first, "quarantine") == set(pl.read_parquet(review)["_row_id"].to_list())

    done = _sluice(*args, "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    after = _json(json.loads(done.stdout)["manifest"])
    assert after["previous"]["run_id"] == first["run_id"]
    assert after["tables"]["clean"]["version"] == DeltaTable(clean["uri"]).version()
    assert _ids(after, "quarantine") == _ids(first, "quarantine")
    log = Path(after["release"]["audit_log"]).read_text(encoding="utf-8").splitlines()
    assert len(log) == first["counts"]["quarantine"], "one entry per decision, once"
