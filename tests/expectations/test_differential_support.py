"""Generators and comparison for the differential tests (polars engine against GX).

For every compiled type, :func:`cases` draws a frame (polars' parametric strategies) and a batch
of kwargs variants for that type, so that one GX call checks many configurations. Generated
values stay inside the space where the engines are meant to agree; each documented difference
(docs/engines.md) is left out here and pinned by an explicit test instead:

- like patterns (GX has no pandas implementation; compared with SQLite's LIKE instead);
- string bounds on datetime columns (GX 1.24 raises on pandas 3; bounds here are datetimes);
- integer columns with nulls for the type, regex and length checks (GX sees floats);
- ``column_index: 0`` (GX ignores it).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pandas as pd
import polars as pl
from polars.testing.parametric import column, dataframes

from expectations.results import ExpectationEntry, ExpectationOutcome

LIKE_TYPES = frozenset(
    {
        "expect_column_values_to_match_like_pattern",
        "expect_column_values_to_not_match_like_pattern",
        "expect_column_values_to_match_like_pattern_list",
        "expect_column_values_to_not_match_like_pattern_list",
    }
)
RUNNER_COUNT_BUG = "counted unexpected values but listed no positions"
GX_CANNOT_REPORT = ("is not JSON serializable", "Invalid result values were found")
NOT_BUILT = "GX cannot build the expectation"

TEXT_ALPHABET = "ab1 .\n_%A-"
T0 = dt.datetime(2020, 1, 1)

ints = st.integers(-3, 3)
floats = st.one_of(
    st.integers(-30, 30).map(lambda v: v / 10),
    st.sampled_from([0.0, -0.0, float("nan"), float("inf"), -float("inf")]),
)
texts = st.text(alphabet=TEXT_ALPHABET, max_size=3)
datetimes = st.integers(0, 4 * 24).map(lambda h: T0 + dt.timedelta(hours=h))


def _col(name: str, dtype: pl.DataType, strategy: Any, nulls: bool = True) -> column:
    return column(name, dtype=dtype, strategy=strategy, allow_null=nulls)


STANDARD_COLUMNS = [
    _col("i", pl.Int64(), ints),
    _col("n", pl.Int64(), ints, nulls=False),
    _col("f", pl.Float64(), floats),
    _col("s", pl.String(), texts),
    _col("b", pl.Boolean(), st.booleans()),
    _col("t", pl.Datetime("us"), datetimes),
]
NUMERIC = ["i", "n", "f"]
COMPARABLE = ["i", "n", "f", "s", "b", "t"]


def frames(cols: Sequence[column] = STANDARD_COLUMNS, max_size: int = 8) -> Any:
    """Frames of the given columns, 0 to ``max_size`` rows, with nulls and chunks."""
    return dataframes(list(cols), min_size=0, max_size=max_size).map(lambda df: df.rechunk())


def entry(index: int, type_: str, kwargs: dict[str, Any]) -> ExpectationEntry:
    """An entry as the suite loader would build it."""
    return ExpectationEntry(index=index, type=type_, kwargs=kwargs, meta={}, severity="error")


# ---- literal and condition generators --------------------------------------------------------


def literal_for(name: str) -> Any:
    """Literals of the column's own family."""
    if name in ("i", "n"):
        return ints
    if name == "f":
        return st.integers(-20, 20).map(lambda v: v / 10)
    if name == "s":
        return texts
    if name == "b":
        return st.booleans()
    if name == "t":
        return datetimes
    return st.none()


any_literal = st.one_of(ints, st.integers(-20, 20).map(lambda v: v / 10), texts, st.booleans())


