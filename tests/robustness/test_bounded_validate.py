"""Every hostile input of the corpus screened with the bounded validate stage (7-row batches)
gives what the in-memory stage gives: the same outcome or error, clean, quarantine, failures
and manifest numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sluice.core.errors import SluiceError
from sluice.pipeline import run_partition
from sluice.write import load_partition
from tests.robustness.corpus import CASES, Case
from tests.robustness.support import write_dataset

DAY = "2024-01-01"
QUICK = {
    "csv_ragged_rows",
    "csv_unbalanced_quote_swallows_lines",
    "csv_mixed_encodings",
    "csv_empty_file",
    "csv_duplicate_column_names",
    "csv_schema_renamed_column",
    "ndjson_broken_lines",
    "ndjson_reserved_key",
    "parquet_nested_for_scalars",
    "parquet_type_decimal256",
    "parquet_two_files_naive_and_utc_timestamps",
}
SAME = (
    "status",
    "critical",
    "verdict",
    "counts",
    "checksums",
    "conservation",
    "validation",
    "reasons",
)


def _screen(case: Case, root: Path, monkeypatch: pytest.MonkeyPatch, bounded: str) -> Any:
    monkeypatch.setenv("SLUICE_BOUNDED", bounded)
    monkeypatch.setenv("SLUICE_BATCH_ROWS", "7")
    spec = write_dataset(root, {DAY: case.content}, fmt=case.fmt, schema=case.schema)
    try:
        summary = run_partition(str(spec), DAY)
    except SluiceError as exc:
        return str(exc).replace(str(root), "<root>")
    part = load_partition(Path(summary["manifest"]))
    frames = {
        side: part.frames[side].drop("_source_file", strict=False).sort("_row_id").to_dicts()
        for side in ("clean", "quarantine", "failures")
    }
    facts = {k: part.manifest[k] for k in SAME}
    assert facts["validation"], "the manifest records the validation verdicts"
    text = json.dumps({"frames": frames, "facts": facts}, sort_keys=True, default=repr)
    return text.replace(str(root), "<root>")


def _params() -> list[object]:
    return [
        pytest.param(c, id=c.name, marks=[] if c.name in QUICK else [pytest.mark.slow])
        for c in CASES
        if c.error is None
    ]


@pytest.mark.parametrize("case", _params())
def test_bounded_validate_matches_in_memory(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory = _screen(case, tmp_path / "a", monkeypatch, "0")
    bounded = _screen(case, tmp_path / "b", monkeypatch, "1")
    assert bounded == memory


ERRORS_QUICK = {
    "csv_reserved_column_name",
    "csv_nul_in_column_name",
    "ndjson_nul_in_key",
    "parquet_nul_in_column_name",
}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c.name, marks=[] if c.name in ERRORS_QUICK else [pytest.mark.slow])
        for c in CASES
        if c.error is not None
    ],
)
def test_bounded_runs_refuse_what_in_memory_runs_refuse(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A case whose outcome is a clear error ends in the same error in bounded batches (a name
    Arrow's C interface cannot carry once crashed the bounded ingest's writer instead)."""
    memory = _screen(case, tmp_path / "a", monkeypatch, "0")
    bounded = _screen(case, tmp_path / "b", monkeypatch, "1")
    assert isinstance(memory, str), "an error case ends in an error"
    assert bounded == memory
