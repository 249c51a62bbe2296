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
    beyond = beyond_calendar(series)
    if beyond is not None and beyond.any():
        return _calendar_text(series, beyond)
    try:
        return series.cast(pl.String)
    except pl.exceptions.PolarsError:  # a type polars does not write out (a duration)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pl.exceptions.PolarsInefficientMapWarning)
            return series.map_elements(str, return_dtype=pl.String, skip_nulls=True)


# polars' calendar (chrono's) holds years -262,143 to 262,142 and panics on writing out a date or
# datetime beyond them, which a Parquet file can hold (any 64-bit count of its unit)
CALENDAR_DAYS = 95_000_000  # about 260,000 years either side of 1970, within that calendar
UNITS_PER_DAY = {"ns": 86_400 * 10**9, "us": 86_400 * 10**6, "ms": 86_400_000}  # of a Datetime


def beyond_calendar(series: pl.Series) -> pl.Series | None:
    """For a Date or Datetime column, whether each value lies beyond polars' calendar (null
    counts as not); ``None`` for any other type."""
    dtype = series.dtype
    if dtype == pl.Date:
        limit = CALENDAR_DAYS
    elif isinstance(dtype, pl.Datetime):
        limit = CALENDAR_DAYS * UNITS_PER_DAY[dtype.time_unit or "us"]
        if limit >= 2**63:  # nanoseconds: every 64-bit count lies within it
            return None
    else:
        return None
    physical = series.to_physical()
    return ((physical < -limit) | (physical > limit)).fill_null(False)


def _calendar_text(series: pl.Series, beyond: pl.Series) -> pl.Series:
    """A Date or Datetime column as text, the values beyond polars' calendar as their count of
    days (or of the column's unit) from 1970-01-01, such as ``-9223372036854775807 us from
    1970-01-01``."""
    dtype = series.dtype
    unit = "days" if dtype == pl.Date else getattr(dtype, "time_unit", None) or "us"
    within = series.set(beyond, None).cast(pl.String)
    counts = series.to_physical().cast(pl.String) + f" {unit} from 1970-01-01"
    return within.zip_with(beyond.not_(), counts).alias(series.name)


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
