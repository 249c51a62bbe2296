"""Delta outputs on the local S3 server: same rows as POSIX, versions, kills and concurrency."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from sluice.config import load_spec
from sluice.core.frame import ROW_ID
from sluice.decide import add_checksums, checksum
from sluice.pipeline import run_partition
from sluice.storage import KILL_AT_ENV, commit_metadata, open_output, slice_of
from tests.s3 import S3Server
from tests.sluice.storage.conftest import DAYS, subprocess_env, trips_spec

KEY = "pickup_date"
RUN = (
    "import json, sys; from sluice.pipeline import run_partition; "
    "print(json.dumps(run_partition(sys.argv[1], sys.argv[2])))"
)


def _manifest(summary: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(Path(summary["manifest"]).read_text(encoding="utf-8"))
    return doc


def _at_manifest(manifest: dict[str, Any], side: str) -> pl.DataFrame:
    """A table read by polars' own scan_delta at the manifest's version, one partition."""
    t = manifest["tables"][side]
    frame = (
        pl.scan_delta(t["uri"], version=t["version"])
        .filter(pl.col(KEY) == t["partition_value"])
        .drop(KEY)
        .collect()
    )
    return frame.with_columns(pl.col(ROW_ID).cast(pl.UInt64))


def _run(spec: Path, day: object, extra: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", RUN, str(spec), str(day)],
        env=subprocess_env(extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_delta_on_s3_reads_the_rows_posix_writes(
    s3_env: S3Server, demo_raw: Path, tmp_path: Path
) -> None:
    posix = trips_spec(tmp_path / "posix", demo_raw, name="trips_posix")
    delta = trips_spec(
        tmp_path / "delta",
        demo_raw,
        name="trips_delta",
        delta=True,
        tables=f"s3://{s3_env.bucket}/{tmp_path.name}",
    )
    for day in DAYS:
        want = run_partition(str(posix), day)
        got = run_partition(str(delta), day)
        assert got["counts"] == want["counts"]
        assert got["status"] == want["status"]
        m_posix, m_delta = _manifest(want), _manifest(got)
        assert set(m_delta["tables"]) == {"clean", "quarantine", "failures"}
        assert "clean" not in m_delta["outputs"]
        for side in ("clean", "quarantine"):
            expected = pl.read_parquet(m_posix["outputs"][side]["path"]).sort(ROW_ID)
            by_polars = _at_manifest(m_delta, side).sort(ROW_ID)
            assert by_polars.select(expected.columns).equals(expected)
            t = m_delta["tables"][side]
            arrow = slice_of(t, None).table().to_pyarrow_dataset()
            con = duckdb.connect()
            con.register("t", arrow)
            table = con.execute(
                f"select * exclude ({KEY}) from t where {KEY} = ? order by {ROW_ID}",
                [t["partition_value"]],
            ).to_arrow_table()
            by_duckdb = pl.DataFrame(pl.from_arrow(table)).with_columns(
                pl.col(ROW_ID).cast(pl.UInt64)
            )
            assert by_duckdb.select(expected.columns).equals(expected, null_equal=True)
        meta = commit_metadata(
            m_delta["tables"]["quarantine"]["uri"], m_delta["tables"]["quarantine"]["version"]
        )
        assert meta["sluice.run_id"] == m_delta["run_id"]
        assert meta["sluice.suite_sha256"] == m_delta["suite"]["sha256"]
        assert meta["sluice.spec_sha256"] == m_delta["spec"]["sha256"]
        assert meta["sluice.partition"] == f"{KEY}={day}"
        assert json.loads(meta["sluice.rules"]) == m_delta["reasons"]


def test_a_rerun_makes_a_new_version_and_the_manifest_points_at_it(
    s3_env: S3Server, demo_raw: Path, tmp_path: Path
) -> None:
    spec = trips_spec(
        tmp_path, demo_raw, name="trips_rerun", delta=True, tables=f"s3://{s3_env.bucket}/rerun"
    )
    first = _manifest(run_partition(str(spec), DAYS[0]))
    run_partition(str(spec), DAYS[1])
    again = _manifest(run_partition(str(spec), DAYS[0]))
    for side in ("clean", "quarantine", "failures"):
        assert again["tables"][side]["version"] > first["tables"][side]["version"]
    old, new = _at_manifest(first, "clean"), _at_manifest(again, "clean")
    assert old.height == new.height == again["counts"]["clean"]
    uri = again["tables"]["clean"]["uri"]
    latest = pl.scan_delta(uri).filter(pl.col(KEY) == str(DAYS[0])).collect()
    assert latest.height == again["counts"]["clean"]
    other = pl.scan_delta(uri).filter(pl.col(KEY) == str(DAYS[1])).collect()
    assert other.height > 0


def _ids(manifest: dict[str, Any]) -> tuple[int, str]:
    ids = pl.concat(
        [open_output(manifest, s).read([ROW_ID])[ROW_ID] for s in ("clean", "quarantine")]
    )
    return len(ids), checksum(ids)


@pytest.mark.parametrize(
    "step",
    [
        "clean",
        pytest.param("quarantine", marks=pytest.mark.slow),
        pytest.param("failures", marks=pytest.mark.slow),
        "manifest",
    ],
)
def test_a_kill_at_any_step_leaves_the_old_partition_for_readers(
    s3_env: S3Server, demo_raw: Path, tmp_path: Path, step: str
) -> None:
    raw = tmp_path / "raw"
    src = demo_raw / "raw" / f"{KEY}={DAYS[0]}"
    (raw / "raw" / f"{KEY}={DAYS[0]}").mkdir(parents=True)
    csv = next(src.glob("*.csv"))
    target = raw / "raw" / f"{KEY}={DAYS[0]}" / csv.name
    target.write_bytes(csv.read_bytes())
    spec = trips_spec(
        tmp_path, raw, name="trips_kill", delta=True, tables=f"s3://{s3_env.bucket}/kill-{step}"
    )
    old = _manifest(run_partition(str(spec), DAYS[0]))
    lines = target.read_bytes().splitlines(keepends=True)
    target.write_bytes(b"".join(lines[: len(lines) // 2]))
    proc = _run(spec, DAYS[0], {KILL_AT_ENV: step})
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == -9, err[-2000:]
    manifest_path = Path(old["outputs"]["failures"]["path"]).parent / "manifest.json"
    seen = json.loads(manifest_path.read_text(encoding="utf-8"))
    assert seen["run_id"] == old["run_id"]
    assert _ids(seen) == (old["counts"]["in"], old["checksums"]["in"])
    uri = old["tables"]["clean"]["uri"]
    latest = pl.scan_delta(uri).filter(pl.col(KEY) == str(DAYS[0])).select(ROW_ID).collect()
    assert latest.height != old["counts"]["clean"]
    new = _manifest(run_partition(str(spec), DAYS[0]))
    assert new["counts"]["in"] == len(lines) // 2 - 1
    assert _ids(new) == (new["counts"]["in"], new["checksums"]["in"])


def test_two_runs_of_one_partition_take_turns(
    s3_env: S3Server, demo_raw: Path, tmp_path: Path
) -> None:
    spec = trips_spec(
        tmp_path, demo_raw, name="trips_twice", delta=True, tables=f"s3://{s3_env.bucket}/twice"
    )
    procs = [_run(spec, DAYS[0]) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
    runs = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    final = _manifest(runs[0])
    n, total = _ids(final)
    assert n == final["counts"]["in"] == final["counts"]["clean"] + final["counts"]["quarantine"]
    assert (
        total
        == final["checksums"]["in"]
        == add_checksums(final["checksums"]["clean"], final["checksums"]["quarantine"])
    )
    clean = final["tables"]["clean"]
    history = commit_metadata(clean["uri"], clean["version"])
    assert history["sluice.run_id"] == final["run_id"]
    assert clean["version"] == 1
    latest = pl.scan_delta(clean["uri"]).filter(pl.col(KEY) == str(DAYS[0])).collect()
    assert latest.height == final["counts"]["clean"]


@pytest.mark.slow
def test_runs_of_two_partitions_at_once_share_the_tables(
    s3_env: S3Server, demo_raw: Path, tmp_path: Path
) -> None:
    spec = trips_spec(
        tmp_path, demo_raw, name="trips_both", delta=True, tables=f"s3://{s3_env.bucket}/both"
    )
    run_partition(str(spec), DAYS[0])
    procs = [_run(spec, day) for day in DAYS]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
    for o, _ in outs:
        m = _manifest(json.loads(o.strip().splitlines()[-1]))
        assert _ids(m) == (m["counts"]["in"], m["checksums"]["in"])
    loaded = load_spec(spec)
    versions = pl.scan_delta(loaded.table_uri("clean")).collect()
    assert versions[KEY].n_unique() == 2


@pytest.mark.slow
def test_sluice_run_writes_delta_on_s3_and_skips_it_when_done(
    s3_env: S3Server, demo_raw: Path, tmp_path: Path
) -> None:
    spec = trips_spec(
        tmp_path, demo_raw, name="trips_cli", delta=True, tables=f"s3://{s3_env.bucket}/cli"
    )
    exe = str(Path(sys.executable).with_name("sluice"))
    args = [exe, "run", str(spec), "--partition", str(DAYS[0]), "--json"]
    first = subprocess.run(
        args, env=subprocess_env(), capture_output=True, text=True, timeout=300, check=False
    )
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads(first.stdout)
    manifest = _manifest(summary)
    assert _ids(manifest) == (manifest["counts"]["in"], manifest["checksums"]["in"])
    again = subprocess.run(
        args, env=subprocess_env(), capture_output=True, text=True, timeout=300, check=False
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already screened" in json.loads(again.stdout)["skipped"]
