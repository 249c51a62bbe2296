"""Row-level expectations: each compiles to the rows it considers and the rows that fail it.

Semantics follow GX's pandas metric providers on the frame the GX runner builds: column-map
expectations ignore missing values (except ``not_be_null`` and ``be_null``), column-pair and
multicolumn ones drop rows by ``ignore_row_if``, and a check GX would raise on (a string bound on a
number column, ``diff`` of strings) raises :class:`CheckError` so the outcome is an exception.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import polars as pl

from expectations.polars_engine import dtypes, pyregex, strftime
from expectations.polars_engine.dtypes import Kind
from expectations.polars_engine.plan import CheckError, Ctx, RowPlan, Unsupported

Compiler = Callable[[Ctx], RowPlan]


def column_map(ctx: Ctx, column: str, failing: pl.Expr) -> RowPlan:
    """A column-map plan: missing values are not considered."""
    return RowPlan(domain=ctx.domain, considered=ctx.domain & ~ctx.missing(column), failing=failing)


def _kind(ctx: Ctx, column: str) -> Kind:
    return dtypes.kind(ctx.dtype(column))


def not_be_null(ctx: Ctx) -> RowPlan:
    """``expect_column_values_to_not_be_null``."""
    col = ctx.column()
    return RowPlan(ctx.domain, ctx.domain, ctx.missing(col), denominator="domain")


def be_null(ctx: Ctx) -> RowPlan:
    """``expect_column_values_to_be_null``."""
    col = ctx.column()
    return RowPlan(ctx.domain, ctx.domain, ~ctx.missing(col), denominator="domain")


def _set_member(ctx: Ctx, column: str, values: Sequence[Any]) -> pl.Expr:
    """``Series.isin(values)`` on the non-missing values of a column."""
    k = _kind(ctx, column)
    if k in ("int", "float", "bool"):
        numbers = [
            int(v) if isinstance(v, bool) else v
            for v in values
            if isinstance(v, int | float) and not (isinstance(v, float) and math.isnan(v))
        ]
        expr = ctx.value(column)
        if k == "bool":
            expr = expr.cast(pl.Int8)
        ints = [v for v in numbers if isinstance(v, int)]
        if k != "float" and len(ints) == len(numbers):
            in_range = [v for v in ints if -(2**63) <= v < 2**63]
            return expr.cast(pl.Int64).is_in(pl.Series(in_range, dtype=pl.Int64).implode())
        floats = [float(v) for v in numbers]
        return expr.cast(pl.Float64).is_in(pl.Series(floats, dtype=pl.Float64).implode())
    if k == "string":
        strings = [v for v in values if isinstance(v, str)]
        return pl.col(column).cast(pl.String).is_in(pl.Series(strings, dtype=pl.String).implode())
    raise Unsupported(f"set membership on a {ctx.dtype(column)} column")


def _value_set(ctx: Ctx) -> list[Any] | None:
    values = ctx.kwargs.get("value_set")
    if values is None:
        return None
    if not isinstance(values, list | tuple | set):
        raise ctx.config_error("value_set is a list", "value_set", values, "a list of values")
    return list(values)


def be_in_set(ctx: Ctx) -> RowPlan:
    """``expect_column_values_to_be_in_set``."""
    col = ctx.column()
    values = _value_set(ctx)
    if values is None:
        return column_map(ctx, col, pl.lit(False))
    return column_map(ctx, col, ~_set_member(ctx, col, values))


def not_be_in_set(ctx: Ctx) -> RowPlan:
    """``expect_column_values_to_not_be_in_set``."""
    col = ctx.column()
    values = _value_set(ctx)
    if values is None:
        return column_map(ctx, col, pl.lit(False))
    return column_map(ctx, col, _set_member(ctx, col, values))


def datetime_bound(value: Any) -> Any:
    """A date bound as a datetime at midnight (GX 1.24 raises comparing a date to a Timestamp)."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        raise Unsupported("a time-zone-aware datetime bound")
    return value


def between_expr(expr: pl.Expr, lo: Any, hi: Any, strict_min: bool, strict_max: bool) -> pl.Expr:
    """Whether values lie between the bounds (``None`` is unbounded)."""
    out = pl.lit(True)
    if lo is not None:
        out = out & ((expr > lo) if strict_min else (expr >= lo))
    if hi is not None:
        out = out & ((expr < hi) if strict_max else (expr <= hi))
    return out


