"""Prefect flows: screen one partition, and backfill a range of partitions.

The flows only sequence the stage functions of :mod:`sluice.pipeline`; each task takes the run's
:class:`~sluice.pipeline.run.RunRef` (spec and suite with their sha256, partition, run id,
engine, work folder), rebuilds the run from it, refusing to go on when the spec or the suite
changed since the run was prepared, and returns it for the next task. Around the stages, a flow
skips a partition that is already done (:mod:`sluice.pipeline.idempotence`), emits alert events
(:mod:`flows.alerts`), and a backfill running as a deployment fans out one flow run per
partition (:mod:`flows.fanout`).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run
from prefect.states import Completed
from prefect.tasks import exponential_backoff

from flows import alerts, fanout
from flows.parameters import DatasetName, PartitionValue, QuarantineRate, flow_value
from sluice.config import (
    LoadedSpec,
    Partition,
    PartitionSpec,
    find_spec,
    partition_range,
    value_text,
)
from sluice.core.errors import RunFailed, SluiceError
from sluice.core.frame import EngineChoice
from sluice.lineage import run_stopped
from sluice.pipeline import Run, stage_ingest, stage_screen, stage_validate, stage_write
from sluice.pipeline.idempotence import (
    check_done,
    manifest_path,
    read_manifest,
    skipped_summary,
    summary_from_manifest,
)
from sluice.pipeline.local import (
    IO_BACKOFF_SECONDS,
    IO_RETRIES,
    IO_RETRY_JITTER,
    is_transient,
    partition_line,
    run_failure,
)
from sluice.pipeline.reapply import with_decisions_reapplied
from sluice.pipeline.run import RunRef
from sluice.progress import PARTITION_LOG, progress
from sluice.report.artifacts import artifact_key, publish_artifacts


class BackfillFailed(SluiceError):
    """Some partitions of a backfill failed (raised only by a backfill run from a deployment)."""

    exit_code = 1


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only I/O errors that may pass (timeouts, connection resets), not bad data."""
    try:
        state.result()
    except Exception as exc:
        return is_transient(exc)
    return False


_io_retries: dict[str, Any] = {
    "retries": IO_RETRIES,
    "retry_delay_seconds": exponential_backoff(backoff_factor=IO_BACKOFF_SECONDS),
    "retry_jitter_factor": IO_RETRY_JITTER,
    "retry_condition_fn": _transient,
}


@task(name="ingest", cache_policy=NONE, **_io_retries)
def ingest_task(ref: RunRef) -> RunRef:
    """Read the partition into the run's work folder."""
    run = Run.resume(ref)
    progress(run.loaded.name, ref.partition, "ingest")
    stage_ingest(run)
    return ref


@task(name="validate", cache_policy=NONE)
def validate_task(ref: RunRef) -> RunRef:
    """Run the suite over the ingested rows."""
    run = Run.resume(ref)
    progress(run.loaded.name, ref.partition, "validate")
    stage_validate(run)
    return ref


@task(name="screen", cache_policy=NONE)
def screen_task(ref: RunRef) -> RunRef:
    """Score the rows that passed validation."""
    run = Run.resume(ref)
    progress(run.loaded.name, ref.partition, "screen")
    stage_screen(run)
    return ref


@task(name="write", cache_policy=NONE, **_io_retries)
def write_task(ref: RunRef) -> dict[str, Any]:
    """Write clean rows, quarantine, failures and the manifest."""
    run = Run.resume(ref)
    progress(run.loaded.name, ref.partition, "write")
    return stage_write(run, orchestrator="prefect")


def local_day(when: dt.datetime, timezone: str) -> dt.date:
    """The calendar day of an instant in a time zone."""
    return dt.datetime.fromtimestamp(when.timestamp(), ZoneInfo(timezone)).date()


def local_hour(when: dt.datetime, timezone: str, lag: int = 0) -> dt.datetime:
    """The wall-clock hour (naive) in a time zone of the instant ``lag`` hours before ``when``.

    The lag is elapsed time: on the day clocks go back, two runs an hour apart name the same
    wall-clock hour, and on the day they go forward no run names the skipped hour.
    """
    instant = dt.datetime.fromtimestamp(when.timestamp(), dt.UTC) - dt.timedelta(hours=lag)
    local = instant.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
    return local.replace(minute=0, second=0, microsecond=0)


