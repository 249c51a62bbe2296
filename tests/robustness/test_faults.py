"""Faults: SIGKILL at every step of a run, a full disk and a read-only output root.

A partition screened once (``v1``) is screened again from new input (``v2``) by a child process
that is killed at one probe of :mod:`tests.robustness.crash`. At the moment of the kill a reader
following the read protocol sees all of ``v1``, all of ``v2`` or "not committed", never a mix;
over the probes the reader's view goes ``v1 ... none ... v2`` and never back. Then the run is
repeated in this process: the outputs equal an undisturbed ``v2`` run and nothing is left behind.
"""

from __future__ import annotations

import errno
import json
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from multiprocessing.context import ForkServerContext
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from sluice.core.errors import SluiceError
from sluice.pipeline import run_partition
from sluice.write import NotCommitted, OutputError, load_partition
from tests.robustness.corpus import csv_text, good
from tests.robustness.crash import Mode, run_and_kill
from tests.robustness.support import (
    check_conserved,
    leftovers,
    manifest_path,
    same_outputs,
    snapshot,
    write_dataset,
)

DAY = "2024-01-01"
V1 = csv_text(*[good(i) for i in range(20)], "r90,2")
V2 = csv_text(*[good(i) for i in range(30)], "r91,2", "r92,3,3,,z,surplus", good(5))
DATA_OUTPUTS = ("clean", "quarantine", "failures")


@dataclass
class Scene:
    """A workspace with the outputs of v1 and of v2 kept aside to restore and compare."""

    root: Path
    spec: Path
    v1: Path
    v2: Path
    trace: list[str]
    ctx: ForkServerContext

    @property
    def out(self) -> Path:
        """The output roots' parent."""
        return self.root / "out"

    def restore_v1(self) -> None:
        """Put the v1 outputs back and the v2 input in place."""
        shutil.rmtree(self.out)
        shutil.copytree(self.v1, self.out)

    def kill(self, at: int | None, mode: Mode = "before", trace: Path | None = None) -> int:
        """Run v2 in a child killed at probe ``at``; returns its exit code."""
        proc = self.ctx.Process(
            target=run_and_kill,
            args=(str(self.spec), DAY, str(self.root), at),
            kwargs={"mode": mode, "trace": str(trace) if trace else None},
        )
        proc.start()
        proc.join(timeout=300)
        if proc.is_alive():
            proc.kill()
            proc.join()
            pytest.fail(f"the child run killed at probe {at} did not end")
        assert proc.exitcode is not None
        return proc.exitcode


def _data_shas(out: Path) -> dict[str, str]:
    manifest = json.loads((out / "reports" / f"date={DAY}" / "manifest.json").read_text())
    return {k: manifest["outputs"][k]["sha256"] for k in DATA_OUTPUTS}


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    base = tmp_path_factory.mktemp("faults")
    root = base / "ws"
    root.mkdir()
    spec = write_dataset(root, {DAY: V1})
    run_partition(str(spec), DAY)
    shutil.copytree(root / "out", base / "v1")
    write_dataset(root, {DAY: V2})
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.robustness.crash", "great_expectations.expectations"])
    scene = Scene(root, spec, base / "v1", base / "v2", [], ctx)
    trace = base / "trace.json"
    assert scene.kill(None, trace=trace) == 0
    scene.trace = json.loads(trace.read_text())
    shutil.copytree(root / "out", base / "v2")
    scene.restore_v1()
    return scene


def _reader_view(scene: Scene) -> str:
    """What a protocol reader sees now: "v1", "v2" or "none"."""
    try:
        part = load_partition(manifest_path(scene.root, DAY))
    except NotCommitted:
        return "none"
    check_conserved(manifest_path(scene.root, DAY))
    shas = {k: part.manifest["outputs"][k]["sha256"] for k in DATA_OUTPUTS}
    for name, folder in (("v1", scene.v1), ("v2", scene.v2)):
        if shas == _data_shas(folder):
            return name
    raise AssertionError(f"a reader sees outputs of neither run: {shas}")


def _kill_and_recover(scene: Scene, at: int, mode: Mode) -> str:
    scene.restore_v1()
    code = scene.kill(at, mode)
    assert code == -9, f"probe {at} ({scene.trace[at]}): the child ended with {code}"
    view = _reader_view(scene)
    run_partition(str(scene.spec), DAY)
    assert leftovers(scene.out) == []
    assert same_outputs(snapshot(scene.out), snapshot(scene.v2)) == []
    check_conserved(manifest_path(scene.root, DAY), rows_in=33)
    return view


def _key_probes(trace: list[str]) -> list[tuple[int, Mode]]:
    """A probe for every phase: reading, work files, staging clean and quarantine (whole and
    torn), the journal, every rename of the swap, the report and manifest (torn), tidying up."""
    wanted: list[tuple[int, Mode]] = []
    firsts: set[str] = set()
    for i, probe in enumerate(trace):
        step, path = probe.split(" ", 1)
        if step == "read" or (step == "os.rename" and "/_history/" not in path):
            wanted.append((i, "before"))
        elif (step == "write_parquet" and ".staging-" in path) or (
            step == "write_text" and path.endswith(("manifest.json", "report.html"))
        ):
            wanted += [(i, "before"), (i, "torn")]
        elif step in ("write_parquet", "shutil.rmtree", "os.remove") and step not in firsts:
            firsts.add(step)
            wanted.append((i, "before"))
        elif ".commit-" in path and step == "open-for-write":
            wanted.append((i, "before"))
    return wanted


