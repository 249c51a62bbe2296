"""How a polars column looks to GX once the reference runner has converted it to pandas.

The GX runner (:func:`expectations.gx_runner.to_pandas_for_gx`) turns strings, categoricals and
enums into ``object`` columns of ``str``, booleans with nulls into ``object`` columns of ``bool``,
integers with nulls into ``float64``, dates into ``datetime64[ms]``. GX's answers depend on that
dtype, so the compilers ask this module which family a column is in, and the type expectations
ask it which pandas dtype GX would see.

One deliberate difference: an integer column is judged as its integer dtype even when it holds
nulls (GX sees ``float64`` there, a pandas artefact; see docs/engines.md).
"""

from __future__ import annotations

import functools
import importlib
from typing import Any, Literal

import polars as pl

Kind = Literal["int", "float", "bool", "string", "datetime", "other"]


def kind(dtype: pl.DataType) -> Kind:
    """The family of a polars dtype, as far as GX's comparisons go."""
    if dtype.is_integer():
        return "int"
    if dtype.is_float():
        return "float"
    if dtype == pl.Boolean:
        return "bool"
    if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
        return "string"
    if dtype == pl.Date or (isinstance(dtype, pl.Datetime) and dtype.time_zone is None):
        return "datetime"
    return "other"


def is_numeric_kind(k: Kind) -> bool:
    """Whether values of this family compare as numbers (``True == 1``)."""
    return k in ("int", "float", "bool")


def object_values(dtype: pl.DataType, has_nulls: bool) -> type | None:
    """The Python type of the values when GX sees an ``object`` column, else ``None``."""
    k = kind(dtype)
    if k == "string":
        return str
    if k == "bool" and has_nulls:
        return bool
    return None


@functools.cache
def pandas_dtype(dtype: pl.DataType) -> Any:
    """The pandas dtype GX sees for a null-free column of this polars dtype."""
    import numpy as np

    k = kind(dtype)
    if k == "string":
        return np.dtype("O")
    return pl.Series("x", [], dtype=dtype).to_pandas().dtype


def _comp_types(type_name: str, *, with_dtypes: bool) -> list[Any]:
    """The types GX compares against for one type name (GX's own resolution, replayed)."""
    import numpy as np
    import pandas as pd

    out: list[Any] = []
    try:
        out.append(np.dtype(type_name).type)
        if with_dtypes:
            out.append(np.dtype(type_name))
    except TypeError:
        pd_type = getattr(pd, type_name, None)
        if isinstance(pd_type, type):
            out.append(pd_type)
            if with_dtypes:
                try:
                    inst = pd_type()
                except TypeError:
                    inst = None
                if isinstance(inst, pd.api.extensions.ExtensionDtype):
                    out.append(inst)
        pd_type = getattr(importlib.import_module("pandas.core.dtypes.dtypes"), type_name, None)
        if isinstance(pd_type, type):
            out.append(pd_type)
    native = _native(type_name)
    if native is not None:
        out.extend(native)
    return out


def _native(type_name: str) -> tuple[type, ...] | None:
    name = type_name.lower()
    table: dict[str, tuple[type, ...]] = {
        "none": (type(None),),
        "bool": (bool,),
        "int": (int,),
        "long": (int,),
        "float": (float,),
        "bytes": (bytes,),
        "complex": (complex,),
        "str": (str,),
        "string_types": (str,),
        "list": (list,),
        "dict": (dict,),
    }
    return table.get(name)


def value_is_of_types(value_type: type, type_names: list[str]) -> bool:
    """GX's row-level answer on an ``object`` column: is a value of this type of any named type.

    Raises ``ValueError`` for a name GX does not recognise, as GX does.
    """
    sample: Any = "x" if value_type is str else True
    comp: list[Any] = []
    for name in type_names:
        comp.extend(_comp_types(name, with_dtypes=False))
    if not comp:
        raise ValueError(f"No recognized numpy/python type in list: {type_names}")
    return isinstance(sample, tuple(comp))


def dtype_is_of_type(dtype: pl.DataType, type_name: str) -> bool:
    """GX's batch-level answer of ``expect_column_values_to_be_of_type`` for this column."""
    pd_dtype = pandas_dtype(dtype)
    return pd_dtype.type in _comp_types(type_name, with_dtypes=False)


def dtype_in_type_list(dtype: pl.DataType, type_names: list[str]) -> bool:
    """GX's batch-level answer of ``expect_column_values_to_be_in_type_list`` for this column."""
    pd_dtype = pandas_dtype(dtype)
    comp: list[Any] = []
    for name in type_names:
        comp.extend(_comp_types(name, with_dtypes=True))
    return any(_same(pd_dtype, t) for t in comp)


def _same(pd_dtype: Any, other: Any) -> bool:
    try:
        return bool(pd_dtype == other)
    except TypeError:
        return False


def observed_type_name(dtype: pl.DataType) -> str:
    """GX's ``observed_value`` of the type expectations: the dtype's scalar type name."""
    return str(pandas_dtype(dtype).type.__name__)