@st.composite
def row_conditions(draw: Any, names: Sequence[str] = ("i", "n", "f", "s", "b")) -> str:
    """A pandas-syntax row condition over simple columns."""

    def atom() -> str:
        name = draw(st.sampled_from(list(names)))
        kind = draw(st.sampled_from(["cmp", "cmp", "null", "isin", "in", "col"]))
        if kind == "cmp":
            op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
            value = draw(
                st.one_of(literal_for(name), any_literal) if op in "==!=" else literal_for(name)
            )
            return f"{name} {op} {value!r}"
        if kind == "null":
            return f"{name}.{draw(st.sampled_from(['isnull', 'notnull', 'isna', 'notna']))}()"
        values = draw(st.lists(st.one_of(literal_for(name), st.none()), max_size=3))
        if kind == "isin":
            return f"{name}.isin({values!r})"
        if kind == "in":
            neg = draw(st.sampled_from(["in", "not in"]))
            return f"{name} {neg} {values!r}"
        numeric = [c for c in names if c in ("i", "n", "f")]
        other = draw(st.sampled_from(numeric if name in numeric else [name]))
        op = draw(st.sampled_from(["==", "!=", "<", ">="]))
        return f"{name} {op} {other}"

    parts = [atom() for _ in range(draw(st.integers(1, 3)))]
    out = parts[0]
    for part in parts[1:]:
        joiner = draw(st.sampled_from([" & ", " | ", " and ", " or "]))
        out = f"({out}){joiner}{part}" if draw(st.booleans()) else f"{out}{joiner}{part}"
    if draw(st.integers(0, 5)) == 0:
        out = f"~({out})"
    return out


@st.composite
def common(
    draw: Any, row_level: bool = True, names: Sequence[str] = ("i", "n", "f", "s", "b")
) -> dict[str, Any]:
    """``mostly`` and ``row_condition`` for some variants."""
    out: dict[str, Any] = {}
    if row_level and draw(st.integers(0, 3)) == 0:
        out["mostly"] = draw(st.sampled_from([0.0, 0.25, 0.5, 0.8, 0.9, 1.0]))
    if names and draw(st.integers(0, 3)) == 0:
        out["row_condition"] = draw(row_conditions(names))
        out["condition_parser"] = "pandas"
    return out


numeric_bounds = st.one_of(
    ints,
    st.integers(-20, 20).map(lambda v: v / 10),
    st.booleans(),
    st.sampled_from(["1.5", "-1", "2020-01-02"]),
)


def bound_literals(name: str) -> Any:
    """Bounds GX's model accepts: numbers, numeric text, date text; datetimes for ``t``."""
    if name == "t":
        return st.one_of(datetimes, datetimes, datetimes, ints)
    return numeric_bounds


def bounds(draw: Any, name: str, *, optional: bool = True) -> dict[str, Any]:
    """min/max GX accepts for this column (sometimes of another family), strict flags."""
    lit = bound_literals(name)
    lo = draw(st.one_of(st.none(), lit) if optional else lit)
    hi = draw(st.one_of(st.none(), lit))
    if lo is None and hi is None:
        hi = draw(lit)
    out: dict[str, Any] = {"min_value": lo, "max_value": hi}
    if draw(st.booleans()):
        out["strict_min"] = draw(st.booleans())
        out["strict_max"] = draw(st.booleans())
    return {k: v for k, v in out.items() if v is not None}


# ---- per-type kwargs --------------------------------------------------------------------------

REGEX_ATOMS = [
    "a", "b", "1", ".", r"\d", r"\s", r"\w", r"\S", r"\W", "$", "^", "[ab]", "[^a]", "(a|b)",
    "*", "+", "?", "{1,2}", r"\n", r"\b", "(?=a)", r"\Z", r"\A", "[A-Z]", r"\.", "(",
    "a*?", "[%_]", " ", r"(\w)\1",
]  # fmt: skip
regexes = st.tuples(
    st.sampled_from(["", "", "", "(?i)"]),
    st.lists(st.sampled_from(REGEX_ATOMS), min_size=1, max_size=4).map("".join),
).map("".join)

STRFTIME_FORMATS = ["%Y-%m-%d", "%d/%m/%y", "%H:%M", "%Y", "%b %d", "%Y%m%d", " %Y", "%y-%m"]
TYPE_NAMES = [
    "int", "int64", "int32", "Int64", "float", "float64", "float32", "str", "string", "object",
    "O", "bool", "boolean", "datetime64", "datetime64[ns]", "datetime64[us]", "Timestamp",
    "DatetimeTZDtype", "unknownType", "None", "list", "uint8", "StringDtype", "BooleanDtype",
    "number", "bytes", "object_", "bool_", "int8",
]  # fmt: skip


