"""Ingest: one partition of a dataset into polars, in the declared schema.

Every record of every source file becomes exactly one row. A cell that does not parse as its
declared type becomes null in the typed frame and a failure ``column|type`` carrying its raw text;
a record that cannot be split into the header's columns (a ragged CSV row, a broken NDJSON line)
becomes a row of nulls with a failure ``_row|malformed`` carrying the raw record; a record holding
bytes that are not valid in the declared encoding becomes a row of nulls with a failure
``_row|encoding`` whose value is the record's bytes decoded as latin-1 (so
``value.encode("latin-1")`` gives the bytes back). Before parsing, a column found under one of
its declared ``aliases`` takes its declared name, and text equal to one of the column's own
``null_values`` is null (kept as read in the raw text). Nothing here judges quality beyond "did
it parse".

By job: :mod:`~sluice.ingest.sources` lists and reads a partition's files;
:mod:`~sluice.ingest.text` splits CSV, NDJSON and Parquet into records;
:mod:`~sluice.ingest.arrow` brings Arrow types into polars; :mod:`~sluice.ingest.parse` types text
as declared; :mod:`~sluice.ingest.file` does one file and :func:`ingest` a partition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from sluice.config import LoadedSpec, Partition
from sluice.core.errors import InputError
from sluice.core.failures import concat_failures
from sluice.core.frame import PROVENANCE, ROW_ID
from sluice.core.text import column_text
from sluice.ingest.arrow import arrow_to_polars, release_reading_memory
from sluice.ingest.file import Typed, ingest_file, type_frame
from sluice.ingest.parse import (
    column_parser,
    currency_patterns,
    grouped_number,
    outside_years,
    polars_dtype,
    typed_natively,
)
from sluice.ingest.sources import SourceFile, list_source_files, refuse_shared_ids
from sluice.ingest.text import BadRecord, arrow_reader, read_text_records


@dataclass(frozen=True)
class Ingested:
    """What ingest gives: typed rows, their raw values, parse failures and the files read.

    ``frame`` holds the provenance columns then every column of the files: declared ones in their
    declared type, undeclared ones as text. ``raw`` holds ``_row_id`` and every column as read:
    text for CSV and NDJSON, a Parquet column in its own type when every file holds it in one
    (else as text); :func:`sluice.core.text.as_text` gives the text of its rows.
    ``missing_columns`` are declared columns no file had; ``extra_columns`` are columns of the
    files the spec does not declare; ``retyped_columns`` are columns the files of the partition
    hold in different types (column -> file -> type as read): an undeclared one is kept as text.
    """

    frame: pl.DataFrame
    raw: pl.DataFrame
    failures: pl.DataFrame
    files: tuple[SourceFile, ...]
    missing_columns: tuple[str, ...]
    extra_columns: tuple[str, ...]
    retyped_columns: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def aliases_used(self) -> list[dict[str, str]]:
        """For the manifest's schema drift: each file that named a column by an alias."""
        return [
            {"file": f.path, "column": column, "alias": alias}
            for f in self.files
            for column, alias in f.aliases
        ]


def ingest(
    loaded: LoadedSpec,
    partition: Partition,
    files: Sequence[str] | None = None,
    data: Mapping[str, bytes] | None = None,
) -> Ingested:
    """Read every file of one partition into one frame in the declared schema.

    ``data`` gives the bytes of some of ``files`` (a replay's verified inputs): they are read
    from there, and recorded under the path given.
    """
    paths = list(files) if files is not None else list_source_files(loaded, partition)
    frames, raws, fails, sources = [], [], [], []
    for p in paths:
        f, r, x, s = ingest_file(p, loaded, data=(data or {}).get(p))
        frames.append(f)
        raws.append(r)
        fails.append(x)
        sources.append(s)
    # pyarrow's pools keep the memory the reads freed; polars allocates elsewhere
    release_reading_memory()
    retyped = _retyped(sources)
    frames = [_undeclared_as_text(f, r, retyped, loaded) for f, r in zip(frames, raws, strict=True)]
    frame, raw = combine(frames, raws, f"{loaded.name} {partition.dirname}", paths)
    refuse_shared_ids(
        [(s.path, s.sha256, s.rows) for s in sources], f"{loaded.name} {partition.dirname}"
    )
    missing, extra, order = _layout(frame.columns, list(loaded.spec.columns))
    texts = set(raw.columns) - {ROW_ID}
    return Ingested(
        frame=frame.select(order),
        raw=raw.select([ROW_ID, *[c for c in order if c in texts]]),
        failures=concat_failures(fails),
        files=tuple(sources),
        missing_columns=missing,
        extra_columns=extra,
        retyped_columns=retyped,
    )


