"""The bounded write's pieces that hold nothing per row: failures found by row id, and the
proof of conservation walked over the staged files in batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sluice.decide import add_checksums, checksum
from sluice.pipeline.bounded_write import FailuresByRow, IdTally, prove_streams
from sluice.storage import Written
from sluice.write import ConservationError, check_conservation, describe, write_parquet


def _failures(rng: np.random.Generator, n: int, ids: int) -> pl.DataFrame:
    row = pl.Series("_row_id", rng.integers(0, ids, n).astype(np.uint64))
    frame = pl.DataFrame({"_row_id": row, "reason": [f"r{i}" for i in range(n)]})
    return frame.with_columns(
        pl.when(pl.col("reason").str.ends_with("7")).then(None).otherwise(pl.col("_row_id"))
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_failures_of_a_batch_are_those_a_semi_join_keeps(seed: int) -> None:
    rng = np.random.default_rng(seed)
    failures = _failures(rng, 400, 60)
    index = FailuresByRow(failures)
    found = 0
    for size in (0, 1, 7, 80):
        batch = pl.Series("_row_id", rng.choice(90, size, replace=False).astype(np.uint64))
        want = failures.join(batch.to_frame(), on="_row_id", how="semi", maintain_order="left")
        got = index.of(batch)
        assert got.equals(want)
        found += got.height
    assert found > 0


def test_failures_of_no_failures() -> None:
    empty = pl.DataFrame(schema={"_row_id": pl.UInt64, "reason": pl.String})
    got = FailuresByRow(empty).of(pl.Series("_row_id", [1, 2], dtype=pl.UInt64))
    assert got.schema == empty.schema
    assert got.height == 0


def test_tally_is_the_checksum_of_the_whole() -> None:
    rng = np.random.default_rng(5)
    ids = pl.Series("_row_id", rng.integers(0, 2**64 - 1, 1000, dtype=np.uint64))
    tally = IdTally()
    for start in range(0, 1000, 33):
        tally.add(ids.slice(start, 33))
    assert (tally.rows, tally.checksum) == (1000, checksum(ids))


def _staged(tmp_path: Path, sides: dict[str, list[int]]) -> tuple[Path, dict[str, Written]]:
    written = {}
    for side, ids in sides.items():
        path = tmp_path / f"{side}.parquet"
        write_parquet(pl.DataFrame({"_row_id": pl.Series(ids, dtype=pl.UInt64)}), path)
        written[side] = Written(side, describe(path, len(ids)), table=False, staged=path)
    return tmp_path / "in.parquet", written


def _prove(tmp_path: Path, ids_in: list[int], clean: list[int], held: list[int]) -> object:
    frame, written = _staged(tmp_path, {"in": ids_in, "clean": clean, "quarantine": held})
    del written["in"]
    expected = {
        "clean": {"rows": len(clean), "checksum": checksum(pl.Series(clean, dtype=pl.UInt64))},
        "quarantine": {"rows": len(held), "checksum": checksum(pl.Series(held, dtype=pl.UInt64))},
    }
    return prove_streams(frame, written, expected, rows=3)


def test_a_split_in_order_is_proven(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    ids = [int(x) for x in rng.choice(2**40, 50, replace=False)]
    mask = rng.random(50) < 0.3
    clean = [i for i, m in zip(ids, mask, strict=True) if not m]
    held = [i for i, m in zip(ids, mask, strict=True) if m]
    back = _prove(tmp_path, ids, clean, held)
    s = pl.Series(ids, dtype=pl.UInt64)
    assert back == check_conservation(
        {
            "clean": pl.Series(clean, dtype=pl.UInt64),
            "quarantine": pl.Series(held, dtype=pl.UInt64),
        },
        s,
        "_row_id",
        names="x",
    )
    assert add_checksums(back["clean"]["checksum"], back["quarantine"]["checksum"]) == checksum(s)


@pytest.mark.parametrize(
    ("clean", "held", "says"),
    [
        ([1, 3, 5], [2, 4], r"6 rows came in, the files hold 3 clean \+ 2 quarantine"),
        ([1, 3, 5, 6], [2, 4, 4], r"rows in the files did not come in \(1 in quarantine"),
        ([1, 3, 5], [2, 4, 6, 7], r"rows in the files did not come in \(1 in quarantine"),
        ([3, 1, 5], [2, 4, 6], r"from input row 1 on"),
        ([1, 3, 5, 2], [4, 6], r"from input row 2 on"),
        ([1, 3, 9], [2, 4, 5], r"checksums .* add up.*from input row 6 on"),
    ],
    ids=["lost", "twice", "extra", "out of order", "in both orders", "not from the input"],
)
def test_a_broken_split_is_refused(
    clean: list[int], held: list[int], says: str, tmp_path: Path
) -> None:
    with pytest.raises(ConservationError, match=says) as got:
        _prove(tmp_path, [1, 2, 3, 4, 5, 6], clean, held)
    assert "Nothing was committed" in str(got.value)


def test_a_changed_file_is_refused(tmp_path: Path) -> None:
    frame, written = _staged(tmp_path, {"in": [1, 2], "clean": [1], "quarantine": [2]})
    del written["in"]
    with open(written["quarantine"].staged or "", "ab") as f:
        f.write(b"x")
    with pytest.raises(ConservationError, match="changed after it was written"):
        prove_streams(frame, written, {}, rows=3)


def test_empty_partition_is_proven(tmp_path: Path) -> None:
    back = _prove(tmp_path, [], [], [])
    assert back == {
        "clean": {"rows": 0, "checksum": "0" * 16},
        "quarantine": {"rows": 0, "checksum": "0" * 16},
    }
