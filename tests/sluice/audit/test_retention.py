"""``sluice retention``: exactly the expired, unheld items; held and referenced ones stay."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sluice.audit.retention import apply, expiry, log_path, plan
from sluice.audit.store import inputs_store, objects_store
from sluice.config import load_spec
from sluice.core.errors import ConfigError
from sluice.pipeline import run_partition
from tests.conftest import ROOT, SpecFactory

NOW = dt.datetime.now(dt.UTC)
AGES = {
    "2024-01-01": dt.timedelta(days=3 * 365),
    "2024-01-02": dt.timedelta(days=3 * 365),
    "2024-01-03": dt.timedelta(days=548),
    "2024-01-04": dt.timedelta(0),
}
RETENTION = {
    "outputs": "1y",
    "history": "1y",
    "manifests": "2y",
    "objects": "1y",
    "archived_inputs": "1y",
    "holds": [{"partitions": "2024-01-02", "reason": "case 7"}],
}


def _csv(day: str) -> str:
    return f"id,amount,count,when,kind\n{day}-a,1.5,1,{day} 00:00:00,a\n"


def _age(path: Path, when: dt.datetime) -> None:
    os.chmod(path, 0o644)
    doc = json.loads(path.read_text())
    doc["finished_at"] = when.isoformat()
    path.write_text(json.dumps(doc))
    os.chmod(path, 0o444)


def _set_mtime(path: Path, when: dt.datetime) -> None:
    os.utime(path, (when.timestamp(), when.timestamp()))


@pytest.fixture
def history(make_dataset: SpecFactory) -> tuple[Path, Path]:
    """Four partitions screened, then aged: two 3 years old (one held), one 18 months, one new;
    every stored object last used 3 years ago, plus one no manifest names."""
    spec = make_dataset(
        {day: _csv(day) for day in AGES},
        extra={"archive_inputs": True, "retention": RETENTION},
    )
    for day in AGES:
        run_partition(str(spec), day)
    reports = spec.parent / "out" / "reports"
    for day, age in AGES.items():
        when = NOW - age
        _age(reports / f"date={day}" / "manifest.json", when)
        for kept in (reports / "_manifests" / f"date={day}").glob("*.json"):
            _age(kept, when)
        _set_mtime(reports / "_history" / f"date={day}.parquet", when)
    objects_store(reports).put_bytes(b"a suite no run uses any more")
    old = NOW - dt.timedelta(days=3 * 365)
    for store in (objects_store(reports), inputs_store(reports)):
        for sha in store.objects():
            _set_mtime(store.path(sha), old)
    return spec, reports


def _input_object(reports: Path, day: str) -> str:
    doc = json.loads((reports / f"date={day}" / "manifest.json").read_text())
    return str(reports / doc["audit"]["inputs"][doc["inputs"][0]["path"]]["path"])


def _expected(reports: Path) -> set[tuple[str, str]]:
    kept_01 = next((reports / "_manifests" / "date=2024-01-01").glob("*.json"))
    (orphan,) = [
        s
        for s in objects_store(reports).objects()
        if objects_store(reports).read(s) == b"a suite no run uses any more"
    ]
    return {
        ("outputs", str(reports / "date=2024-01-01")),
        ("outputs", str(reports / "date=2024-01-03")),
        ("manifests", str(kept_01)),
        ("history", str(reports / "_history" / "date=2024-01-01.parquet")),
        ("history", str(reports / "_history" / "date=2024-01-03.parquet")),
        ("archived_inputs", _input_object(reports, "2024-01-01")),
        ("objects", str(objects_store(reports).path(orphan))),
    }


def test_dry_run_lists_exactly_the_expired_unheld_items(history: tuple[Path, Path]) -> None:
    spec, reports = history
    expected = _expected(reports)
    planned = plan(load_spec(spec))
    assert {(i.kind, i.path) for i in planned.expired} == expected
    assert {(i.kind, i.partition) for i in planned.held} == {
        ("outputs", "2024-01-02"),
        ("manifests", "2024-01-02"),
        ("history", "2024-01-02"),
    }
    assert {i.held_by for i in planned.held} == {"2024-01-02: case 7"}
    assert all(Path(p).exists() for _, p in expected)
    assert not log_path(reports).exists()


def test_apply_deletes_them_logs_each_and_keeps_what_kept_manifests_name(
    history: tuple[Path, Path],
) -> None:
    spec, reports = history
    loaded = load_spec(spec)
    expected = _expected(reports)
    kept_input = _input_object(reports, "2024-01-03")
    done = apply(loaded, plan(loaded))
    assert done.skipped == []
    assert {(i.kind, i.path) for i in done.deleted} == expected
    assert not any(Path(p).exists() for _, p in expected)
    root = spec.parent / "out"
    for side in ("clean", "quarantine"):
        assert not (root / side / "date=2024-01-01").exists()
        assert (root / side / "date=2024-01-02").exists()
        assert (root / side / "date=2024-01-04").exists()
    assert Path(kept_input).exists(), "a kept manifest of 2024-01-03 still names its input"
    assert list((reports / "_manifests" / "date=2024-01-03").glob("*.json"))
    spec_sha = json.loads((reports / "date=2024-01-04" / "manifest.json").read_text())["spec"]
    assert objects_store(reports).has(spec_sha["sha256"])
    logged = [json.loads(line) for line in log_path(reports).read_text().splitlines()]
    assert {e["path"] for e in logged} >= {p for _, p in expected}
    assert str(root / "clean" / "date=2024-01-01") in {e["path"] for e in logged}
    assert all(e["action"] == "delete" and e["reason"] for e in logged)
    again = plan(loaded)
    assert again.expired == []
    apply(loaded, again)
    assert len(log_path(reports).read_text().splitlines()) == len(logged)


def test_retention_dry_run_through_the_cli(history: tuple[Path, Path]) -> None:
    spec, reports = history
    expected = _expected(reports)
    exe = str(Path(sys.executable).with_name("sluice"))
    done = subprocess.run(
        [exe, "retention", str(spec), "--dry-run", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert {(i["kind"], i["path"]) for i in doc["expired"]} == expected
    assert {i["partition"] for i in doc["held"]} == {"2024-01-02"}
    assert all(Path(p).exists() for _, p in expected)


@pytest.mark.parametrize(
    ("written", "period", "expires"),
    [
        (dt.datetime(2024, 2, 29, tzinfo=dt.UTC), "1y", dt.datetime(2025, 2, 28, tzinfo=dt.UTC)),
        (dt.datetime(2024, 1, 31, tzinfo=dt.UTC), "1m", dt.datetime(2024, 2, 29, tzinfo=dt.UTC)),
        (dt.datetime(2017, 6, 1, tzinfo=dt.UTC), "7y", dt.datetime(2024, 6, 1, tzinfo=dt.UTC)),
        (dt.datetime(2024, 12, 15, tzinfo=dt.UTC), "2w", dt.datetime(2024, 12, 29, tzinfo=dt.UTC)),
        (dt.datetime(2024, 11, 30, tzinfo=dt.UTC), "3m", dt.datetime(2025, 2, 28, tzinfo=dt.UTC)),
    ],
)
def test_periods_are_calendar_months_and_years(
    written: dt.datetime, period: str, expires: dt.datetime
) -> None:
    assert expiry(written, period) == expires


@pytest.mark.parametrize(
    ("retention", "message"),
    [
        ({"outputs": "7 years"}, "is not a period"),
        ({"outputs": "7y", "manifests": "1y"}, "at least as long as outputs"),
        ({"holds": [{"partitions": "2024-02-30", "reason": "x"}]}, "is not a day"),
        ({"holds": [{"partitions": "2024-03-01..2024-02-01", "reason": "x"}]}, "START"),
        ({"holds": [{"partitions": "2024-03-01"}]}, "reason"),
        ({"keep": "7y"}, "unknown key"),
    ],
)
def test_a_bad_retention_section_is_refused_with_file_line_and_key(
    make_dataset: SpecFactory, retention: dict[str, object], message: str
) -> None:
    spec = make_dataset({"2024-01-01": _csv("2024-01-01")})
    data = yaml.safe_load(spec.read_text())
    data["retention"] = retention
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError, match=message) as err:
        load_spec(spec)
    assert err.value.file == str(spec)
    assert err.value.key is not None
    assert err.value.key.startswith("retention")
    assert err.value.line is not None


def test_a_partition_a_run_is_writing_is_left_for_the_next_pass(
    history: tuple[Path, Path],
) -> None:
    from sluice.write import partition_lock

    spec, reports = history
    loaded = load_spec(spec)
    with partition_lock(reports, "date=2024-01-01", timeout=0):
        done = apply(loaded, plan(loaded))
    left = {i.path: why for i, why in done.skipped}
    kept_input = _input_object(reports, "2024-01-01")
    assert set(left) == {str(reports / "date=2024-01-01"), kept_input}
    assert "being written by a run" in left[str(reports / "date=2024-01-01")]
    assert Path(kept_input).exists(), "its manifest is still there and names it"
    assert (reports / "date=2024-01-01" / "manifest.json").exists()
    assert (spec.parent / "out" / "clean" / "date=2024-01-01").exists()
    assert not (reports / "date=2024-01-03").exists()
    assert {i.path for i in plan(loaded).expired} == set(left)
    assert apply(loaded, plan(loaded)).skipped == []
    assert plan(loaded).expired == []
    assert not Path(kept_input).exists()