def _layout(
    columns: Sequence[str], declared: Sequence[str]
) -> tuple[tuple[str, ...], tuple[str, ...], list[str]]:
    """The missing and extra columns of a partition whose frame has ``columns``, and the
    frame's column order: provenance, declared columns, then extra ones as first seen."""
    seen = [c for c in columns if c not in PROVENANCE]
    missing = tuple(c for c in declared if c not in seen)
    extra = tuple(c for c in seen if c not in declared)
    return missing, extra, [*PROVENANCE, *[c for c in declared if c in seen], *extra]


def combine(
    frames: Sequence[pl.DataFrame], raws: Sequence[pl.DataFrame], what: str, paths: Sequence[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The files' typed rows and raw values, each put together (columns by name); an
    :class:`InputError` naming ``what`` and the files when their columns cannot be.

    A raw column the files hold in different types (or as categories, whose dictionaries
    differ) is put together as text, so that no value is converted on the way."""
    kinds: dict[str, set[pl.DataType]] = {}
    for r in raws:
        for c, t in r.schema.items():
            if t != pl.Null:
                kinds.setdefault(c, set()).add(t)
    mixed = {
        c
        for c, ts in kinds.items()
        if len(ts) > 1 or any(t in (pl.Categorical, pl.Enum) for t in ts)
    }
    if len(raws) > 1 and mixed:
        raws = [r.with_columns(column_text(r[c]) for c in r.columns if c in mixed) for r in raws]
    try:
        return pl.concat(frames, how="diagonal_relaxed"), pl.concat(raws, how="diagonal_relaxed")
    except pl.exceptions.PolarsError as exc:
        first = str(exc).strip().split("\n", 1)[0]
        raise InputError(
            f"{what}: the files' columns cannot be put together ({', '.join(paths)}): {first}"
        ) from None


def _retyped(sources: Sequence[SourceFile]) -> dict[str, dict[str, str]]:
    """Columns the files hold in more than one type (all-null columns aside): file -> type."""
    seen: dict[str, dict[str, str]] = {}
    for source in sources:
        for column, dtype in source.types:
            seen.setdefault(column, {})[source.path] = dtype
    return {c: by_file for c, by_file in seen.items() if len(set(by_file.values())) > 1}


def _undeclared_as_text(
    frame: pl.DataFrame, raw: pl.DataFrame, retyped: dict[str, Any], loaded: LoadedSpec
) -> pl.DataFrame:
    """``frame`` with its undeclared columns of ``retyped`` replaced by their text."""
    text = [c for c in frame.columns if c in retyped and c not in loaded.spec.columns]
    return frame.with_columns(column_text(raw[c]) for c in text) if text else frame


__all__ = [
    "BadRecord",
    "Ingested",
    "SourceFile",
    "Typed",
    "arrow_reader",
    "arrow_to_polars",
    "column_parser",
    "currency_patterns",
    "grouped_number",
    "ingest",
    "ingest_file",
    "list_source_files",
    "outside_years",
    "polars_dtype",
    "read_text_records",
    "type_frame",
    "typed_natively",
]
