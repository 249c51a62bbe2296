"""Hand-written cases for the polars engine: one pass, GX rules, each documented difference."""

from __future__ import annotations

import datetime as dt
import re
import statistics
from typing import Any

import numpy as np
import polars as pl
import pytest

from expectations.gx_runner import run_gx
from expectations.polars_engine import (
    SUPPORTED_TYPES,
    ExpectationRaised,
    pyregex,
    run_polars,
    supports,
)
from expectations.polars_engine.row_condition import compile_row_condition, condition_columns
from expectations.results import ExpectationEntry, ExpectationOutcome
from sluice.core.errors import ConfigError


def entry(name: str, index: int = 0, /, **kwargs: Any) -> ExpectationEntry:
    return ExpectationEntry(index=index, type=name, kwargs=kwargs, meta={}, severity="error")


def one(frame: pl.DataFrame, name: str, /, **kwargs: Any) -> ExpectationOutcome:
    (out,) = run_polars(frame, [entry(name, **kwargs)])
    return out


def rows(outcome: ExpectationOutcome) -> list[int]:
    assert outcome.unexpected_rows is not None
    return [int(r) for r in outcome.unexpected_rows]


FRAME = pl.DataFrame(
    {
        "id": [1, 2, 2, 4, None],
        "fare": [10.0, float("nan"), 600.0, -1.0, 5.0],
        "zone": ["a", "b", None, "a", "c"],
    }
)


def test_a_whole_suite_is_collected_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = pl.LazyFrame.collect

    def counting(self: pl.LazyFrame, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pl.LazyFrame, "collect", counting)
    entries = [
        entry("expect_column_values_to_not_be_null", 0, column="id"),
        entry("expect_column_values_to_be_unique", 1, column="id"),
        entry("expect_column_values_to_be_between", 2, column="fare", min_value=0, max_value=500),
        entry("expect_column_values_to_be_in_set", 3, column="zone", value_set=["a", "b"]),
        entry("expect_column_mean_to_be_between", 4, column="fare", min_value=0),
        entry("expect_table_row_count_to_be_between", 5, min_value=1),
        entry("expect_column_values_to_be_increasing", 6, column="id"),
    ]
    outcomes = run_polars(FRAME, entries)
    assert len(calls) == 1
    assert [o.entry.index for o in outcomes] == list(range(7))
    assert all(o.engine == "polars" for o in outcomes)


def test_column_map_ignores_missing_values_and_counts_positions() -> None:
    out = one(
        FRAME, "expect_column_values_to_be_between", column="fare", min_value=0, max_value=500
    )
    assert rows(out) == [2, 3]
    assert out.unexpected_count == 2
    assert not out.success


def test_not_be_null_counts_nan_as_missing_like_gx() -> None:
    out = one(FRAME, "expect_column_values_to_not_be_null", column="fare")
    assert rows(out) == [1]
    (gx,) = run_gx(FRAME, [entry("expect_column_values_to_not_be_null", column="fare")])
    assert gx.unexpected_rows is not None
    assert gx.unexpected_rows.tolist() == [1]


@pytest.mark.parametrize(
    ("mostly", "success"), [(0.5, True), (0.5001, False), (1.0, False), (0.0, True)]
)
def test_mostly_divides_by_non_missing_values(mostly: float, success: bool) -> None:
    frame = pl.DataFrame({"x": [1, 2, 99, 98, None, None]})
    out = one(
        frame, "expect_column_values_to_be_in_set", column="x", value_set=[1, 2], mostly=mostly
    )
    assert out.unexpected_count == 2
    assert out.success is success


def test_not_be_null_mostly_divides_by_all_rows() -> None:
    frame = pl.DataFrame({"x": [1, None, None, 4]})
    assert one(frame, "expect_column_values_to_not_be_null", column="x", mostly=0.5).success
    assert not one(frame, "expect_column_values_to_not_be_null", column="x", mostly=0.51).success


