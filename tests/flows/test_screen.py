from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.runtime import flow_run

from flows import alerts, fanout
from flows.parameters import HOUR_PATTERN, dataset_names
from flows.screen import (
    backfill,
    scheduled_partition,
    screen_partition,
    summary_markdown,
)
from sluice.config import find_spec
from sluice.core.errors import CriticalCheckFailed, InputError, RunFailed
from sluice.pipeline.local import is_transient
from sluice.progress import PARTITION_LOG
from tests.conftest import ROOT, SESSION_DATASETS, SpecFactory

GOOD = "id,amount,count,when,kind\na,1,1,2024-01-01 10:00:00,a\nb,200,2,2024-01-01 11:00:00,c\n"
Emitted = list[tuple[str, dict[str, Any]]]


def _deployments() -> list[dict[str, Any]]:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments: list[dict[str, Any]] = config["deployments"]
    return deployments


def _flow_of(entrypoint: str) -> Any:
    module_path, func = entrypoint.split(":")
    module = importlib.import_module(module_path.removesuffix(".py").replace("/", "."))
    return getattr(module, func)


def test_every_prefect_yaml_entrypoint_imports_and_takes_its_parameters() -> None:
    assert _deployments(), "prefect.yaml declares no deployment"
    for dep in _deployments():
        flow = _flow_of(dep["entrypoint"])
        accepted = set(flow.parameters.properties)
        unknown = set(dep.get("parameters", {})) - accepted
        assert not unknown, f"{dep['name']}: parameters {unknown} are not taken by its flow"
        assert dep["work_pool"]["name"] == "sluice-process", dep["name"]


def test_every_nightly_deployment_screens_a_project_dataset_in_its_own_time_zone() -> None:
    nightly = {d["parameters"]["dataset"]: d for d in _deployments() if "nightly" in d["name"]}
    assert nightly, "prefect.yaml declares no nightly deployment"
    for name, dep in nightly.items():
        assert dep["name"] == f"{name}-nightly"
        assert _flow_of(dep["entrypoint"]).name == "screen-partition"
        (schedule,) = dep["schedules"]
        assert schedule["cron"]
        spec = find_spec(name, ROOT / "datasets").spec
        assert schedule["timezone"] == spec.partition.timezone
        assert dep["work_pool"]["work_queue_name"] == "partitions"


def test_backfill_fans_out_to_a_declared_deployment_on_another_queue() -> None:
    flow_name, dep_name = fanout.SCREEN_DEPLOYMENT.split("/")
    by_name = {d["name"]: d for d in _deployments()}
    assert _flow_of(by_name[dep_name]["entrypoint"]).name == flow_name
    queue = by_name[dep_name]["work_pool"]["work_queue_name"]
    assert by_name["backfill"]["work_pool"]["work_queue_name"] != queue


def test_backfill_parameters_render_as_a_typed_form() -> None:
    props = backfill.parameters.properties
    assert props["dataset"]["enum"] == dataset_names() == list(SESSION_DATASETS)
    for end in ("start", "end"):  # a date picker, or an hour as text
        assert {"type": "string", "format": "date"} in props[end]["anyOf"]
        assert {"type": "string", "pattern": HOUR_PATTERN} in props[end]["anyOf"]
    engine = {k: v for option in props["engine"]["anyOf"] for k, v in option.items() if k != "type"}
    assert engine["enum"] == ["auto", "polars", "gx"]
    assert {"type": "null"} in props["engine"]["anyOf"]  # or null: the spec's validation.engine
    assert props["force"]["type"] == "boolean"
    rate = {k: v for option in props["max_quarantine_rate"]["anyOf"] for k, v in option.items()}
    assert rate["maximum"] == 1  # or null: the spec's policies.alerts.max_quarantine_rate
    assert {"type": "null"} in props["max_quarantine_rate"]["anyOf"]
    assert all(p.get("description") for p in props.values()), "document every parameter"
    assert backfill.parameters.required == ["dataset", "start", "end"]


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        (dt.datetime(2024, 3, 5, 7, 30, tzinfo=dt.UTC), dt.date(2024, 3, 4)),
        # 03:00 UTC is still the evening before in New York
        (dt.datetime(2024, 3, 5, 3, 0, tzinfo=dt.UTC), dt.date(2024, 3, 3)),
    ],
)
def test_scheduled_partition_uses_local_day_less_lag(
    make_dataset: SpecFactory, monkeypatch: pytest.MonkeyPatch, utc: dt.datetime, expected: dt.date
) -> None:
    partition = {"key": "date", "kind": "day", "timezone": "America/New_York", "lag": 1}
    spec = make_dataset({}, extra={"partition": partition})
    monkeypatch.setattr(flow_run, "get_scheduled_start_time", lambda: utc)
    assert scheduled_partition(str(spec)) == expected


