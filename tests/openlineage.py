"""An OpenLineage endpoint on 127.0.0.1 for tests, and a check of received events against the
client's models of the spec (every event and facet must rebuild as the ``openlineage-python``
class its ``schemaURL`` names: no field the model lacks, none it requires missing)."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import pkgutil
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Received = list[tuple[str, dict[str, Any]]]


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, Any]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append((self.path, json.loads(body)))
        self.send_response(201)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextlib.contextmanager
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Received]:
    """An OpenLineage endpoint on 127.0.0.1, named in ``SLUICE_OPENLINEAGE_URL`` (also for
    subprocesses); yields what it received, as (path, event) in arrival order."""
    received: Received = []
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


def schema_models() -> dict[str, type]:
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


def check(doc: dict[str, Any], models: dict[str, type], where: str) -> None:
    """Rebuild a facet or event as the client's class its schema URL names."""
    url = doc.get("_schemaURL") or doc.get("schemaURL")
    assert url in models, f"{where}: {url!r} is not a schema of the client"
    fields = {k: v for k, v in doc.items() if not k.startswith("_") and k != "schemaURL"}
    try:
        models[url](**fields)
    except TypeError as exc:
        pytest.fail(f"{where}: does not fit {models[url].__name__}: {exc}")


def check_event(event: dict[str, Any], models: dict[str, type]) -> None:
    assert event["schemaURL"].endswith("#/$defs/RunEvent")
    assert event["eventType"] in {"START", "COMPLETE", "FAIL"}
    uuid.UUID(event["run"]["runId"])
    for key in ("eventTime", "producer", "run", "job"):
        assert key in event
    assert {"namespace", "name"} <= set(event["job"])
    for name, facet in {**event["run"].get("facets", {}), **event["job"].get("facets", {})}.items():
        check(facet, models, name)
    for ds in [*event.get("inputs", []), *event.get("outputs", [])]:
        assert {"namespace", "name"} <= set(ds)
        for group in ("facets", "inputFacets", "outputFacets"):
            for name, facet in ds.get(group, {}).items():
                check(facet, models, f"{ds['name']} {group}.{name}")
