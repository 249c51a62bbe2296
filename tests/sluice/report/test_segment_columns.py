"""Which columns segment bias reads: the cardinality check on the clean rows, file or frame."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from sluice.config import Partition
from sluice.core.failures import concat_failures
from sluice.report.metrics import RunOutputs

ROWS = 1_000


def _outputs(clean: pl.DataFrame, file: Path | None) -> RunOutputs:
    if file is not None:
        clean.write_parquet(file, row_group_size=100)
    return RunOutputs(
        manifest={"dataset": "d", "run_id": "r", "finished_at": "", "detectors": []},
        partition=Partition(dt.date(2024, 1, 1), "day", "date"),
        clean=clean.head(0) if file is not None else clean,
        quarantine=clean.head(0),
        failures=concat_failures([]),
        scores=None,
        clean_file=file,
    )


@pytest.mark.parametrize("on_disk", [False, True])
def test_the_check_counts_values_exactly_with_null_as_one(tmp_path: Path, on_disk: bool) -> None:
    clean = pl.DataFrame(
        {
            "_row_id": pl.Series(range(ROWS), dtype=pl.UInt64),
            "key": [f"k{i}" for i in range(ROWS)],
            "few": [None if i % 7 == 0 else f"v{i % 3}" for i in range(ROWS)],
            "late": ["a"] * (ROWS - 1) + ["b"],
        }
    )
    out = _outputs(clean, tmp_path / "clean.parquet" if on_disk else None)
    assert out.clean_has_more_values_than("key", 50)
    assert not out.clean_has_more_values_than("few", 4)  # v0, v1, v2 and null
    assert out.clean_has_more_values_than("few", 3)
    assert out.clean_has_more_values_than("late", 1), "a value in the last row group counts"
    assert not out.clean_has_more_values_than("late", 2)
