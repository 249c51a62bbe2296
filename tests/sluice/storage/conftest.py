"""The local S3 server (one per session) and the demo dataset written as POSIX or Delta specs."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluice.demo_data import generate
from tests.s3 import S3Server, s3_server

ROOT = Path(__file__).resolve().parents[3]
DAYS = [dt.date(2024, 3, 4), dt.date(2024, 3, 5)]
ROWS = 600


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """moto's S3 server on 127.0.0.1 for the whole session; stopped in finally."""
    with s3_server() as server:
        yield server


@pytest.fixture
def s3_env(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The test process (and its subprocesses) pointed at the local server."""
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    return s3


def trips_spec(
    root: Path,
    raw: Path,
    *,
    name: str,
    delta: bool = False,
    tables: str | None = None,
    reference: int = 0,
) -> Path:
    """The demo's spec reading ``raw``, writing under ``root`` (tables under ``tables``)."""
    text = (ROOT / "datasets" / "trips.yaml").read_text(encoding="utf-8")
    text = text.replace("${SLUICE_DEMO_DIR:-../var/demo}", str(raw))
    text = text.replace(
        "../expectations/suites/trips.json", str(ROOT / "expectations/suites/trips.json")
    )
    text = text.replace("name: trips", f"name: {name}", 1)
    head, _ = text.split("\noutputs:", 1)
    base = tables or str(root)
    outputs = (
        f"\noutputs:\n  clean: {base}/clean\n  quarantine: {base}/quarantine\n"
        f"  reports: {root}/reports\n"
    )
    if delta:
        outputs += "  format: delta\n"
    if reference:
        head += f"\nreference:\n  partitions: {reference}\n"
    path = root / f"{name}.yaml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(head + outputs, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def demo_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two days of demo trips (planted errors of every kind)."""
    raw = tmp_path_factory.mktemp("demo")
    generate(raw, DAYS, rows_per_partition=ROWS, seed=11)
    return raw


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a sluice subprocess: this worktree first on the path."""
    return {**os.environ, "PYTHONPATH": str(ROOT), **(extra or {})}
