from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from flows.idempotence import check_done, read_manifest, summary_from_manifest, unverified_output
from sluice.config import LoadedSpec, find_spec
from sluice.core.files import file_sha256
from sluice.pipeline import run_partition
from sluice.write import PartitionCommit, journal_path, partition_lock
from tests.conftest import SpecFactory, tiny_suite
from tests.robustness.support import check_conserved, leftovers

GOOD = "id,amount,count,when,kind\na,1,1,2024-01-01 10:00:00,a\nb,200,2,2024-01-01 11:00:00,c\n"


@pytest.fixture
def screened(make_dataset: SpecFactory) -> LoadedSpec:
    spec = make_dataset({"2024-01-01": GOOD})
    run_partition(str(spec), "2024-01-01")
    return find_spec(str(spec))


def test_a_partition_screened_from_the_same_inputs_suite_and_spec_is_done(
    screened: LoadedSpec,
) -> None:
    part = screened.spec.partition.parse("2024-01-01")
    verdict = check_done(screened, part)
    assert verdict.done, verdict.reason
    manifest = read_manifest(verdict.manifest)
    assert manifest is not None
    summary = summary_from_manifest(manifest, verdict.manifest)
    assert summary["counts"]["in"] == 2
    assert summary["status"] == "warned"  # 1 of 2 rows quarantined: a warned run is done too
    assert summary["manifest"] == str(verdict.manifest)


def test_a_partition_never_screened_is_not_done(screened: LoadedSpec) -> None:
    verdict = check_done(screened, screened.spec.partition.parse("2024-01-02"))
    assert not verdict.done
    assert verdict.reason == "not screened yet"


def test_changed_input_bytes_undo_it(screened: LoadedSpec, tmp_path: Path) -> None:
    source = tmp_path / "raw" / "date=2024-01-01" / "data.csv"
    source.write_text(GOOD.replace("a,1,1", "a,2,1"))
    verdict = check_done(screened, screened.spec.partition.parse("2024-01-01"))
    assert not verdict.done
    assert "changed" in verdict.reason
    assert "data.csv" in verdict.reason


def test_an_added_input_file_undoes_it(screened: LoadedSpec, tmp_path: Path) -> None:
    (tmp_path / "raw" / "date=2024-01-01" / "more.csv").write_text(GOOD.replace("a,", "z,"))
    verdict = check_done(screened, screened.spec.partition.parse("2024-01-01"))
    assert not verdict.done
    assert "added, removed or renamed" in verdict.reason


def test_a_changed_suite_undoes_it(screened: LoadedSpec, tmp_path: Path) -> None:
    suite = tiny_suite()
    suite["expectations"].pop()
    (tmp_path / "suite.json").write_text(json.dumps(suite))
    verdict = check_done(screened, screened.spec.partition.parse("2024-01-01"))
    assert (verdict.done, verdict.reason) == (False, "the suite changed")


def test_a_changed_spec_undoes_it(screened: LoadedSpec) -> None:
    screened.path.write_text(screened.path.read_text() + "description: edited\n")
    loaded = find_spec(str(screened.path))
    verdict = check_done(loaded, loaded.spec.partition.parse("2024-01-01"))
    assert (verdict.done, verdict.reason) == (False, "the dataset spec changed")


def test_a_missing_output_undoes_it(screened: LoadedSpec, tmp_path: Path) -> None:
    (tmp_path / "out" / "clean" / "date=2024-01-01" / "part-00000.parquet").unlink()
    verdict = check_done(screened, screened.spec.partition.parse("2024-01-01"))
    assert (verdict.done, verdict.reason) == (False, "its clean output is missing")


def test_a_failed_run_is_never_done(screened: LoadedSpec) -> None:
    part = screened.spec.partition.parse("2024-01-01")
    path = check_done(screened, part).manifest
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "status": "failed"}))
    verdict = check_done(screened, part)
    assert not verdict.done
    assert "failed" in verdict.reason


def test_an_unreadable_manifest_is_not_done(screened: LoadedSpec) -> None:
    part = screened.spec.partition.parse("2024-01-01")
    path = check_done(screened, part).manifest
    path.write_text("{not json")
    assert check_done(screened, part).reason.startswith(f"its manifest {path} is not valid: ")


def test_file_sha256_matches_the_manifest(screened: LoadedSpec, tmp_path: Path) -> None:
    manifest = read_manifest(
        check_done(screened, screened.spec.partition.parse("2024-01-01")).manifest
    )
    assert manifest is not None
    (source,) = manifest["inputs"]
    assert file_sha256(source["path"]) == source["sha256"]