def test_all_missing_column_is_vacuously_true() -> None:
    frame = pl.DataFrame({"x": pl.Series([None, None], dtype=pl.Int64)})
    out = one(frame, "expect_column_values_to_be_in_set", column="x", value_set=[1])
    assert out.success
    assert out.unexpected_count == 0


def test_unique_marks_every_occurrence() -> None:
    assert rows(one(FRAME, "expect_column_values_to_be_unique", column="id")) == [1, 2]


def test_increasing_skips_missing_values_and_compares_neighbours() -> None:
    frame = pl.DataFrame({"x": [1, None, 3, 2, 2, 5]})
    assert rows(one(frame, "expect_column_values_to_be_increasing", column="x")) == [3]
    strict = one(frame, "expect_column_values_to_be_increasing", column="x", strictly=True)
    assert rows(strict) == [3, 4]


def test_row_condition_restricts_domain_and_keeps_positions() -> None:
    out = one(
        FRAME,
        "expect_column_values_to_be_between",
        column="fare",
        min_value=0,
        max_value=500,
        row_condition='zone == "a"',
        condition_parser="pandas",
    )
    assert rows(out) == [3]


@pytest.mark.parametrize(
    ("condition", "kept"),
    [
        ("id > 1 & zone == 'a'", [3]),
        ("id > 1 | zone == 'c'", [1, 2, 3, 4]),
        ("zone != 'a'", [1, 2, 4]),
        ("zone.isnull()", [2]),
        ("zone.notnull() and not id == 2", [0, 3, 4]),
        ("zone.isin(['a', None])", [0, 2, 3]),
        ("id in [1, 4]", [0, 3]),
        ("id == [1, 4]", [0, 3]),
        ("id not in [1, 4]", [1, 2, 4]),
        ("~(fare >= 10)", [1, 3, 4]),
        ("fare > id", [0, 2]),
        ("1 < id <= 2", [1, 2]),
        ("`zone` == 'b'", [1]),
        ("id == True", [0]),
        ("zone == 1", []),
        ("zone != 1", [0, 1, 2, 3, 4]),
    ],
)
def test_row_condition_has_pandas_semantics(condition: str, kept: list[int]) -> None:
    mask = FRAME.select(compile_row_condition(condition, FRAME.schema)).to_series()
    assert mask.arg_true().to_list() == kept
    pdf = FRAME.to_pandas()
    assert pdf.query(condition, parser="pandas").index.tolist() == kept


def test_row_condition_type_error_is_an_exception_outcome() -> None:
    out = one(FRAME, "expect_column_values_to_not_be_null", column="id", row_condition="zone > 1")
    assert out.exception is not None
    assert not out.success


def test_row_condition_outside_the_subset_goes_to_gx() -> None:
    e = entry("expect_column_values_to_not_be_null", column="id", row_condition="id + 1 > 2")
    assert not supports(e, FRAME)
    assert not supports(entry("expect_column_values_to_not_be_null", row_condition="@x > 1"))
    assert supports(entry("expect_column_values_to_not_be_null", row_condition="id > 1"))


def test_row_condition_columns() -> None:
    assert condition_columns("a > 1 & `b c`.isnull() | d in ['x']") == {"a", "b c", "d"}
    assert condition_columns("a >") is None


def test_unsupported_entry_names_itself_and_the_supported_types() -> None:
    e = ExpectationEntry(
        index=3,
        type="expect_column_kl_divergence_to_be_less_than",
        kwargs={"column": "id"},
        meta={},
        severity="error",
        line=17,
    )
    with pytest.raises(ConfigError) as err:
        run_polars(FRAME, [e], path="suite.json")
    message = str(err.value)
    assert "suite.json:17" in message
    assert "expectations[3]" in message
    assert "expect_column_values_to_be_unique" in message


def test_unsupported_dtype_goes_to_gx() -> None:
    e = entry("expect_column_values_to_match_regex", column="fare", regex="^1")
    assert not supports(e, FRAME)
    assert supports(e)


