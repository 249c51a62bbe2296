"""A run's typed facts and its reference, and a spec or suite edited while a run is under way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sluice.pipeline import Run, stage_ingest, stage_screen, stage_validate, stage_write
from sluice.pipeline.run import (
    ConfigChanged,
    IngestFacts,
    RunRef,
    ScreenFacts,
    ValidateFacts,
    unchanged,
)
from tests.conftest import SpecFactory, tiny_suite

CSV = (
    "id,amount,count,when,kind\n"
    "a,1,1,2024-01-01 10:00:00,a\n"
    "b,200,2,2024-01-01 11:00:00,c\n"
    "c,x,3,2024-01-01 12:00:00,b\n"
)


def _validated(make_dataset: SpecFactory) -> tuple[Run, Path]:
    spec = make_dataset({"2024-01-01": CSV})
    run = Run.prepare(str(spec), "2024-01-01")
    stage_ingest(run)
    stage_validate(run)
    return run, spec


def test_each_stage_records_typed_facts_under_the_same_keys(make_dataset: SpecFactory) -> None:
    run, _ = _validated(make_dataset)
    stage_screen(run)
    ingested, validated, screened = run.ingest_facts(), run.validate_facts(), run.screen_facts()
    assert isinstance(ingested, IngestFacts)
    assert (ingested.rows, ingested.failures) == (3, 1)
    assert [Path(i.path).name for i in ingested.inputs] == ["data.csv"]
    assert isinstance(validated, ValidateFacts)
    assert validated.engine == run.engine
    assert [v.type for v in validated.verdicts] == [e["type"] for e in tiny_suite()["expectations"]]
    assert validated.keys.enforced_by == "suite entry 0"
    assert isinstance(screened, ScreenFacts)
    assert screened.skipped == "no detectors declared"
    on_disk = json.loads(run.file("ingest.json").read_text())
    assert set(on_disk) == {
        "seconds",
        "rows",
        "inputs",
        "missing_columns",
        "extra_columns",
        "aliases",
        "retyped_columns",
        "failures",
    }
    assert set(json.loads(run.file("screen.json").read_text())) == {
        "seconds",
        "rows",
        "models",
        "skipped",
    }
    assert run.facts("validate")["verdicts"][0]["reason"] == "id|expect_column_values_to_be_unique"
    run.discard()


def test_facts_a_stage_model_does_not_know_are_refused(make_dataset: SpecFactory) -> None:
    run, _ = _validated(make_dataset)
    with pytest.raises(ValidationError, match="surprise"):
        run.record("screen", 0.1, rows=1, models=[], surprise=True)
    with pytest.raises(ValidationError, match="rows"):
        run.record("ingest", 0.1, rows=-1, inputs=[], missing_columns=[], extra_columns=[])
    run.file("validate.json").write_text(json.dumps({"seconds": 0.1, "engine": "pandas"}))
    with pytest.raises(ValidationError):
        run.validate_facts()
    run.discard()


def test_a_run_reference_is_frozen_and_rebuilds_the_same_run(make_dataset: SpecFactory) -> None:
    run, spec = _validated(make_dataset)
    ref = run.ref
    assert RunRef.model_validate_json(ref.model_dump_json()) == ref
    assert ref.spec_path == str(spec.resolve())
    assert ref.suite_path == str(spec.parent.resolve() / "suite.json")
    with pytest.raises(ValidationError, match="frozen"):
        ref.run_id = "other"
    again = Run.resume(ref)
    assert (again.work, again.run_id, again.engine) == (run.work, run.run_id, run.engine)
    assert again.suite.sha256 == ref.suite_sha256
    assert again.validate_facts() == run.validate_facts()
    run.discard()


@pytest.mark.parametrize("edited", ["suite", "spec"])
def test_a_file_edited_between_validate_and_write_stops_the_run_before_any_output(
    make_dataset: SpecFactory, tmp_path: Path, edited: str
) -> None:
    run, spec = _validated(make_dataset)
    ref = run.ref
    path = tmp_path / "suite.json" if edited == "suite" else spec
    before = ref.suite_sha256 if edited == "suite" else ref.spec_sha256
    if edited == "suite":
        suite: dict[str, Any] = tiny_suite()
        suite["expectations"] = suite["expectations"][:1]
        path.write_text(json.dumps(suite))
    else:
        path.write_text(path.read_text() + "\n# edited\n")
    stage_screen(run)
    for attempt in (lambda: Run.resume(ref), lambda: stage_write(run)):
        with pytest.raises(ConfigChanged) as caught:
            attempt()
        message = str(caught.value)
        assert str(path.resolve()) in message
        assert f"sha256 was {before}" in message
        assert before not in message.split("is now", 1)[1]
        assert "before writing anything" in message
        assert caught.value.exit_code == 2
    assert not (tmp_path / "out" / "clean").exists()
    assert not (tmp_path / "out" / "quarantine").exists()
    assert not list((tmp_path / "out" / "reports").glob("date=*"))
    run.discard()


def test_a_deleted_suite_is_refused_with_its_name(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    run, _ = _validated(make_dataset)
    (tmp_path / "suite.json").unlink()
    with pytest.raises(ConfigChanged, match=r"suite \S+suite\.json cannot be read since run"):
        unchanged(run.ref)
    run.discard()


def test_an_unchanged_run_writes_the_hashes_it_was_prepared_with(
    make_dataset: SpecFactory,
) -> None:
    run, _ = _validated(make_dataset)
    ref = run.ref
    stage_screen(run)
    summary = stage_write(Run.resume(ref))
    manifest = json.loads(Path(summary["manifest"]).read_text())
    assert manifest["suite"]["sha256"] == ref.suite_sha256
    assert manifest["spec"]["sha256"] == ref.spec_sha256
    assert manifest["run_id"] == ref.run_id
