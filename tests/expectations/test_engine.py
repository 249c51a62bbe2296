"""Engine choice: auto splits a suite between polars and GX, in suite order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl
import pytest

from expectations import gx_runner
from expectations.engine import gx_columns, validate
from expectations.polars_engine.row_condition import condition_columns
from expectations.results import ExpectationEntry, ExpectationOutcome
from expectations.suite import suite_from_dict
from sluice.core.errors import ConfigError

FRAME = pl.DataFrame(
    {
        "id": [1, 2, 2],
        "fare": [1.5, 2.5, 900.0],
        "zone": ["a", "b", "a"],
        "other": [0, 0, 0],
    }
)
SUITE = {
    "name": "t",
    "expectations": [
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
        {
            "type": "expect_column_kl_divergence_to_be_less_than",
            "kwargs": {
                "column": "fare",
                "partition_object": {"bins": [0, 10, 1000], "weights": [0.5, 0.5]},
                "threshold": 0.9,
            },
        },
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "fare", "min_value": 0, "max_value": 100},
        },
        {
            "type": "expect_column_values_to_match_regex",
            "kwargs": {"column": "fare", "regex": "^9"},
        },
    ],
}


def test_auto_routes_each_entry_and_keeps_suite_order() -> None:
    suite = suite_from_dict(SUITE)
    outcomes = validate(FRAME, suite)
    assert [o.entry.index for o in outcomes] == [0, 1, 2, 3]
    assert [o.engine for o in outcomes] == ["polars", "gx", "polars", "gx"]
    unique, _, between, regex = outcomes
    assert unique.unexpected_rows is not None
    assert unique.unexpected_rows.tolist() == [1, 2]
    assert between.unexpected_rows is not None
    assert between.unexpected_rows.tolist() == [2]
    assert regex.unexpected_rows is not None
    assert regex.unexpected_rows.tolist() == [0, 1]


def test_auto_sends_gx_only_the_columns_it_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    real = gx_runner.run_gx

    def spy(frame: pl.DataFrame, entries: Sequence[ExpectationEntry]) -> list[ExpectationOutcome]:
        seen.append(frame.columns)
        return real(frame, entries)

    monkeypatch.setattr(gx_runner, "run_gx", spy)
    validate(FRAME, suite_from_dict(SUITE), "auto")
    assert seen == [["fare"]]


def test_polars_refuses_what_it_cannot_compile() -> None:
    with pytest.raises(ConfigError) as err:
        validate(FRAME, suite_from_dict(SUITE, path="suites/t.json"), "polars")
    message = str(err.value)
    assert "suites/t.json" in message
    assert "expectations[1]" in message
    assert "expect_column_kl_divergence_to_be_less_than" in message
    assert "expect_column_values_to_be_unique" in message


def test_gx_runs_everything_with_gx() -> None:
    outcomes = validate(FRAME, suite_from_dict(SUITE), "gx")
    assert {o.engine for o in outcomes} == {"gx"}
    assert [o.success for o in outcomes] == [False, True, False, False]


def test_auto_and_gx_agree_on_this_suite() -> None:
    auto = validate(FRAME, suite_from_dict(SUITE), "auto")
    gx = validate(FRAME, suite_from_dict(SUITE), "gx")
    assert [(o.success, o.unexpected_count) for o in auto] == [
        (o.success, o.unexpected_count) for o in gx
    ]


def test_unknown_engine_is_a_config_error() -> None:
    bogus: Any = "spark"
    with pytest.raises(ConfigError, match="spark"):
        validate(FRAME, [], bogus)


def test_gx_columns_include_condition_columns_and_all_for_table_checks() -> None:
    e = ExpectationEntry(
        index=0,
        type="expect_column_values_to_match_json_schema",
        kwargs={"column": "zone", "json_schema": {}, "row_condition": "id > 1"},
        meta={},
        severity="error",
    )
    assert gx_columns(FRAME, [e]) == ["id", "zone"]
    table = ExpectationEntry(
        index=1,
        type="expect_table_row_count_to_equal_other_table",
        kwargs={},
        meta={},
        severity="error",
    )
    assert gx_columns(FRAME, [table]) == FRAME.columns
    assert condition_columns("id.isin([1]) | `fare` > 2") == {"id", "fare"}


def test_a_wide_frame_has_its_schema_made_a_fixed_number_of_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Making a frame's schema costs time in proportion to its columns; made for every entry
    (a suite of a check or two per column), validation grew as the square of the columns (36
    CPU s at 2,000 columns, hours at 20,000)."""
    n = 200
    frame = pl.DataFrame({f"c{i}": list(range(5)) for i in range(n)})
    entries = [
        entry
        for i in range(n)
        for entry in (
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": f"c{i}"}},
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": f"c{i}", "min_value": 0},
            },
        )
    ]
    suite = suite_from_dict({"name": "wide", "expectations": entries})
    made = []
    schema = pl.DataFrame.schema

    def counted(self: pl.DataFrame) -> pl.Schema:
        made.append(1)
        return schema.fget(self)  # type: ignore[attr-defined,no-any-return]

    monkeypatch.setattr(pl.DataFrame, "schema", property(counted))
    outcomes = validate(frame, suite, "auto")
    assert [o.success for o in outcomes] == [True] * 2 * n
    assert len(made) <= 4
