"""The rows detectors learn from: clean output of earlier committed partitions, verified."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from sluice.config import LoadedSpec, Partition
from sluice.core.frame import ROW_ID, SOURCE_FILE, SOURCE_ROW
from sluice.storage import open_output
from sluice.write import NotCommitted


def reference_rows(
    loaded: LoadedSpec, partition: Partition, columns: list[str]
) -> tuple[pl.DataFrame | None, list[dict[str, Any]]]:
    """The clean rows of up to ``reference.partitions`` committed partitions before this one.

    Only clean output is read, so no quarantined row teaches the detectors, and only as each
    manifest names it (a file whose sha256 it gives, a Delta table at the version it gives).
    Returns the rows (None when there are none) and, for the
    manifest, which partitions they came from.
    """
    wanted = loaded.spec.reference.partitions
    if wanted == 0:
        return None, []
    reports = loaded.output_root("reports")
    options = loaded.storage_options()
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
        got = verified_clean(manifest, columns, storage_options=options)
        if got is not None:
            frames.append(got[0])
            used.append({"partition": str(part), **got[1]})
    if not frames:
        return None, []
    return pl.concat(frames, how="vertical_relaxed"), used


def verified_clean(
    manifest: Path, columns: list[str], *, storage_options: Mapping[str, str] | None = None
) -> tuple[pl.DataFrame, dict[str, Any]] | None:
    """The ``_row_id`` and ``columns`` of a committed partition's clean output, read only as its
    manifest names it (a file with the sha256 it gives, or a Delta table at the version it
    gives, holding the rows it counted), with ``{"sha256" or "table_version", "rows"}``; else
    None."""
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
        source = open_output(doc, "clean", storage_options=storage_options)
        frame = source.read()
    except (OSError, ValueError, KeyError, TypeError, NotCommitted):
        return None
    if not set(columns) <= set(frame.columns):
        return None
    tables = doc.get("tables") or {}
    if "clean" in tables:
        entry = tables["clean"]
        where: dict[str, Any] = {"table": entry["uri"], "table_version": entry["version"]}
        if {SOURCE_FILE, SOURCE_ROW} <= set(frame.columns):
            # delta-rs keeps no row order across the record batches of one write: put the rows
            # back in ingest order (files sorted, records in order), which a fit's sample follows
            frame = frame.sort(SOURCE_FILE, SOURCE_ROW, maintain_order=True)
    else:
        where = {"sha256": doc["outputs"]["clean"]["sha256"]}
    return frame.select(ROW_ID, *columns), {**where, "rows": frame.height}
