"""The text of a value as read: what a quarantined row keeps of its source cells.

A CSV field or an NDJSON string is its own text; a value read in a type of its own (a Parquet
number, timestamp, list or bytes) is written out the same way wherever sluice needs its text,
so that a cell's text depends on its value and its column's type only.
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Any

import polars as pl

from sluice.core.frame import ROW_ID


def as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Every column of ``frame`` but ``_row_id`` as text: nested values as compact JSON, bytes
    as UTF-8 or else latin-1, anything else as polars writes it; text columns unchanged."""
    return frame.with_columns(
        column_text(frame[c]) for c in frame.columns if frame[c].dtype != pl.String and c != ROW_ID
    )


def column_text(series: pl.Series) -> pl.Series:
    """One column as text (see :func:`as_text`)."""
    dtype = series.dtype
    if dtype == pl.String:
        return series
    if dtype.is_nested() or dtype == pl.Object:
        # from Python values: map_elements hands a list cell over as a Series
        values = [None if v is None else json_text(plain(v)) for v in series.to_list()]
        return pl.Series(series.name, values, dtype=pl.String)
    if dtype == pl.Binary:
        return series.map_elements(bytes_text, return_dtype=pl.String, skip_nulls=True)
    try:
        return series.cast(pl.String)
    except pl.exceptions.PolarsError:  # a type polars does not write out (a duration)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pl.exceptions.PolarsInefficientMapWarning)
            return series.map_elements(str, return_dtype=pl.String, skip_nulls=True)


def json_text(value: Any) -> str:
    """``value`` as compact JSON (anything JSON has no type for as its ``str``).

    An int, a finite float or a bool is written as :func:`json.dumps` writes it (``int`` and
    ``float``'s own ``repr``, ``true``, ``false``) without its call: an NDJSON file of numbers
    has one such value per cell."""
    kind = type(value)
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    if kind is bool:
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"), default=str)


def bytes_text(value: bytes) -> str:
    """Bytes as UTF-8 text, or latin-1 when they are not UTF-8 (every byte kept)."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def plain(value: Any) -> Any:
    """A Python value from Arrow as JSON-able data (bytes as text, maps' pairs as lists)."""
    if isinstance(value, bytes):
        return bytes_text(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
