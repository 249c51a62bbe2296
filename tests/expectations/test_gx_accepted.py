"""The suite loader remembers what GX accepted, so a later load needs no GX."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from expectations import gx_accepted
from expectations.suite import load_suite
from sluice.core.errors import ConfigError
from tests.conftest import ROOT, tiny_suite

LOAD_WITHOUT_GX = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("great_expectations", "pandas"):
            raise ModuleNotFoundError("blocked", name=name)
sys.meta_path.insert(0, Block())
from expectations.suite import load_suite
from sluice.core.errors import ConfigError
try:
    print(len(load_suite(sys.argv[1]).entries))
except ConfigError as exc:
    print(exc)
"""


def _load_without_gx(path: Path, cache: Path) -> str:
    env = {**os.environ, "SLUICE_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", LOAD_WITHOUT_GX, str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return out.stdout.strip() + out.stderr.strip()


def test_a_second_load_needs_no_gx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("SLUICE_CACHE_DIR", str(cache))
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(tiny_suite()))
    assert "blocked" in _load_without_gx(path, cache)  # nothing remembered yet: GX is needed
    suite = load_suite(path)
    remembered = list((cache / "gx-accepted").glob("*/*"))
    assert len(remembered) == len(suite.entries)
    assert _load_without_gx(path, cache) == str(len(suite.entries))


def test_a_refused_value_is_never_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("SLUICE_CACHE_DIR", str(cache))
    suite = tiny_suite()
    suite["expectations"][2]["kwargs"]["mostly"] = 7
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(suite))
    for _ in range(2):
        with pytest.raises(ConfigError, match="mostly"):
            load_suite(path)
    bad = suite["expectations"][2]
    assert not gx_accepted.accepted(bad["type"], bad["kwargs"])
    good = suite["expectations"][1]
    assert gx_accepted.accepted(good["type"], good["kwargs"])
    assert not gx_accepted.accepted(good["type"], {**good["kwargs"], "mostly": 0.5})


def test_the_cache_can_be_switched_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_CACHE_DIR", "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(tiny_suite()))
    load_suite(path)
    assert gx_accepted.cache_dir() is None
    assert not list(tmp_path.rglob("gx-accepted"))
