"""What values that did not parse look like, and the declaration that would read them."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from sluice.config import ColumnSpec
from sluice.hints import examples, guess_format, type_hint

MOMENTS = [
    dt.datetime(2019, 1, 15, 3, 36, 12),
    dt.datetime(2019, 2, 28, 18, 5, 59),
    dt.datetime(2019, 12, 31, 23, 59, 0),
    dt.datetime(2020, 7, 13, 0, 0, 1),
]


@pytest.mark.parametrize(
    "written",
    [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%m/%d/%Y %I:%M:%S %p",
        "%d/%m/%Y %H:%M",
        "%d.%m.%Y %H:%M:%S",
        "%Y%m%d%H%M%S",
        "%d-%b-%Y %H:%M:%S",
    ],
)
def test_the_guessed_datetime_format_reads_back_the_moments_that_were_written(
    written: str,
) -> None:
    texts = [t.strftime(written) for t in MOMENTS]
    best, _ = guess_format(texts, "datetime")
    assert best is not None
    assert best.format is not None
    assert best.parsed == best.sampled == len(texts)
    back = pl.Series(texts).str.to_datetime(best.format, time_unit="us").to_list()
    assert [b.replace(second=0) for b in back] == [
        t.replace(second=0) for t in MOMENTS
    ]  # a format without seconds keeps minutes


@pytest.mark.parametrize("written", ["%d/%m/%Y", "%m/%d/%Y", "%Y%m%d", "%d %b %Y", "%d.%m.%Y"])
def test_the_guessed_date_format_reads_back_the_days_that_were_written(written: str) -> None:
    days = [t.date() for t in MOMENTS]
    texts = [d.strftime(written) for d in days]
    best, _ = guess_format(texts, "date")
    assert best is not None
    assert best.format is not None
    assert pl.Series(texts).str.strptime(pl.Date, best.format).to_list() == days


def test_days_that_read_either_way_name_both_formats() -> None:
    texts = ["01/03/2019", "11/02/2019", "03/04/2019"]
    line = type_hint(texts, ColumnSpec(type="date"))
    assert "'%m/%d/%Y'" in line
    assert "'%d/%m/%Y'" in line
    assert "check which one the source means" in line


def test_iso_timestamps_with_an_offset_suggest_a_format_polars_reads() -> None:
    texts = ["2019-01-15T03:36:12.123+01:00", "2019-01-16T04:00:00.5+01:00"]
    best, _ = guess_format(texts, "datetime")
    assert best is not None
    assert best.parsed == 2


def test_values_no_format_reads_are_said_to_be_so() -> None:
    line = type_hint(["hello", "world", "hello"], ColumnSpec(type="datetime", format="%Y"))
    assert line == "values look like 'hello', 'world'; no common datetime format parses them"


@pytest.mark.parametrize(
    ("values", "kind", "says"),
    [
        (["3,5", "1,25", "10,0"], "float", "a decimal comma"),
        (["1,234.5", "12,000", "999"], "float", "a ',' thousands separator"),
        (["1.234,5", "2.000,25"], "float", "a '.' thousands separator and a decimal comma"),
        (["$12.50", "$3"], "float", "a currency sign"),
        (["12%", "3.5 %"], "float", "a percent sign"),
        (["2.5", "3.0"], "int", "decimals, in a column declared int"),
    ],
)
def test_number_notations_are_named(values: list[str], kind: str, says: str) -> None:
    line = type_hint(values, ColumnSpec(type=kind))  # type: ignore[arg-type]
    assert says in line
    assert line.startswith(f"values look like {values[0]!r}")


def test_words_for_missing_values_are_pointed_at_null_values() -> None:
    line = type_hint(["N/A", "N/A", "x"], ColumnSpec(type="int"))
    assert "'N/A' looks like a missing value: add to source.csv.null_values" in line


def test_examples_are_distinct_and_most_frequent_first() -> None:
    assert examples(["b", "a", "b", None, "c", "b", "a"], 2) == ["b", "a"]
    long = "x" * 100
    assert "…" in type_hint([long], ColumnSpec(type="int"))


def test_a_declared_currency_is_not_suggested_again() -> None:
    declared = ColumnSpec(type="float", currency="$", thousands=",")
    assert "declare currency" not in type_hint(["$12,34", "$1,2"], declared)
    assert "declare currency" in type_hint(["$12,34", "$1,2"], ColumnSpec(type="float"))
