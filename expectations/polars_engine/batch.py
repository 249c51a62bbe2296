"""Batch-level expectations: scalar aggregates computed in the suite's one pass, then judged.

Each compiler returns the aggregates it needs (over the rows ``row_condition`` keeps) and a
``finish`` function that turns their collected values into GX's verdict and observed value.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from expectations.exact import ExactSum
from expectations.polars_engine import dtypes, row
from expectations.polars_engine.plan import (
    ARRAY_KEY,
    BatchPlan,
    BatchResult,
    CheckError,
    Ctx,
    Unsupported,
)

Compiler = Callable[[Ctx], BatchPlan]


def metric_between(value: Any, lo: Any, hi: Any, strict_min: bool, strict_max: bool) -> BatchResult:
    """GX's ``_validate_metric_value_between``.

    A missing or NaN value fails. With a datetime bound the value is parsed as a datetime, with
    a date bound as a date (dateutil), as GX does; a datetime value meets a date bound at
    midnight (GX 1.24 raises there, see docs/engines.md).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return BatchResult(False, None)
    observed = value
    bounds = (lo, hi)
    if any(isinstance(b, dt.datetime) for b in bounds) and not isinstance(value, dt.datetime):
        value = _parse_metric(value)
    if any(isinstance(b, dt.date) for b in bounds):
        if isinstance(value, dt.datetime):
            lo, hi = row.datetime_bound(lo), row.datetime_bound(hi)
        elif not isinstance(value, dt.date):
            value = _parse_metric(value).date()
    try:
        above = lo is None or (value > lo if strict_min else value >= lo)
        below = hi is None or (value < hi if strict_max else value <= hi)
    except TypeError as exc:
        raise CheckError(str(exc)) from None
    return BatchResult(bool(above and below), observed)


def _parse_metric(value: Any) -> dt.datetime:
    from dateutil.parser import parse  # type: ignore[import-untyped]

    try:
        parsed: dt.datetime = parse(value)
    except (TypeError, ValueError, OverflowError):
        raise CheckError(f'Could not parse "metric_value" of {value} into datetime') from None
    return parsed


def _bounds_kwargs(ctx: Ctx) -> tuple[Any, Any, bool, bool]:
    return (
        ctx.kw("min_value"),
        ctx.kw("max_value"),
        bool(ctx.kw("strict_min")),
        bool(ctx.kw("strict_max")),
    )


def _between_plan(ctx: Ctx, aggregate: pl.Expr) -> BatchPlan:
    _, _, smin, smax = _bounds_kwargs(ctx)
    lo, hi = ctx.comparable("min_value"), ctx.comparable("max_value")

    def finish(values: Mapping[str, Any]) -> BatchResult:
        return metric_between(values["v"], lo, hi, smin, smax)

    return BatchPlan(finish, {"v": aggregate})


def row_count_between(ctx: Ctx) -> BatchPlan:
    """``expect_table_row_count_to_be_between``."""
    return _between_plan(ctx, ctx.domain_count)


def row_count_equal(ctx: Ctx) -> BatchPlan:
    """``expect_table_row_count_to_equal``."""
    expected = ctx.required("value")

    def finish(values: Mapping[str, Any]) -> BatchResult:
        return BatchResult(values["n"] == expected, values["n"])

    return BatchPlan(finish, {"n": ctx.domain_count})


def column_count_between(ctx: Ctx) -> BatchPlan:
    """``expect_table_column_count_to_be_between``."""
    lo, hi, smin, smax = _bounds_kwargs(ctx)
    n = len(ctx.schema)
    return BatchPlan(lambda _: metric_between(n, lo, hi, smin, smax))


def column_count_equal(ctx: Ctx) -> BatchPlan:
    """``expect_table_column_count_to_equal``."""
    expected = ctx.required("value")
    n = len(ctx.schema)
    return BatchPlan(lambda _: BatchResult(n == expected, n))


def columns_match_set(ctx: Ctx) -> BatchPlan:
    """``expect_table_columns_to_match_set`` (``exact_match`` defaults to true)."""
    raw = ctx.kwargs.get("column_set")
    expected = set(raw) if raw is not None else set()
    exact = ctx.kwargs.get("exact_match", True)
    actual = set(ctx.schema.names())
    observed = sorted(actual)
    extra, missing = actual - expected, expected - actual
    if not extra and not missing:
        success = True
    elif exact:
        success = False
    else:
        success = not missing
    return BatchPlan(lambda _: BatchResult(success, observed))


