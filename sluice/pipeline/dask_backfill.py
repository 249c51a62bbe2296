"""A backfill's partitions prepared as tasks on a Dask cluster, committed here in date order.

Each partition is one task (``distributed.Client.submit``): it prepares a fresh run (a new run
id, hence a new work folder under the reports root), ingests and validates it, and screens it
when no detector learns from earlier partitions; it returns the run's reference, or the error
that stopped it. The client takes each result as soon as it is ready, releases the task (so a
worker lost later costs no recomputation) and commits the partitions one after another in date
order with the write stage: each partition is committed once, by this process.

A worker that dies mid-task loses that task only: the scheduler gives it to another worker
(Dask's ``distributed.scheduler.allowed-failures`` bounds how often), which starts again in a
new work folder. Work folders record this process as their owner, so recovery leaves them
alone while it lives; the folders of dead attempts are removed when the backfill ends. When
every worker is gone for longer than ``SLUICE_DASK_NO_WORKERS_SECONDS`` (default 60), or the
scheduler is lost, the partitions not yet prepared fail with that reason and nothing of theirs
is committed: running the backfill again screens them (the committed ones are skipped).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from sluice.config import LoadedSpec, Partition
from sluice.core.errors import ConfigError, SluiceError
from sluice.core.frame import EngineChoice
from sluice.pipeline.cluster import (
    Address,
    ClusterError,
    check_shared_storage,
    connect,
    quiet_distributed,
)
from sluice.pipeline.commit import stage_write
from sluice.pipeline.local import _ingest_validate, with_io_retries
from sluice.pipeline.run import OWNER, OWNER_NAME, Run, RunRef
from sluice.progress import PARTITION_LOG, progress

NO_WORKERS_ENV = "SLUICE_DASK_NO_WORKERS_SECONDS"
NO_WORKERS_SECONDS = 60.0
POLL_SECONDS = 0.5
HOLD_PARTITION_ENV = "SLUICE_TEST_HOLD_PARTITION"
HOLD_FILE_ENV = "SLUICE_TEST_HOLD_FILE"
HOLD_SECONDS_ENV = "SLUICE_TEST_HOLD_SECONDS"
HOLD_SECONDS = 120.0
Result = tuple[dict[str, Any] | None, BaseException | None, float]


def no_workers_seconds() -> float:
    """How long a backfill waits for a cluster without workers (``SLUICE_DASK_NO_WORKERS_SECONDS``,
    default 60)."""
    text = os.environ.get(NO_WORKERS_ENV, "").strip()
    if not text:
        return NO_WORKERS_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(
            "not a number of seconds",
            file="environment",
            key=NO_WORKERS_ENV,
            allowed="a number above 0",
            found=text,
        )
    return value


def _hold_for_tests(partition: str) -> None:
    """A test hook: hold the first attempt at ``SLUICE_TEST_HOLD_PARTITION`` after its stages
    (``SLUICE_TEST_HOLD_SECONDS``, default 120), having written this process's id to
    ``SLUICE_TEST_HOLD_FILE``, so that a test can kill the worker mid-task. Later attempts (the
    file exists) go on."""
    hold_for_tests(os.environ.get(HOLD_PARTITION_ENV) == partition)


def hold_for_tests(chosen: bool) -> None:
    """When ``chosen`` and ``SLUICE_TEST_HOLD_FILE`` is set and does not exist yet: write this
    process's id to it and wait ``SLUICE_TEST_HOLD_SECONDS`` (the test hooks of a backfill's and
    a split partition's tasks)."""
    if not chosen or not os.environ.get(HOLD_FILE_ENV):
        return
    try:
        fd = os.open(os.environ[HOLD_FILE_ENV], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    time.sleep(float(os.environ.get(HOLD_SECONDS_ENV) or HOLD_SECONDS))


def _worker_name() -> str:
    fallback = f"{socket.gethostname()} pid {os.getpid()}"
    try:
        from distributed import get_worker
    except ImportError:
        return fallback
    try:
        return str(get_worker().address)
    except ValueError:  # not in a task
        return fallback


def prepare_task(
    spec_path: str,
    partition: str,
    engine: EngineChoice | None,
    screen_too: bool,
    owner: dict[str, Any],
) -> dict[str, Any]:
    """On a worker: prepare a fresh run of ``partition`` and run its stages before the write.

    Returns ``{"ref", "started", "worker"}``, or ``{"error", "worker"}`` when the partition
    cannot be prepared (bad data or configuration: a rerun elsewhere would fail the same way,
    so it is not raised to Dask). The work folder records ``owner``, the client.
    """
    started = dt.datetime.now(dt.UTC)
    worker = _worker_name()
    token = OWNER.set(owner)
    try:
        run = Run.prepare(spec_path, partition, engine=engine)
        try:
            _ingest_validate(run, screen_too=screen_too)
            _hold_for_tests(partition)
        except BaseException:
            run.discard()
            raise
    except SluiceError as exc:
        return {"error": str(exc), "exit_code": exc.exit_code, "worker": worker}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}", "worker": worker}
    finally:
        OWNER.reset(token)
    return {
        "ref": run.ref.model_dump(mode="json"),
        "started": started.isoformat(),
        "worker": worker,
    }


