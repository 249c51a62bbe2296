"""The judge of a run, fed numbers by hand; and the measurements it is fed from a failures table."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.config import PoliciesSpec, Threshold
from sluice.core.failures import concat_failures, make_failures
from sluice.verdict import (
    CouldNotRun,
    DetectorNotRun,
    FailedCheck,
    Measurements,
    judge,
    measure,
    stage_of_reason,
    verdict_state,
)

DEFAULT = PoliciesSpec()


def m(rows_in: int = 1000, quarantined: int = 0, **kw: Any) -> Measurements:
    return Measurements(rows_in=rows_in, quarantined=quarantined, **kw)


def test_a_run_with_nothing_quarantined_passes() -> None:
    v = judge(m(), DEFAULT)
    assert v.status == "passed"
    assert v.causes == ()
    assert judge(m(rows_in=0), DEFAULT).status == "passed"


def test_every_row_failing_to_parse_fails_the_run_naming_the_rule_the_stage_and_the_run() -> None:
    hint = "declared datetime; format '%d/%m/%Y %H:%M' parses 200 of 200 sampled values"
    v = judge(
        m(
            10_000,
            10_000,
            by_stage={"ingest": 10_000},
            by_reason={"pickup|type": 10_000},
            hints={"pickup|type": hint},
        ),
        DEFAULT,
    )
    assert v.status == "failed"
    assert [(c.kind, c.name, c.level) for c in v.causes] == [
        ("rule", "pickup|type", "error"),
        ("stage", "ingest", "error"),
        ("run", "run", "error"),
    ]
    rule = v.causes[0]
    assert rule.message == (
        "pickup|type: 10,000 of 10,000 rows (100.0%) did not parse, above the 50.0% error "
        f"threshold (policies.per_rule.error); {hint}"
    )
    assert rule.share == 1.0
    assert rule.threshold == 0.5
    assert "most: pickup|type 10,000" in v.causes[1].message
    assert hint not in v.causes[1].message  # said once, on the rule's own cause


def test_a_share_equal_to_a_threshold_does_not_cross_it() -> None:
    at = m(1000, 50, by_stage={"validate": 50}, by_reason={"a|r": 50})
    assert judge(at, DEFAULT).status == "passed"
    above = m(1000, 51, by_stage={"validate": 51}, by_reason={"a|r": 51})
    v = judge(above, DEFAULT)
    assert v.status == "warned"
    assert {(c.kind, c.policy) for c in v.causes} == {
        ("stage", "policies.stages.validate.warn"),
        ("run", "policies.quarantine.warn"),
    }


def test_a_threshold_of_zero_means_any_row_and_null_switches_a_level_off() -> None:
    strict = PoliciesSpec(rules={"a|r": Threshold(warn=None, error=0.0)})
    v = judge(m(1000, 1, by_stage={"validate": 1}, by_reason={"a|r": 1}), strict)
    assert v.status == "failed"
    assert [c.policy for c in v.errors] == ["policies.rules['a|r'].error"]
    off = PoliciesSpec(
        quarantine=Threshold(warn=None, error=None),
        per_rule=Threshold(warn=None, error=None),
    )
    lots = m(1000, 900, by_stage={"screen": 900}, by_reason={"outlier|iforest": 900})
    v = judge(lots, off)
    assert [(c.kind, c.name, c.level) for c in v.causes] == [("stage", "screen", "error")]


def test_the_ingest_stage_names_its_largest_reasons_with_their_hints() -> None:
    policies = PoliciesSpec(per_rule=Threshold(warn=None, error=None))
    v = judge(
        m(
            100,
            60,
            by_stage={"ingest": 60},
            by_reason={"a|type": 30, "b|type": 20, "_row|malformed": 10, "c|rule": 5},
            hints={"a|type": "values look like 'x'"},
        ),
        policies,
    )
    stage = next(c for c in v.causes if c.kind == "stage")
    assert stage.level == "error"
    assert stage.message.endswith(
        "most: a|type 30, b|type 20, _row|malformed 10; a|type: values look like 'x'"
    )


def test_a_check_that_could_not_run_warns_or_fails_as_the_policy_says() -> None:
    cnr = [CouldNotRun("kind|expect_x", 3, "expect_x", "GX raised TypeError")]
    v = judge(m(could_not_run=cnr), DEFAULT)
    assert v.status == "warned"
    (cause,) = v.causes
    assert cause.kind == "could_not_run"
    assert cause.message == (
        "kind|expect_x: expectation 3 could not run: GX raised TypeError; its rows were not "
        "checked (policies.could_not_run: warn)"
    )
    assert judge(m(could_not_run=cnr), PoliciesSpec(could_not_run="error")).status == "failed"


def test_a_detector_that_did_not_run_warns_or_fails_as_the_policy_says() -> None:
    skipped = [DetectorNotRun("knn", "8 batch rows to fit on; knn needs 11", 8)]
    v = judge(m(detectors_not_run=skipped), DEFAULT)
    assert v.status == "warned"
    (cause,) = v.causes
    assert (cause.kind, cause.name, cause.policy) == (
        "could_not_run",
        "outlier|knn",
        "could_not_run",
    )
    assert cause.message == (
        "outlier|knn: detector 'knn' did not run (8 batch rows to fit on; knn needs 11); the 8 "
        "rows that passed validation were not screened by it (policies.could_not_run: warn)"
    )
    strict = judge(m(detectors_not_run=skipped), PoliciesSpec(could_not_run="error"))
    assert strict.status == "failed"


def test_a_skipped_detector_counts_only_when_rows_were_left_unscreened() -> None:
    records = [
        {"name": "knn", "skipped": True, "reason": "3 batch rows to fit on; knn needs 11"},
        {"name": "ecod", "skipped": False},
    ]
    empty = concat_failures([])
    got = measure(empty, rows_in=3, quarantined=0, critical=[], verdicts=[], detectors=records,
                  screened_rows=3)  # fmt: skip
    assert got.detectors_not_run == (
        DetectorNotRun("knn", "3 batch rows to fit on; knn needs 11", 3),
    )
    # no row reached the screen (every one quarantined before it): nothing went unscreened
    none = measure(empty, rows_in=3, quarantined=3, critical=[], verdicts=[], detectors=records,
                   screened_rows=0)  # fmt: skip
    assert none.detectors_not_run == ()


def test_a_failed_critical_check_fails_and_its_reason_is_not_judged_again() -> None:
    v = judge(
        m(10, 10, by_reason={"_table|expect_x": 10}, critical=["_table|expect_x"]),
        DEFAULT,
    )
    assert v.status == "failed"
    assert [(c.kind, c.name) for c in v.causes] == [("critical", "_table|expect_x")]


def test_errors_come_before_warnings() -> None:
    v = judge(
        m(
            100,
            60,
            by_stage={"validate": 60},
            by_reason={"a|r": 60},
            could_not_run=[CouldNotRun("b|r", 1, "r", "why")],
        ),
        DEFAULT,
    )
    levels = [c.level for c in v.causes]
    assert levels == sorted(levels, key=lambda lv: lv != "error")
    assert v.warnings
    assert v.errors
    assert v.as_dict()["status"] == "failed"


@pytest.mark.parametrize(
    ("verdict", "state"),
    [
        ({"state": "could_not_run", "success": True}, "could_not_run"),
        ({"state": "passed", "success": False}, "passed"),
        ({"success": False, "exception": "boom"}, "could_not_run"),
        ({"success": True, "exception": None}, "passed"),
        ({"success": False, "exception": None}, "failed"),
    ],
)
def test_verdict_state_reads_the_state_field_else_derives_it(
    verdict: dict[str, Any], state: str
) -> None:
    assert verdict_state(verdict) == state


def test_measure_counts_distinct_quarantined_rows_per_stage_and_reason() -> None:
    failures = concat_failures(
        [
            make_failures([1, 2], column="a", rule="type", severity="error"),
            make_failures([2, 3], column="b", rule="expect_x", severity="error"),
            make_failures([3], column="c", rule="expect_y", severity="error"),
            make_failures([4], column="outlier", rule="iforest", severity="error"),
            make_failures([5], column="d", rule="expect_z", severity="warn"),
            make_failures([1, 2, 3, 4, 5], column="_table", rule="crit", severity="critical"),
        ]
    )
    verdicts = [
        {"reason": "b|expect_x", "index": 0, "type": "expect_x", "success": False,
         "failing_rows": 2},
        {"reason": "_table|expect_n", "index": 2, "type": "expect_n", "success": False,
         "severity": "error", "failing_rows": 0, "observed_value": 3},
        {"reason": "e|expect_w", "index": 1, "type": "expect_w", "state": "could_not_run",
         "why": "too slow\nsecond line"},
    ]  # fmt: skip
    got = measure(failures, rows_in=5, quarantined=4, critical=[], verdicts=verdicts)
    assert got.by_stage == {"ingest": 2, "validate": 2, "screen": 1}
    assert got.by_reason == {"a|type": 2, "b|expect_x": 2, "c|expect_y": 1, "outlier|iforest": 1}
    assert got.could_not_run == (CouldNotRun("e|expect_w", 1, "expect_w", "too slow"),)
    assert got.failed_checks == (FailedCheck("_table|expect_n", 2, "error", "3"),)


def test_stage_of_reason() -> None:
    assert stage_of_reason("a|type") == "ingest"
    assert stage_of_reason("_row|malformed") == "ingest"
    assert stage_of_reason("outlier|iforest") == "screen"
    assert stage_of_reason("id|key_duplicate") == "validate"


def test_a_failed_check_that_marks_no_rows_fails_or_warns_by_its_severity() -> None:
    batch = [
        FailedCheck("_table|expect_table_row_count_to_be_between", 0, "error", "3"),
        FailedCheck("fare|expect_column_mean_to_be_between", 4, "warn", "81.5"),
    ]
    v = judge(m(failed_checks=batch), DEFAULT)
    assert v.status == "failed"
    assert [(c.kind, c.level) for c in v.causes] == [("check", "error"), ("check", "warn")]
    assert v.causes[0].message == (
        "_table|expect_table_row_count_to_be_between: expectation 0 failed (severity error, "
        "observed 3); it marks no rows"
    )
    assert judge(m(failed_checks=batch[1:]), DEFAULT).status == "warned"
