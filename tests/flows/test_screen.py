from __future__ import annotations

import datetime as dt
import importlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.runtime import flow_run

from flows.screen import backfill, scheduled_partition, screen_partition
from sluice.errors import CriticalCheckFailed
from tests.conftest import ROOT, SpecFactory

GOOD = "id,amount,count,when,kind\na,1,1,2024-01-01 10:00:00,a\nb,200,2,2024-01-01 11:00:00,c\n"


def test_every_prefect_yaml_entrypoint_imports_and_takes_its_parameters() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert config["deployments"], "prefect.yaml declares no deployment"
    for dep in config["deployments"]:
        module_path, func = dep["entrypoint"].split(":")
        module = importlib.import_module(module_path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, func)
        accepted = set(flow.parameters.properties)
        unknown = set(dep.get("parameters", {})) - accepted
        assert not unknown, f"{dep['name']}: parameters {unknown} are not taken by {func}"


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        (dt.datetime(2024, 3, 5, 7, 30, tzinfo=dt.UTC), dt.date(2024, 3, 4)),
        # 03:00 UTC is still the evening before in New York
        (dt.datetime(2024, 3, 5, 3, 0, tzinfo=dt.UTC), dt.date(2024, 3, 3)),
    ],
)
def test_scheduled_partition_uses_local_day_less_lag(
    monkeypatch: pytest.MonkeyPatch, utc: dt.datetime, expected: dt.date
) -> None:
    monkeypatch.setattr(flow_run, "get_scheduled_start_time", lambda: utc)
    assert scheduled_partition("trips") == expected


@pytest.mark.usefixtures("prefect_api")
def test_screen_partition_flow_and_backfill_with_a_missing_partition(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    spec = str(make_dataset({"2024-01-01": GOOD, "2024-01-03": GOOD}))
    summary: dict[str, Any] = screen_partition(spec, dt.date(2024, 1, 1))
    assert summary["counts"]["in"] == 2
    assert summary["counts"]["quarantine"] == 1
    assert summary["conservation"] is True
    assert Path(summary["manifest"]).exists()

    result = backfill(spec, dt.date(2024, 1, 1), dt.date(2024, 1, 3))
    assert [s["partition"] for s in result["screened"]] == ["2024-01-01", "2024-01-03"]
    assert [f["partition"] for f in result["failed"]] == ["2024-01-02"]
    assert "no source files" in result["failed"][0]["error"]


@pytest.mark.usefixtures("prefect_api")
def test_critical_failure_fails_the_flow_after_writing(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    suite = {
        "name": "crit",
        "expectations": [
            {
                "type": "expect_table_row_count_to_be_between",
                "kwargs": {"min_value": 10},
                "meta": {"severity": "critical"},
            }
        ],
    }
    spec = str(make_dataset({"2024-01-01": GOOD}, suite=suite))
    with pytest.raises(CriticalCheckFailed, match="critical checks failed"):
        screen_partition(spec, dt.date(2024, 1, 1))
    q = tmp_path / "out" / "quarantine" / "date=2024-01-01" / "part-00000.parquet"
    assert q.exists()
