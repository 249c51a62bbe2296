from __future__ import annotations

from typing import Any

import pytest

from flows import alerts


def summary(
    n_in: int = 1000, quarantine: int = 10, status: str = "passed", **extra: Any
) -> dict[str, Any]:
    return {
        "dataset": "trips",
        "partition": "2024-03-04",
        "status": status,
        "critical": extra.pop("critical", []),
        "counts": {
            "in": n_in,
            "clean": n_in - quarantine,
            "quarantine": quarantine,
            "quarantined_by_reason": extra.pop("by_reason", {}),
        },
        "manifest": "/reports/trips/pickup_date=2024-03-04/manifest.json",
    }


def test_a_rate_at_or_below_the_limit_raises_nothing() -> None:
    assert alerts.judge(summary(1000, 50), 0.05) == []
    assert alerts.judge(summary(0, 0), 0.0) == []


def test_a_rate_above_the_limit_raises_one_alert_with_the_top_reasons() -> None:
    by_reason = {f"c{i}|rule": i for i in range(1, 8)}
    (alert,) = alerts.judge(summary(1000, 51, by_reason=by_reason), 0.05)
    assert alert.event == alerts.QUARANTINE_RATE_HIGH
    assert alert.message == (
        "trips 2024-03-04: 5.10% of 1000 rows quarantined, above the 5.00% limit"
    )
    assert alert.payload["quarantine_rate"] == pytest.approx(0.051)
    assert list(alert.payload["top_reasons"]) == [
        "c7|rule",
        "c6|rule",
        "c5|rule",
        "c4|rule",
        "c3|rule",
    ]


def test_a_failed_critical_check_raises_only_the_failure() -> None:
    (alert,) = alerts.judge(
        summary(1000, 1000, status="failed", critical=["trips|expect_table_row_count"]), 0.05
    )
    assert alert.event == alerts.FAILED
    assert "expect_table_row_count" in alert.message
    assert alert.payload["critical"] == ["trips|expect_table_row_count"]


def test_emit_sends_screened_then_each_alert_about_the_partition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(
        alerts, "emit_event", lambda event, **kw: sent.append({"event": event, **kw})
    )
    s = summary(100, 60)
    names = alerts.emit(s, alerts.judge(s, 0.5))
    assert names == [e["event"] for e in sent] == [alerts.SCREENED, alerts.QUARANTINE_RATE_HIGH]
    for e in sent:
        assert e["resource"]["prefect.resource.id"] == "sluice.partition.trips.2024-03-04"
        assert e["resource"]["sluice.dataset"] == "trips"
        assert e["related"] == [alerts.dataset_resource("trips")]
    assert sent[0]["payload"]["quarantined"] == 60
    assert sent[1]["payload"]["message"].startswith("trips 2024-03-04: 60.00%")


def test_a_warned_run_raises_a_warning_naming_its_causes_and_the_rate_alert_still_applies() -> None:
    causes = [
        {"level": "warn", "message": "ingest: 3 of 100 rows (3.0%) did not parse"},
        {"level": "warn", "message": "x|y: expectation 2 could not run"},
    ]
    s = {**summary(100, 6, status="warned"), "causes": causes}
    warned, high = alerts.judge(s, 0.05)
    assert warned.event == alerts.WARNED
    assert warned.message == (
        "trips 2024-03-04: warned: ingest: 3 of 100 rows (3.0%) did not parse; "
        "x|y: expectation 2 could not run"
    )
    assert warned.payload["causes"] == [c["message"] for c in causes]
    assert high.event == alerts.QUARANTINE_RATE_HIGH
    (only,) = alerts.judge(s, 0.5)
    assert only.event == alerts.WARNED


def test_a_run_failed_by_policy_names_its_error_causes_not_the_warnings() -> None:
    causes = [
        {"level": "error", "message": "when|type: 100 of 100 rows (100.0%) did not parse"},
        {"level": "warn", "message": "something minor"},
    ]
    s = {**summary(100, 100, status="failed"), "causes": causes}
    (alert,) = alerts.judge(s, 0.05)
    assert alert.event == alerts.FAILED
    assert alert.message == (
        "trips 2024-03-04: failed: when|type: 100 of 100 rows (100.0%) did not parse"
    )
    assert alert.payload["causes"] == [causes[0]["message"]]
