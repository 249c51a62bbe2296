"""Every hostile input of the corpus, through the pipeline and through ``sluice validate``.

Each ends in a clear error naming the file and the place, or in a run where every source record
is in clean or quarantine (checked from the manifest and from the files, through the read
protocol), quarantined rows carrying their reasons: never a traceback, never a silent drop.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from sluice.cli import main
from sluice.core.errors import SluiceError
from sluice.pipeline import run_partition
from sluice.write import load_partition
from tests.robustness.corpus import CASES, FILE, Case
from tests.robustness.support import check_conserved, leftovers, reasons, write_dataset

DAY = "2024-01-01"
SLOW_IN_VALIDATE = ("ndjson_nested_900_levels",)
SUITE_ARGS: tuple[str, ...] = ()
BAD_RECORD = FILE + r": record \d+ (after the header )?(does not have|is not one|holds bytes)"


def _check_values(case: Case, manifest: Path) -> None:
    part = load_partition(manifest)
    clean, failures = part.frames["clean"], part.frames["failures"]
    m = part.manifest
    if "n_clean" in case.extra:
        assert m["counts"]["clean"] == case.extra["n_clean"]
    if "extra_columns" in case.extra:
        assert m["schema"]["extra_columns"] == case.extra["extra_columns"]
    assert sorted(m["schema"]["retyped_columns"]) == case.extra.get("retyped_columns", [])
    for column in ("id", "kind"):
        if column in case.extra:
            assert clean[column].to_list() == case.extra[column]
    if "value" in case.extra:
        assert case.extra["value"] in failures["value"].to_list()
    source = b"".join(case.content.values()) if isinstance(case.content, dict) else case.content
    for reason, value in failures.select("reason", "value").iter_rows():
        if reason == "_row|encoding":
            assert value.encode("latin-1") in source
        elif reason == "_row|malformed":
            assert value.encode() in source


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_pipeline(case: Case, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    spec = write_dataset(tmp_path, {DAY: case.content}, fmt=case.fmt, schema=case.schema)
    out = tmp_path / "out"
    _check_outcome(case, spec, out, tmp_path)
    assert "panicked" not in capfd.readouterr().err  # a Rust panic prints before it is caught


def _check_outcome(case: Case, spec: Path, out: Path, tmp_path: Path) -> None:
    if case.error is not None:
        with pytest.raises(SluiceError) as info:
            run_partition(str(spec), DAY)
        message = str(info.value)
        assert re.search(case.error, message), message
        assert str(tmp_path / "raw" / f"date={DAY}") in message
        assert not (out / "clean" / f"date={DAY}").exists()
        assert leftovers(out) == []
        return
    try:
        summary = run_partition(str(spec), DAY)
    except SluiceError as exc:
        failure = str(exc)
    else:
        failure = ""
    if failure:
        assert case.either, failure
        assert re.search(FILE, failure), failure
        return
    manifest = Path(summary["manifest"])
    m = check_conserved(manifest, case.rows)
    assert leftovers(out) == []
    if case.either:
        return
    assert m["status"] == case.status
    assert case.reasons <= reasons(m), reasons(m)
    if not case.reasons:
        assert reasons(m) <= {r for r in reasons(m) if r.endswith("|missing_column")}
    _check_values(case, manifest)


def _validate_params() -> list[object]:
    out: list[object] = []
    for case in CASES:
        if isinstance(case.content, dict):
            continue
        marks = (
            [pytest.mark.xfail(strict=True, reason=case.validate_gap)] if case.validate_gap else []
        )
        if case.name in SLOW_IN_VALIDATE:
            marks.append(pytest.mark.slow)
        out.append(pytest.param(case, id=case.name, marks=marks))
    return out


@pytest.mark.parametrize("case", _validate_params())
def test_sluice_validate(
    case: Case, tmp_path: Path, capfd: pytest.CaptureFixture[str], suite_file: Path
) -> None:
    data = tmp_path / f"data.{case.fmt}"
    data.write_bytes(case.data)
    result = tmp_path / "result.json"
    argv = ["validate", str(data), "--suite", str(suite_file), "--result", str(result)]
    code = main([*argv, *SUITE_ARGS])
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert "panicked" not in err  # a Rust reader's panic prints its own backtrace
    assert code in (0, 1, 2), err
    if code == 2:
        assert str(data) in err
    if case.refuse_in_validate:
        assert code == 2, f"{case.name}: exit {code}: a broken file read as if it were whole"
        if case.fmt != "parquet":
            assert re.search(case.error or BAD_RECORD, err), err
    elif code != 2 and case.rows is not None:
        assert json.loads(result.read_text())["rows"] == case.rows, "records lost or invented"


@pytest.fixture
def suite_file(tmp_path: Path) -> Path:
    """The tiny suite as a file."""
    (tmp_path / "spec").mkdir()
    write_dataset(tmp_path / "spec", {})
    return tmp_path / "spec" / "suite.json"


SUBPROCESS_CASES = ("csv_unbalanced_quote_swallows_lines", "parquet_truncated")


def test_sluice_validate_in_a_subprocess(tmp_path: Path, suite_file: Path) -> None:
    exe = Path(sys.executable).with_name("sluice")
    procs = []
    for case in (c for c in CASES if c.name in SUBPROCESS_CASES):
        data = tmp_path / f"{case.name}.{case.fmt}"
        data.write_bytes(case.data)
        cmd = [str(exe), "validate", str(data), "--suite", str(suite_file), *SUITE_ARGS]
        procs.append((data, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
    assert len(procs) == len(SUBPROCESS_CASES)
    for data, proc in procs:
        _, err = proc.communicate(timeout=300)
        text = err.decode()
        assert "Traceback" not in text
        assert proc.returncode == 2, text
        assert str(data) in text


def test_corpus_covers_every_kind_of_input() -> None:
    names = " ".join(c.name for c in CASES)
    for kind in (
        "ragged",
        "unbalanced_quote",
        "wrong_delimiter",
        "bom",
        "mixed_encodings",
        "invalid_utf8",
        "nul",
        "crlf",
        "header_only",
        "empty_file",
        "parquet_truncated",
        "parquet_corrupt",
        "ndjson_broken_lines",
        "schema_missing",
        "schema_extra",
        "schema_renamed",
        "schema_retyped",
        "nan",
        "extreme_values",
        "megabyte_string",
        "deeply_nested",
        "duplicate_column_names",
    ):
        assert kind in names, kind
    assert {c.fmt for c in CASES} == {"csv", "ndjson", "parquet"}
    assert len({c.name for c in CASES}) == len(CASES)
    assert all((c.error is None) != (c.rows is None) or c.either for c in CASES)
    assert pl.__version__