@st.composite
def date_like_texts(draw: Any) -> str:
    """Strings that are, or almost are, dates and times in various formats."""
    moment = draw(datetimes) + dt.timedelta(days=draw(st.integers(-400, 400)))
    fmt = draw(st.sampled_from([*STRFTIME_FORMATS, "%Y-%m-%d %H:%M:%S", "%d %B %Y", "%m/%d"]))
    text = moment.strftime(fmt)
    edit = draw(st.sampled_from(["", "", "lead", "trail", "junk", "swap", "feb30"]))
    if edit == "lead":
        text = " " + text
    elif edit == "trail":
        text += draw(st.sampled_from([" ", "\n", "Z", "x"]))
    elif edit == "junk":
        text = draw(texts)
    elif edit == "swap":
        text = text[::-1]
    elif edit == "feb30":
        text = "2021-02-30"
    return str(text)


JSON_TEXTS = [
    "1", '"a"', '{"a": 1}', "[1,", "NaN", " 1 ", "true", "True", "", "null", "{}", "[]", "1e5",
    "-0", "01", "'a'", '{"a":}', "Infinity", "[1, 2]", '"\\u00e9"', "1 2",
]  # fmt: skip


@dataclass(frozen=True)
class Family:
    """How to draw frames and kwargs variants for one expectation type."""

    frames: Any
    kwargs: Callable[[Any], dict[str, Any]]
    isolate: bool = False


def column_map_kwargs(
    names: Sequence[str],
    extra: Callable[[Any, str], dict[str, Any]],
    condition_names: Sequence[str] = ("i", "n", "f", "s", "b"),
) -> Any:
    """kwargs for a column-map type: a column, its own kwargs, mostly and row_condition."""

    def draw_kwargs(draw: Any) -> dict[str, Any]:
        name = draw(st.sampled_from(list(names)))
        return {"column": name, **extra(draw, name), **draw(common(names=condition_names))}

    return draw_kwargs


def _value_set(draw: Any, name: str) -> dict[str, Any]:
    values = draw(st.lists(st.one_of(literal_for(name), any_literal), max_size=4))
    return {"value_set": values}


def _between(draw: Any, name: str) -> dict[str, Any]:
    return bounds(draw, name)


def _regex(draw: Any, name: str) -> dict[str, Any]:
    return {"regex": draw(regexes)}


def _regex_list(draw: Any, name: str) -> dict[str, Any]:
    out: dict[str, Any] = {"regex_list": draw(st.lists(regexes, min_size=1, max_size=3))}
    if draw(st.booleans()):
        out["match_on"] = draw(st.sampled_from(["any", "all"]))
    return out


def _not_regex_list(draw: Any, name: str) -> dict[str, Any]:
    return {"regex_list": draw(st.lists(regexes, min_size=1, max_size=3))}


def _no_kwargs(draw: Any, name: str) -> dict[str, Any]:
    return {}


def _strictly(draw: Any, name: str) -> dict[str, Any]:
    return {"strictly": draw(st.booleans())} if draw(st.booleans()) else {}


def _lengths_between(draw: Any, name: str) -> dict[str, Any]:
    lo = draw(st.one_of(st.none(), st.integers(0, 5)))
    hi = draw(st.one_of(st.none(), st.integers(0, 5)))
    if lo is None and hi is None:
        hi = 2
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    out: dict[str, Any] = {k: v for k, v in (("min_value", lo), ("max_value", hi)) if v is not None}
    if draw(st.booleans()):
        out["strict_min"] = draw(st.booleans())
        out["strict_max"] = draw(st.booleans())
    return out


def _z(draw: Any, name: str) -> dict[str, Any]:
    return {
        "threshold": draw(st.sampled_from([0.5, 1, 1.2, 2, 3, -1])),
        "double_sided": draw(st.booleans()),
    }


def _type_(draw: Any, name: str) -> dict[str, Any]:
    return {"type_": draw(st.sampled_from(TYPE_NAMES))}


def _type_list(draw: Any, name: str) -> dict[str, Any]:
    return {"type_list": draw(st.lists(st.sampled_from(TYPE_NAMES), min_size=1, max_size=3))}


