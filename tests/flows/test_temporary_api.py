"""Prefect's temporary API server ends with the `sluice` run that started it, on SIGKILL too."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.robustness.corpus import csv_text, good
from tests.robustness.support import write_dataset

pytestmark = pytest.mark.e2e


def _parents() -> dict[int, int]:
    """Every live process's parent, from /proc (zombies, already dead, left out)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z":
            out[int(entry)] = int(ppid)
    return out


def descendants(pid: int) -> set[int]:
    """The live processes ``pid`` started, and theirs."""
    parents = _parents()
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        children = {p for p, pp in parents.items() if pp == current and p not in found}
        found |= children
        todo.extend(children)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _api_port(pid: int) -> int | None:
    """The port of the temporary API server among ``pid``'s descendants, if one is started."""
    for child in descendants(pid):
        found = re.search(
            r"prefect\.server\.api\.server:create_app .*--port (\d+)", _cmdline(child)
        )
        if found:
            return int(found.group(1))
    return None


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_sigkill_of_sluice_run_leaves_no_temporary_server(tmp_path: Path) -> None:
    spec = write_dataset(tmp_path, {"2024-01-01": csv_text(*(good(i) for i in range(200)))})
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env |= {
        "SLUICE_PREFECT": "1",
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    exe = str(Path(sys.executable).with_name("sluice"))
    proc = subprocess.Popen(
        [exe, "run", str(spec), "--partition", "2024-01-01"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started: set[int] = set()
    try:
        deadline = time.monotonic() + 400
        port = None
        while time.monotonic() < deadline and proc.poll() is None:
            port = port or _api_port(proc.pid)
            if port is not None and _healthy(port):
                break
            time.sleep(0.2)
        assert proc.poll() is None, "sluice run ended before its temporary API was seen"
        assert port is not None, "no temporary API server was started"
        assert _healthy(port), "the temporary API server did not come up"
        started = descendants(proc.pid)
        assert started
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and started & set(_parents()):
            time.sleep(0.2)
        left = started & set(_parents())
        assert not left, [_cmdline(p) for p in left]
        assert not _healthy(port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in started & set(_parents()):
            if "create_app" in _cmdline(pid):
                os.kill(pid, signal.SIGKILL)
