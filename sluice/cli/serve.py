"""``sluice serve``: a local Prefect server, the project's deployments and a worker, for the UI.

In order: start ``prefect server start`` (unless ``--api-url`` names a running server), wait until
its API answers, create the process work pool and its two queues with their concurrency limits,
deploy ``prefect.yaml``, create the alert automation when a webhook URL is given, and start a
process worker. Ctrl-C (or SIGTERM) stops the worker and the server, and every process they
started. docs/production.md describes the same set-up for production (PostgreSQL, systemd).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any
from uuid import UUID

import httpx

from flows.alerts import ALERT_EVENTS
from sluice.core.errors import SluiceError

POOL = "sluice-process"
QUEUE_LIMITS = {"partitions": 2, "backfills": 1}
POOL_LIMIT = 4
ALERTS_NAME = "sluice-alerts"
WEBHOOK_ENV = "SLUICE_ALERT_WEBHOOK_URL"
STOP_GRACE_SECONDS = 5.0
ALERT_PAYLOAD = (
    '{"text": {{ ("sluice: " ~ event.payload.message) | tojson }}, '
    '"event": {{ event.event | tojson }}, '
    '"dataset": {{ event.resource["sluice.dataset"] | tojson }}, '
    '"partition": {{ event.resource["sluice.partition"] | tojson }}, '
    '"manifest": {{ event.payload.manifest | tojson }}}'
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``sluice serve``."""
    parser.add_argument("--host", default="127.0.0.1", help="server address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=4200, help="server port (default 4200)")
    parser.add_argument(
        "--api-url",
        default=None,
        help="use this running Prefect API (e.g. http://prefect:4200/api) instead of starting one",
    )
    parser.add_argument(
        "--project-dir",
        default=None,
        help="folder with prefect.yaml and datasets/ (default: the current folder)",
    )
    parser.add_argument(
        "--log-dir", default="var/serve", help="server and deploy logs (default var/serve)"
    )
    parser.add_argument(
        "--webhook-url",
        default=os.environ.get(WEBHOOK_ENV),
        help=f"alerts go to this webhook (default ${WEBHOOK_ENV}; none: no automation)",
    )
    parser.add_argument(
        "--pool-limit", type=int, default=POOL_LIMIT, help="flow runs at once, all queues"
    )
    parser.add_argument(
        "--partition-limit",
        type=int,
        default=QUEUE_LIMITS["partitions"],
        help="partition runs at once (nightly, on-demand, backfill children)",
    )
    parser.add_argument(
        "--backfill-limit", type=int, default=QUEUE_LIMITS["backfills"], help="backfills at once"
    )
    parser.add_argument("--no-worker", action="store_true", help="set up, but start no worker")
    parser.add_argument(
        "--startup-timeout", type=float, default=180.0, help="seconds to wait for the server"
    )


@dataclass
class Supervisor:
    """Child processes, each in its own session, stopped together with all they started."""

    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: list[IO[bytes]] = field(default_factory=list)

    def start(
        self, name: str, cmd: Sequence[str], *, env: dict[str, str], cwd: Path, log: Path | None
    ) -> subprocess.Popen[bytes]:
        """Start a named child; its output goes to ``log``, or to ours when None."""
        out: IO[bytes] | None = None
        if log is not None:
            out = log.open("ab")
            self.logs.append(out)
        proc = subprocess.Popen(
            list(cmd),
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
        )
        self.procs[name] = proc
        print(f"sluice serve: started {name} (pid {proc.pid})", flush=True)
        return proc

    def exited(self) -> tuple[str, int] | None:
        """The first child that has exited, with its exit code."""
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                return name, code
        return None

    def stop(self) -> None:
        """Stop every child, last started first, then whatever they left running.

        Each gets SIGINT, and a second SIGINT after a grace period (a Prefect 3.9.1 worker exits
        only on the second), then SIGKILL.
        """
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            leftovers = descendants(proc.pid)
            t0 = time.monotonic()
            for sig in (signal.SIGINT, signal.SIGINT, signal.SIGKILL):
                _signal_group(proc, sig)
                try:
                    proc.wait(timeout=STOP_GRACE_SECONDS)
                    break
                except subprocess.TimeoutExpired:
                    continue
            for pid in leftovers:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            print(f"sluice serve: stopped {name} ({time.monotonic() - t0:.1f} s)", flush=True)
        self.procs.clear()
        for fh in self.logs:
            fh.close()
        self.logs.clear()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (from /proc; empty where there is none)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def port_free(host: str, port: int) -> bool:
    """Whether nothing listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_healthy(api_url: str, timeout: float, supervisor: Supervisor | None = None) -> None:
    """Wait until the API answers its health check; fail early if the server exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if supervisor is not None and (gone := supervisor.exited()):
            raise SluiceError(f"the Prefect {gone[0]} exited with code {gone[1]} while starting")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{api_url}/health", timeout=5).status_code == 200:
                return
        time.sleep(0.5)
    raise SluiceError(f"the Prefect API at {api_url} did not answer within {timeout:.0f} s")


@contextlib.contextmanager
def api(api_url: str) -> Iterator[None]:
    """Point this process's Prefect client at ``api_url``."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        yield


def ensure_work_pool(pool_limit: int, queue_limits: dict[str, int]) -> None:
    """Create or update the process work pool and its queues, with their concurrency limits."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        client.create_work_pool(
            WorkPoolCreate(
                name=POOL,
                type="process",
                base_job_template=ProcessWorker.get_default_base_job_template(),
                concurrency_limit=pool_limit,
            ),
            overwrite=True,
        )
        for name, limit in queue_limits.items():
            try:
                queue = client.read_work_queue_by_name(name, work_pool_name=POOL)
                client.update_work_queue(queue.id, concurrency_limit=limit)
            except ObjectNotFound:
                client.create_work_queue(name, work_pool_name=POOL, concurrency_limit=limit)


