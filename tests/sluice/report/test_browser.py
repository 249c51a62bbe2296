"""The demo run's report in headless Chromium, network off: it renders, plots show, nothing runs.

The report opened is the one of the partition with a shifted fare and cells holding
``<script>`` and ``<img onerror>`` (see ``conftest.py``); its "Drift against baselines" section
compares it with the first week, with overlay plots. Screenshots go to the test's tmp folder.
The other tests prove that the browser check itself sees what it claims to: scripts that run,
requests that leave, CSP violations, and that it stops every process it started.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.browser import (
    Browser,
    chromium_processes,
    descendants,
    is_local,
    open_page,
    open_sockets,
    png_size,
)
from tests.conftest import ROOT
from tests.sluice.report.conftest import FARE_DAY, SCRIPT, ShiftedRuns

CHECKS = {
    "title": "document.title",
    "plots": "document.querySelectorAll('svg.plot').length",
    "drawn_plots": "[...document.querySelectorAll('svg.plot')]"
    ".filter(s => s.getBoundingClientRect().width > 100 && s.querySelector('rect,polyline,circle'))"
    ".length",
    "scripts": "document.querySelectorAll('script').length",
    "images": "document.querySelectorAll('img').length",
    "planted_text": f"document.body.textContent.includes({SCRIPT!r})",
    "verdict_height": "document.getElementById('verdict').getBoundingClientRect().height",
    "verdict_text": "document.getElementById('verdict').innerText",
    "attention_text": "document.getElementById('attention').innerText",
    "rules": "document.querySelectorAll('#rules-table tr.rule').length",
    "stylesheet_rules": "document.styleSheets[0].cssRules.length",
    "body_font": "getComputedStyle(document.body).fontFamily",
    "baselines_heading": "document.getElementById('baselines').innerText",
    "baseline_text": "document.getElementById('baseline-first-week').innerText",
    "baseline_overlays": "[...document.querySelectorAll('#baseline-first-week .overlay svg.plot')]"
    ".filter(s => s.getBoundingClientRect().width > 100 && s.querySelector('rect')).length",
    "baseline_rows": "document.querySelectorAll('#baseline-first-week table tr').length",
}


def test_report_renders_offline_with_plots_and_no_script(
    shifted_runs: ShiftedRuns, browser: Browser, tmp_path: Path
) -> None:
    report = shifted_runs.report(FARE_DAY)
    html = report.read_text(encoding="utf-8")
    assert "&lt;script&gt;document.title=" in html
    page = open_page(browser, report, CHECKS)
    for name, data in page.screenshots.items():
        (tmp_path / f"report-{name}.png").write_bytes(data)
    v = page.values

    assert page.seen.problems == []
    assert page.seen.requests == [report.resolve().as_uri()]
    assert page.seen.blocked == []

    assert v["title"].startswith("sluice report: trips pickup_date=2024-03-25")
    assert v["scripts"] == 0
    assert v["images"] == 0
    assert v["planted_text"] is True
    assert v["plots"] >= 20
    assert v["drawn_plots"] == v["plots"]
    assert v["verdict_height"] > 40
    assert "PASSED" in v["verdict_text"]
    assert "fare_amount" in v["attention_text"]
    assert v["rules"] == len(shifted_runs.manifests[FARE_DAY]["counts"]["quarantined_by_reason"])
    assert v["stylesheet_rules"] > 30
    assert "Times" not in v["body_font"]

    assert v["baselines_heading"] == "Drift against baselines"
    assert (
        "Reference: baseline first-week v1: 7 partitions, 2024-03-04 to 2024-03-10"
        in (v["baseline_text"])
    )
    assert "drift share" in v["baseline_text"]
    assert "ROC AUC" in v["baseline_text"]
    assert v["baseline_overlays"] >= 3
    assert v["baseline_rows"] > 5

    width, height = png_size(page.screenshots["viewport"])
    assert (width, height) == (1366, 900)
    full_w, full_h = png_size(page.screenshots["full"])
    assert full_w == 1366
    assert full_h > 4000
    assert len(page.screenshots["viewport"]) > 40_000


def test_the_browser_check_sees_scripts_errors_and_network(
    browser: Browser, tmp_path: Path
) -> None:
    page_file = tmp_path / "live.html"
    page_file.write_text(
        "<!doctype html><html><head><title>live</title></head><body>"
        "<img src='http://192.0.2.1/pixel.png'>"
        "<script>document.title='ran';console.error('it ran');"
        "setTimeout(() => { throw new Error('thrown later') }, 0);"
        "window.open('http://192.0.2.2/popup')</script></body></html>"
    )
    page = open_page(browser, page_file, {"title": "document.title"})
    assert page.values["title"] == "ran"
    assert "console.error: it ran" in page.seen.problems
    assert any("thrown later" in e for e in page.seen.errors), page.seen.errors
    assert "http://192.0.2.1/pixel.png" in page.seen.requests
    assert sorted(page.seen.blocked) == ["http://192.0.2.1/pixel.png", "http://192.0.2.2/popup"]


def test_the_browser_check_sees_csp_violations(browser: Browser, tmp_path: Path) -> None:
    page_file = tmp_path / "locked.html"
    page_file.write_text(
        "<!doctype html><html><head>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'\">"
        "<title>locked</title></head><body>"
        "<script>document.title='ran'</script>"
        "<img src='data:image/gif;base64,R0lGODlhAQABAAAAACw='>"
        "</body></html>"
    )
    page = open_page(browser, page_file, {"title": "document.title"})
    assert page.values["title"] == "locked"
    assert sorted(c.split()[0] for c in page.seen.csp) == ["img-src", "script-src-elem"]
    assert any(p.startswith("csp: script-src-elem blocked inline") for p in page.seen.problems)


class _Local(BaseHTTPRequestHandler):
    """A page on loopback that reaches for loopback, a far host and a far WebSocket."""

    hits: list[str]
    release: threading.Event

    def do_GET(self) -> None:
        self.hits.append(self.path)
        if self.path == "/hold":
            self.release.wait(30)
        body = (
            b"<!doctype html><title>local</title><script>"
            b"fetch('/data').then(r => r.text()).then(t => { document.title = t });"
            b"fetch('http://192.0.2.1/far').catch(() => console.log('far refused'));"
            b"const ws = new WebSocket('ws://192.0.2.1/socket');"
            b"ws.onclose = () => { window.wsClosed = true };"
            b"fetch('/hold');"
            b"</script>"
            if self.path == "/"
            else b"loopback ok"
        )
        self.send_response(200)
        self.send_header("content-type", "text/html" if self.path == "/" else "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[tuple[str, list[str], threading.Event]]:
    """An HTTP server on 127.0.0.1: its URL, the paths asked for, the release of ``/hold``."""
    hits: list[str] = []
    release = threading.Event()
    handler = type("Handler", (_Local,), {"hits": hits, "release": release})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", hits, release
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def browser_processes() -> list[int]:
    """This test process's descendants that are Chromium or Playwright's driver (a session's
    Prefect API server, also a descendant, listens on loopback by design)."""
    found = []
    for pid in descendants(os.getpid()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"chrom" in cmdline or b"playwright" in cmdline:
            found.append(pid)
    return found


def test_loopback_is_reached_and_every_other_host_is_cut(
    browser: Browser, local_server: tuple[str, list[str], threading.Event]
) -> None:
    url, hits, release = local_server
    with browser.tab() as tab:
        tab.goto(url)
        tab.wait_for("document.title === 'loopback ok' && window.wsClosed === true")
        deadline = time.monotonic() + 30
        while "/hold" not in hits and time.monotonic() < deadline:
            time.sleep(0.1)
        sockets = open_sockets(browser_processes())
        release.set()
        seen = tab.seen
    assert sorted(hits) == ["/", "/data", "/hold"]
    assert seen.requests[:1] == [url]
    assert f"{url}data" in seen.requests
    assert sorted(seen.blocked) == ["http://192.0.2.1/far", "ws://192.0.2.1/socket"]
    assert sockets, "the browser's connection to the loopback server was not seen"
    listening = [s for s in sockets if s[0].startswith("tcp") and s[2] == "0A"]
    assert listening == [], "the browser or its driver opened a port"
    far = [s for s in sockets if not ipaddress.ip_address(s[1].rsplit(":", 1)[0]).is_loopback]
    assert far == [], "a socket bound beyond loopback"


def test_waiting_for_a_condition_that_never_holds_names_it(
    browser: Browser, tmp_path: Path
) -> None:
    page_file = tmp_path / "still.html"
    page_file.write_text("<!doctype html><title>still</title>")
    with browser.tab() as tab:
        tab.goto(page_file)
        with pytest.raises(TimeoutError, match=r"never satisfied 'window\.done === true' in 1 s"):
            tab.wait_for("window.done === true", timeout=1)


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("file:///tmp/report.html", True),
        ("data:text/plain,x", True),
        ("about:blank", True),
        ("http://127.0.0.1:4200/api", True),
        ("http://127.9.8.7/", True),
        ("http://localhost:8080/", True),
        ("http://ui.localhost/", True),
        ("ws://[::1]:9000/socket", True),
        ("http://192.0.2.1/pixel.png", False),
        ("https://10.0.0.1/", False),
        ("http://localhost.example.com/", False),
        ("http://127.0.0.1.nip.io/", False),
        ("https://fonts.googleapis.com/css", False),
        ("chrome://settings", False),
        ("http:///nohost", False),
    ],
)
def test_is_local_admits_only_files_and_loopback(url: str, local: bool) -> None:
    assert is_local(url) is local


def test_closing_the_browser_stops_every_process_it_started() -> None:
    me = os.getpid()
    assert chromium_processes(me) == []
    with Browser() as b, b.tab() as tab:
        tab.goto("about:blank")
        started = chromium_processes(me)
        assert started, "no Chromium process found under this test"
    assert _gone(started, 10) == []


HOLDER = """
import os, sys, time
from tests.browser import Browser, chromium_processes
with Browser() as b, b.tab() as tab:
    tab.goto("about:blank")
    print(*chromium_processes(os.getpid()), flush=True)
    time.sleep(600)
"""


def test_a_killed_test_process_leaves_no_browser_behind() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    try:
        assert holder.stdout is not None
        pids = [int(p) for p in holder.stdout.readline().split()]
        assert pids, "the holder started no Chromium"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    assert _gone(pids, 30) == []


def _gone(pids: list[int], timeout: float) -> list[int]:
    """The processes of ``pids`` still alive after waiting up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [p for p in alive if _alive(p)]
    return alive


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
