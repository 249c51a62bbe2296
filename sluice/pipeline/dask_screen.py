"""One bounded partition's scoring split into tasks (issue 16, part b).

:func:`sluice.pipeline.bounded_screen.screen_bounded` given a task runner fits every detector
here, on the seeded sample the single-process stage fits on
(:func:`detectors.base.sample_indices`), and leaves the two passes over the partition to tasks,
one per range of row groups of ``frame.parquet`` (:func:`sluice.pipeline.dask_validate.row_ranges`):

1. **count**: each task counts its rows to score (those without a quarantining failure, whose
   sorted ids this process writes once to ``screen_parts/quarantined.npy``, which tasks map
   read-only); the counts give the number of rows to score, from which the sample is drawn,
   and the position of each range's first row among them (where the fit's own scores are
   reused);
2. **score**: per detector, each task scores its rows with the fitted model (shipped with the
   task) in batches of ``batch_rows`` rows, as the single-process stage does, and writes its
   scores and outliers to ``screen_parts/``, each under a name of its own attempt, renamed into
   place; it returns the rows it flagged.

This process appends the tasks' files, row group by row group and in range order, to
``scores.parquet`` and ``screen_failures.parquet``: the single-process stage's rows in its
order. Memory of a task: the model, one batch and the quarantined ids (mapped); here: the fit
sample and the model, as in one process, and one row group while appending.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow.parquet as pq

from detectors.persist import FittedModel
from detectors.screen import SCORES_SCHEMA, KnownScores, _score_spec
from detectors.spec import DetectorSpec
from sluice.core.failures import FAILURE_SCHEMA
from sluice.core.spill import writing
from sluice.pipeline.bounded_screen import StreamWriter, arrow_schema, passed_batches
from sluice.pipeline.dask_validate import RowRange, row_ranges
from sluice.pipeline.run import Run
from sluice.pipeline.task_map import Tasks, attempt_folder

PARTS_DIR = "screen_parts"
RANGE_BATCHES = 4
"""Batches of rows per scoring task."""
QUARANTINED = "quarantined.npy"


@dataclass(frozen=True)
class ScoreRange:
    """A scoring task's rows: a range of row groups, the position of its first row to score
    among the partition's, and the fit's reused scores that fall in it (positions from there)."""

    rows: RowRange
    start: int
    known: KnownScores | None = None


@dataclass(frozen=True)
class ScoreJob:
    """What every scoring task of one detector spec gets."""

    frame_path: Path
    folder: Path
    spec: DetectorSpec
    index: int
    fitted: FittedModel
    features: tuple[str, ...]
    batch_rows: int


def _quarantined(folder: Path) -> npt.NDArray[np.uint64]:
    ids: npt.NDArray[np.uint64] = np.load(folder / QUARANTINED, mmap_mode="r")
    return ids


def count_range(task: RowRange, frame_path: Path, folder: Path, rows: int) -> int:
    """On a worker: the rows of ``task``'s row groups to score."""
    bad = _quarantined(folder)
    return sum(b.height for b in passed_batches(frame_path, bad, [], rows, task_groups(task)))


def task_groups(task: RowRange) -> range:
    """The row groups of a range."""
    return range(task.first, task.last)


def _parts(folder: Path, index: int, task: int) -> dict[str, Path]:
    return {
        name: folder / f"d{index}.t{task:06d}.{name}.parquet" for name in ("scores", "failures")
    }


def _shifted(known: KnownScores | None, start: int, stop: int) -> KnownScores | None:
    if known is None:
        return None
    lo, hi = np.searchsorted(known.positions, [start, stop])
    return KnownScores(known.positions[lo:hi] - start, known.features[lo:hi], known.scores[lo:hi])


def score_range(task: ScoreRange, job: ScoreJob) -> int:
    """On a worker: score ``task``'s rows with the fitted model, batch by batch, into its two
    files (see the module's docstring); the rows flagged."""
    bad = _quarantined(job.folder)
    flagged = 0
    final = _parts(job.folder, job.index, task.rows.index)
    with attempt_folder(job.folder, final["scores"].stem) as temp:
        names = {k: temp / p.name for k, p in final.items()}
        with (
            StreamWriter(names["failures"], arrow_schema(FAILURE_SCHEMA)) as failures,
            StreamWriter(names["scores"], arrow_schema(SCORES_SCHEMA)) as scores,
        ):
            start = 0
            groups = task_groups(task.rows)
            for batch in passed_batches(
                job.frame_path, bad, list(job.features), job.batch_rows, groups
            ):
                stop = start + batch.height
                s, f, k = _score_spec(
                    job.spec, job.fitted, batch, _shifted(task.known, start, stop)
                )
                scores.write(s)
                failures.write(f)
                flagged += k
                start = stop
    return flagged


class SplitScreen:
    """The scoring passes of one bounded screen stage run by ``tasks``."""

    def __init__(self, tasks: Tasks, run: Run, batch_rows: int) -> None:
        self.tasks = tasks
        self.frame_path = frame_path = run.file("frame.parquet")
        self.folder = run.work / PARTS_DIR
        self.rows = batch_rows
        self.ranges = row_ranges(frame_path, batch_rows * RANGE_BATCHES)
        self.starts: list[int] = []

    def count(self, bad: npt.NDArray[np.uint64]) -> int:
        """The rows to score (``bad``: the sorted quarantined ids), counted by tasks."""
        shutil.rmtree(self.folder, ignore_errors=True)
        with writing(self.folder):
            self.folder.mkdir(parents=True)
            np.save(self.folder / QUARANTINED, np.asarray(bad, dtype=np.uint64))
        counts = self.tasks.map(count_range, self.ranges, self.frame_path, self.folder, self.rows)
        self.starts = [int(x) for x in np.cumsum([0, *counts])]
        return self.starts[-1]

    def score(
        self,
        spec: DetectorSpec,
        index: int,
        fitted: FittedModel,
        known: KnownScores | None,
        writers: tuple[StreamWriter, StreamWriter],
    ) -> int:
        """Score every range with ``fitted`` as tasks, append their files to ``writers``
        (scores, failures) in order; the rows flagged."""
        features = tuple(dict.fromkeys(f.column for f in spec.feature_specs()))
        job = ScoreJob(self.frame_path, self.folder, spec, index, fitted, features, self.rows)
        items = [
            ScoreRange(
                r,
                self.starts[r.index],
                _shifted(known, self.starts[r.index], self.starts[r.index + 1]),
            )
            for r in self.ranges
        ]
        flagged = int(sum(self.tasks.map(score_range, items, self.tasks.share(job))))
        scores, failures = writers
        for r in self.ranges:
            paths = _parts(self.folder, index, r.index)
            for name, writer in (("scores", scores), ("failures", failures)):
                source = pq.ParquetFile(paths[name])
                for g in range(source.num_row_groups):
                    frame = pl.from_arrow(source.read_row_group(g))
                    assert isinstance(frame, pl.DataFrame)
                    writer.write(frame)
                source.close()
                paths[name].unlink()
        return flagged

    def close(self) -> None:
        """Remove the tasks' folder."""
        shutil.rmtree(self.folder, ignore_errors=True)


def split_screen(tasks: Tasks) -> Callable[[Run, int], SplitScreen]:
    """The ``split`` of :func:`sluice.pipeline.bounded_screen.screen_bounded` that runs its
    passes as ``tasks``."""
    return lambda run, rows: SplitScreen(tasks, run, rows)


__all__ = [
    "PARTS_DIR",
    "ScoreJob",
    "ScoreRange",
    "SplitScreen",
    "count_range",
    "score_range",
    "split_screen",
]
