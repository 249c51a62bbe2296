"""Open a local HTML file in headless Chromium over the DevTools protocol, network off.

The protocol runs over a pipe (``--remote-debugging-pipe``: Chromium reads commands from fd 3
and writes to fd 4, each message JSON followed by a NUL byte), so no port is opened and nothing
beyond the standard library is needed. Network access is cut twice: a proxy that does not exist
and the protocol's offline mode. Every request, console message, log entry and uncaught exception
is recorded.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--remote-debugging-pipe",
)


def find_chromium() -> str | None:
    """The Chromium executable on PATH, if any."""
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Page:
    """What the browser saw while loading a page."""

    events: list[dict[str, Any]] = field(default_factory=list)
    screenshots: dict[str, bytes] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def of(self, method: str) -> list[dict[str, Any]]:
        """The parameters of every event of one kind."""
        return [e.get("params", {}) for e in self.events if e.get("method") == method]

    @property
    def requests(self) -> list[str]:
        """Every URL the page asked for."""
        return [p["request"]["url"] for p in self.of("Network.requestWillBeSent")]

    @property
    def problems(self) -> list[str]:
        """Console errors and warnings, error log entries, and uncaught exceptions."""
        out = [
            f"console.{p['type']}: {[a.get('value') for a in p.get('args', [])]}"
            for p in self.of("Runtime.consoleAPICalled")
            if p.get("type") in ("error", "warning", "assert")
        ]
        out += [
            f"log {p['entry'].get('level')}: {p['entry'].get('text')}"
            for p in self.of("Log.entryAdded")
            if p["entry"].get("level") in ("error", "warning")
        ]
        out += [
            f"exception: {p['exceptionDetails'].get('text')}"
            for p in self.of("Runtime.exceptionThrown")
        ]
        return out


class _Pipe:
    def __init__(self, binary: str, profile: str) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        wire = f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}'
        self.proc = subprocess.Popen(
            [
                shutil.which("bash") or "/bin/bash",
                "-c",
                wire,
                binary,
                *FLAGS,
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            pass_fds=(to_chrome_r, from_chrome_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def _pump(self, deadline: float) -> None:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if ready:
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                self._buf += chunk

    def _next(self, deadline: float) -> dict[str, Any]:
        self._pump(deadline)
        msg, self._buf = self._buf.split(b"\0", 1)
        got: dict[str, Any] = json.loads(msg)
        return got

    def call(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + 30
        while True:
            got = self._next(deadline)
            if got.get("id") == self._id:
                if "error" in got:
                    raise RuntimeError(f"{method}: {got['error']}")
                result: dict[str, Any] = got.get("result", {})
                return result
            self.events.append(got)

    def wait_for(self, method: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self._next(deadline))

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        try:
            while True:
                self.events.append(self._next(deadline))
        except TimeoutError:
            pass

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


def open_page(
    binary: str, path: Path, expressions: dict[str, str], width: int = 1366, height: int = 900
) -> Page:
    """Load ``path`` offline, evaluate ``expressions``, take a viewport and a full screenshot."""
    profile = tempfile.mkdtemp(prefix="sluice-chromium-")
    pipe = _Pipe(binary, profile)
    try:
        target = pipe.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            pipe.call(f"{domain}.enable", None, session)
        pipe.call(
            "Network.emulateNetworkConditions",
            {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
            session,
        )
        pipe.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session,
        )
        pipe.call("Page.navigate", {"url": path.resolve().as_uri()}, session)
        pipe.wait_for("Page.loadEventFired")
        pipe.drain(0.5)
        page = Page()
        for name, expr in expressions.items():
            got = pipe.call(
                "Runtime.evaluate", {"expression": expr, "returnByValue": True}, session
            )
            page.values[name] = got.get("result", {}).get("value")
        shot = pipe.call("Page.captureScreenshot", {"format": "png"}, session)
        page.screenshots["viewport"] = base64.b64decode(shot["data"])
        size = pipe.call("Page.getLayoutMetrics", None, session)["cssContentSize"]
        full = pipe.call(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": size["height"], "scale": 1},
            },
            session,
        )
        page.screenshots["full"] = base64.b64decode(full["data"])
        pipe.drain(0.2)
        page.events = list(pipe.events)
        return page
    finally:
        pipe.close()
        shutil.rmtree(profile, ignore_errors=True)


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG image."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
