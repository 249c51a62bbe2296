"""Which hour a scheduled run of an hourly dataset screens, over Prefect's own cron dates.

The dates come from the server's ``CronSchedule`` (what the scheduler creates runs from), so a
change in how Prefect fires an hourly cron across daylight saving shows here; only the last test
runs flows (under the session's Prefect test harness).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prefect.runtime import flow_run
from prefect.server.schemas.schedules import CronSchedule

from flows.screen import backfill, local_hour, partition_at, scheduled_partition, screen_partition
from sluice.config import Partition, PartitionSpec, partition_range
from sluice.core.errors import SluiceError
from tests.conftest import SpecFactory

PARIS = "Europe/Paris"


def _cron_dates(cron: str, timezone: str, day: dt.date) -> list[dt.datetime]:
    zone = ZoneInfo(timezone)
    start = dt.datetime.combine(day, dt.time(0), zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), zone)
    dates = asyncio.run(CronSchedule(cron=cron, timezone=timezone).get_dates(start=start, end=end))
    return [dt.datetime.fromtimestamp(d.timestamp(), dt.UTC) for d in dates]


def _screened(day: dt.date, lag: int) -> list[str]:
    spec = PartitionSpec(key="h", kind="hour", timezone=PARIS, lag=lag)
    return [
        str(Partition(partition_at(when, spec), "hour"))
        for when in _cron_dates("15 * * * *", PARIS, day)
    ]


def _hours(first: str, last: str) -> list[str]:
    spec = PartitionSpec(key="h", kind="hour", timezone=PARIS)
    return [str(p) for p in partition_range(spec, first, last)]


def test_the_23_hour_day_screens_each_of_its_hours_once() -> None:
    screened = _screened(dt.date(2024, 3, 31), lag=1)
    assert len(screened) == 23  # 02:15 does not happen in Paris on 2024-03-31
    assert screened == _hours("2024-03-30T23", "2024-03-31T22")
    assert "2024-03-31T02" not in screened


def test_the_25_hour_day_screens_each_wall_clock_hour_once() -> None:
    # Prefect fires an hourly cron once for the repeated 02:xx (its first occurrence), so the
    # day of 25 hours has 24 runs; the run at 03:15 CET screens 02, after both 02s are over.
    runs = _cron_dates("15 * * * *", PARIS, dt.date(2024, 10, 27))
    assert len(runs) == 24
    screened = _screened(dt.date(2024, 10, 27), lag=1)
    assert screened == _hours("2024-10-26T23", "2024-10-27T22")
    at = {str(Partition(partition_at(w, PartitionSpec(kind="hour", timezone=PARIS)), "hour")): w
          for w in runs}  # fmt: skip
    assert at["2024-10-27T02"] == dt.datetime(2024, 10, 27, 2, 15, tzinfo=dt.UTC)


def test_the_lag_is_elapsed_hours_across_the_repeated_hour() -> None:
    # every real hour of 2024-10-27 in Paris (25 of them), one instant each
    first = dt.datetime(2024, 10, 26, 22, 30, tzinfo=dt.UTC)
    instants = [first + dt.timedelta(hours=i) for i in range(25)]
    named = [local_hour(i, PARIS) for i in instants]
    assert len(named) == 25
    assert len(set(named)) == 24
    assert named.count(dt.datetime(2024, 10, 27, 2)) == 2
    lagged = [local_hour(i, PARIS, lag=3) for i in instants]
    # 02:30 CEST and 02:30 CET, less 3 hours elapsed: 23:30 CEST and 00:30 CEST
    assert lagged[2:4] == [dt.datetime(2024, 10, 26, 23), dt.datetime(2024, 10, 27, 0)]


def test_a_lag_of_zero_screens_the_running_hour_and_utc_has_no_gaps() -> None:
    spec = PartitionSpec(kind="hour", timezone="UTC", lag=0)
    runs = _cron_dates("5 * * * *", "UTC", dt.date(2024, 3, 31))
    got = [partition_at(w, spec) for w in runs]
    assert got == [dt.datetime(2024, 3, 31, h) for h in range(24)]


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        (dt.datetime(2024, 3, 4, 7, 10, tzinfo=dt.UTC), dt.datetime(2024, 3, 4, 6)),
        (dt.datetime(2024, 3, 4, 0, 10, tzinfo=dt.UTC), dt.datetime(2024, 3, 3, 23)),
    ],
)
def test_a_scheduled_run_of_an_hourly_dataset_screens_the_hour_before(
    make_dataset: SpecFactory,
    monkeypatch: pytest.MonkeyPatch,
    utc: dt.datetime,
    expected: dt.datetime,
) -> None:
    partition = {"key": "date", "kind": "hour", "timezone": PARIS, "lag": 2}
    spec = make_dataset({}, extra={"partition": partition})
    monkeypatch.setattr(flow_run, "get_scheduled_start_time", lambda: utc)
    assert scheduled_partition(str(spec)) == expected


@pytest.mark.usefixtures("prefect_api")
def test_flows_take_hours_as_text(make_dataset: SpecFactory) -> None:
    rows = "id,amount,count,when,kind\na,1,1,2024-03-04 04:10:00,a\n"
    hourly = {"key": "date", "kind": "hour"}
    spec = str(
        make_dataset({"2024-03-04T04": rows, "2024-03-04T05": rows}, extra={"partition": hourly})
    )
    one: dict[str, Any] = screen_partition(spec, "2024-03-04 04")
    assert (one["partition"], one["counts"]["in"]) == ("2024-03-04T04", 1)
    result = backfill(spec, "2024-03-04T04", "2024-03-04T05:00")
    assert [s["partition"] for s in result["skipped"]] == ["2024-03-04T04"]
    assert [s["partition"] for s in result["screened"]] == ["2024-03-04T05"]
    with pytest.raises(SluiceError, match="partition 2024-03-04 is a day, not an hour"):
        backfill(spec, dt.date(2024, 3, 4), "2024-03-04T05")
