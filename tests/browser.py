"""Headless Chromium for the tests and scripts: Playwright driving the system's Chromium, offline.

Playwright starts the Chromium found on PATH (Debian's ``chromium`` package, ``make browser``)
and talks to it over a pipe (``--remote-debugging-pipe``): no DevTools port is opened and no
browser is downloaded, so ``playwright install`` is never needed. The network is cut twice:
every HTTP request and WebSocket to a host that is not loopback is aborted by a route, and
Chromium is pointed at a proxy that does not exist (loopback is exempt from it). File, data,
blob and about URLs and loopback hosts stay reachable, so a report on disk or a local server
can be opened. Every request, aborted request, console message, uncaught page error and
Content-Security-Policy violation is recorded in :class:`Seen`.

Playwright's sync API marks its event loop as running in the calling thread for as long as
it is started (``playwright/_impl/_greenlets.py``): ``asyncio.run`` fails in between. Keep a
:class:`Browser` open only around the code that uses it.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser as PlaywrightBrowser
from playwright.sync_api import (
    ConsoleMessage,
    Playwright,
    Request,
    Route,
    WebError,
    WebSocketRoute,
    sync_playwright,
)
from playwright.sync_api import Page as PlaywrightPage
from playwright.sync_api import TimeoutError as PlaywrightTimeout

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "`make browser` installs Debian's chromium (apt-get install -y chromium)"
LOCAL_SCHEMES = frozenset({"file", "data", "blob", "about"})
DEAD_PROXY = "http://127.0.0.1:9"
PROBLEM_CONSOLE_TYPES = frozenset({"error", "warning", "assert"})
CSP_LISTENER = """
document.addEventListener('securitypolicyviolation', (e) => {
  window.__sluiceCsp(`${e.effectiveDirective} blocked ${e.blockedURI || 'inline'}`
    + ` at ${e.sourceFile || e.documentURI}:${e.lineNumber}`);
});
"""


def find_chromium() -> str | None:
    """The Chromium executable on PATH, if any."""
    for name in CANDIDATES:
        if found := shutil.which(name):
            return found
    return None


def is_local(url: str) -> bool:
    """Whether a URL stays on this machine: a file, data, blob or about URL, or a loopback host."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    host = (parts.hostname or "").rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Console:
    """One console message: its type (``log``, ``error``, ``warning``, ...) and text."""

    type: str
    text: str


