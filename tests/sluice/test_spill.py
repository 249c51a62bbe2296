"""Spilled parts and the hash buckets of the bounded validate stage: parts come back whole and in
order through several levels of files, and the number of buckets grows with the partition."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from expectations.suite import suite_from_dict
from sluice.core import spill as spill_module
from sluice.core.failures import concat_failures, make_failures
from sluice.core.spill import PartSpill, part_count
from sluice.pipeline.bounded_validate import check_partition
from tests.sluice.pipeline.test_bounded_validate import HOSTILE, _hostile_suite, compare

UNIQUE_SUITE = {
    "name": "u",
    "expectations": [
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
        {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["id", "g"]}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "v"}},
    ],
}


@pytest.fixture
def small_fanout(monkeypatch: pytest.MonkeyPatch) -> int:
    """Three files at once, so that a few dozen parts take several levels of files."""
    monkeypatch.setattr(spill_module, "FANOUT", 3)
    return 3


@pytest.mark.parametrize("parts", [1, 2, 3, 7, 50])
def test_parts_come_back_whole_and_in_order(parts: int, small_fanout: int, tmp_path: Path) -> None:
    rows = 997
    frame = pl.DataFrame(
        {
            "i": range(rows),
            "s": [None if i % 11 == 0 else f"é{i}\u0000" for i in range(rows)],
        }
    )
    number = pl.Series([(i * 7919) % parts for i in range(rows)])
    spill = PartSpill(tmp_path, "t", parts, rows=40)
    for start in range(0, rows, 64):
        spill.write(frame.slice(start, 64), number.slice(start, 64))
    got = list(spill.read())
    assert [n for n, _ in got] == sorted({int(n) for n in number})
    for n, part in got:
        expected = frame.filter(number == n)
        assert_frame_equal(part, expected)
    assert spill.read_parts == len(got)
    assert spill.largest == max(part.height for _, part in got)
    assert not list(tmp_path.iterdir())


def test_part_count_grows_with_rows() -> None:
    assert [part_count(n, 10) for n in (0, 1, 10, 11, 1000, 10**9)] == [
        1,
        1,
        1,
        2,
        100,
        10**8,
    ]


def _unique_data(rows: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [f"T{(i * 37) % (rows - rows // 10 or 1):09d}" for i in range(rows)],
            "g": [i % 3 for i in range(rows)],
            "v": [None if i % 13 == 0 else i for i in range(rows)],
        }
    )


@pytest.mark.parametrize("keys", [(), ("id",)])
def test_bucket_count_grows_with_rows(
    keys: tuple[str, ...], small_fanout: int, tmp_path: Path
) -> None:
    suite = suite_from_dict(UNIQUE_SUITE, columns=["id", "g", "v"])
    seen = {}
    for rows in (60, 600):
        data = _unique_data(rows)
        found = compare(tmp_path / f"c{rows}", data, suite, keys=keys, batches=(10,))
        assert found > rows // 10
        folder = tmp_path / f"c{rows}"
        got = check_partition(
            folder / "frame.parquet",
            folder / "ingest_failures.parquet",
            suite,
            folder / "again.parquet",
            keys=keys,
            rows_per_batch=10,
            spill_dir=folder / "spill",
            bucket_rows=10,
        )
        seen[rows] = (got.buckets, got.largest_bucket)
    assert seen[60][0] == 6
    assert seen[600][0] == 60
    assert 0 < seen[600][1] <= 40


def test_hostile_data_through_several_levels_of_files(small_fanout: int, tmp_path: Path) -> None:
    data = pl.concat([HOSTILE] * 8)
    assert compare(tmp_path, data, _hostile_suite(), keys=["city", "zip"], batches=(1, 7)) > 100


def test_many_parse_failures_shadow_rule_failures(small_fanout: int, tmp_path: Path) -> None:
    rows = 300
    data = pl.DataFrame(
        {
            "id": [None if i % 4 == 0 else f"k{i % 50}" for i in range(rows)],
            "x": [None if i % 3 == 0 else float(i) for i in range(rows)],
        }
    )
    parse = concat_failures(
        [
            make_failures(
                list(range(0, rows, 3)), column="x", rule="type", severity="error", values=None
            ),
            make_failures(
                list(range(0, rows, 8)), column="id", rule="type", severity="error", values=None
            ),
        ]
    )
    suite = suite_from_dict(
        {
            "name": "p",
            "expectations": [
                {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x"}},
                {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
                {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
            ],
        },
        columns=["id", "x"],
    )
    found = compare(tmp_path, data, suite, keys=["id"], parse_failures=parse, batches=(7, 1000))
    assert found > rows // 2


def test_parts_keep_every_column_type(small_fanout: int, tmp_path: Path) -> None:
    rows = 40
    frame = pl.DataFrame(
        {
            "cat": pl.Series([f"c{i % 3}" for i in range(rows)], dtype=pl.Categorical),
            "dec": pl.Series([i / 4 for i in range(rows)]).cast(pl.Decimal(10, 2)),
            "ts": pl.Series([i * 10**6 for i in range(rows)]).cast(pl.Datetime("us", "UTC")),
            "day": pl.Series([i for i in range(rows)]).cast(pl.Date),
            "nested": [[i, None] if i % 2 else None for i in range(rows)],
            "blank": pl.Series([None] * rows, dtype=pl.String),
            "flag": [i % 5 == 0 for i in range(rows)],
        }
    )
    number = pl.Series([i % 7 for i in range(rows)])
    spill = PartSpill(tmp_path, "t", 7, rows=4)
    for start in range(0, rows, 6):
        spill.write(frame.slice(start, 6), number.slice(start, 6))
    got = pl.concat([part for _, part in spill.read()])
    expected = frame.with_columns(number.alias("n")).sort("n", maintain_order=True).drop("n")
    assert_frame_equal(got, expected, categorical_as_str=True)
