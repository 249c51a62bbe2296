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

from sluice.core.failures import Severity
from sluice.core.frame import Engine

DuplicatePolicy = Literal["keep_first", "keep_none"]


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
        """The columns this expectation reads, in the order its kwargs name them."""
        kw = self.kwargs
        if "column" in kw:
            return (str(kw["column"]),)
        if "column_A" in kw and "column_B" in kw:
            return (str(kw["column_A"]), str(kw["column_B"]))
        if "column_list" in kw:
            return tuple(str(c) for c in kw["column_list"])
        return ()

    @property
    def failure_column(self) -> str:
        """The column part of this expectation's reason (``_table`` for batch-level ones)."""
        cols = self.columns
        return ",".join(cols) if cols else "_table"


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
    """

    entry: ExpectationEntry
    success: bool
    engine: Engine
    unexpected_count: int | None = None
    unexpected_rows: npt.NDArray[np.int64] | None = None
    observed_value: Any = None
    exception: str | None = None

    @property
    def row_level(self) -> bool:
        """Whether this outcome names failing rows."""
        return self.unexpected_rows is not None
