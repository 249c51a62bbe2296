"""The commit protocol of ``sluice.write``: every state a dead run can leave, and the reader."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

import sluice.pipeline.commit
from sluice.core.errors import SluiceError
from sluice.core.files import file_sha256
from sluice.decide import checksum
from sluice.pipeline import run_partition
from sluice.write import (
    MARKER_NAME,
    PARQUET_NAME,
    ConservationError,
    NotCommitted,
    OutputError,
    PartitionCommit,
    PartitionWriter,
    foreign_reason,
    journal_path,
    load_partition,
    prove_conservation,
    recover,
    write_parquet,
)
from tests.conftest import thin
from tests.robustness.corpus import csv_text, good
from tests.robustness.support import (
    check_conserved,
    leftovers,
    manifest_path,
    snapshot,
    write_dataset,
)

DIRNAME = "date=2024-01-01"
SIDES = ("clean", "quarantine", "reports")


def _roots(tmp_path: Path) -> dict[str, Path]:
    return {side: tmp_path / side for side in SIDES}


def _publish(roots: dict[str, Path], value: int) -> None:
    """Commit one version: a file per side holding ``value``."""
    with PartitionCommit(roots, DIRNAME, f"run-{value}") as commit:
        for side in SIDES:
            write_parquet(pl.DataFrame({"v": [value]}), commit.writer(side).path("x.parquet"))
        commit.commit()


def _versions(roots: dict[str, Path]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for side, root in roots.items():
        path = root / DIRNAME / "x.parquet"
        out[side] = pl.read_parquet(path)["v"][0] if path.exists() else None
    return out


def _dead_commit(roots: dict[str, Path], value: int, swapped: tuple[str, ...]) -> PartitionCommit:
    """A commit whose process 'died' after swapping ``swapped`` (its exit never runs)."""
    commit = PartitionCommit(roots, DIRNAME, f"run-{value}").__enter__()
    for side in SIDES:
        write_parquet(pl.DataFrame({"v": [value]}), commit.writer(side).path("x.parquet"))
    if swapped:
        commit.swap(*swapped)
    return commit


def _names(roots: dict[str, Path]) -> list[str]:
    return sorted(p.name for root in roots.values() if root.exists() for p in root.iterdir())


@pytest.mark.parametrize(
    ("swapped", "expected"),
    [
        ((), 1),
        (("clean",), 1),
        (("clean", "quarantine"), 1),
        (("clean", "quarantine", "reports"), 2),
    ],
)
def test_recover_rolls_back_before_the_commit_point_and_completes_after(
    tmp_path: Path, swapped: tuple[str, ...], expected: int
) -> None:
    roots = _roots(tmp_path)
    _publish(roots, 1)
    _dead_commit(roots, 2, swapped)
    assert journal_path(roots["reports"], DIRNAME).exists() == bool(swapped)
    done = recover(roots, DIRNAME)
    assert done
    assert _versions(roots) == dict.fromkeys(SIDES, expected)
    assert _names(roots) == [DIRNAME] * 3


def test_recover_a_first_commit_that_died_leaves_nothing(tmp_path: Path) -> None:
    roots = _roots(tmp_path)
    _dead_commit(roots, 1, ("clean",))
    recover(roots, DIRNAME)
    assert _versions(roots) == dict.fromkeys(SIDES)
    assert _names(roots) == []


def test_recover_finishes_a_half_done_rename(tmp_path: Path) -> None:
    roots = _roots(tmp_path)
    _publish(roots, 1)
    commit = _dead_commit(roots, 2, ("clean",))
    w = commit.writer("quarantine")
    w.final.rename(w.trash)  # died between the two renames of a swap
    recover(roots, DIRNAME)
    assert _versions(roots) == dict.fromkeys(SIDES, 1)
    assert _names(roots) == [DIRNAME] * 3


def test_recover_is_idempotent_and_leaves_other_partitions_alone(tmp_path: Path) -> None:
    roots = _roots(tmp_path)
    _publish(roots, 1)
    other = PartitionCommit(roots, "date=2024-01", "month").__enter__()
    longer = PartitionCommit(roots, "date=2024-01-011", "odd").__enter__()
    _dead_commit(roots, 2, ("clean",))
    (roots["reports"] / f".commit-{DIRNAME}.json.0123456789ab.tmp").write_text("{")
    recover(roots, DIRNAME)
    assert recover(roots, DIRNAME) == []
    assert other.writer("clean").staging.exists()
    assert longer.writer("clean").staging.exists()
    assert _versions(roots) == dict.fromkeys(SIDES, 1)


def test_rollback_in_process_on_error(tmp_path: Path) -> None:
    roots = _roots(tmp_path)
    _publish(roots, 1)
    seen: list[int | None] = []

    def fail_after_two_swaps() -> None:
        with PartitionCommit(roots, DIRNAME, "run-2") as commit:
            for side in SIDES:
                write_parquet(pl.DataFrame({"v": [2]}), commit.writer(side).path("x.parquet"))
            commit.swap("clean", "quarantine")
            seen.append(_versions(roots)["clean"])
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_after_two_swaps()
    assert seen == [2]
    assert _versions(roots) == dict.fromkeys(SIDES, 1)
    assert _names(roots) == [DIRNAME] * 3


def test_a_symlinked_partition_folder_is_refused_and_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not sluice's")
    roots = _roots(tmp_path / "roots")
    roots["clean"].mkdir(parents=True)
    (roots["clean"] / DIRNAME).symlink_to(outside, target_is_directory=True)
    with pytest.raises(OutputError, match=r"clean/date=2024-01-01: refusing .* symbolic link"):
        _publish(roots, 1)
    assert (outside / "keep.txt").read_text() == "not sluice's"
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    assert (roots["clean"] / DIRNAME).is_symlink()
    assert _names(roots) == [DIRNAME]


def test_every_staged_folder_carries_a_marker_naming_its_run(tmp_path: Path) -> None:
    roots = _roots(tmp_path)
    with PartitionCommit(roots, DIRNAME, "run-7", dataset="tiny") as commit:
        for side in SIDES:
            write_parquet(pl.DataFrame({"v": [7]}), commit.writer(side).path("x.parquet"))
        commit.commit()
    for side in SIDES:
        marker = json.loads((roots[side] / DIRNAME / MARKER_NAME).read_text())
        assert marker == {
            "made_by": "sluice",
            "dataset": "tiny",
            "partition": DIRNAME,
            "side": side,
            "run_id": "run-7",
        }


def _foreign(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    (folder / "data.csv").write_bytes(b"id\n1\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "more.csv").write_bytes(b"id\n2\n")
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("side", SIDES)
def test_a_folder_without_a_marker_is_never_replaced(tmp_path: Path, side: str) -> None:
    roots = _roots(tmp_path)
    _publish(roots, 1)
    shutil.rmtree(roots[side] / DIRNAME)
    before = _foreign(roots[side] / DIRNAME)
    with pytest.raises(OutputError) as err:
        _publish(roots, 2)
    assert f"{roots[side] / DIRNAME}: refusing to replace a folder sluice did not make" in str(
        err.value
    )
    assert "nothing was changed" in str(err.value)
    folder = roots[side] / DIRNAME
    after = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before
    others = [s for s in SIDES if s != side]
    assert {s: _versions(roots)[s] for s in others} == dict.fromkeys(others, 1)
    assert _names(roots) == [DIRNAME] * 3


@pytest.mark.parametrize(
    ("marker", "why"),
    [
        ("{torn", "cannot be read"),
        ('{"made_by": "someone"}', "is not sluice's"),
        ('{"made_by": "sluice", "partition": "date=1999-01-01"}', "names partition"),
        (
            '{"made_by": "sluice", "partition": "date=2024-01-01", "dataset": "other"}',
            "holds dataset 'other', not 'tiny'",
        ),
    ],
)
def test_a_marker_of_another_partition_or_dataset_is_refused(
    tmp_path: Path, marker: str, why: str
) -> None:
    folder = tmp_path / "clean" / DIRNAME
    folder.mkdir(parents=True)
    (folder / MARKER_NAME).write_text(marker)
    assert why in (foreign_reason(folder, dataset="tiny") or "")
    with pytest.raises(OutputError, match="refusing to replace"):
        PartitionCommit(_roots(tmp_path), DIRNAME, "r", dataset="tiny").__enter__()
    assert sorted(p.name for p in folder.iterdir()) == [MARKER_NAME]


def _legacy(committed: Path) -> dict[str, Path]:
    """Make a committed partition look written by an older sluice: no markers."""
    manifest = json.loads(committed.read_text())
    folders = {k: Path(v["path"]).parent for k, v in manifest["outputs"].items()}
    for folder in set(folders.values()):
        (folder / MARKER_NAME).unlink()
    return folders


def test_an_older_versions_folder_is_adopted_when_its_manifest_names_every_file(
    committed: Path,
) -> None:
    spec = committed.parents[3] / "tiny.yaml"
    folders = _legacy(committed)
    for folder in set(folders.values()):
        assert foreign_reason(folder, dataset="tiny", manifest=committed) is None
    run_partition(str(spec), "2024-01-01")
    check_conserved(committed, rows_in=3)
    for folder in set(folders.values()):
        assert (folder / MARKER_NAME).is_file()


@pytest.mark.parametrize("change", ["extra_file", "edited_file", "other_dataset", "no_manifest"])
def test_an_older_versions_folder_that_differs_from_its_manifest_is_refused(
    committed: Path, change: str
) -> None:
    spec = committed.parents[3] / "tiny.yaml"
    folders = _legacy(committed)
    clean = folders["clean"]
    if change == "extra_file":
        (clean / "notes.txt").write_text("mine")
    elif change == "edited_file":
        (clean / "part-00000.parquet").write_bytes(b"PAR1 edited")
    elif change == "other_dataset":
        doc = json.loads(committed.read_text())
        committed.write_text(json.dumps({**doc, "dataset": "other"}))
    else:
        committed.unlink()
    before = {p.name: p.read_bytes() for p in clean.iterdir()}
    with pytest.raises(SluiceError, match=r"clean/date=2024-01-01: refusing to replace"):
        run_partition(str(spec), "2024-01-01")
    assert {p.name: p.read_bytes() for p in clean.iterdir()} == before
    assert leftovers(committed.parents[2]) == []


@pytest.fixture
def committed(tmp_path: Path) -> Path:
    spec = write_dataset(tmp_path, {"2024-01-01": csv_text(good(0), good(1), "r9,2")})
    run_partition(str(spec), "2024-01-01")
    return manifest_path(tmp_path, "2024-01-01")


def test_reader_accepts_a_committed_partition(committed: Path) -> None:
    part = load_partition(committed)
    assert set(part.frames) >= {"clean", "quarantine", "failures"}
    assert part.frames["clean"].height + part.frames["quarantine"].height == 3
    check_conserved(committed, rows_in=3)


@pytest.mark.parametrize("side", ["clean", "quarantine", "failures"])
def test_reader_refuses_a_file_the_manifest_does_not_name(committed: Path, side: str) -> None:
    path = Path(json.loads(committed.read_text())["outputs"][side]["path"])
    frame = pl.read_parquet(path)
    frame.head(0).write_parquet(path)
    with pytest.raises(NotCommitted, match="sha256 differs"):
        load_partition(committed)
    path.unlink()
    with pytest.raises(NotCommitted, match="named by"):
        load_partition(committed)


def test_reader_refuses_a_missing_or_torn_manifest(committed: Path) -> None:
    text = committed.read_text()
    committed.write_text(text[: len(text) // 2])
    with pytest.raises(NotCommitted, match="no committed manifest"):
        load_partition(committed)
    committed.unlink()
    with pytest.raises(NotCommitted, match="no committed manifest"):
        load_partition(committed)


def test_a_run_of_another_partition_recovers_a_dead_commit(tmp_path: Path) -> None:
    spec = write_dataset(
        tmp_path, {"2024-01-01": csv_text(good(0)), "2024-01-02": csv_text(good(1))}
    )
    run_partition(str(spec), "2024-01-01")
    roots = {side: tmp_path / "out" / side for side in SIDES}
    commit = PartitionCommit(roots, DIRNAME, "dead").__enter__()
    for side in SIDES:
        (commit.writer(side).path("junk")).write_text("half a run")
    commit.swap("clean")
    with pytest.raises(NotCommitted):
        load_partition(manifest_path(tmp_path, "2024-01-01"))
    run_partition(str(spec), "2024-01-02")
    assert leftovers(tmp_path / "out") == []
    check_conserved(manifest_path(tmp_path, "2024-01-01"), rows_in=1)
    check_conserved(manifest_path(tmp_path, "2024-01-02"), rows_in=1)


def test_a_failing_rename_at_the_commit_point_puts_everything_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    roots = _roots(tmp_path)
    _publish(roots, 1)
    rename = Path.rename

    def flaky(self: Path, target: str | Path) -> Path:
        if self.name.startswith(".staging-") and self.parent == roots["reports"]:
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(self))
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", flaky)
    with pytest.raises(OutputError, match=r"cannot move outputs into .*reports/date=2024-01-01"):
        _publish(roots, 2)
    monkeypatch.undo()
    assert _versions(roots) == dict.fromkeys(SIDES, 1)
    assert _names(roots) == [DIRNAME] * 3


def test_a_single_writer_puts_the_old_folder_back_when_its_swap_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with PartitionWriter(tmp_path, DIRNAME) as w:
        write_parquet(pl.DataFrame({"v": [1]}), w.path("x.parquet"))
        w.commit()
    rename = Path.rename

    def flaky(self: Path, target: str | Path) -> Path:
        if self.name.startswith(".staging-"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return rename(self, target)

    def publish_2() -> None:
        with PartitionWriter(tmp_path, DIRNAME) as w:
            write_parquet(pl.DataFrame({"v": [2]}), w.path("x.parquet"))
            w.commit()

    monkeypatch.setattr(Path, "rename", flaky)
    with pytest.raises(OutputError, match="No space left"):
        publish_2()
    assert pl.read_parquet(tmp_path / DIRNAME / "x.parquet")["v"].to_list() == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == [DIRNAME]


def _stage_ids(
    commit: PartitionCommit, clean: list[int], quarantine: list[int]
) -> dict[str, tuple[Path, str]]:
    files: dict[str, tuple[Path, str]] = {}
    for side, ids in (("clean", clean), ("quarantine", quarantine)):
        path = commit.writer(side).path(PARQUET_NAME)
        write_parquet(pl.DataFrame({"_row_id": pl.Series(ids, dtype=pl.UInt64)}), path)
        files[side] = (path, file_sha256(path))
    return files


IDS_IN = pl.Series("_row_id", [11, 12, 13, 2**64 - 1], dtype=pl.UInt64)


def test_conservation_is_read_back_from_the_staged_files(tmp_path: Path) -> None:
    with PartitionCommit(_roots(tmp_path), DIRNAME, "r") as commit:
        files = _stage_ids(commit, [13, 11], [2**64 - 1, 12])
        back = prove_conservation(files, IDS_IN, "_row_id")
    assert back == {
        "clean": {"rows": 2, "checksum": f"{24:016x}"},
        "quarantine": {"rows": 2, "checksum": f"{11:016x}"},
    }


@pytest.mark.parametrize(
    ("clean", "quarantine", "complaints"),
    [
        ([11, 12], [13], ["4 rows came in, the files hold 2 clean + 1 quarantine", "1 input"]),
        ([11, 12, 13], [13, 2**64 - 1], ["1 row ids are written twice"]),
        ([11, 12, 13], [99], ["1 rows in the files did not come in", "1 input rows are in no"]),
        ([11, 11, 12, 13], [], ["1 row ids are written twice", "1 input rows are in no file"]),
    ],
)
def test_a_staged_file_that_loses_or_doubles_rows_aborts_the_commit(
    tmp_path: Path, clean: list[int], quarantine: list[int], complaints: list[str]
) -> None:
    roots = _roots(tmp_path)
    _publish(roots, 1)

    def publish() -> None:
        with PartitionCommit(roots, DIRNAME, "r") as commit:
            prove_conservation(_stage_ids(commit, clean, quarantine), IDS_IN, "_row_id")
            commit.commit()

    with pytest.raises(ConservationError) as err:
        publish()
    for complaint in complaints:
        assert complaint in str(err.value)
    assert "Nothing was committed" in str(err.value)
    assert err.value.exit_code == 3
    assert _versions(roots) == dict.fromkeys(SIDES, 1)
    assert _names(roots) == [DIRNAME] * 3


def test_a_staged_file_changed_after_hashing_or_unreadable_aborts(tmp_path: Path) -> None:
    with PartitionCommit(_roots(tmp_path), DIRNAME, "r") as commit:
        files = _stage_ids(commit, [11, 12], [13, 2**64 - 1])
        path = files["clean"][0]
        good_bytes = path.read_bytes()
        _stage_ids(commit, [11, 12, 13], [2**64 - 1])
        with pytest.raises(ConservationError, match="changed after it was written"):
            prove_conservation(files, IDS_IN, "_row_id")
        path.write_bytes(good_bytes[:-9])
        torn = {**files, "clean": (path, file_sha256(path))}
        with pytest.raises(ConservationError, match=r"cannot read back .*part-00000\.parquet"):
            prove_conservation(torn, IDS_IN, "_row_id")
        with pytest.raises(ConservationError, match=r"the clean file holds 2 rows .* would say 3"):
            prove_conservation(
                _stage_ids(commit, [11, 12], [13, 2**64 - 1]),
                IDS_IN,
                "_row_id",
                {"clean": {"rows": 3, "checksum": f"{36:016x}"}},
            )


def test_a_corrupted_staged_clean_file_aborts_the_run_and_keeps_the_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_dataset(tmp_path, {"2024-01-01": csv_text(good(0), good(1), "r9,2")})
    run_partition(str(spec), "2024-01-01")
    before = snapshot(tmp_path / "out")
    write_dataset(tmp_path, {"2024-01-01": csv_text(*(good(i) for i in range(5)))})

    def drop_a_clean_row(frame: pl.DataFrame, path: Path, metadata: Any = None) -> None:
        if path.parent.name.startswith(".staging-") and path.parent.parent.name == "clean":
            frame = frame.head(frame.height - 1)
        write_parquet(frame, path, metadata)

    monkeypatch.setattr(sluice.pipeline.commit, "write_parquet", drop_a_clean_row)
    with pytest.raises(ConservationError, match="5 rows came in, the files hold 4 clean"):
        run_partition(str(spec), "2024-01-01")
    assert snapshot(tmp_path / "out") == before
    assert leftovers(tmp_path / "out") == []
    monkeypatch.undo()
    run_partition(str(spec), "2024-01-01")
    manifest = check_conserved(manifest_path(tmp_path, "2024-01-01"), rows_in=5)
    part = load_partition(manifest_path(tmp_path, "2024-01-01"))
    assert manifest["conservation"]["read_back"] == {
        side: {"rows": part.frames[side].height, "checksum": checksum(part.frames[side]["_row_id"])}
        for side in ("clean", "quarantine")
    }


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (lock files aside), by relative path."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".locks" not in p.parts
    }


def _sluice(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("sluice")
    return subprocess.run(
        [str(exe), *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


def _hostile_spec(root: Path, spec: Path, side: str, spelling: str) -> Path:
    doc = yaml.safe_load(spec.read_text())
    doc["outputs"][side] = spelling
    hostile = root / "hostile.yaml"
    hostile.write_text(yaml.safe_dump(doc, sort_keys=False))
    return hostile


SOURCE_SPELLINGS = {
    "equal": "raw",
    "nested": "raw/date=2024-01-01",
    "dot_slash": "./raw",
    "trailing_slash": "raw/",
    "dot_dot": "out/../raw",
    "symlink": "lake",
    "containing": ".",
}
ROOT_SPELLINGS = {
    "equal": "out/reports",
    "dot_inside": "out/./reports",
    "trailing_slash": "out/reports/",
    "dot_slash": "./out/reports",
    "symlink": "alias",
    "nested": "out/reports/clean",
}


@pytest.fixture(scope="module")
def screened_by_cli(
    prefect_api: None, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, dict[str, str]]:
    """A partition screened once through ``sluice run``; the spec, its folder and environment."""
    import prefect.settings

    root = tmp_path_factory.mktemp("cli")
    spec = write_dataset(root, {"2024-01-01": csv_text(good(0), good(1), "r9,2")})
    (root / "lake").symlink_to(root / "raw", target_is_directory=True)
    (root / "alias").symlink_to(root / "out" / "reports", target_is_directory=True)
    env = {
        **os.environ,
        "PREFECT_API_URL": str(prefect.settings.PREFECT_API_URL.value()),
        "PREFECT_HOME": str(tmp_path_factory.mktemp("cli-prefect-home")),
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    first = _sluice("run", str(spec), "--partition", "2024-01-01", env=env)
    assert first.returncode == 0, first.stderr
    check_conserved(manifest_path(root, "2024-01-01"), rows_in=3)
    return root, spec, env


OVERLAPS = [("clean", s) for s in sorted(SOURCE_SPELLINGS)] + [
    ("quarantine", s) for s in sorted(ROOT_SPELLINGS)
]


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("side", "spelling"),
    thin(OVERLAPS, keep=[i for i, (_, s) in enumerate(OVERLAPS) if s in ("equal", "nested")]),
)
def test_the_cli_refuses_overlapping_roots_before_any_data_moves(
    screened_by_cli: tuple[Path, Path, dict[str, str]], side: str, spelling: str
) -> None:
    root, spec, env = screened_by_cli
    table = SOURCE_SPELLINGS if side == "clean" else ROOT_SPELLINGS
    hostile = _hostile_spec(root, spec, side, table[spelling])
    source, outputs = _tree(root / "raw"), _tree(root / "out")
    commands: list[tuple[str, ...]] = [
        ("run", str(hostile), "--partition", "2024-01-01", "--force")
    ]
    if spelling == "equal":
        commands.append(
            ("backfill", str(hostile), "--start", "2024-01-01", "--end", "2024-01-01", "--force")
        )
    for command in commands:
        out = _sluice(*command, env=env)
        assert out.returncode == 2, (command, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr
        assert f"hostile.yaml:{_line(hostile, side + ':')}: outputs.{side}: " in out.stderr
        if side == "clean":
            assert "outputs must never touch the source" in out.stderr
            assert f"{root / 'raw'}, the folder the source files are read from" in out.stderr
        else:
            assert "outputs.reports at line" in out.stderr
            assert str(root / "out" / "reports") in out.stderr
        assert _tree(root / "raw") == source
        assert _tree(root / "out") == outputs
        assert leftovers(root / "out") == []


def _line(path: Path, key: str) -> int:
    lines = path.read_text().splitlines()
    return next(i for i, t in enumerate(lines, 1) if t.strip().startswith(key))


@pytest.mark.e2e
def test_the_cli_refuses_to_replace_a_folder_sluice_did_not_make(
    screened_by_cli: tuple[Path, Path, dict[str, str]],
) -> None:
    root, spec, env = screened_by_cli
    write_dataset(root, {"2024-01-02": csv_text(good(3))})
    foreign = root / "out" / "quarantine" / "date=2024-01-02"
    foreign.mkdir(parents=True)
    (foreign / "theirs.parquet").write_bytes(b"someone else's data")
    source, outputs = _tree(root / "raw"), _tree(root / "out")
    out = _sluice("run", str(spec), "--partition", "2024-01-02", env=env)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    assert f"{foreign}: refusing to replace a folder sluice did not make" in out.stderr
    assert f"it holds no {MARKER_NAME}" in out.stderr
    assert _tree(root / "raw") == source
    assert _tree(root / "out") == outputs
    assert leftovers(root / "out") == []


def test_recovery_removes_only_a_folder_the_dead_run_made(tmp_path: Path) -> None:
    roots = _roots(tmp_path)
    commit = _dead_commit(roots, 1, ("clean",))
    final = commit.writer("clean").final
    (final / MARKER_NAME).write_text(
        json.dumps({"made_by": "sluice", "partition": DIRNAME, "run_id": "someone-else"})
    )
    recover(roots, DIRNAME)
    assert _versions(roots)["clean"] == 1
    assert not journal_path(roots["reports"], DIRNAME).exists()


def test_a_run_removes_dead_work_folders_of_other_partitions(tmp_path: Path) -> None:
    spec = write_dataset(tmp_path, {"2024-01-01": csv_text(good(0))})
    run_partition(str(spec), "2024-01-01")
    child = subprocess.Popen(["true"])
    child.wait()
    work = tmp_path / "out" / "reports" / ".work"
    folders = {}
    for day, pid in (("2024-01-02", child.pid), ("2024-01-03", os.getpid())):
        folder = work / f"date={day}-20240101T000000Z-0123abcd"
        folder.mkdir(parents=True)
        (folder / "frame.parquet").write_bytes(b"a copy of the data")
        owner = {"host": socket.gethostname(), "pid": pid, "partition": f"date={day}"}
        (folder / "owner.json").write_text(json.dumps(owner))
        folders[day] = folder
    run_partition(str(spec), "2024-01-01")
    assert not folders["2024-01-02"].exists()
    assert (folders["2024-01-03"] / "frame.parquet").exists()
