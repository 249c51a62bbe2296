"""Screening without Prefect: one partition, or a backfill on every core, in this process.

The same stage functions the flows of ``flows/screen.py`` wrap in tasks run here in order, with
the same skip-if-done judgement (:mod:`sluice.pipeline.idempotence`), the same recovery of what
dead runs left (inside the stages), the same retries of transient I/O errors around ingest and
write, and the same summaries. Only Prefect's run records, artifacts and events are missing.

A backfill runs the partitions' ingest and validate (and screen, when detectors learn from the
batch alone) in worker processes, as many as the cores and the memory budget allow, and commits
the partitions one after another in date order: a partition's report, metric history and
detector reference read the partitions committed before it, so the outputs are those of the
serial run.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import json
import logging
import multiprocessing
import os
import random
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sluice.config import LoadedSpec, Partition, find_spec, partition_range
from sluice.core.errors import ConfigError, CriticalCheckFailed, RunFailed, SluiceError
from sluice.core.frame import EngineChoice
from sluice.lineage import run_stopped
from sluice.pipeline.budget import (
    BASE_BYTES,
    memory_budget,
    partition_estimate,
)
from sluice.pipeline.commit import stage_write
from sluice.pipeline.handoff import has, in_memory
from sluice.pipeline.idempotence import check_done, skipped_summary
from sluice.pipeline.reapply import with_decisions_reapplied
from sluice.pipeline.run import Run, RunRef, log
from sluice.pipeline.stages import stage_ingest, stage_screen, stage_validate
from sluice.progress import PARTITION_LOG, progress

IO_RETRIES = 3
IO_BACKOFF_SECONDS = 5.0
IO_RETRY_JITTER = 0.5
PREFECT_ENV = "SLUICE_PREFECT"
WORKERS_ENV = "SLUICE_WORKERS"
T = TypeVar("T")


def is_transient(exc: BaseException | None) -> bool:
    """Whether an error, or the error it was raised from, is an I/O error that may pass."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, TimeoutError | ConnectionError):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def retry_delay(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (0 first): Prefect's exponential backoff
    (``IO_BACKOFF_SECONDS * 2**attempt``) with its jitter of ``IO_RETRY_JITTER`` either side."""
    average = IO_BACKOFF_SECONDS * float(2**attempt)
    return max(0.0, float(random.uniform(1 - IO_RETRY_JITTER, 1 + IO_RETRY_JITTER)) * average)


def with_io_retries(fn: Callable[[], T], what: str) -> T:
    """Call ``fn``; retry it up to :data:`IO_RETRIES` times while it fails with a transient
    I/O error (:func:`is_transient`), as the flow's ingest and write tasks do."""
    for attempt in range(IO_RETRIES + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt == IO_RETRIES or not is_transient(exc):
                raise
            delay = retry_delay(attempt)
            log.warning("%s: %s; retrying in %.1f s", what, exc, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def run_failure(summary: dict[str, Any]) -> RunFailed | None:
    """The error a failed run's summary stands for (None unless its status is failed): a
    :class:`CriticalCheckFailed` when critical checks failed, else a :class:`RunFailed`."""
    if summary["status"] != "failed":
        return None
    name = f"{summary['dataset']} {summary['partition']}"
    if summary.get("critical"):
        return CriticalCheckFailed(
            f"{name}: critical checks failed ({', '.join(summary['critical'])}); the "
            f"partition is quarantined. Manifest: {summary['manifest']}",
            summary,
        )
    errors = [str(c["message"]) for c in summary.get("causes", []) if c.get("level") == "error"]
    return RunFailed(
        f"{name}: failed: {'; '.join(errors)}. Manifest: {summary['manifest']}", summary
    )


def partition_line(
    dataset: str, partition: str, outcome: dict[str, Any] | None, error: str | None, seconds: float
) -> str:
    """One finished partition of a backfill, in one line: status, rows and seconds.

    ``outcome`` is the partition's summary (screened or skipped); ``error`` why it failed.
    """
    head = f"{dataset} {partition}: "
    if outcome is None:
        text = " ".join(str(error or "failed").split())
        return f"{head}FAILED: {text} ({seconds:.1f} s)"
    c = outcome["counts"]
    status = str(outcome["status"])
    if outcome.get("skipped"):
        status = f"skipped ({status}: {outcome['skipped']})"
    return (
        f"{head}{status}: {c['in']} rows in, {c['clean']} clean, {c['quarantine']} quarantined "
        f"({seconds:.1f} s)"
    )


def _ingest_validate(run: Run, *, screen_too: bool) -> None:
    name, part = run.loaded.name, str(run.partition)
    progress(name, part, "ingest")
    with_io_retries(lambda: stage_ingest(run), f"{name} {part}: ingest")
    progress(name, part, "validate")
    stage_validate(run)
    if screen_too:
        progress(name, part, "screen")
        stage_screen(run)


def _finish(run: Run, started: dt.datetime, *, screen_too: bool) -> dict[str, Any]:
    name, part = run.loaded.name, str(run.partition)
    if screen_too:
        progress(name, part, "screen")
        stage_screen(run)
    progress(name, part, "write")

    def write() -> dict[str, Any]:
        if not has(run, "frame.parquet"):
            # an attempt that failed after the split let go of the rows held in memory
            _ingest_validate(run, screen_too=True)
        return stage_write(run, started, "in-process")

    summary = with_io_retries(write, f"{name} {part}: write")
    return with_decisions_reapplied(run.loaded, summary)


def screen_local(
    dataset: str,
    partition: str | dt.date,
    engine: EngineChoice | None = None,
    *,
    force: bool = False,
) -> dict[str, Any]:
    """Screen one partition in this process; returns the run summary (``skipped`` set, and
    nothing screened, when it is already done from the same inputs, suite and spec, unless
    ``force``). A failed verdict is returned, not raised: see :func:`run_failure`."""
    started = dt.datetime.now(dt.UTC)
    run = Run.prepare(dataset, partition, engine=engine)
    name = f"{run.loaded.name} {run.partition}"
    if not force:
        verdict = check_done(run.loaded, run.partition, suite_sha256=run.suite.sha256)
        done = skipped_summary(verdict)
        if done is not None:
            log.info("%s: skipped: %s (%s)", name, verdict.reason, verdict.manifest)
            return done
    try:
        with in_memory(run):
            _ingest_validate(run, screen_too=False)
            return _finish(run, started, screen_too=True)
    except BaseException as exc:
        run.discard()
        run_stopped(run.loaded.name, run.run_id, run.partition, exc)
        raise


def cores() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Plan:
    """How many processes a backfill uses, and why that many."""

    workers: int
    budget: int
    per_partition: int
    reason: str


def plan_workers(loaded: LoadedSpec, parts: list[Partition]) -> Plan:
    """Worker processes for ``parts``: the cores, at most ``SLUICE_WORKERS``, and no more than
    the memory budget holds at the largest partition's estimate besides the partition this
    process commits meanwhile (at least one: one runs every stage here, alone)."""
    budget = memory_budget()
    per = max((partition_estimate(loaded, p) for p in parts), default=BASE_BYTES)
    limits = {"cores": cores(), "partitions": len(parts), "memory": budget // per - 1}
    text = os.environ.get(WORKERS_ENV, "").strip()
    if text:
        if not text.isdigit() or int(text) < 1:
            raise ConfigError(
                "not a number of processes",
                file="environment",
                key=WORKERS_ENV,
                allowed="a whole number of 1 or more",
                found=text,
            )
        limits[WORKERS_ENV] = int(text)
    why = min(limits, key=lambda k: limits[k])
    return Plan(max(1, limits[why]), budget, per, f"limited by {why}")


def _prepare_in_worker(
    dataset: str, partition: str, engine: EngineChoice | None, screen_too: bool
) -> str:
    """In a worker: prepare the run and its first stages; returns its reference as JSON, with
    the time it started."""
    started = dt.datetime.now(dt.UTC)
    run = Run.prepare(dataset, partition, engine=engine)
    try:
        _ingest_validate(run, screen_too=screen_too)
    except BaseException as exc:
        run.discard()
        run_stopped(run.loaded.name, run.run_id, run.partition, exc)
        raise
    return json.dumps({"ref": run.ref.model_dump(mode="json"), "started": started.isoformat()})


class _Finished:
    """Logs each finished partition of a backfill as it finishes, numbered ``[k/n]``."""

    def __init__(self, dataset: str, total: int) -> None:
        self.dataset = dataset
        self.total = total
        self.count = 0
        self.log = logging.getLogger(PARTITION_LOG)

    def __call__(
        self, partition: str, outcome: dict[str, Any] | None, error: str | None, seconds: float
    ) -> None:
        self.count += 1
        line = partition_line(self.dataset, partition, outcome, error, seconds)
        level = logging.INFO if outcome is not None else logging.ERROR
        self.log.log(level, "[%d/%d] %s", self.count, self.total, line)


def _outcome(
    summary: dict[str, Any] | None, exc: BaseException | None, partition: str
) -> tuple[str, dict[str, Any]]:
    """Where a partition's result goes in a backfill summary, and the entry."""
    error = exc
    if error is None and summary is not None:
        error = run_failure(summary)
        if error is None:
            return ("skipped" if summary.get("skipped") else "screened"), summary
    entry: dict[str, Any] = {"partition": partition, "error": str(error)}
    if isinstance(error, RunFailed) and error.summary is not None:
        entry["summary"] = error.summary
    return "failed", entry


def backfill_local(
    dataset: str,
    start: dt.date,
    end: dt.date,
    engine: EngineChoice | None = None,
    *,
    force: bool = False,
    workers: int | None = None,
    dask: str | None = None,
) -> dict[str, Any]:
    """Screen every partition from start to end (both included) in this process and worker
    processes; one failure stops no other. Returns the backfill summary (``screened``,
    ``skipped``, ``failed``), the same as the backfill flow's. ``workers`` overrides
    :func:`plan_workers`. With a Dask scheduler address (``dask``, else
    ``SLUICE_DASK_ADDRESS``, else the spec's ``execution.dask``) the partitions are prepared
    on that cluster instead (:mod:`sluice.pipeline.dask_backfill`)."""
    from sluice.pipeline.cluster import resolve_address

    loaded = find_spec(dataset)
    try:
        parts = partition_range(loaded.spec.partition, start, end)
    except ValueError as exc:
        raise SluiceError(f"backfill {loaded.name}: {exc}") from None
    address = resolve_address(dask, loaded)
    plan_workers(loaded, parts)  # a bad setting stops the backfill before any partition
    finished = _Finished(loaded.name, len(parts))
    out: dict[str, list[dict[str, Any]]] = {"screened": [], "skipped": [], "failed": []}
    todo: list[Partition] = []
    for part in parts:
        t0 = time.perf_counter()
        done = None if force else skipped_summary(check_done(loaded, part))
        if done is None:
            todo.append(part)
            continue
        out["skipped"].append(done)
        finished(str(part), done, None, time.perf_counter() - t0)
    # detectors that learn from earlier partitions must wait for them to be committed
    screen_first = loaded.spec.reference.partitions == 0
    if address is not None and todo:
        from sluice.pipeline.dask_backfill import screen_on_cluster

        ended = screen_on_cluster(loaded, todo, engine, address, screen_first=screen_first)
    else:
        plan = plan_workers(loaded, todo)
        count = plan.workers if workers is None else max(1, workers)
        logging.getLogger(PARTITION_LOG).info(
            "backfill %s: %d partitions to screen on %d processes (%s; budget %d MiB, %d MiB each)",
            loaded.name,
            len(todo),
            count,
            plan.reason,
            plan.budget >> 20,
            plan.per_partition >> 20,
        )
        ended = _screen_all(dataset, todo, engine, count, screen_first=screen_first)
    for part, (summary, error, seconds) in ended:
        kind, entry = _outcome(summary, error, str(part))
        out[kind].append(entry)
        finished(str(part), entry if kind != "failed" else None, entry.get("error"), seconds)
    return {
        "dataset": loaded.name,
        "start": str(parts[0]),
        "end": str(parts[-1]),
        "screened": out["screened"],
        "skipped": sorted(out["skipped"], key=lambda s: str(s["partition"])),
        "failed": out["failed"],
    }


Result = tuple[dict[str, Any] | None, BaseException | None, float]


def _screen_all(
    dataset: str,
    todo: list[Partition],
    engine: EngineChoice | None,
    workers: int,
    *,
    screen_first: bool,
) -> list[tuple[Partition, Result]]:
    results: list[tuple[Partition, Result]] = []
    if workers <= 1 or len(todo) <= 1:
        for part in todo:
            t0 = time.perf_counter()
            try:
                summary: dict[str, Any] | None = screen_local(
                    dataset, part.start, engine, force=True
                )
                results.append((part, (summary, None, time.perf_counter() - t0)))
            except Exception as exc:
                results.append((part, (None, exc, time.perf_counter() - t0)))
        return results
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["sluice.pipeline.local"])
    t0 = time.perf_counter()
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        started = {
            str(p): pool.submit(_prepare_in_worker, dataset, str(p), engine, screen_first)
            for p in todo
        }
        for part in todo:
            results.append((part, _commit(started[str(part)], screen_first, t0)))
            t0 = time.perf_counter()
    return results


def _commit(future: cf.Future[str], screened: bool, t0: float) -> Result:
    """Wait for a partition's worker, then screen (unless done) and write it here."""
    try:
        got = json.loads(future.result())
        ref = RunRef.model_validate(got["ref"])
        started = dt.datetime.fromisoformat(got["started"])
    except Exception as exc:
        return None, exc, time.perf_counter() - t0
    try:
        run = Run.resume(ref)
    except Exception as exc:
        shutil.rmtree(ref.work, ignore_errors=True)
        return None, exc, time.perf_counter() - t0
    try:
        return _finish(run, started, screen_too=not screened), None, time.perf_counter() - t0
    except Exception as exc:
        run.discard()
        run_stopped(run.loaded.name, run.run_id, run.partition, exc)
        return None, exc, time.perf_counter() - t0


def _toml(path: Path) -> dict[str, Any]:
    import tomllib

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _dig(data: Any, *keys: str) -> str:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return str(data or "").strip()


def _dotenv_url(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return ""
    for line in lines:
        match = re.fullmatch(r"\s*(?:export\s+)?PREFECT_API_URL\s*=\s*(.*?)\s*", line)
        if match:
            return match.group(1).strip("'\"").strip()
    return ""


def prefect_api_configured() -> bool:
    """Whether a Prefect API URL is configured where Prefect looks for one, read without
    importing Prefect: ``PREFECT_API_URL`` in the environment, a ``.env``, ``prefect.toml`` or
    ``pyproject.toml`` (``[tool.prefect]``) in the working folder, or the active profile of
    Prefect's profiles file."""
    if os.environ.get("PREFECT_API_URL", "").strip():
        return True
    here = Path.cwd()
    if (
        _dotenv_url(here / ".env")
        or _dig(_toml(here / "prefect.toml"), "api", "url")
        or _dig(_toml(here / "pyproject.toml"), "tool", "prefect", "api", "url")
    ):
        return True
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    profiles = _toml(path)
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active") or "ephemeral"
    return bool(_dig(profiles, "profiles", str(active), "PREFECT_API_URL"))


def use_prefect(asked: bool) -> bool:
    """Whether the CLI runs flows: asked for (``--prefect`` or ``SLUICE_PREFECT=1``), or a
    Prefect API configured (:func:`prefect_api_configured`)."""
    text = os.environ.get(PREFECT_ENV, "").strip().lower()
    if text not in ("", "0", "1", "true", "false", "yes", "no"):
        raise ConfigError(
            "not a yes or no",
            file="environment",
            key=PREFECT_ENV,
            allowed="1, 0, true, false, yes or no",
            found=text,
        )
    return asked or text in ("1", "true", "yes") or prefect_api_configured()
