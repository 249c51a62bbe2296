"""Two runs of the same partition at once: one waits for the other, or refuses after a timeout."""

from __future__ import annotations

import itertools
import multiprocessing as mp
import time
from pathlib import Path

import pytest

from sluice.pipeline import run_partition
from sluice.write import OutputError, PartitionBusy, partition_lock
from tests.robustness.corpus import csv_text, good
from tests.robustness.crash import run_logged
from tests.robustness.support import (
    check_conserved,
    leftovers,
    manifest_path,
    same_outputs,
    snapshot,
    write_dataset,
)

DAY = "2024-01-01"
DATA = csv_text(*[good(i) for i in range(40)], "r99,1")
HOLD_S = 0.6


def _intervals(log: Path) -> tuple[list[tuple[float, float, str]], list[tuple[float, str]]]:
    """The spans the lock was held, and the moments a run started to wait for it."""
    opened: dict[str, float] = {}
    spans, waits = [], []
    for line in log.read_text().splitlines():
        pid, what, when = line.split()
        if what == "waiting":
            waits.append((float(when), pid))
        elif what == "acquired":
            opened[pid] = float(when)
        else:
            spans.append((opened.pop(pid), float(when), pid))
    assert not opened
    return sorted(spans), waits


def test_two_runs_of_one_partition_take_turns(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    spec = write_dataset(root, {DAY: DATA})
    log = tmp_path / "locks.log"
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.robustness.crash", "great_expectations.expectations"])
    runs = [
        ctx.Process(target=run_logged, args=(str(spec), DAY, str(log), HOLD_S)) for _ in range(2)
    ]
    for proc in runs:
        proc.start()
        time.sleep(0.1)
    for proc in runs:
        proc.join(timeout=300)
    assert [proc.exitcode for proc in runs] == [0, 0]

    spans, waits = _intervals(log)
    assert len(spans) == 4
    assert {pid for _, _, pid in spans} == {str(proc.pid) for proc in runs}
    for (_, end, _), (start, _, _) in itertools.pairwise(spans):
        assert end <= start, spans
    waited = [(w, pid) for w, pid in waits for s, e, o in spans if o != pid and s < w < e]
    assert waited, "the runs never overlapped: nothing was tested"
    assert leftovers(root / "out") == []
    check_conserved(manifest_path(root, DAY), rows_in=41)
    together = snapshot(root / "out")
    run_partition(str(spec), DAY)
    assert same_outputs(together, snapshot(root / "out")) == []


def test_a_run_refuses_after_the_lock_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_dataset(tmp_path, {DAY: DATA})
    run_partition(str(spec), DAY)
    before = snapshot(tmp_path / "out")
    monkeypatch.setenv("SLUICE_LOCK_TIMEOUT", "0.3")
    started = time.monotonic()
    with (
        partition_lock(tmp_path / "out" / "reports", f"date={DAY}") as held,
        pytest.raises(PartitionBusy, match=r"another run is writing this partition") as info,
    ):
        run_partition(str(spec), DAY)
    assert time.monotonic() - started >= 0.3
    assert str(held) in str(info.value)
    assert "SLUICE_LOCK_TIMEOUT" in str(info.value)
    assert snapshot(tmp_path / "out") == before
    assert leftovers(tmp_path / "out") == []


def test_other_partitions_do_not_wait(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = write_dataset(tmp_path, {DAY: DATA, "2024-01-02": DATA})
    monkeypatch.setenv("SLUICE_LOCK_TIMEOUT", "0")
    with partition_lock(tmp_path / "out" / "reports", "date=2024-01-02"):
        summary = run_partition(str(spec), DAY)
    assert summary["counts"]["in"] == 41


def test_a_bad_lock_timeout_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_dataset(tmp_path, {DAY: DATA})
    monkeypatch.setenv("SLUICE_LOCK_TIMEOUT", "ten minutes")
    with pytest.raises(OutputError, match=r"SLUICE_LOCK_TIMEOUT must be a number"):
        run_partition(str(spec), DAY)