class PartitionFailed(SluiceError):
    """A partition a worker could not prepare."""


def _commit(got: dict[str, Any], screened: bool) -> dict[str, Any]:
    """Screen (unless done on the worker) and write a prepared partition, here."""
    ref = RunRef.model_validate(got["ref"])
    started = dt.datetime.fromisoformat(got["started"])
    try:
        run = Run.resume(ref)
    except BaseException:
        shutil.rmtree(ref.work, ignore_errors=True)
        raise
    name, part = run.loaded.name, str(run.partition)
    try:
        if not screened:
            progress(name, part, "screen")
            from sluice.pipeline.stages import stage_screen

            stage_screen(run)
        progress(name, part, "write")
        return with_io_retries(lambda: stage_write(run, started, "dask"), f"{name} {part}: write")
    except BaseException:
        run.discard()
        raise


def _lost(address: Address, why: str) -> ClusterError:
    return ClusterError(
        f"the Dask cluster at {address.address}: {why}; this partition was not prepared and "
        "nothing of it was committed: run the backfill again to screen it (partitions already "
        "committed are skipped)"
    )


def _taken(future: Any, address: Address) -> dict[str, Any] | BaseException:
    """A finished task's result, or the error that stands for it."""
    try:
        got: dict[str, Any] = future.result()
    except Exception as exc:
        if type(exc).__name__ == "KilledWorker":
            return ClusterError(
                f"every worker that ran this partition's task died ({exc}); Dask gave up after "
                "distributed.scheduler.allowed-failures attempts. Nothing of it was committed: "
                "look at the workers' memory and logs, then run the backfill again"
            )
        if type(exc).__name__ in ("CancelledError", "FutureCancelledError"):
            return _lost(address, "its task was cancelled (the scheduler was lost)")
        return exc
    if "error" in got:
        error = PartitionFailed(f"on worker {got.get('worker')}: {got['error']}")
        return error
    return got


def _workers(client: Any) -> int:
    return len(client.nthreads())


def screen_on_cluster(
    loaded: LoadedSpec,
    todo: list[Partition],
    engine: EngineChoice | None,
    address: Address,
    *,
    screen_first: bool,
) -> list[tuple[Partition, Result]]:
    """Prepare ``todo`` as tasks on the cluster at ``address`` and commit each partition here,
    in date order, once; returns each partition's summary or error with its seconds."""
    grace = no_workers_seconds()
    with quiet_distributed():
        return _on_cluster(loaded, todo, engine, address, screen_first=screen_first, grace=grace)


