"""Honest verdicts through the real ``sluice run``: failed, warned and key duplicates.

Each run is the installed command in a subprocess against the session's Prefect API.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tests.conftest import SpecFactory

pytestmark = pytest.mark.e2e
DAY = "2024-01-01"


@pytest.fixture(scope="module")
def cli_env(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for subprocesses: the session's Prefect API, quiet logs."""
    import prefect.settings

    return {
        **os.environ,
        "PREFECT_API_URL": str(prefect.settings.PREFECT_API_URL.value()),
        "PREFECT_HOME": str(tmp_path_factory.mktemp("cli-prefect-home")),
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }


def sluice(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``sluice`` command."""
    exe = str(Path(sys.executable).with_name("sluice"))
    return subprocess.run(
        [exe, *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def manifest_of(spec: Path) -> dict[str, Any]:
    path = spec.parent / "out" / "reports" / f"date={DAY}" / "manifest.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


class Tables(HTMLParser):
    """The cells of every ``<table id=...>`` of a page, row by row, as text."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.verdict_class = ""
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "div" and a.get("id") == "verdict":
            self.verdict_class = a.get("class") or ""
        table = a.get("id") if tag == "table" else None
        if table:
            self._table = table
            self.tables[table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._table and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def report_of(manifest: dict[str, Any]) -> Tables:
    page = Tables()
    page.feed(Path(manifest["outputs"]["report"]["path"]).read_text(encoding="utf-8"))
    return page


def test_a_partition_none_of_whose_timestamps_parse_fails_naming_the_column_and_a_format(
    make_dataset: SpecFactory, cli_env: dict[str, str]
) -> None:
    start = dt.datetime(2024, 1, 13, 8, 0)
    lines = ["id,amount,count,when,kind"]
    for i in range(200):
        when = (start + dt.timedelta(hours=7 * i)).strftime("%d/%m/%Y %H:%M")
        lines.append(f"r{i},{i % 90},{i},{when},a")
    spec = make_dataset({DAY: "\n".join(lines) + "\n"})

    got = sluice(cli_env, "run", str(spec), "--partition", DAY)
    assert got.returncode == 1, got.stdout + got.stderr
    assert "Traceback" not in got.stderr
    head = got.stdout.splitlines()[0]
    assert head == f"tiny {DAY}: FAILED: 200 rows in, 0 clean, 200 quarantined"
    assert "  error: when|type: 200 of 200 rows (100.0%) did not parse" in got.stdout
    assert "declared datetime with format '%Y-%m-%d %H:%M:%S'" in got.stdout
    assert "format '%d/%m/%Y %H:%M' parses 200 of 200 sampled values" in got.stdout

    m = manifest_of(spec)
    assert m["status"] == "failed"
    assert m["critical"] == []
    kinds = {(c["kind"], c["name"], c["level"]) for c in m["verdict"]["causes"]}
    assert ("rule", "when|type", "error") in kinds
    assert ("stage", "ingest", "error") in kinds
    page = report_of(m)
    assert page.verdict_class == "verdict failed"
    text = Path(m["outputs"]["report"]["path"]).read_text(encoding="utf-8")
    assert "Nothing unusual" not in text
    assert "format '%d/%m/%Y %H:%M' parses 200 of 200" in html.unescape(text)

    again = sluice(cli_env, "run", str(spec), "--partition", DAY)
    assert again.returncode == 1  # a failed partition is never done: it fails again


def test_a_check_that_cannot_run_warns_loudly_and_has_its_row_in_the_report(
    make_dataset: SpecFactory, cli_env: dict[str, str]
) -> None:
    suite = {
        "name": "cannot-run",
        "expectations": [
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "kind", "min_value": 0, "max_value": 9},
            },
            {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}},
        ],
    }
    data = "id,amount,count,when,kind\na,1,1,2024-01-01 10:00:00,a\nb,2,2,2024-01-01 11:00:00,b\n"
    spec = make_dataset({DAY: data}, suite=suite)

    got = sluice(cli_env, "run", str(spec), "--partition", DAY)
    assert got.returncode == 0, got.stdout + got.stderr
    assert got.stdout.startswith(f"tiny {DAY}: WARNED: 2 rows in, 2 clean, 0 quarantined")
    (line,) = [x for x in got.stdout.splitlines() if x.startswith("  warning:")]
    assert line.startswith(
        "  warning: kind|expect_column_values_to_be_between: expectation 0 could not run: "
    )
    assert "(policies.could_not_run: warn)" in line

    m = manifest_of(spec)
    assert m["status"] == "warned"
    states = [v["state"] for v in m["validation"]["verdicts"]]
    assert states == ["could_not_run", "passed", "passed"]
    assert "same type" in m["validation"]["verdicts"][0]["why"]

    rows = report_of(m).tables["expectations-table"]
    assert rows[0][:5] == ["#", "expectation", "column", "severity", "verdict"]
    by_index = {r[0]: r for r in rows[1:]}
    assert by_index["0"][1:5] == ["expect_column_values_to_be_between", "kind", "error",
                                  "could not run"]  # fmt: skip
    assert "same type" in by_index["0"][8]
    assert by_index["1"][1:5] == ["expect_table_row_count_to_be_between", "(table)", "error",
                                  "passed"]  # fmt: skip
    assert by_index["1"][5] == "2"  # the observed row count
    assert by_index["2"][4] == "passed"
    assert report_of(m).verdict_class == "verdict warned"

    strict = sluice(cli_env, "run", str(spec), "--partition", DAY, "--fail-on", "warned")
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert "skipped (warned)" in strict.stdout  # done already; the verdict still decides


