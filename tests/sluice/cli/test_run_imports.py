"""``sluice run`` in process imports only what it uses: no pandas, GX, Prefect or scikit-learn."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, SpecFactory, tiny_suite

BLOCKED = ("pandas", "great_expectations", "prefect", "sklearn", "pyod")
SHIM = """
import atexit, os, sys
def _dump():
    with open(os.environ["SLUICE_TEST_MODULES"], "w") as f:
        f.write("\\n".join(sorted(sys.modules)))
atexit.register(_dump)
"""
ROWS = "".join(f"r{i},{i % 50}.5,{i % 7},2024-01-01 10:{i % 60:02d}:00,a\n" for i in range(300))


def test_a_run_with_regex_checks_and_ecod_imports_none_of_the_heavy_libraries(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    suite = tiny_suite()
    suite["expectations"].append(
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "id", "regex": "^r"}}
    )
    detectors = [{"name": "odd", "detector": "ecod", "features": ["amount", "count"]}]
    spec = make_dataset(
        {"2024-01-01": "id,amount,count,when,kind\n" + ROWS}, suite=suite, detectors=detectors
    )
    # A suite entry GX has not accepted before is checked by GX once (expectations.gx_accepted):
    # the first run on a new machine imports it, the runs after it do not.
    _modules_of_run(spec, tmp_path / "first")
    loaded = _modules_of_run(spec, tmp_path / "second")
    assert "polars" in loaded
    assert sorted(loaded & set(BLOCKED)) == []


def test_a_first_run_without_detectors_does_not_import_scipy_stats(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    """scipy.stats takes most of a second to import: the report imports it only to test drift
    (with earlier partitions), judge anomalies in history or weigh a biased segment."""
    spec = make_dataset({"2024-01-01": "id,amount,count,when,kind\n" + ROWS}, detectors=[])
    _modules_of_run(spec, tmp_path / "first")  # GX checks the suite's entries once
    loaded = _modules_of_run(spec, tmp_path / "second", whole=True)
    assert "sluice.report.build" in loaded
    assert "scipy.stats" not in loaded


def _modules_of_run(spec: Path, tmp_path: Path, *, whole: bool = False) -> set[str]:
    """The top-level modules (every module when ``whole``) a ``sluice run`` of ``spec`` held
    at exit."""
    shim = tmp_path / "shim"
    shim.mkdir(parents=True)
    (shim / "sitecustomize.py").write_text(SHIM)
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "SLUICE_PREFECT")}
    env |= {
        "PYTHONPATH": os.pathsep.join([str(shim), str(ROOT)]),
        "SLUICE_TEST_MODULES": str(tmp_path / "modules.txt"),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        # the cache of accepted suite entries, shared by the runs of one test only
        "SLUICE_CACHE_DIR": str(spec.parent / "sluice-cache"),
    }
    ran = subprocess.run(
        [
            str(Path(sys.executable).with_name("sluice")),
            "run",
            str(spec),
            "--partition",
            "2024-01-01",
            "--force",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert "passed: 300 rows in" in ran.stdout
    names = (tmp_path / "modules.txt").read_text().split()
    return set(names) if whole else {m.split(".")[0] for m in names}
