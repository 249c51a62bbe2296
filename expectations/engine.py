"""Choose an engine per expectation and validate a frame with a suite.

``auto`` (the default) compiles every entry the polars engine supports on this frame and sends the
rest to GX with only the columns they read; ``polars`` refuses an entry it cannot compile;
``gx`` runs everything with GX. Outcomes come back in suite order, each naming its engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from expectations.polars_engine import compiled_on, run_polars
from expectations.polars_engine.row_condition import condition_columns
from expectations.results import ExpectationEntry, ExpectationOutcome, Suite
from expectations.sluice_types import refuse_sluice_types
from sluice.core.errors import ConfigError
from sluice.core.frame import ENGINE_CHOICES, EngineChoice


def validate(
    frame: pl.DataFrame,
    suite_or_entries: Suite | Sequence[ExpectationEntry],
    engine: EngineChoice = "auto",
) -> list[ExpectationOutcome]:
    """Validate ``frame``; one outcome per entry, in suite order.

    Raises ``ConfigError`` for an unknown engine, or, with ``engine="polars"``, for the first
    entry the polars engine does not compile (naming it, its place in the suite file and the
    supported types); with ``engine="gx"``, for the first entry of one of sluice's own types.
    """
    if isinstance(suite_or_entries, Suite):
        entries: Sequence[ExpectationEntry] = suite_or_entries.entries
        path: Path | None = suite_or_entries.path
    else:
        entries, path = suite_or_entries, None
    if engine == "gx":
        refuse_sluice_types(entries, path)
        from expectations.gx_runner import run_gx  # GX and pandas load only when used

        return run_gx(frame, entries)
    if engine == "polars":
        return run_polars(frame, entries, path=path)
    if engine != "auto":
        raise ConfigError(
            "unknown validation engine",
            key="engine",
            found=engine,
            allowed=", ".join(ENGINE_CHOICES),
        )
    compiles = compiled_on(frame)
    compiled = [i for i, e in enumerate(entries) if compiles(e)]
    chosen = set(compiled)
    rest = [i for i in range(len(entries)) if i not in chosen]
    outcomes: dict[int, ExpectationOutcome] = {}
    if compiled:
        done = run_polars(frame, [entries[i] for i in compiled], path=path)
        outcomes.update(zip(compiled, done, strict=True))
    if rest:
        sent = [entries[i] for i in rest]
        refuse_sluice_types(sent, path)
        from expectations.gx_runner import run_gx

        done = run_gx(frame.select(gx_columns(frame, sent)), sent)
        outcomes.update(zip(rest, done, strict=True))
    return [outcomes[i] for i in range(len(entries))]


def gx_columns(frame: pl.DataFrame, entries: Sequence[ExpectationEntry]) -> list[str]:
    """The columns GX needs for ``entries``: the ones they name and their conditions read.

    An entry that names no column (a table-level check) needs them all.
    """
    wanted: set[str] = set()
    for entry in entries:
        if not entry.columns:
            return frame.columns
        wanted.update(entry.columns)
        condition = entry.kwargs.get("row_condition")
        if condition:
            names = condition_columns(condition)
            if names is None:
                return frame.columns
            wanted.update(names)
    return [c for c in frame.columns if c in wanted]
