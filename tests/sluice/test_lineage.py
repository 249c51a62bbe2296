"""OpenLineage events, received on a 127.0.0.1 HTTP server (tests/openlineage.py) and checked
against the client's models of the spec."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sluice.pipeline import run_partition
from tests.conftest import ROOT, SpecFactory
from tests.openlineage import Received, check_event, receiver, schema_models
from tests.test_e2e import sluice


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[Received]:
    """An OpenLineage endpoint on 127.0.0.1; yields what it received."""
    with receiver(monkeypatch) as got:
        yield got


CSV = (
    "id,amount,count,when,kind\n"
    "a,1,1,2024-01-01 10:00:00,a\n"
    "b,200,2,2024-01-01 11:00:00,a\n"
    "c,,3,2024-01-01 12:00:00,b\n"
)


_SHARE = {"warn": 0.05, "error": 0.9}
LENIENT = {
    "policies": {
        "quarantine": _SHARE,
        "per_rule": _SHARE,
        "stages": {"ingest": _SHARE, "validate": _SHARE, "screen": _SHARE},
    }
}
"""Policies under which the tiny run is warned, not failed (2 of 3 rows quarantined)."""


def test_a_run_emits_start_and_complete_with_quality_facets(
    endpoint: list[tuple[str, dict[str, Any]]], make_dataset: SpecFactory
) -> None:
    spec = str(make_dataset({"2024-01-01": CSV}, extra=LENIENT))
    summary = run_partition(spec, "2024-01-01")
    assert summary["status"] == "warned", summary["causes"]
    manifest = json.loads(Path(summary["manifest"]).read_text())
    events = [e for _, e in endpoint]
    assert [path for path, _ in endpoint] == ["/api/v1/lineage"] * 2
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    start, done = events
    assert start["run"]["runId"] == done["run"]["runId"]
    assert done["job"] == {**done["job"], "namespace": "sluice", "name": "tiny.screen"}
    models = schema_models()
    for e in events:
        check_event(e, models)

    (source,) = done["inputs"]
    assert source["namespace"] == "file"
    assert source["name"] == manifest["inputs"][0]["path"]
    assertions = source["inputFacets"]["dataQualityAssertions"]["assertions"]
    by_name = {a["name"]: a for a in assertions}
    for v in manifest["validation"]["verdicts"]:
        assert by_name[v["reason"]]["success"] is (v["state"] == "passed")
    assert by_name["amount|expect_column_values_to_be_between"]["success"] is False
    assert by_name["amount|expect_column_values_to_be_between"]["actual"] == "1"
    assert source["inputFacets"]["dataQualityMetrics"]["rowCount"] == 3

    sides = {Path(o["name"]).parent.name: o for o in done["outputs"]}
    assert set(sides) == {"clean", "quarantine"}
    assert (
        sides["clean"]["outputFacets"]["outputStatistics"]["rowCount"]
        == (manifest["counts"]["clean"])
    )
    metrics = sides["quarantine"]["facets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == manifest["counts"]["quarantine"]
    assert metrics["columnMetrics"]["amount"]["nullCount"] == 1


def test_a_run_that_stops_emits_fail(
    endpoint: list[tuple[str, dict[str, Any]]], make_dataset: SpecFactory
) -> None:
    spec = str(make_dataset({"2024-01-01": CSV}))
    with pytest.raises(Exception, match="2024-01-02"):
        run_partition(spec, "2024-01-02")
    events = [e for _, e in endpoint]
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    assert "2024-01-02" in events[1]["run"]["facets"]["errorMessage"]["message"]
    check_event(events[1], schema_models())


def test_lineage_is_off_by_default(
    endpoint: list[tuple[str, dict[str, Any]]],
    make_dataset: SpecFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SLUICE_OPENLINEAGE_URL")
    spec = str(make_dataset({"2024-01-01": CSV}))
    assert run_partition(spec, "2024-01-01")["conservation"] is True
    assert endpoint == []


def test_an_unreachable_endpoint_never_fails_a_run(
    make_dataset: SpecFactory, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("SLUICE_OPENLINEAGE_URL", f"http://127.0.0.1:{port}")
    spec = str(make_dataset({"2024-01-01": CSV}, extra=LENIENT))
    assert run_partition(spec, "2024-01-01")["conservation"] is True
    assert "OpenLineage COMPLETE event of tiny.screen not sent" in caplog.text


def test_a_run_whose_verdict_fails_emits_fail_naming_its_outputs(
    endpoint: Received, make_dataset: SpecFactory
) -> None:
    spec = str(make_dataset({"2024-01-01": CSV}))
    summary = run_partition(spec, "2024-01-01")
    assert summary["status"] == "failed"
    events = [e for _, e in endpoint]
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    fail = events[1]
    check_event(fail, schema_models())
    message = fail["run"]["facets"]["errorMessage"]["message"]
    assert message.startswith("tiny 2024-01-01: failed: ")
    assert "2 of 3 rows (66.7%) quarantined" in message
    rows = {
        Path(o["name"]).parent.name: o["facets"]["dataQualityMetrics"]["rowCount"]
        for o in fail["outputs"]
    }
    assert rows == {
        "clean": summary["counts"]["clean"],
        "quarantine": summary["counts"]["quarantine"],
    }


def test_sluice_run_without_its_input_sends_start_then_fail(
    endpoint: Received, make_dataset: SpecFactory
) -> None:
    spec = make_dataset({"2024-01-01": CSV})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PREFECT_API_URL", None)
    done = sluice("run", str(spec), "--partition", "2024-01-02", env=env)
    assert done.returncode == 2, done.stderr[-2000:]
    events = [e for _, e in endpoint]
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    assert events[0]["run"]["runId"] == events[1]["run"]["runId"]
    check_event(events[1], schema_models())
    message = events[1]["run"]["facets"]["errorMessage"]["message"]
    assert "2024-01-02" in message
    assert "no source files" in message


def test_a_delta_run_names_its_tables(endpoint: Received, make_dataset: SpecFactory) -> None:
    outputs = {
        "format": "delta",
        "clean": "out/clean",
        "quarantine": "out/quarantine",
        "reports": "out/reports",
    }
    spec = make_dataset({"2024-01-01": CSV}, extra={**LENIENT, "outputs": outputs})
    summary = run_partition(str(spec), "2024-01-01")
    manifest = json.loads(Path(summary["manifest"]).read_text())
    events = [e for _, e in endpoint]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    check_event(events[1], schema_models())
    named = {
        (o["namespace"], o["name"]): o["outputFacets"]["outputStatistics"]["rowCount"]
        for o in events[1]["outputs"]
    }
    assert named == {
        ("file", manifest["tables"][side]["uri"]): manifest["counts"][side]
        for side in ("clean", "quarantine")
    }
