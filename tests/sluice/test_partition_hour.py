"""Hourly partitions: values, canonical text, ranges over daylight-saving days, templates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pydantic import ValidationError

from sluice.cli.init import source_and_partition
from sluice.config import (
    Partition,
    PartitionSpec,
    PathTemplate,
    partition_range,
    partition_text,
    value_text,
    wall_clock_exists,
)
from sluice.core.errors import SluiceError
from sluice.lineage import span
from sluice.report.history import age_span

H5 = dt.datetime(2024, 3, 4, 5)


@pytest.mark.parametrize(
    "text", ["2024-03-04T05", "2024-03-04 05", "2024-03-04T05:00", "2024-03-04T05:00:00", H5]
)
def test_every_accepted_spelling_gives_one_canonical_hour(text: str | dt.datetime) -> None:
    p = Partition.parse(text, "hour", "stamp")
    assert p.start == H5
    assert str(p) == "2024-03-04T05"
    assert p.dirname == "stamp=2024-03-04T05"
    assert p.day == dt.date(2024, 3, 4)
    assert p == Partition.parse("2024-03-04T05", "hour", "other")
    assert len({p, Partition.parse("2024-03-04 05", "hour", "stamp")}) == 1


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("2024-03-04", "is not an hour of the form YYYY-MM-DDTHH"),
        ("2024-03-04T24", "is not an hour"),
        ("2024-02-30T01", "is not an hour"),
        ("2024-03-04T05:30", "is not an hour"),
        ("2024-03-04T5", "is not an hour"),
        (dt.date(2024, 3, 4), "is a day, not an hour"),
        (dt.datetime(2024, 3, 4, 5, 30), "is not the start of an hour"),
    ],
)
def test_anything_but_an_hour_is_refused_with_the_form(value: str | dt.date, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        Partition.parse(value, "hour", "stamp")


def test_an_hour_is_refused_where_days_or_months_are_expected() -> None:
    for kind in ("day", "month"):
        with pytest.raises(ValueError, match=f"is an hour; this dataset's partitions are {kind}s"):
            Partition.parse(H5, kind, "date")
        with pytest.raises(ValueError, match=f"is not a {kind}"):
            Partition.parse("2024-03-04T05", kind, "date")


def test_days_and_months_keep_their_text_and_start() -> None:
    day = Partition.parse("2024-03-04", "day", "date")
    month = Partition.parse("2024-03-17", "month", "date")
    assert (str(day), type(day.start), day.day) == ("2024-03-04", dt.date, dt.date(2024, 3, 4))
    assert (str(month), month.start, month.day) == ("2024-03", dt.date(2024, 3, 1), month.start)
    assert str(day.next()) == "2024-03-05"
    assert str(Partition.parse("2024-12", "month", "d").next()) == "2025-01"
    assert partition_text(dt.date(2024, 3, 4), "day") == "2024-03-04"


def test_next_hour_crosses_days_and_years() -> None:
    last = Partition.parse("2024-12-31T23", "hour", "h")
    assert str(last.next()) == "2025-01-01T00"
    assert str(Partition.parse("2024-03-04T05", "hour", "h").next()) == "2024-03-04T06"


def test_a_range_of_hours_is_inclusive_and_refuses_ends_that_are_not_hours() -> None:
    spec = PartitionSpec(key="stamp", kind="hour")
    parts = partition_range(spec, "2024-03-04T22", "2024-03-05 01")
    assert [str(p) for p in parts] == [
        "2024-03-04T22",
        "2024-03-04T23",
        "2024-03-05T00",
        "2024-03-05T01",
    ]
    assert partition_range(spec, H5, H5) == [Partition(H5, "hour", "stamp")]
    with pytest.raises(ValueError, match="is a day, not an hour"):
        partition_range(spec, dt.date(2024, 3, 4), "2024-03-04T05")
    with pytest.raises(ValueError, match="not an hour of the form YYYY-MM-DDTHH"):
        partition_range(spec, "2024-03-04T01", "2024-03-05")
    with pytest.raises(ValueError, match="end 2024-03-04T01 is before start 2024-03-04T05"):
        partition_range(spec, "2024-03-04T05", "2024-03-04T01")


def _day_of_hours(timezone: str, day: str) -> list[str]:
    spec = PartitionSpec(key="h", kind="hour", timezone=timezone)
    return [str(p) for p in partition_range(spec, f"{day}T00", f"{day}T23")]


def test_the_day_clocks_go_forward_has_23_hourly_partitions() -> None:
    hours = _day_of_hours("Europe/Paris", "2024-03-31")
    assert len(hours) == 23
    assert "2024-03-31T02" not in hours  # 02:00 to 03:00 never happens in Paris that day
    assert not wall_clock_exists(dt.datetime(2024, 3, 31, 2), "Europe/Paris")
    assert len(_day_of_hours("UTC", "2024-03-31")) == 24


def test_the_day_clocks_go_back_names_the_repeated_hour_once() -> None:
    hours = _day_of_hours("America/New_York", "2024-11-03")
    assert len(hours) == len(set(hours)) == 24  # 01:00 happens twice: one partition
    assert "2024-11-03T01" in hours
    spec = PartitionSpec(key="h", kind="hour", timezone="Europe/Paris")
    with pytest.raises(ValueError, match="holds no hour of time zone Europe/Paris"):
        partition_range(spec, "2024-03-31T02", "2024-03-31T02")


def test_an_unknown_time_zone_is_refused_at_load() -> None:
    with pytest.raises(ValidationError, match="'Mars/Olympus' is not an IANA time zone"):
        PartitionSpec(kind="hour", timezone="Mars/Olympus")


def test_a_template_names_the_hour_through_strftime_codes() -> None:
    t = PathTemplate.parse("raw/{stamp:%Y/%m/%d/%H}/x-{stamp}-{stamp:%I%p}.csv", "stamp", "hour")
    got = t.render(Partition.parse("2024-03-04T17", "hour", "stamp"))
    assert got == "raw/2024/03/04/17/x-2024-03-04T17-05PM.csv"
    assert t.fixed_prefix == "raw/"


def test_a_template_text_is_never_formatted_as_python() -> None:
    t = PathTemplate.parse("raw/{{stamp.__class__}}/{stamp:%H}", "stamp", "hour")
    assert t.render(Partition(H5, "hour", "stamp")) == "raw/{stamp.__class__}/05"
    with pytest.raises(ValueError, match="is not the partition key"):
        PathTemplate.parse("raw/{stamp.__class__}", "stamp", "hour")


def test_hour_codes_need_hourly_partitions() -> None:
    with pytest.raises(ValueError, match=r"'%H' is not a strftime code of a date \(the hour"):
        PathTemplate.parse("raw/{date:%Y/%m/%d/%H}/*.csv", "date", "day")
    with pytest.raises(ValueError, match="'%M' is not a strftime code of an hour"):
        PathTemplate.parse("raw/{stamp:%H%M}/*.csv", "stamp", "hour")


def test_value_text_writes_an_hour_as_the_cli_takes_it() -> None:
    assert value_text(H5) == "2024-03-04T05"
    assert value_text(dt.date(2024, 3, 4)) == "2024-03-04"
    assert value_text("2024-03") == "2024-03"


def test_lineage_spans_one_hour() -> None:
    assert span(Partition.parse("2024-03-04T23", "hour", "h")) == (
        dt.datetime(2024, 3, 4, 23),
        dt.datetime(2024, 3, 5, 0),
    )
    assert span(Partition.parse("2024-03-04", "day", "d"))[1] == dt.date(2024, 3, 5)


def test_a_reference_of_earlier_hours_is_told_in_hours() -> None:
    starts = [dt.datetime(2024, 3, 4, 1), dt.datetime(2024, 3, 4, 3)]
    text = age_span(starts, H5, "hour")  # type: ignore[arg-type]
    assert text == "2024-03-04T01 to 2024-03-04T03, 2 to 4 hours before this partition"


def test_init_suggests_hourly_partitions_for_hour_folders(tmp_path: Path) -> None:
    files = []
    for hour in ("04", "05"):
        folder = tmp_path / "feed" / f"stamp=2024-03-04T{hour}"
        folder.mkdir(parents=True)
        (folder / "part.csv").write_text("a\n1\n")
        files.append(folder / "part.csv")
    source, partition, why = source_and_partition(files, tmp_path)
    assert partition == {"key": "stamp", "kind": "hour"}
    assert source == "feed/stamp={stamp}/*.csv"
    assert "hold hours" in why


def test_init_suggests_hourly_partitions_for_dated_folders(tmp_path: Path) -> None:
    hours = [tmp_path / "feed" / "2024" / "03" / "04" / h / "part.csv" for h in ("04", "05")]
    source, partition, why = source_and_partition(hours, tmp_path)
    assert partition == {"key": "date", "kind": "hour"}
    assert source == "feed/{date:%Y/%m/%d/%H}/*.csv"
    assert "hold hours" in why
    days = [tmp_path / "feed" / "2024" / "03" / d / "part.csv" for d in ("04", "05")]
    assert source_and_partition(days, tmp_path)[:2] == (
        "feed/{date:%Y/%m/%d}/*.csv",
        {"key": "date", "kind": "day"},
    )
    not_hours = [tmp_path / "feed" / "2024" / "03" / "04" / h / "part.csv" for h in ("05", "25")]
    with pytest.raises(SluiceError, match="YYYY/MM/DD/HH folders"):
        source_and_partition(not_hours, tmp_path)  # 25 is no hour
