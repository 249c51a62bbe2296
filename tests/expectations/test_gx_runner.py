"""The GX reference runner on small hand-made frames; failing positions are written out by hand."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

from expectations.gx_runner import _columns_needed, run_gx, to_pandas_for_gx, unexpected_positions
from expectations.results import ExpectationEntry, ExpectationOutcome
from tests.expectations.conftest import make_entry


@pytest.fixture
def small() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "_row_id": pl.Series([7, 8, 9, 10, 11, 12], dtype=pl.UInt64),
            "n": [1, 5, None, 3, 9, 2],
            "s": ["ab", "cd", None, "zz", "ab", "a1"],
            "x": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5],
        }
    )


def _rows(outcome: ExpectationOutcome) -> list[int]:
    assert outcome.unexpected_rows is not None
    return [int(r) for r in outcome.unexpected_rows]


def test_row_level_types_give_hand_counted_positions(small: pl.DataFrame) -> None:
    entries = [
        make_entry("expect_column_values_to_be_between", 0, column="n", min_value=1, max_value=4),
        make_entry("expect_column_values_to_be_in_set", 1, column="s", value_set=["ab", "cd"]),
        make_entry("expect_column_values_to_not_be_null", 2, column="n"),
        make_entry("expect_column_values_to_match_regex", 3, column="s", regex="^[a-z]+$"),
        make_entry("expect_column_values_to_be_unique", 4, column="s"),
        make_entry("expect_column_values_to_not_be_null", 5, column="x"),
    ]
    out = run_gx(small, entries)
    assert [o.entry.index for o in out] == [0, 1, 2, 3, 4, 5]
    assert all(o.engine == "gx" and o.exception is None for o in out)
    assert _rows(out[0]) == [1, 4]
    assert _rows(out[1]) == [3, 5]
    assert _rows(out[2]) == [2]
    assert _rows(out[3]) == [5]
    assert _rows(out[4]) == [0, 4]
    assert _rows(out[5]) == []
    assert [o.success for o in out] == [False, False, False, False, False, True]
    assert [o.unexpected_count for o in out] == [2, 2, 1, 1, 2, 0]


def test_column_pair_rule_on_datetimes() -> None:
    t = dt.datetime(2024, 1, 1, 12)
    h = dt.timedelta(hours=1)
    frame = pl.DataFrame(
        {
            "start": [t, t, t, None, t],
            "end": [t + h, t - h, t, t, None],
        }
    )
    entry = make_entry(
        "expect_column_pair_values_a_to_be_greater_than_b", column_A="end", column_B="start"
    )
    (out,) = run_gx(frame, [entry])
    # GX's default ignore_row_if is both_values_are_missing: one missing value fails the row.
    assert _rows(out) == [1, 2, 3, 4]


def test_batch_level_types_report_observed_values(small: pl.DataFrame) -> None:
    entries = [
        make_entry("expect_table_row_count_to_be_between", 0, min_value=1, max_value=5),
        make_entry("expect_column_mean_to_be_between", 1, column="x", min_value=0, max_value=2.5),
        make_entry(
            "expect_table_columns_to_match_set", 2, column_set=["n", "s", "x"], exact_match=True
        ),
        make_entry("expect_column_max_to_be_between", 3, column="n", min_value=0, max_value=10),
    ]
    out = run_gx(small, entries)
    assert [o.success for o in out] == [False, False, True, True]
    assert out[0].observed_value == 6
    assert out[1].observed_value == pytest.approx(3.0)
    assert out[3].observed_value == 9
    assert all(o.unexpected_rows is None and not o.row_level for o in out)


def test_row_count_alone_needs_no_columns(small: pl.DataFrame) -> None:
    entry = make_entry("expect_table_row_count_to_equal", value=6)
    assert _columns_needed(small.drop("_row_id"), [entry]) == []
    (out,) = run_gx(small, [entry])
    assert out.success
    assert out.observed_value == 6


def test_only_needed_columns_go_to_pandas(small: pl.DataFrame) -> None:
    data = small.drop("_row_id")
    one = make_entry("expect_column_values_to_not_be_null", column="x")
    table = make_entry("expect_table_column_count_to_equal", value=3)
    cond = make_entry(
        "expect_column_values_to_not_be_null",
        column="x",
        row_condition="n > 1",
        condition_parser="pandas",
    )
    assert _columns_needed(data, [one]) == ["x"]
    assert _columns_needed(data, [one, table]) == ["n", "s", "x"]
    assert _columns_needed(data, [cond]) == ["x"]


def test_gx_never_sees_a_row_condition(monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    from expectations import gx_runner

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a condition string reached pandas")

    monkeypatch.setattr(pd.DataFrame, "query", refuse)
    monkeypatch.setattr(pd.DataFrame, "eval", refuse)
    seen: list[dict[str, Any]] = []
    real = gx_runner._expectation

    def spy(entry: ExpectationEntry, pos: int) -> Any:
        seen.append(dict(entry.kwargs))
        return real(entry, pos)

    monkeypatch.setattr(gx_runner, "_expectation", spy)
    frame = pl.DataFrame({"n": [1, 5, None, 7, 9], "x": [None, None, 1.0, None, 2.0]})
    entries = [
        make_entry(
            "expect_column_values_to_not_be_null",
            0,
            column="x",
            row_condition="n > 4",
            condition_parser="pandas",
        ),
        make_entry(
            "expect_column_mean_to_be_between",
            1,
            column="n",
            min_value=0,
            max_value=1,
            row_condition="x.notnull()",
            condition_parser="pandas",
        ),
        make_entry("expect_column_values_to_not_be_null", 2, column="x"),
    ]
    rows, mean, plain = run_gx(frame, entries)
    assert _rows(rows) == [1, 3]
    assert rows.entry is entries[0]
    assert mean.observed_value == 9.0
    assert mean.success is False
    assert _rows(plain) == [0, 1, 3]
    assert seen
    assert all("row_condition" not in kw and "condition_parser" not in kw for kw in seen)


def test_a_column_gx_cannot_convert_is_not_touched_when_unused() -> None:
    frame = pl.DataFrame({"a": [1, 2], "odd": pl.Series([object(), object()], dtype=pl.Object)})
    (out,) = run_gx(
        frame, [make_entry("expect_column_values_to_be_between", column="a", min_value=2)]
    )
    assert _rows(out) == [0]


def test_suite_order_kept_with_duplicate_configurations(small: pl.DataFrame) -> None:
    same: dict[str, Any] = {"column": "n", "min_value": 1, "max_value": 4}
    entries = [
        make_entry("expect_column_values_to_be_between", 0, **same),
        make_entry("expect_table_row_count_to_be_between", 1, min_value=1),
        make_entry("expect_column_values_to_be_between", 2, severity="warn", **same),
        make_entry("expect_column_values_to_be_in_set", 3, column="s", value_set=["ab"]),
        make_entry("expect_column_values_to_be_between", 4, **same),
    ]
    out = run_gx(small, entries)
    assert [o.entry for o in out] == entries
    assert _rows(out[0]) == _rows(out[2]) == _rows(out[4]) == [1, 4]
    assert _rows(out[3]) == [1, 3, 5]
    assert out[1].success


def test_failing_metric_becomes_an_exception_outcome(small: pl.DataFrame) -> None:
    entries = [
        make_entry("expect_column_mean_to_be_between", 0, column="s", min_value=0, max_value=1),
        make_entry("expect_column_values_to_not_be_null", 1, column="missing"),
        make_entry("expect_column_values_to_not_be_null", 2, column="n"),
    ]
    out = run_gx(small, entries)
    assert not out[0].success
    assert out[0].exception is not None
    assert out[0].exception.startswith("expect_column_mean_to_be_between on s (expectation 0):")
    assert "numeric" in out[0].exception
    assert out[0].unexpected_rows is None
    assert out[1].exception is not None
    assert "missing" in out[1].exception
    assert out[2].exception is None
    assert _rows(out[2]) == [2]


def test_entry_gx_cannot_build_is_an_exception_not_a_crash(small: pl.DataFrame) -> None:
    bad = make_entry("expect_column_values_to_be_between", 0, column="n")
    good = make_entry("expect_column_values_to_not_be_null", 1, column="n")
    out = run_gx(small, [bad, good])
    assert out[0].exception is not None
    assert "cannot build" in out[0].exception
    assert _rows(out[1]) == [2]


def test_unexpected_index_list_is_complete_beyond_partial_count() -> None:
    values = [i if i % 3 else -i - 1 for i in range(90)]
    frame = pl.DataFrame({"v": values})
    (out,) = run_gx(
        frame, [make_entry("expect_column_values_to_be_between", column="v", min_value=0)]
    )
    assert _rows(out) == list(range(0, 90, 3))
    assert out.unexpected_count == 30


def test_unexpected_positions_reads_ints_and_dicts() -> None:
    assert unexpected_positions([4, 1, 2]).tolist() == [1, 2, 4]
    assert unexpected_positions([{"index": 3, "v": 1}, {"_sluice_pos": 0}]).tolist() == [0, 3]
    assert unexpected_positions([]).dtype == np.int64
    with pytest.raises(ValueError, match="no position"):
        unexpected_positions([{"v": 1}])


def test_pandas_conversion_keeps_gx_semantics() -> None:
    frame = pl.DataFrame(
        {
            "s": ["a", None, "c"],
            "c": pl.Series(["x", None, "y"], dtype=pl.Categorical),
            "i": [1, None, 3],
            "j": [1, 2, 3],
            "f": [1.0, float("nan"), None],
            "t": [dt.datetime(2024, 1, 1), None, dt.datetime(2024, 1, 2)],
        }
    )
    pdf = to_pandas_for_gx(frame)
    assert list(pdf.columns) == frame.columns
    assert isinstance(pdf.index, pd.RangeIndex)
    assert pdf["s"].dtype == object
    assert pdf["s"].tolist() == ["a", None, "c"]
    assert pdf["c"].tolist() == ["x", None, "y"]
    assert pdf["i"].dtype == np.float64
    assert pdf["j"].dtype == np.int64
    assert pdf["f"].isna().tolist() == [False, True, True]
    assert pdf["t"].isna().tolist() == [False, True, False]


def test_type_list_recognises_strings(small: pl.DataFrame) -> None:
    entries = [
        make_entry("expect_column_values_to_be_in_type_list", 0, column="s", type_list=["str"]),
        make_entry("expect_column_values_to_be_in_type_list", 1, column="s", type_list=["int"]),
    ]
    out = run_gx(small, entries)
    assert out[0].success
    assert _rows(out[1]) == [0, 1, 3, 4, 5]


def test_provenance_columns_are_not_shown_to_gx(small: pl.DataFrame) -> None:
    framed = small.with_columns(pl.lit("f.csv").alias("_source_file"))
    entry = make_entry("expect_table_columns_to_match_set", column_set=["n", "s", "x"])
    (out,) = run_gx(framed, [entry])
    assert out.success


def test_no_entries_gives_no_outcomes(small: pl.DataFrame) -> None:
    assert run_gx(small, []) == []


def test_distinct_value_checks_are_batch_level_failures_not_errors() -> None:
    frame = pl.DataFrame({"k": ["a", "b", "z", "z"]})
    entry = make_entry(
        "expect_column_distinct_values_to_be_in_set", 0, column="k", value_set=["a", "b"]
    )
    (out,) = run_gx(frame, [entry])
    assert out.exception is None
    assert out.success is False
    assert out.unexpected_rows is None


def test_a_check_that_raises_fails_alone() -> None:
    frame = pl.DataFrame({"v": [1, 2, 3]})
    raising, fine = run_gx(
        frame,
        [
            ExpectationEntry(
                index=0,
                type="expect_column_values_to_be_of_type",
                kwargs={
                    "column": "v",
                    "type_": "int64",
                    "row_condition": "nope > 1",
                    "condition_parser": "pandas",
                },
                meta={},
                severity="error",
            ),
            make_entry("expect_column_values_to_be_between", 1, column="v", max_value=2),
        ],
    )
    assert raising.exception is not None
    assert "expect_column_values_to_be_of_type" in raising.exception
    assert fine.exception is None
    assert _rows(fine) == [2]
