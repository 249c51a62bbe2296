"""The dataset's keys as a uniqueness check: ``<keys>|key_duplicate`` with a traceable first."""

from __future__ import annotations

import json

import polars as pl

from sluice.core.failures import make_failures
from sluice.decide import key_duplicates, trace_duplicates


def _frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "_row_id": pl.Series([10, 11, 12, 13, 14, 15], dtype=pl.UInt64),
            "_source_file": ["a.csv", "a.csv", "a.csv", "b.csv", "b.csv", "b.csv"],
            "_source_row": [0, 1, 2, 0, 1, 2],
            "id": ["x", "y", "x", "x", None, None],
            "day": [1, 1, 1, 2, 1, 1],
        }
    )


def test_keep_first_fails_the_later_occurrences_naming_the_first_and_where_it_is() -> None:
    got = key_duplicates(_frame(), ["id"])
    assert got["_row_id"].to_list() == [12, 13]
    assert set(got["reason"]) == {"id|key_duplicate"}
    assert set(got["severity"]) == {"error"}
    assert got["value"].to_list() == ["x", "x"]
    details = [json.loads(d) for d in got["details"]]
    assert {d["duplicate_of"] for d in details} == {10}
    assert {(d["duplicate_of_file"], d["duplicate_of_row"]) for d in details} == {("a.csv", 0)}
    assert {d["group_size"] for d in details} == {3}


def test_keep_none_fails_every_occurrence() -> None:
    got = key_duplicates(_frame(), ["id"], "keep_none")
    assert sorted(got["_row_id"].to_list()) == [10, 12, 13]


def test_compound_keys_compare_every_column_and_name_them_in_the_reason() -> None:
    got = key_duplicates(_frame(), ["id", "day"])
    assert got["_row_id"].to_list() == [12]
    assert got["reason"].to_list() == ["id,day|key_duplicate"]
    assert json.loads(got["value"][0]) == {"id": "x", "day": "1"}
    assert json.loads(got["details"][0])["keys"] == ["id", "day"]


def test_null_keys_are_not_duplicates_of_each_other_and_no_keys_check_nothing() -> None:
    assert 14 not in key_duplicates(_frame(), ["id"])["_row_id"].to_list()
    assert key_duplicates(_frame(), []).is_empty()
    unique = _frame().filter(pl.col("_row_id").is_in([10, 11]))
    assert key_duplicates(unique, ["id"]).is_empty()


def test_trace_duplicates_adds_the_first_occurrence_file_and_row_to_suite_failures() -> None:
    frame = _frame()
    suite = make_failures(
        [12, 11],
        column="id",
        rule="expect_column_values_to_be_unique",
        severity="error",
        details=['{"duplicate_of":10,"expectation_index":0}', '{"expectation_index":1}'],
    )
    traced = trace_duplicates(suite, frame)
    first, other = (json.loads(d) for d in traced["details"])
    assert first == {
        "duplicate_of": 10,
        "duplicate_of_file": "a.csv",
        "duplicate_of_row": 0,
        "expectation_index": 0,
    }
    assert other == {"expectation_index": 1}
    assert traced["_row_id"].to_list() == [12, 11]
