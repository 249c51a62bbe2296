"""Arrow tables into polars: types polars cannot hold are converted, and said; the memory
pyarrow's readers allocate from."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import NamedTuple

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from sluice.core.errors import InputError
from sluice.core.text import json_text, plain

POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"


@cache
def reading_pool() -> pa.MemoryPool:
    """The memory pool sluice's pyarrow reads allocate from: pyarrow's jemalloc pool when it has
    one, else its default; pyarrow's default when ``ARROW_DEFAULT_MEMORY_POOL`` names a pool.

    Most of a large read's cost beyond parsing is the kernel clearing the fresh memory it
    touches. With pyarrow's default on Linux (mimalloc), reading a 10M-row, 1.1 GB CSV as text
    spent 4.7 to 5.4 CPU s in the kernel, with jemalloc 1.3 to 1.5 (three runs each, the user
    CPU the same); a 10M-row Parquet file 1.5 to 4.0 against 1.0 to 1.1.
    """
    if os.environ.get(POOL_ENV, "").strip():
        return pa.default_memory_pool()
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        return pa.default_memory_pool()


@contextmanager
def reading_memory() -> Iterator[None]:
    """pyarrow's default pool is :func:`reading_pool` while the block runs, for readers that
    take no pool (``ParquetFile.read``); the pool before is restored after it."""
    before, pool = pa.default_memory_pool(), reading_pool()
    if pool.backend_name == before.backend_name:
        yield
        return
    pa.set_memory_pool(pool)
    try:
        yield
    finally:
        pa.set_memory_pool(before)


def release_reading_memory() -> None:
    """Hand back to the system what the reading pool holds free (its allocator keeps it)."""
    reading_pool().release_unused()
    pa.default_memory_pool().release_unused()


class Converted(NamedTuple):
    """A column whose Arrow type polars cannot hold as it is: what it was and what it became."""

    column: str
    arrow_type: str
    became: str


def arrow_to_polars(table: pa.Table, path: str) -> tuple[pl.DataFrame, list[Converted]]:
    """A polars frame of an Arrow table read from ``path``, and the columns that changed type.

    polars panics or refuses on some Arrow types (256-bit decimals, durations it cannot cast,
    maps, unions, intervals, run-end and view layouts, extension types, time zones it does not
    know): those become a type polars holds with the same values (dictionaries decoded,
    extension types as their storage, fixed-size binary as binary, half floats as float32, an
    unknown time zone as the same instant in UTC) or their text (decimals exactly, durations as
    ``<n><unit>``, anything else as its JSON). A column that cannot be converted at all, or
    text that is not UTF-8, is an ``InputError`` naming the file and the column.
    """
    columns: list[pl.Series] = []
    converted: list[Converted] = []
    for index, name in enumerate(table.column_names):
        original = table.column(index)
        safe, became = _polars_safe(original)
        if _has_text(safe.type) and not _utf8(safe):
            # pyarrow reads a Parquet string column without checking its bytes; polars would
            # take them as they are, panic on them later or write a file no reader accepts
            raise InputError(
                f"{path}: not a readable Parquet file: column {name!r} holds text that is not "
                "UTF-8 (out of the Parquet specification: a corrupt file, or one written as "
                "another encoding)"
            )
        series = _series(name, safe)
        if series is None and pa.types.is_timestamp(safe.type) and safe.type.tz is not None:
            safe, became = safe.cast(pa.timestamp(safe.type.unit, "UTC")), "timestamp (UTC)"
            series = _series(name, safe)
        if series is None:
            try:
                safe, became = _arrow_text(original), "text"
            except (pa.ArrowException, ValueError, TypeError, OverflowError):
                pass
            else:
                series = _series(name, safe)
        if series is None:
            raise InputError(
                f"{path}: column {name!r} holds Arrow type {original.type} that sluice cannot "
                "read, not even as text"
            )
        if became:
            converted.append(Converted(name, str(original.type), became))
        columns.append(series)
    return pl.DataFrame(columns, height=table.num_rows), converted


def _series(name: str, column: pa.ChunkedArray) -> pl.Series | None:
    try:
        series = pl.from_arrow(column.combine_chunks() if column.num_chunks > 1 else column)
    except (pl.exceptions.PanicException, pl.exceptions.PolarsError, pa.ArrowException):
        return None
    except (ValueError, TypeError, OverflowError):
        return None
    assert isinstance(series, pl.Series)
    return series.alias(name)


def _holds(t: pa.DataType) -> bool:
    """Whether polars holds Arrow type ``t`` as it is and can cast it to text."""
    if (
        pa.types.is_null(t)
        or pa.types.is_boolean(t)
        or pa.types.is_integer(t)
        or pa.types.is_float32(t)
        or pa.types.is_float64(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_string_view(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_date(t)
        or pa.types.is_time(t)
        or pa.types.is_timestamp(t)
    ):
        return True
    if pa.types.is_decimal(t):
        return not pa.types.is_decimal256(t) and t.precision <= 38
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _holds(t.value_type)
    if pa.types.is_struct(t):
        names = [t.field(i).name for i in range(t.num_fields)]
        return (
            bool(names)
            and len(set(names)) == len(names)
            and all(_holds(t.field(i).type) for i in range(t.num_fields))
        )
    return False


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def _has_text(t: pa.DataType) -> bool:
    """Whether ``t`` is text or holds text (in a list or a struct, at any depth)."""
    if _is_text(t):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _has_text(t.value_type)
    if pa.types.is_struct(t):
        return any(_has_text(t.field(i).type) for i in range(t.num_fields))
    return False


def _utf8(column: pa.ChunkedArray) -> bool:
    """Whether every text value of a column (its own, or those it holds in lists and structs) is
    UTF-8 (0.2 CPU s for 10M rows of 5 text columns)."""
    try:
        for chunk in column.chunks:
            chunk.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def _polars_safe(column: pa.ChunkedArray) -> tuple[pa.ChunkedArray, str]:
    """``column`` in a type polars holds, and what it became ("" when unchanged)."""
    t = column.type
    try:
        if isinstance(t, pa.BaseExtensionType):
            storage = pa.chunked_array([c.storage for c in column.chunks], type=t.storage_type)
            safe, became = _polars_safe(storage)
            return safe, became or str(t.storage_type)
        if pa.types.is_dictionary(t):
            safe, became = _polars_safe(column.cast(t.value_type))
            return safe, became or str(t.value_type)
        if _holds(t):
            return column, ""
        if pa.types.is_float16(t):
            return column.cast(pa.float32()), "float"
        if pa.types.is_fixed_size_binary(t):
            return column.cast(pa.binary()), "binary"
        if pa.types.is_decimal(t):
            return column.cast(pa.string()), "text"
        if pa.types.is_duration(t):
            unit = t.unit
            text = pc.binary_join_element_wise(column.cast(pa.int64()).cast(pa.string()), unit, "")
            return text, "text"
        return _arrow_text(column), "text"
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        return column, ""


def _arrow_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Every value as text: strings as they are, anything else as its JSON (or, when Python
    cannot hold it, Arrow's own rendering of the value)."""
    values: list[str | None]
    try:
        values = [
            None if v is None else v if isinstance(v, str) else json_text(plain(v))
            for v in column.to_pylist()
        ]
    except (pa.ArrowException, ValueError, TypeError, KeyError, OverflowError):
        values = [str(v) if v.is_valid else None for v in column]
    return pa.chunked_array([pa.array(values, pa.string())], type=pa.string())
