"""Skip what is done: see :mod:`sluice.pipeline.idempotence`, which the in-process runner and
the flows share; this module keeps the names importable from ``flows``."""

from sluice.pipeline.idempotence import (
    Done,
    check_done,
    load_manifest,
    manifest_path,
    read_manifest,
    skipped_summary,
    summary_from_manifest,
    unverified_output,
    unverified_tables,
)

__all__ = [
    "Done",
    "check_done",
    "load_manifest",
    "manifest_path",
    "read_manifest",
    "skipped_summary",
    "summary_from_manifest",
    "unverified_output",
    "unverified_tables",
]
