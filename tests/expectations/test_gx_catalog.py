from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from expectations import gx_catalog
from expectations.suite import check_names, load_suite
from sluice.core.errors import ConfigError
from tests.conftest import ROOT, tiny_suite

PROBE = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "great_expectations":
            raise ModuleNotFoundError("blocked", name=name)
sys.meta_path.insert(0, Block())
from expectations.suite import check_names, load_suite
from sluice.core.errors import ConfigError
for check in (check_names, load_suite):
    try:
        check(sys.argv[1])
    except ConfigError as exc:
        print(exc)
"""


def test_the_catalog_is_that_of_the_installed_gx() -> None:
    current = gx_catalog.text(gx_catalog.build())
    assert gx_catalog.CATALOG.read_text(encoding="utf-8") == current, (
        f"{gx_catalog.CATALOG.name} is out of date: run `{gx_catalog.COMMAND}` and commit it"
    )
    assert gx_catalog.arguments() is not None


@pytest.mark.parametrize(
    ("where", "typo", "expected"),
    [
        ("type", "expect_column_values_to_not_be_nul", "'expect_column_values_to_not_be_null'"),
        ("kwargs", "colum", "(did you mean 'column'?)"),
    ],
)
def test_a_misspelt_type_or_argument_is_answered_without_gx(
    tmp_path: Path, where: str, typo: str, expected: str
) -> None:
    suite = tiny_suite()
    entry = suite["expectations"][1]
    if where == "type":
        entry["type"] = typo
    else:
        entry["kwargs"] = {typo: "amount"}
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(suite, indent=1))
    with pytest.raises(ConfigError) as with_gx:
        load_suite(path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.splitlines() == [str(with_gx.value)] * 2  # check_names, then load_suite
    assert expected in out.stdout
    assert f"{path}:" in out.stdout


def test_check_names_passes_a_valid_suite(tmp_path: Path) -> None:
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(tiny_suite()))
    check_names(path)


def test_a_catalog_of_another_gx_version_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stale = tmp_path / "gx_catalog.json"
    stale.write_text(json.dumps({"great_expectations": "0.0.1", "types": {}}))
    monkeypatch.setattr(gx_catalog, "CATALOG", stale)
    gx_catalog.arguments.cache_clear()
    try:
        assert gx_catalog.arguments() is None
        path = tmp_path / "suite.json"
        path.write_text(json.dumps(tiny_suite()))
        assert len(load_suite(path).entries) == len(tiny_suite()["expectations"])
    finally:
        gx_catalog.arguments.cache_clear()
