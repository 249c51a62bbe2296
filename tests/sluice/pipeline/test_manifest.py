"""The manifest as a typed model: its committed JSON Schema, a demo run's manifest, old ones."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from sluice.demo_data import generate
from sluice.pipeline import run_partition
from sluice.pipeline.manifest import SCHEMA_PATH, Manifest, main, manifest_schema, schema_text
from tests.conftest import ROOT, demo_datasets

DAY = dt.date(2024, 3, 4)


@pytest.fixture(scope="module")
def demo_manifest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The manifest of one partition of the demo dataset, screened without Prefect."""
    root = tmp_path_factory.mktemp("demo")
    generate(root, [DAY], rows_per_partition=3000, seed=11)
    datasets = demo_datasets(tmp_path_factory.mktemp("project"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLUICE_DATASETS", str(datasets))
        mp.setenv("SLUICE_DEMO_DIR", str(root))
        summary = run_partition("trips", DAY)
    data: dict[str, Any] = json.loads(Path(summary["manifest"]).read_text())
    return data


def _errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(manifest_schema())
    return [e.message for e in validator.iter_errors(document)]


def test_the_committed_schema_is_current() -> None:
    assert SCHEMA_PATH == ROOT / "docs" / "manifest.schema.json"
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        "docs/manifest.schema.json is stale: run `python -m sluice.pipeline.manifest`"
    )


def test_the_schema_command_writes_the_schema(tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    assert main([str(target)]) == 0
    written = json.loads(target.read_text())
    assert written == manifest_schema()
    jsonschema.Draft202012Validator.check_schema(written)


def test_a_demo_run_manifest_validates_against_the_schema(demo_manifest: dict[str, Any]) -> None:
    assert _errors(demo_manifest) == []
    assert demo_manifest["detectors"], "the demo screens with a detector"
    assert demo_manifest["validation"]["verdicts"]


def test_the_model_reads_a_manifest_back_to_the_same_json(demo_manifest: dict[str, Any]) -> None:
    assert Manifest.model_validate(demo_manifest).dump() == demo_manifest


def test_the_json_keeps_the_shape_readers_know(demo_manifest: dict[str, Any]) -> None:
    counts = demo_manifest["counts"]
    assert counts["in"] == counts["clean"] + counts["quarantine"]
    assert set(demo_manifest["checksums"]) == {"in", "clean", "quarantine", "algorithm"}
    assert "rows" not in demo_manifest["outputs"]["failures"]
    assert demo_manifest["outputs"]["clean"]["rows"] == counts["clean"]
    assert set(demo_manifest["outputs"]["clean"]) == {"path", "sha256", "bytes", "rows"}
    assert "skipped" not in demo_manifest["screen"]
    assert "why" not in demo_manifest["validation"]["verdicts"][0]
    assert demo_manifest["detectors"][0]["class"].startswith("detectors.")
    assert set(demo_manifest["timings_s"]) == {"ingest", "validate", "screen", "write", "report"}
    started = dt.datetime.fromisoformat(demo_manifest["started_at"])
    assert started.utcoffset() == dt.timedelta(0)
    assert demo_manifest["started_at"].endswith("+00:00")


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("surprise",), 1),
        (("counts", "clean"), -1),
        (("spec", "sha256"), "not a hash"),
        (("status",), "fine"),
        (("partition", "kind"), "week"),
        (("outputs", "clean", "sha256"), None),
        (("validation", "verdicts", 0, "severity"), "fatal"),
        (("manifest_version",), 2),
    ],
)
def test_schema_and_model_refuse_a_broken_manifest(
    demo_manifest: dict[str, Any], where: tuple[str | int, ...], value: object
) -> None:
    broken = copy.deepcopy(demo_manifest)
    target: Any = broken
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    assert _errors(broken), f"the schema takes {where} = {value!r}"
    with pytest.raises(ValidationError):
        Manifest.model_validate(broken)


def test_conservation_cannot_be_claimed_against_the_counts(demo_manifest: dict[str, Any]) -> None:
    broken = copy.deepcopy(demo_manifest)
    broken["counts"]["clean"] += 1
    with pytest.raises(ValidationError, match=r"conservation\.holds is True but"):
        Manifest.model_validate(broken)
    broken = copy.deepcopy(demo_manifest)
    broken["checksums"]["clean"] = "0" * 16
    with pytest.raises(ValidationError, match=r"conservation\.holds is True but"):
        Manifest.model_validate(broken)


def test_status_and_verdict_must_agree(demo_manifest: dict[str, Any]) -> None:
    broken = copy.deepcopy(demo_manifest)
    broken["status"] = "failed"
    with pytest.raises(ValidationError, match=r"status 'failed' but verdict\.status"):
        Manifest.model_validate(broken)


def test_the_three_committed_outputs_are_required(demo_manifest: dict[str, Any]) -> None:
    broken = copy.deepcopy(demo_manifest)
    del broken["outputs"]["failures"]
    with pytest.raises(ValidationError, match="outputs lacks failures"):
        Manifest.model_validate(broken)


def test_a_version_1_manifest_from_before_later_fields_still_reads(
    demo_manifest: dict[str, Any],
) -> None:
    old = copy.deepcopy(demo_manifest)
    for section, key in [
        ("schema", "aliases"),
        ("schema", "retyped_columns"),
        ("validation", "keys"),
        ("counts", "warnings_by_reason"),
        ("verdict", "policies"),
    ]:
        del old[section][key]
    del old["findings"]
    del old["reasons"]
    assert _errors(old) == []
    read = Manifest.model_validate(old)
    assert read.validation.keys.enforced_by == "none"
    assert read.schema_drift.aliases == []
    assert read.counts.rows_in == demo_manifest["counts"]["in"]


def test_the_schema_writer_reads_options_as_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as ended:
        main(["--help"])
    assert ended.value.code == 0
    assert list(tmp_path.iterdir()) == []