TYPE_COLUMNS = [
    _col("n", pl.Int64(), ints, nulls=False),
    _col("n8", pl.Int8(), ints, nulls=False),
    _col("u8", pl.UInt8(), st.integers(0, 5), nulls=False),
    _col("f", pl.Float64(), floats),
    _col("f32", pl.Float32(), floats),
    _col("s", pl.String(), texts),
    _col("c", pl.Categorical(), st.sampled_from(["x", "y"])),
    _col("b", pl.Boolean(), st.booleans()),
    _col("bn", pl.Boolean(), st.booleans(), nulls=False),
    _col("t", pl.Datetime("us"), datetimes),
    _col("d", pl.Date(), st.dates(dt.date(2020, 1, 1), dt.date(2020, 1, 9))),
]
TEXT_COLUMNS = [
    _col("s", pl.String(), texts),
    _col("n", pl.Int64(), st.integers(-120, 120), nulls=False),
    _col("b", pl.Boolean(), st.booleans()),
    _col("c", pl.Categorical(), st.sampled_from(["ab", "b\n", "1"])),
]
TEXT_NAMES = ["s", "n", "b", "c"]
TYPE_NAMES_OF_COLUMNS = [str(c.name) for c in TYPE_COLUMNS]
STRFTIME_COLUMNS = [_col("s", pl.String(), st.one_of(date_like_texts(), texts))]
JSON_COLUMNS = [
    _col("s", pl.String(), st.one_of(st.sampled_from(JSON_TEXTS), texts)),
    _col("n", pl.Int64(), ints),
]


def _pair_kwargs(
    extra: Callable[[Any, str, str], dict[str, Any]],
    names: Sequence[str] = COMPARABLE,
    *,
    conditions: bool = True,
) -> Any:
    def draw_kwargs(draw: Any) -> dict[str, Any]:
        a = draw(st.sampled_from(list(names)))
        b = draw(st.sampled_from(list(names)))
        out: dict[str, Any] = {"column_A": a, "column_B": b, **extra(draw, a, b)}
        if draw(st.booleans()):
            out["ignore_row_if"] = draw(
                st.sampled_from(["both_values_are_missing", "either_value_is_missing", "neither"])
            )
        return {**out, **draw(common(names=("i", "n", "f", "s", "b") if conditions else ()))}

    return draw_kwargs


no_bools = st.one_of(ints, st.integers(-20, 20).map(lambda v: v / 10), texts)


def _pair_in_set(draw: Any, a: str, b: str) -> dict[str, Any]:
    pairs = draw(
        st.lists(
            st.tuples(
                st.one_of(literal_for(a), st.none(), no_bools),
                st.one_of(literal_for(b), st.none(), no_bools),
            ).map(list),
            min_size=1,
            max_size=4,
        )
    )
    return {"value_pairs_set": pairs}


def _multi_kwargs(names: Sequence[str], extra: Callable[[Any], dict[str, Any]]) -> Any:
    def draw_kwargs(draw: Any) -> dict[str, Any]:
        cols = draw(st.lists(st.sampled_from(list(names)), min_size=2, max_size=3, unique=True))
        out: dict[str, Any] = {"column_list": cols, **extra(draw)}
        if draw(st.booleans()):
            out["ignore_row_if"] = draw(
                st.sampled_from(["all_values_are_missing", "any_value_is_missing", "never"])
            )
        return {**out, **draw(common())}

    return draw_kwargs


def _aggregate(names: Sequence[str], *, dates: bool = True) -> Any:
    def draw_kwargs(draw: Any) -> dict[str, Any]:
        name = draw(st.sampled_from(list(names)))
        found = bounds(draw, name)
        if not dates:
            found = {k: (v if not isinstance(v, str) else 1.5) for k, v in found.items()}
        return {"column": name, **found, **draw(common(row_level=False))}

    return draw_kwargs


def _unit_bounds(draw: Any) -> dict[str, Any]:
    unit = st.sampled_from([0, 0.2, 1 / 3, 0.5, 2 / 3, 0.75, 1])
    lo, hi = draw(st.one_of(st.none(), unit)), draw(st.one_of(st.none(), unit))
    if lo is None and hi is None:
        hi = 0.5
    out: dict[str, Any] = {k: v for k, v in (("min_value", lo), ("max_value", hi)) if v is not None}
    if draw(st.booleans()):
        out["strict_min"] = draw(st.booleans())
        out["strict_max"] = draw(st.booleans())
    return out


def _count_bounds(draw: Any, strict: bool = True) -> dict[str, Any]:
    lo = draw(st.one_of(st.none(), st.integers(0, 8)))
    hi = draw(st.one_of(st.none(), st.integers(0, 8)))
    if lo is None and hi is None:
        lo = 1
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    out: dict[str, Any] = {k: v for k, v in (("min_value", lo), ("max_value", hi)) if v is not None}
    if strict and draw(st.booleans()):
        out["strict_min"] = draw(st.booleans())
        out["strict_max"] = draw(st.booleans())
    return out


