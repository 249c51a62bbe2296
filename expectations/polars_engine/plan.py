"""What compiling one expectation gives: a row plan, a batch plan, or a reason it cannot run.

A row plan names the rows an expectation looks at and the rows that fail it; a batch plan names
scalar aggregates and a function that judges their collected values. Both are polars expressions
over the validated frame, so a whole suite is evaluated in one ``select``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from expectations.results import ExpectationEntry
from sluice.core.errors import ConfigError


class Unsupported(Exception):
    """The polars engine does not compile this entry (on this frame); ``auto`` sends it to GX."""


class CheckError(Exception):
    """GX raises while running this check: the outcome is an exception, as in GX."""


def gx_comparable(value: Any) -> Any:
    """A bound as GX's pydantic field ``float | dict | date | datetime`` turns it into.

    Numbers and booleans become floats, numeric text becomes a float, ``YYYY-MM-DD`` text a
    date and ISO date-time text a datetime; other text is refused (the suite loader refuses it
    first).
    """
    if value is None or isinstance(value, dt.date | dict):
        return value
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        if value == "":
            return {}
        try:
            if len(value) <= 10:
                return dt.date.fromisoformat(value)
            return dt.datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ConfigError("GX accepts numbers, dates and datetimes as bounds", found=value)


@dataclass(frozen=True)
class RowPlan:
    """A row-level expectation.

    ``domain`` is the rows left by ``row_condition``; ``considered`` the rows checked (the domain
    without missing values for column-map expectations, without ``ignore_row_if`` rows for pair
    and multicolumn ones). ``failing`` is boolean over the whole frame, or, when ``sequence`` is
    set, over the considered rows only (for checks that look at neighbours or duplicates).
    ``subset``, when set with ``sequence``, narrows the rows ``failing`` is evaluated on (a cheap
    necessary condition for failing, such as a repeated hash). ``columns`` are helper masks the
    runner adds to the frame before selecting, so expressions can share them by name.
    ``denominator`` says what ``mostly`` divides by. ``error`` is an error GX raises only when
    its per-value function meets at least ``error_min_rows`` considered values (pandas' ``map``
    over an empty column calls nothing).
    """

    domain: pl.Expr
    considered: pl.Expr
    failing: pl.Expr
    sequence: bool = False
    subset: pl.Expr | None = None
    columns: Mapping[str, pl.Expr] = field(default_factory=dict)
    denominator: Literal["considered", "domain"] = "considered"
    error: str | None = None
    error_min_rows: int = 1


@dataclass(frozen=True)
class BatchResult:
    """The verdict of a batch-level expectation."""

    success: bool
    observed_value: Any = None
    unexpected_count: int | None = None


@dataclass(frozen=True)
class BatchPlan:
    """A batch-level expectation: scalar aggregates, collected once, then judged."""

    finish: Callable[[Mapping[str, Any]], BatchResult]
    aggregates: Mapping[str, pl.Expr] = field(default_factory=dict)


ARRAY_KEY = "array"
"""A batch plan's aggregate whose name starts with this is collected as a numpy array (an
imploded column), not a Python list."""

POSITION = "__sluice_position"
"""The column holding each row's position in the validated frame, for frame plans."""


@dataclass(frozen=True)
class FrameResult:
    """What a frame plan found: failing positions (sorted), each one's details, and counts.

    ``details`` has one row per failing row, in the same order, one column per detail.
    ``duplicate_of`` aligns with ``rows``: the position of the earlier row a failing row
    repeats, -1 where none. ``considered`` is the number of rows the check judged.
    """

    rows: npt.NDArray[np.int64]
    considered: int
    details: pl.DataFrame
    observed_value: Any = None
    duplicate_of: npt.NDArray[np.int64] | None = None


@dataclass(frozen=True)
class FramePlan:
    """A row-level expectation that needs the whole frame at once (groups, pairs, spellings).

    ``compute`` receives the rows ``row_condition`` keeps, with their positions in the validated
    frame in the column :data:`POSITION`, and returns a :class:`FrameResult` in those positions.
    """

    compute: Callable[[pl.DataFrame], FrameResult]