_SAME_TYPE = "Column values, min_value, and max_value must either be None or of the same type."


def be_between(ctx: Ctx) -> RowPlan:
    """``expect_column_values_to_be_between`` (with ``strict_min`` / ``strict_max``).

    Bounds are read as GX's pydantic model reads them (numbers become floats, date text a
    date). Where GX maps a Python function over the values (every dtype but ``int64`` and
    ``float64``), a type mismatch raises only when there is a value to compare.
    """
    col = ctx.column()
    lo, hi = ctx.comparable("min_value"), ctx.comparable("max_value")
    strict_min, strict_max = bool(ctx.kw("strict_min")), bool(ctx.kw("strict_max"))
    if lo is None and hi is None:
        raise CheckError("min_value and max_value cannot both be None")
    if lo is not None and hi is not None:
        try:
            reversed_bounds = lo > hi
        except TypeError as exc:
            raise CheckError(str(exc)) from None
        if reversed_bounds:
            raise CheckError("min_value cannot be greater than max_value")
    bounds = [b for b in (lo, hi) if b is not None]
    k = _kind(ctx, col)
    if k in ("int", "float", "bool"):
        if all(isinstance(b, float) for b in bounds):
            expr = ctx.value(col).cast(pl.Float64)
            ok = between_expr(expr, lo, hi, strict_min, strict_max)
            return column_map(ctx, col, ~ok)
        return _deferred(ctx, col, f"'<=' not supported between a number and {bounds[0]!r}")
    if k == "string":
        return _deferred(ctx, col, _SAME_TYPE)
    if k == "datetime":
        if not all(isinstance(b, dt.date) for b in bounds):
            message = f"Invalid comparison between a Timestamp and {bounds[0]!r}"
            dtype = ctx.dtype(col)
            if isinstance(dtype, pl.Datetime) and dtype.time_unit == "ns":
                raise CheckError(message)
            return _deferred(ctx, col, message)
        expr = pl.col(col).cast(pl.Datetime("us"))
        ok = between_expr(expr, datetime_bound(lo), datetime_bound(hi), strict_min, strict_max)
        return column_map(ctx, col, ~ok)
    raise Unsupported(f"be_between on a {ctx.dtype(col)} column")


def _deferred(ctx: Ctx, column: str, error: str, min_rows: int = 1) -> RowPlan:
    """A check GX runs value by value and that raises on the first value it meets."""
    plan = column_map(ctx, column, pl.lit(False))
    return RowPlan(plan.domain, plan.considered, plan.failing, error=error, error_min_rows=min_rows)


def _text(ctx: Ctx, column: str) -> pl.Expr:
    """``str(value)`` as GX computes it (``Series.astype(str)``)."""
    k = _kind(ctx, column)
    if k == "string":
        return pl.col(column).cast(pl.String)
    if k == "int":
        return pl.col(column).cast(pl.String)
    if k == "bool":
        return pl.when(pl.col(column)).then(pl.lit("True")).otherwise(pl.lit("False"))
    raise Unsupported(f"text checks on a {ctx.dtype(column)} column")


def _patterns(ctx: Ctx, key: str, *, many: bool) -> tuple[list[str], str | None]:
    """The patterns of a regex kwarg, and the error GX raises on the first value, if any."""
    raw = ctx.required(key)
    patterns = raw if many else [raw]
    if many and not isinstance(raw, list | tuple):
        raise ctx.config_error("expects a list of patterns", key, raw, "a list")
    if not all(isinstance(p, str) for p in patterns):
        raise ctx.config_error("a regex is a string", key, raw, "strings")
    if many and not patterns:
        raise CheckError("No objects to concatenate")
    errors = [e for e in (pyregex.pattern_error(p) for p in patterns) if e is not None]
    return list(patterns), (errors[0] if errors else None)