def test_catch_exceptions_false_raises() -> None:
    e = entry("expect_column_values_to_not_be_null", column="missing", catch_exceptions=False)
    with pytest.raises(ExpectationRaised, match="missing"):
        run_polars(FRAME, [e])
    (out,) = run_polars(FRAME, [entry("expect_column_values_to_not_be_null", column="missing")])
    assert out.exception is not None
    assert "does not exist" in out.exception


def test_provenance_columns_are_not_data() -> None:
    frame = FRAME.with_columns(pl.int_range(5, dtype=pl.UInt64).alias("_row_id"))
    out = one(frame, "expect_table_column_count_to_equal", value=3)
    assert out.success
    assert out.observed_value == 3


def test_batch_level_observed_values() -> None:
    out = one(FRAME, "expect_column_max_to_be_between", column="fare", max_value=100)
    assert not out.success
    assert out.observed_value == 600.0
    assert out.unexpected_rows is None
    med = one(FRAME, "expect_column_median_to_be_between", column="fare", min_value=7, max_value=8)
    assert med.success
    assert med.observed_value == 7.5
    mcv = one(FRAME, "expect_column_most_common_value_to_be_in_set", column="zone", value_set=["a"])
    assert mcv.success
    assert mcv.observed_value == ["a"]
    sets = one(FRAME, "expect_table_columns_to_match_set", column_set=["id", "fare"])
    assert not sets.success
    assert sets.observed_value == ["fare", "id", "zone"]


def test_every_supported_type_compiles_on_a_plain_frame() -> None:
    frame = pl.DataFrame({"a": [1, 2], "b": [2, 1], "s": ["x", "y"]})
    kwargs: dict[str, dict[str, Any]] = {
        "expect_column_values_to_be_in_set": {"value_set": [1]},
        "expect_column_values_to_not_be_in_set": {"value_set": [1]},
        "expect_column_values_to_be_between": {"min_value": 0},
        "expect_column_values_to_match_regex": {"regex": "x"},
        "expect_column_values_to_not_match_regex": {"regex": "x"},
        "expect_column_values_to_match_regex_list": {"regex_list": ["x"]},
        "expect_column_values_to_not_match_regex_list": {"regex_list": ["x"]},
        "expect_column_values_to_match_like_pattern": {"like_pattern": "x%"},
        "expect_column_values_to_not_match_like_pattern": {"like_pattern": "x%"},
        "expect_column_values_to_match_like_pattern_list": {"like_pattern_list": ["x%"]},
        "expect_column_values_to_not_match_like_pattern_list": {"like_pattern_list": ["x%"]},
        "expect_column_values_to_match_strftime_format": {"strftime_format": "%Y"},
        "expect_column_values_to_be_of_type": {"type_": "str"},
        "expect_column_values_to_be_in_type_list": {"type_list": ["str"]},
        "expect_column_value_lengths_to_be_between": {"min_value": 1},
        "expect_column_value_lengths_to_equal": {"value": 1},
        "expect_column_value_z_scores_to_be_less_than": {"threshold": 3},
        "expect_column_pair_values_to_be_in_set": {"value_pairs_set": [[1, 2]]},
        "expect_multicolumn_sum_to_equal": {"sum_total": 3},
        "expect_table_row_count_to_equal": {"value": 2},
        "expect_table_column_count_to_equal": {"value": 3},
        "expect_table_columns_to_match_set": {"column_set": ["a", "b", "s"]},
        "expect_table_columns_to_match_ordered_list": {"column_list": ["a", "b", "s"]},
        "expect_column_quantile_values_to_be_between": {
            "quantile_ranges": {"quantiles": [0.5], "value_ranges": [[0, 3]]}
        },
        "expect_column_distinct_values_to_be_in_set": {"value_set": [1, 2]},
        "expect_column_distinct_values_to_contain_set": {"value_set": [1]},
        "expect_column_distinct_values_to_equal_set": {"value_set": [1, 2]},
        "expect_column_most_common_value_to_be_in_set": {"value_set": [1], "ties_okay": True},
        "sluice.expect_column_values_to_follow_majority_by": {"column": "a", "by": ["b"]},
        "sluice.expect_column_values_to_not_be_rare_variants": {"column": "s"},
        "sluice.expect_compound_columns_to_be_unique_after_normalising": {
            "column_list": ["s", "b"],
            "transform": ["casefold", "digits"],
        },
        "sluice.expect_rows_to_not_be_near_duplicates": {"block_on": ["a"], "compare": ["s"]},
    }
    text_types = {t for t in kwargs if "regex" in t or "like" in t or "type" in t}
    text_types |= {
        "expect_column_values_to_match_strftime_format",
        "expect_column_values_to_be_dateutil_parseable",
        "expect_column_values_to_be_json_parseable",
        "expect_column_value_lengths_to_be_between",
        "expect_column_value_lengths_to_equal",
    }
    entries = []
    for i, type_ in enumerate(SUPPORTED_TYPES):
        kw = dict(kwargs.get(type_, {}))
        if type_.startswith("expect_column_pair"):
            kw.update(column_A="a", column_B="b")
        elif type_.startswith(("expect_compound", "expect_select", "expect_multicolumn")):
            kw["column_list"] = ["a", "b"]
        elif type_.startswith("expect_column"):
            kw["column"] = "s" if type_ in text_types else "a"
        if "between" in type_ and not {"min_value", "max_value", "quantile_ranges"} & kw.keys():
            kw["min_value"] = 0
        entries.append(entry(type_, i, **kw))
    outcomes = run_polars(frame, entries)
    assert [o.exception for o in outcomes] == [None] * len(entries)


