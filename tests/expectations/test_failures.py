"""From outcomes to the failures table: unit-tested with hand-fed outcomes, then end to end."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from expectations.failures import ValidationResult, failures_from_outcomes, quarantining
from expectations.gx_runner import run_gx
from expectations.results import ExpectationEntry, ExpectationOutcome
from expectations.suite import load_suite
from sluice.core.failures import FAILURE_SCHEMA
from sluice.core.values import json_safe
from tests.expectations.conftest import make_entry

SUITE = Path(__file__).parents[2] / "expectations" / "suites" / "trips.json"


@pytest.fixture
def frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "_row_id": pl.Series([50, 51, 52, 53, 54, 55, 56], dtype=pl.UInt64),
            "k": ["a", "b", "a", None, "b", "a", None],
            "m": [1, 1, 1, 2, 2, 1, 3],
            "t": [dt.datetime(2024, 1, 1, 9, 30)] * 7,
            "f": [1.5, 2.0, None, 4.0, 5.0, 6.0, 7.0],
        }
    )


def _outcome(
    entry: ExpectationEntry,
    rows: list[int] | None,
    *,
    success: bool | None = None,
    exception: str | None = None,
    observed: Any = None,
) -> ExpectationOutcome:
    return ExpectationOutcome(
        entry=entry,
        success=(not rows) if success is None else success,
        engine="polars",
        unexpected_count=None if rows is None else len(rows),
        unexpected_rows=None if rows is None else np.asarray(rows, dtype=np.int64),
        observed_value=observed,
        exception=exception,
    )


def _pairs(result: ValidationResult) -> list[tuple[int, str]]:
    return list(
        zip(result.failures["_row_id"].to_list(), result.failures["reason"].to_list(), strict=True)
    )


def test_row_level_failures_carry_value_reason_severity_details(frame: pl.DataFrame) -> None:
    entry = make_entry("expect_column_values_to_be_between", 3, column="f", max_value=4.5)
    result = failures_from_outcomes(frame, [_outcome(entry, [4, 5, 6])])
    assert result.failures.schema == pl.Schema(FAILURE_SCHEMA)
    assert result.failures.to_dicts() == [
        {
            "_row_id": rid,
            "column": "f",
            "rule": "expect_column_values_to_be_between",
            "reason": "f|expect_column_values_to_be_between",
            "severity": "error",
            "value": value,
            "details": '{"expectation_index":3}',
        }
        for rid, value in [(54, "5.0"), (55, "6.0"), (56, "7.0")]
    ]
    (verdict,) = result.verdicts
    assert verdict["success"] is False
    assert verdict["unexpected_count"] == 3
    assert verdict["failing_rows"] == 3
    assert verdict["reason"] == "f|expect_column_values_to_be_between"
    assert not result.critical_failed


def test_null_and_datetime_values_as_text(frame: pl.DataFrame) -> None:
    nulls = make_entry("expect_column_values_to_not_be_null", 0, column="k")
    times = make_entry("expect_column_values_to_be_null", 1, column="t")
    result = failures_from_outcomes(frame, [_outcome(nulls, [3, 6]), _outcome(times, [0])])
    assert result.failures["value"].to_list() == [None, None, "2024-01-01 09:30:00"]


def test_multi_column_value_is_compact_json(frame: pl.DataFrame) -> None:
    entry = make_entry("expect_column_pair_values_to_be_equal", column_A="m", column_B="t")
    result = failures_from_outcomes(frame, [_outcome(entry, [1])])
    assert result.failures["column"].to_list() == ["m,t"]
    assert result.failures["value"].to_list() == ['{"m":1,"t":"2024-01-01 09:30:00"}']


def test_keep_first_marks_later_occurrences_only(frame: pl.DataFrame) -> None:
    entry = make_entry("expect_column_values_to_be_unique", 2, column="k")
    result = failures_from_outcomes(frame, [_outcome(entry, [0, 1, 2, 4, 5])])
    assert result.failures["_row_id"].to_list() == [52, 54, 55]
    assert [json.loads(d) for d in result.failures["details"]] == [
        {"duplicate_of": 50, "expectation_index": 2, "group_size": 3},
        {"duplicate_of": 51, "expectation_index": 2, "group_size": 2},
        {"duplicate_of": 50, "expectation_index": 2, "group_size": 3},
    ]
    assert result.failures["value"].to_list() == ["a", "b", "a"]
    assert result.verdicts[0]["unexpected_count"] == 5
    assert result.verdicts[0]["failing_rows"] == 3


def test_keep_none_marks_every_occurrence(frame: pl.DataFrame) -> None:
    entry = make_entry("expect_column_values_to_be_unique", column="k", duplicates="keep_none")
    result = failures_from_outcomes(frame, [_outcome(entry, [0, 1, 2, 4, 5])])
    assert result.failures["_row_id"].to_list() == [50, 51, 52, 54, 55]
    firsts = [json.loads(d) for d in result.failures["details"]]
    assert firsts[0] == {"expectation_index": 0, "group_size": 3}
    assert firsts[2] == {"duplicate_of": 50, "expectation_index": 0, "group_size": 3}


def test_compound_keep_first_groups_on_all_columns(frame: pl.DataFrame) -> None:
    entry = make_entry("expect_compound_columns_to_be_unique", column_list=["k", "m"])
    # (a,1) at 0,2,5 and (b,?) rows differ in m: only the (a,1) group is duplicated.
    result = failures_from_outcomes(frame, [_outcome(entry, [0, 2, 5])])
    assert result.failures["_row_id"].to_list() == [52, 55]
    assert result.failures["column"].to_list() == ["k,m", "k,m"]
    assert result.failures["value"].to_list() == ['{"k":"a","m":1}'] * 2


def test_row_an_engine_calls_duplicate_without_twin_still_fails(frame: pl.DataFrame) -> None:
    entry = make_entry("expect_column_values_to_be_unique", column="k")
    result = failures_from_outcomes(frame, [_outcome(entry, [0, 1])])
    assert result.failures["_row_id"].to_list() == [50, 51]


def test_exception_fails_the_verdict_and_marks_no_rows(frame: pl.DataFrame) -> None:
    entry = make_entry(
        "expect_column_mean_to_be_between", column="k", min_value=0, severity="critical"
    )
    result = failures_from_outcomes(
        frame, [_outcome(entry, None, success=False, exception="mean of text")]
    )
    assert result.failures.height == 0
    (verdict,) = result.verdicts
    assert verdict["success"] is False
    assert verdict["exception"] == "mean of text"
    assert "marks no rows" in verdict["note"]
    assert result.critical_failed


def test_exception_wins_over_a_reported_success(frame: pl.DataFrame) -> None:
    entry = make_entry("expect_column_values_to_not_be_null", column="k")
    result = failures_from_outcomes(frame, [_outcome(entry, [3], success=True, exception="boom")])
    assert result.failures.height == 0
    assert result.verdicts[0]["success"] is False


@pytest.mark.parametrize(
    ("severity", "critical"), [("warn", False), ("error", False), ("critical", True)]
)
def test_batch_failure_marks_no_rows_and_only_critical_stops(
    frame: pl.DataFrame, severity: Any, critical: bool
) -> None:
    entry = make_entry(
        "expect_column_mean_to_be_between", column="f", max_value=1, severity=severity
    )
    result = failures_from_outcomes(
        frame, [_outcome(entry, None, success=False, observed=np.float64(4.25))]
    )
    assert result.failures.height == 0
    assert result.critical_failed is critical
    assert result.verdicts[0]["observed_value"] == 4.25
    assert type(result.verdicts[0]["observed_value"]) is float


def test_critical_row_level_failure_stops_and_passing_critical_does_not(
    frame: pl.DataFrame,
) -> None:
    bad = make_entry("expect_column_values_to_not_be_null", 0, column="k", severity="critical")
    ok = make_entry("expect_column_values_to_not_be_null", 1, column="m", severity="critical")
    assert failures_from_outcomes(frame, [_outcome(bad, [3, 6])]).critical_failed
    assert not failures_from_outcomes(frame, [_outcome(ok, [])]).critical_failed


def test_warn_vs_error_vs_critical_in_quarantining(frame: pl.DataFrame) -> None:
    outcomes = [
        _outcome(make_entry("expect_column_values_to_not_be_null", 0, "warn", column="k"), [3]),
        _outcome(make_entry("expect_column_values_to_not_be_null", 1, "error", column="f"), [2]),
        _outcome(make_entry("expect_column_values_to_be_null", 2, "critical", column="m"), [0]),
    ]
    result = failures_from_outcomes(frame, outcomes)
    assert result.failures["severity"].to_list() == ["warn", "error", "critical"]
    assert quarantining(result.failures)["_row_id"].to_list() == [52, 50]
    assert quarantining(result.failures).schema == result.failures.schema


def test_verdicts_in_suite_order_whatever_the_outcome_order(frame: pl.DataFrame) -> None:
    a = make_entry("expect_column_values_to_not_be_null", 0, column="k")
    b = make_entry("expect_table_row_count_to_be_between", 1, min_value=1)
    c = make_entry("expect_column_values_to_not_be_null", 2, column="f")
    result = failures_from_outcomes(
        frame, [_outcome(c, [2]), _outcome(b, None, success=True, observed=7), _outcome(a, [3])]
    )
    assert [v["index"] for v in result.verdicts] == [0, 1, 2]
    assert result.failures["_row_id"].to_list() == [53, 52]
    json.dumps(result.verdicts)
    with pytest.raises(ValueError, match="more than one outcome"):
        failures_from_outcomes(frame, [_outcome(a, [3]), _outcome(a, [3])])


def test_positions_outside_the_frame_are_refused(frame: pl.DataFrame) -> None:
    entry = make_entry("expect_column_values_to_not_be_null", column="k")
    with pytest.raises(ValueError, match="outside the frame"):
        failures_from_outcomes(frame, [_outcome(entry, [7])])
    with pytest.raises(ValueError, match="_row_id"):
        failures_from_outcomes(frame.drop("_row_id"), [_outcome(entry, [1])])


def test_json_safe() -> None:
    value = {
        "f": np.float64(1.5),
        "i": np.int32(3),
        "b": np.bool_(True),
        "nan": float("nan"),
        "d": dt.date(2024, 1, 2),
        "a": np.array([1, 2]),
        "t": (1, "x"),
    }
    assert json_safe(value) == {
        "f": 1.5,
        "i": 3,
        "b": True,
        "nan": "nan",
        "d": "2024-01-02",
        "a": [1, 2],
        "t": [1, "x"],
    }


def test_demo_suite_end_to_end_through_gx(trips_frame: pl.DataFrame) -> None:
    suite = load_suite(SUITE)
    assert len(suite.entries) == 26
    outcomes = run_gx(trips_frame, suite.entries)
    result = failures_from_outcomes(trips_frame, outcomes)
    assert sorted(_pairs(result)) == sorted(
        [
            (101, "trip_id|expect_column_values_to_be_unique"),
            (102, "vendor_id|expect_column_values_to_be_in_set"),
            (103, "passenger_count|expect_column_values_to_not_be_null"),
            (104, "trip_id|expect_column_values_to_match_regex"),
            (104, "medallion|expect_column_values_to_match_regex"),
            (105, "dropoff_at,pickup_at|expect_column_pair_values_a_to_be_greater_than_b"),
            (106, "tip_amount|expect_column_values_to_be_between"),
            (107, "payment_type|expect_column_values_to_be_in_set"),
            (107, "fare_amount|expect_column_values_to_be_between"),
        ]
    )
    failed = [v["index"] for v in result.verdicts if not v["success"]]
    assert failed == [2, 7, 12, 13, 14, 15, 20, 23, 24, 25]
    assert all(v["exception"] is None and v["engine"] == "gx" for v in result.verdicts)
    assert not result.critical_failed
    warn = result.failures.filter(pl.col("severity") == "warn")
    assert warn["_row_id"].to_list() == [106]
    assert warn["value"].to_list() == ["60.0"]
    assert 106 not in quarantining(result.failures)["_row_id"].to_list()
    unique = result.failures.filter(pl.col("rule") == "expect_column_values_to_be_unique")
    assert json.loads(unique["details"][0]) == {
        "duplicate_of": 100,
        "expectation_index": 2,
        "group_size": 2,
    }
    assert result.verdicts[25]["observed_value"] == pytest.approx((sum(range(10, 17)) + 600) / 8)
    json.dumps(result.verdicts)


def test_demo_suite_missing_column_fails_critical(trips_frame: pl.DataFrame) -> None:
    suite = load_suite(SUITE)
    frame = trips_frame.drop("medallion")
    result = failures_from_outcomes(frame, run_gx(frame, suite.entries))
    assert result.critical_failed
    assert result.verdicts[0]["success"] is False
    assert result.verdicts[13]["exception"] is not None
    assert "medallion" in result.verdicts[13]["exception"]


def test_rows_tolerated_by_mostly_still_fail_but_the_verdict_passes(frame: pl.DataFrame) -> None:
    entry = make_entry("expect_column_values_to_not_be_null", column="k", mostly=0.5)
    (outcome,) = run_gx(frame, [entry])
    assert outcome.success
    result = failures_from_outcomes(frame, [outcome])
    assert result.verdicts[0]["success"] is True
    assert result.failures["_row_id"].to_list() == [53, 56]


def test_every_verdict_says_passed_failed_or_could_not_run(frame: pl.DataFrame) -> None:
    passed = make_entry("expect_column_values_to_not_be_null", 0, column="m")
    failed = make_entry("expect_column_values_to_not_be_null", 1, column="k")
    broken = make_entry("expect_column_values_to_match_regex", 2, column="k", regex="a")
    result = failures_from_outcomes(
        frame,
        [
            _outcome(passed, []),
            _outcome(failed, [3, 6]),
            _outcome(broken, None, success=False, exception="x on k: too slow\nmore detail"),
        ],
    )
    states = [(v["state"], v.get("why")) for v in result.verdicts]
    assert states == [("passed", None), ("failed", None), ("could_not_run", "x on k: too slow")]
