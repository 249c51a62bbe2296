"""Write: the only stage that knows where outputs go.

Each output root holds one folder per partition (``<key>=<value>``). A partition folder is built
under a temporary name beside its final place and renamed into place, so readers never see half a
folder and screening a partition again replaces its outputs instead of adding to them. The
manifest is written last: a partition without a manifest is not finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from sluice.errors import SluiceError

PARQUET_NAME = "part-00000.parquet"
MANIFEST_NAME = "manifest.json"
STAGING_PREFIX = ".staging-"
TRASH_PREFIX = ".replaced-"


class OutputError(SluiceError):
    """An output root cannot be written (read-only, full, not a folder)."""


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_parquet(
    frame: pl.DataFrame, path: Path, metadata: Mapping[str, str] | None = None
) -> None:
    """Write a Parquet file deterministically: same frame, same bytes."""
    frame.write_parquet(
        path,
        compression="zstd",
        compression_level=3,
        statistics=True,
        metadata=dict(metadata) if metadata else None,
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PartitionWriter:
    """Stage a partition's files under one root, then swap them into place.

    Use as a context manager: on error the staging folder is removed and the previous outputs
    stay as they were.
    """

    def __init__(self, root: Path, dirname: str) -> None:
        self.root = root
        self.final = root / dirname
        self.staging = root / f"{STAGING_PREFIX}{dirname}-{uuid.uuid4().hex[:12]}"

    def __enter__(self) -> PartitionWriter:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.staging.mkdir()
        except OSError as exc:
            raise OutputError(f"cannot write under {self.root}: {exc.strerror}") from None
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            shutil.rmtree(self.staging, ignore_errors=True)

    def path(self, name: str) -> Path:
        """Where to stage a file of this partition."""
        return self.staging / name

    def commit(self) -> Path:
        """Move the staged folder into place, replacing what was there."""
        try:
            for f in self.staging.iterdir():
                with f.open("rb") as fh:
                    os.fsync(fh.fileno())
            trash = None
            if self.final.exists():
                trash = self.root / f"{TRASH_PREFIX}{self.final.name}-{uuid.uuid4().hex[:12]}"
                self.final.rename(trash)
            self.staging.rename(self.final)
            _fsync_dir(self.root)
        except OSError as exc:
            raise OutputError(f"cannot move outputs into {self.final}: {exc.strerror}") from None
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
        return self.final


def describe(path: Path, rows: int | None = None) -> dict[str, Any]:
    """A manifest entry for an output file."""
    out: dict[str, Any] = {
        "path": str(path),
        "sha256": file_sha256(path),
        "bytes": path.stat().st_size,
    }
    if rows is not None:
        out["rows"] = rows
    return out


def write_json(obj: Any, path: Path) -> None:
    """Write JSON with sorted keys and a trailing newline."""
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