# ---- regexes: Python's answers on polars -------------------------------------------------------

REGEX_CASES = [
    (r"^ab$", ["ab", "ab\n", "ab\n\n", "xab"]),
    (r"^\d+$", ["12", "١٢", "1a", "²"]),
    (r"\s", ["a b", "a\x1cb", "a\u00a0b", "ab"]),
    (r"^\w+$", ["ab_1", "é", "a\u0301", "½", "a-b"]),
    (r"[^\d\s]", ["1 ", "1a", "\x1f"]),
    (r"a|b$", ["xa", "b\n", "c"]),
    (r"(a|b){2}\Z", ["ab", "ab\n"]),
    (r"a(?=b)", ["ab", "ac"]),
    (r"(\w)\1", ["aa", "ab"]),
    (r"\bb", ["a b", "ab"]),
    (r"(?i)A", ["a", "b"]),
]


@pytest.mark.parametrize(("pattern", "values"), REGEX_CASES)
def test_regex_answers_are_pythons(pattern: str, values: list[str]) -> None:
    series = pl.Series("s", values)
    got = pl.select(pyregex.contains(pl.lit(series), pattern)).to_series().to_list()
    assert got == [re.search(pattern, v) is not None for v in values]


def test_regex_translation_falls_back_only_when_needed() -> None:
    assert pyregex.translate(r"^T[0-9]{9}$") is not None
    assert pyregex.translate(r"^\d+$") is not None
    for pattern in [r"a(?=b)", r"(\w)\1", r"\bb", r"(?i)a", r"a$b", r"a++"]:
        assert pyregex.translate(pattern) is None


def test_invalid_regex_is_an_exception_like_gx() -> None:
    out = one(FRAME, "expect_column_values_to_match_regex", column="zone", regex="(")
    assert out.exception is not None
    assert not out.success


# ---- documented differences (docs/engines.md), each pinned ------------------------------------


def both(frame: pl.DataFrame, e: ExpectationEntry) -> tuple[ExpectationOutcome, ExpectationOutcome]:
    (p,) = run_polars(frame, [e])
    (g,) = run_gx(frame, [e])
    return p, g


