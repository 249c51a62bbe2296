"""The Prefect tasks of a screen take and return the run's reference, and refuse a changed suite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.screen import ingest_task, screen_task, validate_task, write_task
from sluice.pipeline import Run
from sluice.pipeline.run import ConfigChanged, RunRef
from tests.conftest import SpecFactory, tiny_suite

CSV = "id,amount,count,when,kind\na,1,1,2024-01-01 10:00:00,a\nb,2,2,2024-01-01 11:00:00,b\n"


def test_the_tasks_pass_one_reference_and_stop_on_a_suite_edited_mid_run(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    spec = make_dataset({"2024-01-01": CSV})
    ref = Run.prepare(str(spec), "2024-01-01").ref
    assert isinstance(ref, RunRef)
    assert validate_task.fn(ingest_task.fn(ref)) == ref
    suite = tiny_suite()
    suite["expectations"][2]["kwargs"]["max_value"] = 1
    (tmp_path / "suite.json").write_text(json.dumps(suite))
    for task in (screen_task, write_task):
        with pytest.raises(ConfigChanged, match=f"sha256 was {ref.suite_sha256}"):
            task.fn(ref)
    assert not (tmp_path / "out" / "clean").exists()
