"""Shared fixtures: small datasets on disk and one Prefect test harness per session."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

SpecFactory = Callable[..., Path]

TINY_SCHEMA: dict[str, Any] = {
    "id": "string",
    "amount": "float",
    "count": "int",
    "when": {"type": "datetime", "format": "%Y-%m-%d %H:%M:%S"},
    "kind": "string",
}


def tiny_suite() -> dict[str, Any]:
    """A small suite over the tiny schema."""
    return {
        "name": "tiny",
        "expectations": [
            {
                "type": "expect_column_values_to_be_unique",
                "kwargs": {"column": "id"},
                "meta": {"severity": "error"},
            },
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}},
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "amount", "min_value": 0, "max_value": 100},
            },
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "kind", "value_set": ["a", "b"]},
                "meta": {"severity": "warn"},
            },
        ],
    }


@pytest.fixture
def make_dataset(tmp_path: Path) -> SpecFactory:
    """Write a dataset spec, its suite and source files under tmp_path; returns the spec path.

    ``files`` maps a partition (YYYY-MM-DD) to the text of its CSV (or bytes of any format).
    """

    def factory(
        files: dict[str, str | bytes],
        *,
        schema: dict[str, Any] | None = None,
        suite: dict[str, Any] | None = None,
        fmt: str = "csv",
        detectors: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        ext = {"csv": "csv", "parquet": "parquet", "ndjson": "ndjson"}[fmt]
        for part, content in files.items():
            d = tmp_path / "raw" / f"date={part}"
            d.mkdir(parents=True, exist_ok=True)
            target = d / f"data.{ext}"
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        (tmp_path / "suite.json").write_text(json.dumps(suite or tiny_suite()))
        spec: dict[str, Any] = {
            "name": "tiny",
            "source": {"path": f"raw/date={{date}}/*.{ext}", "format": fmt},
            "partition": {"key": "date", "kind": "day"},
            "schema": schema or TINY_SCHEMA,
            "keys": ["id"],
            "suite": "suite.json",
            "detectors": detectors if detectors is not None else [],
            "outputs": {
                "clean": "out/clean",
                "quarantine": "out/quarantine",
                "reports": "out/reports",
            },
        }
        spec.update(extra or {})
        path = tmp_path / "tiny.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path

    return factory


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One temporary Prefect API for the whole session, with its own PREFECT_HOME."""
    home = tmp_path_factory.mktemp("prefect-home")
    os.environ["PREFECT_HOME"] = str(home)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield
