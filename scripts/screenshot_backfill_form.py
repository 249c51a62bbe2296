"""Screenshot the backfill deployment's run form in the Prefect UI, in headless Chromium.

    python scripts/screenshot_backfill_form.py --api-url http://127.0.0.1:4200/api \\
        --out docs/img/backfill-form.png

Needs a Prefect server with the project deployed (``sluice serve``) and Chromium. Drives the page
over the DevTools protocol: waits for the form, fills dataset, start and end, takes the
screenshot, and prints the form's controls as JSON (what each parameter rendered as). Exits 1
when the dataset is not a drop-down or the dates are not date inputs.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect
from websockets.sync.connection import Connection

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)

FORM_CONTROLS_JS = """
(() => {
  const out = {};
  for (const el of document.querySelectorAll('select, input')) {
    if (el.type === 'hidden') continue;
    let box = el.parentElement, label = null;
    while (box && !label) {
      const l = box.querySelector('label, .p-label__text');
      if (l && l.textContent.trim() && l.contains(el) === false) label = l.textContent.trim();
      box = box.parentElement;
    }
    if (!label || label in out) continue;
    out[label] = el.tagName === 'SELECT'
      ? {control: 'select', options: [...el.options].map(o => o.value)}
      : {control: 'input', type: el.type};
  }
  return JSON.stringify(out);
})()
"""

FILL_JS = """
((dataset, start, end) => {
  const selects = [...document.querySelectorAll('select')];
  const ds = selects.find(s => [...s.options].some(o => o.value === dataset));
  if (ds) { ds.value = dataset; ds.dispatchEvent(new Event('change', {bubbles: true})); }
  const dates = [...document.querySelectorAll('input[type=date]')];
  [start, end].forEach((v, i) => {
    if (!dates[i]) return;
    dates[i].value = v;
    dates[i].dispatchEvent(new Event('input', {bubbles: true}));
  });
  return dates.length;
})
"""


class Page:
    """A DevTools protocol session with one page."""

    def __init__(self, ws: Connection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result, skipping events."""
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv(timeout=60))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page and return its value."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float) -> None:
        """Wait until a JavaScript expression is true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(expression):
                return
            time.sleep(0.25)
        raise TimeoutError(f"the page never satisfied {expression!r}")


def find_chromium() -> str:
    """The Chromium executable."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    raise SystemExit("no Chromium found: apt-get install -y chromium")


def deployment_id(api_url: str, name: str) -> str:
    """The id of a ``flow/deployment``."""
    flow, dep = name.split("/", 1)
    resp = httpx.get(f"{api_url}/deployments/name/{flow}/{dep}", timeout=30)
    resp.raise_for_status()
    return str(resp.json()["id"])


def devtools_url(profile: Path, proc: subprocess.Popen[bytes], timeout: float = 30) -> str:
    """The WebSocket URL of the first page of a Chromium started with a DevTools port."""
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if port_file.exists() and (lines := port_file.read_text().split()):
            pages = httpx.get(f"http://127.0.0.1:{lines[0]}/json/list", timeout=5).json()
            for target in pages:
                if target.get("type") == "page":
                    return str(target["webSocketDebuggerUrl"])
        time.sleep(0.2)
    raise TimeoutError("Chromium did not open its DevTools port")


def screenshot(
    api_url: str,
    deployment: str,
    out: Path,
    *,
    fill: tuple[str, str, str] | None,
    width: int = 1280,
    height: int = 1160,
) -> dict[str, Any]:
    """Open the deployment's run form, fill it, save a PNG; returns the form's controls."""
    dep_id = deployment_id(api_url, deployment)
    ui = api_url.removesuffix("/api")
    # Chromium's helper processes may still write to the profile after the browser exits
    with tempfile.TemporaryDirectory(prefix="sluice-chromium-", ignore_cleanup_errors=True) as tmp:
        profile = Path(tmp)
        cmd = [
            find_chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            with connect(devtools_url(profile, proc), max_size=None) as ws:
                page = Page(ws)
                page.call("Page.enable")
                page.call(
                    "Emulation.setDeviceMetricsOverride",
                    width=width,
                    height=height,
                    deviceScaleFactor=1,
                    mobile=False,
                )
                page.call("Page.navigate", url=f"{ui}/deployments/deployment/{dep_id}/run")
                page.wait_for("document.querySelectorAll('input[type=date]').length >= 2", 60)
                time.sleep(1.0)
                controls: dict[str, Any] = json.loads(page.evaluate(FORM_CONTROLS_JS))
                if fill is not None:
                    page.evaluate(f"{FILL_JS}({', '.join(json.dumps(v) for v in fill)})")
                    time.sleep(0.5)
                shot = page.call("Page.captureScreenshot", format="png")
        finally:
            _stop(proc)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(base64.b64decode(shot["data"]))
    return controls


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End Chromium and every helper process it started (its own session)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--api-url", default=os.environ.get("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    )
    p.add_argument("--deployment", default="backfill/backfill")
    p.add_argument("--out", type=Path, default=Path("docs/img/backfill-form.png"))
    p.add_argument("--dataset", default="trips")
    p.add_argument("--start", default="2024-03-04")
    p.add_argument("--end", default="2024-03-06")
    p.add_argument("--no-fill", action="store_true", help="leave the form empty")
    args = p.parse_args(argv)
    fill = None if args.no_fill else (args.dataset, args.start, args.end)
    controls = screenshot(args.api_url, args.deployment, args.out, fill=fill)
    print(json.dumps(controls, indent=2))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)", file=sys.stderr)
    typed = (
        controls.get("dataset", {}).get("control") == "select"
        and controls.get("start", {}).get("type") == "date"
        and controls.get("end", {}).get("type") == "date"
    )
    return 0 if typed else 1


if __name__ == "__main__":
    sys.exit(main())