def partition_at(when: dt.datetime, spec: PartitionSpec) -> dt.date:
    """The partition a run scheduled at ``when`` screens: its local day, month or hour in the
    partition time zone, less the lag (a day or an hour, a ``datetime`` for an hour)."""
    if spec.kind == "hour":
        return local_hour(when, spec.timezone, spec.lag)
    local = local_day(when, spec.timezone)
    if spec.kind == "day":
        return local - dt.timedelta(days=spec.lag)
    month = local.replace(day=1)
    for _ in range(spec.lag):
        month = (month - dt.timedelta(days=1)).replace(day=1)
    return month


def scheduled_partition(dataset: str) -> dt.date:
    """The partition a scheduled run screens: its scheduled local day (or hour), less the lag."""
    spec = find_spec(dataset).spec.partition
    return partition_at(flow_run.get_scheduled_start_time(), spec)


def _dataset_label(dataset: str) -> str:
    return Path(dataset).stem if dataset.endswith((".yaml", ".yml")) else dataset


def _screen_run_name() -> str:
    """``<dataset> <partition>``, the partition worked out from the schedule when not given."""
    params = flow_run.get_parameters()
    dataset = str(params.get("dataset", "?"))
    partition = params.get("partition")
    if partition is None:
        try:
            partition = scheduled_partition(dataset)
        except Exception:
            partition = "scheduled"
    return f"{_dataset_label(dataset)} {value_text(partition)}"


@flow(name="screen-partition", flow_run_name=_screen_run_name)
def screen_partition(
    dataset: DatasetName,
    partition: PartitionValue | None = None,
    engine: EngineChoice | None = None,
    *,
    force: bool = False,
    max_quarantine_rate: QuarantineRate | None = None,
) -> dict[str, Any]:
    """Screen one partition of one dataset.

    The run's verdict (``sluice.verdict``) sets the flow run's state: passed is Completed,
    warned a Completed state named "Warned" whose message names the causes, failed a Failed
    state (exit code 1 from the CLI) raised after the outputs are written. A partition already
    screened from the same inputs, suite and spec is skipped (the summary then says why under
    ``skipped``) unless ``force``.

    Args:
        dataset: The dataset to screen: one of the specs in datasets/.
        partition: The partition to screen (YYYY-MM-DD, YYYY-MM or YYYY-MM-DDTHH, as the
            dataset's partitions); empty for the one the schedule implies (the run's scheduled
            local day or hour, less the dataset's lag).
        engine: Which engine validates the suite: polars where it can (auto), polars only, or
            GX itself; empty for the dataset spec's validation.engine.
        force: Screen again even when the partition is already done.
        max_quarantine_rate: Alert when a larger share of the rows is quarantined; empty for
            the dataset spec's policies.alerts.max_quarantine_rate.
    """
    day = partition or scheduled_partition(dataset)
    run = Run.prepare(dataset, day, engine=engine)
    logger = get_run_logger()
    name = f"{run.loaded.name} {run.partition}"
    if force:
        logger.info("%s: screening (forced)", name)
    else:
        verdict = check_done(run.loaded, run.partition, suite_sha256=run.suite.sha256)
        done = skipped_summary(verdict)
        if done is not None:
            logger.info(
                "%s: skipped: %s (%s); force=True screens it again",
                name,
                verdict.reason,
                verdict.manifest,
            )
            return done
        logger.info("%s: screening: %s", name, verdict.reason)
    try:
        ref = ingest_task(run.ref)
        ref = validate_task(ref)
        ref = screen_task(ref)
        summary = write_task(ref)
    except BaseException as exc:
        run.discard()
        run_stopped(run.loaded.name, run.run_id, run.partition, exc)
        raise
    summary = with_decisions_reapplied(run.loaded, summary)
    counts = summary["counts"]
    logger.info(
        "%s: %d in, %d clean, %d quarantined (%s)",
        name,
        counts["in"],
        counts["clean"],
        counts["quarantine"],
        summary["status"],
    )
    limit = (
        run.loaded.spec.policies.alerts.max_quarantine_rate
        if max_quarantine_rate is None
        else max_quarantine_rate
    )
    manifest = read_manifest(Path(summary["manifest"])) or {}
    raised = alerts.judge(summary, limit) + alerts.baseline_alerts(summary, manifest)
    for alert in raised:
        logger.warning("alert %s: %s", alert.event, alert.message)
    alerts.emit(summary, raised)
    publish_artifacts(summary, manifest)
    # Prefect ends the run in a returned state and hands the caller the state's data.
    return cast("dict[str, Any]", final_state(summary))


