"""Prefect artifacts: their content from a manifest, and their keys on a real flow run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from sluice.report.artifacts import artifact_key, artifact_payloads, rules_table
from tests.conftest import SpecFactory

MANIFEST: dict[str, Any] = {
    "dataset": "Taxi_Trips",
    "partition": {"key": "date", "value": "2024-01-02", "kind": "day"},
    "status": "passed",
    "critical": [],
    "counts": {
        "in": 1000,
        "clean": 900,
        "quarantine": 100,
        "quarantined_by_reason": {"fare|type": 10, "outlier|default": 60, "id|unique": 30},
        "warnings_by_reason": {"tip|between": 5},
    },
    "findings": {
        "quarantined_by_stage": {"ingest": 10, "validate": 30, "screen": 60, "partition": 0},
        "alarms": [
            {
                "scope": "column",
                "name": "zone|x",
                "metric": "null_rate",
                "kind": "rate",
                "value": 0.15,
                "median": 0.0,
                "low": 0.0,
                "high": 0.005,
                "reference": "3 earlier Tuesdays",
                "direction": "above",
            }
        ],
        "drift": [{"column": "fare", "test": "ks", "statistic": 0.24, "p_value": 1e-80}],
        "judged_metrics": 40,
        "learning_metrics": 0,
        "drift_tested": ["fare"],
    },
    "outputs": {"report": {"path": "/data/reports/date=2024-01-02/report.html"}},
}


def test_keys_are_stable_per_dataset_and_valid_for_prefect() -> None:
    assert artifact_key("Taxi_Trips", "summary") == "sluice-taxi-trips-summary"
    assert artifact_key("__", "report") == "sluice-dataset-report"


def test_table_lists_quarantining_rules_first_then_warnings() -> None:
    table = rules_table(MANIFEST)
    assert [r["reason"] for r in table] == [
        "outlier|default",
        "id|unique",
        "fare|type",
        "tip|between",
    ]
    assert [r["stage"] for r in table] == ["screen", "validate", "ingest", "validate"]
    assert table[-1]["severity"] == "warn"
    assert table[0]["share_of_rows_in"] == 0.06


def test_markdown_flags_alarms_and_drift_and_links_the_report() -> None:
    p = artifact_payloads({"dataset": "Taxi_Trips", "partition": "2024-01-02"}, MANIFEST)
    md = p.markdown
    assert md.startswith("# Taxi_Trips 2024-01-02: passed\n")
    assert "**900 of 1,000 rows clean (90.00%)**, 100 quarantined." in md
    listed = [ln for ln in md.splitlines() if ln.startswith("- **")]
    assert listed == [
        "- **alarm**: column `zone\\|x` null rate is 15.00%, above the expected 0.00% to 0.50% "
        "(median 0.00% of 3 earlier Tuesdays)",
        "- **drift**: column `fare`: KS D = 0.240, p = 1e-80 against 0 earlier partitions",
    ]
    assert "| `outlier\\|default` | screen | 60 | 6.00% |" in md
    assert p.report_uri == Path("/data/reports/date=2024-01-02/report.html").as_uri()
    assert p.keys["failed-rules"] == "sluice-taxi-trips-failed-rules"


def test_nothing_unusual_is_said_so() -> None:
    quiet = {**MANIFEST, "findings": {**MANIFEST["findings"], "alarms": [], "drift": []}}
    md = artifact_payloads({}, quiet).markdown
    assert "Needs attention" not in md
    assert "Nothing unusual: 40 metrics judged" in md


@pytest.mark.usefixtures("prefect_api")
def test_a_flow_run_publishes_the_three_artifacts(make_dataset: SpecFactory) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    from flows.screen import screen_partition

    csv = "id,amount,count,when,kind\na,1,1,2024-01-01 10:00:00,a\nb,200,2,2024-01-01 11:00:00,c\n"
    spec = str(make_dataset({"2024-01-01": csv}))
    state = screen_partition(spec, dt.date(2024, 1, 1), force=True, return_state=True)
    summary = state.result()
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    keys = [artifact_key("tiny", w) for w in ("summary", "failed-rules", "report")]
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=keys),
                flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]),
            )
        )
    by_key = {a.key: a for a in found}
    assert set(by_key) == set(keys)
    assert by_key[keys[0]].type == "markdown"
    data = str(by_key[keys[0]].data)
    assert "# tiny 2024-01-01: WARNED" in data  # half the rows quarantined
    assert "- **warning**: run: 1 of 2 rows (50.0%) quarantined" in data
    assert by_key[keys[1]].type == "table"
    assert "amount|expect_column_values_to_be_between" in str(by_key[keys[1]].data)
    report = Path(summary["manifest"]).parent / "report.html"
    assert report.exists()
    assert report.resolve().as_uri() in str(by_key[keys[2]].data)