def columns_match_ordered_list(ctx: Ctx) -> BatchPlan:
    """``expect_table_columns_to_match_ordered_list``."""
    expected = ctx.kwargs.get("column_list")
    actual = ctx.schema.names()
    success = expected is None or list(actual) == list(expected)
    return BatchPlan(lambda _: BatchResult(success, list(actual)))


def column_to_exist(ctx: Ctx) -> BatchPlan:
    """``expect_column_to_exist``; ``column_index`` 0 means the first column (GX ignores 0)."""
    name = ctx.required("column")
    index = ctx.kwargs.get("column_index")
    actual = ctx.schema.names()
    if index is None:
        success = name in actual
    else:
        if isinstance(index, bool) or not isinstance(index, int):
            raise ctx.config_error("column_index is an integer", "column_index", index, "an int")
        try:
            success = actual[index] == name
        except IndexError:
            success = False
    return BatchPlan(lambda _: BatchResult(success))


def _domain_values(ctx: Ctx, column: str) -> pl.Expr:
    return ctx.value(column).filter(ctx.domain)


def _numeric(ctx: Ctx, column: str, what: str) -> pl.Expr:
    k = dtypes.kind(ctx.dtype(column))
    if k == "string":
        raise CheckError(f"could not compute the {what} of a string column")
    if k not in ("int", "float", "bool"):
        raise Unsupported(f"the {what} of a {ctx.dtype(column)} column")
    expr = _domain_values(ctx, column)
    return expr.cast(pl.Int8) if k == "bool" else expr


def _extreme(ctx: Ctx, *, largest: bool) -> BatchPlan:
    col = ctx.column()
    k = dtypes.kind(ctx.dtype(col))
    if k == "other":
        raise Unsupported(f"min/max of a {ctx.dtype(col)} column")
    values = _domain_values(ctx, col)
    if k == "bool":
        values = values.cast(pl.Int8)
    if k == "string":
        values = values.cast(pl.String)
    if k == "datetime":
        values = values.cast(pl.Datetime("us"))
    agg = values.max() if largest else values.min()
    if k != "datetime":
        return _between_plan(ctx, agg)
    _, _, smin, smax = _bounds_kwargs(ctx)
    lo = row.datetime_bound(ctx.comparable("min_value"))
    hi = row.datetime_bound(ctx.comparable("max_value"))

    def finish(values: Mapping[str, Any]) -> BatchResult:
        if values["v"] is None:
            if any(b is not None and not isinstance(b, dt.datetime) for b in (lo, hi)):
                raise CheckError("'<' not supported between instances of 'NaTType' and 'float'")
            return BatchResult(False, None)
        return metric_between(values["v"], lo, hi, smin, smax)

    return BatchPlan(finish, {"v": agg})


def column_min(ctx: Ctx) -> BatchPlan:
    """``expect_column_min_to_be_between``."""
    return _extreme(ctx, largest=False)


def column_max(ctx: Ctx) -> BatchPlan:
    """``expect_column_max_to_be_between``."""
    return _extreme(ctx, largest=True)


def _exact_plan(ctx: Ctx, values: pl.Expr, reduce: Callable[[Any], float | None]) -> BatchPlan:
    """A between check on ``reduce`` of the column's non-missing values, computed in finish.

    polars' float sums depend on how the column is chunked and on the rest of the query (a
    suite's other checks, a batch of a bounded run): the same column can give a mean that
    differs in its last digit. ``math.fsum`` is correctly rounded whatever the order, so the
    verdict depends on the values alone.
    """
    _, _, smin, smax = _bounds_kwargs(ctx)
    lo, hi = ctx.comparable("min_value"), ctx.comparable("max_value")

    def finish(collected: Mapping[str, Any]) -> BatchResult:
        return metric_between(reduce(collected[ARRAY_KEY]), lo, hi, smin, smax)

    return BatchPlan(finish, {ARRAY_KEY: values.cast(pl.Float64).drop_nulls().implode()})