def _cause_lines(summary: dict[str, Any], level: str) -> list[str]:
    return [str(c["message"]) for c in summary.get("causes", []) if c.get("level") == level]


def final_state(summary: dict[str, Any]) -> dict[str, Any] | State[dict[str, Any]]:
    """What a screened partition's flow run ends in: the summary (Completed), a Completed
    state named "Warned" holding it, or a raised :class:`RunFailed` carrying it."""
    name = f"{summary['dataset']} {summary['partition']}"
    failure = run_failure(summary)
    if failure is not None:
        raise failure
    if summary["status"] == "warned":
        return Completed(
            name="Warned",
            message=f"{name}: warned: {'; '.join(_cause_lines(summary, 'warn'))}",
            data=summary,
        )
    return summary


class _Finished:
    """Logs each finished partition of a backfill as it finishes, numbered ``[k/n]``."""

    def __init__(self, dataset: str, total: int) -> None:
        self.dataset = dataset
        self.total = total
        self.count = 0
        self.log = logging.getLogger(PARTITION_LOG)
        self.extra: dict[str, Any] = dict(getattr(get_run_logger(), "extra", None) or {})

    def __call__(
        self,
        partition: str,
        outcome: dict[str, Any] | None,
        error: str | None = None,
        seconds: float = 0.0,
    ) -> None:
        self.count += 1
        line = partition_line(self.dataset, partition, outcome, error, seconds)
        level = logging.INFO if outcome is not None else logging.ERROR
        self.log.log(level, "[%d/%d] %s", self.count, self.total, line, extra=self.extra)


def _backfill_partitions(
    loaded: LoadedSpec, start: dt.date | str, end: dt.date | str
) -> list[Partition]:
    try:
        return partition_range(loaded.spec.partition, start, end)
    except ValueError as exc:
        raise SluiceError(f"backfill {loaded.name}: {exc}") from None