def test_a_detector_with_too_few_rows_to_fit_on_warns_and_is_not_passed_silently(
    make_dataset: SpecFactory, cli_env: dict[str, str]
) -> None:
    rows = "".join(f"r{i},{i}.5,{i},2024-01-01 10:00:00,a\n" for i in range(6))
    detector = {"name": "knn", "features": ["amount", "count"], "severity": "error"}
    spec = make_dataset({DAY: "id,amount,count,when,kind\n" + rows}, detectors=[detector])

    got = sluice(cli_env, "run", str(spec), "--partition", DAY)
    assert got.returncode == 0, got.stdout + got.stderr
    assert got.stdout.startswith(f"tiny {DAY}: WARNED: 6 rows in, 6 clean, 0 quarantined")
    (line,) = [x for x in got.stdout.splitlines() if x.startswith("  warning:")]
    assert line == (
        "  warning: outlier|knn: detector 'knn' did not run (6 batch rows to fit on; knn needs "
        "10); the 6 rows that passed validation were not screened by it "
        "(policies.could_not_run: warn)"
    )
    m = manifest_of(spec)
    assert m["status"] == "warned"
    assert [d["skipped"] for d in m["detectors"]] == [True]
    assert report_of(m).verdict_class == "verdict warned"

    text = spec.read_text() + "policies:\n  could_not_run: error\n"
    spec.write_text(text)
    strict = sluice(cli_env, "run", str(spec), "--partition", DAY)
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert strict.stdout.startswith(f"tiny {DAY}: FAILED: 6 rows in")


def test_rows_that_share_a_key_are_quarantined_with_a_traceable_duplicate_of(
    make_dataset: SpecFactory, cli_env: dict[str, str]
) -> None:
    suite = {
        "name": "no-uniqueness",
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}}
        ],
    }
    first = "id,amount,count,when,kind\n" + "".join(
        f"k{i},{i},{i},2024-01-01 10:00:00,a\n" for i in range(40)
    )
    spec = make_dataset({DAY: first}, suite=suite, extra={"keys": ["id", "kind"]})
    later = spec.parent / "raw" / f"date={DAY}" / "later.csv"
    later.write_text("id,amount,count,when,kind\nk3,7,7,2024-01-01 12:00:00,a\nk3,8,8,x,b\n")

    got = sluice(cli_env, "run", str(spec), "--partition", DAY)
    assert got.returncode == 0, got.stdout + got.stderr
    assert "1  id,kind|key_duplicate" in got.stdout

    m = manifest_of(spec)
    assert m["validation"]["keys"]["enforced_by"] == "keys check"
    q = pl.read_parquet(m["outputs"]["quarantine"]["path"])
    dup = q.filter(pl.col("_reasons").list.contains("id,kind|key_duplicate"))
    assert dup["_source_file"].to_list() == [str(later)]
    assert dup["_source_row"].to_list() == [0]
    (failure,) = dup["_failures"][0]
    details = json.loads(failure["details"])
    clean = pl.read_parquet(m["outputs"]["clean"]["path"])
    first_id = clean.filter(pl.col("id") == "k3")["_row_id"].to_list()
    assert first_id == [details["duplicate_of"]]
    assert details["duplicate_of_file"].endswith("data.csv")
    assert details["duplicate_of_row"] == 3


@pytest.mark.slow  # backfill exit codes: test_cli's --json backfill test stays quick
def test_a_backfill_counts_warned_partitions_and_fail_on_warned_makes_them_exit_1(
    make_dataset: SpecFactory, cli_env: dict[str, str]
) -> None:
    header = "id,amount,count,when,kind\n"
    clean = header + "".join(f"r{i},1,{i},2024-01-01 10:00:00,a\n" for i in range(30))
    bad = "b1,500,1,2024-01-02 10:00:00,a\nb2,-1,2,2024-01-02 11:00:00,a\n"
    spec = make_dataset({DAY: clean, "2024-01-02": clean + bad})  # 2 of 32 rows: above 5%
    args = ("backfill", str(spec), "--start", DAY, "--end", "2024-01-02")

    got = sluice(cli_env, *args)
    assert got.returncode == 0, got.stdout + got.stderr
    assert f"tiny {DAY}: passed: 30 rows in, 30 clean, 0 quarantined" in got.stdout
    assert "tiny 2024-01-02: WARNED: 32 rows in, 30 clean, 2 quarantined" in got.stdout
    assert "backfill: 2 screened, 0 skipped, 0 failed (1 warned)" in got.stdout

    strict = sluice(cli_env, *args, "--fail-on", "warned")
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert "backfill: 0 screened, 2 skipped, 0 failed (1 warned)" in strict.stdout