def _finite(values: Any) -> tuple[npt.NDArray[np.float64], bool]:
    arr = np.asarray(values, dtype=np.float64)
    return arr, bool(np.isfinite(arr).all())


def _exact(values: Any) -> ExactSum:
    return values if isinstance(values, ExactSum) else ExactSum.of(values)


def exact_mean(values: Any) -> float | None:
    """The mean of ``values`` (an array, or an :class:`ExactSum` of them), correctly rounded;
    None when empty."""
    return _exact(values).mean()


def exact_sum(values: Any) -> float:
    """The sum of ``values`` (an array, or an :class:`ExactSum` of them), correctly rounded."""
    return _exact(values).sum()


def exact_stdev(values: Any) -> float | None:
    """The sample standard deviation (ddof 1) of ``values``, None under two values: the
    correctly rounded mean, then ``math.fsum`` of the squared deviations."""
    arr, finite = _finite(values)
    if arr.size < 2:
        return None
    mean = ExactSum.of(arr).mean()
    assert mean is not None
    try:
        if not finite:
            raise ValueError("not finite")
        return math.sqrt(math.fsum((arr - mean) ** 2) / (arr.size - 1))
    except (OverflowError, ValueError):
        return float(np.std(arr, ddof=1))


def column_mean(ctx: Ctx) -> BatchPlan:
    """``expect_column_mean_to_be_between``."""
    return _exact_plan(ctx, _numeric(ctx, ctx.column(), "mean"), exact_mean)


def column_median(ctx: Ctx) -> BatchPlan:
    """``expect_column_median_to_be_between``."""
    values = _numeric(ctx, ctx.column(), "median").cast(pl.Float64)
    middle = (values.quantile(0.5, "lower") + values.quantile(0.5, "higher")) / 2
    return _between_plan(ctx, middle)


def column_stdev(ctx: Ctx) -> BatchPlan:
    """``expect_column_stdev_to_be_between`` (sample standard deviation, ddof 1)."""
    return _exact_plan(ctx, _numeric(ctx, ctx.column(), "stdev"), exact_stdev)


def column_sum(ctx: Ctx) -> BatchPlan:
    """``expect_column_sum_to_be_between``."""
    col = ctx.column()
    values = _numeric(ctx, col, "sum")
    k = dtypes.kind(ctx.dtype(col))
    if k == "float":
        return _exact_plan(ctx, values, exact_sum)
    return _between_plan(ctx, values.cast(pl.Int64).sum())


def _isclose(a: float, b: float) -> bool:
    """``numpy.isclose(a, b, rtol=1e-4)``: infinities are close only to themselves."""
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= 1.0e-8 + 1.0e-4 * abs(b)


def quantile_values(ctx: Ctx) -> BatchPlan:
    """``expect_column_quantile_values_to_be_between`` (numpy's quantile, as pandas uses)."""

    col = ctx.column()
    values = _numeric(ctx, col, "quantiles").drop_nulls().cast(pl.Float64)
    ranges = ctx.required("quantile_ranges")
    if not isinstance(ranges, Mapping) or "quantiles" not in ranges or "value_ranges" not in ranges:
        raise ctx.config_error(
            "quantile_ranges needs quantiles and value_ranges", "quantile_ranges", ranges, "{...}"
        )
    quantiles = list(ranges["quantiles"])
    value_ranges = [
        (-math.inf if lo is None else lo, math.inf if hi is None else hi)
        for lo, hi in ranges["value_ranges"]
    ]
    method: Any = ctx.kwargs.get("allow_relative_error") or "nearest"
    if method not in ("linear", "lower", "higher", "midpoint", "nearest"):
        raise CheckError(
            "If specified for pandas, allow_relative_error must be one an allowed value for the "
            "'interpolation' parameter of .quantile()"
        )

    def finish(collected: Mapping[str, Any]) -> BatchResult:
        arr = np.asarray(collected["values"], dtype=np.float64)
        observed: list[float] = [math.nan] * len(quantiles)
        if arr.size:
            qs = np.asarray(quantiles, dtype=np.float64) * 100.0
            observed = [float(v) for v in np.percentile(arr, qs, method=method)]
        ok = [
            not math.isnan(v) and (_isclose(v, lo) or _isclose(v, hi) or lo <= v <= hi)
            for v, (lo, hi) in zip(observed, value_ranges, strict=False)
        ]
        return BatchResult(bool(all(ok)), {"quantiles": quantiles, "values": observed})

    return BatchPlan(finish, {"values": values.implode()})


