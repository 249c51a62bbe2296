"""``sluice replay``: byte-identical outputs from what the manifest names, a diff when not."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from sluice.cli import main
from sluice.demo_data import generate
from sluice.pipeline import run_partition
from sluice.pipeline.replay import CannotReplay, replay
from tests.conftest import ROOT, SpecFactory, demo_datasets

DAY = dt.date(2024, 3, 4)
ROWS = [
    "id,amount,count,when,kind",
    "a1,1.5,1,2024-01-01 00:00:00,a",
    "a2,2.5,2,2024-01-01 01:00:00,b",
    "a3,-3,3,2024-01-01 02:00:00,a",
    "a4,4.5,4,2024-01-01 03:00:00,c",
    "a1,5.5,5,2024-01-01 04:00:00,a",
]
CSV = "\n".join(ROWS) + "\n"


def sluice(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``sluice`` command."""
    exe = Path(sys.executable).with_name("sluice")
    return subprocess.run(
        [str(exe), *args],
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def demo_manifest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """One demo partition (1,500 rows, planted errors, a seeded detector), screened in-process."""
    root = tmp_path_factory.mktemp("demo")
    generate(root, [DAY], rows_per_partition=1500, seed=5)
    datasets = demo_datasets(tmp_path_factory.mktemp("project"))
    env = {"SLUICE_DEMO_DIR": str(root)}
    os.environ["SLUICE_DEMO_DIR"] = str(root)
    try:
        summary = run_partition(str(datasets / "trips.yaml"), DAY)
    finally:
        del os.environ["SLUICE_DEMO_DIR"]
    return Path(summary["manifest"]), env


def _tiny(make_dataset: SpecFactory, **extra: object) -> tuple[Path, Path]:
    spec = make_dataset({"2024-01-01": CSV}, extra=dict(extra))
    manifest = Path(run_partition(str(spec), "2024-01-01")["manifest"])
    return spec, manifest


def test_replay_of_a_demo_partition_reproduces_every_data_file_byte_for_byte(
    demo_manifest: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    manifest, _ = demo_manifest
    recorded = json.loads(manifest.read_text())
    assert recorded["counts"]["quarantine"] > 0
    result = replay(manifest, out=tmp_path / "scratch")
    assert result.identical
    by_table = {t.table: t for t in result.tables}
    for table in ("clean", "quarantine", "failures"):
        assert by_table[table].identical
        replayed = tmp_path / "scratch" / ("reports" if table == "failures" else table)
        (path,) = replayed.glob(f"*/{'failures' if table == 'failures' else 'part-*'}.parquet")
        original = Path(recorded["outputs"][table]["path"])
        assert path.read_bytes() == original.read_bytes()
        assert path != original
    assert result.versions == []


def test_replay_through_the_cli_exits_0_and_prints_json(
    demo_manifest: tuple[Path, dict[str, str]],
) -> None:
    manifest, env = demo_manifest
    before = {p: p.stat().st_mtime_ns for p in manifest.parent.parent.parent.rglob("*.parquet")}
    done = sluice("replay", str(manifest), "--json", env=env)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["identical"] is True
    assert {t["table"] for t in doc["tables"] if t["identical"]} >= {
        "clean",
        "quarantine",
        "failures",
    }
    assert doc["scratch"] is None
    after = {p: p.stat().st_mtime_ns for p in manifest.parent.parent.parent.rglob("*.parquet")}
    assert after == before, "a replay never writes into the dataset's outputs"


def test_a_changed_input_byte_is_refused_naming_the_file_and_both_hashes(
    make_dataset: SpecFactory,
) -> None:
    spec, manifest = _tiny(make_dataset)
    source = spec.parent / "raw" / "date=2024-01-01" / "data.csv"
    recorded = json.loads(manifest.read_text())["inputs"][0]["sha256"]
    source.write_text(CSV.replace("a2,2.5", "a2,-2.5"))
    with pytest.raises(CannotReplay) as err:
        replay(manifest)
    assert str(source) in str(err.value)
    assert recorded in str(err.value)
    assert "--allow-changed-inputs" in str(err.value)


def test_a_changed_input_replayed_on_request_shows_the_row_that_moved(
    make_dataset: SpecFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, manifest = _tiny(make_dataset)
    source = spec.parent / "raw" / "date=2024-01-01" / "data.csv"
    recorded = json.loads(manifest.read_text())
    source.write_text(CSV.replace("a2,2.5", "a2,-2.5"))
    assert main(["replay", str(manifest), "--allow-changed-inputs", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    tables = {t["table"]: t for t in doc["tables"]}
    assert not doc["identical"]
    assert tables["clean"]["only_recorded"] == 1
    assert tables["clean"]["only_replayed"] == 0
    assert tables["quarantine"]["only_replayed"] == 1
    assert tables["quarantine"]["only_recorded"] == 0
    moved = tables["clean"]["sample"]["only_recorded"]
    assert moved == tables["quarantine"]["sample"]["only_replayed"]
    clean = pl.read_parquet(recorded["outputs"]["clean"]["path"])
    assert clean.filter(pl.col("_row_id") == moved[0])["id"].to_list() == ["a2"]
    assert any("changed since the run" in n for n in doc["notes"])
    assert main(["replay", str(manifest), "--allow-changed-inputs"]) == 1
    text = capsys.readouterr().out
    assert "DIFFERENT" in text
    assert "1 rows only in the recorded run" in text


def test_an_input_gone_and_not_archived_cannot_be_replayed_exit_2(
    make_dataset: SpecFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, manifest = _tiny(make_dataset)
    source = spec.parent / "raw" / "date=2024-01-01" / "data.csv"
    sha = json.loads(manifest.read_text())["inputs"][0]["sha256"]
    source.unlink()
    assert main(["replay", str(manifest), "--json"]) == 2
    out, err = capsys.readouterr()
    assert str(source) in err
    assert sha in err
    assert "archive_inputs" in err
    assert out == ""


def test_archived_inputs_replay_after_the_source_and_the_spec_are_gone(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    spec, manifest = _tiny(make_dataset, archive_inputs=True)
    recorded = json.loads(manifest.read_text())
    (spec.parent / "raw" / "date=2024-01-01" / "data.csv").unlink()
    spec.unlink()
    (spec.parent / "suite.json").write_text('{"name": "changed", "expectations": []}')
    result = replay(manifest, out=tmp_path / "scratch")
    assert result.identical
    assert [u.source for u in result.inputs] == ["archive"]
    assert result.inputs[0].sha256 == recorded["inputs"][0]["sha256"]


def test_a_kept_copy_of_a_replaced_run_replays_against_its_recorded_hashes(
    make_dataset: SpecFactory,
) -> None:
    spec, first = _tiny(make_dataset, archive_inputs=True)
    old = json.loads(first.read_text())
    source = spec.parent / "raw" / "date=2024-01-01" / "data.csv"
    source.write_text(CSV.replace("a4,4.5", "a4,40.5"))
    run_partition(str(spec), "2024-01-01")
    kept = first.parent.parent / "_manifests" / "date=2024-01-01" / f"{old['run_id']}.json"
    result = replay(kept)
    assert result.identical, [t for t in result.tables if not t.identical]
    assert {t.recorded_sha256 for t in result.tables if t.table == "clean"} == {
        old["outputs"]["clean"]["sha256"]
    }


def test_a_replay_says_when_the_partitions_files_are_no_longer_the_runs(
    make_dataset: SpecFactory,
) -> None:
    """Before: a clean file changed after the run, replay said "identical" and nothing more."""
    _, manifest = _tiny(make_dataset)
    assert not any("no longer the run's" in n for n in replay(manifest).notes)
    clean = Path(json.loads(manifest.read_text())["outputs"]["clean"]["path"])
    clean.write_bytes(clean.read_bytes() + b"changed")
    result = replay(manifest)
    assert result.identical  # the replay still matches what the manifest recorded
    (note,) = [n for n in result.notes if "no longer the run's" in n]
    assert f"its clean output {clean} is not the file its manifest names" in note


def test_out_must_not_overlap_the_dataset_outputs(make_dataset: SpecFactory) -> None:
    spec, manifest = _tiny(make_dataset)
    with pytest.raises(CannotReplay, match="overlaps the dataset's"):
        replay(manifest, out=spec.parent / "out" / "clean" / "scratch")
    assert not (spec.parent / "out" / "clean" / "scratch").exists()


def test_a_saved_model_is_stored_and_replayed_after_its_file_is_gone(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    import numpy as np

    from detectors.persist import save_model
    from detectors.screen import fit_model
    from detectors.spec import DetectorSpec

    rng = np.random.default_rng(3)
    train = pl.DataFrame(
        {
            "_row_id": pl.Series(np.arange(600), dtype=pl.UInt64),
            "amount": rng.uniform(0, 100, 600),
            "count": rng.integers(0, 10, 600),
        }
    )
    features = ["amount", "count"]
    batch = DetectorSpec.model_validate({"name": "m", "detector": "iforest", "features": features})
    model = tmp_path / "models" / "m.sluice-model"
    sha = save_model(fit_model(train, batch), model)
    detector = {
        "name": "m",
        "detector": "iforest",
        "features": features,
        "fit": "model",
        "model": str(model),
        "model_sha256": sha,
    }
    spec = make_dataset({"2024-01-01": CSV}, detectors=[detector])
    manifest = Path(run_partition(str(spec), "2024-01-01")["manifest"])
    audit = json.loads(manifest.read_text())["audit"]
    assert audit["models"]["m"]["sha256"] == sha
    stored = manifest.parent.parent / audit["models"]["m"]["path"]
    assert stored.read_bytes() == model.read_bytes()
    model.unlink()
    result = replay(manifest)
    assert result.identical, [t for t in result.tables if not t.identical]
    assert "scores" in {t.table for t in result.tables}


def test_what_is_not_a_manifest_cannot_be_replayed(tmp_path: Path) -> None:
    fifo = tmp_path / "manifest.json"
    os.mkfifo(fifo)
    with pytest.raises(CannotReplay, match="not a regular file"):
        replay(fifo)
    other = tmp_path / "other.json"
    other.write_text('{"run_id": "x"}')
    with pytest.raises(CannotReplay, match="not a sluice manifest"):
        replay(other)
    with pytest.raises(CannotReplay, match="cannot read"):
        replay(tmp_path / "absent.json")


def _rows(day: str, n: int, shift: float = 0.0) -> str:
    lines = ["id,amount,count,when,kind"]
    lines += [f"{day}-{i},{(i * 37) % 90 + shift:.1f},{i % 7},{day} 00:00:00,a" for i in range(n)]
    return "\n".join(lines) + "\n"


def test_a_reference_window_screened_again_since_is_reported(make_dataset: SpecFactory) -> None:
    detector = {"name": "d", "detector": "iforest", "seed": 1, "features": ["amount", "count"]}
    days = {"2024-01-01": _rows("2024-01-01", 300), "2024-01-02": _rows("2024-01-02", 300)}
    spec = make_dataset(days, detectors=[detector], extra={"reference": {"partitions": 1}})
    run_partition(str(spec), "2024-01-01")
    manifest = Path(run_partition(str(spec), "2024-01-02")["manifest"])
    assert json.loads(manifest.read_text())["screen"]["reference"][0]["partition"] == "2024-01-01"
    assert replay(manifest).identical
    (spec.parent / "raw" / "date=2024-01-01" / "data.csv").write_text(
        _rows("2024-01-01", 300, shift=5.0)
    )
    run_partition(str(spec), "2024-01-01")
    result = replay(manifest)
    assert not result.identical
    assert result.reference is not None
    was, now = result.reference["recorded"], result.reference["replayed"]
    assert was[0]["partition"] == now[0]["partition"] == "2024-01-01"
    assert was[0]["sha256"] != now[0]["sha256"]


def test_recorded_object_paths_are_never_followed(make_dataset: SpecFactory) -> None:
    spec, manifest = _tiny(make_dataset)
    doc = json.loads(manifest.read_text())
    decoy = spec.parent / "decoy.yaml"
    decoy.write_text("name: decoy\n")
    doc["audit"]["spec"]["path"] = "../../../decoy.yaml"
    doc["audit"]["suite"]["path"] = "/etc/passwd"
    manifest.write_text(json.dumps(doc))
    spec.unlink()
    result = replay(manifest)
    assert result.identical


def test_a_manifest_from_before_stored_objects_replays_from_recorded_paths(
    make_dataset: SpecFactory,
) -> None:
    spec, manifest = _tiny(make_dataset)
    doc = json.loads(manifest.read_text())
    del doc["audit"]
    manifest.write_text(json.dumps(doc))
    result = replay(manifest)
    assert result.identical
    assert any("predates stored objects" in n for n in result.notes)
    spec.write_text(spec.read_text() + "\n# edited since\n")
    with pytest.raises(CannotReplay, match="dataset spec of this run"):
        replay(manifest)
