"""The report's templates: no script whatever the data holds, the same CSP, the same bytes.

Hostile strings go everywhere a run can carry text into the report (dataset, column and rule
names, values, reasons, causes, notes, detector names, paths) and the page must still hold no
``<script>``, no event-handler attribute and no ``javascript:`` URL, and show template syntax in
the data as text.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html as htmllib
import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import polars as pl
import pytest

from sluice.pipeline import run_partition
from sluice.report import html
from sluice.report.anomalies import Finding
from sluice.report.build import Report, compose
from sluice.report.drift import DriftResult
from sluice.report.metrics import Categories
from sluice.report.segments import SegmentBias
from tests.conftest import ROOT, SpecFactory
from tests.sluice.report.test_hostile_frames import outputs_of

SCRIPT = "<script>alert(1)</script>"
ATTR = '" onmouseover="x'
QUOTE = "' onfocus='x"
JS = "javascript:alert(1)"
TEMPLATE = "{{ 7*7 }}"
OTHERS = ["<img src=x onerror=alert(1)>", "</style><script>x()</script>", "{% raw %}{#", "a&b"]
HOSTILE = [SCRIPT, ATTR, QUOTE, JS, TEMPLATE, *OTHERS]
EXPECTED_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
URL_ATTRS = {"href", "src", "xlink:href", "action", "formaction", "data"}


class Page(HTMLParser):
    """Every start tag with its attributes, and the CSP meta."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Keep the tag and its attributes as the browser would read them."""
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """A self-closed tag counts as a start tag."""
        self.tags.append((tag, attrs))


def parse(text: str) -> Page:
    """The page as a parser reads it."""
    page = Page()
    page.feed(text)
    page.close()
    return page


def assert_no_script(text: str) -> None:
    """No script element, no on* attribute, no javascript: URL, only in-page links."""
    page = parse(text)
    assert "<script" not in text.lower()
    for tag, attrs in page.tags:
        assert tag not in {"script", "iframe", "object", "embed", "base", "form"}, tag
        for name, value in attrs:
            assert not name.lower().startswith("on"), (tag, name, value)
            v = (value or "").strip().lower()
            assert "javascript:" not in v or name not in URL_ATTRS, (tag, name, value)
            if name in URL_ATTRS:
                assert v.startswith("#"), (tag, name, value)


def hostile_report(root: Path) -> Report:
    """A report whose every text field from the data carries a hostile string."""
    names = [*HOSTILE, "plain"]
    frame = pl.DataFrame(
        [pl.Series(n, [HOSTILE[i % len(HOSTILE)] for i in range(8)]) for n in names]
    )
    sides = ["q", "", "q", "", "", "q", "", ""]
    outputs = outputs_of(frame, sides, f"{SCRIPT}{ATTR}")
    m: dict[str, Any] = outputs.manifest
    m["dataset"] = f"ds{SCRIPT}{TEMPLATE}"
    m["run_id"] = ATTR
    m["finished_at"] = JS
    m["critical"] = [SCRIPT]
    m["verdict"] = {
        "status": "failed",
        "causes": [
            {"level": "error", "message": f"cause {SCRIPT} {ATTR} {TEMPLATE}"},
            {"level": QUOTE, "message": JS},
        ],
    }
    m["validation"] = {
        "engine": SCRIPT,
        "verdicts": [
            {
                "index": 0,
                "type": f"expect_{SCRIPT}",
                "reason": f"{ATTR}|{SCRIPT}",
                "severity": QUOTE,
                "success": False,
                "observed_value": {"x": SCRIPT, "y": TEMPLATE},
                "unexpected_count": 3,
                "note": TEMPLATE,
            },
            {"index": 1, "type": JS, "reason": "_table|x", "exception": f"{SCRIPT}\nsecond"},
        ],
        "keys": {"columns": [SCRIPT, ATTR], "duplicates": QUOTE, "enforced_by": "keys check"},
    }
    m["detectors"] = [{"name": SCRIPT, "detector": ATTR, "params": {"members": [JS, TEMPLATE]}}]
    m["screen"] = {"skipped": f"skipped {SCRIPT}"}
    m["inputs"] = [{"path": f"/data/{SCRIPT}.csv", "rows": 8, "sha256": ATTR}]
    m["suite"] = {"name": TEMPLATE, "path": JS}
    m["versions"] = {SCRIPT: ATTR, "sluice": TEMPLATE}
    report = compose(outputs, reports_root=root / "reports", clean_root=root / "clean")
    alarm = Finding(
        "column", SCRIPT, "null_rate", "rate", 0.5, "alarm", f"ref {ATTR} {TEMPLATE}", 3,
        0.0, 0.0, 0.01, (JS,),
    )  # fmt: skip
    drift = DriftResult(
        ATTR, "categorical", "chi2", 0.9, 1e-9, None, 8, 80, [JS, SCRIPT], True,
        note=TEMPLATE, span=SCRIPT,
        distribution=Categories([SCRIPT, ATTR], pl.Series([3.0, 1.0]).to_numpy(),
                                pl.Series([1.0, 3.0]).to_numpy()),
    )  # fmt: skip
    segment = SegmentBias(SCRIPT, "error", ATTR, TEMPLATE, 40, 30, 0.75, 0.05, 15.0, 1e-20)
    return dataclasses.replace(
        report,
        findings=[*report.findings, alarm],
        drift=[*report.drift, drift],
        segments=[segment],
    )