def _regex_plan(
    ctx: Ctx, key: str, *, many: bool, judge: Callable[[list[pl.Expr]], pl.Expr]
) -> RowPlan:
    col = ctx.column()
    patterns, error = _patterns(ctx, key, many=many)
    text = _text(ctx, col)
    if error is not None:
        return _deferred(ctx, col, error)
    considered = ctx.domain & ~ctx.missing(col)
    hits = [pyregex.contains(text, p, considered) for p in patterns]
    return column_map(ctx, col, judge(hits))


def match_regex(ctx: Ctx) -> RowPlan:
    """``expect_column_values_to_match_regex``."""
    return _regex_plan(ctx, "regex", many=False, judge=lambda hits: ~hits[0])


def not_match_regex(ctx: Ctx) -> RowPlan:
    """``expect_column_values_to_not_match_regex``."""
    return _regex_plan(ctx, "regex", many=False, judge=lambda hits: hits[0])


def match_regex_list(ctx: Ctx) -> RowPlan:
    """``expect_column_values_to_match_regex_list`` (``match_on`` any or all)."""
    match_on = ctx.kw("match_on", "any")
    if match_on not in ("any", "all"):
        raise CheckError("match_on must be either 'any' or 'all'")
    combine = pl.any_horizontal if match_on == "any" else pl.all_horizontal
    return _regex_plan(ctx, "regex_list", many=True, judge=lambda hits: ~combine(hits))


def not_match_regex_list(ctx: Ctx) -> RowPlan:
    """``expect_column_values_to_not_match_regex_list``."""
    return _regex_plan(ctx, "regex_list", many=True, judge=pl.any_horizontal)


def like_to_regex(pattern: str, escape: str | None) -> str:
    """A SQL ``LIKE`` pattern as an anchored Rust regex (``%`` any run, ``_`` one character)."""
    out = ["\\A(?s:"]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if escape and ch == escape and i + 1 < len(pattern):
            out.append(f"\\x{{{ord(pattern[i + 1]):x}}}")
            i += 2
            continue
        if ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(f"\\x{{{ord(ch):x}}}")
        i += 1
    out.append(")\\z")
    return "".join(out)


def _likes(ctx: Ctx, key: str, *, many: bool) -> list[str]:
    escape = ctx.kw("escape")
    if escape is not None and (not isinstance(escape, str) or len(escape) != 1):
        raise ctx.config_error("escape is one character", "escape", escape, "one character")
    raw = ctx.required(key)
    items = raw if many else [raw]
    if many and not isinstance(raw, list | tuple):
        raise ctx.config_error("expects a list of patterns", key, raw, "a list")
    if many and not raw:
        raise CheckError("At least one like_pattern must be supplied in the like_pattern_list.")
    if not all(isinstance(p, str) for p in items):
        raise ctx.config_error("a like pattern is a string", key, raw, "strings")
    return [like_to_regex(p, escape) for p in items]


def _like_text(ctx: Ctx, column: str) -> pl.Expr:
    if _kind(ctx, column) != "string":
        raise Unsupported(f"like patterns on a {ctx.dtype(column)} column")
    return pl.col(column).cast(pl.String)


def match_like_pattern(ctx: Ctx) -> RowPlan:
    """``expect_column_values_to_match_like_pattern`` (SQL LIKE; GX has no pandas version)."""
    col = ctx.column()
    (regex,) = _likes(ctx, "like_pattern", many=False)
    return column_map(ctx, col, ~_like_text(ctx, col).str.contains(regex))


def not_match_like_pattern(ctx: Ctx) -> RowPlan:
    """``expect_column_values_to_not_match_like_pattern``."""
    col = ctx.column()
    (regex,) = _likes(ctx, "like_pattern", many=False)
    return column_map(ctx, col, _like_text(ctx, col).str.contains(regex))


def match_like_pattern_list(ctx: Ctx) -> RowPlan:
    """``expect_column_values_to_match_like_pattern_list`` (``match_on`` any or all)."""
    col = ctx.column()
    regexes = _likes(ctx, "like_pattern_list", many=True)
    match_on = ctx.kw("match_on", "any")
    if match_on not in ("any", "all"):
        raise CheckError("match_on must be any or all")
    text = _like_text(ctx, col)
    hits = [text.str.contains(r) for r in regexes]
    ok = pl.any_horizontal(hits) if match_on == "any" else pl.all_horizontal(hits)
    return column_map(ctx, col, ~ok)


