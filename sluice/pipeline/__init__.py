"""The path of one partition: ingest, validate, screen, write.

Each stage is a plain function that reads its inputs from, and leaves its results in, the run's
work folder, so an orchestrator passes one run reference between stages, never frames.
:func:`run_partition` calls them in order without Prefect; ``flows/`` wraps the same functions
as Prefect tasks.

- :mod:`sluice.pipeline.run`: the run, its work folder and the facts each stage records;
- :mod:`sluice.pipeline.stages`: ingest, validate and screen;
- :mod:`sluice.pipeline.reference`: the earlier clean rows detectors learn from;
- :mod:`sluice.pipeline.commit`: the write stage, which commits the partition;
- :mod:`sluice.pipeline.recovery`: what dead runs left;
- :mod:`sluice.pipeline.idempotence`: whether a partition is already done;
- :mod:`sluice.pipeline.local`: the CLI's runner without Prefect (one partition, or a backfill on
  every core).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sluice.core.frame import EngineChoice
from sluice.lineage import run_stopped
from sluice.pipeline.commit import stage_write
from sluice.pipeline.handoff import in_memory
from sluice.pipeline.reapply import with_decisions_reapplied
from sluice.pipeline.recovery import recover_partition
from sluice.pipeline.reference import reference_rows, verified_clean
from sluice.pipeline.run import SIDES, STAGES, Run, output_roots
from sluice.pipeline.stages import stage_ingest, stage_screen, stage_validate

__all__ = [
    "SIDES",
    "STAGES",
    "Run",
    "output_roots",
    "recover_partition",
    "reference_rows",
    "run_partition",
    "stage_ingest",
    "stage_screen",
    "stage_validate",
    "stage_write",
    "verified_clean",
]


def run_partition(
    dataset: str, partition: str | dt.date, *, engine: EngineChoice | None = None
) -> dict[str, Any]:
    """Screen one partition without Prefect (for notebooks and tests); returns the run summary."""
    started = dt.datetime.now(dt.UTC)
    run = Run.prepare(dataset, partition, engine=engine)
    try:
        with in_memory(run):
            stage_ingest(run)
            stage_validate(run)
            stage_screen(run)
            summary = stage_write(run, started, "in-process")
    except BaseException as exc:
        run.discard()
        run_stopped(run.loaded.name, run.run_id, run.partition, exc)
        raise
    return with_decisions_reapplied(run.loaded, summary)
