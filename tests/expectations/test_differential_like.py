"""Like patterns: GX has no pandas implementation, so SQLite's LIKE is the oracle here.

The polars engine gives SQL-standard LIKE answers (``%`` any run, ``_`` one character,
case-sensitive, an escape character only when ``escape`` is given), the answers SQLite gives with
``PRAGMA case_sensitive_like = ON``. GX on pandas reports an exception for these types, pinned
below as a documented difference.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import hypothesis.strategies as st
import polars as pl
import pytest
from hypothesis import given, settings

from expectations.gx_runner import run_gx
from expectations.polars_engine import run_polars
from expectations.results import ExpectationEntry
from tests.expectations.test_differential_support import LIKE_TYPES, entry

LIKE_ALPHABET = "ab%_!\\\né"
values = st.lists(st.one_of(st.none(), st.text(LIKE_ALPHABET, max_size=4)), max_size=8)
patterns = st.text(LIKE_ALPHABET, max_size=4)


def sqlite_like(value: str, pattern: str, escape: str | None) -> bool:
    """SQLite's case-sensitive LIKE."""
    with sqlite3.connect(":memory:") as db:
        db.execute("PRAGMA case_sensitive_like = ON")
        if escape is None:
            row = db.execute("SELECT ? LIKE ?", (value, pattern)).fetchone()
        else:
            row = db.execute("SELECT ? LIKE ? ESCAPE ?", (value, pattern, escape)).fetchone()
    return bool(row[0])


def valid_for_sqlite(pattern: str, escape: str | None) -> bool:
    """SQLite rejects a pattern ending in a lone escape character; skip those."""
    if escape is None:
        return True
    i = 0
    while i < len(pattern):
        if pattern[i] == escape:
            if i + 1 == len(pattern):
                return False
            i += 2
        else:
            i += 1
    return True


def expected_failing(type_: str, column: list[str | None], kwargs: dict[str, Any]) -> list[int]:
    escape = kwargs.get("escape")
    pats = kwargs.get("like_pattern_list") or [kwargs["like_pattern"]]
    out = []
    for pos, value in enumerate(column):
        if value is None:
            continue
        hits = [sqlite_like(value, p, escape) for p in pats]
        if type_.endswith("match_like_pattern"):
            ok = hits[0] if "not_" not in type_ else not hits[0]
        elif "not_" in type_:
            ok = not any(hits)
        else:
            ok = any(hits) if kwargs.get("match_on", "any") == "any" else all(hits)
        if not ok:
            out.append(pos)
    return out


@st.composite
def like_kwargs(draw: Any, type_: str) -> dict[str, Any]:
    escape = draw(st.sampled_from([None, "!", "\\"]))
    if type_.endswith("_list"):
        pats = draw(st.lists(patterns, min_size=1, max_size=3))
        pats = [p for p in pats if valid_for_sqlite(p, escape)] or ["%"]
        out: dict[str, Any] = {"like_pattern_list": pats}
        if "not_" not in type_ and draw(st.booleans()):
            out["match_on"] = draw(st.sampled_from(["any", "all"]))
    else:
        pat = draw(patterns)
        out = {"like_pattern": pat if valid_for_sqlite(pat, escape) else "%"}
    if escape is not None:
        out["escape"] = escape
    return {"column": "s", **out}


@pytest.mark.parametrize("type_", sorted(LIKE_TYPES))
def test_like_patterns_match_sqlite(type_: str) -> None:
    count = [0]

    @settings(max_examples=25, deadline=None, database=None, derandomize=True)
    @given(column=values, kwargs_list=st.lists(like_kwargs(type_), min_size=10, max_size=10))
    def check(column: list[str | None], kwargs_list: list[dict[str, Any]]) -> None:
        frame = pl.DataFrame({"s": pl.Series(column, dtype=pl.String)})
        entries = [entry(i, type_, kw) for i, kw in enumerate(kwargs_list)]
        for outcome, kw in zip(run_polars(frame, entries), kwargs_list, strict=True):
            assert outcome.unexpected_rows is not None
            expected = expected_failing(type_, column, kw)
            assert outcome.unexpected_rows.tolist() == expected, (column, kw)
            assert outcome.success == (not expected)
            count[0] += 1

    check()
    assert count[0] >= 200


@pytest.mark.parametrize("type_", sorted(LIKE_TYPES))
def test_gx_has_no_pandas_like_patterns(type_: str) -> None:
    frame = pl.DataFrame({"s": ["ab", "b"]})
    kwargs: dict[str, Any] = (
        {"column": "s", "like_pattern_list": ["a%"]}
        if type_.endswith("_list")
        else {"column": "s", "like_pattern": "a%"}
    )
    e: ExpectationEntry = entry(0, type_, kwargs)
    (gx,) = run_gx(frame, [e])
    (polars,) = run_polars(frame, [e])
    assert gx.exception is not None
    assert "No provider found" in gx.exception
    assert polars.exception is None
    assert polars.unexpected_rows is not None
