"""Engine-neutral types for a loaded suite and for what validating it gave.

Both engines (the GX runner and the polars engine) take a :class:`Suite` and a frame and return
one :class:`ExpectationOutcome` per suite entry, in suite order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from expectations.sluice_types import BLAMED_KEYS, READ_KEYS, columns_of
from sluice.core.failures import Severity
from sluice.core.frame import Engine

DuplicatePolicy = Literal["keep_first", "keep_none"]
PROVENANCE_COLUMNS: tuple[str, ...] = ("_row_id", "_source_file", "_source_row")
"""Columns sluice adds to a frame, which no engine validates."""


@dataclass(frozen=True)
class ExpectationEntry:
    """One expectation of a suite as written in its file."""

    index: int
    type: str
    kwargs: dict[str, Any]
    meta: dict[str, Any]
    severity: Severity
    line: int | None = None
    duplicates: DuplicatePolicy = "keep_first"

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns a failure of this expectation blames, in the order its kwargs name them.

        For GX's types these are the columns it reads; sluice's types also read columns they
        do not blame (the ``by`` of a dependency, the ``block_on`` of near duplicates).
        """
        kw = self.kwargs
        if self.type in BLAMED_KEYS:
            return tuple(columns_of(self.type, kw, BLAMED_KEYS[self.type]))
        if "column" in kw:
            return (str(kw["column"]),)
        if "column_A" in kw and "column_B" in kw:
            return (str(kw["column_A"]), str(kw["column_B"]))
        if "column_list" in kw:
            return tuple(str(c) for c in kw["column_list"])
        return ()

    @property
    def read_columns(self) -> tuple[str, ...]:
        """Every column this expectation reads (its row_condition's aside)."""
        if self.type in READ_KEYS:
            return tuple(dict.fromkeys(columns_of(self.type, self.kwargs, READ_KEYS[self.type])))
        return self.columns

    @property
    def failure_column(self) -> str:
        """The column part of this expectation's reason (``_table`` for batch-level ones).

        A ``row_condition``'s columns follow the blamed ones: a row that fails a conditional
        rule may be wrong in a cell the condition reads as much as in the checked one.
        """
        cols = list(self.columns)
        if not cols:
            return "_table"
        condition = self.kwargs.get("row_condition")
        if condition:
            from expectations.polars_engine.row_condition import condition_columns

            cols += sorted((condition_columns(condition) or set()) - set(cols))
        return ",".join(cols)


@dataclass(frozen=True)
class Suite:
    """A loaded suite: every entry of the file, none dropped."""

    name: str
    path: Path | None
    sha256: str
    entries: tuple[ExpectationEntry, ...]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExpectationOutcome:
    """What one expectation gave on one frame.

    ``unexpected_rows`` holds 0-based positions in the validated frame, or ``None`` for a
    batch-level expectation. ``exception`` is set when the check itself could not run.
    ``row_details`` (one row per entry of ``unexpected_rows``, which is then sorted) holds what
    each failing row's failure says beyond its value, one column per detail; ``duplicate_of``
    (aligned too) the position of the earlier row each one repeats, -1 where none.
    """

    entry: ExpectationEntry
    success: bool
    engine: Engine
    unexpected_count: int | None = None
    unexpected_rows: npt.NDArray[np.int64] | None = None
    observed_value: Any = None
    exception: str | None = None
    row_details: pl.DataFrame | None = None
    duplicate_of: npt.NDArray[np.int64] | None = None

    @property
    def row_level(self) -> bool:
        """Whether this outcome names failing rows."""
        return self.unexpected_rows is not None
