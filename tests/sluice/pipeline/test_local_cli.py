"""The in-process runner against the flows, through the real ``sluice`` command.

The same partitions screened in process and as Prefect flows (the session's temporary API) give
the same clean, quarantine and failures rows and the same manifests, up to run ids, times and
where the data lives; a backfill on two worker processes gives what the serial flow gives.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from sluice.demo_data import generate
from tests.conftest import ROOT, demo_datasets
from tests.test_e2e import sluice

DAYS = [dt.date(2024, 3, 4), dt.date(2024, 3, 5), dt.date(2024, 3, 6)]
VOLATILE = {"run_id", "started_at", "finished_at", "timings_s", "seconds", "orchestrator"}


def _env(datasets: Path, root: Path, api: str | None, **extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "SLUICE_PREFECT")}
    env = {
        **base,
        "SLUICE_DATASETS": str(datasets),
        "SLUICE_DEMO_DIR": str(root),
        "PREFECT_HOME": str(root / "prefect-home"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        **extra,
    }
    if api is not None:
        env["PREFECT_API_URL"] = api
    return env


@pytest.fixture(scope="module")
def api(prefect_api: None) -> str:
    """The session's temporary Prefect API."""
    import prefect.settings

    return str(prefect.settings.PREFECT_API_URL.value())


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo spec, its detectors fitted on the clean rows of the partition before."""
    folder = demo_datasets(tmp_path_factory.mktemp("project"))
    spec_path = folder / "trips.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec["reference"] = {"partitions": 1}
    spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def _data(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    root = tmp_path_factory.mktemp(name)
    generate(root, DAYS, rows_per_partition=1500, seed=5)
    return root


def _normal(value: Any, root: Path) -> Any:
    """``value`` without what differs between two runs of the same data: ids, times, the
    data's folder."""
    if isinstance(value, dict):
        return {k: _normal(v, root) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_normal(v, root) for v in value]
    if isinstance(value, str):
        return value.replace(str(root), "<root>")
    return value


def _manifest(root: Path, day: dt.date) -> dict[str, Any]:
    path = root / "reports" / "trips" / f"pickup_date={day}" / "manifest.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _same_outputs(a: Path, b: Path, day: dt.date) -> None:
    ma, mb = _manifest(a, day), _manifest(b, day)
    assert (ma["orchestrator"], mb["orchestrator"]) == ("in-process", "prefect")
    for side in ("clean", "quarantine", "failures"):
        fa = pl.read_parquet(ma["outputs"][side]["path"])
        fb = pl.read_parquet(mb["outputs"][side]["path"])
        assert fa.height > 0 or side == "clean"
        assert fa.schema == fb.schema
        assert _normal(fa.to_dicts(), a) == _normal(fb.to_dicts(), b)
    # every output file names the source file's path (compared above, row by row) or the run
    for m in (ma, mb):
        for entry in m["outputs"].values():
            del entry["sha256"], entry["bytes"]
        # so do the earlier clean files the detectors learnt from (their rows: the test above)
        for used in m["screen"].get("reference") or []:
            del used["sha256"]
    assert _normal(ma, a) == _normal(mb, b)


def test_a_run_in_process_equals_the_flow_run(
    api: str, datasets: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    local, flow = _data(tmp_path_factory, "local"), _data(tmp_path_factory, "flow")
    day = str(DAYS[0])
    a = sluice("run", "trips", "--partition", day, "--json", env=_env(datasets, local, None))
    b = sluice("run", "trips", "--partition", day, "--json", env=_env(datasets, flow, api))
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    assert "Traceback" not in a.stderr + b.stderr
    assert _normal(json.loads(a.stdout), local) == _normal(json.loads(b.stdout), flow)
    _same_outputs(local, flow, DAYS[0])
    again = sluice("run", "trips", "--partition", day, env=_env(datasets, local, None))
    assert again.returncode == 0, again.stderr
    assert "skipped" in again.stdout


def test_a_parallel_backfill_equals_the_serial_flow_backfill(
    api: str, datasets: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    local, flow = _data(tmp_path_factory, "bf-local"), _data(tmp_path_factory, "bf-flow")
    for root in (local, flow):  # the middle partition fails; the others go on
        (root / "raw" / f"pickup_date={DAYS[1]}" / "trips.csv").write_bytes(b"\xff\xfe\x00\x01")
    args = ("backfill", "trips", "--start", str(DAYS[0]), "--end", str(DAYS[-1]), "--json")
    a = sluice(*args, env=_env(datasets, local, None, SLUICE_WORKERS="2"))
    b = sluice(*args, env=_env(datasets, flow, api))
    assert a.returncode == b.returncode == 1, a.stderr + b.stderr
    assert "Traceback" not in a.stderr + b.stderr
    sa, sb = json.loads(a.stdout), json.loads(b.stdout)
    assert [s["partition"] for s in sa["screened"]] == [str(DAYS[0]), str(DAYS[2])]
    assert [f["partition"] for f in sa["failed"]] == [str(DAYS[1])]
    assert _normal(sa, local) == _normal(sb, flow)
    assert "3 partitions to screen on 2 processes" in a.stderr
    for day in (DAYS[0], DAYS[2]):
        _same_outputs(local, flow, day)
    third = _manifest(local, DAYS[2])
    assert [r["partition"] for r in third["screen"]["reference"]] == [str(DAYS[0])]
    leftovers = list((local / "reports" / "trips").glob(".work/*"))
    assert leftovers == []