def test_difference_datetime_bounds_written_as_text() -> None:
    frame = pl.DataFrame({"t": [dt.datetime(2020, 1, 1), dt.datetime(2021, 1, 1), None]})
    e = entry("expect_column_values_to_be_between", column="t", min_value="2020-06-01")
    p, g = both(frame, e)
    assert g.exception is not None
    assert "Cannot compare" in g.exception
    assert p.exception is None
    assert rows(p) == [0]
    m = entry("expect_column_max_to_be_between", column="t", max_value="2020-06-01")
    p, g = both(frame, m)
    assert g.exception is not None
    assert p.exception is None
    assert not p.success
    assert p.observed_value == dt.datetime(2021, 1, 1)


def test_difference_float_mean_stdev_and_sum_are_correctly_rounded() -> None:
    values = [1e16, 1.0, -1e16, 1.0, None]
    chunked = pl.concat(
        [pl.DataFrame({"x": values[:2]}), pl.DataFrame({"x": values[2:]})], rechunk=False
    )
    for frame in (pl.DataFrame({"x": values}), chunked, chunked.reverse()):
        mean = entry("expect_column_mean_to_be_between", column="x", min_value=0)
        total = entry("expect_column_sum_to_be_between", column="x", min_value=0)
        stdev = entry("expect_column_stdev_to_be_between", column="x", min_value=0)
        got = run_polars(frame, [mean, total, stdev])
        assert [o.observed_value for o in got[:2]] == [0.5, 2.0]
        assert got[2].observed_value == statistics.stdev([1e16, 1.0, -1e16, 1.0])
    (g,) = run_gx(
        pl.DataFrame({"x": values}),
        [entry("expect_column_sum_to_be_between", column="x", min_value=0)],
    )
    assert g.observed_value != 2.0


def test_difference_integer_column_with_nulls_keeps_its_type() -> None:
    frame = pl.DataFrame({"n": [1, None, 30]})
    p, g = both(frame, entry("expect_column_values_to_be_of_type", column="n", type_="int64"))
    assert g.observed_value == "float64"
    assert not g.success
    assert p.observed_value == "int64"
    assert p.success
    p, g = both(frame, entry("expect_column_values_to_match_regex", column="n", regex=r"^\d+$"))
    assert g.unexpected_count == 2
    assert p.unexpected_count == 0
    p, g = both(frame, entry("expect_column_value_lengths_to_equal", column="n", value=2))
    assert g.unexpected_rows is not None
    assert g.unexpected_rows.tolist() == [0, 2]
    assert rows(p) == [0]


def test_difference_column_index_zero_means_the_first_column() -> None:
    frame = pl.DataFrame({"a": [1], "b": [2]})
    p, g = both(frame, entry("expect_column_to_exist", column="b", column_index=0))
    assert g.success
    assert not p.success
    assert one(frame, "expect_column_to_exist", column="a", column_index=0).success


def test_difference_quantiles_of_two_entries_on_one_column() -> None:
    frame = pl.DataFrame({"n": [1, 2, 3, 4, 5]})

    def quantiles(index: int, qs: list[float]) -> ExpectationEntry:
        ranges = {"quantiles": qs, "value_ranges": [[None, None]] * len(qs)}
        return entry(
            "expect_column_quantile_values_to_be_between", index, column="n", quantile_ranges=ranges
        )

    pair = [quantiles(0, [0.1, 1]), quantiles(1, [0.5, 0.9])]
    gx = run_gx(frame, pair)
    assert gx[1].observed_value == {"quantiles": [0.5, 0.9], "values": [1, 5]}
    polars = run_polars(frame, pair)
    assert polars[1].observed_value == {"quantiles": [0.5, 0.9], "values": [3.0, 5.0]}


def test_pair_in_set_honours_the_row_condition_on_both_engines() -> None:
    frame = pl.DataFrame({"i": [1, -3], "f": [0.5, float("nan")], "s": ["", ""]})
    e = entry(
        "expect_column_pair_values_to_be_in_set",
        column_A="s",
        column_B="f",
        value_pairs_set=[[" ", None]],
        ignore_row_if="either_value_is_missing",
        row_condition="i <= 0",
    )
    p, g = both(frame, e)
    assert rows(g) == rows(p) == []
    assert p.success
    assert g.success


