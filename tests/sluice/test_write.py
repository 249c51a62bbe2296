from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest

from sluice.write import MARKER_NAME, OutputError, PartitionWriter, foreign_reason, write_parquet


def test_commit_replaces_and_leaves_no_staging(tmp_path: Path) -> None:
    for value in (1, 2):
        with PartitionWriter(tmp_path, "date=2024-01-01") as w:
            write_parquet(pl.DataFrame({"v": [value]}), w.path("part.parquet"))
            w.commit()
    assert [p.name for p in tmp_path.iterdir()] == ["date=2024-01-01"]
    assert pl.read_parquet(tmp_path / "date=2024-01-01" / "part.parquet")["v"].to_list() == [2]


def test_failure_keeps_previous_outputs(tmp_path: Path) -> None:
    with PartitionWriter(tmp_path, "p=1") as w:
        write_parquet(pl.DataFrame({"v": [1]}), w.path("part.parquet"))
        w.commit()

    def crash() -> None:
        with PartitionWriter(tmp_path, "p=1") as w:
            write_parquet(pl.DataFrame({"v": [2]}), w.path("part.parquet"))
            raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError):
        crash()
    assert [p.name for p in tmp_path.iterdir()] == ["p=1"]
    assert pl.read_parquet(tmp_path / "p=1" / "part.parquet")["v"].to_list() == [1]


def test_same_frame_same_bytes(tmp_path: Path) -> None:
    frame = pl.DataFrame({"a": list(range(1000)), "b": [str(i) for i in range(1000)]})
    write_parquet(frame, tmp_path / "x.parquet", {"k": "v"})
    write_parquet(frame, tmp_path / "y.parquet", {"k": "v"})
    assert (tmp_path / "x.parquet").read_bytes() == (tmp_path / "y.parquet").read_bytes()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only modes")
def test_read_only_root_is_a_clear_error(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with (
            pytest.raises(OutputError, match="cannot write under"),
            PartitionWriter(tmp_path / "sub", "p=1"),
        ):
            pass
    finally:
        tmp_path.chmod(0o700)


def test_a_staged_folder_carries_the_marker_and_replaces_only_marked_folders(
    tmp_path: Path,
) -> None:
    with PartitionWriter(tmp_path, "p=1", dataset="d", side="clean", run_id="r1") as w:
        write_parquet(pl.DataFrame({"v": [1]}), w.path("part.parquet"))
        assert json.loads(w.path(MARKER_NAME).read_text())["run_id"] == "r1"
        w.commit()
    assert foreign_reason(tmp_path / "p=1", dataset="d") is None
    assert foreign_reason(tmp_path / "p=1", dataset="e") == "it holds dataset 'd', not 'e'"
    assert foreign_reason(tmp_path / "p=2") is None
    (tmp_path / "p=1" / MARKER_NAME).unlink()
    with (
        pytest.raises(OutputError, match=r"p=1: refusing .*it holds no \.sluice-partition"),
        PartitionWriter(tmp_path, "p=1") as again,
    ):
        again.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p=1"]
    assert pl.read_parquet(tmp_path / "p=1" / "part.parquet")["v"].to_list() == [1]


def test_a_file_where_a_partition_folder_goes_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p=1").write_text("a file, not a partition")
    assert foreign_reason(tmp_path / "p=1") == "it is not a folder"
    with (
        pytest.raises(OutputError, match="it is not a folder"),
        PartitionWriter(tmp_path, "p=1") as w,
    ):
        w.commit()
    assert (tmp_path / "p=1").read_text() == "a file, not a partition"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p=1"]
