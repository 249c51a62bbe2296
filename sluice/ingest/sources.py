"""The files of a partition: listing them, refusing what is not a regular file, reading bytes."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import fsspec

from sluice.config import LoadedSpec, Partition
from sluice.core.errors import InputError
from sluice.core.files import input_error, kind, read_regular
from sluice.core.frame import ids_meet


@dataclass(frozen=True)
class SourceFile:
    """One file read for a partition."""

    path: str
    sha256: str
    size: int
    rows: int
    aliases: tuple[tuple[str, str], ...] = ()
    types: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form for the manifest."""
        return {"path": self.path, "sha256": self.sha256, "size": self.size, "rows": self.rows}


def list_source_files(loaded: LoadedSpec, partition: Partition) -> list[str]:
    """The files of one partition, sorted, from the spec's path template.

    The template was parsed when the spec was loaded (:class:`sluice.config.PathTemplate`);
    filling it never runs ``str.format`` on the spec's text.
    """
    spec = loaded.spec
    pattern = loaded.source_pattern(partition)
    wanted = loaded.source_glob(partition)
    if wanted is None:
        fs, path = fsspec.core.url_to_fs(pattern)
        paths = [path]
    else:
        fs, _, paths = fsspec.get_fs_token_paths(wanted)
    files = sorted(p for p in paths if fs.isfile(p))
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol in ("file", "local"):
        _refuse_special(sorted(set(paths) - set(files)))
    if not files:
        raise InputError(
            f"no source files for {spec.name} {partition.dirname}: nothing matches {pattern}"
        )
    if len(files) > spec.source.max_files:
        smaller = {"month": "day or hour", "day": "hour"}.get(partition.kind)
        split = f"smaller partitions (partition.kind: {smaller}) or " if smaller else ""
        raise InputError(
            f"{spec.name} {partition.dirname}: {len(files)} source files match {pattern}; "
            f"source.max_files allows {spec.source.max_files}; use {split}a larger "
            "source.max_files"
        )
    return [p if protocol in ("file", "local") else f"{protocol}://{p}" for p in files]


def _refuse_special(paths: list[str]) -> None:
    """Stop on a FIFO, device or socket among the paths a source pattern matched (folders are
    passed over): reading one would block or never end, and skipping it would lose its rows."""
    for path in paths:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue
        if not stat.S_ISDIR(mode):
            raise InputError(
                f"{path}: matches the source pattern but is not a regular file; found "
                f"{kind(mode)} (allowed: regular files)"
            )


def _read_bytes(path: str) -> bytes:
    """A source file's bytes: a local path must be a regular file (of any size)."""
    if "://" not in path:
        return read_regular(path, input_error(path))
    try:
        with fsspec.open(path, "rb") as fh:
            data: bytes = fh.read()
            return data
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None


def refuse_shared_ids(files: Sequence[tuple[str, str, int]], where: str) -> None:
    """An :class:`InputError` naming ``where`` when two of ``files`` (each ``(path, sha256,
    rows)``) would give a row the same id (:func:`sluice.core.frame.ids_meet`): two files with
    identical bytes."""
    if ids_meet([(sha, rows) for _, sha, rows in files]):
        raise InputError(
            f"{where}: two source files have identical bytes "
            f"({', '.join(path for path, _, _ in files)}); a row would be counted twice"
        )