def test_failing_integer_pairs_under_a_row_condition_on_both_engines() -> None:
    frame = pl.DataFrame({"a": [2, -3, 2], "b": [-3, 2, 3]})
    e = entry(
        "expect_column_pair_values_to_be_in_set",
        column_A="a",
        column_B="b",
        value_pairs_set=[[2, -3]],
        row_condition="a > 0",
    )
    p, g = both(frame, e)
    assert g.exception is None
    assert rows(g) == rows(p) == [2]


def test_difference_python_regex_that_re2_reads_as_text() -> None:
    frame = pl.DataFrame({"s": ["aa", "a{,2}", "b"]})
    p, g = both(frame, entry("expect_column_values_to_match_regex", column="s", regex="^a{,2}$"))
    assert g.unexpected_rows is not None
    assert g.unexpected_rows.tolist() == [0, 2]
    assert rows(p) == [1, 2]


def test_same_pattern_python_rejects_runs_on_re2_like_pandas() -> None:
    frame = pl.DataFrame({"s": ["a", "ab", "b"]})
    p, g = both(frame, entry("expect_column_values_to_match_regex", column="s", regex=r"^+a\Z"))
    assert g.unexpected_rows is not None
    assert rows(p) == g.unexpected_rows.tolist() == [1, 2]
    bad = entry("expect_column_values_to_match_regex", column="s", regex=r"a*?*")
    p, g = both(frame, bad)
    assert p.exception is not None
    assert g.exception is not None
    possessive = entry("expect_column_values_to_match_regex", column="s", regex=r"\w++")
    p, g = both(frame, possessive)
    assert p.exception is not None
    assert g.exception is not None
    p, g = both(pl.DataFrame({"s": ["é", "?"]}), possessive)
    assert p.exception is None
    assert g.exception is None
    assert g.unexpected_rows is not None
    assert rows(p) == g.unexpected_rows.tolist() == [1]
    empty = pl.DataFrame({"s": pl.Series([None], dtype=pl.String)})
    p, g = both(empty, bad)
    assert p.success
    assert g.success


# ---- quirks where the polars engine answers as GX does (pinned so they stay that way) ----------


def test_same_dollar_matches_before_a_trailing_newline() -> None:
    frame = pl.DataFrame({"s": ["ab", "ab\n", "ab\n\n"]})
    p, g = both(frame, entry("expect_column_values_to_match_regex", column="s", regex="^ab$"))
    assert rows(p) == [2]
    assert g.unexpected_rows is not None
    assert g.unexpected_rows.tolist() == [2]


def test_same_strftime_leading_space_and_two_digit_years() -> None:
    frame = pl.DataFrame({"s": [" 2020-01-02", "2020-01-02", "2021-02-29", "69-01", "68-12"]})
    p, g = both(
        frame,
        entry(
            "expect_column_values_to_match_strftime_format", column="s", strftime_format="%Y-%m-%d"
        ),
    )
    assert rows(p) == [0, 2, 3, 4]
    assert g.unexpected_rows is not None
    assert g.unexpected_rows.tolist() == rows(p)
    p, g = both(
        frame,
        entry("expect_column_values_to_match_strftime_format", column="s", strftime_format="%y-%m"),
    )
    assert rows(p) == [0, 1, 2]
    assert g.unexpected_rows is not None
    assert g.unexpected_rows.tolist() == rows(p)


def test_same_nan_is_missing() -> None:
    frame = pl.DataFrame({"f": [1.0, float("nan"), None]})
    p, g = both(frame, entry("expect_column_values_to_be_null", column="f"))
    assert rows(p) == [0]
    assert g.unexpected_rows is not None
    assert np.array_equal(g.unexpected_rows, [0])
