"""The in-process runner: retries, worker plans, the choice of orchestrator, imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sluice.config import find_spec
from sluice.core.errors import ConfigError, CriticalCheckFailed, RunFailed
from sluice.pipeline import budget, local
from tests.conftest import ROOT, SpecFactory

GOOD = "id,amount,count,when,kind\na,1,1,2024-01-01 10:00:00,a\nb,2,2,2024-01-01 11:00:00,b\n"
DAYS = ("2024-01-01", "2024-01-02", "2024-01-03")


@pytest.fixture
def spec(make_dataset: SpecFactory) -> Path:
    """The tiny dataset with three good partitions."""
    return make_dataset(dict.fromkeys(DAYS, GOOD))


def _flaky(monkeypatch: pytest.MonkeyPatch, name: str, error: Exception, times: int) -> list[int]:
    """Make ``local.<name>`` raise ``error`` the first ``times`` calls; returns the call log."""
    real = getattr(local, name)
    calls: list[int] = []

    def stage(*args: Any) -> Any:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return real(*args)

    monkeypatch.setattr(local, name, stage)
    monkeypatch.setattr(local, "IO_BACKOFF_SECONDS", 0.0)
    return calls


def test_a_transient_ingest_error_is_retried(spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _flaky(monkeypatch, "stage_ingest", ConnectionResetError("reset"), 2)
    summary = local.screen_local(str(spec), DAYS[0])
    assert len(calls) == 3
    assert summary["status"] == "passed"
    assert summary["counts"]["in"] == 2


def test_a_transient_write_error_is_retried_until_the_retries_run_out(
    spec: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _flaky(monkeypatch, "stage_write", TimeoutError("slow disk"), 99)
    with pytest.raises(TimeoutError):
        local.screen_local(str(spec), DAYS[0])
    assert len(calls) == local.IO_RETRIES + 1
    assert not list((spec.parent / "out" / "reports").glob(".work/*"))


def test_bad_data_is_not_retried(spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _flaky(monkeypatch, "stage_ingest", ValueError("bad data"), 99)
    with pytest.raises(ValueError, match="bad data"):
        local.screen_local(str(spec), DAYS[0])
    assert len(calls) == 1


def test_retry_delays_follow_the_flows_backoff() -> None:
    for attempt in range(local.IO_RETRIES):
        delay = local.retry_delay(attempt)
        average = local.IO_BACKOFF_SECONDS * 2**attempt
        assert (
            average * (1 - local.IO_RETRY_JITTER) <= delay <= average * (1 + local.IO_RETRY_JITTER)
        )


def test_a_done_partition_is_skipped_unless_forced(spec: Path) -> None:
    first = local.screen_local(str(spec), DAYS[0])
    again = local.screen_local(str(spec), DAYS[0])
    assert "skipped" not in first
    assert again["skipped"].startswith("already screened")
    assert again["manifest"] == first["manifest"]
    forced = local.screen_local(str(spec), DAYS[0], force=True)
    assert "skipped" not in forced
    manifest = json.loads(Path(forced["manifest"]).read_text())
    assert manifest["orchestrator"] == "in-process"


def test_a_failed_verdict_becomes_the_flows_error() -> None:
    summary: dict[str, Any] = {
        "dataset": "d",
        "partition": "2024-01-01",
        "status": "failed",
        "critical": [],
        "causes": [{"level": "error", "message": "too many rows quarantined"}],
        "manifest": "m.json",
    }
    failure = local.run_failure(summary)
    assert isinstance(failure, RunFailed)
    assert not isinstance(failure, CriticalCheckFailed)
    assert "too many rows quarantined" in str(failure)
    assert failure.summary is summary
    critical = local.run_failure({**summary, "critical": ["id|expect_column_to_exist"]})
    assert isinstance(critical, CriticalCheckFailed)
    assert local.run_failure({**summary, "status": "warned"}) is None


@pytest.mark.parametrize(
    ("text", "expected"), [("8G", 8 * 2**30), ("512MiB", 512 * 2**20), ("1000", 1000)]
)
def test_sizes_are_read_with_their_unit(text: str, expected: int) -> None:
    assert budget.parse_bytes(text, "X") == expected


@pytest.mark.parametrize("text", ["ten", "0", "-1G", "8 parsecs"])
def test_a_bad_size_names_the_setting(text: str) -> None:
    with pytest.raises(ConfigError, match=r"SLUICE_MEMORY_BUDGET.*not a size in bytes"):
        budget.parse_bytes(text, "SLUICE_MEMORY_BUDGET")


def test_the_memory_budget_limits_the_workers(spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = find_spec(str(spec))
    parts = [loaded.spec.partition.parse(d) for d in DAYS]
    monkeypatch.setenv("SLUICE_MEMORY_BUDGET", "64G")
    monkeypatch.setattr(local, "cores", lambda: 8)
    roomy = local.plan_workers(loaded, parts)
    assert (roomy.workers, roomy.reason) == (3, "limited by partitions")
    # the workers prepare partitions while this process commits one: it holds one more
    monkeypatch.setenv("SLUICE_MEMORY_BUDGET", str(3 * budget.partition_estimate(loaded, parts[0])))
    tight = local.plan_workers(loaded, parts)
    assert (tight.workers, tight.reason) == (2, "limited by memory")
    monkeypatch.setenv("SLUICE_MEMORY_BUDGET", str(2 * budget.partition_estimate(loaded, parts[0])))
    assert local.plan_workers(loaded, parts).workers == 1
    monkeypatch.setenv("SLUICE_MEMORY_BUDGET", "1M")
    assert local.plan_workers(loaded, parts).workers == 1
    monkeypatch.setenv("SLUICE_MEMORY_BUDGET", "64G")
    monkeypatch.setenv("SLUICE_WORKERS", "1")
    assert local.plan_workers(loaded, parts).reason == "limited by SLUICE_WORKERS"
    monkeypatch.setenv("SLUICE_WORKERS", "two")
    with pytest.raises(ConfigError, match=r"SLUICE_WORKERS.*not a number of processes"):
        local.plan_workers(loaded, parts)


def test_a_bigger_source_is_expected_to_need_more_memory(make_dataset: SpecFactory) -> None:
    rows = "".join(f"r{i},1,1,2024-01-01 10:00:00,a\n" for i in range(5000))
    spec = make_dataset({"2024-01-01": GOOD, "2024-01-02": GOOD + rows})
    loaded = find_spec(str(spec))
    small, big = (
        budget.partition_estimate(loaded, loaded.spec.partition.parse(d)) for d in DAYS[:2]
    )
    assert big - small == budget.BYTES_PER_SOURCE_BYTE["csv"] * len(rows)


def test_prefect_is_used_when_asked_or_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PREFECT_API_URL", "SLUICE_PREFECT", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    assert not local.use_prefect(False)
    assert local.use_prefect(True)
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(
        'active = "server"\n[profiles.server]\nPREFECT_API_URL = "http://127.0.0.1:4200/api"\n'
        "[profiles.ephemeral]\n"
    )
    assert local.use_prefect(False)
    monkeypatch.setenv("PREFECT_PROFILE", "ephemeral")
    assert not local.use_prefect(False)
    profiles.write_text("not [ toml")
    assert not local.use_prefect(False)
    monkeypatch.setenv("SLUICE_PREFECT", "yes")
    assert local.use_prefect(False)
    monkeypatch.setenv("SLUICE_PREFECT", "0")
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert local.use_prefect(False)
    monkeypatch.setenv("SLUICE_PREFECT", "maybe")
    with pytest.raises(ConfigError, match="SLUICE_PREFECT"):
        local.use_prefect(False)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (".env", "OTHER=1\nexport PREFECT_API_URL='http://127.0.0.1:4200/api'\n"),
        ("prefect.toml", '[api]\nurl = "http://127.0.0.1:4200/api"\n'),
        ("pyproject.toml", '[tool.prefect.api]\nurl = "http://127.0.0.1:4200/api"\n'),
    ],
)
def test_an_api_url_in_the_working_folder_counts(
    name: str, text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("PREFECT_API_URL", "SLUICE_PREFECT", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_text(text.replace("http://127.0.0.1:4200/api", ""))
    assert not local.use_prefect(False)
    (tmp_path / name).write_text(text)
    assert local.use_prefect(False)


BLOCK = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "prefect":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Block())
"""


