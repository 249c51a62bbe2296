"""The corpus through the real ``sluice`` command: one backfill per format, one day per case.

Each backfill runs in a subprocess against the session's Prefect API (``PREFECT_API_URL``), so
the three cost one Prefect start-up between them. A representative subset runs by default; the
whole corpus under ``-m slow``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.robustness.corpus import BY_NAME, CASES, Case
from tests.robustness.support import check_conserved, manifest_path, reasons, write_dataset

pytestmark = pytest.mark.e2e
FIRST = dt.date(2024, 1, 1)
SUBSET = {
    "csv": (
        "csv_ragged_rows",
        "csv_unbalanced_quote_swallows_lines",
        "csv_mixed_encodings",
        "csv_empty_file",
        "csv_duplicate_column_names",
        "csv_schema_renamed_column",
        "csv_nul_in_column_name",
    ),
    "ndjson": ("ndjson_broken_lines", "ndjson_invalid_utf8_line", "ndjson_reserved_key"),
    "parquet": (
        "parquet_truncated",
        "parquet_nested_for_scalars",
        "parquet_corrupt_0",
        "parquet_type_decimal256",
        "parquet_declared_int_as_duration",
        "parquet_two_files_naive_and_utc_timestamps",
        "parquet_string_column_not_utf8",
        "parquet_list_of_text_not_utf8",
    ),
}


@dataclass(frozen=True)
class Batch:
    """One ``sluice backfill`` over a spec whose days are cases."""

    root: Path
    days: dict[str, Case]
    code: int
    out: str
    err: str


def sluice_exe() -> str:
    """The installed ``sluice`` command."""
    return str(Path(sys.executable).with_name("sluice"))


@pytest.fixture(scope="module")
def cli_env(prefect_api: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for subprocesses: the session's Prefect API, quiet logs."""
    import prefect.settings

    return {
        **os.environ,
        "PREFECT_API_URL": str(prefect.settings.PREFECT_API_URL.value()),
        "PREFECT_HOME": str(tmp_path_factory.mktemp("cli-prefect-home")),
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }


def _backfills(
    names: dict[str, tuple[str, ...]], base: Path, env: dict[str, str]
) -> dict[str, Batch]:
    running = {}
    for fmt, chosen in names.items():
        cases = [BY_NAME[n] for n in chosen]
        days = {str(FIRST + dt.timedelta(days=i)): c for i, c in enumerate(cases)}
        root = base / fmt
        root.mkdir()
        spec = write_dataset(root, {d: c.content for d, c in days.items()}, fmt=fmt)
        last = str(FIRST + dt.timedelta(days=len(cases) - 1))
        cmd = [sluice_exe(), "backfill", str(spec), "--start", str(FIRST), "--end", last]
        proc = subprocess.Popen(
            cmd, env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        running[fmt] = (root, days, proc)
    batches = {}
    for fmt, (root, days, proc) in running.items():
        out, err = proc.communicate(timeout=900)
        batches[fmt] = Batch(root, days, proc.returncode, out, err)
    return batches


def _check_batch(batch: Batch) -> dict[str, str]:
    """Every day's outcome as the corpus says; returns each day's outcome in a word."""
    assert batch.code in (0, 1), batch.err[-2000:]
    outcomes = {}
    for day, case in batch.days.items():
        failed = re.search(rf"^\S+ {day}: FAILED: (.*)$", batch.out, re.MULTILINE)
        ran = failed is not None and re.match(r"\d+ rows in, ", failed.group(1)) is not None
        if case.error is not None or (case.either and failed and not ran):
            assert failed, f"{case.name}: no FAILED line\n{batch.out}"
            assert re.search(case.error or r"data\.parquet", failed.group(1)), failed.group(1)
            assert str(batch.root / "raw" / f"date={day}") in failed.group(1)
            outcomes[case.name] = "error"
            continue
        manifest = check_conserved(manifest_path(batch.root, day), case.rows)
        if not case.either:
            assert manifest["status"] == case.status, case.name
            assert case.reasons <= reasons(manifest), case.name
        outcomes[case.name] = f"{manifest['status']}: {sorted(reasons(manifest))}"
    warned = sum(v.startswith("warned") for v in outcomes.values())
    screened = sum(v.startswith("passed") for v in outcomes.values()) + warned
    failed_days = len(outcomes) - screened
    assert (
        f"backfill: {screened} screened, 0 skipped, {failed_days} failed ({warned} warned)"
        in batch.out
    )
    return outcomes


@pytest.fixture(scope="module")
def subset(cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Batch]:
    return _backfills(SUBSET, tmp_path_factory.mktemp("cli"), cli_env)


@pytest.mark.parametrize("fmt", sorted(SUBSET))
def test_backfill_outcomes(subset: dict[str, Batch], fmt: str) -> None:
    outcomes = _check_batch(subset[fmt])
    assert len(outcomes) == len(SUBSET[fmt])


@pytest.mark.parametrize("fmt", sorted(SUBSET))
def test_backfill_stderr_has_no_traceback(subset: dict[str, Batch], fmt: str) -> None:
    assert "Traceback" not in subset[fmt].err


@pytest.mark.slow
def test_backfill_whole_corpus(cli_env: dict[str, str], tmp_path: Path) -> None:
    every = {fmt: tuple(c.name for c in CASES if c.fmt == fmt) for fmt in SUBSET}
    batches = _backfills(every, tmp_path, cli_env)
    for fmt, batch in batches.items():
        assert len(_check_batch(batch)) == len(every[fmt])


def test_run_quarantines_with_reasons_and_errors_name_the_place(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    good, bad = BY_NAME["csv_mixed_encodings"], BY_NAME["csv_unbalanced_quote_swallows_lines"]
    spec = write_dataset(tmp_path, {"2024-01-01": good.data, "2024-01-02": bad.data})
    runs = [
        subprocess.Popen(
            [sluice_exe(), "run", str(spec), "--partition", day],
            env=cli_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for day in ("2024-01-01", "2024-01-02")
    ]
    (out, err), (_, bad_err) = (p.communicate(timeout=600) for p in runs)
    assert runs[0].returncode == 0, err
    assert "Traceback" not in err
    assert "3 rows in, 2 clean, 1 quarantined" in out
    assert "_row|encoding" in out
    check_conserved(manifest_path(tmp_path, "2024-01-01"), rows_in=3)
    assert runs[1].returncode == 2
    last = bad_err.strip().splitlines()[-1]
    assert re.fullmatch(r"sluice: .*/date=2024-01-02/data\.csv:3: a quoted field .*", last), last
    assert not (tmp_path / "out" / "clean" / "date=2024-01-02").exists()
