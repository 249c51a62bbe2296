"""Names every layer agrees on: the provenance columns sluice adds to a frame, and the engines."""

from __future__ import annotations

from typing import Literal

ROW_ID = "_row_id"
"""A row's stable identity: derived from its source file's sha256 and its position in it."""
SOURCE_FILE = "_source_file"
SOURCE_ROW = "_source_row"
PROVENANCE = (ROW_ID, SOURCE_FILE, SOURCE_ROW)
RESERVED_COLUMNS = (*PROVENANCE, "_reasons", "_failures")
"""Column names a source may not use: sluice writes them."""
MALFORMED = "_row"
"""The column a failure names when a whole record could not be read (ragged, bad bytes)."""

Engine = Literal["polars", "gx"]
"""The engine that evaluated an expectation."""
EngineChoice = Literal["auto", "polars", "gx"]
"""The engine a run asks for: ``auto`` compiles what it can to polars and runs the rest on GX."""
ENGINE_CHOICES: tuple[EngineChoice, ...] = ("auto", "polars", "gx")
