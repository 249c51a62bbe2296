"""``expect_column_values_to_be_of_type`` and ``..._in_type_list`` with GX's pandas answers.

GX decides on the pandas dtype it sees. On an ``object`` column (strings, booleans with nulls) it
checks each value's Python type, a row-level result; otherwise it compares the dtype, a
batch-level result whose observed value is the dtype's scalar type name (``int64``, ``float64``,
``bool``, ``datetime64``). Type names resolve as GX resolves them: numpy names, pandas names,
and Python names (``int``, ``str``, ``bool``, ...). An integer column is judged as its integer
dtype even when it holds nulls (GX sees ``float64`` there); see docs/engines.md.
"""

from __future__ import annotations

from expectations.polars_engine import dtypes, row
from expectations.polars_engine.plan import BatchPlan, BatchResult, CheckError, Ctx, Plan


def _names(ctx: Ctx, key: str, many: bool) -> list[str]:
    raw = ctx.required(key)
    names = raw if many else [raw]
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise ctx.config_error("type names are strings", key, raw, "numpy, pandas or Python names")
    return list(names)


def be_of_type(ctx: Ctx) -> Plan:
    """``expect_column_values_to_be_of_type``."""
    col = ctx.column()
    (name,) = _names(ctx, "type_", many=False)
    dtype = ctx.dtype(col)
    on_objects = dtypes.object_values(dtype, ctx.has_nulls(col)) is not None
    if on_objects and name not in ("object", "object_", "O"):
        return row.values_of_types(ctx, col, [name])
    observed = "object_" if on_objects else dtypes.observed_type_name(dtype)
    success = name in ("object", "object_", "O") if on_objects else _of(dtype, name)
    return BatchPlan(lambda _: BatchResult(success, observed))


def _of(dtype: object, name: str) -> bool:
    import polars as pl

    assert isinstance(dtype, pl.DataType)
    try:
        return dtypes.dtype_is_of_type(dtype, name)
    except Exception as exc:
        raise CheckError(str(exc)) from None


def be_in_type_list(ctx: Ctx) -> Plan:
    """``expect_column_values_to_be_in_type_list``."""
    col = ctx.column()
    names = _names(ctx, "type_list", many=True)
    dtype = ctx.dtype(col)
    if dtypes.object_values(dtype, ctx.has_nulls(col)) is not None:
        return row.values_of_types(ctx, col, names)
    try:
        success = dtypes.dtype_in_type_list(dtype, names)
    except Exception as exc:
        raise CheckError(str(exc)) from None
    observed = dtypes.observed_type_name(dtype)
    return BatchPlan(lambda _: BatchResult(success, observed))
