"""Running a function over items as tasks: here, in order (a cluster's runner is
:class:`sluice.pipeline.dask_partition.DaskTasks`), and writing a task's files so that a rerun
replaces them whole."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sluice.core.errors import SluiceError
from sluice.core.spill import writing


class Tasks:
    """Runs a function over items, one task each; this one in this process, in order."""

    def map(self, fn: Callable[..., Any], items: Sequence[Any], *args: Any) -> list[Any]:
        """``fn(item, *args)`` for every item, results in the items' order; the first error
        raised is raised here."""
        return [fn(item, *args) for item in items]

    def share(self, value: Any) -> Any:
        """``value`` as an argument of many tasks of :meth:`map`, shipped once (here: itself)."""
        return value


class TaskFailed(SluiceError):
    """An error a task raised on a worker, as its message and exit code (a :class:`SluiceError`
    whose constructor takes other arguments does not come back through pickle as it was)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def __reduce__(self) -> tuple[Any, ...]:
        return (TaskFailed, (str(self), self.exit_code))


@contextlib.contextmanager
def attempt_folder(folder: Path, name: str) -> Iterator[Path]:
    """A folder of its own for one attempt at task ``name``, under ``folder``: every file the
    attempt wrote there is renamed into ``folder`` when the block ends without an error (a
    rerun of the task writes the same names, so its files replace the earlier attempt's whole);
    the attempt's folder is removed either way."""
    temp = folder / f".{name}.{uuid.uuid4().hex[:12]}"
    with writing(temp):
        temp.mkdir(parents=True)
    try:
        yield temp
        with writing(folder):
            for path in sorted(temp.iterdir()):
                os.replace(path, folder / path.name)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


__all__ = ["TaskFailed", "Tasks", "attempt_folder"]
