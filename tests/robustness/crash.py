"""Kill a run of the pipeline at a chosen point: the child side of the fault-injection tests.

:func:`run_and_kill` runs :func:`sluice.pipeline.run_partition` in the current process with
probes on every step that touches the disk under ``workspace``: reading a source file, writing a
Parquet or text file (polars and ``Path.write_text``), and, through an audit hook, opening a file
for writing, making or removing a folder and renaming. Probe ``n`` (counted from 0) sends SIGKILL
to the process, before its step (``before``) or, for writes, after writing half of the file
(``torn``). With ``kill_at=None`` nothing is killed and the list of probes is written to
``trace``. Nothing here is part of sluice: the probes are installed by the test, in a child.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import polars as pl

import sluice.ingest.file
import sluice.pipeline.commit
import sluice.pipeline.stages
import sluice.write
from sluice.pipeline import run_partition

Mode = Literal["before", "torn"]
AUDITED = {"os.rename", "os.remove", "os.rmdir", "os.mkdir", "shutil.rmtree"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _writes(mode: Any, flags: Any) -> bool:
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    return isinstance(flags, int) and bool(flags & WRITE_FLAGS)


def run_and_kill(
    spec: str,
    partition: str,
    workspace: str,
    kill_at: int | None,
    *,
    mode: Mode = "before",
    trace: str | None = None,
) -> None:
    """Run one partition, killing this process at probe ``kill_at`` (see the module's doc)."""
    seen: list[str] = []
    state = {"on": True}

    def probe(step: str, path: object, torn: Callable[[], None] | None = None) -> None:
        target = os.fspath(path) if isinstance(path, str | os.PathLike) else ""
        if not state["on"] or not str(target).startswith(workspace):
            return
        seen.append(f"{step} {target}")
        if kill_at == len(seen) - 1:
            if mode == "torn" and torn is not None:
                torn()
            os.kill(os.getpid(), signal.SIGKILL)

    def audit(event: str, args: tuple[Any, ...]) -> None:
        if event in AUDITED:
            probe(event, args[0])
        elif event == "open" and len(args) >= 3 and _writes(args[1], args[2]):
            probe("open-for-write", args[0])

    def half(path: str | os.PathLike[str]) -> None:
        size = os.path.getsize(path)
        with open(path, "r+b") as fh:
            fh.truncate(size // 2)

    write_parquet = pl.DataFrame.write_parquet
    write_text = pathlib.Path.write_text
    read_bytes = sluice.ingest.file._read_bytes  # type: ignore[attr-defined]

    def parquet_probe(self: pl.DataFrame, file: Any, *args: Any, **kwargs: Any) -> None:
        def torn() -> None:
            write_parquet(self, file, *args, **kwargs)
            half(file)

        probe("write_parquet", file, torn)
        write_parquet(self, file, *args, **kwargs)

    def text_probe(self: pathlib.Path, data: str, *args: Any, **kwargs: Any) -> int:
        def torn() -> None:
            write_text(self, data, *args, **kwargs)
            half(self)

        probe("write_text", self, torn)
        return write_text(self, data, *args, **kwargs)

    def read_probe(path: str) -> bytes:
        probe("read", path)
        return read_bytes(path)

    pl.DataFrame.write_parquet = parquet_probe  # type: ignore[method-assign]
    pathlib.Path.write_text = text_probe  # type: ignore[method-assign]
    sluice.ingest.file._read_bytes = read_probe  # type: ignore[attr-defined]
    sys.addaudithook(audit)
    run_partition(spec, partition)
    state["on"] = False
    if trace is not None:
        with open(trace, "w", encoding="utf-8") as fh:
            json.dump(seen, fh)


def run_logged(spec: str, partition: str, log: str, hold: float) -> None:
    """Run one partition, appending ``pid waiting|acquired|released time`` to ``log`` around each
    use of the partition's lock, and keeping the lock ``hold`` seconds longer each time."""
    lock = sluice.write.partition_lock

    def note(what: str) -> None:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()} {what} {time.monotonic()}\n")

    @contextlib.contextmanager
    def logged(root: Path, dirname: str, **kwargs: Any) -> Iterator[Path]:
        note("waiting")
        with lock(root, dirname, **kwargs) as path:
            note("acquired")
            time.sleep(hold)
            try:
                yield path
            finally:
                note("released")

    sluice.pipeline.stages.partition_lock = logged  # type: ignore[attr-defined]
    sluice.pipeline.commit.partition_lock = logged  # type: ignore[attr-defined]
    run_partition(spec, partition)
