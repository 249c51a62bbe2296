"""The metric history of a dataset: one Parquet file per partition under ``<reports>/_history/``.

Every run writes its metrics (:func:`sluice.report.metrics.metrics_frame`) as ``metrics.parquet``
in its partition's reports folder, committed with the manifest; once the folder is in place the
same file is copied to ``_history/<key>=<value>.parquet`` by an atomic rename. Screening a
partition again replaces its file, so the history holds the latest run of every partition. Query
it with polars (``pl.scan_parquet("<reports>/_history/*.parquet")``), DuckDB or pandas; if it is
lost, :func:`rebuild_history` gathers it again from the partition folders.

A spec's ``monitor.baseline`` pins the partitions anomalies and drift are judged against
(:class:`Baseline`); without it the reference is the rolling window of recent partitions.
:func:`age_span` words how old a reference is.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from sluice.report.metrics import METRICS_SCHEMA
from sluice.write import OutputError

if TYPE_CHECKING:
    from sluice.config import DatasetSpec

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


@dataclass(frozen=True)
class Baseline:
    """Pinned reference partitions: a closed range of partition starts, or a list of them."""

    kind: str
    start: dt.date | None = None
    end: dt.date | None = None
    partitions: frozenset[dt.date] = frozenset()

    def __contains__(self, day: object) -> bool:
        if not isinstance(day, dt.date):
            return False
        if self.partitions:
            return day in self.partitions
        return (self.start is None or day >= self.start) and (self.end is None or day <= self.end)

    def __str__(self) -> str:
        if self.partitions:
            days = sorted(self.partitions)
            listed = ", ".join(_label(d, self.kind) for d in days[:4])
            more = f" and {len(days) - 4} more" if len(days) > 4 else ""
            return f"pinned baseline {listed}{more}"
        lo = _label(self.start, self.kind) if self.start else "the first partition"
        hi = _label(self.end, self.kind) if self.end else "the last partition"
        return f"pinned baseline {lo} to {hi}"

    @classmethod
    def of(cls, spec: DatasetSpec) -> Baseline | None:
        """The spec's pinned baseline, or None for the rolling window."""
        pinned = spec.monitor.baseline
        if pinned is None:
            return None
        kind, key = spec.partition.kind, spec.partition.key
        from sluice.config import Partition

        if isinstance(pinned, list):
            return cls(
                kind, partitions=frozenset(Partition.parse(p, kind, key).start for p in pinned)
            )
        start = Partition.parse(pinned.start, kind, key).start if pinned.start else None
        end = Partition.parse(pinned.end, kind, key).start if pinned.end else None
        return cls(kind, start, end)


def _label(day: dt.date, kind: str) -> str:
    if kind == "hour":
        return day.strftime("%Y-%m-%dT%H")
    return day.isoformat() if kind == "day" else day.strftime("%Y-%m")


def _hours(a: dt.date, b: dt.date) -> int:
    return round((b - a).total_seconds() / 3600)


def _months(a: dt.date, b: dt.date) -> int:
    return (b.year - a.year) * 12 + b.month - a.month


def _ago(n: int, unit: str) -> str:
    word = unit if abs(n) == 1 else unit + "s"
    return f"{abs(n)} {word} {'before' if n > 0 else 'after'}"


def age_span(days: list[dt.date], day: dt.date, kind: str) -> str:
    """``2018-05 to 2018-07, 18 to 20 months before this partition``: which partitions a
    reference holds and how far from ``day`` they are (in days for a daily dataset)."""
    if not days:
        return "no partitions"
    lo, hi = min(days), max(days)
    unit = kind if kind in ("day", "hour") else "month"
    age: Callable[[dt.date], int] = (
        (lambda d: (day - d).days)
        if kind == "day"
        else (lambda d: _hours(d, day))
        if kind == "hour"
        else (lambda d: _months(d, day))
    )
    near, far = age(hi), age(lo)
    where = _label(lo, kind) if lo == hi else f"{_label(lo, kind)} to {_label(hi, kind)}"
    if near == far:
        ago = _ago(far, unit)
    elif near > 0:
        ago = f"{near} to {_ago(far, unit)}"
    elif far < 0:
        ago = f"{-far} to {_ago(near, unit)}"
    else:
        ago = f"{_ago(far, unit)} to {_ago(near, unit)}"
    return f"{where}, {ago} this partition"