def _on_cluster(
    loaded: LoadedSpec,
    todo: list[Partition],
    engine: EngineChoice | None,
    address: Address,
    *,
    screen_first: bool,
    grace: float,
) -> list[tuple[Partition, Result]]:
    client = connect(address)
    token = uuid.uuid4().hex
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "backfill": token}
    results: list[tuple[Partition, Result]] = []
    try:
        check_shared_storage(client, loaded)
        count = client.nthreads()
        logging.getLogger(PARTITION_LOG).info(
            "backfill %s: %d partitions to screen on the Dask cluster at %s (from %s; %d "
            "workers, %d threads)",
            loaded.name,
            len(todo),
            address.address,
            address.source,
            len(count),
            sum(count.values()),
        )
        results = _run(
            client,
            loaded,
            todo,
            engine,
            address,
            screen_first=screen_first,
            owner=owner,
            grace=grace,
        )
    finally:
        _sweep(loaded, todo, token)
        with contextlib.suppress(Exception):
            client.close(timeout=5)
    return results


def _run(
    client: Any,
    loaded: LoadedSpec,
    todo: list[Partition],
    engine: EngineChoice | None,
    address: Address,
    *,
    screen_first: bool,
    owner: dict[str, Any],
    grace: float,
) -> list[tuple[Partition, Result]]:
    pending: dict[Any, Partition] = {}
    for part in todo:
        future = client.submit(
            prepare_task,
            str(loaded.path),
            str(part),
            engine,
            screen_first,
            owner,
            key=f"sluice-prepare-{loaded.name}-{part}-{owner['backfill']}",
            pure=False,
        )
        pending[future] = part
    ready: dict[str, dict[str, Any] | BaseException] = {}
    results: list[tuple[Partition, Result]] = []
    t0 = time.perf_counter()
    alone_since: float | None = None
    while len(results) < len(todo):
        while len(results) < len(todo) and str(todo[len(results)]) in ready:
            part = todo[len(results)]
            got = ready.pop(str(part))
            if isinstance(got, BaseException):
                results.append((part, (None, got, time.perf_counter() - t0)))
            else:
                try:
                    summary = _commit(got, screen_first)
                    results.append((part, (summary, None, time.perf_counter() - t0)))
                except Exception as exc:
                    results.append((part, (None, exc, time.perf_counter() - t0)))
            t0 = time.perf_counter()
        if not pending:
            continue
        done = [future for future in pending if future.done()]
        for future in done:
            part = pending.pop(future)
            ready[str(part)] = _taken(future, address)
            future.release()
        if done:
            alone_since = None
            continue
        try:
            workers = _workers(client)
        except Exception as exc:
            error = _lost(address, f"the scheduler was lost ({type(exc).__name__}: {exc})")
            _give_up(pending, ready, error)
            continue
        if workers:
            alone_since = None
            time.sleep(POLL_SECONDS)
            continue
        alone_since = alone_since or time.monotonic()
        if time.monotonic() - alone_since >= grace:
            why = f"every worker is gone (none for {grace:g} s, {NO_WORKERS_ENV})"
            _give_up(pending, ready, _lost(address, why))
        else:
            time.sleep(POLL_SECONDS)
    return results


def _give_up(
    pending: dict[Any, Partition],
    ready: dict[str, dict[str, Any] | BaseException],
    error: ClusterError,
) -> None:
    for future, part in list(pending.items()):
        with contextlib.suppress(Exception):
            future.cancel()
        ready[str(part)] = error
    pending.clear()


def _sweep(loaded: LoadedSpec, todo: list[Partition], token: str) -> None:
    """Remove the work folders this backfill's tasks left (attempts on workers that died, or
    tasks given up): those whose owner names this backfill."""
    try:
        work = loaded.output_root("reports") / ".work"
    except SluiceError:
        return
    names = {p.dirname for p in todo}
    for folder in sorted(work.glob("*=*-*")) if work.is_dir() else []:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            owner = json.loads((folder / OWNER_NAME).read_text(encoding="utf-8"))
            if owner.get("backfill") == token and owner.get("partition") in names:
                shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        Path(work).rmdir()
