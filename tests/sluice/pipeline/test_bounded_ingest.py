"""The bounded ingest stage writes the work files and facts of the in-memory stage.

The stage runs twice on the same files (``SLUICE_BOUNDED=0``, then ``1`` with tiny batches); the
work files, read back, and the recorded facts must be equal, the bounded files made of row groups
of at most ``SLUICE_BATCH_ROWS`` rows. The real ``sluice backfill`` then screens days of hostile
data both ways: the same clean, quarantine and failures, verdicts and counts.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest

from sluice.core.text import as_text
from sluice.pipeline.run import Run
from sluice.pipeline.stages import _ingest
from sluice.write import load_partition
from tests.robustness.corpus import BY_NAME
from tests.robustness.support import manifest_path, write_dataset
from tests.sluice.test_ingest_pieces import HOSTILE_CSV, HOSTILE_NDJSON, HOSTILE_PARQUET

DAY = "2024-01-01"
WORK_FILES = ("frame.parquet", "raw.parquet", "ingest_failures.parquet")


def _stage(
    spec: Path, monkeypatch: pytest.MonkeyPatch, bounded: str
) -> tuple[dict[str, Any], dict[str, pl.DataFrame], Run]:
    monkeypatch.setenv("SLUICE_BOUNDED", bounded)
    monkeypatch.setenv("SLUICE_BATCH_ROWS", "3")
    run = Run.prepare(str(spec), DAY, check_detectors=False)
    facts = _ingest(run)
    files = {name: pl.read_parquet(run.file(name)) for name in WORK_FILES}
    return facts, files, run


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns, nulls_last=True)


@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("csv", "quoted_newlines"),
        ("csv", "ragged_late"),
        ("csv", "bad_bytes_late"),
        ("csv", "header_only"),
        ("ndjson", "late_keys"),
        ("parquet", "three_row_groups"),
    ],
)
def test_stage_writes_the_in_memory_stages_files_and_facts(
    fmt: str, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = {"csv": HOSTILE_CSV, "ndjson": HOSTILE_NDJSON, "parquet": HOSTILE_PARQUET}[fmt][name]
    files = {f"a.{fmt}": content}
    if fmt != "parquet":
        files[f"b.{fmt}"] = content + b"\n"
    spec = write_dataset(tmp_path, {DAY: files}, fmt=fmt)
    want_facts, want, first = _stage(spec, monkeypatch, "0")
    got_facts, got, second = _stage(spec, monkeypatch, "1")
    try:
        assert got_facts == want_facts
        assert got["frame.parquet"].equals(want["frame.parquet"])
        # in memory the raw values are as read, bounded their text (sluice.core.text)
        assert got["raw.parquet"].equals(as_text(want["raw.parquet"]))
        failures = "ingest_failures.parquet"
        assert _sorted(got[failures]).equals(_sorted(want[failures]))
        for file in WORK_FILES:
            meta = pq.ParquetFile(second.file(file)).metadata
            assert all(meta.row_group(i).num_rows <= 3 for i in range(meta.num_row_groups))
        groups = pq.ParquetFile(second.file("frame.parquet")).metadata.num_row_groups
        assert groups > 1 or got_facts["rows"] <= 3
    finally:
        first.discard()
        second.discard()


def test_bounded_is_chosen_by_the_switch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = write_dataset(tmp_path, {DAY: HOSTILE_CSV["quoted_newlines"]})
    _, _, whole = _stage(spec, monkeypatch, "0")
    _, _, bounded = _stage(spec, monkeypatch, "1")
    try:
        assert pq.ParquetFile(whole.file("frame.parquet")).metadata.num_row_groups == 1
        assert pq.ParquetFile(bounded.file("frame.parquet")).metadata.num_row_groups == 4
    finally:
        whole.discard()
        bounded.discard()


FIRST = dt.date(2024, 1, 1)
E2E_CASES: dict[str, list[bytes]] = {
    "csv": [
        HOSTILE_CSV[n]
        for n in (
            "quoted_newlines",
            "ragged_late",
            "bad_bytes_late",
            "blank_lines",
            "unclosed_quote_late",
            "header_only",
            "duplicates_across",
            "crlf_bom",
        )
    ]
    + [
        BY_NAME[n].data
        for n in ("csv_ragged_rows", "csv_mixed_encodings", "csv_schema_renamed_column")
    ],
    "ndjson": [
        HOSTILE_NDJSON[n] for n in ("late_keys", "bad_lines_piece", "bad_utf8", "no_objects")
    ],
    "parquet": [HOSTILE_PARQUET[n] for n in ("three_row_groups", "one_row")]
    + [BY_NAME["parquet_corrupt_polars_panics_33_1"].data],
}


def _backfill(root: Path, fmt: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``sluice backfill`` in process (no Prefect API) over one day per case of ``fmt``."""
    days = {str(FIRST + dt.timedelta(days=i)): data for i, data in enumerate(E2E_CASES[fmt])}
    spec = write_dataset(root, days, fmt=fmt)
    last = str(FIRST + dt.timedelta(days=len(days) - 1))
    exe = str(Path(sys.executable).with_name("sluice"))
    base = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "SLUICE_PREFECT")}
    return subprocess.run(
        [exe, "backfill", str(spec), "--start", str(FIRST), "--end", last],
        env={**base, "PREFECT_HOME": str(root / "prefect-home"), **env},
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _run(root: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``sluice run`` in process over one partition of several hostile CSV files."""
    names = ("quoted_newlines", "ragged_late", "bad_bytes_late", "blank_lines", "crlf_bom")
    files = {f"{n}.csv": HOSTILE_CSV[n] for n in (*names, "duplicates_across", "lone_cr")}
    spec = write_dataset(root, {DAY: files})
    exe = str(Path(sys.executable).with_name("sluice"))
    base = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "SLUICE_PREFECT")}
    return subprocess.run(
        [exe, "run", str(spec), "--partition", DAY],
        env={**base, "PREFECT_HOME": str(root / "prefect-home"), **env},
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_sluice_run_bounded_gives_the_same_outputs(tmp_path: Path) -> None:
    whole = _run(tmp_path, SLUICE_BOUNDED="0")
    want = _outcome(tmp_path, DAY)
    shutil.rmtree(tmp_path / "out")
    bounded = _run(tmp_path, SLUICE_BOUNDED="1", SLUICE_BATCH_ROWS="5")
    assert whole.returncode == 1, whole.stderr[-2000:]
    assert bounded.returncode == whole.returncode, bounded.stderr[-2000:]
    assert _lines(bounded.stdout) == _lines(whole.stdout) != []
    got = _outcome(tmp_path, DAY)
    assert got["counts"] == want["counts"]
    assert got["counts"]["quarantine"] > 0
    assert got["status"] == want["status"]
    for side, frame in want["frames"].items():
        assert got["frames"][side].equals(frame), side


def _outcome(root: Path, day: str) -> dict[str, Any]:
    path = manifest_path(root, day)
    if not path.exists():
        return {}
    part = load_partition(path)
    m = part.manifest
    sides = {s: _sorted(part.frames[s]) for s in ("clean", "quarantine", "failures")}
    return {"status": m["status"], "counts": m["counts"], "frames": sides}


def _lines(out: str) -> list[str]:
    """The per-day and summary lines of a backfill, without times."""
    text = re.sub(r"\d+(\.\d+)?\s?s\b", "", out)
    return [ln for ln in text.splitlines() if re.search(r"\d{4}-\d{2}-\d{2}: |backfill:", ln)]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", sorted(E2E_CASES))
def test_sluice_backfill_bounded_gives_the_same_outputs(fmt: str, tmp_path: Path) -> None:
    days = [str(FIRST + dt.timedelta(days=i)) for i in range(len(E2E_CASES[fmt]))]
    whole = _backfill(tmp_path, fmt, SLUICE_BOUNDED="0")
    want = {day: _outcome(tmp_path, day) for day in days}
    shutil.rmtree(tmp_path / "out")
    bounded = _backfill(tmp_path, fmt, SLUICE_BOUNDED="1", SLUICE_BATCH_ROWS="5")
    assert whole.returncode in (0, 1), whole.stderr[-2000:]
    assert bounded.returncode == whole.returncode, bounded.stderr[-2000:]
    assert "Traceback" not in bounded.stderr
    assert _lines(bounded.stdout) == _lines(whole.stdout)
    assert len(_lines(whole.stdout)) > len(days)
    assert any(want.values())
    for day in days:
        got = _outcome(tmp_path, day)
        assert got.keys() == want[day].keys()
        if not got:
            continue
        assert got["status"] == want[day]["status"]
        assert got["counts"] == want[day]["counts"]
        for side, frame in want[day]["frames"].items():
            assert got["frames"][side].equals(frame), (day, side)
