"""How much memory a run may hold, and whether a partition is screened in bounded batches.

``SLUICE_MEMORY_BUDGET`` (a size such as ``8G``) caps what a backfill's workers, and the batches of
one bounded run, may hold; unset, three quarters of the memory available now.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from sluice.config import LoadedSpec, Partition
from sluice.core.errors import ConfigError, SluiceError

MEMORY_ENV = "SLUICE_MEMORY_BUDGET"
BOUNDED_ENV = "SLUICE_BOUNDED"
"""``1``: screen every partition in bounded batches; ``0``: never; unset: when a partition's
estimate (:func:`partition_estimate`) exceeds the memory budget."""
BATCH_ROWS_ENV = "SLUICE_BATCH_ROWS"
"""Rows per batch of a bounded run, overriding the size the memory budget gives."""
BATCH_BYTES_PER_CELL = 400
"""What one cell of a batch costs at the peak of a bounded stage (typed, text and copies)."""
BASE_BYTES = 500 * 2**20
"""What one worker process holds before it reads a partition (polars, numpy, scikit-learn)."""
BYTES_PER_SOURCE_BYTE = {"csv": 12, "parquet": 45, "ndjson": 6}
"""Peak memory of a partition's stages per byte of its source files: bench/e2e measured 1.7 GB
for 1 M rows x 20 columns, a 113 MB CSV or a 28 MB Parquet file, about 0.47 GB of it imports.
NDJSON: 1.57 GB for the same rows as a 409 MB file (2.7 a byte past the imports), 1.17 GB for
4 M lines of three keys, 150 MB (4.6 a byte)."""


def parse_bytes(text: str, what: str) -> int:
    """A size such as ``8G``, ``512MiB`` or ``1000000`` in bytes; a :class:`ConfigError` naming
    ``what`` otherwise."""
    units = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    value = float(match.group(1)) * units[match.group(2).lower()] if match else 0.0
    if value < 1:
        raise ConfigError(
            "not a size in bytes",
            file="environment",
            key=what,
            allowed="a positive size such as 8G, 512M or 1000000",
            found=text,
        )
    return int(value)


def available_memory() -> int:
    """Bytes of memory available to new processes (``MemAvailable``), or half the RAM."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")) // 2


def memory_budget() -> int:
    """The memory a backfill's workers may use: ``SLUICE_MEMORY_BUDGET`` when set, else three
    quarters of the memory available now."""
    text = os.environ.get(MEMORY_ENV, "").strip()
    return parse_bytes(text, MEMORY_ENV) if text else available_memory() * 3 // 4


def partition_estimate(loaded: LoadedSpec, partition: Partition) -> int:
    """Bytes one worker is expected to hold at its peak while screening ``partition``."""
    from sluice.ingest import list_source_files

    try:
        size = sum(Path(f).stat().st_size for f in list_source_files(loaded, partition))
    except (OSError, SluiceError):
        size = 0
    factor = BYTES_PER_SOURCE_BYTE.get(
        loaded.spec.source.format, max(BYTES_PER_SOURCE_BYTE.values())
    )
    return BASE_BYTES + factor * size


def forced_bounded() -> bool | None:
    """``SLUICE_BOUNDED`` as a switch: True (``1``), False (``0``), or None when unset."""
    text = os.environ.get(BOUNDED_ENV, "").strip()
    if text in ("0", "1"):
        return text == "1"
    if text:
        raise ConfigError(
            "not a switch",
            file="environment",
            key=BOUNDED_ENV,
            allowed="1 (always bounded), 0 (never) or unset (by the partition's size)",
            found=text,
        )
    return None


def use_bounded(loaded: LoadedSpec, partition: Partition) -> bool:
    """Whether ``partition`` is screened in bounded batches (``SLUICE_BOUNDED``, else by size)."""
    forced = forced_bounded()
    if forced is not None:
        return forced
    return partition_estimate(loaded, partition) > memory_budget()


def batch_rows(columns: int) -> int:
    """Rows per batch of a bounded run over ``columns`` columns: ``SLUICE_BATCH_ROWS`` when set,
    else what a quarter of the memory budget holds, between 10,000 and 2,000,000."""
    text = os.environ.get(BATCH_ROWS_ENV, "").strip()
    if text:
        if not text.isdigit() or int(text) < 1:
            raise ConfigError(
                "not a number of rows",
                file="environment",
                key=BATCH_ROWS_ENV,
                allowed="a whole number of 1 or more",
                found=text,
            )
        return int(text)
    rows = memory_budget() // 4 // (BATCH_BYTES_PER_CELL * max(1, columns))
    return int(min(2_000_000, max(10_000, rows)))


__all__ = [
    "BASE_BYTES",
    "BATCH_ROWS_ENV",
    "BOUNDED_ENV",
    "BYTES_PER_SOURCE_BYTE",
    "MEMORY_ENV",
    "available_memory",
    "batch_rows",
    "forced_bounded",
    "memory_budget",
    "parse_bytes",
    "partition_estimate",
    "use_bounded",
]