def _all_probes(trace: list[str]) -> list[tuple[int, Mode]]:
    out: list[tuple[int, Mode]] = []
    for i, probe in enumerate(trace):
        out.append((i, "before"))
        if probe.startswith(("write_parquet", "write_text")):
            out.append((i, "torn"))
    return out


def _check_views(scene: Scene, probes: list[tuple[int, Mode]]) -> dict[str, int]:
    views = [_kill_and_recover(scene, at, mode) for at, mode in probes]
    order = "".join({"v1": "1", "none": "0", "v2": "2"}[v] for v in views)
    assert re.fullmatch(r"1*0*2*", order), list(zip(probes, views, strict=True))
    return {v: views.count(v) for v in ("v1", "none", "v2")}


def test_the_trace_covers_every_phase(scene: Scene) -> None:
    text = "\n".join(scene.trace)
    for needle in (
        "read ",
        "write_parquet ",
        "/clean/.staging-",
        "/quarantine/.staging-",
        ".commit-",
        "manifest.json",
        "shutil.rmtree ",
    ):
        assert needle in text, needle
    assert len(_key_probes(scene.trace)) >= 15


def test_sigkill_at_each_phase_then_rerun(scene: Scene) -> None:
    seen = _check_views(scene, _key_probes(scene.trace))
    assert seen["v1"] > 0
    assert seen["v2"] > 0
    assert seen["none"] > 0


@pytest.mark.slow
def test_sigkill_at_every_probe_then_rerun(scene: Scene) -> None:
    seen = _check_views(scene, _all_probes(scene.trace))
    assert sum(seen.values()) == len(_all_probes(scene.trace))


@pytest.fixture
def screened(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A partition screened once from v1, with v2 in place as the next input."""
    spec = write_dataset(tmp_path, {DAY: V1})
    run_partition(str(spec), DAY)
    before = snapshot(tmp_path / "out")
    write_dataset(tmp_path, {DAY: V2})
    return spec, before


def _fail_when(monkeypatch: pytest.MonkeyPatch, marker: str, code: int) -> None:
    """Make writes of Parquet and text files whose path holds ``marker`` fail with ``code``."""
    write_parquet, write_text = pl.DataFrame.write_parquet, Path.write_text

    def parquet(self: pl.DataFrame, file: Any, *args: Any, **kwargs: Any) -> None:
        if marker in str(file):
            raise OSError(code, os.strerror(code), str(file))
        write_parquet(self, file, *args, **kwargs)

    def text(self: Path, data: str, *args: Any, **kwargs: Any) -> int:
        if marker in str(self):
            raise OSError(code, os.strerror(code), str(self))
        return write_text(self, data, *args, **kwargs)

    monkeypatch.setattr(pl.DataFrame, "write_parquet", parquet)
    monkeypatch.setattr(Path, "write_text", text)


@pytest.mark.parametrize(
    ("marker", "code", "where"),
    [
        ("/clean/.staging-", errno.ENOSPC, "No space left on device"),
        ("/quarantine/.staging-", errno.EDQUOT, "Disk quota exceeded"),
        ("manifest.json", errno.ENOSPC, "No space left on device"),
        ("/.work/", errno.EROFS, "Read-only file system"),
    ],
)
def test_write_errors_are_clear_and_keep_the_previous_outputs(
    screened: tuple[Path, dict[str, bytes]],
    monkeypatch: pytest.MonkeyPatch,
    marker: str,
    code: int,
    where: str,
) -> None:
    spec, before = screened
    _fail_when(monkeypatch, marker, code)
    with pytest.raises(OutputError, match=rf"cannot write .*{re.escape(marker)}.*: {where}"):
        run_partition(str(spec), DAY)
    out = spec.parent / "out"
    assert snapshot(out) == before
    assert leftovers(out) == []
    check_conserved(manifest_path(spec.parent, DAY))


def test_read_only_output_root_is_a_clear_error(
    screened: tuple[Path, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, before = screened
    mkdir = Path.mkdir

    def read_only(self: Path, *args: Any, **kwargs: Any) -> None:
        if ".staging-" in self.name:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(OutputError, match=r"cannot write under .*/out/clean: Read-only file"):
        run_partition(str(spec), DAY)
    assert snapshot(spec.parent / "out") == before
    assert leftovers(spec.parent / "out") == []


def test_an_error_after_the_first_swap_puts_the_old_folders_back(
    screened: tuple[Path, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec, before = screened

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the report failed")

    monkeypatch.setattr("sluice.report.stage_report", broken)
    with pytest.raises(RuntimeError, match="the report failed"):
        run_partition(str(spec), DAY)
    assert snapshot(spec.parent / "out") == before
    assert leftovers(spec.parent / "out") == []


def _unshare_works() -> bool:
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs user namespaces to mount a tmpfs")
def test_real_full_disk_and_read_only_mount(tmp_path: Path) -> None:
    """A 2 MiB tmpfs in a private mount namespace: filled by v2, then remounted read-only."""
    out = tmp_path / "out"
    out.mkdir()
    script = (
        f"mount -t tmpfs -o size=2m tmpfs {out} && "
        f"exec {sys.executable} -m tests.robustness.full_disk {tmp_path}"
    )
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert re.search(r"cannot write .*: No space left on device", result["full"]), result
    assert re.search(r"cannot write under .*: Read-only file system", result["read_only"]), result
    assert result["intact_after_full"] is True
    assert result["intact_after_read_only"] is True
    assert result["leftovers"] == []


def test_errors_name_the_output(tmp_path: Path) -> None:
    spec = write_dataset(tmp_path, {DAY: V1})
    (tmp_path / "out").write_text("a file where the output folders should be")
    with pytest.raises(SluiceError, match=r"cannot write under .*out/reports: Not a directory"):
        run_partition(str(spec), DAY)
