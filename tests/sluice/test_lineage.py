"""OpenLineage events, received on a 127.0.0.1 HTTP server and checked against the client's
models of the spec (every event and facet must rebuild as the ``openlineage-python`` class its
``schemaURL`` names: no field the model lacks, none it requires missing)."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sluice.pipeline import run_partition
from tests.conftest import SpecFactory

CSV = (
    "id,amount,count,when,kind\n"
    "a,1,1,2024-01-01 10:00:00,a\n"
    "b,200,2,2024-01-01 11:00:00,a\n"
    "c,,3,2024-01-01 12:00:00,b\n"
)


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, Any]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append((self.path, json.loads(body)))
        self.send_response(201)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """An OpenLineage endpoint on 127.0.0.1; yields what it received."""
    received: list[tuple[str, dict[str, Any]]] = []
    handler = type("Handler", (_Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("SLUICE_OPENLINEAGE_URL", f"http://127.0.0.1:{server.server_port}")
        yield received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _models() -> dict[str, type]:
    """The client's facet and event classes by the schema URL each declares."""
    from openlineage.client import generated
    from openlineage.client.generated.base import BaseEvent, BaseFacet

    out: dict[str, type] = {}
    for info in pkgutil.iter_modules(generated.__path__):
        module = importlib.import_module(f"{generated.__name__}.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseFacet | BaseEvent) and "_get_schema" in cls.__dict__:
                out[cls._get_schema()] = cls
    return out


def _check(doc: dict[str, Any], models: dict[str, type], where: str) -> None:
    """Rebuild a facet or event as the client's class its schema URL names."""
    url = doc.get("_schemaURL") or doc.get("schemaURL")
    assert url in models, f"{where}: {url!r} is not a schema of the client"
    fields = {k: v for k, v in doc.items() if not k.startswith("_") and k != "schemaURL"}
    try:
        models[url](**fields)
    except TypeError as exc:
        pytest.fail(f"{where}: does not fit {models[url].__name__}: {exc}")


def _check_event(event: dict[str, Any], models: dict[str, type]) -> None:
    assert event["schemaURL"].endswith("#/$defs/RunEvent")
    assert event["eventType"] in {"START", "COMPLETE", "FAIL"}
    uuid.UUID(event["run"]["runId"])
    for key in ("eventTime", "producer", "run", "job"):
        assert key in event
    assert {"namespace", "name"} <= set(event["job"])
    for name, facet in {**event["run"].get("facets", {}), **event["job"].get("facets", {})}.items():
        _check(facet, models, name)
    for ds in [*event.get("inputs", []), *event.get("outputs", [])]:
        assert {"namespace", "name"} <= set(ds)
        for group in ("facets", "inputFacets", "outputFacets"):
            for name, facet in ds.get(group, {}).items():
                _check(facet, models, f"{ds['name']} {group}.{name}")


def test_a_run_emits_start_and_complete_with_quality_facets(
    endpoint: list[tuple[str, dict[str, Any]]], make_dataset: SpecFactory
) -> None:
    spec = str(make_dataset({"2024-01-01": CSV}))
    summary = run_partition(spec, "2024-01-01")
    manifest = json.loads(Path(summary["manifest"]).read_text())
    events = [e for _, e in endpoint]
    assert [path for path, _ in endpoint] == ["/api/v1/lineage"] * 2
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    start, done = events
    assert start["run"]["runId"] == done["run"]["runId"]
    assert done["job"] == {**done["job"], "namespace": "sluice", "name": "tiny.screen"}
    models = _models()
    for e in events:
        _check_event(e, models)

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
    _check_event(events[1], _models())


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
    spec = str(make_dataset({"2024-01-01": CSV}))
    assert run_partition(spec, "2024-01-01")["conservation"] is True
    assert "OpenLineage COMPLETE event of tiny.screen not sent" in caplog.text
