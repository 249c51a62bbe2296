"""End to end against a real Prefect server: ``sluice serve`` starts ``prefect server start`` on a
free loopback port (its own PREFECT_HOME and SQLite file), deploys prefect.yaml and starts a
process worker; the tests start runs through the API calls the UI makes and check what the
workers wrote, the artifacts, the events and the alert webhook. Every process is stopped at the
end, on failure too. The tests are one scenario on one server, in the file's order (the second
backfill follows the first; the last test stops the server): the conftest keeps them on one
worker.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter
from prefect.exceptions import PrefectHTTPStatusError
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Scheduled

from flows.alerts import QUARANTINE_RATE_HIGH, SCREENED
from sluice.cli.serve import descendants
from sluice.core.files import file_sha256
from sluice.demo_data import generate
from tests.browser import INSTALL_HINT, find_chromium, png_size
from tests.conftest import ROOT, demo_datasets

pytestmark = pytest.mark.e2e
DAYS = [dt.date(2024, 3, 4) + dt.timedelta(days=i) for i in range(4)]
ROWS = 3000
RUN_TIMEOUT = 180.0
T = TypeVar("T")


@dataclass
class Served:
    """A running ``sluice serve`` and what the tests read from it."""

    proc: subprocess.Popen[bytes]
    api_url: str
    demo: Path
    output: Path
    hooks: list[dict[str, Any]]
    children: dict[str, int] = field(default_factory=dict)

    def log_tail(self, lines: int = 60) -> str:
        """The end of serve's output (the worker's log included), for failure messages."""
        return "\n".join(self.output.read_text(errors="replace").splitlines()[-lines:])

    @contextmanager
    def client(self) -> Iterator[SyncPrefectClient]:
        """A client of this server."""
        with (
            temporary_settings(updates={PREFECT_API_URL: self.api_url}),
            get_client(sync_client=True) as client,
        ):
            yield client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _hook_server(received: list[dict[str, Any]]) -> ThreadingHTTPServer:
    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _until(what: str, probe: Callable[[], T | None], timeout: float, served: Served) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = probe()
        if got is not None:
            return got
        if served.proc.poll() is not None:
            pytest.fail(f"sluice serve exited while waiting for {what}:\n{served.log_tail()}")
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}:\n{served.log_tail()}")


def _stop(served: Served) -> None:
    """SIGTERM serve (it stops its server and worker), then kill whatever is left, by pid."""
    if served.proc.poll() is None:
        served.proc.send_signal(signal.SIGTERM)
        try:
            served.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(served.proc.pid, signal.SIGKILL)
            served.proc.wait(timeout=10)
    for pid in served.children.values():
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("served")
    demo = base / "demo"
    generate(demo, DAYS, rows_per_partition=ROWS, seed=11)
    hooks: list[dict[str, Any]] = []
    hook = _hook_server(hooks)
    port = _free_port()
    ours = ("PREFECT_API_", "PREFECT_HOME", "PREFECT_PROFILE", "PREFECT_LOGGING_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env.update(
        PREFECT_HOME=str(base / "prefect-home"),
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{base / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_WORKER_QUERY_SECONDS="1",
        SLUICE_DEMO_DIR=str(demo),
        SLUICE_DATASETS=str(demo_datasets(base / "project")),
        SLUICE_ALERT_WEBHOOK_URL=f"http://127.0.0.1:{hook.server_address[1]}/alerts",
    )
    output = base / "serve.out"
    cmd = [
        sys.executable,
        "-m",
        "sluice.cli.serve",
        "--port",
        str(port),
        "--project-dir",
        str(ROOT),
        "--log-dir",
        str(base / "logs"),
    ]
    with output.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    s = Served(proc, f"http://127.0.0.1:{port}/api", demo, output, hooks)
    try:

        def ready() -> bool | None:
            text = output.read_text(errors="replace")
            for line in text.splitlines():
                if line.startswith("sluice serve: started ") and "(pid " in line:
                    name = line.split()[3]
                    s.children[name] = int(line.rsplit("(pid ", 1)[1].rstrip(")"))
            return True if "sluice serve: ready" in text else None

        _until("sluice serve to be ready", ready, 240, s)
        yield s
    finally:
        _stop(s)
        hook.shutdown()


def _deployment_id(client: SyncPrefectClient, name: str) -> UUID:
    return client.read_deployment_by_name(name).id


def _wait_final(served: Served, client: SyncPrefectClient, run_id: UUID) -> FlowRun:
    def final() -> FlowRun | None:
        run = client.read_flow_run(run_id)
        return run if run.state is not None and run.state.is_final() else None

    return _until(f"flow run {run_id}", final, RUN_TIMEOUT, served)


def _runs_of(client: SyncPrefectClient, deployment: str) -> list[FlowRun]:
    dep = DeploymentFilter(id=DeploymentFilterId(any_=[_deployment_id(client, deployment)]))
    return client.read_flow_runs(deployment_filter=dep)


def _manifest(demo: Path, day: dt.date) -> dict[str, Any]:
    path = demo / "reports" / "trips" / f"pickup_date={day}" / "manifest.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _artifacts_of(client: SyncPrefectClient, run_ids: set[UUID]) -> dict[str, str]:
    return {
        str(a.key): str(a.data)
        for a in client.read_artifacts()
        if a.flow_run_id in run_ids and a.key is not None
    }


def _backfill(served: Served, client: SyncPrefectClient, start: dt.date, end: dt.date) -> FlowRun:
    """Start the backfill deployment the way the UI's run form does, and wait for it."""
    params = {
        "dataset": "trips",
        "start": start.isoformat(),
        "end": end.isoformat(),
        "max_quarantine_rate": 0.01,
    }
    run = client.create_flow_run_from_deployment(
        _deployment_id(client, "backfill/backfill"), parameters=params
    )
    return _wait_final(served, client, run.id)