@pytest.fixture(scope="module")
def hostile_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The hostile report, rendered once."""
    return html.render(hostile_report(tmp_path_factory.mktemp("hostile")))


def test_hostile_text_everywhere_runs_no_script(hostile_html: str) -> None:
    assert_no_script(hostile_html)
    text = htmllib.unescape(hostile_html)
    for s in HOSTILE:
        assert s in text, f"{s!r} is not shown as text"
    assert TEMPLATE in hostile_html, "template syntax in the data must appear literally"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hostile_html
    assert "&#34; onmouseover=&#34;x" in hostile_html
    # the sections that carry the planted findings were drawn
    for anchor in ('id="attention"', 'id="segments-table"', 'id="drift-table"', "<svg"):
        assert anchor in hostile_html


def test_the_content_security_policy_is_pinned(hostile_html: str) -> None:
    metas = [dict(a) for t, a in parse(hostile_html).tags if t == "meta"]
    csp = [a["content"] for a in metas if a.get("http-equiv") == "Content-Security-Policy"]
    assert csp == [EXPECTED_CSP]
    assert html.CSP == EXPECTED_CSP
    head = hostile_html.split("</head>", 1)[0]
    assert head.index("Content-Security-Policy") < head.index("<title>")


def test_rendering_twice_gives_the_same_bytes(tmp_path: Path, hostile_html: str) -> None:
    again = html.render(hostile_report(tmp_path))
    assert again.encode() == hostile_html.encode()


SUBPROCESS = """
import hashlib, sys
from pathlib import Path
from sluice.report.html import render
from tests.sluice.report.test_templates import hostile_report
print(hashlib.sha256(render(hostile_report(Path(sys.argv[1]))).encode()).hexdigest())
"""


def test_two_processes_with_different_hash_seeds_give_the_same_bytes(
    tmp_path: Path, hostile_html: str
) -> None:
    digests = set()
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-c", SUBPROCESS, str(tmp_path / seed)],
            env=env, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        digests.add(done.stdout.strip())
    assert digests == {hashlib.sha256(hostile_html.encode()).hexdigest()}


def _digest_in(tmp: Path, out: Path) -> str:
    """The hostile report's digest, rendered in a fresh process whose temporary folder is
    ``tmp`` (where the compiled templates are cached)."""
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", SUBPROCESS, str(out)],
        env=env, capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_compiled_templates_are_cached_and_a_bad_cache_is_passed_over(
    tmp_path: Path, hostile_html: str
) -> None:
    want = hashlib.sha256(hostile_html.encode()).hexdigest()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    assert _digest_in(tmp, tmp_path / "a") == want  # compiles and writes the cache
    (folder,) = tmp.iterdir()
    entries = sorted(folder.iterdir())
    assert folder.stat().st_mode & 0o777 == 0o700
    assert len(entries) >= 3  # report, base and macros
    stamps = [e.stat().st_mtime_ns for e in entries]
    assert _digest_in(tmp, tmp_path / "b") == want  # read from the cache
    assert [e.stat().st_mtime_ns for e in sorted(folder.iterdir())] == stamps
    for e in entries:  # unreadable entries: compiled afresh, same page
        e.write_bytes(b"not a cache entry")
    assert _digest_in(tmp, tmp_path / "c") == want
    shutil.rmtree(folder)
    folder.write_text("a file where the cache folder goes")  # refused by jinja2: no cache
    assert _digest_in(tmp, tmp_path / "d") == want
    assert folder.read_text() == "a file where the cache folder goes"


def test_templates_are_package_data() -> None:
    folder = resources.files("sluice.report") / "templates"
    names = {p.name for p in folder.iterdir()}
    assert {"base.html.j2", "report.html.j2", "macros.html.j2", "report.css"} <= names
    env = html.environment()
    assert isinstance(env.loader, jinja2.PackageLoader)
    assert env.undefined is jinja2.StrictUndefined
    assert env.autoescape is True


def test_only_literals_are_marked_safe() -> None:
    """``|safe`` switches escaping off: the templates use it on their own literals only."""
    folder = resources.files("sluice.report") / "templates"
    for t in folder.iterdir():
        text = t.read_text(encoding="utf-8")
        for m in re.finditer(r"\|\s*safe\b", text):
            before = text[: m.start()].rstrip()
            assert before.endswith(("'", '"')), f"{t.name}: |safe on a value: {before[-60:]}"
        assert "autoescape false" not in text


def test_an_undefined_variable_is_an_error_not_an_empty_report() -> None:
    env = html.environment()
    template = env.from_string("{{ verdict.missing }}")
    with pytest.raises(jinja2.UndefinedError):
        template.render(verdict={})


def test_every_inline_if_has_an_else() -> None:
    """Jinja renders ``{{ a if b }}`` with a false ``b`` as empty even under StrictUndefined."""
    folder = resources.files("sluice.report") / "templates"
    for t in folder.iterdir():
        for expr in re.findall(r"{{(.*?)}}", t.read_text(encoding="utf-8"), re.S):
            if re.search(r"\bif\b", expr):
                assert re.search(r"\belse\b", expr), f"{t.name}: {{{{{expr}}}}} has no else"


def _breaking(source: str) -> jinja2.Environment:
    """The report's environment with ``report.html.j2`` replaced by ``source``."""
    real = html.environment()
    assert real.loader is not None
    loader = jinja2.ChoiceLoader([jinja2.DictLoader({"report.html.j2": source}), real.loader])
    return real.overlay(loader=loader)


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ('{% extends "base.html.j2" %}{% block main %}{{ nothing.here }}{% endblock %}',
         "UndefinedError"),
        ('{% extends "base.html.j2" %}{% block main %}{% if %}{% endblock %}',
         "TemplateSyntaxError"),
    ],
)  # fmt: skip
def test_a_broken_template_fails_the_report_and_warns_the_run(
    make_dataset: SpecFactory, monkeypatch: pytest.MonkeyPatch, source: str, error: str
) -> None:
    spec = make_dataset({"2024-01-01": "id,amount,count,when,kind\na,1,1,2024-01-01 10:00:00,a\n"})
    broken = _breaking(source)
    monkeypatch.setattr(html, "environment", lambda: broken)
    summary = run_partition(str(spec), "2024-01-01")
    assert summary["status"] == "warned"
    (cause,) = summary["causes"]
    assert cause["message"].startswith(f"report.html could not be built: {error}")
    manifest = json.loads(Path(summary["manifest"]).read_text(encoding="utf-8"))
    assert "report" not in manifest["outputs"]
    assert not (Path(summary["manifest"]).parent / "report.html").exists()
    assert manifest["findings"]["report_error"].startswith(error)


