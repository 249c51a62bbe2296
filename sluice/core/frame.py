"""Names every layer agrees on: the provenance columns sluice adds to a frame, and the engines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl

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


def ids_meet(files: Sequence[tuple[str, int]]) -> bool:
    """Whether two of ``files`` (each ``(sha256, rows)``) give some row the same id.

    :func:`row_ids` is a bijection of (the first 8 bytes of the file's sha256 + row number), so
    two files' ids meet exactly when their ranges of those numbers overlap (modulo 2**64); the
    ranges sorted by start, it is enough to look at each one and the next (the last wrapping to
    the first). Files with identical bytes always meet.
    """
    spans = sorted((int(sha[:16], 16), n) for sha, n in files if n)
    if len(spans) < 2:
        return False
    after = [*spans[1:], spans[0]]
    return any((b - a) % 2**64 < n for (a, n), (b, _) in zip(spans, after, strict=True))


def same_ids(held: pl.Series, ids_in: pl.Series) -> bool:
    """Whether ``held`` holds the ids of ``ids_in``, each as many times, in any order.

    Both are sorted and compared: two sorts cost about half of a hash set and the lookups
    a membership test would take, and prove the same.
    """
    if len(held) != len(ids_in):
        return False
    try:
        held = held.cast(ids_in.dtype)
    except pl.exceptions.PolarsError:
        return False
    return held.sort().equals(ids_in.sort(), check_names=False)


def split_in_order(ids_in: pl.Series, first: pl.Series, second: pl.Series) -> bool:
    """Whether ``first`` and ``second`` are ``ids_in`` cut in two, each side in the input's
    order: every row on exactly one side, none added.

    The rows of ``ids_in`` whose id is on the ``second`` side, taken in order, must be that
    side, and the others the ``first``: a lookup into the smaller side and two comparisons.
    """
    if len(first) + len(second) != len(ids_in):
        return False
    on_second = ids_in.is_in(second.cast(ids_in.dtype, strict=False).implode())
    return first.equals(ids_in.filter(~on_second), check_names=False) and second.equals(
        ids_in.filter(on_second), check_names=False
    )
