"""Storage backends: where a partition's rows go and how readers read them as committed.

:class:`PosixParquet` is the local default (one Parquet file per partition folder, swapped in
by rename); :class:`DeltaTables` writes Delta tables through delta-rs on local disk or object
stores. Both sit behind :class:`OutputBackend`; readers use :func:`open_output`.
docs/storage.md describes both.
"""

from sluice.storage.backend import (
    CleanSource,
    DeltaTables,
    OutputBackend,
    PosixParquet,
    TableRows,
    VerifiedFile,
    Written,
    open_output,
    slice_of,
)
from sluice.storage.delta import KILL_AT_ENV, TableSlice, commit_metadata, kill_point

__all__ = [
    "KILL_AT_ENV",
    "CleanSource",
    "DeltaTables",
    "OutputBackend",
    "PosixParquet",
    "TableRows",
    "TableSlice",
    "VerifiedFile",
    "Written",
    "commit_metadata",
    "kill_point",
    "open_output",
    "slice_of",
]
