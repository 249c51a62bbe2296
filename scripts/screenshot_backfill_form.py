"""Screenshot the backfill deployment's run form in the Prefect UI, in headless Chromium.

    python scripts/screenshot_backfill_form.py --api-url http://127.0.0.1:4200/api \\
        --out docs/img/backfill-form.png

Needs a Prefect server on this machine with the project deployed (``sluice serve``), Chromium
(``make browser``) and the ``dev`` extra (Playwright, :mod:`tests.browser`). The browser reaches
loopback only: every request beyond it is blocked and listed. The page is shown as on a touch
screen, where Prefect's UI uses the browser's own controls (a select, date inputs) that can be
read and filled; with a mouse it draws its own menus and calendar pickers instead. Waits for
the form, fills dataset, start and end, takes the screenshot, and prints JSON: ``controls``
(what each parameter rendered as), ``blocked`` (requests cut) and ``problems`` (console errors
and warnings, page errors). Exits 1 when the dataset is not a drop-down or the dates are not
date inputs, 2 when the API is not on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.browser import Browser, is_local  # noqa: E402

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
([dataset, start, end]) => {
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
}
"""


def deployment_id(api_url: str, name: str) -> str:
    """The id of a ``flow/deployment``."""
    flow, dep = name.split("/", 1)
    resp = httpx.get(f"{api_url}/deployments/name/{flow}/{dep}", timeout=30)
    resp.raise_for_status()
    return str(resp.json()["id"])


def screenshot(
    api_url: str,
    deployment: str,
    out: Path,
    *,
    fill: tuple[str, str, str] | None,
    width: int = 1280,
    height: int = 1160,
) -> dict[str, Any]:
    """Open the deployment's run form, fill it, save a PNG.

    Returns the form's controls, and the requests the page made beyond this machine (blocked)
    and its errors: ``{"controls": ..., "blocked": [...], "problems": [...]}``.
    """
    dep_id = deployment_id(api_url, deployment)
    ui = api_url.removesuffix("/api")
    with Browser() as browser, browser.tab(width, height, touch=True) as tab:
        tab.goto(f"{ui}/deployments/deployment/{dep_id}/run")
        tab.wait_for("document.querySelectorAll('input[type=date]').length >= 2", 60)
        tab.settle(1.0)
        controls: dict[str, Any] = json.loads(tab.evaluate(FORM_CONTROLS_JS))
        if fill is not None:
            tab.evaluate(FILL_JS, list(fill))
            tab.settle(0.5)
        shot = tab.screenshot()
        seen = tab.seen
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(shot)
    return {"controls": controls, "blocked": seen.blocked, "problems": seen.problems}


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
    if not is_local(args.api_url):
        print(
            f"--api-url must be on this machine (loopback), got {args.api_url!r}: "
            "the browser's network is cut beyond loopback",
            file=sys.stderr,
        )
        return 2
    fill = None if args.no_fill else (args.dataset, args.start, args.end)
    seen = screenshot(args.api_url, args.deployment, args.out, fill=fill)
    print(json.dumps(seen, indent=2))
    controls: dict[str, Any] = seen["controls"]
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)", file=sys.stderr)
    typed = (
        controls.get("dataset", {}).get("control") == "select"
        and controls.get("start", {}).get("type") == "date"
        and controls.get("end", {}).get("type") == "date"
    )
    return 0 if typed else 1


if __name__ == "__main__":
    sys.exit(main())
