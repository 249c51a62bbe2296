"""Pinned regressions through the pipeline: a column named ``n`` (and other names the report's
own frames use) and timestamps at years 1 and 9999 get a report, not a logged skip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from sluice.pipeline import run_partition
from tests.conftest import SpecFactory

DAY = "2024-01-01"
SCHEMA: dict[str, Any] = {
    "n": "int",
    "count": "string",
    "value": "float",
    "when": {"type": "datetime", "format": "%Y-%m-%d %H:%M:%S"},
}
SUITE: dict[str, Any] = {
    "name": "names",
    "expectations": [
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "value", "min_value": 0, "max_value": 1.79e308},
        }
    ],
}


def test_columns_named_like_the_reports_frames_get_a_report(make_dataset: SpecFactory) -> None:
    rows = ["n,count,value,when"]
    rows += [f"{i},c{i % 3},{i * 1.5},2024-01-01 0{i % 10}:00:00" for i in range(30)]
    rows += ["30,c0,-1e308,0001-01-01 00:00:00", "31,c1,1.7e308,9999-12-31 23:59:59"]
    spec = make_dataset(
        {DAY: "\n".join(rows) + "\n"}, schema=SCHEMA, suite=SUITE, extra={"keys": ["n"]}
    )
    summary = run_partition(str(spec), DAY)
    m: dict[str, Any] = json.loads(Path(summary["manifest"]).read_text(encoding="utf-8"))
    assert "report_error" not in m["findings"]
    assert all(c["kind"] != "report" for c in m["verdict"]["causes"])
    assert m["counts"]["quarantined_by_reason"] == {"value|expect_column_values_to_be_between": 1}
    report = Path(m["outputs"]["report"]["path"]).read_text(encoding="utf-8")
    for name in SCHEMA:
        assert f"<code>{name}</code>" in report or f">{name}<" in report
    metrics = pl.read_parquet(Path(m["outputs"]["metrics"]["path"]))
    when_max = metrics.filter(
        (pl.col("scope") == "column") & (pl.col("name") == "when") & (pl.col("metric") == "max")
    )["value"].item()
    assert when_max == 253402300799.0  # 9999-12-31 23:59:59 UTC, in seconds since 1970
