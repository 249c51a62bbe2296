from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from sluice.write import OutputError, PartitionWriter, write_parquet


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
