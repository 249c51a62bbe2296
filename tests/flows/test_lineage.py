"""OpenLineage events of Prefect flow runs: a run that fails sends FAIL, as in-process runs do."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.screen import screen_partition
from sluice.core.errors import CriticalCheckFailed, SluiceError
from tests.conftest import SpecFactory
from tests.openlineage import Received, check_event, receiver, schema_models

GOOD = "id,amount,count,when,kind\na,1,1,2024-01-01 10:00:00,a\nb,2,2,2024-01-01 11:00:00,a\n"


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[Received]:
    """An OpenLineage endpoint on 127.0.0.1; yields what it received."""
    with receiver(monkeypatch) as got:
        yield got


@pytest.mark.usefixtures("prefect_api")
def test_a_flow_run_that_stops_sends_start_then_fail(
    endpoint: Received, make_dataset: SpecFactory
) -> None:
    spec = str(make_dataset({"2024-01-01": GOOD}))
    with pytest.raises(SluiceError, match="no source files"):
        screen_partition(spec, dt.date(2024, 1, 2))
    events = [e for _, e in endpoint]
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    assert events[0]["run"]["runId"] == events[1]["run"]["runId"]
    assert events[1]["job"]["name"] == "tiny.screen"
    check_event(events[1], schema_models())
    assert "no source files" in events[1]["run"]["facets"]["errorMessage"]["message"]


@pytest.mark.usefixtures("prefect_api")
def test_a_flow_run_whose_critical_check_fails_sends_fail_with_its_outputs(
    endpoint: Received, make_dataset: SpecFactory
) -> None:
    suite = {
        "name": "crit",
        "expectations": [
            {
                "type": "expect_table_row_count_to_be_between",
                "kwargs": {"min_value": 10},
                "meta": {"severity": "critical"},
            }
        ],
    }
    spec = str(make_dataset({"2024-01-01": GOOD}, suite=suite))
    with pytest.raises(CriticalCheckFailed):
        screen_partition(spec, dt.date(2024, 1, 1))
    events = [e for _, e in endpoint]
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    check_event(events[1], schema_models())
    message = events[1]["run"]["facets"]["errorMessage"]["message"]
    assert "critical checks failed (_table|expect_table_row_count_to_be_between)" in message
    sides = {Path(o["name"]).parent.name: o for o in events[1]["outputs"]}
    assert sides["quarantine"]["outputFacets"]["outputStatistics"]["rowCount"] == 2
    assert sides["clean"]["outputFacets"]["outputStatistics"]["rowCount"] == 0