def _quantiles(draw: Any) -> dict[str, Any]:
    name = draw(st.sampled_from(NUMERIC))
    qs = sorted(
        draw(st.lists(st.sampled_from([0, 0.1, 0.25, 0.5, 0.75, 0.9, 1]), min_size=1, max_size=3))
    )
    edge = st.one_of(st.none(), st.integers(-30, 30).map(lambda v: v / 10))
    ranges = []
    for _ in qs:
        lo, hi = draw(edge), draw(edge)
        if lo is not None and hi is not None and lo > hi:
            lo, hi = hi, lo
        ranges.append([lo, hi])
    out: dict[str, Any] = {
        "column": name,
        "quantile_ranges": {"quantiles": qs, "value_ranges": ranges},
    }
    if draw(st.booleans()):
        out["allow_relative_error"] = draw(
            st.sampled_from([False, "linear", "lower", "higher", "midpoint", "nearest"])
        )
    return {**out, **draw(common(row_level=False))}


def _set_kwargs(draw: Any) -> dict[str, Any]:
    name = draw(st.sampled_from(["i", "n", "f", "s", "b"]))
    values = draw(
        st.lists(
            st.one_of(literal_for(name), literal_for(name), any_literal), min_size=1, max_size=5
        )
    )
    return {"column": name, "value_set": values, **draw(common(row_level=False))}


def _most_common(draw: Any) -> dict[str, Any]:
    out = _set_kwargs(draw)
    if draw(st.booleans()):
        out["ties_okay"] = draw(st.booleans())
    return out


def _column_simple(draw: Any, names: Sequence[str]) -> dict[str, Any]:
    return {"column": draw(st.sampled_from(list(names))), **draw(common(row_level=False))}


ALL_NAMES = [str(c.name) for c in STANDARD_COLUMNS]
name_sets = st.lists(st.sampled_from([*ALL_NAMES, "x", "y"]), max_size=7, unique=True)


def _table_kwargs(type_: str) -> Callable[[Any], dict[str, Any]]:
    def draw_kwargs(draw: Any) -> dict[str, Any]:
        if type_ == "expect_table_row_count_to_be_between":
            return {**_count_bounds(draw), **draw(common(row_level=False))}
        if type_ == "expect_table_row_count_to_equal":
            return {"value": draw(st.integers(0, 8)), **draw(common(row_level=False))}
        if type_ == "expect_table_column_count_to_be_between":
            return _count_bounds(draw, strict=False)
        if type_ == "expect_table_column_count_to_equal":
            return {"value": draw(st.integers(4, 8))}
        if type_ == "expect_table_columns_to_match_set":
            names = draw(name_sets)
            if draw(st.booleans()):
                names = ALL_NAMES
            out: dict[str, Any] = {"column_set": names}
            if draw(st.booleans()):
                out["exact_match"] = draw(st.booleans())
            return out
        if type_ == "expect_table_columns_to_match_ordered_list":
            names = draw(name_sets)
            if draw(st.booleans()):
                names = ALL_NAMES
            return {"column_list": names}
        index = draw(st.one_of(st.none(), st.integers(1, 7), st.integers(-7, -1)))
        out = {"column": draw(st.sampled_from([*ALL_NAMES, "x"]))}
        if index is not None:
            out["column_index"] = index
        return out

    return draw_kwargs


