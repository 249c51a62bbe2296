"""The demo run's report in headless Chromium, network off: it renders, plots show, nothing runs.

The report opened is the one of the partition with a shifted fare and cells holding
``<script>`` and ``<img onerror>`` (see ``conftest.py``). Screenshots go to the test's tmp folder.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sluice.report.chromium import find_chromium, open_page, png_size
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
}


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium binary (``make test`` installs Debian's chromium package when absent)."""
    found = find_chromium()
    if found is None:
        pytest.fail(
            "Chromium is not installed: `make test` installs it, or run "
            "`apt-get install -y chromium` (Debian) and try again"
        )
    return found


def test_report_renders_offline_with_plots_and_no_script(
    shifted_runs: ShiftedRuns, chromium: str, tmp_path: Path
) -> None:
    report = shifted_runs.report(FARE_DAY)
    html = report.read_text(encoding="utf-8")
    assert "&lt;script&gt;document.title=" in html
    page = open_page(chromium, report, CHECKS)
    for name, data in page.screenshots.items():
        (tmp_path / f"report-{name}.png").write_bytes(data)
    v = page.values

    assert page.problems == []
    assert all(u.startswith("file://") for u in page.requests), page.requests
    assert page.requests == [report.resolve().as_uri()]

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

    width, height = png_size(page.screenshots["viewport"])
    assert (width, height) == (1366, 900)
    full_w, full_h = png_size(page.screenshots["full"])
    assert full_w == 1366
    assert full_h > 4000
    assert len(page.screenshots["viewport"]) > 40_000


def test_the_browser_check_sees_scripts_and_network(chromium: str, tmp_path: Path) -> None:
    page_file = tmp_path / "live.html"
    page_file.write_text(
        "<!doctype html><html><head><title>live</title></head><body>"
        "<img src='http://192.0.2.1/pixel.png'>"
        "<script>document.title='ran';console.error('it ran')</script></body></html>"
    )
    page = open_page(chromium, page_file, {"title": "document.title"})
    assert page.values["title"] == "ran"
    assert any("it ran" in p for p in page.problems)
    assert "http://192.0.2.1/pixel.png" in page.requests
