"""Clean output keeps provenance (``_source_file``, ``_source_row``): the report reads it as no
data (no profile, no drift test, no metric of its own), against earlier clean partitions written
with it and without it (before it was kept)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

from sluice.config import Partition
from sluice.core.failures import concat_failures
from sluice.core.frame import PROVENANCE
from sluice.report.build import compose
from sluice.report.metrics import RunOutputs
from sluice.write import PARQUET_NAME

DAYS = [Partition(dt.date(2024, 1, 1 + i), "day", "date") for i in range(4)]
ROWS = 500


def clean(i: int, *, traced: bool) -> pl.DataFrame:
    """Day ``i``'s clean rows; fares triple on the last day."""
    rng = np.random.default_rng(i)
    fare = rng.gamma(4.0, 4.0, ROWS) * (3.0 if i == len(DAYS) - 1 else 1.0)
    frame = pl.DataFrame(
        {
            "_row_id": pl.Series(np.arange(ROWS), dtype=pl.UInt64),
            "_source_file": [f"raw/date={DAYS[i]}/trips.csv"] * ROWS,
            "_source_row": np.arange(ROWS, dtype=np.int64),
            "fare": fare,
            "payment": rng.choice(["card", "cash"], ROWS).tolist(),
        }
    )
    return frame if traced else frame.drop("_source_file", "_source_row")


def test_provenance_is_no_data_column_for_profiles_drift_or_metrics(tmp_path: Path) -> None:
    for i, part in enumerate(DAYS[:-1]):
        folder = tmp_path / "clean" / part.dirname
        folder.mkdir(parents=True)
        clean(i, traced=i % 2 == 1).write_parquet(folder / PARQUET_NAME)
    today = clean(len(DAYS) - 1, traced=True)
    outputs = RunOutputs(
        manifest={
            "dataset": "taxi",
            "run_id": "r",
            "finished_at": "",
            "counts": {"in": ROWS, "clean": ROWS, "quarantine": 0},
            "detectors": [],
        },
        partition=DAYS[-1],
        clean=today,
        quarantine=today.head(0).with_columns(pl.lit(None, pl.List(pl.String)).alias("_reasons")),
        failures=concat_failures([]),
        scores=None,
    )
    assert list(outputs.columns) == ["fare", "payment"]
    report = compose(outputs, reports_root=tmp_path / "reports", clean_root=tmp_path / "clean")
    assert [c.name for c in report.columns] == ["fare", "payment"]
    assert [d.column for d in report.drift] == ["fare", "payment"]
    (fare,) = [d for d in report.drift if d.column == "fare"]
    assert fare.kind != "skipped"
    assert fare.drifted
    columns = report.metrics.filter(pl.col("scope") == "column")
    assert set(columns.get_column("name")) == {"fare", "payment"}
    assert not set(report.metrics.get_column("name")) & set(PROVENANCE)
