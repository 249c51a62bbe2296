"""One interface for where a partition's rows go: POSIX Parquet folders or Delta tables.

The write stage hands each side's frame (clean, quarantine, failures) to an
:class:`OutputBackend` and gets back the manifest entry that names it; conservation is proven
from what the backend reads back. Readers go through :func:`open_output`, which reads only what a
manifest names: a file whose sha256 it gives, or a table at the version it gives.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from sluice.core.files import Unverified, read_verified
from sluice.decide import checksum
from sluice.storage.delta import TableSlice, kill_point, write_partition
from sluice.write import (
    PARQUET_NAME,
    NotCommitted,
    PartitionCommit,
    describe,
    read_back_ids,
    write_parquet,
)

ParquetWriter = Callable[[pl.DataFrame, Path, Mapping[str, str] | None], None]
"""How a Parquet file is written (:func:`sluice.write.write_parquet`)."""


@dataclass(frozen=True)
class Written:
    """What a backend wrote for one side: the manifest entry, under ``outputs`` or ``tables``."""

    side: str
    entry: dict[str, Any]
    table: bool
    staged: Path | None = None


class CleanSource(Protocol):
    """Rows a manifest names, read only as named (a verified file, or a table version)."""

    def schema(self) -> list[str]:
        """The column names."""
        ...

    def read(self, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """The rows (``columns`` only, when given)."""
        ...


class OutputBackend(Protocol):
    """Where a partition's rows go and how they are read back before the commit point."""

    format: str
    folder_sides: tuple[str, ...]
    """The sides whose folders :class:`sluice.write.PartitionCommit` stages and renames."""

    def write(self, side: str, frame: pl.DataFrame, metadata: Mapping[str, str]) -> Written:
        """Write one side's rows; return the entry the manifest will hold."""
        ...

    def read_back(self, written: Written, column: str) -> pl.Series:
        """``column`` of what :meth:`write` wrote, read from the storage (not from memory)."""
        ...


class PosixParquet:
    """Today's layout: ``<root>/<key>=<value>/part-00000.parquet``, staged and renamed."""

    format = "parquet"
    folder_sides: tuple[str, ...] = ("clean", "quarantine", "reports")

    def __init__(self, commit: PartitionCommit, *, write: ParquetWriter = write_parquet) -> None:
        self.commit = commit
        self._write = write

    def write(self, side: str, frame: pl.DataFrame, metadata: Mapping[str, str]) -> Written:
        """Stage ``frame`` as the side's Parquet file (failures go to the reports folder)."""
        folder, name = (
            ("reports", "failures.parquet") if side == "failures" else (side, PARQUET_NAME)
        )
        w = self.commit.writer(folder)
        self._write(frame, w.path(name), metadata or None)
        entry = describe(w.path(name), None if side == "failures" else frame.height)
        entry["path"] = str(w.final / name)
        return Written(side, entry, table=False, staged=w.path(name))

    def read_back(self, written: Written, column: str) -> pl.Series:
        """The column, parsed from the staged bytes whose sha256 the entry gives."""
        assert written.staged is not None
        return read_back_ids(written.staged, written.entry["sha256"], column)


class DeltaTables:
    """Delta tables, one per side, partitioned by the partition key (sluice.storage.delta)."""

    format = "delta"
    folder_sides: tuple[str, ...] = ("reports",)

    def __init__(
        self,
        uris: Mapping[str, str],
        *,
        column: str,
        value: str,
        run_id: str,
        storage_options: Mapping[str, str] | None = None,
    ) -> None:
        self.uris = dict(uris)
        self.column = column
        self.value = value
        self.run_id = run_id
        self.storage_options = dict(storage_options or {})

    def write(self, side: str, frame: pl.DataFrame, metadata: Mapping[str, str]) -> Written:
        """Replace the partition in the side's table: one new table version."""
        got = write_partition(
            self.uris[side],
            frame,
            column=self.column,
            value=self.value,
            metadata={**metadata, "sluice.side": side},
            run_id=self.run_id,
            storage_options=self.storage_options,
        )
        kill_point(side)
        ids = frame["_row_id"] if "_row_id" in frame.columns else pl.Series([], dtype=pl.UInt64)
        entry = {
            "format": "delta",
            "uri": got.uri,
            "version": got.version,
            "partition_column": self.column,
            "partition_value": self.value,
            "rows": frame.height,
            "checksum": checksum(ids),
        }
        return Written(side, entry, table=True)

    def read_back(self, written: Written, column: str) -> pl.Series:
        """The column of the partition at the version the write made."""
        return slice_of(written.entry, self.storage_options).read([column])[column]


def slice_of(entry: Mapping[str, Any], storage_options: Mapping[str, str] | None) -> TableSlice:
    """The table version a manifest's ``tables`` entry names."""
    return TableSlice(
        str(entry["uri"]),
        int(entry["version"]),
        str(entry["partition_column"]),
        str(entry["partition_value"]),
        storage_options,
    )


@dataclass(frozen=True)
class VerifiedFile:
    """A Parquet file a manifest names, read only if its bytes have the sha256 it gives."""

    path: str
    sha256: str

    def _bytes(self) -> bytes:
        try:
            return read_verified(self.path, self.sha256)
        except Unverified as exc:
            raise NotCommitted(
                f"{self.path}: not the file its manifest names ({exc.why})"
            ) from None

    def schema(self) -> list[str]:
        """The column names."""
        return list(pl.read_parquet_schema(io.BytesIO(self._bytes())))

    def read(self, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """The rows (``columns`` only, when given)."""
        data = io.BytesIO(self._bytes())
        return pl.read_parquet(data, columns=None if columns is None else list(columns))


@dataclass(frozen=True)
class TableRows:
    """A table version a manifest names, checked against the rows and checksum it records."""

    slice: TableSlice
    rows: int
    checksum: str

    def schema(self) -> list[str]:
        """The column names."""
        return self.slice.schema()

    def read(self, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """The partition's rows at the manifest's version, refused when they are not the rows
        the manifest counted."""
        want = None if columns is None else list(dict.fromkeys(["_row_id", *columns]))
        frame = self.slice.read(want)
        if frame.height != self.rows or (
            "_row_id" in frame.columns and checksum(frame["_row_id"]) != self.checksum
        ):
            raise NotCommitted(
                f"{self.slice.uri} version {self.slice.version}: partition "
                f"{self.slice.column}={self.slice.value} holds {frame.height} rows, not the "
                f"{self.rows} rows (checksum {self.checksum}) its manifest records"
            )
        return frame if columns is None else frame.select(columns)


def open_output(
    manifest: Mapping[str, Any],
    side: str,
    *,
    storage_options: Mapping[str, str] | None = None,
    folder: Path | None = None,
) -> CleanSource:
    """The rows of one side as ``manifest`` names them: its table version (``tables``) or its
    file (``outputs``). ``folder`` replaces the folder of a file entry (a staged report)."""
    tables = manifest.get("tables") or {}
    if side in tables:
        entry = tables[side]
        return TableRows(slice_of(entry, storage_options), int(entry["rows"]), entry["checksum"])
    try:
        entry = manifest["outputs"][side]
        path = Path(entry["path"]) if folder is None else folder / Path(entry["path"]).name
        return VerifiedFile(str(path), str(entry["sha256"]))
    except (KeyError, TypeError):
        raise NotCommitted(f"the manifest names no {side} output") from None
