"""Sources on an S3-compatible server (moto on 127.0.0.1), read by the real ``sluice`` command
through s3fs: keys no local path would hold, folder markers, listings longer than one page, an
object changed or removed after its run."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import polars as pl
import pytest
import yaml

from tests.s3 import KEY_ID, REGION, SECRET, S3Server

SLUICE = str(Path(sys.executable).with_name("sluice"))
DAY = "2024-01-01"
SUITE = {
    "name": "amounts",
    "expectations": [
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "amount", "min_value": 0, "max_value": 100},
        }
    ],
}
# keys a local folder would rarely hold: spaces, non-ASCII, a percent escape, glob and URL
# characters; each is one object, read once
ODD_KEYS = ["a b é.csv", "x%20y+z.csv", "a#1.csv", "q?x=1.csv", "[ab].csv", "st*r.csv"]


def _client(server: S3Server) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        region_name=REGION,
    )


def _csv(tag: str, rows: int, bad: int = 0) -> bytes:
    """``rows`` rows of ids tagged ``tag``, the last ``bad`` with an amount out of range."""
    lines = [f"{tag}-{i},{500 if i >= rows - bad else i}.5" for i in range(rows)]
    return ("id,amount\n" + "".join(f"{line}\n" for line in lines)).encode()


def _spec(folder: Path, source: str, **extra: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "suite.json").write_text(json.dumps(SUITE), encoding="utf-8")
    spec = {
        "name": folder.name.replace("-", "_"),
        "source": {"path": source, "format": "csv"},
        "partition": {"key": "date", "kind": "day"},
        "schema": {"id": "string", "amount": "float"},
        "suite": "suite.json",
        "outputs": {side: f"out/{side}" for side in ("clean", "quarantine", "reports")},
        **extra,
    }
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def _sluice(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUST_BACKTRACE": "0"}
    return subprocess.run(
        [SLUICE, *args], capture_output=True, text=True, timeout=600, env=env, check=False
    )


def _manifest(folder: Path) -> dict[str, Any]:
    path = folder / "out" / "reports" / f"date={DAY}" / "manifest.json"
    manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return manifest


def _rows_written(folder: Path) -> pl.DataFrame:
    """Every row in the committed clean and quarantine files: its source object and row."""
    sides = [
        pl.read_parquet(folder / "out" / side / f"date={DAY}" / "*.parquet").select(
            "_source_file", "_source_row", "id"
        )
        for side in ("clean", "quarantine")
    ]
    return pl.concat(sides)


def test_objects_with_any_key_are_read_once_each_and_every_row_is_kept(
    s3_env: S3Server, tmp_path: Path
) -> None:
    client, bucket = _client(s3_env), s3_env.bucket
    prefix = f"{tmp_path.name}/raw/date={DAY}/"
    sent = {key: _csv(f"k{i}", 5, bad=1) for i, key in enumerate(ODD_KEYS)}
    sent["header_only.csv"] = b"id,amount\n"
    for key, body in sent.items():
        client.put_object(Bucket=bucket, Key=prefix + key, Body=body)
    client.put_object(Bucket=bucket, Key=prefix, Body=b"")  # a console's folder marker
    client.put_object(Bucket=bucket, Key=prefix + "notes.txt", Body=b"not a source")
    folder = tmp_path / "odd-keys"
    spec = _spec(folder, f"s3://{bucket}/{tmp_path.name}/raw/date={{date}}/*.csv")

    done = _sluice("run", str(spec), "--partition", DAY)

    assert done.returncode == 0, done.stdout + done.stderr
    manifest = _manifest(folder)
    inputs = {i["path"]: i for i in manifest["inputs"]}
    assert set(inputs) == {f"s3://{bucket}/{prefix}{key}" for key in sent}
    for key, body in sent.items():
        assert inputs[f"s3://{bucket}/{prefix}{key}"]["sha256"] == hashlib.sha256(body).hexdigest()
    assert manifest["counts"] == {
        **manifest["counts"],
        "in": 5 * len(ODD_KEYS),
        "clean": 4 * len(ODD_KEYS),
        "quarantine": len(ODD_KEYS),
    }
    written = _rows_written(folder)
    # every row of every object once, from the object it came from
    assert written.height == written.select("_source_file", "_source_row").n_unique()
    assert sorted(written["id"]) == sorted(
        f"k{i}-{r}" for i in range(len(ODD_KEYS)) for r in range(5)
    )
    by_object = dict(written.group_by("_source_file").len().iter_rows())
    assert by_object == {f"s3://{bucket}/{prefix}{key}": 5 for key in ODD_KEYS}


@pytest.mark.timeout(300)
def test_a_listing_longer_than_one_page_is_read_whole(s3_env: S3Server, tmp_path: Path) -> None:
    """S3 lists at most 1,000 keys a request: a partition of 1,001 objects is every one of them."""
    client, bucket = _client(s3_env), s3_env.bucket
    prefix = f"{tmp_path.name}/raw/date={DAY}/"
    for i in range(1001):
        client.put_object(Bucket=bucket, Key=f"{prefix}part-{i:04d}.csv", Body=_csv(f"p{i}", 1))
    folder = tmp_path / "many"
    spec = _spec(folder, f"s3://{bucket}/{tmp_path.name}/raw/date={{date}}/*.csv")

    done = _sluice("run", str(spec), "--partition", DAY)

    assert done.returncode == 0, done.stdout + done.stderr
    manifest = _manifest(folder)
    assert len(manifest["inputs"]) == 1001
    assert manifest["counts"]["in"] == manifest["counts"]["clean"] == 1001
    assert _rows_written(folder)["_source_file"].n_unique() == 1001


def test_a_changed_object_is_screened_again_and_replay_reads_the_kept_copy(
    s3_env: S3Server, tmp_path: Path
) -> None:
    client, bucket = _client(s3_env), s3_env.bucket
    key = f"{tmp_path.name}/raw/date={DAY}/trips.csv"
    client.put_object(Bucket=bucket, Key=key, Body=_csv("t", 20))
    folder = tmp_path / "changes"
    spec = _spec(
        folder, f"s3://{bucket}/{tmp_path.name}/raw/date={{date}}/*.csv", archive_inputs=True
    )
    manifest = folder / "out" / "reports" / f"date={DAY}" / "manifest.json"

    first = _sluice("run", str(spec), "--partition", DAY)
    again = _sluice("run", str(spec), "--partition", DAY)
    client.put_object(Bucket=bucket, Key=key, Body=_csv("t", 21, bad=1))
    changed = _sluice("run", str(spec), "--partition", DAY)
    client.delete_object(Bucket=bucket, Key=key)
    replayed = _sluice("replay", str(manifest))

    assert first.returncode == 0, first.stdout + first.stderr
    assert "skipped" in again.stdout, again.stdout + again.stderr
    assert changed.returncode == 0, changed.stdout + changed.stderr
    counts = _manifest(folder)["counts"]
    assert (counts["in"], counts["clean"], counts["quarantine"]) == (21, 20, 1)
    # the object is gone: the replay reads the copy the run kept, and gets the same files
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    head, *lines = replayed.stdout.splitlines()
    assert head.endswith(": identical"), replayed.stdout
    assert f"s3://{bucket}/{key}: from the archive" in replayed.stdout
    assert {line.split()[0] for line in lines if line.split()[-3:-2] == ["identical"]} == {
        "clean",
        "quarantine",
        "failures",
    }, replayed.stdout


def _formats() -> dict[str, bytes]:
    """One partition's file in each format: quoted newlines and commas, nulls, rows out of
    range, and what a feed sends wrong (a ragged CSV record, NDJSON that is not an object)."""
    n = 1200
    frame = pl.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "amount": [None if i % 97 == 0 else (i % 150) + 0.5 for i in range(n)],
            "note": [
                'a "quote", a comma\nand a line' if i % 50 == 0 else "plain" for i in range(n)
            ],
        }
    )
    parquet = io.BytesIO()
    frame.write_parquet(parquet, row_group_size=100)
    return {
        "csv": frame.write_csv().encode() + b"r_ragged,1.5,a,extra\n",
        "ndjson": frame.write_ndjson().encode() + b'{"id": "r_x", "amount": "abc"}\nnot json\n',
        "parquet": parquet.getvalue(),
    }


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "parquet"])
def test_an_object_in_bounded_batches_gives_the_rows_its_local_copy_gives(
    fmt: str, s3_env: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bounded runs read an object by byte ranges (CSV and NDJSON pieces, Parquet row groups)."""
    body = _formats()[fmt]
    key = f"{tmp_path.name}/raw/date={DAY}/data.{fmt}"
    _client(s3_env).put_object(Bucket=s3_env.bucket, Key=key, Body=body)
    local = tmp_path / "raw" / f"date={DAY}" / f"data.{fmt}"
    local.parent.mkdir(parents=True)
    local.write_bytes(body)
    monkeypatch.setenv("SLUICE_BOUNDED", "1")
    written = {}
    for where, source in (
        ("s3", f"s3://{s3_env.bucket}/{tmp_path.name}/raw/date={{date}}/*.{fmt}"),
        ("local", f"{tmp_path}/raw/date={{date}}/*.{fmt}"),
    ):
        folder = tmp_path / where
        spec = _spec(folder, source, keys=["id"])
        text = spec.read_text(encoding="utf-8").replace("format: csv", f"format: {fmt}")
        spec.write_text(text.replace("  amount: float\n", "  amount: float\n  note: string\n"))
        done = _sluice("run", str(spec), "--partition", DAY)
        assert done.returncode == 0, done.stdout + done.stderr
        assert _manifest(folder)["counts"]["in"] >= 1200
        written[where] = {
            side: pl.read_parquet(folder / "out" / side / f"date={DAY}" / "*.parquet")
            .drop("_source_file", "_row_id")
            .sort("_source_row")
            for side in ("clean", "quarantine")
        }
    for side in ("clean", "quarantine"):
        assert written["s3"][side].equals(written["local"][side], null_equal=True), side
    assert written["s3"]["quarantine"].height > 0
