"""``sluice audit``: a row found by id or by file and record; where it is and why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sluice.audit.lookup import RowNotFound, audit_row, row_id_of, unmix
from sluice.cli import main
from sluice.core.frame import row_ids
from sluice.pipeline import run_partition
from tests.conftest import ROOT, SpecFactory

CSV = (
    "id,amount,count,when,kind\n"
    "a1,1.5,1,2024-01-01 00:00:00,a\n"
    "a2,3,2,2024-01-01 01:00:00,c\n"
    "a3,7,x,2024-01-01 02:00:00,a\n"
)


@given(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64), st.integers(0, 2000))
@example("f" * 64, 5)
@example("0" * 64, 0)
def test_unmix_inverts_the_row_id(sha: str, n: int) -> None:
    rid = int(row_ids(sha, n + 1)[n])
    assert unmix(rid) == (int(sha[:16], 16) + n) % (1 << 64)


def _reports(spec: Path) -> Path:
    return spec.parent / "out" / "reports"


def test_a_quarantined_row_names_every_rule_with_its_raw_value(make_dataset: SpecFactory) -> None:
    spec = make_dataset({"2024-01-01": CSV})
    manifest = json.loads(Path(run_partition(str(spec), "2024-01-01")["manifest"]).read_text())
    source = manifest["inputs"][0]["path"]
    rid = row_id_of(_reports(spec), source, 2)
    found = audit_row(_reports(spec), "tiny", rid)
    assert found.where == "quarantine"
    assert found.source == {"file": source, "row": 2, "sha256": manifest["inputs"][0]["sha256"]}
    assert found.partition == "2024-01-01"
    assert found.run["run_id"] == manifest["run_id"]
    assert [(f["reason"], f["value"]) for f in found.failures] == [("count|type", "x")]
    assert found.raw is not None
    assert found.raw["count"] == "x"
    assert found.suite["sha256"] == manifest["suite"]["sha256"]
    assert Path(found.suite["stored"]).read_bytes() == (spec.parent / "suite.json").read_bytes()
    assert Path(found.spec["stored"]).read_bytes() == spec.read_bytes()
    assert found.decisions == []


def test_a_clean_row_and_its_warnings(make_dataset: SpecFactory) -> None:
    spec = make_dataset({"2024-01-01": CSV})
    run_partition(str(spec), "2024-01-01")
    manifest = json.loads((_reports(spec) / "date=2024-01-01" / "manifest.json").read_text())
    rid = int(row_ids(manifest["inputs"][0]["sha256"], 2)[1])
    found = audit_row(_reports(spec), "tiny", rid)
    assert found.where == "clean"
    assert found.values["id"] == "a2"
    assert found.file == manifest["outputs"]["clean"]["path"]
    assert [f["reason"] for f in found.failures] == ["kind|expect_column_values_to_be_in_set"]
    assert {f["severity"] for f in found.failures} == {"warn"}


def test_rows_of_earlier_runs_list_those_runs(make_dataset: SpecFactory) -> None:
    spec = make_dataset({"2024-01-01": CSV})
    first = run_partition(str(spec), "2024-01-01")
    first_id = json.loads(Path(first["manifest"]).read_text())["run_id"]
    run_partition(str(spec), "2024-01-01")
    rid = row_id_of(_reports(spec), str(spec.parent / "raw" / "date=2024-01-01" / "data.csv"), 0)
    found = audit_row(_reports(spec), "tiny", rid)
    assert [e["run_id"] for e in found.earlier_runs] == [first_id]
    assert found.run["run_id"] != first_id


def test_unknown_rows_and_records_are_named(make_dataset: SpecFactory) -> None:
    spec = make_dataset({"2024-01-01": CSV})
    run_partition(str(spec), "2024-01-01")
    source = str(spec.parent / "raw" / "date=2024-01-01" / "data.csv")
    with pytest.raises(RowNotFound, match="had 3 records"):
        row_id_of(_reports(spec), source, 3)
    with pytest.raises(RowNotFound, match="no run of this dataset read"):
        row_id_of(_reports(spec), "/elsewhere.csv", 0)
    with pytest.raises(RowNotFound, match="_row_id 12"):
        audit_row(_reports(spec), "tiny", 12)


def test_audit_through_the_cli_by_source_row_prints_json(make_dataset: SpecFactory) -> None:
    spec = make_dataset({"2024-01-01": CSV})
    run_partition(str(spec), "2024-01-01")
    source = str(spec.parent / "raw" / "date=2024-01-01" / "data.csv")
    exe = str(Path(sys.executable).with_name("sluice"))

    def sluice(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [exe, *args], capture_output=True, text=True, cwd=ROOT, env=os.environ, check=False
        )

    done = sluice("audit", str(spec), "--source-file", source, "--source-row", "2", "--json")
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert (doc["where"], doc["source"]["row"]) == ("quarantine", 2)
    assert doc["failures"][0]["value"] == "x"
    assert doc["decisions"] == []


def test_audit_of_an_unknown_row_is_exit_2(
    make_dataset: SpecFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = make_dataset({"2024-01-01": CSV})
    run_partition(str(spec), "2024-01-01")
    assert main(["audit", str(spec), "--row-id", "12", "--json"]) == 2
    out, err = capsys.readouterr()
    assert "_row_id 12" in err
    assert out == ""
    assert main(["audit", str(spec), "--row-id", "12", "--source-row", "1"]) == 2
    assert "--source-row goes with --source-file" in capsys.readouterr().err


def test_a_manifest_that_cannot_be_read_is_named_not_passed_over_in_silence(
    make_dataset: SpecFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a truncated manifest made `sluice audit` say no partition holds the row, though
    its partition does, and `sluice report` end in an internal JSONDecodeError."""
    spec = make_dataset({"2024-01-01": CSV})
    done = run_partition(str(spec), "2024-01-01")
    manifest = Path(done["manifest"])
    first_input = json.loads(manifest.read_text())["inputs"][0]["sha256"]
    row_id = int(row_ids(first_input, 1)[0])  # the file's first record
    assert audit_row(_reports(spec), "tiny", row_id).where in ("clean", "quarantine")
    manifest.write_bytes(manifest.read_bytes()[:300])
    with pytest.raises(RowNotFound, match="1 manifest\\(s\\) could not be read") as info:
        audit_row(_reports(spec), "tiny", row_id)
    assert str(manifest) in str(info.value)
    assert main(["report", str(spec), "--partition", "2024-01-01"]) == 2
    err = capsys.readouterr().err
    assert f"its manifest {manifest} is not valid" in err
    assert "_manifests" in err
    assert "internal error" not in err


def test_a_report_is_not_rebuilt_from_files_changed_since_the_run(
    make_dataset: SpecFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: `sluice report` on a clean file changed after the run ended in an internal
    ComputeError."""
    spec = make_dataset({"2024-01-01": CSV})
    manifest = Path(run_partition(str(spec), "2024-01-01")["manifest"])
    (manifest.parent / "report.html").unlink()  # the report itself is what is rebuilt
    assert main(["report", str(spec), "--partition", "2024-01-01"]) == 0
    clean = Path(json.loads(manifest.read_text())["outputs"]["clean"]["path"])
    clean.write_bytes(clean.read_bytes() + b"changed")
    capsys.readouterr()
    assert main(["report", str(spec), "--partition", "2024-01-01"]) == 2
    err = capsys.readouterr().err
    assert f"its clean output {clean} is not the file its manifest names" in err
    assert "internal error" not in err
