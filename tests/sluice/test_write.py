from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest

from sluice.decide import checksum
from sluice.write import (
    MARKER_NAME,
    ConservationError,
    OutputError,
    PartitionWriter,
    check_conservation,
    foreign_reason,
    write_parquet,
)


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


def test_a_frame_with_lists_is_one_row_group_and_reads_back_the_same(tmp_path: Path) -> None:
    # polars sizes each row group's pages of a list column by the whole column's bytes: many row
    # groups of a large quarantine cost row groups x rows (docs/traps.md)
    import pyarrow.parquet as pq

    n = 300_000
    text = pl.col("id").cast(pl.String)
    frame = pl.DataFrame({"id": pl.int_range(0, n, eager=True)}).select(
        "id",
        pl.concat_list(text, pl.lit("x")).alias("reasons"),
        pl.concat_list(pl.struct(text.alias("value"), pl.lit("r").alias("rule"))).alias("failures"),
        pl.struct(pl.concat_list("id", "id").alias("codes")).alias("raw"),
    )
    write_parquet(frame, tmp_path / "lists.parquet")
    assert pq.ParquetFile(tmp_path / "lists.parquet").metadata.num_row_groups == 1
    assert pl.read_parquet(tmp_path / "lists.parquet").equals(frame)
    write_parquet(frame.select("id", "raw"), tmp_path / "struct.parquet")
    assert pq.ParquetFile(tmp_path / "struct.parquet").metadata.num_row_groups == 1
    flat = frame.select("id", pl.col("id").cast(pl.String).alias("text"))
    write_parquet(flat, tmp_path / "flat.parquet")
    assert pq.ParquetFile(tmp_path / "flat.parquet").metadata.num_row_groups > 1
    write_parquet(frame.head(0), tmp_path / "empty.parquet")
    assert pl.read_parquet(tmp_path / "empty.parquet").schema == frame.schema


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


@pytest.mark.parametrize(
    ("clean", "held", "says"),
    [
        ([1, 3, 5], [2, 4, 6], None),
        ([5, 1, 3], [6, 2, 4], None),  # any order holds every row once: proven by sorting
        ([1, 3, 5, 6], [2, 4], None),
        ([], [1, 2, 3, 4, 5, 6], None),
        ([1, 3, 5], [2, 4], r"6 rows came in, the files hold 3 clean \+ 2 quarantine"),
        ([1, 3, 5, 4], [2, 4], r"1 row ids are written twice"),
        ([1, 3, 5, 7], [2, 4], r"1 input rows are in no file"),
    ],
    ids=["in order", "out of order", "uneven", "all held", "lost", "twice", "foreign"],
)
def test_conservation_holds_for_every_row_once_in_any_order(
    clean: list[int], held: list[int], says: str | None
) -> None:
    ids_in = pl.Series("_row_id", [1, 2, 3, 4, 5, 6], dtype=pl.UInt64)
    read = {
        "clean": pl.Series("_row_id", clean, dtype=pl.UInt64),
        "quarantine": pl.Series("_row_id", held, dtype=pl.UInt64),
    }
    if says is None:
        back = check_conservation(read, ids_in, "_row_id", names="x")
        assert back["clean"] == {"rows": len(clean), "checksum": checksum(read["clean"])}
    else:
        with pytest.raises(ConservationError, match=says):
            check_conservation(read, ids_in, "_row_id", names="x")
