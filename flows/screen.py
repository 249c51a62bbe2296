"""Prefect flows: screen one partition, and backfill a range of partitions.

The flows only sequence the stage functions of :mod:`sluice.pipeline`; each task rebuilds its
run from plain values and passes on the work folder's path.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.runtime import flow_run

from sluice.config import find_spec, partition_range
from sluice.errors import CriticalCheckFailed, SluiceError
from sluice.pipeline import Run, stage_ingest, stage_screen, stage_validate, stage_write
from sluice.progress import progress

EngineChoice = Literal["auto", "polars", "gx"]
IO_RETRIES = 2
IO_RETRY_DELAYS: list[float] = [5.0, 30.0]


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only I/O errors that may pass (timeouts, connection resets), not bad data."""
    try:
        state.result()
    except (TimeoutError, ConnectionError):
        return True
    except Exception:
        return False
    return False


@task(
    name="ingest",
    cache_policy=NONE,
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=_transient,
)
def ingest_task(spec: str, partition: str, run_id: str, engine: EngineChoice) -> str:
    """Read the partition into the run's work folder."""
    run = Run.resume(spec, partition, run_id, engine)
    progress(run.loaded.name, partition, "ingest")
    stage_ingest(run)
    return str(run.work)


@task(name="validate", cache_policy=NONE)
def validate_task(spec: str, partition: str, run_id: str, engine: EngineChoice, work: str) -> str:
    """Run the suite over the ingested rows."""
    run = Run.resume(spec, partition, run_id, engine)
    progress(run.loaded.name, partition, "validate")
    stage_validate(run)
    return work


@task(name="screen", cache_policy=NONE)
def screen_task(spec: str, partition: str, run_id: str, engine: EngineChoice, work: str) -> str:
    """Score the rows that passed validation."""
    run = Run.resume(spec, partition, run_id, engine)
    progress(run.loaded.name, partition, "screen")
    stage_screen(run)
    return work


@task(
    name="write",
    cache_policy=NONE,
    retries=IO_RETRIES,
    retry_delay_seconds=IO_RETRY_DELAYS,
    retry_condition_fn=_transient,
)
def write_task(
    spec: str, partition: str, run_id: str, engine: EngineChoice, work: str
) -> dict[str, Any]:
    """Write clean rows, quarantine, failures and the manifest."""
    run = Run.resume(spec, partition, run_id, engine)
    progress(run.loaded.name, partition, "write")
    return stage_write(run)


def scheduled_partition(dataset: str) -> dt.date:
    """The partition a scheduled run screens: its scheduled local day, less the lag."""
    spec = find_spec(dataset).spec.partition
    when = flow_run.get_scheduled_start_time()
    local = dt.datetime.fromtimestamp(when.timestamp(), ZoneInfo(spec.timezone)).date()
    if spec.kind == "day":
        return local - dt.timedelta(days=spec.lag)
    month = local.replace(day=1)
    for _ in range(spec.lag):
        month = (month - dt.timedelta(days=1)).replace(day=1)
    return month


@flow(name="screen-partition", flow_run_name="{dataset} {partition}")
def screen_partition(
    dataset: str, partition: dt.date | None = None, engine: EngineChoice = "auto"
) -> dict[str, Any]:
    """Screen one partition of one dataset; without a partition, the one the schedule implies.

    Fails (exit code 1 from the CLI) when a critical check failed; the outputs are written first.
    """
    day = partition or scheduled_partition(dataset)
    run = Run.prepare(dataset, day, engine=engine)
    args = (str(run.loaded.path), str(run.partition), run.run_id, run.engine)
    try:
        work = ingest_task(*args)
        work = validate_task(*args, work)
        work = screen_task(*args, work)
        summary = write_task(*args, work)
    except BaseException:
        run.discard()
        raise
    counts = summary["counts"]
    get_run_logger().info(
        "%s %s: %d in, %d clean, %d quarantined (%s)",
        summary["dataset"],
        summary["partition"],
        counts["in"],
        counts["clean"],
        counts["quarantine"],
        summary["status"],
    )
    if summary["status"] == "failed":
        raise CriticalCheckFailed(
            f"{summary['dataset']} {summary['partition']}: critical checks failed "
            f"({', '.join(summary['critical'])}); the partition is quarantined. "
            f"Manifest: {summary['manifest']}"
        )
    return summary


@flow(name="backfill", flow_run_name="{dataset} {start}..{end}")
def backfill(
    dataset: str, start: dt.date, end: dt.date, engine: EngineChoice = "auto"
) -> dict[str, Any]:
    """Screen every partition from start to end (both included); one failure stops no other."""
    loaded = find_spec(dataset)
    try:
        parts = partition_range(loaded.spec.partition, start, end)
    except ValueError as exc:
        raise SluiceError(f"backfill {dataset}: {exc}") from None
    screened: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for part in parts:
        state = screen_partition(dataset, part.start, engine, return_state=True)
        if state.is_completed():
            screened.append(state.result())
        else:
            try:
                state.result()
                message = state.message or "failed"
            except Exception as exc:
                message = str(exc)
            failed.append({"partition": str(part), "error": message})
    summary = {
        "dataset": dataset,
        "start": str(parts[0]),
        "end": str(parts[-1]),
        "screened": screened,
        "failed": failed,
    }
    logger = get_run_logger()
    logger.info("backfill %s: %d screened, %d failed", dataset, len(screened), len(failed))
    return summary