@dataclass
class Seen:
    """What the browser saw in one tab and the windows it opened, in the order it happened."""

    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    console: list[Console] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    csp: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions and CSP violations."""
        out = [
            f"console.{c.type}: {c.text}" for c in self.console if c.type in PROBLEM_CONSOLE_TYPES
        ]
        out += [f"exception: {e}" for e in self.errors]
        out += [f"csp: {c}" for c in self.csp]
        return out


class Tab:
    """One page in its own browser context, with what it saw."""

    def __init__(self, page: PlaywrightPage, seen: Seen) -> None:
        self.page = page
        self.seen = seen

    def goto(self, target: Path | str, timeout: float = 60) -> None:
        """Open a file or URL and wait for its load event."""
        url = target.resolve().as_uri() if isinstance(target, Path) else target
        self.page.goto(url, wait_until="load", timeout=timeout * 1000)

    def evaluate(self, expression: str, arg: Any = None) -> Any:
        """The value of a JavaScript expression (or of a function applied to ``arg``)."""
        return self.page.evaluate(expression, arg)

    def values(self, expressions: dict[str, str]) -> dict[str, Any]:
        """The value of each named JavaScript expression."""
        return {name: self.page.evaluate(expr) for name, expr in expressions.items()}

    def wait_for(self, expression: str, timeout: float = 30) -> None:
        """Wait until a JavaScript expression is truthy; TimeoutError names it when it never is."""
        try:
            self.page.wait_for_function(expression, timeout=timeout * 1000)
        except PlaywrightTimeout as exc:
            raise TimeoutError(
                f"the page at {self.page.url} never satisfied {expression!r} in {timeout:g} s"
            ) from exc

    def settle(self, seconds: float) -> None:
        """Let the page run for a while (timers, late console messages)."""
        self.page.wait_for_timeout(seconds * 1000)

    def screenshot(self, *, full_page: bool = False) -> bytes:
        """A PNG of the viewport, or of the whole page."""
        return self.page.screenshot(full_page=full_page, type="png")


class Browser:
    """A headless Chromium started by Playwright; a context manager that stops it."""

    def __init__(self, executable: str | None = None, *, timeout: float = 60) -> None:
        found = executable or find_chromium()
        if found is None:
            raise FileNotFoundError(
                f"no Chromium on PATH (looked for {CANDIDATES}): {INSTALL_HINT}"
            )
        self.executable = found
        self.timeout = timeout
        self._playwright: Playwright | None = None
        self._browser: PlaywrightBrowser | None = None

    def __enter__(self) -> Browser:
        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=self.executable,
                headless=True,
                args=[f"--proxy-server={DEAD_PROXY}", "--disable-gpu"],
                timeout=self.timeout * 1000,
            )
        except BaseException:
            self._playwright.stop()
            self._playwright = None
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the browser (every process it started) and Playwright's driver."""
        try:
            if self._browser is not None:
                self._browser.close()
        finally:
            self._browser = None
            if self._playwright is not None:
                self._playwright.stop()
                self._playwright = None

    @property
    def version(self) -> str:
        """The browser's version, as Chromium reports it."""
        return self._started().version

    def _started(self) -> PlaywrightBrowser:
        if self._browser is None:
            raise RuntimeError("the browser is not started: use it as a context manager")
        return self._browser

    @contextmanager
    def tab(self, width: int = 1366, height: int = 900, *, touch: bool = False) -> Iterator[Tab]:
        """A page in a fresh context (no cookies or storage shared), network cut, recording.

        Pages see a mouse (CSS ``hover: hover``, ``pointer: fine``), as on a desktop; with
        ``touch`` a touch screen (``hover: none``, ``pointer: coarse``).
        """
        context = self._started().new_context(
            viewport={"width": width, "height": height},
            has_touch=touch,
            device_scale_factor=1,
            service_workers="block",
            accept_downloads=False,
        )
        try:
            context.set_default_timeout(self.timeout * 1000)
            seen = Seen()

            def abort(route: Route) -> None:
                seen.blocked.append(route.request.url)
                route.abort("blockedbyclient")

            def refuse(ws: WebSocketRoute) -> None:
                seen.blocked.append(ws.url)
                ws.close(code=1008, reason="network cut by the test browser")

            def request(req: Request) -> None:
                seen.requests.append(req.url)

            def console(msg: ConsoleMessage) -> None:
                seen.console.append(Console(msg.type, msg.text))

            def page_error(err: WebError) -> None:
                seen.errors.append(f"{err.error.name}: {err.error.message}")

            def csp(report: str) -> None:
                seen.csp.append(report)

            context.route(lambda url: not is_local(url), abort)
            context.route_web_socket(lambda url: not is_local(url), refuse)
            context.expose_function("__sluiceCsp", csp)
            context.add_init_script(CSP_LISTENER)
            context.on("request", request)
            context.on("console", console)
            context.on("weberror", page_error)
            yield Tab(context.new_page(), seen)
        finally:
            context.close()


@dataclass
class Opened:
    """A file opened by :func:`open_page`: what was seen, the values asked for, screenshots."""

    seen: Seen
    values: dict[str, Any]
    screenshots: dict[str, bytes]


def open_page(
    browser: Browser, path: Path, expressions: dict[str, str], width: int = 1366, height: int = 900
) -> Opened:
    """Load a file offline, evaluate ``expressions``, take a viewport and a full-page screenshot."""
    with browser.tab(width, height) as tab:
        tab.goto(path)
        tab.settle(0.3)
        values = tab.values(expressions)
        shots = {"viewport": tab.screenshot(), "full": tab.screenshot(full_page=True)}
        tab.settle(0.1)
        return Opened(tab.seen, values, shots)


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG image."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def descendants(ancestor: int) -> dict[int, str]:
    """Every live process descending from ``ancestor``, by id, with its name (from /proc)."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        if state == "Z":
            continue
        names[int(entry.name)] = stat[stat.index("(") + 1 : stat.rindex(")")]
        children.setdefault(int(parent), []).append(int(entry.name))
    found: dict[int, str] = {}
    todo = list(children.get(ancestor, []))
    while todo:
        pid = todo.pop()
        found[pid] = names[pid]
        todo.extend(children.get(pid, []))
    return found


def chromium_processes(ancestor: int) -> list[int]:
    """The ids of every live Chromium process descending from ``ancestor``."""
    return sorted(pid for pid, name in descendants(ancestor).items() if "chrom" in name.lower())


def open_sockets(pids: list[int]) -> list[tuple[str, str, str]]:
    """The internet sockets the processes hold: (protocol, local address, TCP state in hex)."""
    inodes: set[str] = set()
    for pid in pids:
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:
            continue
        inodes.update(link[8:-1] for link in links if link.startswith("socket:["))
    found: list[tuple[str, str, str]] = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            lines = Path(f"/proc/net/{proto}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[9] in inodes:
                found.append((proto, _address(cols[1]), cols[3]))
    return found


def _address(hex_address: str) -> str:
    """``0100007F:1F90`` (as in /proc/net/tcp) as ``127.0.0.1:8080``."""
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return f"{ipaddress.ip_address(words)}:{int(port, 16)}"
