"""Backfills on a real Dask cluster: a scheduler and worker processes on 127.0.0.1, driven
through the real ``sluice backfill --dask`` command, compared with a single-process run.

A worker killed mid-task costs that task only (the scheduler gives it to the other worker);
every partition is committed once, conservation holds and the outputs are those of the
single-process run. A cluster that cannot be used (no scheduler, workers without sluice or with
another version, every worker gone) is refused or fails clearly, without a traceback.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from sluice.config import find_spec, load_spec
from sluice.core.dask_address import dask_address, is_loopback
from sluice.core.errors import ConfigError
from sluice.demo_data import generate
from sluice.pipeline.cluster import ADDRESS_ENV, Address, ClusterError, probe_scheduler
from sluice.pipeline.cluster import resolve_address as resolve
from sluice.pipeline.dask_backfill import (
    HOLD_FILE_ENV,
    HOLD_PARTITION_ENV,
    HOLD_SECONDS_ENV,
    NO_WORKERS_ENV,
)
from sluice.pipeline.local import backfill_local
from sluice.pipeline.recovery import recover_dead_work
from tests.conftest import ROOT, demo_datasets
from tests.test_e2e import sluice

DAYS = [dt.date(2024, 3, 4), dt.date(2024, 3, 5), dt.date(2024, 3, 6), dt.date(2024, 3, 7)]
HELD = str(DAYS[1])
VOLATILE = {"run_id", "started_at", "finished_at", "timings_s", "seconds", "orchestrator"}
SIDES = ("clean", "quarantine", "failures")
DASK = Path(sys.executable).with_name("dask")
QUIET = ("--no-dashboard",)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Cluster:
    """A scheduler and its workers, started as processes by a test."""

    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]

    def ready(self) -> Cluster:
        """Wait until every worker has joined the scheduler."""
        _wait_for_workers(self.address, len(self.workers))
        return self


def _wait_for_workers(address: str, count: int) -> None:
    client: Any = import_module("distributed").Client(address, timeout=30, set_as_default=False)
    try:
        client.wait_for_workers(count, timeout=90)
    finally:
        client.close()


def kill_held_worker(
    proc: subprocess.Popen[str], held: Path, dask: Any, *, hold_s: float, finish_s: float
) -> tuple[str, str]:
    """Wait until a task writes its worker's pid to ``held``, kill that worker, then let
    ``proc`` finish; its stdout and stderr. ``proc`` is killed if anything goes wrong."""
    try:
        deadline = time.monotonic() + hold_s
        while not held.exists() or not held.read_text():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no task held"
            time.sleep(0.1)
        pid = json.loads(held.read_text())["pid"]
        (victim,) = [w for w in dask.workers if w.pid == pid]
        os.kill(pid, signal.SIGKILL)
        victim.wait(timeout=20)
        return proc.communicate(timeout=finish_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


@contextlib.contextmanager
def cluster(
    folder: Path, preloads: list[Path | None], env: dict[str, str] | None = None
) -> Iterator[Cluster]:
    """A scheduler on a free port of 127.0.0.1 and one worker per entry of ``preloads`` (one
    thread each, no nanny: a killed worker stays dead; without a preload of its own a worker
    imports sluice's stages as it starts), all stopped on the way out. Call
    :meth:`Cluster.ready` before using it (meanwhile the workers start)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    log = (folder / "cluster.log").open("ab")
    started: list[subprocess.Popen[bytes]] = []
    try:
        scheduler = subprocess.Popen(
            [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", str(port), *QUIET],
            env=environ,
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        started.append(scheduler)
        workers = []
        for i, preload in enumerate(preloads):
            args = [str(DASK), "worker", address, "--nthreads", "1", "--no-nanny"]
            args += ["--no-dashboard", "--host", "127.0.0.1"]
            args += ["--local-directory", str(folder / f"worker{i}")]
            args += ["--preload", str(preload) if preload else "sluice.pipeline.stages"]
            worker = subprocess.Popen(
                args, env=environ, cwd=folder, stdout=log, stderr=subprocess.STDOUT
            )
            started.append(worker)
            workers.append(worker)
        yield Cluster(address, scheduler, workers)
    finally:
        for proc in reversed(started):
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=20)
        log.close()


def _project(base: Path, root: Path, reference: int = 0) -> Path:
    """A datasets folder whose trips spec reads and writes under ``root`` (no environment
    variable in its paths, so that workers resolve them alike); returns the spec file."""
    folder = demo_datasets(base)
    spec = folder / "trips.yaml"
    text = spec.read_text().replace("${SLUICE_DEMO_DIR:-../var/demo}", str(root))
    if reference:
        text += f"reference:\n  partitions: {reference}\n"
    spec.write_text(text)
    return spec


def _env(spec: Path, **extra: str) -> dict[str, str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PREFECT_API_URL", "SLUICE_PREFECT", ADDRESS_ENV)
    }
    return {
        **base,
        "SLUICE_DATASETS": str(spec.parent),
        "PREFECT_HOME": str(spec.parent / "prefect-home"),
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def _manifest(root: Path, day: dt.date) -> dict[str, Any]:
    path = root / "reports" / "trips" / f"pickup_date={day}" / "manifest.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _normal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _outputs(root: Path, days: list[dt.date]) -> dict[str, Any]:
    """Each partition's manifest (less run ids and times) and its clean, quarantine and
    failures rows, with reasons."""
    got: dict[str, Any] = {}
    for day in days:
        manifest = _manifest(root, day)
        c = manifest["counts"]
        assert c["in"] == c["clean"] + c["quarantine"]
        rows = {}
        for side in SIDES:
            frame = pl.read_parquet(manifest["outputs"][side]["path"])
            rows[side] = sorted(frame.to_dicts(), key=lambda r: json.dumps(r, default=str))
        for entry in manifest["outputs"].values():  # files hold run ids; rows are compared
            del entry["sha256"], entry["bytes"]
        got[str(day)] = {"manifest": _normal(manifest), "rows": rows}
    return got


def _diff(a: Any, b: Any, at: str = "") -> list[str]:
    """Where two JSON-like values differ, as key paths (for assertion messages)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _diff(a.get(k), b.get(k), f"{at}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _diff(x, y, f"{at}[{i}]")
        ]
    return [] if a == b else [at]


def _single_process(spec: Path, root: Path, days: list[dt.date]) -> dict[str, Any]:
    """The outputs of a single-process backfill of ``days``; the outputs are removed after."""
    summary = backfill_local(str(spec), days[0], days[-1], workers=1)
    assert len(summary["screened"]) == len(days), summary["failed"]
    for day in days:
        assert _manifest(root, day)["orchestrator"] == "in-process"
    got = _outputs(root, days)
    for side in ("clean", "quarantine", "reports"):
        shutil.rmtree(root / side)
    return got


def _start_backfill(address: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """``sluice backfill`` of every day of :data:`DAYS` on the cluster at ``address``, started."""
    exe = str(Path(sys.executable).with_name("sluice"))
    args = ["backfill", "trips", "--start", str(DAYS[0]), "--end", str(DAYS[-1]), "--json"]
    return subprocess.Popen(
        [exe, *args, "--dask", address],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _committed_once(root: Path, days: list[dt.date]) -> None:
    """Each partition was committed by exactly one run (the kept manifests of its runs)."""
    for day in days:
        kept = list((root / "reports" / "trips" / "_manifests" / f"pickup_date={day}").iterdir())
        assert len(kept) == 1, kept


def _no_work_left(root: Path) -> None:
    work = root / "reports" / "trips" / ".work"
    assert not work.exists() or [p.name for p in work.iterdir()] == []


def test_addresses_come_from_the_option_the_environment_or_the_spec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert dask_address("scheduler:8786") == "tcp://scheduler:8786"
    assert dask_address(" TLS://[::1]:9000 ") == "tls://[::1]:9000"
    for bad in ("scheduler", "inproc://x:1", "tcp://h:0", "tcp://h:99999", "http://h:80", ""):
        with pytest.raises(ValueError, match=r"scheduler address|scheme|port"):
            dask_address(bad)
    for here in ("localhost:1", "127.0.0.2:1", "tls://[::1]:1", "LOCALHOST:1"):
        assert is_loopback(dask_address(here)), here
    for there in ("10.0.0.1:1", "localhost.example.com:1", "[2001:db8::1]:1", "host:1"):
        assert not is_loopback(dask_address(there)), there
    spec = _project(tmp_path, tmp_path / "data")
    spec.write_text(spec.read_text() + "execution:\n  dask: spec-host:8786\n")
    with pytest.raises(ConfigError, match=r"execution\.dask.*not on this machine.*--dask"):
        find_spec(str(spec))  # a spec cannot make sluice unpickle a remote host's answers
    spec.write_text(spec.read_text().replace("spec-host:8786", "127.0.0.1:8786"))
    loaded = find_spec(str(spec))
    monkeypatch.delenv(ADDRESS_ENV, raising=False)
    found = resolve(None, loaded)
    assert found is not None
    assert found.address == "tcp://127.0.0.1:8786"
    assert found.source.startswith(f"execution.dask in {spec}:")
    monkeypatch.setenv(ADDRESS_ENV, "env-host:1")
    assert resolve(None, loaded) == Address("tcp://env-host:1", ADDRESS_ENV)
    assert resolve("opt:2", loaded) == Address("tcp://opt:2", "--dask")
    with pytest.raises(ConfigError, match=r"--dask.*nowhere.*tcp://scheduler:8786"):
        resolve("nowhere", loaded)
    monkeypatch.setenv(ADDRESS_ENV, "not an address")
    with pytest.raises(ConfigError, match=ADDRESS_ENV):
        resolve(None, loaded)
    monkeypatch.delenv(ADDRESS_ENV)
    assert resolve(None, find_spec(str(_project(tmp_path / "b", tmp_path / "d")))) is None
    spec.write_text(spec.read_text().replace("127.0.0.1:8786", "ftp://127.0.0.1:8786"))
    with pytest.raises(ConfigError, match=r"execution\.dask"):
        find_spec(str(spec))


def test_a_port_that_never_answers_is_refused_within_seconds() -> None:
    with socket.socket() as silent:  # accepts connections, says nothing: not a scheduler
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = Address(f"tcp://127.0.0.1:{silent.getsockname()[1]}", "--dask")
        t0 = time.monotonic()
        with pytest.raises(ClusterError, match="no Dask scheduler answers"):
            probe_scheduler(address, seconds=2)
        assert time.monotonic() - t0 < 6


def test_a_backfill_without_a_scheduler_exits_2_naming_the_address(tmp_path: Path) -> None:
    root = tmp_path / "data"
    generate(root, DAYS[:2], rows_per_partition=200, seed=5)
    spec = _project(tmp_path / "project", root)
    address = f"tcp://127.0.0.1:{_free_port()}"
    t0 = time.monotonic()
    args = ("backfill", "trips", "--start", str(DAYS[0]), "--end", str(DAYS[1]), "--dask")
    done = sluice(*args, address, env=_env(spec))
    assert done.returncode == 2, done.stderr
    assert f"no Dask scheduler answers at {address} (from --dask)" in done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - t0 < 60
    assert not (root / "reports" / "trips" / "pickup_date=2024-03-04").exists()
    both = sluice(*args, address, "--prefect", env=_env(spec))
    assert both.returncode == 2, both.stderr
    assert "--dask and --prefect do not go together" in both.stderr


def test_a_worker_killed_mid_task_costs_only_its_task(tmp_path: Path) -> None:
    root = tmp_path / "data"
    generate(root, DAYS, rows_per_partition=600, seed=5)
    spec = _project(tmp_path / "project", root)
    held = tmp_path / "held.json"
    hold = {HOLD_PARTITION_ENV: HELD, HOLD_FILE_ENV: str(held)}
    with cluster(tmp_path / "cluster", [None, None], env=hold) as dask:
        expected = _single_process(spec, root, DAYS)  # while the workers start
        dask.ready()
        proc = _start_backfill(dask.address, _env(spec))
        out, err = kill_held_worker(proc, held, dask, hold_s=180, finish_s=300)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    summary = json.loads(out)
    assert [s["partition"] for s in summary["screened"]] == [str(d) for d in DAYS]
    assert summary["failed"] == []
    got = _outputs(root, DAYS)
    for day in DAYS:
        assert _manifest(root, day)["orchestrator"] == "dask"
    assert got == expected, _diff(got, expected)[:20]
    _committed_once(root, DAYS)
    _no_work_left(root)


def test_prepared_partitions_survive_the_death_of_the_worker_that_prepared_them(
    tmp_path: Path,
) -> None:
    """The first partition is held on one worker while the other prepares the rest and dies:
    the later partitions' work folders belong to the client, so committing the first one
    (which recovers what dead runs left) keeps them, and each is committed without being
    prepared again."""
    root = tmp_path / "data"
    generate(root, DAYS, rows_per_partition=300, seed=5)
    spec = _project(tmp_path / "project", root)
    held = tmp_path / "held.json"
    hold = {HOLD_PARTITION_ENV: str(DAYS[0]), HOLD_FILE_ENV: str(held), HOLD_SECONDS_ENV: "8"}
    work = root / "reports" / "trips" / ".work"
    with cluster(tmp_path / "cluster", [None, None], env=hold) as dask:
        dask.ready()
        proc = _start_backfill(dask.address, _env(spec))
        try:
            deadline = time.monotonic() + 180
            while len(list(work.glob("*/screen.json"))) < len(DAYS):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the partitions were not prepared"
                time.sleep(0.1)
            holder = json.loads(held.read_text())["pid"]
            (other,) = [w for w in dask.workers if w.pid != holder]
            time.sleep(1.5)  # the client takes finished results every 0.5 s
            other.kill()
            other.wait(timeout=20)  # reaped, as a worker's parent would: its pid is dead
            out, err = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert [s["partition"] for s in summary["screened"]] == [str(d) for d in DAYS]
    _committed_once(root, DAYS)
    _no_work_left(root)


BLOCK_SLUICE = """
import sys


class _NoSluice:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("sluice", "expectations", "detectors"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None


sys.meta_path.insert(0, _NoSluice())
"""

OTHER_POLARS = """
import sluice.core.versions as versions


def _patch(real):
    def other(name="sluice"):
        return "0.0.1" if name == "polars" else real(name)

    other.patched = True
    return other


if not getattr(versions.version, "patched", False):  # Dask may run a preload twice
    versions.version = _patch(versions.version)
"""


@pytest.mark.slow
def test_workers_without_sluice_or_with_other_versions_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "data"
    generate(root, DAYS[:2], rows_per_partition=200, seed=5)
    spec = _project(tmp_path / "project", root)
    (tmp_path / "no_sluice.py").write_text(BLOCK_SLUICE)
    (tmp_path / "other_polars.py").write_text(OTHER_POLARS)
    preloads: list[Path | None] = [tmp_path / "no_sluice.py", tmp_path / "other_polars.py"]
    with cluster(tmp_path / "cluster", preloads) as dask:
        dask.ready()
        done = sluice(
            "backfill",
            "trips",
            "--start",
            str(DAYS[0]),
            "--end",
            str(DAYS[1]),
            "--dask",
            dask.address,
            env=_env(spec),
        )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "cannot import sluice" in done.stderr
    assert "has polars 0.0.1, this process" in done.stderr
    assert not (root / "reports" / "trips" / f"pickup_date={DAYS[0]}").exists()


@pytest.mark.slow
def test_a_cluster_that_loses_every_worker_fails_clearly_and_resumes(tmp_path: Path) -> None:
    root = tmp_path / "data"
    generate(root, DAYS, rows_per_partition=600, seed=5)
    spec = _project(tmp_path / "project", root, reference=1)
    held = tmp_path / "held.json"
    hold = {HOLD_PARTITION_ENV: HELD, HOLD_FILE_ENV: str(held)}
    args = ["backfill", "trips", "--start", str(DAYS[0]), "--end", str(DAYS[-1]), "--json"]
    with cluster(tmp_path / "cluster", [None], env=hold) as dask:
        expected = _single_process(spec, root, DAYS)  # while the worker starts
        dask.ready()
        proc = _start_backfill(dask.address, _env(spec, **{NO_WORKERS_ENV: "3"}))
        try:
            deadline = time.monotonic() + 180
            while not held.exists() or not held.read_text():
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "no task held"
                time.sleep(0.1)
            os.kill(dask.workers[0].pid, signal.SIGKILL)
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 1, err
        assert "Traceback" not in err
        summary = json.loads(out)
        failed = [f["partition"] for f in summary["failed"]]
        assert HELD in failed
        assert "every worker is gone" in summary["failed"][0]["error"]
        committed = [s["partition"] for s in summary["screened"]]
        assert sorted(committed + failed) == [str(d) for d in DAYS]
        for day in failed:
            assert not (root / "reports" / "trips" / f"pickup_date={day}").exists()
        _no_work_left(root)
        with cluster(tmp_path / "cluster2", [None]) as again:
            again.ready()
            resumed = sluice(*args, "--dask", again.address, env=_env(spec))
    assert resumed.returncode == 0, resumed.stderr
    second = json.loads(resumed.stdout)
    assert [s["partition"] for s in second["skipped"]] == committed
    assert [s["partition"] for s in second["screened"]] == failed
    got = _outputs(root, DAYS)
    assert got == expected, _diff(got, expected)[:20]
    _committed_once(root, DAYS)


@pytest.mark.slow
def test_a_lost_scheduler_fails_the_unprepared_partitions_without_a_traceback(
    tmp_path: Path,
) -> None:
    root = tmp_path / "data"
    generate(root, DAYS, rows_per_partition=300, seed=5)
    spec = _project(tmp_path / "project", root)
    held = tmp_path / "held.json"
    hold = {HOLD_PARTITION_ENV: HELD, HOLD_FILE_ENV: str(held)}
    with cluster(tmp_path / "cluster", [None, None], env=hold) as dask:
        dask.ready()
        proc = _start_backfill(dask.address, _env(spec))
        try:
            deadline = time.monotonic() + 180
            while not held.exists() or not held.read_text():
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "no task held"
                time.sleep(0.1)
            dask.scheduler.kill()
            out, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    summary = json.loads(out)
    failed = {f["partition"]: f["error"] for f in summary["failed"]}
    assert "the scheduler was lost" in failed[HELD]
    assert "run the backfill again" in failed[HELD]
    for day in failed:
        assert not (root / "reports" / "trips" / f"pickup_date={day}").exists()
    committed = [s["partition"] for s in summary["screened"]]
    assert sorted([*committed, *failed]) == [str(d) for d in DAYS]
    _committed_once(root, [d for d in DAYS if str(d) in committed])
    # A worker orphaned by the scheduler may finish preparing its partition after the client
    # swept the work folders: what it leaves is a dead run's, which the next run recovers.
    recover_dead_work(load_spec(spec), skip="")
    _no_work_left(root)
    _committed_once(root, [d for d in DAYS if str(d) in committed])


@pytest.mark.slow
def test_workers_that_resolve_the_source_elsewhere_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "data"
    generate(root, DAYS[:2], rows_per_partition=200, seed=5)
    spec = _project(tmp_path / "project", root)
    text = spec.read_text().replace(f"{root}/raw/", "${SLUICE_TEST_SOURCE}/")
    spec.write_text(text)
    elsewhere = {"SLUICE_TEST_SOURCE": str(tmp_path / "not-shared")}
    with cluster(tmp_path / "cluster", [None], env=elsewhere) as dask:
        dask.ready()
        done = sluice(
            "backfill",
            "trips",
            "--start",
            str(DAYS[0]),
            "--end",
            str(DAYS[1]),
            "--dask",
            dask.address,
            env=_env(spec, SLUICE_TEST_SOURCE=str(root / "raw")),
        )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"resolves source.path to {tmp_path / 'not-shared'}" in done.stderr
    assert dask.address.split("//")[1].split(":")[0] in done.stderr
    assert not (root / "reports" / "trips" / f"pickup_date={DAYS[0]}").exists()
