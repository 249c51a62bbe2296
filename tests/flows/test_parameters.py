from __future__ import annotations

from pathlib import Path

from flows.parameters import dataset_names, dataset_schema
from tests.conftest import ROOT


def test_dataset_names_are_the_valid_spec_names_in_a_folder(tmp_path: Path) -> None:
    for name in ("zones.yaml", "trips.yaml", "_draft.yaml", "notes.txt"):
        (tmp_path / name).write_text("")
    assert dataset_names(tmp_path) == ["trips", "zones"]
    assert "trips" in dataset_names(ROOT / "datasets")


def test_the_dataset_is_a_choice_only_when_datasets_are_known() -> None:
    assert dataset_schema(["a", "b"]) == {"type": "string", "enum": ["a", "b"]}
    assert dataset_schema([]) == {"type": "string"}
