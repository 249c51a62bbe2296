"""The Delta backend on local disk, and the spec keys that choose and configure it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import polars as pl
import pytest

from sluice.config import load_spec
from sluice.core.errors import ConfigError
from sluice.decide import checksum
from sluice.preflight import check_outputs
from sluice.storage import DeltaTables, TableRows, open_output, slice_of
from sluice.write import NotCommitted, OutputError, load_partition
from tests.sluice.storage.conftest import ROOT, subprocess_env, trips_spec

BIG = 2**64 - 5


def _frame(ids: list[int]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "_row_id": pl.Series(ids, dtype=pl.UInt64),
            "x": pl.Series([float(i % 7) for i in range(len(ids))], dtype=pl.Float64),
            "gone": pl.Series([None] * len(ids), dtype=pl.Null),
            "small": pl.Series([1] * len(ids), dtype=pl.UInt32),
        }
    )


def test_a_partition_round_trips_with_row_ids_above_two_to_the_63(tmp_path: Path) -> None:
    uri = str(tmp_path / "clean")
    day1 = DeltaTables({"clean": uri}, column="day", value="2024-01-01", run_id="r1")
    day2 = DeltaTables({"clean": uri}, column="day", value="2024-01-02", run_id="r2")
    w1 = day1.write("clean", _frame([1, BIG, 3]), {"sluice.dataset": "d"})
    w2 = day2.write("clean", _frame([4, 5]), {"sluice.dataset": "d"})
    assert (w1.entry["version"], w2.entry["version"]) == (0, 1)
    ids = day1.read_back(w1, "_row_id")
    assert ids.dtype == pl.UInt64
    assert sorted(ids.to_list()) == [1, 3, BIG]
    manifest = {"tables": {"clean": w1.entry}}
    got = open_output(manifest, "clean").read()
    assert sorted(got["_row_id"].to_list()) == [1, 3, BIG]
    assert "day" not in got.columns
    assert open_output({"tables": {"clean": w2.entry}}, "clean").read().height == 2


def test_a_rewritten_partition_is_read_at_the_manifests_version(tmp_path: Path) -> None:
    uri = str(tmp_path / "clean")
    first = DeltaTables({"clean": uri}, column="day", value="d1", run_id="r1")
    again = DeltaTables({"clean": uri}, column="day", value="d1", run_id="r2")
    old = first.write("clean", _frame([1, 2, 3]), {})
    new = again.write("clean", _frame([7]), {})
    assert new.entry["version"] == old.entry["version"] + 1
    assert open_output({"tables": {"clean": old.entry}}, "clean").read().height == 3
    assert open_output({"tables": {"clean": new.entry}}, "clean").read()["_row_id"].to_list() == [7]


def test_a_table_that_does_not_hold_the_counted_rows_is_not_committed(tmp_path: Path) -> None:
    uri = str(tmp_path / "clean")
    w = DeltaTables({"clean": uri}, column="day", value="d1", run_id="r1").write(
        "clean", _frame([1, 2, 3]), {}
    )
    lying = TableRows(slice_of(w.entry, None), 4, w.entry["checksum"])
    with pytest.raises(NotCommitted, match="holds 3 rows, not the 4 rows"):
        lying.read()
    wrong = TableRows(slice_of(w.entry, None), 3, checksum(pl.Series([9], dtype=pl.UInt64)))
    with pytest.raises(NotCommitted, match="checksum"):
        wrong.read(["x"])
    gone = TableRows(slice_of({**w.entry, "version": 5}, None), 3, w.entry["checksum"])
    with pytest.raises(NotCommitted, match="version 5"):
        gone.read()


def test_a_column_named_like_the_partition_key_is_refused(tmp_path: Path) -> None:
    backend = DeltaTables({"clean": str(tmp_path / "t")}, column="x", value="v", run_id="r")
    with pytest.raises(OutputError, match="column 'x'"):
        backend.write("clean", _frame([1]), {})


def _spec(tmp_path: Path, outputs: str) -> Path:
    path = trips_spec(tmp_path, tmp_path / "raw", name="trips_cfg")
    head = path.read_text(encoding="utf-8").split("\noutputs:", 1)[0]
    path.write_text(head + "\noutputs:\n" + outputs, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("outputs", "key", "message"),
    [
        (
            "  format: delta\n  clean: s3://b/c\n  quarantine: s3://b/q\n  reports: s3://b/r\n",
            "outputs.reports",
            "outputs.reports must be a local path",
        ),
        (
            "  clean: s3://b/c\n  quarantine: q\n  reports: r\n",
            "outputs.clean",
            "set outputs.format: delta",
        ),
        (
            "  format: delta\n  clean: s3://b/c\n  quarantine: s3://b/c/q\n  reports: r\n",
            "outputs.clean",
            "tables overlap",
        ),
        (
            "  clean: c\n  quarantine: q\n  reports: r\n  storage_options: {A: b}\n",
            "outputs",
            "outputs.storage_options applies only to outputs.format: delta",
        ),
        (
            "  format: iceberg\n  clean: c\n  quarantine: q\n  reports: r\n",
            "outputs.format",
            "delta",
        ),
    ],
)
def test_output_settings_that_cannot_work_are_refused_at_load(
    tmp_path: Path, outputs: str, key: str, message: str
) -> None:
    path = _spec(tmp_path, outputs)
    with pytest.raises(ConfigError) as info:
        check_outputs(load_spec(path))
    text = str(info.value)
    assert f"{path}:" in text
    assert f"{key}:" in text
    assert message in text


def test_a_table_scheme_delta_cannot_write_is_refused(tmp_path: Path) -> None:
    path = _spec(
        tmp_path, "  format: delta\n  clean: ftp://h/c\n  quarantine: s3://b/q\n  reports: r\n"
    )
    with pytest.raises(ConfigError, match=r"outputs\.clean: .*cannot write a table to ftp://"):
        check_outputs(load_spec(path))


def test_the_cli_names_the_key_of_a_remote_reports_root(tmp_path: Path) -> None:
    path = _spec(
        tmp_path,
        "  format: delta\n  clean: s3://b/c\n  quarantine: s3://b/q\n  reports: s3://b/r\n",
    )
    done = subprocess.run(
        [str(ROOT / ".venv/bin/sluice"), "run", str(path), "--partition", "2024-03-04"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "outputs.reports" in done.stderr
    assert "must be a local path" in done.stderr
    assert "Traceback" not in done.stderr


def test_load_partition_reads_the_tables_at_the_manifests_versions(tmp_path: Path) -> None:
    uri = str(tmp_path / "clean")
    old = DeltaTables({"clean": uri}, column="day", value="d1", run_id="r1").write(
        "clean", _frame([1, 2]), {}
    )
    DeltaTables({"clean": uri}, column="day", value="d1", run_id="r2").write(
        "clean", _frame([5]), {}
    )
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"outputs": {}, "tables": {"clean": old.entry}}))
    got = load_partition(manifest)
    assert sorted(got.frames["clean"]["_row_id"].to_list()) == [1, 2]


def test_an_empty_partition_and_an_added_column_are_written(tmp_path: Path) -> None:
    uri = str(tmp_path / "clean")
    empty = DeltaTables({"clean": uri}, column="day", value="d1", run_id="r1").write(
        "clean", _frame([]), {}
    )
    assert open_output({"tables": {"clean": empty.entry}}, "clean").read().height == 0
    wider = _frame([8, 9]).with_columns(pl.lit("z").alias("added"))
    w = DeltaTables({"clean": uri}, column="day", value="d2", run_id="r2").write("clean", wider, {})
    got = open_output({"tables": {"clean": w.entry}}, "clean").read()
    assert got["added"].to_list() == ["z", "z"]
    assert got["x"].dtype == pl.Float64