def _sluice_without_prefect(
    tmp_path: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """The real ``sluice`` command with Prefect made unimportable and no API configured."""
    shim = tmp_path / "shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(BLOCK)
    base = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "SLUICE_PREFECT")}
    full = {
        **base,
        "PYTHONPATH": os.pathsep.join([str(shim), str(ROOT)]),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        **env,
    }
    return subprocess.run(
        [str(Path(sys.executable).with_name("sluice")), *args],
        env=full,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_run_and_backfill_without_an_api_never_import_prefect(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    spec = make_dataset({DAYS[0]: GOOD, DAYS[1]: b"\xff\xfe\x00garbage", DAYS[2]: GOOD})
    ran = _sluice_without_prefect(tmp_path, "run", str(spec), "--partition", DAYS[0])
    assert ran.returncode == 0, ran.stderr
    assert "passed: 2 rows in, 2 clean" in ran.stdout
    args = ("backfill", str(spec), "--start", DAYS[0], "--end", DAYS[2], "--json")
    bf = _sluice_without_prefect(tmp_path, *args, SLUICE_WORKERS="2")
    assert bf.returncode == 1, bf.stderr
    assert "Traceback" not in bf.stderr
    summary = json.loads(bf.stdout)
    assert [s["partition"] for s in summary["skipped"]] == [DAYS[0]]
    assert [s["partition"] for s in summary["screened"]] == [DAYS[2]]
    assert [f["partition"] for f in summary["failed"]] == [DAYS[1]]
    assert f"[3/3] tiny {DAYS[2]}: passed" in bf.stderr
    assert "2 partitions to screen on 2 processes" in bf.stderr


def test_a_bad_worker_setting_is_a_usage_error(make_dataset: SpecFactory, tmp_path: Path) -> None:
    spec = make_dataset(dict.fromkeys(DAYS, GOOD))
    args = ("backfill", str(spec), "--start", DAYS[0], "--end", DAYS[2])
    ran = _sluice_without_prefect(tmp_path, *args, SLUICE_MEMORY_BUDGET="lots")
    assert ran.returncode == 2
    assert "SLUICE_MEMORY_BUDGET" in ran.stderr
    assert "'lots'" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert not (spec.parent / "out" / "clean").exists()