def test_a_backfill_from_the_api_screens_each_partition_in_its_own_run(served: Served) -> None:
    # the events and webhook calls of this backfill, not of the other tests' runs
    since, hooks_before = dt.datetime.now(dt.UTC), len(served.hooks)
    with served.client() as client:
        parent = _backfill(served, client, DAYS[0], DAYS[2])
        assert parent.state is not None
        assert parent.state.is_completed(), f"{parent.state}\n{served.log_tail()}"
        assert parent.name == f"trips {DAYS[0]}..{DAYS[2]}"

        children = _runs_of(client, "screen-partition/on-demand")
        assert sorted(c.name for c in children) == [f"trips {d}" for d in DAYS[:3]]
        assert all(c.state is not None and c.state.is_completed() for c in children)
        assert all(c.parent_task_run_id is not None for c in children), "not linked as subflows"

        for day in DAYS[:3]:
            m = _manifest(served.demo, day)
            assert m["partition"]["value"] == str(day)
            assert m["conservation"]["holds"] is True
            assert m["counts"]["in"] == ROWS
            clean = pl.read_parquet(m["outputs"]["clean"]["path"])
            quarantine = pl.read_parquet(m["outputs"]["quarantine"]["path"])
            assert clean.height + quarantine.height == ROWS
            assert clean.height == m["counts"]["clean"]
            (source,) = m["inputs"]
            assert file_sha256(source["path"]) == source["sha256"]

        log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[parent.id]))

        def partition_lines() -> list[str] | None:
            lines = [g.message for g in client.read_logs(log_filter) if g.message.startswith("[")]
            return lines if len(lines) >= 3 else None

        lines = _until("the backfill's log of each partition", partition_lines, 30, served)
        shape = re.compile(
            rf"\[([123])/3\] trips (\S+): passed: {ROWS} rows in, \d+ clean, \d+ quarantined "
            r"\(\d+\.\d s\)"
        )
        found = [shape.fullmatch(line) for line in lines]
        assert all(found), lines
        assert sorted(m.group(1) for m in found if m) == ["1", "2", "3"]
        assert sorted(m.group(2) for m in found if m) == [str(d) for d in DAYS[:3]]

        mine = {parent.id, *(c.id for c in children)}
        artifacts = _artifacts_of(client, mine)
        assert "3 screened, 0 skipped, 0 failed" in artifacts["sluice-trips-backfill"]
        assert "sluice-trips-summary" in artifacts
        assert "sluice-trips-failed-rules" in artifacts

        def events() -> list[tuple[str, str]] | None:
            page = client.read_events(
                filter=EventFilter(
                    occurred=EventOccurredFilter.model_validate({"since": since}),
                    event=EventNameFilter(prefix=["sluice.partition."]),
                ),
                limit=50,
            )
            got = sorted((e.event, e.resource.id) for e in page.events)
            return got if len(got) >= 6 else None

        expected = sorted(
            (name, f"sluice.partition.trips.{d}")
            for d in DAYS[:3]
            for name in (SCREENED, QUARANTINE_RATE_HIGH)
        )
        assert _until("the partitions' events", events, 60, served) == expected

        def three_hooks() -> list[dict[str, Any]] | None:
            mine = served.hooks[hooks_before:]
            return mine if len(mine) >= 3 else None

        hooks = _until("three webhook calls", three_hooks, 60, served)
        assert sorted(h["partition"] for h in hooks) == [str(d) for d in DAYS[:3]]
        assert all(h["event"] == QUARANTINE_RATE_HIGH for h in hooks)
        assert all("above the 1.00% limit" in h["text"] for h in hooks)


