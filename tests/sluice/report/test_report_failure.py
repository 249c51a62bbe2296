"""A report that cannot be built warns the run, and says why, everywhere the verdict is shown.

The failure is injected (a render that raises): every input known to break the report is fixed,
and ``test_hostile_frames`` keeps it so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sluice.pipeline import run_partition
from sluice.report.artifacts import artifact_payloads
from sluice.verdict import Cause, Verdict, report_cause, with_cause
from tests.conftest import SpecFactory

DAY = "2024-01-01"
CLEAN_CSV = "id,amount,count,when,kind\na,1,1,2024-01-01 10:00:00,a\nb,2,2,2024-01-01 11:00:00,b\n"
BAD_CSV = CLEAN_CSV + "".join(f"r{i},x,{i},2024-01-01 12:00:00,a\n" for i in range(3))
PROBLEM = "report.html could not be built: RuntimeError: plot exploded"


def broken_render(report: Any) -> str:
    """A render that fails the way a bug in a plot would."""
    raise RuntimeError("plot exploded\nsecond line of the message")


def manifest_of(summary: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(summary["manifest"]).read_text(encoding="utf-8"))
    return data


def test_report_cause_keeps_one_line() -> None:
    cause = report_cause("ValueError: year 0 is out of range\n  at line 3")
    assert cause.level == "warn"
    assert cause.kind == "report"
    assert cause.message == "report.html could not be built: ValueError: year 0 is out of range"
    assert len(report_cause("x" * 5000).message) < 400


def test_with_cause_warns_a_passed_run_and_keeps_a_failed_one() -> None:
    cause = report_cause("E: boom")
    assert with_cause(Verdict("passed"), cause) == Verdict("warned", (cause,))
    error = Cause("error", "run", "run", "most rows quarantined")
    failed = with_cause(Verdict("failed", (error,)), cause)
    assert failed.status == "failed"
    assert failed.causes == (error, cause)


def test_a_report_that_cannot_be_built_warns_a_passing_run(
    make_dataset: SpecFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_dataset({DAY: CLEAN_CSV})
    assert run_partition(str(spec), DAY)["status"] == "passed"
    monkeypatch.setattr("sluice.report.html.render", broken_render)

    summary = run_partition(str(spec), DAY)
    assert summary["status"] == "warned"
    assert [c["message"] for c in summary["causes"]] == [PROBLEM]
    m = manifest_of(summary)
    assert m["status"] == "warned"
    assert m["verdict"]["status"] == "warned"
    assert [(c["level"], c["kind"], c["message"]) for c in m["verdict"]["causes"]] == [
        ("warn", "report", PROBLEM)
    ]
    assert m["findings"]["report_error"].startswith("RuntimeError: plot exploded")
    assert "report" not in m["outputs"]
    assert not (Path(summary["manifest"]).parent / "report.html").exists()
    assert m["counts"]["clean"] == 2  # committed all the same
    markdown = artifact_payloads(summary, m).markdown
    assert f"# tiny {DAY}: WARNED" in markdown
    assert f"- **warning**: {PROBLEM}" in markdown


def test_a_failed_run_stays_failed_and_lists_the_report_cause_too(
    make_dataset: SpecFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_dataset({DAY: BAD_CSV})
    monkeypatch.setattr("sluice.report.html.render", broken_render)
    summary = run_partition(str(spec), DAY)
    assert summary["status"] == "failed"
    messages = [c["message"] for c in manifest_of(summary)["verdict"]["causes"]]
    assert messages[-1] == PROBLEM
    assert any(c["level"] == "error" for c in summary["causes"])


INJECT = """
import sluice.report.html as html


def _broken(report):
    raise RuntimeError("plot exploded\\nsecond line")


html.render = _broken
"""


@pytest.mark.e2e
def test_sluice_run_prints_the_warning_and_the_artifact_carries_it(
    make_dataset: SpecFactory, prefect_api: None, tmp_path: Path
) -> None:
    """Through the installed command, with the failure injected by a ``sitecustomize``."""
    import prefect.settings
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    from sluice.report.artifacts import artifact_key

    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(INJECT, encoding="utf-8")
    spec = make_dataset({DAY: CLEAN_CSV})
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(inject), os.environ.get("PYTHONPATH", "")]),
        "PREFECT_API_URL": str(prefect.settings.PREFECT_API_URL.value()),
        "PREFECT_HOME": str(tmp_path / "home"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    exe = str(Path(sys.executable).with_name("sluice"))
    got = subprocess.run(
        [exe, "run", str(spec), "--partition", DAY],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert got.returncode == 0, got.stdout + got.stderr
    assert "Traceback" not in got.stderr
    lines = got.stdout.splitlines()
    assert lines[0] == f"tiny {DAY}: WARNED: 2 rows in, 2 clean, 0 quarantined"
    assert f"  warning: {PROBLEM}" in lines
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[artifact_key("tiny", "summary")])
            ),
            sort=ArtifactSort.UPDATED_DESC,
            limit=1,
        )
    assert found
    assert f"- **warning**: {PROBLEM}" in str(found[0].data)
