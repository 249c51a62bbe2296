"""The rows detectors learn from: clean output of earlier committed partitions, verified."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import polars as pl

from sluice.config import LoadedSpec, Partition
from sluice.core.files import Unverified, read_verified
from sluice.core.frame import ROW_ID


def reference_rows(
    loaded: LoadedSpec, partition: Partition, columns: list[str]
) -> tuple[pl.DataFrame | None, list[dict[str, Any]]]:
    """The clean rows of up to ``reference.partitions`` committed partitions before this one.

    Only clean output is read, so no quarantined row teaches the detectors, and only files
    whose sha256 their manifest gives. Returns the rows (None when there are none) and, for the
    manifest, which partitions they came from.
    """
    wanted = loaded.spec.reference.partitions
    if wanted == 0:
        return None, []
    reports = loaded.output_root("reports")
    earlier: list[tuple[Partition, Path]] = []
    for manifest in reports.glob(f"{partition.key}=*/manifest.json"):
        try:
            part = loaded.spec.partition.parse(manifest.parent.name.split("=", 1)[1])
        except ValueError:
            continue
        if part.start < partition.start:
            earlier.append((part, manifest))
    frames: list[pl.DataFrame] = []
    used: list[dict[str, Any]] = []
    for part, manifest in sorted(earlier, key=lambda pm: pm[0].start, reverse=True):
        if len(used) == wanted:
            break
        got = verified_clean(manifest, columns)
        if got is not None:
            frames.append(got[0])
            used.append({"partition": str(part), **got[1]})
    if not frames:
        return None, []
    return pl.concat(frames, how="vertical_relaxed"), used


def verified_clean(
    manifest: Path, columns: list[str]
) -> tuple[pl.DataFrame, dict[str, Any]] | None:
    """The ``_row_id`` and ``columns`` of a committed partition's clean output, read only if the
    file's sha256 is the one its manifest gives, with ``{"sha256", "rows"}``; else None."""
    try:
        entry = json.loads(manifest.read_text(encoding="utf-8"))["outputs"]["clean"]
        data = read_verified(entry["path"], entry["sha256"])
    except (OSError, ValueError, KeyError, TypeError, Unverified):
        return None
    frame = pl.read_parquet(io.BytesIO(data))
    if not set(columns) <= set(frame.columns):
        return None
    return frame.select(ROW_ID, *columns), {"sha256": entry["sha256"], "rows": frame.height}