def test_only_io_errors_that_may_pass_are_retried() -> None:
    def wrapped(inner: BaseException) -> BaseException:
        try:
            try:
                raise inner
            except OSError:
                raise InputError("cannot read") from None
        except InputError as exc:
            return exc

    assert is_transient(TimeoutError())
    assert is_transient(ConnectionResetError())
    assert is_transient(wrapped(ConnectionResetError()))
    assert not is_transient(wrapped(FileNotFoundError()))
    assert not is_transient(ValueError("bad data"))
    assert not is_transient(None)


@pytest.fixture
def emitted(monkeypatch: pytest.MonkeyPatch) -> Emitted:
    """The events the flows emit, recorded instead of sent."""
    seen: Emitted = []

    def record(event: str, **kwargs: Any) -> None:
        seen.append((event, kwargs))

    monkeypatch.setattr(alerts, "emit_event", record)
    return seen


@pytest.mark.usefixtures("prefect_api")
def test_backfill_skips_done_partitions_and_goes_on_past_a_failure(
    make_dataset: SpecFactory, tmp_path: Path, emitted: Emitted, caplog: pytest.LogCaptureFixture
) -> None:
    spec = str(make_dataset({"2024-01-01": GOOD, "2024-01-03": GOOD}))
    summary: dict[str, Any] = screen_partition(spec, dt.date(2024, 1, 1), max_quarantine_rate=0.6)
    assert summary["counts"]["in"] == 2
    assert summary["counts"]["quarantine"] == 1
    assert summary["conservation"] is True
    assert "skipped" not in summary
    assert summary["status"] == "warned"  # half the rows quarantined: above the 5% warn level
    assert [e for e, _ in emitted] == [alerts.SCREENED, alerts.WARNED]
    assert "policies.quarantine.warn" in emitted[1][1]["payload"]["message"]

    caplog.set_level(logging.INFO, logger=PARTITION_LOG)
    result = backfill(spec, dt.date(2024, 1, 1), dt.date(2024, 1, 3))
    lines = [r for r in caplog.records if r.name == PARTITION_LOG]
    assert [r.getMessage().split(":")[0] for r in lines] == [
        "[1/3] tiny 2024-01-01",
        "[2/3] tiny 2024-01-02",
        "[3/3] tiny 2024-01-03",
    ]
    assert [r.levelname for r in lines] == ["INFO", "ERROR", "INFO"]
    assert "FAILED: " in lines[1].getMessage()
    assert "2 rows in, 1 clean, 1 quarantined" in lines[2].getMessage()
    assert len({getattr(r, "flow_run_id", None) for r in lines} - {None}) == 1  # the run's logs
    api = logging.getLogger("prefect.flow_runs").handlers
    assert PARTITION_LOG.startswith("prefect.flow_runs.")
    assert any(type(h).__name__ == "APILogHandler" for h in api)
    assert [s["partition"] for s in result["screened"]] == ["2024-01-03"]
    assert [s["partition"] for s in result["skipped"]] == ["2024-01-01"]
    assert "same inputs, suite and spec" in result["skipped"][0]["skipped"]
    assert result["skipped"][0]["counts"] == summary["counts"]
    assert [f["partition"] for f in result["failed"]] == ["2024-01-02"]
    assert "no source files" in result["failed"][0]["error"]
    # 2024-01-03 quarantined 1 row of 2, above the default 5%
    assert (alerts.QUARANTINE_RATE_HIGH, "sluice.partition.tiny.2024-01-03") in {
        (e, kw["resource"]["prefect.resource.id"]) for e, kw in emitted
    }
    table = summary_markdown(result)
    assert "1 screened, 1 skipped, 1 failed" in table
    rows = [line.split("|")[1:3] for line in table.splitlines() if line.startswith("| 2024")]
    assert [[c.strip() for c in r] for r in rows] == [
        ["2024-01-01", "skipped (warned)"],
        ["2024-01-02", "failed"],
        ["2024-01-03", "screened (warned)"],
    ]

    manifest = Path(summary["manifest"])
    before = manifest.read_bytes()
    forced = backfill(spec, dt.date(2024, 1, 1), dt.date(2024, 1, 1), force=True)
    assert [s["partition"] for s in forced["screened"]] == ["2024-01-01"]
    assert forced["skipped"] == []
    assert manifest.read_bytes() != before  # a new run id and times: it was screened again

    (tmp_path / "raw" / "date=2024-01-01" / "data.csv").write_text(GOOD + "c,3,3,,a\n")
    again: dict[str, Any] = screen_partition(spec, dt.date(2024, 1, 1))
    assert "skipped" not in again
    assert again["counts"]["in"] == 3


