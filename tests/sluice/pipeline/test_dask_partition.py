"""One bounded partition's ingest split into tasks gives the single-process bounded ingest's work
files and facts.

Tasks run here first (in order, out of order, each read twice as a rerun would): on the
robustness corpus, the hostile pieces of tests/sluice/test_ingest_pieces.py and several files of
one partition, the split ingest writes the same ``frame.parquet``, ``raw.parquet`` and
``ingest_failures.parquet`` (rows, order and row groups) and records the same facts as
:func:`sluice.pipeline.bounded_ingest.ingest_bounded`, or stops with the same error. Then the
real ``sluice run --dask`` screens a partition of several CSV and Parquet files on a real
scheduler and two workers on 127.0.0.1, one of them killed mid-task: the same clean,
quarantine, failures and manifest as the single-process run, committed once.
"""

from __future__ import annotations

import io
import json
import logging
import operator
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.core.errors import SluiceError
from sluice.core.frame import row_ids
from sluice.ingest.pieces import PlannedFile
from sluice.pipeline.cluster import ADDRESS_ENV, Address, connect
from sluice.pipeline.dask_backfill import HOLD_FILE_ENV, HOLD_SECONDS_ENV
from sluice.pipeline.dask_partition import (
    HOLD_UNIT_ENV,
    PIECES_DIR,
    DaskTasks,
    Tasks,
    UnitMismatch,
    ingest_split,
    moved_ids,
    screen_partition,
)
from sluice.pipeline.dask_validate import HOLD_RANGE_ENV
from sluice.pipeline.run import Run
from sluice.pipeline.stages import _ingest
from tests.conftest import ROOT
from tests.robustness.corpus import CASES, Case, good, good_frame
from tests.robustness.support import check_conserved, manifest_path, write_dataset
from tests.sluice.pipeline.bounded_support import DETECTORS
from tests.sluice.pipeline.test_dask import (
    VOLATILE,
    _diff,
    _free_port,
    cluster,
    kill_held_worker,
)
from tests.sluice.test_ingest_pieces import HOSTILE_CSV, HOSTILE_NDJSON, HOSTILE_PARQUET

DAY = "2024-01-01"
WORK_FILES = ("frame.parquet", "raw.parquet", "ingest_failures.parquet")
SIDES = ("clean", "quarantine", "failures")


class Reversed(Tasks):
    """Runs the tasks last first, every other one twice (a rerun after a lost worker); raises
    the error of the first item in order, as :class:`DaskTasks` does."""

    def map(self, fn: Callable[..., Any], items: Sequence[Any], *args: Any) -> list[Any]:
        """``fn(item, *args)`` for every item, last first; results in the items' order."""
        got: dict[int, Any] = {}
        errors: dict[int, Exception] = {}
        for i, item in reversed(list(enumerate(items))):
            try:
                got[i] = fn(item, *args)
                again = fn(item, *args) if i % 2 else got[i]
                if isinstance(again, PlannedFile):
                    assert (again.sha256, again.scan, again.keys) == (
                        got[i].sha256,
                        got[i].scan,
                        got[i].keys,
                    )
                else:
                    assert again == got[i]
            except SluiceError as exc:
                errors[i] = exc
        if errors:
            raise errors[min(errors)]
        return [got[i] for i in range(len(items))]


Outcome = tuple[dict[str, Any], dict[str, pl.DataFrame], list[list[int]]] | str