def _family(type_: str) -> Family:
    std = frames()
    cm = column_map_kwargs
    simple: dict[str, Family] = {
        "expect_column_values_to_not_be_null": Family(std, cm(ALL_NAMES, _no_kwargs)),
        "expect_column_values_to_be_null": Family(std, cm(ALL_NAMES, _no_kwargs)),
        "expect_column_values_to_be_in_set": Family(std, cm(ALL_NAMES[:5], _value_set)),
        "expect_column_values_to_not_be_in_set": Family(std, cm(ALL_NAMES[:5], _value_set)),
        "expect_column_values_to_be_between": Family(std, cm(COMPARABLE, _between)),
        "expect_column_values_to_match_regex": Family(
            frames(TEXT_COLUMNS), cm(TEXT_NAMES, _regex, TEXT_NAMES[:3])
        ),
        "expect_column_values_to_not_match_regex": Family(
            frames(TEXT_COLUMNS), cm(TEXT_NAMES, _regex, TEXT_NAMES[:3])
        ),
        "expect_column_values_to_match_regex_list": Family(
            frames(TEXT_COLUMNS), cm(TEXT_NAMES, _regex_list, TEXT_NAMES[:3])
        ),
        "expect_column_values_to_not_match_regex_list": Family(
            frames(TEXT_COLUMNS), cm(TEXT_NAMES, _not_regex_list, TEXT_NAMES[:3])
        ),
        "expect_column_values_to_match_strftime_format": Family(
            frames(STRFTIME_COLUMNS),
            cm(
                ["s"],
                lambda d, n: {"strftime_format": d(st.sampled_from(STRFTIME_FORMATS))},
                ["s"],
            ),
        ),
        "expect_column_values_to_be_dateutil_parseable": Family(
            frames(STRFTIME_COLUMNS), cm(["s"], _no_kwargs, ["s"])
        ),
        "expect_column_values_to_be_json_parseable": Family(
            frames(JSON_COLUMNS), cm(["s", "n"], _no_kwargs, ["s", "n"])
        ),
        "expect_column_values_to_be_unique": Family(std, cm(ALL_NAMES, _no_kwargs)),
        "expect_column_values_to_be_of_type": Family(
            frames(TYPE_COLUMNS), cm(TYPE_NAMES_OF_COLUMNS, _type_, ["n", "f", "s", "b"])
        ),
        "expect_column_values_to_be_in_type_list": Family(
            frames(TYPE_COLUMNS), cm(TYPE_NAMES_OF_COLUMNS, _type_list, ["n", "f", "s", "b"])
        ),
        "expect_column_values_to_be_increasing": Family(
            std, cm(["i", "n", "f", "s", "t"], _strictly)
        ),
        "expect_column_values_to_be_decreasing": Family(
            std, cm(["i", "n", "f", "s", "t"], _strictly)
        ),
        "expect_column_value_lengths_to_be_between": Family(
            frames(TEXT_COLUMNS), cm(TEXT_NAMES, _lengths_between, TEXT_NAMES[:3])
        ),
        "expect_column_value_lengths_to_equal": Family(
            frames(TEXT_COLUMNS),
            cm(TEXT_NAMES, lambda d, n: {"value": d(st.integers(0, 4))}, TEXT_NAMES[:3]),
        ),
        "expect_column_value_z_scores_to_be_less_than": Family(
            std, cm(["i", "n", "f", "b", "s"], _z)
        ),
        "expect_column_pair_values_a_to_be_greater_than_b": Family(
            std,
            _pair_kwargs(
                lambda d, a, b: {"or_equal": d(st.booleans())} if d(st.booleans()) else {}
            ),
        ),
        "expect_column_pair_values_to_be_equal": Family(std, _pair_kwargs(lambda d, a, b: {})),
        "expect_column_pair_values_to_be_in_set": Family(
            frames(STANDARD_COLUMNS[:4]),
            _pair_kwargs(_pair_in_set, ["i", "n", "f", "s"], conditions=False),
        ),
        "expect_compound_columns_to_be_unique": Family(
            frames(max_size=10), _multi_kwargs(ALL_NAMES, lambda d: {})
        ),
        "expect_select_column_values_to_be_unique_within_record": Family(
            std, _multi_kwargs(["i", "n", "f", "s", "b"], lambda d: {})
        ),
        "expect_multicolumn_sum_to_equal": Family(
            std,
            _multi_kwargs(
                ["i", "n", "f", "b"],
                lambda d: {"sum_total": d(st.sampled_from([0, 1, 2, -1, 0.5]))},
            ),
        ),
        "expect_column_min_to_be_between": Family(std, _aggregate(["i", "n", "f", "s", "t"])),
        "expect_column_max_to_be_between": Family(std, _aggregate(["i", "n", "f", "s", "t"])),
        "expect_column_mean_to_be_between": Family(std, _aggregate(NUMERIC)),
        "expect_column_median_to_be_between": Family(std, _aggregate(NUMERIC)),
        "expect_column_stdev_to_be_between": Family(std, _aggregate(NUMERIC, dates=False)),
        "expect_column_sum_to_be_between": Family(std, _aggregate(NUMERIC)),
        "expect_column_quantile_values_to_be_between": Family(std, _quantiles, isolate=True),
        "expect_column_unique_value_count_to_be_between": Family(
            std,
            lambda d: {
                **_column_simple(d, ["i", "n", "f", "s", "b"]),
                **_count_bounds(d),
            },
        ),
        "expect_column_proportion_of_unique_values_to_be_between": Family(
            std,
            lambda d: {**_column_simple(d, ["i", "n", "f", "s", "b"]), **_unit_bounds(d)},
        ),
        "expect_column_distinct_values_to_be_in_set": Family(std, _set_kwargs),
        "expect_column_distinct_values_to_contain_set": Family(std, _set_kwargs),
        "expect_column_distinct_values_to_equal_set": Family(std, _set_kwargs),
        "expect_column_most_common_value_to_be_in_set": Family(std, _most_common),
    }
    if type_ in simple:
        return simple[type_]
    if type_.startswith("expect_table_") or type_ == "expect_column_to_exist":
        return Family(std, _table_kwargs(type_))
    raise KeyError(type_)


