from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.decide import add_checksums, checksum, drop_shadowed, split
from sluice.failures import concat_failures, make_failures

DECLARED: dict[str, pl.DataType] = {"a": pl.Int64(), "b": pl.String()}


def _frame(n: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    ids = pl.Series("_row_id", [1000 + i for i in range(n)], dtype=pl.UInt64)
    frame = pl.DataFrame(
        {
            "_row_id": ids,
            "_source_file": ["f.csv"] * n,
            "_source_row": list(range(n)),
            "a": list(range(n)),
            "b": [f"x{i}" for i in range(n)],
        }
    )
    raw = frame.select("_row_id", pl.col("a").cast(pl.String), "b")
    return frame, raw


def test_split_routes_by_severity_and_keeps_reasons() -> None:
    frame, raw = _frame(4)
    ids = frame["_row_id"]
    failures = concat_failures(
        [
            make_failures([ids[0]], column="a", rule="r1", severity="error", values=["0"]),
            make_failures([ids[0], ids[1]], column="b", rule="r2", severity="warn"),
            make_failures([ids[2]], column="outlier", rule="iforest", severity="error"),
        ]
    )
    result = split(frame, raw, failures, DECLARED)
    assert result.clean["_row_id"].to_list() == [ids[1], ids[3]]
    assert result.clean.columns == ["_row_id", "a", "b"]
    q = result.quarantine
    assert q["_row_id"].to_list() == [ids[0], ids[2]]
    assert q["_reasons"].to_list() == [["a|r1", "b|r2"], ["outlier|iforest"]]
    assert q["_source_row"].to_list() == [0, 2]
    assert q["a"].dtype == pl.String  # raw text
    assert result.critical == ()


def test_critical_quarantines_everything_with_reason() -> None:
    frame, raw = _frame(3)
    result = split(
        frame, raw, concat_failures([]), DECLARED, [("_table", "expect_table_row_count", "x")]
    )
    assert result.clean.height == 0
    assert result.clean.schema == pl.Schema({"_row_id": pl.UInt64(), **DECLARED})
    assert result.quarantine["_reasons"].to_list() == [["_table|expect_table_row_count"]] * 3
    assert result.critical == ("_table|expect_table_row_count",)


def test_shadowed_rule_failures_on_unparsed_cells_are_dropped() -> None:
    ingest_failures = concat_failures(
        [
            make_failures([1], column="a", rule="type", severity="error"),
            make_failures([2], column="_row", rule="malformed", severity="error"),
        ]
    )
    validation = concat_failures(
        [
            make_failures([1, 3], column="a", rule="not_null", severity="error"),
            make_failures([1], column="b", rule="not_null", severity="error"),
            make_failures([1, 3], column="a,b", rule="pair", severity="error"),
            make_failures([2], column="b", rule="not_null", severity="error"),
        ]
    )
    kept = drop_shadowed(validation, ingest_failures)
    assert sorted(zip(kept["_row_id"], kept["reason"], strict=True)) == [
        (1, "b|not_null"),
        (3, "a,b|pair"),
        (3, "a|not_null"),
    ]


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 60),
    flags=st.lists(st.sampled_from(["none", "warn", "error", "critical"]), max_size=60),
)
def test_conservation_property(n: int, flags: list[str]) -> None:
    frame, raw = _frame(n)
    ids = frame["_row_id"].to_list()
    parts = [
        make_failures([i], column="a", rule="r", severity=s)  # type: ignore[arg-type]
        for i, s in zip(ids, flags, strict=False)
        if s != "none"
    ]
    result = split(frame, raw, concat_failures(parts), DECLARED)
    clean, quarantine = set(result.clean["_row_id"]), set(result.quarantine["_row_id"])
    assert clean.isdisjoint(quarantine)
    assert clean | quarantine == set(ids)
    assert all(len(r) > 0 for r in result.quarantine["_reasons"])
    assert checksum(frame["_row_id"]) == add_checksums(
        checksum(result.clean["_row_id"]), checksum(result.quarantine["_row_id"])
    )
