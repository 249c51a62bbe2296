"""Frames passed between the stages of one run: in memory when the stages share a process.

A stage leaves its frames (the typed rows, their raw text, each stage's failures) for the next
with :func:`put` and takes them with :func:`get`. Between processes (Prefect tasks, Dask
workers, a backfill's workers) they go through the run's work folder as Parquet; inside
:func:`in_memory`, which the in-process runner opens around a run's stages, the same frames are
kept as they are, so the typed frame is neither written nor read back. A name not held in memory
is read from the work folder, where a bounded stage or another process left it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from sluice.pipeline.run import Run
from sluice.write import write_parquet

_HELD: dict[Path, dict[str, pl.DataFrame]] = {}


@contextmanager
def in_memory(run: Run) -> Iterator[None]:
    """Keep the frames ``run``'s stages pass each other in memory while the block runs."""
    _HELD[run.work] = {}
    try:
        yield
    finally:
        _HELD.pop(run.work, None)


def held(run: Run) -> bool:
    """Whether ``run``'s frames are kept in memory (inside :func:`in_memory`)."""
    return run.work in _HELD


def put(run: Run, name: str, frame: pl.DataFrame) -> None:
    """Leave ``frame`` for the next stages under ``name`` (a file name in the work folder)."""
    memory = _HELD.get(run.work)
    if memory is None:
        write_parquet(frame, run.file(name))
    else:
        memory[name] = frame


def release(run: Run, *names: str) -> None:
    """Let go of frames held in memory that no later stage takes (the files in the work
    folder, if any, stay): a stage retried after this starts again from the ingest."""
    memory = _HELD.get(run.work)
    if memory is not None:
        for name in names:
            memory.pop(name, None)


def has(run: Run, name: str) -> bool:
    """Whether a later stage can still take the frame left under ``name``."""
    memory = _HELD.get(run.work)
    return (memory is not None and name in memory) or run.file(name).is_file()


def in_memory_only(run: Run, name: str) -> pl.DataFrame | None:
    """The frame left under ``name`` when it is held in memory; None otherwise (a file in the
    work folder is not read: a bounded stage's may be larger than memory)."""
    memory = _HELD.get(run.work)
    return None if memory is None else memory.get(name)


def get(run: Run, name: str) -> pl.DataFrame:
    """The frame an earlier stage left under ``name``: from memory, else from the work folder."""
    memory = _HELD.get(run.work)
    if memory is not None and name in memory:
        return memory[name]
    return pl.read_parquet(run.file(name))
