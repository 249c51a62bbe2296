from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows.parameters import DATASETS, dataset_names, dataset_schema
from tests.conftest import (
    ROOT,
    SESSION_DATASETS,
    add_extra_specs,
    demo_datasets,
    session_datasets,
    write_tiny_spec,
)


def test_dataset_names_are_the_specs_that_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_tiny_spec(tmp_path, "trips")
    valid, invalid = add_extra_specs(tmp_path)
    (tmp_path / "_draft.yaml").write_text("")
    (tmp_path / "notes.txt").write_text("")
    (tmp_path / "folder.yaml").mkdir()
    caplog.set_level(logging.WARNING, logger="sluice.datasets")
    assert dataset_names(tmp_path) == sorted(["trips", valid])
    warned = {r.getMessage().split(" is not offered")[0]: r.getMessage() for r in caplog.records}
    assert set(warned) == {f"dataset {invalid}", "dataset folder"}
    assert f"{tmp_path / invalid}.yaml" in warned[f"dataset {invalid}"]
    assert "kyes: unknown key" in warned[f"dataset {invalid}"]
    assert "not a regular file" in warned["dataset folder"]


def test_the_flows_offer_the_session_datasets_not_the_project_folder() -> None:
    assert dataset_names() == list(SESSION_DATASETS)
    assert session_datasets() != ROOT / "datasets"
    assert list(SESSION_DATASETS) == DATASETS


def test_the_drop_down_lists_only_the_specs_that_load(tmp_path: Path) -> None:
    folder = demo_datasets(tmp_path)
    valid, invalid = add_extra_specs(folder)
    probe = (
        "import json\n"
        "from flows.screen import backfill, screen_partition\n"
        "print(json.dumps([f.parameters.properties['dataset'] "
        "for f in (backfill, screen_partition)]))"
    )
    env = {**os.environ, "SLUICE_DATASETS": str(folder), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    schemas = json.loads(out.stdout.strip().splitlines()[-1])
    for schema in schemas:
        assert schema["enum"] == sorted(["trips", valid]), schema
        assert invalid not in schema["enum"]


def test_the_dataset_is_a_choice_only_when_datasets_are_known() -> None:
    assert dataset_schema(["a", "b"]) == {"type": "string", "enum": ["a", "b"]}
    assert dataset_schema([]) == {"type": "string"}
