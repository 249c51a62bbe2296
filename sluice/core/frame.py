"""Names every layer agrees on: the provenance columns sluice adds to a frame, and the engines."""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

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


def row_ids(file_sha256: str, n: int, start: int = 0) -> npt.NDArray[np.uint64]:
    """Stable row ids: splitmix64 of (first 8 bytes of the file's sha256 + row number), for the
    ``n`` rows from row ``start``.

    splitmix64 is a bijection on 64-bit integers, so the ids of one file never collide; the same
    bytes always give the same ids, wherever the file lives.
    """
    base = np.uint64(int(file_sha256[:16], 16))
    with np.errstate(over="ignore"):
        z = np.arange(start, start + n, dtype=np.uint64) + base
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))