def test_a_second_backfill_skips_the_screened_partitions_and_says_so(served: Served) -> None:
    with served.client() as client:
        before = len(_runs_of(client, "screen-partition/on-demand"))
        parent = _backfill(served, client, DAYS[0], DAYS[2])
        assert parent.state is not None
        assert parent.state.is_completed(), f"{parent.state}\n{served.log_tail()}"
        assert len(_runs_of(client, "screen-partition/on-demand")) == before, "a run was started"
        summary = _artifacts_of(client, {parent.id})["sluice-trips-backfill"]
        assert "0 screened, 3 skipped, 0 failed" in summary
        log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[parent.id]))

        def skip_lines() -> list[str] | None:
            lines = [g.message for g in client.read_logs(log_filter) if ": skipped (" in g.message]
            return lines if len(lines) >= 3 else None

        lines = _until("the run's log to say it skipped", skip_lines, 30, served)
        assert sorted(line.split(":")[0] for line in lines) == [
            f"[{k}/3] trips {d}" for k, d in enumerate(DAYS[:3], 1)
        ]
        assert all("same inputs, suite and spec" in line for line in lines)


def test_a_nightly_run_screens_the_day_before_its_scheduled_local_day(served: Served) -> None:
    # 2024-03-08 07:30 UTC is 02:30 in New York on 2024-03-08: the nightly screens 2024-03-07
    scheduled = dt.datetime(2024, 3, 8, 7, 30, tzinfo=dt.UTC)
    with served.client() as client:

        def scheduled_runs() -> list[Any] | None:
            # the server's scheduler service creates them on its own loop, not at deploy time
            times = [
                r.expected_start_time.astimezone(ZoneInfo("America/New_York"))
                for r in _runs_of(client, "screen-partition/trips-nightly")
                if r.state_name == "Scheduled" and r.expected_start_time is not None
            ]
            return times or None

        upcoming = _until(
            "the server to schedule nightly runs from the cron", scheduled_runs, 90, served
        )
        assert {(t.hour, t.minute) for t in upcoming} == {(2, 30)}
        nightly = _deployment_id(client, "screen-partition/trips-nightly")
        run = client.create_flow_run_from_deployment(
            nightly, state=Scheduled(scheduled_time=scheduled)
        )
        done = _wait_final(served, client, run.id)
        assert done.state is not None
        assert done.state.is_completed(), f"{done.state}\n{served.log_tail()}"
        assert done.name == f"trips {DAYS[3]}"
        m = _manifest(served.demo, DAYS[3])
        assert m["counts"]["in"] == ROWS
        assert m["conservation"]["holds"] is True
        assert m["inputs"][0]["path"].endswith(f"pickup_date={DAYS[3]}/trips.csv")


def test_the_api_refuses_a_dataset_that_is_not_in_the_form(served: Served) -> None:
    with served.client() as client:
        before = len(_runs_of(client, "backfill/backfill"))
        with pytest.raises(PrefectHTTPStatusError, match=r"'nope' is not one of \['trips'\]"):
            client.create_flow_run_from_deployment(
                _deployment_id(client, "backfill/backfill"),
                parameters={"dataset": "nope", "start": "2024-03-04", "end": "2024-03-04"},
            )
        assert len(_runs_of(client, "backfill/backfill")) == before


@pytest.mark.skipif(find_chromium() is None, reason=f"no Chromium on PATH: {INSTALL_HINT}")
def test_the_backfill_form_has_a_dataset_drop_down_and_date_pickers(
    served: Served, tmp_path: Path
) -> None:
    shot = tmp_path / "form.png"
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "screenshot_backfill_form.py"),
            "--api-url",
            served.api_url,
            "--out",
            str(shot),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    seen = json.loads(out.stdout)
    controls = seen["controls"]
    assert controls["dataset"] == {"control": "select", "options": ["trips"]}
    assert controls["start"]["type"] == controls["end"]["type"] == "date"
    assert seen["blocked"] == [], "the UI reached beyond loopback"
    assert not [p for p in seen["problems"] if "exception" in p], seen["problems"]
    assert png_size(shot.read_bytes()) == (1280, 1160)
    assert shot.stat().st_size > 10_000


def test_stopping_serve_stops_the_server_the_worker_and_their_runs(served: Served) -> None:
    assert set(served.children) == {"server", "worker"}
    tree = set(served.children.values())
    for pid in list(tree):
        tree.update(descendants(pid))
    _stop(served)
    assert served.proc.returncode == 0, served.log_tail()
    time.sleep(0.5)
    assert not [pid for pid in tree if _alive(pid)]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
