"""Delta tables through delta-rs: one table per side, partitioned by the partition key.

A run replaces its partition in each table with one predicate overwrite
(``<key> = '<value>'``), which delta-rs commits as one new table version; the commit carries
sluice's metadata (dataset, partition, run id, suite and spec sha256, rule list). The versions go
into the manifest, and readers read each table at the version the manifest names, filtered to
the partition, so a run that died between two tables, or before its manifest, is never seen.
On S3, delta-rs makes each version's log entry with a conditional put (``If-None-Match``), so
two writers of one table never both make a version; a writer that loses retries on the new
version (``max_commit_retries``).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from sluice.core.errors import SluiceError
from sluice.core.frame import ROW_ID
from sluice.write import NotCommitted, OutputError

if TYPE_CHECKING:
    import pyarrow as pa

KILL_AT_ENV = "SLUICE_TEST_KILL_AT"
"""Test hook: the name of a commit step (``clean``, ``quarantine``, ``failures``, ``manifest``)
after which the process kills itself with SIGKILL, so tests can prove a dead commit is never
seen. Unset in production."""

COMMIT_RETRIES = 20


def kill_point(step: str) -> None:
    """Die here with SIGKILL when :data:`KILL_AT_ENV` names ``step`` (tests only)."""
    if os.environ.get(KILL_AT_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class TableSlice:
    """One partition of a Delta table at one version: what a manifest names and readers read."""

    uri: str
    version: int
    column: str
    value: str
    storage_options: Mapping[str, str] | None = None

    def table(self) -> Any:
        """The table at this version."""
        from deltalake import DeltaTable
        from deltalake.exceptions import DeltaError, TableNotFoundError

        try:
            return DeltaTable(
                self.uri, version=self.version, storage_options=_options(self.storage_options)
            )
        except (TableNotFoundError, DeltaError, OSError) as exc:
            raise NotCommitted(
                f"{self.uri}: cannot read version {self.version} of the Delta table ({_why(exc)})"
            ) from None

    def schema(self) -> list[str]:
        """The column names of the partition's rows (the partition column left out)."""
        names = [f.name for f in self.table().schema().fields]
        return [n for n in names if n != self.column]

    def read(self, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """The partition's rows at this version (the partition column left out)."""
        from deltalake.exceptions import DeltaError

        try:
            arrow = self.table().to_pyarrow_table(
                partitions=[(self.column, "=", self.value)],
                columns=None if columns is None else list(columns),
            )
        except (DeltaError, OSError) as exc:
            raise NotCommitted(
                f"{self.uri}: cannot read version {self.version} ({_why(exc)})"
            ) from None
        frame = pl.from_arrow(arrow)
        assert isinstance(frame, pl.DataFrame)
        return _restored(frame.drop(self.column, strict=False))


def _options(options: Mapping[str, str] | None) -> dict[str, str] | None:
    return dict(options) if options else None


def _why(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_WIDER: dict[pl.DataType, pl.DataType] = {
    pl.UInt8(): pl.Int16(),
    pl.UInt16(): pl.Int32(),
    pl.UInt32(): pl.Int64(),
    pl.UInt64(): pl.Decimal(20, 0),
    pl.Null(): pl.String(),
}


def _storable(frame: pl.DataFrame) -> pl.DataFrame:
    """Types Delta has not, as the nearest exact type it has: unsigned integers widened (a
    ``UInt64`` such as ``_row_id`` as ``DECIMAL(20, 0)``), an all-missing column as strings."""
    casts = [pl.col(c).cast(_WIDER[t]) for c, t in frame.schema.items() if t in _WIDER]
    return frame.with_columns(casts) if casts else frame


def _restored(frame: pl.DataFrame) -> pl.DataFrame:
    if ROW_ID in frame.columns and frame.schema[ROW_ID] != pl.UInt64:
        return frame.with_columns(pl.col(ROW_ID).cast(pl.UInt64))
    return frame


def write_partition(
    uri: str,
    frame: pl.DataFrame,
    *,
    column: str,
    value: str,
    metadata: Mapping[str, str],
    run_id: str,
    storage_options: Mapping[str, str] | None = None,
) -> TableSlice:
    """Replace one partition of the table at ``uri`` with ``frame``; returns the version made.

    The table is made when absent, partitioned by ``column``. ``metadata`` goes into the
    commit's ``custom_metadata`` with ``sluice.run_id``; the version returned is the one whose
    commit carries this run id (another writer may have committed since).
    """
    refuse_key_column(uri, frame.columns, column)
    data = _storable(frame).with_columns(pl.lit(value, dtype=pl.String).alias(column))
    version = replace_partition(
        uri,
        data.to_arrow(),
        column=column,
        value=value,
        metadata=metadata,
        run_id=run_id,
        storage_options=storage_options,
    )
    return TableSlice(uri, version, column, value, storage_options)


def refuse_key_column(uri: str, columns: Iterable[str], column: str) -> None:
    """Refuse rows holding a column named as the partition key of the table at ``uri``."""
    if column in columns:
        raise OutputError(
            f"{uri}: the rows have a column {column!r}, the name of the partition key that "
            "partitions the Delta table; rename the column or the partition key"
        )


def replace_partition(
    uri: str,
    data: pa.Table | pa.RecordBatchReader,
    *,
    column: str,
    value: str,
    metadata: Mapping[str, str],
    run_id: str,
    storage_options: Mapping[str, str] | None = None,
) -> int:
    """Replace the partition ``column = value`` of the table at ``uri`` with ``data`` (Arrow
    rows that already hold ``column``, as a table or a stream of batches) in one commit; the
    table is made when absent. Returns the version whose commit carries ``run_id``."""
    from deltalake import CommitProperties, DeltaTable, write_deltalake
    from deltalake.exceptions import DeltaError, TableNotFoundError

    quoted = value.replace("'", "''")
    props = CommitProperties(
        custom_metadata={**metadata, "sluice.run_id": run_id}, max_commit_retries=COMMIT_RETRIES
    )
    options = _options(storage_options)
    try:
        try:
            DeltaTable(uri, storage_options=options, without_files=True)
            exists = True
        except TableNotFoundError:
            exists = False
        if exists:
            write_deltalake(
                uri,
                data,
                mode="overwrite",
                predicate=f"{column} = '{quoted}'",
                schema_mode="merge",
                storage_options=options,
                commit_properties=props,
            )
        else:
            write_deltalake(
                uri,
                data,
                mode="append",
                partition_by=[column],
                storage_options=options,
                commit_properties=props,
            )
        return _version_of(DeltaTable(uri, storage_options=options), run_id)
    except (DeltaError, OSError, ValueError) as exc:
        raise OutputError(f"cannot write the Delta table {uri}: {_why(exc)}") from None


def _version_of(table: Any, run_id: str) -> int:
    for commit in table.history(COMMIT_RETRIES + 10):
        if commit.get("sluice.run_id") == run_id:
            return int(commit["version"])
    raise SluiceError(f"{table.table_uri}: no version carries run {run_id} after its write")


def commit_metadata(
    uri: str, version: int, storage_options: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The commit information of one table version (with sluice's custom metadata)."""
    from deltalake import DeltaTable

    table = DeltaTable(uri, storage_options=_options(storage_options))
    for commit in table.history():
        if int(commit["version"]) == version:
            return dict(commit)
    raise NotCommitted(f"{uri}: no version {version}")