def _ingest_once(spec: Path, tasks: Tasks | None) -> Outcome:
    """The bounded ingest's facts, work files and row groups, or its error."""
    run = Run.prepare(str(spec), DAY, check_detectors=False)
    try:
        if tasks is None:
            facts = _ingest(run)
        else:
            facts = _ingest(run, bounded=lambda r: ingest_split(r, tasks))
    except SluiceError as exc:
        return f"{type(exc).__name__}: {exc}"
    try:
        assert not (run.work / PIECES_DIR).exists()
        files = {n: pl.read_parquet(run.file(n)) for n in WORK_FILES}
        groups = []
        for n in WORK_FILES:
            meta = pq.ParquetFile(run.file(n)).metadata
            groups.append([meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
        facts.pop("seconds", None)
        return facts, files, groups
    finally:
        run.discard()


def _same(
    spec: Path, monkeypatch: pytest.MonkeyPatch, rows: int = 3, in_order: bool = True
) -> Outcome:
    """The split ingest (tasks here in order unless ``in_order`` is false, then reversed and
    rerun) against the bounded ingest."""
    monkeypatch.setenv("SLUICE_BOUNDED", "1")
    monkeypatch.setenv("SLUICE_BATCH_ROWS", str(rows))
    want = _ingest_once(spec, None)
    for tasks in (Tasks(), Reversed())[0 if in_order else 1 :]:
        got = _ingest_once(spec, tasks)
        if isinstance(want, str) or isinstance(got, str):
            assert got == want
            continue
        assert got[0] == want[0]
        for name in WORK_FILES:
            assert got[1][name].schema == want[1][name].schema, name
            assert got[1][name].equals(want[1][name]), name
        assert got[2] == want[2]
    return want


CORPUS = [
    pytest.param(c, id=c.name, marks=() if i % 6 == 0 else (pytest.mark.slow,))
    for i, c in enumerate(CASES)
]


@pytest.mark.parametrize("case", CORPUS)
def test_corpus_split_and_single_process_agree(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_dataset(tmp_path, {DAY: case.content}, fmt=case.fmt, schema=case.schema)
    got = _same(spec, monkeypatch, in_order=False)
    if case.error is not None:
        assert isinstance(got, str)
    elif case.rows is not None:
        assert not isinstance(got, str), got
        assert got[0]["rows"] == case.rows


HOSTILE = [
    *[("csv", n) for n in HOSTILE_CSV],
    *[("ndjson", n) for n in HOSTILE_NDJSON],
    *[("parquet", n) for n in HOSTILE_PARQUET],
]


@pytest.mark.parametrize(("fmt", "name"), HOSTILE, ids=[f"{f}-{n}" for f, n in HOSTILE])
def test_hostile_pieces_in_several_files(
    fmt: str, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = {"csv": HOSTILE_CSV, "ndjson": HOSTILE_NDJSON, "parquet": HOSTILE_PARQUET}[fmt][name]
    files = {f"a.{fmt}": content}
    if fmt != "parquet":
        files[f"b.{fmt}"] = content + b"\n"
    _same(write_dataset(tmp_path, {DAY: files}, fmt=fmt), monkeypatch, rows=2)


def test_duplicates_nulls_and_unicode_across_units(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = ["id,amount,count,when,kind"]
    for i in range(40):
        kind = ["a", "ü", "日本", ""][i % 4]
        amount = "" if i % 5 == 0 else ("x" if i % 7 == 0 else f"{i}.5")
        lines.append(f"r{i % 13},{amount},{i},2024-01-01 10:{i % 60:02d}:00,{kind}")
    lines.insert(17, "r1,2")  # a malformed record in the middle of a piece
    text = ("\n".join(lines) + "\n").encode()
    files = {"a.csv": text, "b.csv": text.replace(b"r1,", b"s1,"), "c.csv": text[:30]}
    got = _same(write_dataset(tmp_path, {DAY: files}), monkeypatch, rows=4)
    assert not isinstance(got, str), got
    assert got[0]["rows"] == 41 + 41 + 1  # c.csv: a header and one cut record
    assert len(got[2][0]) > 10  # many row groups: many units


def test_pieces_after_one_the_fast_reader_refuses_are_read_again_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sluice.pipeline.dask_partition as split
    from sluice.ingest import pieces
    from sluice.ingest.text import _csv_fast

    def refusing(data: bytes, opts: Any, where: str) -> pl.DataFrame | None:
        return None if b"\nr5," in data else _csv_fast(data, opts, where)

    monkeypatch.setattr(pieces, "_csv_fast", refusing)
    monkeypatch.setattr(split, "_csv_fast", refusing)
    real = split._reruns
    again: list[list[int]] = []

    def spy(*args: Any) -> list[Any]:
        got = real(*args)
        again.append([u.index for u in got])
        return got

    monkeypatch.setattr(split, "_reruns", spy)
    head = "id,amount,count,when,kind\n"
    text = head + "".join(good(i, ["a", "ü"][i % 2]) + "\n" for i in range(14))
    files = {"a.csv": text.encode(), "b.csv": text.replace("r", "s").encode()}
    got = _same(write_dataset(tmp_path, {DAY: files}), monkeypatch, rows=3)
    assert not isinstance(got, str), got
    assert got[0]["rows"] == 28
    assert again  # a.csv's r5 is in unit 1: units 2 to 4 are read again
    assert all(a == [2, 3, 4] for a in again)


@settings(max_examples=50, deadline=None, database=None)
@given(
    sha=st.text("0123456789abcdef", min_size=64, max_size=64),
    start=st.integers(0, 2**63),
    first=st.integers(0, 2**62),
)
def test_ids_are_moved_by_undoing_the_mix(sha: str, start: int, first: int) -> None:
    got = moved_ids(row_ids(sha, 5, first), start)
    assert (got == row_ids(sha, 5, first + start)).all()


def test_a_unit_that_reads_other_rows_than_its_metadata_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sluice.pipeline.dask_partition as split

    buf = io.BytesIO()
    pq.write_table(good_frame(9).to_arrow(), buf, row_group_size=3)
    spec = write_dataset(tmp_path, {DAY: buf.getvalue()}, fmt="parquet")
    monkeypatch.setenv("SLUICE_BOUNDED", "1")
    monkeypatch.setenv("SLUICE_BATCH_ROWS", "3")
    real = split.read_unit
    monkeypatch.setattr(split, "read_unit", lambda u, *a: {**real(u, *a), "rows": 4})
    got = _ingest_once(spec, Tasks())
    assert isinstance(got, str)
    assert got.startswith("UnitMismatch: ")
    assert "a task read 4 rows from unit 0 where the file's metadata says 3" in got
    assert UnitMismatch.exit_code == 3


def _csv_dataset(root: Path) -> Path:
    """A CSV partition of three files: duplicated ids across files, nulls, unicode, bad cells,
    a malformed record, an outlier."""
    head = "id,amount,count,when,kind\n"
    a = "".join(good(i, ["a", "ü", "日本"][i % 3]) + "\n" for i in range(70))
    b = "".join(good(i + 40) + "\n" for i in range(50))
    c = "r3,x,1,2024-01-01 10:00:00,a\nr200,,5,,\nr201,9e9\nr202,99999.5,3,2024-01-01 10:01:00,b\n"
    files = {
        "a.csv": (head + a).encode(),
        "b.csv": (head + b).encode(),
        "c.csv": (head + c).encode(),
    }
    return write_dataset(root, {DAY: files}, detectors=DETECTORS["default"])


def _parquet_dataset(root: Path) -> Path:
    """A Parquet partition of two files of several row groups each."""
    files = {}
    for name, first in (("a.parquet", 0), ("b.parquet", 30)):
        frame = good_frame(45).with_columns(
            pl.Series("id", [f"r{first + i}" for i in range(45)]),
            pl.when(pl.int_range(45) % 7 == 0)
            .then(None)
            .otherwise(pl.col("amount"))
            .alias("amount"),
        )
        buf = io.BytesIO()
        pq.write_table(frame.to_arrow(), buf, row_group_size=10)
        files[name] = buf.getvalue()
    return write_dataset(root, {DAY: files}, fmt="parquet", detectors=DETECTORS["default"])


def _bad_dataset(root: Path) -> Path:
    """A CSV partition whose second file holds a quote that never closes, late in the file."""
    head = "id,amount,count,when,kind\n"
    good_rows = "".join(good(i) + "\n" for i in range(30))
    files = {
        "a.csv": (head + good_rows).encode(),
        "b.csv": (head + good_rows + 'r99,"1.5,2,2024-01-01 10:00:00,a\n' + good_rows).encode(),
    }
    return write_dataset(root, {DAY: files})


def _sluice(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("sluice"))
    return subprocess.run(
        [exe, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def _normal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def _outputs(spec: Path) -> dict[str, Any]:
    """The committed manifest (less run ids, times and file hashes) and the rows of each side,
    with their reasons; the outputs are removed after, the committed runs counted."""
    root = spec.parent
    manifest = json.loads(manifest_path(root, DAY).read_text())
    c = manifest["counts"]
    assert c["in"] == c["clean"] + c["quarantine"]
    check_conserved(manifest_path(root, DAY))
    rows = {}
    for side in SIDES:
        frame = pl.read_parquet(manifest["outputs"][side]["path"])
        rows[side] = sorted(json.dumps(r, default=str, sort_keys=True) for r in frame.to_dicts())
    for entry in manifest["outputs"].values():
        del entry["sha256"], entry["bytes"]
    kept = list((root / "out" / "reports" / "_manifests" / f"date={DAY}").iterdir())
    work = root / "out" / "reports" / ".work"
    left = [p.name for p in work.iterdir()] if work.exists() else []
    shutil.rmtree(root / "out")
    return {
        "manifest": _normal(manifest),
        "orchestrator": manifest.get("orchestrator"),
        "rows": rows,
        "commits": len(kept),
        "work": left,
    }


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", ADDRESS_ENV)}
    return {**base, "PYTHONPATH": str(ROOT), "SLUICE_PREFECT": "0", **extra}


def _screen(spec: Path, dask: str | None = None) -> dict[str, Any]:
    """Screen the partition in this process (its ingest on the cluster at ``dask``); its
    outputs."""
    screen_partition(str(spec), DAY, dask=dask)
    return _outputs(spec)


def _run_killing(
    spec: Path, dask: Any, held: Path, batches: dict[str, str]
) -> tuple[str, str, int | None]:
    """``sluice run --dask`` on ``spec`` in a subprocess, the worker holding a task killed
    mid-task; its stdout, stderr and exit code."""
    exe = str(Path(sys.executable).with_name("sluice"))
    args = ["run", str(spec), "--partition", DAY, "--json", "--dask", dask.address]
    proc = subprocess.Popen(
        [exe, *args],
        env=_env(**batches),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = kill_held_worker(proc, held, dask, hold_s=120, finish_s=240)
    return out, err, proc.returncode


def test_sluice_run_dask_splits_the_partition_and_survives_a_killed_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    specs = [_csv_dataset(tmp_path / "csv"), _parquet_dataset(tmp_path / "parquet")]
    held = tmp_path / "held.json"
    hold = {HOLD_UNIT_ENV: "2", HOLD_FILE_ENV: str(held), HOLD_SECONDS_ENV: "60"}
    batches = {"SLUICE_BOUNDED": "1", "SLUICE_BATCH_ROWS": "9"}
    for name, value in {**batches, "SLUICE_PREFECT": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(ADDRESS_ENV, raising=False)
    with cluster(tmp_path / "cluster", [None, None], env=hold) as dask:
        expected = [_screen(spec) for spec in specs]  # while the workers start
        dask.ready()
        out, err, code = _run_killing(specs[0], dask, held, batches)
        assert code in (0, 1), err
        assert "Traceback" not in err
        assert json.loads(out)["counts"]["in"] == 70 + 50 + 4
        got = [_outputs(specs[0]), _screen(specs[1], dask.address)]
        bad = _bad_dataset(tmp_path / "bad")
        with pytest.raises(SluiceError) as single:
            screen_partition(str(bad), DAY)
        with pytest.raises(SluiceError) as split:
            screen_partition(str(bad), DAY, dask=dask.address)
        assert str(split.value) == str(single.value)
        assert split.value.exit_code == single.value.exit_code == 2
        assert not manifest_path(bad.parent, DAY).exists()
        monkeypatch.setenv("SLUICE_BOUNDED", "0")
        with caplog.at_level(logging.WARNING, logger="sluice"):
            in_memory = _screen(specs[1], dask.address)
        assert in_memory["orchestrator"] == "in-process"
        assert "not screened in bounded batches, so not split on the Dask cluster" in caplog.text
    for want, have in zip(expected, got, strict=True):
        assert have["orchestrator"] == "dask"
        assert want["orchestrator"] == "in-process"
        assert have["rows"] == want["rows"]
        assert _diff(have["manifest"], want["manifest"]) == []
        assert have["commits"] == want["commits"] == 1
        assert have["work"] == []


EVERY_KIND: dict[str, Any] = {
    "name": "every kind",
    "expectations": [
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
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "when"}},
        {
            "type": "expect_compound_columns_to_be_unique",
            "kwargs": {"column_list": ["kind", "count"]},
            "meta": {"duplicates": "keep_none"},
        },
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"max_value": 10}},
        {
            "type": "expect_column_mean_to_be_between",
            "kwargs": {"column": "amount", "max_value": 1},
        },
        {
            "type": "expect_table_columns_to_match_set",
            "kwargs": {"column_set": ["id", "amount"], "exact_match": True},
        },
        {
            "type": "expect_column_stdev_to_be_between",
            "kwargs": {"column": "count", "max_value": 1},
        },
        {"type": "expect_column_values_to_be_increasing", "kwargs": {"column": "count"}},
    ],
}
"""A failing entry of every kind the batched engine runs (row, unique, count, sum, schema,
whole); the spec's keys (``id``) are checked by the keys check, not by the suite."""


def _every_kind_dataset(root: Path) -> Path:
    """A CSV partition of two files failing every kind of entry: ids and values repeated across
    files and far apart, nulls, unicode, bad cells, a malformed record, an outlier."""
    head = "id,amount,count,when,kind\n"
    a = "".join(good(i % 50, ["a", "ü", "日本", "b"][i % 4]) + "\n" for i in range(80))
    b = "".join(good(i % 30 + 3) + "\n" for i in range(40))
    b += "r7,,5,,\nr300,x,1,2024-01-01 10:00:00,a\nr301,9e9\nr302,99999.5,3,2024-01-01 10:01:00,b\n"
    files = {"a.csv": (head + a).encode(), "b.csv": (head + b).encode()}
    return write_dataset(root, {DAY: files}, suite=EVERY_KIND, detectors=DETECTORS["default"])


@pytest.mark.slow
def test_a_worker_killed_mid_validate_task_costs_only_its_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _every_kind_dataset(tmp_path / "every")
    held = tmp_path / "held.json"
    hold = {HOLD_RANGE_ENV: "1", HOLD_FILE_ENV: str(held), HOLD_SECONDS_ENV: "60"}
    batches = {"SLUICE_BOUNDED": "1", "SLUICE_BATCH_ROWS": "9"}
    for name, value in {**batches, "SLUICE_PREFECT": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(ADDRESS_ENV, raising=False)
    with cluster(tmp_path / "cluster", [None, None], env=hold) as dask:
        expected = _screen(spec)  # while the workers start
        dask.ready()
        out, err, code = _run_killing(spec, dask, held, batches)
    assert code in (0, 1), err
    assert "Traceback" not in err
    assert json.loads(out)["counts"]["in"] == 80 + 40 + 4
    got = _outputs(spec)
    assert got["orchestrator"] == "dask"
    assert got["rows"] == expected["rows"]
    assert _diff(got["manifest"], expected["manifest"]) == []
    assert got["commits"] == expected["commits"] == 1
    assert got["work"] == []
    validation = got["manifest"]["validation"]
    states = [(v["type"], v["state"]) for v in validation["verdicts"]]
    assert states == [(e["type"], "failed") for e in EVERY_KIND["expectations"]]
    assert validation["keys"]["enforced_by"] == "keys check"
    assert validation["keys"]["duplicate_rows"] > 40
    assert got["manifest"]["counts"]["quarantine"] > 40


def test_a_shared_value_survives_the_death_of_the_worker_holding_it(tmp_path: Path) -> None:
    """What every task of a map takes is shipped once as a task's result: when the worker
    holding it dies, it is computed again (a scattered value would be lost, and the tasks
    needing it cancelled, once the active memory manager dropped its other replicas)."""
    with cluster(tmp_path / "cluster", [None, None]) as dask:
        dask.ready()
        address = Address(dask.address, "test")
        client = connect(address)
        try:
            tasks = DaskTasks(client, address, grace=30)
            shared = tasks.share(("shared",))
            shared.result(timeout=60)
            (holder,) = client.who_has(shared)[shared.key]
            pid = client.run(os.getpid, workers=[holder])[holder]
            (victim,) = [w for w in dask.workers if w.pid == pid]
            victim.kill()
            victim.wait(timeout=20)
            got = tasks.map(operator.add, [("a",), ("b",)], shared)
        finally:
            client.close()
    assert got == [("a", "shared"), ("b", "shared")]


def test_sluice_run_without_a_scheduler_exits_2_before_any_data_moves(tmp_path: Path) -> None:
    spec = _csv_dataset(tmp_path / "csv")
    address = f"tcp://127.0.0.1:{_free_port()}"
    env = _env(SLUICE_BOUNDED="1")
    done = _sluice(["run", str(spec), "--partition", DAY, "--dask", address], env)
    assert done.returncode == 2, done.stderr
    assert f"no Dask scheduler answers at {address} (from --dask)" in done.stderr
    assert "Traceback" not in done.stderr
    assert not manifest_path(spec.parent, DAY).exists()
    work = spec.parent / "out" / "reports" / ".work"
    assert not work.exists() or list(work.iterdir()) == []
    both = _sluice(["run", str(spec), "--partition", DAY, "--dask", address, "--prefect"], env)
    assert both.returncode == 2, both.stderr
    assert "--dask and --prefect do not go together" in both.stderr