def _distinct(ctx: Ctx, col: str) -> pl.Expr:
    k = dtypes.kind(ctx.dtype(col))
    if k not in ("int", "float", "bool", "string"):
        raise Unsupported(f"distinct values of a {ctx.dtype(col)} column")
    values = _domain_values(ctx, col)
    if k == "string":
        values = values.cast(pl.String)
    return values.drop_nulls().unique()


def unique_value_count(ctx: Ctx) -> BatchPlan:
    """``expect_column_unique_value_count_to_be_between``."""
    col = ctx.column()
    return _between_plan(ctx, _distinct(ctx, col).len())


def proportion_unique(ctx: Ctx) -> BatchPlan:
    """``expect_column_proportion_of_unique_values_to_be_between``."""
    col = ctx.column()
    lo, hi, smin, smax = _bounds_kwargs(ctx)
    aggregates = {
        "distinct": _distinct(ctx, col).len(),
        "total": ctx.domain_count,
        "nonnull": (ctx.domain & ~ctx.missing(col)).sum(),
    }

    def finish(v: Mapping[str, Any]) -> BatchResult:
        proportion = v["distinct"] / v["nonnull"] if v["total"] > 0 and v["nonnull"] > 0 else 0
        return metric_between(proportion, lo, hi, smin, smax)

    return BatchPlan(finish, aggregates)


def _set_of(ctx: Ctx, key: str) -> set[Any]:
    raw = ctx.kwargs.get(key)
    if raw is None:
        return set()
    if not isinstance(raw, list | tuple | set):
        raise ctx.config_error("expects a list", key, raw, "a list of values")
    try:
        return set(raw)
    except TypeError as exc:
        raise CheckError(str(exc)) from None


def _distinct_plan(ctx: Ctx, *, unexpected: bool, missing: bool) -> BatchPlan:
    """GX's distinct-value checks: Python set semantics on the non-missing distinct values.

    GX reports the number of distinct values outside the set as ``unexpected_count`` (for
    ``be_in_set`` and ``equal_set``); the outcome carries it too, with no row positions.
    """
    col = ctx.column()
    expected = _set_of(ctx, "value_set")
    agg = _distinct(ctx, col).implode()

    def finish(v: Mapping[str, Any]) -> BatchResult:
        seen = set(v["values"])
        extra, absent = len(seen - expected), len(expected - seen)
        success = not (unexpected and extra) and not (missing and absent)
        return BatchResult(success, None, extra if unexpected else None)

    return BatchPlan(finish, {"values": agg})


def distinct_in_set(ctx: Ctx) -> BatchPlan:
    """``expect_column_distinct_values_to_be_in_set``."""
    return _distinct_plan(ctx, unexpected=True, missing=False)


def distinct_contain_set(ctx: Ctx) -> BatchPlan:
    """``expect_column_distinct_values_to_contain_set``."""
    return _distinct_plan(ctx, unexpected=False, missing=True)


def distinct_equal_set(ctx: Ctx) -> BatchPlan:
    """``expect_column_distinct_values_to_equal_set``."""
    return _distinct_plan(ctx, unexpected=True, missing=True)


def most_common_value(ctx: Ctx) -> BatchPlan:
    """``expect_column_most_common_value_to_be_in_set`` (``ties_okay`` optional)."""
    col = ctx.column()
    k = dtypes.kind(ctx.dtype(col))
    if k not in ("int", "float", "bool", "string"):
        raise Unsupported(f"the mode of a {ctx.dtype(col)} column")
    values = _domain_values(ctx, col)
    if k == "string":
        values = values.cast(pl.String)
    expected = _set_of(ctx, "value_set")
    ties_okay = bool(ctx.kwargs.get("ties_okay"))

    def finish(v: Mapping[str, Any]) -> BatchResult:
        modes = sorted(v["modes"])
        hits = len(expected.intersection(modes))
        success = hits > 0 if ties_okay else (len(modes) == 1 and hits == 1)
        return BatchResult(success, modes)

    return BatchPlan(finish, {"modes": values.drop_nulls().mode().implode()})