def _in_process(
    loaded: LoadedSpec,
    dataset: str,
    parts: list[Partition],
    options: dict[str, Any],
    finished: _Finished,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    screened: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for part in parts:
        t0 = time.perf_counter()
        state = screen_partition(dataset, flow_value(part.start), return_state=True, **options)
        seconds = time.perf_counter() - t0
        if state.is_completed():
            result: dict[str, Any] = state.result()
            (skipped if result.get("skipped") else screened).append(result)
            finished(str(part), result, seconds=seconds)
            continue
        entry: dict[str, Any] = {"partition": str(part)}
        try:
            state.result()
            entry["error"] = state.message or "failed"
        except Exception as exc:
            entry["error"] = str(exc)
            if isinstance(exc, RunFailed) and exc.summary is not None:
                entry["summary"] = exc.summary
        failed.append(entry)
        finished(str(part), None, entry["error"], seconds)
    return screened, skipped, failed


def _fan_out(
    loaded: LoadedSpec,
    dataset: str,
    parts: list[Partition],
    options: dict[str, Any],
    finished: _Finished,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    label = _dataset_label(dataset)
    ids = fanout.launch(
        {str(p): flow_value(p.start) for p in parts},
        {"dataset": dataset, **options},
        run_name=f"{label} {{partition}}",
    )
    screened: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    by_name = {str(p): p for p in parts}

    def collect(child: fanout.ChildRun) -> None:
        error = child.message
        if child.ok:
            path = manifest_path(loaded, by_name[child.partition])
            manifest = read_manifest(path)
            if manifest is not None:
                summary = summary_from_manifest(manifest, path)
                screened.append(summary)
                finished(child.partition, summary, seconds=child.seconds)
                return
            error = f"no manifest at {path}"
        failed.append({"partition": child.partition, "error": error})
        finished(child.partition, None, error, child.seconds)

    fanout.wait(ids, on_final=collect)
    order = {str(p): i for i, p in enumerate(parts)}
    screened.sort(key=lambda s: order.get(str(s["partition"]), len(order)))
    failed.sort(key=lambda f: order.get(str(f["partition"]), len(order)))
    return screened, skipped, failed


def summary_markdown(summary: dict[str, Any]) -> str:
    """A backfill summary as a Markdown table, for the run's artifact."""
    lines = [
        f"# Backfill {summary['dataset']} {summary['start']}..{summary['end']}",
        "",
        f"{len(summary['screened'])} screened, {len(summary['skipped'])} skipped, "
        f"{len(summary['failed'])} failed",
        "",
        "| partition | outcome | rows in | clean | quarantined | note |",
        "|---|---|---:|---:|---:|---|",
    ]
    rows: list[tuple[str, str]] = []
    for kind in ("screened", "skipped"):
        for s in summary[kind]:
            c = s["counts"]
            note = s.get("skipped") or s["manifest"]
            rows.append(
                (
                    s["partition"],
                    f"| {s['partition']} | {kind} ({s['status']}) | {c['in']} | {c['clean']} "
                    f"| {c['quarantine']} | {note} |",
                )
            )
    for f in summary["failed"]:
        error = str(f["error"]).replace("|", "\\|").replace("\n", " ")
        rows.append((f["partition"], f"| {f['partition']} | failed | | | | {error} |"))
    lines.extend(row for _, row in sorted(rows))
    return "\n".join(lines) + "\n"


@flow(name="backfill", flow_run_name="{dataset} {start}..{end}")
def backfill(
    dataset: DatasetName,
    start: PartitionValue,
    end: PartitionValue,
    engine: EngineChoice | None = None,
    *,
    force: bool = False,
    max_quarantine_rate: QuarantineRate | None = None,
) -> dict[str, Any]:
    """Screen every partition from start to end (both included); one failure stops no other.

    Partitions already done are skipped unless ``force``. Run from a deployment, each partition
    is its own run of the ``screen-partition/on-demand`` deployment, and this run fails when any
    partition failed; called in-process, partitions run as subflows and the caller reads the
    summary (``screened``, ``skipped``, ``failed``). Each partition is logged in one line as
    it finishes (:func:`partition_line`, logger :data:`sluice.progress.PARTITION_LOG`).

    Args:
        dataset: The dataset to screen: one of the specs in datasets/.
        start: The first partition (for a monthly dataset, any day of the month; for an
            hourly one, an hour YYYY-MM-DDTHH).
        end: The last partition, included.
        engine: Which engine validates the suite: polars where it can (auto), polars only, or
            GX itself; empty for the dataset spec's validation.engine.
        force: Screen again the partitions that are already done.
        max_quarantine_rate: Alert when a larger share of a partition's rows is quarantined;
            empty for the dataset spec's policies.alerts.max_quarantine_rate.
    """
    logger = get_run_logger()
    loaded = find_spec(dataset)
    parts = _backfill_partitions(loaded, start, end)
    finished = _Finished(loaded.name, len(parts))
    todo: list[Partition] = []
    skipped: list[dict[str, Any]] = []
    for part in parts:
        t0 = time.perf_counter()
        done = None if force else skipped_summary(check_done(loaded, part))
        if done is None:
            todo.append(part)
            continue
        skipped.append(done)
        finished(str(part), done, seconds=time.perf_counter() - t0)
    options = {"engine": engine, "force": force, "max_quarantine_rate": max_quarantine_rate}
    fan_out = bool(todo) and fanout.in_deployment() and fanout.deployment_exists()
    if todo and fanout.in_deployment() and not fan_out:
        logger.warning(
            "deployment %s not found: screening the partitions in this run instead",
            fanout.SCREEN_DEPLOYMENT,
        )
    runner = _fan_out if fan_out else _in_process
    screened, also_skipped, failed = (
        runner(loaded, dataset, todo, options, finished) if todo else ([], [], [])
    )
    summary: dict[str, Any] = {
        "dataset": loaded.name,
        "start": str(parts[0]),
        "end": str(parts[-1]),
        "screened": screened,
        "skipped": sorted(skipped + also_skipped, key=lambda s: str(s["partition"])),
        "failed": failed,
    }
    logger.info(
        "backfill %s %s..%s: %d screened, %d skipped, %d failed",
        loaded.name,
        summary["start"],
        summary["end"],
        len(screened),
        len(summary["skipped"]),
        len(failed),
    )
    create_markdown_artifact(
        summary_markdown(summary),
        key=artifact_key(loaded.name, "backfill"),
        description=f"Backfill of {loaded.name} {summary['start']}..{summary['end']}",
    )
    if failed and fan_out:
        raise BackfillFailed(
            f"backfill {loaded.name}: {len(failed)} of {len(parts)} partitions failed: "
            + "; ".join(f"{f['partition']}: {f['error']}" for f in failed)
        )
    return summary
