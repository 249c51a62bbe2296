"""The compiled strftime check answers as ``datetime.strptime`` does, value by value."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expectations.polars_engine import strftime
from tests.expectations.test_polars_engine import one, rows

FORMATS = [
    "%Y-%m-%d",
    "%d/%m/%y",
    "%H:%M",
    "%Y",
    "%Y%m%d",
    " %Y",
    "%y-%m",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%m/%d",
    "%m-%d",
    "%d.%m.%Y  %H:%M",
    "%%Y %Y",
    "%S",
    "%Y-%m-%d\t%H",
    "(%Y)[%m]",
]
ALPHABET = "0123456789 -/:.Tt%()[]x\t\n\x1f\xa0\u0661\uff12Z"


def strptime_ok(value: str, fmt: str) -> bool:
    try:
        dt.datetime.strptime(value, fmt)
    except ValueError:
        return False
    return True


@st.composite
def near_dates(draw: st.DrawFn) -> str:
    """Renderings of real moments in the formats, with one character inserted or dropped."""
    moment = dt.datetime(1, 1, 1) + dt.timedelta(seconds=draw(st.integers(0, 315_000_000_000)))
    text = moment.strftime(draw(st.sampled_from(FORMATS)))
    edit = draw(st.sampled_from(["", "", "insert", "drop"]))
    at = draw(st.integers(0, len(text)))
    if edit == "insert":
        text = text[:at] + draw(st.sampled_from(ALPHABET)) + text[at:]
    elif edit == "drop" and at < len(text):
        text = text[:at] + text[at + 1 :]
    return text


VALUES = st.lists(near_dates() | st.text(ALPHABET, max_size=14), min_size=1, max_size=60)
EDGES = [
    "2021-02-29",
    "2020-02-29",
    "1900-02-29",
    "2000-02-29",
    "0000-01-01",
    "2021-1-1",
    "2021-01-01 ",
    " 2021-01-01",
    "02/29",
    "02-29",
    "1999-12-31 23:59:60",
    "1999-12-31 23:59:61",
    "2024-01-01 1:2:3",
    "2024-04-31",
    "2024-06-30",
    "1/ 1",
    "2024-01-01t00:00:00.5",
    "",
]


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=60, deadline=None)
@given(values=VALUES)
def test_compiled_answers_equal_strptime(fmt: str, values: list[str]) -> None:
    compiled = strftime.compile_format(fmt)
    assert compiled is not None
    values = [*values, *EDGES]
    frame = pl.DataFrame({"s": values}, schema={"s": pl.String})
    asked: list[str] = []

    def python(value: str) -> bool:
        asked.append(value)
        return strptime_ok(value, fmt)

    got = frame.select(strftime.parses(pl.col("s"), compiled, python))
    for value, answer in zip(values, got.to_series().to_list(), strict=True):
        assert answer is strptime_ok(value, fmt), (fmt, value)
    assert all(not v.isascii() for v in asked)
    assert len(asked) == len(set(asked))


@pytest.mark.parametrize(
    "fmt", ["%b %d", "%Y-%j", "%Y %z", "%Y %Y", "%Y %y", "%Y-%m-%d %p", "%Y\u00e9", "%", "%Y-%"]
)
def test_formats_only_python_can_judge_are_not_compiled(fmt: str) -> None:
    assert strftime.compile_format(fmt) is None


@pytest.mark.parametrize("fmt", ["%Y-%m-%d", "%b %d", "%Y-%m-%d %H:%M:%S"])
def test_the_engine_agrees_with_strptime_on_ascii_and_other_values(fmt: str) -> None:
    values = [
        "2024-02-29",
        "2023-02-29",
        "\uff12\uff10\uff12\uff14-01-05",
        "2024-01-05\xa012:00:00",
        "2024-01-05 12:00:00",
        "Jan 05",
        "jan 32",
        None,
        "2024-01-05\u0661",
    ]
    frame = pl.DataFrame({"s": values}, schema={"s": pl.String})
    outcome = one(
        frame, "expect_column_values_to_match_strftime_format", column="s", strftime_format=fmt
    )
    expected = [i for i, v in enumerate(values) if v is not None and not strptime_ok(v, fmt)]
    assert rows(outcome) == expected


def dateutil_ok(value: str) -> bool:
    from dateutil.parser import parse  # type: ignore[import-untyped]

    try:
        parse(value)
    except (ValueError, OverflowError):
        return False
    return True


@st.composite
def near_iso(draw: st.DrawFn) -> str:
    """ISO-8601 renderings of real moments (any year from 1), some edited into impossible ones."""
    moment = dt.datetime(1, 1, 1) + dt.timedelta(seconds=draw(st.integers(0, 315_000_000_000)))
    fmt = draw(st.sampled_from([*strftime.ISO_FORMATS, "%Y-%m-%d %H:%M:%S.%f", "%d/%m/%Y"]))
    text = moment.strftime(fmt.replace("%Y", f"{moment.year:04d}"))
    edit = draw(st.sampled_from(["", "", "feb30", "sec60", "month13", "insert"]))
    if edit == "feb30":
        text = text[:4] + "-02-30" + text[10:]
    elif edit == "sec60" and len(text) >= 19:
        text = text[:17] + "60"
    elif edit == "month13":
        text = text[:5] + "13" + text[7:]
    elif edit == "insert":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(ALPHABET)) + text[at:]
    return text


@settings(max_examples=80, deadline=None)
@given(values=st.lists(near_iso() | st.text(ALPHABET, max_size=12), min_size=1, max_size=40))
def test_iso_fast_path_answers_as_dateutil(values: list[str]) -> None:
    asked: list[str] = []

    def python(value: str) -> bool:
        asked.append(value)
        return dateutil_ok(value)

    frame = pl.DataFrame({"s": [*values, None]}, schema={"s": pl.String})
    got = frame.select(strftime.iso_or_python(pl.col("s"), python)).to_series().to_list()
    assert got[-1] is None
    for value, answer in zip(values, got, strict=False):
        assert answer is dateutil_ok(value), value
    assert len(asked) == len(set(asked))


def test_real_iso_timestamps_never_reach_the_parser() -> None:
    values = ["2024-02-29", "0001-01-01T00:00", "9999-12-31 23:59:59", "2023-02-29", "05/01/2024"]
    asked: list[str] = []

    def python(value: str) -> bool:
        asked.append(value)
        return dateutil_ok(value)

    frame = pl.DataFrame({"s": values})
    got = frame.select(strftime.iso_or_python(pl.col("s"), python)).to_series().to_list()
    assert got == [dateutil_ok(v) for v in values] == [True, True, True, False, True]
    assert sorted(asked) == ["05/01/2024", "2023-02-29"]
