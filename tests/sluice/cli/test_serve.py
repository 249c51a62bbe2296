from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from uuid import uuid4

import pytest
from prefect.server.events.schemas.events import ReceivedEvent
from prefect.server.utilities.user_templates import render_user_template_sync

from flows.alerts import ALERT_EVENTS, partition_resource
from sluice.cli import serve
from sluice.core.errors import SluiceError


def test_the_alert_payload_renders_to_json_a_chat_webhook_takes() -> None:
    event = ReceivedEvent.model_validate(
        {
            "id": uuid4(),
            "occurred": dt.datetime.now(dt.UTC),
            "event": "sluice.partition.quarantine_rate_high",
            "resource": partition_resource("trips", "2024-03-04"),
            "payload": {"message": 'trips 2024-03-04: 9.00% "quoted"', "manifest": "/r/m.json"},
        }
    )
    body = json.loads(render_user_template_sync(serve.ALERT_PAYLOAD, {"event": event}))
    assert body == {
        "text": 'sluice: trips 2024-03-04: 9.00% "quoted"',
        "event": "sluice.partition.quarantine_rate_high",
        "dataset": "trips",
        "partition": "2024-03-04",
        "manifest": "/r/m.json",
    }


def test_the_automation_calls_the_webhook_on_each_alert_event() -> None:
    block = uuid4()
    automation = serve.alert_automation(block)
    assert automation.trigger.expect == set(ALERT_EVENTS)
    assert automation.trigger.match.model_dump() == {"prefect.resource.id": "sluice.partition.*"}
    assert automation.trigger.threshold == 1
    (action,) = automation.actions
    assert action.type == "call-webhook"
    assert action.block_document_id == block


def test_port_free_sees_a_listener() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not serve.port_free("127.0.0.1", port)
    assert serve.port_free("127.0.0.1", port)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_stop_ends_a_child_and_what_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serve, "STOP_GRACE_SECONDS", 0.5)
    # a child that ignores SIGINT (as a Prefect worker does once) and starts a grandchild
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " start_new_session=True)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    sup = serve.Supervisor()
    log = tmp_path / "child.log"
    proc = sup.start(
        "child", [sys.executable, "-c", script], env=dict(os.environ), cwd=tmp_path, log=log
    )
    deadline = time.monotonic() + 20
    while not log.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.1)
    grandchild = int(log.read_text().split()[-1])
    assert grandchild in serve.descendants(proc.pid)
    assert _alive(grandchild)
    sup.stop()
    assert proc.poll() is not None
    time.sleep(0.2)
    assert not _alive(grandchild)
    assert sup.procs == {}


def test_main_refuses_a_folder_without_prefect_yaml(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    args = parser.parse_args(["--project-dir", str(tmp_path)])
    with pytest.raises(SluiceError, match=r"no prefect\.yaml"):
        serve.main(args)


def test_main_refuses_a_busy_port(tmp_path: Path) -> None:
    (tmp_path / "prefect.yaml").write_text("deployments: []\n")
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        args = parser.parse_args(["--project-dir", str(tmp_path), "--port", str(port)])
        with pytest.raises(SluiceError, match="in use"):
            serve.main(args)
    assert signal.getsignal(signal.SIGTERM) is not serve._on_sigterm


def test_serve_runs_as_a_module_and_reports_errors_without_a_traceback(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sluice.cli.serve", "--project-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 2
    assert "no prefect.yaml" in out.stderr
    assert "Traceback" not in out.stderr