def not_match_like_pattern_list(ctx: Ctx) -> RowPlan:
    """``expect_column_values_to_not_match_like_pattern_list``."""
    col = ctx.column()
    regexes = _likes(ctx, "like_pattern_list", many=True)
    text = _like_text(ctx, col)
    return column_map(ctx, col, pl.any_horizontal([text.str.contains(r) for r in regexes]))


def _string_column(ctx: Ctx, column: str, what: str) -> pl.Expr:
    if _kind(ctx, column) != "string":
        raise Unsupported(f"{what} on a {ctx.dtype(column)} column")
    return pl.col(column).cast(pl.String)


def match_strftime_format(ctx: Ctx) -> RowPlan:
    """``expect_column_values_to_match_strftime_format``: ``datetime.strptime`` succeeds.

    Common formats are decided by polars (:mod:`expectations.polars_engine.strftime`), the rest by
    Python once per distinct value.
    """
    col = ctx.column()
    fmt = ctx.required("strftime_format")
    if not isinstance(fmt, str):
        raise ctx.config_error("strftime_format is a string", "strftime_format", fmt, "a string")

    def parses(value: str) -> bool:
        try:
            dt.datetime.strptime(value, fmt)
        except ValueError:
            return False
        return True

    text = _string_column(ctx, col, "strftime formats")
    compiled = strftime.compile_format(fmt)
    if compiled is None:
        return column_map(ctx, col, ~pyregex.python_predicate(text, parses))
    return column_map(ctx, col, ~strftime.parses(text, compiled, parses))


def be_dateutil_parseable(ctx: Ctx) -> RowPlan:
    """``expect_column_values_to_be_dateutil_parseable``: dateutil's parser accepts the value.

    Real ISO-8601 dates and timestamps are accepted without asking it; the parser decides the
    rest, once per distinct value.
    """
    from dateutil.parser import parse  # type: ignore[import-untyped]

    col = ctx.column()

    def parses(value: str) -> bool:
        try:
            parse(value)
        except (ValueError, OverflowError):
            return False
        return True

    text = _string_column(ctx, col, "dateutil parsing")
    return column_map(ctx, col, ~strftime.iso_or_python(text, parses))


def be_json_parseable(ctx: Ctx) -> RowPlan:
    """``expect_column_values_to_be_json_parseable`` (``json.loads`` per value)."""
    col = ctx.column()

    def parses(value: str) -> bool:
        try:
            json.loads(value)
        except Exception:
            return False
        return True

    k = _kind(ctx, col)
    if k == "string":
        return column_map(ctx, col, ~pyregex.python_predicate(pl.col(col).cast(pl.String), parses))
    if k in ("int", "float", "bool", "datetime"):
        return column_map(ctx, col, pl.lit(True))
    raise Unsupported(f"JSON parsing on a {ctx.dtype(col)} column")


def _comparable(ctx: Ctx, column: str) -> pl.Expr:
    k = _kind(ctx, column)
    if k == "bool":
        return ctx.value(column).cast(pl.Int8)
    if k == "string":
        return pl.col(column).cast(pl.String)
    if k == "datetime":
        return pl.col(column).cast(pl.Datetime("us"))
    if k in ("int", "float"):
        return ctx.value(column)
    raise Unsupported(f"comparisons on a {ctx.dtype(column)} column")


def be_unique(ctx: Ctx) -> RowPlan:
    """``expect_column_values_to_be_unique`` (every occurrence of a repeated value fails).

    Rows that are not considered become null, and a null never duplicates a value, so the
    duplicates among the considered rows are found without filtering the column. Strings are
    compared exactly only among the rows whose hash repeats.
    """
    col = ctx.column()
    considered = ctx.domain & ~ctx.missing(col)
    values: pl.Expr = _comparable(ctx, col)
    if _kind(ctx, col) == "string":
        name = ctx.helper("repeated_hash")
        subset = pl.col(name)
        failing = values.filter(subset).is_duplicated()
        return RowPlan(
            ctx.domain,
            considered,
            failing,
            sequence=True,
            subset=subset,
            columns={name: considered & values.hash().is_duplicated()},
        )
    if ctx.has_condition:
        values = pl.when(considered).then(values)
    return RowPlan(ctx.domain, considered, values.is_duplicated())