@pytest.mark.usefixtures("prefect_api")
def test_critical_failure_alerts_and_fails_the_flow_after_writing(
    make_dataset: SpecFactory, tmp_path: Path, emitted: Emitted
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
    names = [e for e, _ in emitted]
    assert names == [alerts.SCREENED, alerts.FAILED]
    payload = emitted[1][1]["payload"]
    assert payload["critical"]
    assert "critical checks failed" in payload["message"]

    emitted.clear()
    with pytest.raises(CriticalCheckFailed):  # a failed partition is never "done"
        screen_partition(spec, dt.date(2024, 1, 1))
    assert [e for e, _ in emitted] == [alerts.SCREENED, alerts.FAILED]


@pytest.mark.usefixtures("prefect_api")
def test_the_verdict_sets_the_flow_state_warned_completed_or_failed_with_its_summary(
    make_dataset: SpecFactory, emitted: Emitted
) -> None:
    spec = str(make_dataset({"2024-01-01": GOOD}))
    state = screen_partition(spec, dt.date(2024, 1, 1), return_state=True)
    assert state.is_completed()
    assert state.name == "Warned"
    assert state.message is not None
    assert "policies.quarantine.warn" in state.message
    summary: dict[str, Any] = state.result()
    assert summary["status"] == "warned"
    assert {c["level"] for c in summary["causes"]} == {"warn"}

    strict = {"quarantine": {"warn": 0.0, "error": 0.25}}
    spec = str(make_dataset({"2024-01-01": GOOD}, extra={"policies": strict}))
    emitted.clear()
    with pytest.raises(RunFailed, match=r"policies\.quarantine\.error") as failed:
        screen_partition(spec, dt.date(2024, 1, 1), force=True)
    assert failed.value.summary is not None
    assert failed.value.summary["status"] == "failed"
    assert [e for e, _ in emitted] == [alerts.SCREENED, alerts.FAILED]
    assert "policies.quarantine.error" in emitted[1][1]["payload"]["message"]
    manifest = json.loads(Path(failed.value.summary["manifest"]).read_text())
    assert manifest["status"] == "failed"
    assert manifest["verdict"]["policies"]["quarantine"] == strict["quarantine"]


@pytest.mark.usefixtures("prefect_api")
def test_the_alert_threshold_comes_from_the_spec_and_the_flow_parameter_overrides_it(
    make_dataset: SpecFactory, emitted: Emitted
) -> None:
    lenient = {
        "quarantine": {"warn": None, "error": None},
        "stages": {"validate": {"warn": None, "error": None}},
        "alerts": {"max_quarantine_rate": 0.6},
    }
    spec = str(make_dataset({"2024-01-01": GOOD}, extra={"policies": lenient}))
    summary: dict[str, Any] = screen_partition(spec, dt.date(2024, 1, 1))
    assert summary["status"] == "passed"
    assert [e for e, _ in emitted] == [alerts.SCREENED]  # 50% is below the spec's 60%
    emitted.clear()
    screen_partition(spec, dt.date(2024, 1, 1), force=True, max_quarantine_rate=0.4)
    assert [e for e, _ in emitted] == [alerts.SCREENED, alerts.QUARANTINE_RATE_HIGH]


@pytest.mark.usefixtures("prefect_api")
def test_the_spec_engine_is_used_unless_the_flow_names_one(make_dataset: SpecFactory) -> None:
    spec = str(make_dataset({"2024-01-01": GOOD}, extra={"validation": {"engine": "gx"}}))
    summary = screen_partition(spec, dt.date(2024, 1, 1))
    manifest = json.loads(Path(summary["manifest"]).read_text())
    assert manifest["validation"]["engine"] == "gx"
    summary = screen_partition(spec, dt.date(2024, 1, 1), "polars", force=True)
    manifest = json.loads(Path(summary["manifest"]).read_text())
    assert manifest["validation"]["engine"] == "polars"