def alert_automation(block_document_id: UUID) -> Any:
    """The automation that calls the webhook block on every sluice alert event."""
    from prefect.automations import AutomationCore, CallWebhook, EventTrigger, Posture

    return AutomationCore(
        name=ALERTS_NAME,
        description="sluice alerts (a failed critical check, a high quarantine rate) to a webhook",
        trigger=EventTrigger(
            expect=set(ALERT_EVENTS),
            match={"prefect.resource.id": "sluice.partition.*"},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[CallWebhook(block_document_id=block_document_id, payload=ALERT_PAYLOAD)],
    )


def ensure_alerts(webhook_url: str) -> UUID:
    """Save the webhook block and (re)create the alert automation; returns the automation id."""
    from prefect.blocks.webhook import Webhook
    from prefect.client.orchestration import get_client

    block = Webhook(url=webhook_url)  # type: ignore[arg-type]
    block_id = block.save(ALERTS_NAME, overwrite=True)
    if not isinstance(block_id, UUID):  # save() is awaitable only in async code
        raise TypeError("ensure_alerts() is for synchronous code")
    with get_client(sync_client=True) as client:
        for old in client.read_automations_by_name(ALERTS_NAME):
            client.delete_automation(old.id)
        automation_id: UUID = client.create_automation(alert_automation(block_id))
    return automation_id


def deploy(project: Path, env: dict[str, str], log: Path) -> None:
    """Deploy every deployment of ``prefect.yaml``; raises with the log's tail on failure."""
    cmd = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"]
    with log.open("wb") as out:
        code = subprocess.run(
            cmd, cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        ).returncode
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise SluiceError(f"prefect deploy failed (exit {code}; log {log}):\n{tail}")


def child_env(project: Path, api_url: str) -> dict[str, str]:
    """The environment of the server, deploy and worker: ours, plus the project and the API."""
    env = dict(os.environ)
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.setdefault("DO_NOT_TRACK", "1")
    env["SLUICE_PROJECT_DIR"] = str(project)
    env["PREFECT_API_URL"] = api_url
    return env


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(args: argparse.Namespace) -> int:
    """Run ``sluice serve``; returns the exit code (0 when stopped by Ctrl-C or SIGTERM)."""
    project = Path(args.project_dir or Path.cwd()).resolve()
    if not (project / "prefect.yaml").is_file():
        raise SluiceError(f"{project}: no prefect.yaml here; run from the project folder")
    log_dir = Path(args.log_dir)
    log_dir = (log_dir if log_dir.is_absolute() else project / log_dir).resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    api_url = args.api_url or f"http://{args.host}:{args.port}/api"
    env = child_env(project, api_url)
    supervisor = Supervisor()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    prefect = [sys.executable, "-m", "prefect"]
    try:
        if args.api_url is None:
            if not port_free(args.host, args.port):
                raise SluiceError(
                    f"{args.host}:{args.port} is in use: is a Prefect server running? "
                    "Use --port, or --api-url to use that server"
                )
            cmd = [*prefect, "server", "start", "--host", args.host, "--port", str(args.port)]
            supervisor.start("server", cmd, env=env, cwd=project, log=log_dir / "server.log")
        wait_healthy(api_url, args.startup_timeout, supervisor)
        print(f"sluice serve: API {api_url} is up", flush=True)
        with api(api_url):
            limits = {"partitions": args.partition_limit, "backfills": args.backfill_limit}
            ensure_work_pool(args.pool_limit, limits)
            print(f"sluice serve: work pool {POOL} (limit {args.pool_limit}; queues {limits})")
            deploy(project, env, log_dir / "deploy.log")
            print("sluice serve: deployed prefect.yaml", flush=True)
            if args.webhook_url:
                ensure_alerts(args.webhook_url)
                print(f"sluice serve: alerts go to the webhook (automation {ALERTS_NAME})")
            else:
                print(f"sluice serve: no alert webhook (set ${WEBHOOK_ENV} or --webhook-url)")
        if not args.no_worker:
            cmd = [*prefect, "worker", "start", "--pool", POOL, "--type", "process"]
            supervisor.start("worker", cmd, env=env, cwd=project, log=None)
        ui = api_url.removesuffix("/api")
        if not supervisor.procs:
            print(f"sluice serve: set up {ui}; nothing to run here", flush=True)
            return 0
        print(f"sluice serve: ready: UI {ui} (logs in {log_dir}); Ctrl-C stops", flush=True)
        while (gone := supervisor.exited()) is None:
            time.sleep(1.0)
        print(f"sluice serve: the {gone[0]} exited with code {gone[1]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        supervisor.stop()


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="sluice serve", description=__doc__)
    add_arguments(_parser)
    try:
        sys.exit(main(_parser.parse_args()))
    except SluiceError as exc:
        print(f"sluice serve: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