def _monotonic(ctx: Ctx, *, increasing: bool) -> RowPlan:
    col = ctx.column()
    k = _kind(ctx, col)
    if k == "string":
        return _deferred(ctx, col, "unsupported operand type(s) for -: 'str' and 'str'", 2)
    if k not in ("int", "float", "datetime"):
        raise Unsupported(f"increasing/decreasing on a {ctx.dtype(col)} column")
    considered = ctx.domain & ~ctx.missing(col)
    source = _comparable(ctx, col)
    if k == "int":
        source = source.cast(pl.Float64)
    values: pl.Expr = pl.when(considered).then(source)
    diff = values - values.shift(1).forward_fill()
    zero: Any = dt.timedelta(0) if k == "datetime" else 0
    strictly = bool(ctx.kw("strictly"))
    if increasing:
        in_order = (diff > zero) if strictly else (diff >= zero)
    else:
        in_order = (diff < zero) if strictly else (diff <= zero)
    ok = in_order | diff.is_null()
    if k != "datetime":
        ok = ok | diff.is_nan()
    return RowPlan(ctx.domain, considered, ~ok.fill_null(True))


def be_increasing(ctx: Ctx) -> RowPlan:
    """``expect_column_values_to_be_increasing`` (``strictly`` optional)."""
    return _monotonic(ctx, increasing=True)


def be_decreasing(ctx: Ctx) -> RowPlan:
    """``expect_column_values_to_be_decreasing`` (``strictly`` optional)."""
    return _monotonic(ctx, increasing=False)


def _lengths(ctx: Ctx, column: str) -> pl.Expr:
    return _text(ctx, column).str.len_chars()


def value_lengths_between(ctx: Ctx) -> RowPlan:
    """``expect_column_value_lengths_to_be_between``."""
    col = ctx.column()
    lo, hi = ctx.kw("min_value"), ctx.kw("max_value")
    if lo is None and hi is None:
        raise CheckError("Invalid configuration")
    for b in (lo, hi):
        if b is not None and (isinstance(b, bool) or not isinstance(b, int | float)):
            raise ctx.config_error("length bounds are numbers", "min_value", b, "numbers")
    ok = between_expr(
        _lengths(ctx, col), lo, hi, bool(ctx.kw("strict_min")), bool(ctx.kw("strict_max"))
    )
    return column_map(ctx, col, ~ok)