def _outputs(screened: LoadedSpec) -> dict[str, dict[str, str]]:
    manifest = read_manifest(
        check_done(screened, screened.spec.partition.parse("2024-01-01")).manifest
    )
    assert manifest is not None
    outputs: dict[str, dict[str, str]] = manifest["outputs"]
    return outputs


def test_a_corrupted_clean_file_undoes_it_until_screened_again(screened: LoadedSpec) -> None:
    part = screened.spec.partition.parse("2024-01-01")
    clean = Path(_outputs(screened)["clean"]["path"])
    original = clean.read_bytes()
    clean.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    verdict = check_done(screened, part)
    assert not verdict.done
    assert verdict.reason == (
        f"its clean output {clean} is not the file its manifest names (sha256 differs)"
    )
    run_partition(str(screened.path), "2024-01-01")
    assert check_done(screened, part).done


@pytest.mark.parametrize("name", ["failures", "report"])
def test_any_output_the_manifest_names_must_be_there(screened: LoadedSpec, name: str) -> None:
    outputs = _outputs(screened)
    assert {"clean", "quarantine", name} <= set(outputs)
    Path(outputs[name]["path"]).unlink()
    verdict = check_done(screened, screened.spec.partition.parse("2024-01-01"))
    assert (verdict.done, verdict.reason) == (
        False,
        f"its {name} output {outputs[name]['path']} is missing or not a regular file",
    )


def test_a_manifest_whose_hash_is_edited_is_not_done(screened: LoadedSpec) -> None:
    part = screened.spec.partition.parse("2024-01-01")
    path = check_done(screened, part).manifest
    manifest = json.loads(path.read_text())
    manifest["outputs"]["quarantine"]["sha256"] = "0" * 64
    path.write_text(json.dumps(manifest))
    verdict = check_done(screened, part)
    assert not verdict.done
    assert verdict.reason.startswith("its quarantine output ")
    assert verdict.reason.endswith("(sha256 differs)")


def test_unverified_output_names_what_is_wrong(tmp_path: Path) -> None:
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    good = {"x": {"path": str(f), "sha256": file_sha256(str(f))}}
    assert unverified_output(good) is None
    assert unverified_output({}) == "its manifest names no outputs"
    assert unverified_output({"x": {"path": str(f)}}) == (
        "its manifest gives no path and sha256 for its x output"
    )


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _work_folder(loaded: LoadedSpec, name: str, pid: int) -> Path:
    folder = loaded.output_root("reports") / ".work" / f"date=2024-01-01-{name}"
    folder.mkdir(parents=True)
    (folder / "frame.parquet").write_bytes(b"a copy of the partition's data")
    owner = {"host": socket.gethostname(), "pid": pid, "partition": "date=2024-01-01"}
    (folder / "owner.json").write_text(json.dumps(owner))
    return folder


def test_a_skipped_partition_is_recovered_first(screened: LoadedSpec, tmp_path: Path) -> None:
    part = screened.spec.partition.parse("2024-01-01")
    dead = _work_folder(screened, "dead", _dead_pid())
    roots = {s: screened.output_root(s) for s in ("clean", "quarantine", "reports")}
    commit = PartitionCommit(roots, part.dirname, "killed", dataset="tiny").__enter__()
    for side in roots:
        commit.writer(side).path("part-00000.parquet").write_bytes(b"half a run")
    commit.swap("clean")
    assert journal_path(roots["reports"], part.dirname).exists()
    verdict = check_done(screened, part)
    assert verdict.done, verdict.reason
    assert not dead.exists()
    assert leftovers(tmp_path / "out") == []
    check_conserved(verdict.manifest, rows_in=2)


def test_the_work_folder_of_a_live_run_is_kept(screened: LoadedSpec) -> None:
    part = screened.spec.partition.parse("2024-01-01")
    alive = _work_folder(screened, "alive", os.getpid())
    assert check_done(screened, part).done
    assert (alive / "frame.parquet").exists()


def test_a_partition_another_run_is_writing_is_not_judged(
    screened: LoadedSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = screened.spec.partition.parse("2024-01-01")
    monkeypatch.setenv("SLUICE_LOCK_TIMEOUT", "0.2")
    with partition_lock(screened.output_root("reports"), part.dirname):
        verdict = check_done(screened, part)
    assert not verdict.done
    assert "another run is writing this partition" in verdict.reason
    assert check_done(screened, part).done


def test_judging_a_never_screened_dataset_creates_nothing(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    loaded = find_spec(str(make_dataset({"2024-01-01": GOOD})))
    verdict = check_done(loaded, loaded.spec.partition.parse("2024-01-01"))
    assert (verdict.done, verdict.reason) == (False, "not screened yet")
    assert not (tmp_path / "out").exists()
