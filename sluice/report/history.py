"""The metric history of a dataset: one Parquet file per partition under ``<reports>/_history/``.

Every run writes its metrics (:func:`sluice.report.metrics.metrics_frame`) as ``metrics.parquet``
in its partition's reports folder, committed with the manifest; once the folder is in place the
same file is copied to ``_history/<key>=<value>.parquet`` by an atomic rename. Screening a
partition again replaces its file, so the history holds the latest run of every partition. Query
it with polars (``pl.scan_parquet("<reports>/_history/*.parquet")``), DuckDB or pandas; if it is
lost, :func:`rebuild_history` gathers it again from the partition folders.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from pathlib import Path

import polars as pl

from sluice.report.metrics import METRICS_SCHEMA
from sluice.write import OutputError

HISTORY_DIR = "_history"
METRICS_NAME = "metrics.parquet"


def history_dir(reports_root: Path) -> Path:
    """Where a dataset's metric history lives."""
    return reports_root / HISTORY_DIR


def append_history(partition_folder: Path) -> Path | None:
    """Copy a committed partition's ``metrics.parquet`` into the history, atomically.

    Returns the history file, or None when the run left no metrics (its report failed).
    """
    src = partition_folder / METRICS_NAME
    if not src.exists():
        return None
    target_dir = history_dir(partition_folder.parent)
    target = target_dir / f"{partition_folder.name}.parquet"
    tmp = target_dir / f".{partition_folder.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, tmp)
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        raise OutputError(
            f"cannot add {src} to the metric history in {target_dir}: {exc.strerror}; the "
            f"partition's outputs are complete, run the partition again to add it"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


def load_history(reports_root: Path, *, before: dt.date | None = None) -> pl.DataFrame:
    """Every partition's metrics, oldest first; only partitions starting before ``before``."""
    files = sorted(history_dir(reports_root).glob("*.parquet"))
    if not files:
        return pl.DataFrame(schema=METRICS_SCHEMA)
    frame = pl.concat(
        [pl.read_parquet(f).cast(METRICS_SCHEMA) for f in files],  # type: ignore[arg-type]
        how="vertical",
    )
    if before is not None:
        frame = frame.filter(pl.col("partition_start") < before)
    return frame.sort("partition_start", "scope", "name", "metric")


def rebuild_history(reports_root: Path) -> int:
    """Gather the history again from every partition folder's ``metrics.parquet``."""
    n = 0
    for metrics in sorted(reports_root.glob(f"*=*/{METRICS_NAME}")):
        if not metrics.parent.name.startswith(".") and append_history(metrics.parent):
            n += 1
    return n