def value_lengths_equal(ctx: Ctx) -> RowPlan:
    """``expect_column_value_lengths_to_equal``."""
    col = ctx.column()
    value = ctx.required("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ctx.config_error("the length is a number", "value", value, "a number")
    return column_map(ctx, col, _lengths(ctx, col) != value)


def z_scores_less_than(ctx: Ctx) -> RowPlan:
    """``expect_column_value_z_scores_to_be_less_than`` (``double_sided`` optional)."""
    col = ctx.column()
    k = _kind(ctx, col)
    if k not in ("int", "float", "bool", "string"):
        raise Unsupported(f"z-scores on a {ctx.dtype(col)} column")
    threshold = ctx.required("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ctx.config_error("threshold is a number", "threshold", threshold, "a number")
    double_sided = ctx.kw("double_sided", False)
    if k == "string":
        return _deferred(
            ctx, col, "Cannot complete Z-score calculations on a non-numerical column."
        )
    values = ctx.value(col).cast(pl.Float64)
    considered = ctx.domain & ~ctx.missing(col)
    kept: pl.Expr = pl.when(considered).then(values)
    std = kept.std()
    z = pl.when(std == 0).then(None).otherwise((values - kept.mean()) / std)
    under = (z.abs() < abs(threshold)) if double_sided else (z < threshold)
    ok = under | z.is_null() | z.is_nan()
    return RowPlan(ctx.domain, considered, ~ok.fill_null(True))


def values_of_types(ctx: Ctx, column: str, names: list[str]) -> RowPlan:
    """The row-level type check GX runs on an ``object`` column."""
    value_type = dtypes.object_values(ctx.dtype(column), ctx.has_nulls(column))
    assert value_type is not None
    try:
        passes = dtypes.value_is_of_types(value_type, names)
    except ValueError as exc:
        raise CheckError(str(exc)) from None
    return column_map(ctx, column, pl.lit(not passes))


def _pair(ctx: Ctx) -> tuple[str, str, pl.Expr]:
    a, b = ctx.column("column_A"), ctx.column("column_B")
    ignore = ctx.kw("ignore_row_if", "both_values_are_missing")
    ma, mb = ctx.missing(a), ctx.missing(b)
    if ignore == "both_values_are_missing":
        dropped = ma & mb
    elif ignore == "either_value_is_missing":
        dropped = ma | mb
    elif ignore == "neither":
        dropped = pl.lit(False)
    else:
        raise CheckError(f'Unrecognized value of ignore_row_if ("{ignore}").')
    return a, b, ctx.domain & ~dropped


def _pair_kinds(ctx: Ctx, a: str, b: str) -> tuple[Kind, Kind]:
    ka, kb = _kind(ctx, a), _kind(ctx, b)
    if "other" in (ka, kb):
        raise Unsupported("column pair checks on these dtypes")
    return ka, kb


def _same_family(ka: Kind, kb: Kind) -> bool:
    return (dtypes.is_numeric_kind(ka) and dtypes.is_numeric_kind(kb)) or ka == kb


def pair_a_greater_than_b(ctx: Ctx) -> RowPlan:
    """``expect_column_pair_values_a_to_be_greater_than_b`` (``or_equal`` optional).

    Comparing columns of different families raises in pandas: at once when one side is a
    datetime column and the other a number column, else on the first pair of values.
    """
    a, b, considered = _pair(ctx)
    ka, kb = _pair_kinds(ctx, a, b)
    if not _same_family(ka, kb):
        if {ka, kb} == {"string", "datetime"}:
            # pandas parses the strings as datetimes to compare them ('' becomes NaT): GX runs it
            raise Unsupported("comparing a string column with a datetime column")
        message = f"'>' not supported between a {ka} column and a {kb} column"
        if "datetime" in (ka, kb):
            raise CheckError(message)
        return RowPlan(ctx.domain, considered, pl.lit(False), error=message)
    ea, eb = _comparable(ctx, a), _comparable(ctx, b)
    ok = (ea >= eb) if ctx.kw("or_equal") else (ea > eb)
    return RowPlan(ctx.domain, considered, ~ok.fill_null(False))


def pair_equal(ctx: Ctx) -> RowPlan:
    """``expect_column_pair_values_to_be_equal``."""
    a, b, considered = _pair(ctx)
    ka, kb = _pair_kinds(ctx, a, b)
    if not _same_family(ka, kb):
        return RowPlan(ctx.domain, considered, pl.lit(True))
    ok = _comparable(ctx, a) == _comparable(ctx, b)
    return RowPlan(ctx.domain, considered, ~ok.fill_null(False))


def _matches_value(ctx: Ctx, column: str, value: Any) -> pl.Expr:
    if value is None:
        return ctx.missing(column)
    k = _kind(ctx, column)
    if dtypes.is_numeric_kind(k):
        if isinstance(value, float) and math.isnan(value):
            return ctx.missing(column)
        if not isinstance(value, int | float):
            return pl.lit(False)
        return (
            _comparable(ctx, column) == (int(value) if isinstance(value, bool) else value)
        ).fill_null(False)
    if k == "string":
        if not isinstance(value, str):
            return pl.lit(False)
        return (_comparable(ctx, column) == value).fill_null(False)
    raise Unsupported(f"value pairs on a {ctx.dtype(column)} column")


def pair_in_set(ctx: Ctx) -> RowPlan:
    """``expect_column_pair_values_to_be_in_set``."""
    a, b, considered = _pair(ctx)
    _pair_kinds(ctx, a, b)
    pairs = ctx.kwargs.get("value_pairs_set")
    if pairs is None:
        return RowPlan(ctx.domain, considered, pl.lit(False))
    if not isinstance(pairs, list | tuple) or not all(
        isinstance(p, list | tuple) and len(p) == 2 for p in pairs
    ):
        raise ctx.config_error(
            "value_pairs_set is a list of pairs", "value_pairs_set", pairs, "[[a, b], ...]"
        )
    hits = [_matches_value(ctx, a, x) & _matches_value(ctx, b, y) for x, y in pairs]
    ok = pl.any_horizontal(hits) if hits else pl.lit(False)
    return RowPlan(ctx.domain, considered, ~ok)


def _multi(ctx: Ctx, default: str) -> tuple[list[str], pl.Expr]:
    cols = ctx.column_list()
    ignore = ctx.kw("ignore_row_if", default)
    missing = [ctx.missing(c) for c in cols]
    if ignore == "all_values_are_missing":
        dropped = pl.all_horizontal(missing)
    elif ignore == "any_value_is_missing":
        dropped = pl.any_horizontal(missing)
    elif ignore == "never":
        dropped = pl.lit(False)
    else:
        raise CheckError(f'Unrecognized value of ignore_row_if ("{ignore}").')
    return cols, ctx.domain & ~dropped


def compound_columns_unique(ctx: Ctx) -> RowPlan:
    """``expect_compound_columns_to_be_unique`` (every occurrence of a repeated tuple fails)."""
    cols, considered = _multi(ctx, "all_values_are_missing")
    for c in cols:
        if _kind(ctx, c) == "other":
            raise Unsupported(f"compound uniqueness on a {ctx.dtype(c)} column")
    key = pl.struct([_comparable(ctx, c).alias(f"c{i}") for i, c in enumerate(cols)])
    if ctx.has_condition:
        return RowPlan(
            ctx.domain, considered, key.filter(considered).is_duplicated(), sequence=True
        )
    return RowPlan(ctx.domain, considered, key.is_duplicated())


def _null_flavour(ctx: Ctx, column: str) -> str:
    k = _kind(ctx, column)
    if k in ("float", "int"):
        return "nan"
    if k == "datetime":
        return "nat"
    return "none"


def unique_within_record(ctx: Ctx) -> RowPlan:
    """``expect_select_column_values_to_be_unique_within_record``."""
    cols, considered = _multi(ctx, "all_values_are_missing")
    kinds = [_kind(ctx, c) for c in cols]
    if "other" in kinds or ("datetime" in kinds and len(set(kinds)) > 1):
        raise Unsupported("within-record uniqueness across these dtypes")
    numeric_mix = len({k for k in kinds if dtypes.is_numeric_kind(k)}) > 1
    dups = []
    for i in range(len(cols)):
        for j in range(i + 1, len(cols)):
            a, b = cols[i], cols[j]
            both_missing = ctx.missing(a) & ctx.missing(b)
            same = both_missing if _null_flavour(ctx, a) == _null_flavour(ctx, b) else pl.lit(False)
            if _same_family(kinds[i], kinds[j]):
                ea, eb = _comparable(ctx, a), _comparable(ctx, b)
                if numeric_mix and "float" in kinds:
                    ea, eb = ea.cast(pl.Float64), eb.cast(pl.Float64)
                same = same | (ea == eb).fill_null(False)
            dups.append(same)
    failing = pl.any_horizontal(dups) if dups else pl.lit(False)
    return RowPlan(ctx.domain, considered, failing)


def multicolumn_sum_equal(ctx: Ctx) -> RowPlan:
    """``expect_multicolumn_sum_to_equal`` (a missing value makes the row fail)."""
    cols, considered = _multi(ctx, "all_values_are_missing")
    total = ctx.required("sum_total")
    if isinstance(total, bool) or not isinstance(total, int | float):
        raise ctx.config_error("sum_total is a number", "sum_total", total, "a number")
    kinds = [_kind(ctx, c) for c in cols]
    if not all(dtypes.is_numeric_kind(k) for k in kinds):
        raise Unsupported("multicolumn sums of non-numeric columns")
    as_float = any(k == "float" for k in kinds) or any(
        k == "int" and ctx.has_nulls(c) for k, c in zip(kinds, cols, strict=True)
    )
    target = pl.Float64 if as_float else pl.Int64
    parts = [ctx.value(c).cast(target) for c in cols]
    row_sum = parts[0]
    for part in parts[1:]:
        row_sum = row_sum + part
    ok = (row_sum == total).fill_null(False)
    return RowPlan(ctx.domain, considered, ~ok)