def families(types: Sequence[str]) -> dict[str, Family]:
    """The generator family of every type that is compared with GX."""
    return {t: _family(t) for t in types if t not in LIKE_TYPES}


def gx_outcomes(
    type_: str, frame: pl.DataFrame, entries: Sequence[ExpectationEntry]
) -> list[ExpectationOutcome]:
    """GX's outcomes; one entry per GX call for types GX answers wrongly in a batch.

    GX 1.24 caches ``column.quantile_values`` per column whatever the quantiles asked, so two
    quantile expectations on one column in one suite get the same values (docs/engines.md).
    """
    from expectations.gx_runner import run_gx

    if _family(type_).isolate:
        return [run_gx(frame, [e])[0] for e in entries]
    return run_gx(frame, entries)


@st.composite
def cases(draw: Any, type_: str, variants: int) -> tuple[pl.DataFrame, list[ExpectationEntry]]:
    """A frame and ``variants`` entries of ``type_``."""
    fam = _family(type_)
    frame = draw(fam.frames)
    entries = [entry(i, type_, fam.kwargs(draw)) for i in range(variants)]
    return frame, entries


# ---- comparison -------------------------------------------------------------------------------


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, np.generic):
        a = a.item()
    if isinstance(b, np.generic):
        b = b.item()
    a = None if a is pd.NaT else a
    b = None if b is pd.NaT else b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, dt.datetime | pd.Timestamp) or isinstance(b, dt.datetime | pd.Timestamp):
        return bool(pd.Timestamp(a) == pd.Timestamp(b))
    if isinstance(a, int | float) and isinstance(b, int | float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return bool(a == b)


def comparable(gx: ExpectationOutcome) -> bool:
    """Whether GX gave an answer to compare with (it built the check and could report it)."""
    if gx.exception is None:
        return True
    return NOT_BUILT not in gx.exception and not any(t in gx.exception for t in GX_CANNOT_REPORT)


def mismatch(polars: ExpectationOutcome, gx: ExpectationOutcome) -> str | None:
    """What differs between two outcomes of the same entry, or ``None``."""
    g_exception = gx.exception
    g_success = gx.success
    if g_exception is not None and RUNNER_COUNT_BUG in g_exception:
        g_exception, g_success = None, False
    if g_exception is not None and any(text in g_exception for text in GX_CANNOT_REPORT):
        return None
    if (polars.exception is None) != (g_exception is None):
        return f"exception: polars {polars.exception!r} / gx {g_exception!r}"
    if g_exception is not None:
        return None
    if polars.success != g_success:
        return f"success: polars {polars.success} / gx {g_success}"
    if gx.exception is not None:
        return None
    if polars.unexpected_count != gx.unexpected_count:
        return f"unexpected_count: polars {polars.unexpected_count} / gx {gx.unexpected_count}"
    pr, gr = polars.unexpected_rows, gx.unexpected_rows
    if (pr is None) != (gr is None):
        return f"row-level: polars {pr} / gx {gr}"
    if pr is not None and gr is not None and not np.array_equal(pr, gr):
        return f"rows: polars {pr.tolist()} / gx {gr.tolist()}"
    if not _close(polars.observed_value, gx.observed_value):
        return f"observed: polars {polars.observed_value!r} / gx {gx.observed_value!r}"
    return None


def describe(frame: pl.DataFrame, e: ExpectationEntry, problem: str) -> str:
    """A failure message that reproduces the case."""
    return (
        f"{e.type} {e.kwargs}: {problem}\nframe = pl.DataFrame({frame.to_dict(as_series=False)!r})"
    )