Plan = RowPlan | BatchPlan | FramePlan


@dataclass(frozen=True)
class Ctx:
    """What a compiler sees: the entry, the frame's schema and the row-condition mask."""

    entry: ExpectationEntry
    schema: pl.Schema
    domain: pl.Expr
    domain_count: pl.Expr = field(default_factory=pl.len)
    null_counts: Mapping[str, int] = field(default_factory=dict)
    prefix: str = "__sluice_"

    @property
    def kwargs(self) -> Mapping[str, Any]:
        """The entry's kwargs as written."""
        return self.entry.kwargs

    def kw(self, name: str, default: Any = None) -> Any:
        """One kwarg, or ``default`` when absent or null."""
        value = self.entry.kwargs.get(name)
        return default if value is None else value

    def config_error(self, problem: str, key: str, found: object, allowed: str) -> ConfigError:
        """A ConfigError naming this entry and one of its kwargs."""
        return ConfigError(
            f"{self.entry.type}: {problem}",
            file="<suite>",
            line=self.entry.line,
            key=f"expectations[{self.entry.index}].kwargs.{key}",
            found=found,
            allowed=allowed,
        )

    def required(self, name: str) -> Any:
        """A kwarg the expectation cannot run without."""
        if self.entry.kwargs.get(name) is None:
            raise self.config_error(
                f"needs the argument `{name}`", name, sorted(self.entry.kwargs), f"`{name}`"
            )
        return self.entry.kwargs[name]

    def column(self, key: str = "column") -> str:
        """The column a kwarg names; GX fails the check when it is not in the frame."""
        name = self.required(key)
        if not isinstance(name, str):
            raise self.config_error("a column name is a string", key, name, "a string")
        if name not in self.schema:
            raise CheckError(f'The column "{name}" in BatchData does not exist.')
        return name

    def column_list(self, key: str = "column_list") -> list[str]:
        """The columns a list kwarg names."""
        names = self.required(key)
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise self.config_error("expects a list of column names", key, names, "a list")
        missing = [n for n in names if n not in self.schema]
        if missing:
            raise CheckError(f"Error: The column {missing[0]!r} in BatchData does not exist.")
        return list(names)

    def comparable(self, key: str) -> Any:
        """A bound kwarg as GX's model reads it (see :func:`gx_comparable`)."""
        value = self.kw(key)
        try:
            return gx_comparable(value)
        except ConfigError:
            raise self.config_error(
                "GX reads bounds as numbers, dates or datetimes", key, value, "a number or a date"
            ) from None

    def dtype(self, name: str) -> pl.DataType:
        """The polars dtype of a column."""
        return self.schema[name]

    def helper(self, name: str) -> str:
        """A column name for a helper mask of this entry, unique within the suite."""
        return f"{self.prefix}{name}"

    @property
    def has_condition(self) -> bool:
        """Whether a ``row_condition`` restricts the rows."""
        return bool(self.entry.kwargs.get("row_condition"))

    def has_nulls(self, name: str) -> bool:
        """Whether a column holds a null anywhere in the frame (it changes GX's pandas dtype)."""
        return self.null_counts.get(name, 0) > 0

    def value(self, name: str) -> pl.Expr:
        """A column as GX sees it after pandas conversion: float NaN is missing."""
        if self.dtype(name).is_float():
            return pl.col(name).fill_nan(None)
        return pl.col(name)

    def missing(self, name: str) -> pl.Expr:
        """Rows where a column is missing (null, or NaN in a float column)."""
        if self.dtype(name).is_float():
            return pl.col(name).is_null() | pl.col(name).is_nan()
        return pl.col(name).is_null()

    def mostly(self) -> float:
        """The ``mostly`` kwarg (default 1)."""
        value = self.kw("mostly", 1.0)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 <= value <= 1
            or math.isnan(value)
        ):
            raise self.config_error("mostly is a number from 0 to 1", "mostly", value, "0 to 1")
        return float(value)