CSV = (
    "id,amount,count,when,kind\n"
    f'"{SCRIPT}",1.5,1,2024-01-01 10:00:00,"{TEMPLATE}"\n'
    f'"{ATTR}",abc,2,2024-01-01 11:00:00,"{JS}"\n'
    'c,500,3,2024-01-01 12:00:00,"<img src=x onerror=alert(1)>"\n'
    "d,2,4,2024-01-01 13:00:00,a\n"
)


def _sluice(*args: str, seed: str) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("sluice"))
    env = {**os.environ, "PYTHONHASHSEED": seed}
    return subprocess.run(
        [exe, *args], check=False, capture_output=True, text=True, timeout=300, env=env
    )


def test_sluice_report_rebuilds_a_hostile_run_byte_for_byte(make_dataset: SpecFactory) -> None:
    """``sluice report`` in fresh processes (other hash seeds) rebuilds the recorded bytes."""
    spec = make_dataset({"2024-01-01": CSV})
    summary = run_partition(str(spec), "2024-01-01")
    manifest = json.loads(Path(summary["manifest"]).read_text(encoding="utf-8"))
    path = Path(manifest["outputs"]["report"]["path"])
    recorded = path.read_bytes()
    text = recorded.decode("utf-8")
    assert_no_script(text)
    assert TEMPLATE in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    for seed in ("1", "31337"):
        path.unlink()
        done = _sluice("report", str(spec), "--partition", "2024-01-01", seed=seed)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        assert path.read_bytes() == recorded
        assert hashlib.sha256(recorded).hexdigest() == manifest["outputs"]["report"]["sha256"]
