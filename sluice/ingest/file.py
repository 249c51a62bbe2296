"""One source file into typed rows, raw text and failures."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import polars as pl

from sluice.config import ColumnSpec, CsvOptions, LoadedSpec, name_problem
from sluice.core.errors import InputError
from sluice.core.failures import concat_failures, empty_failures, make_failures
from sluice.core.files import sha256_hex
from sluice.core.frame import (
    MALFORMED,
    RESERVED_COLUMNS,
    ROW_ID,
    SOURCE_FILE,
    SOURCE_ROW,
    row_ids,
)
from sluice.core.text import column_text
from sluice.ingest.parse import YEARS, _parse
from sluice.ingest.sources import SourceFile, _read_bytes
from sluice.ingest.text import BadRecord, _read_csv, _read_ndjson, _read_parquet

_HASH_CHUNK = 1 << 20


def ingest_file(
    path: str, loaded: LoadedSpec, *, data: bytes | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, SourceFile]:
    """Read one source file: (frame, raw, failures, source file), as on :class:`Ingested`."""
    spec = loaded.spec
    data = _read_bytes(path) if data is None else data
    sha = sha256_hex(data)
    fmt = spec.source.format
    bad: list[BadRecord] = []
    if fmt == "csv":
        read, bad = _read_csv(data, spec.source.csv, path)
    elif fmt == "ndjson":
        read, bad = _read_ndjson(data, path)
    else:
        read = _read_parquet(data, path)
    got = typed_records(read, bad, sha, path, loaded)
    source = SourceFile(path, sha, len(data), read.height, got.aliases, got.types)
    return got.frame, got.raw, got.failures, source


def typed_records(
    read: pl.DataFrame,
    bad: Sequence[BadRecord],
    sha: str,
    path: str,
    loaded: LoadedSpec,
    *,
    start: int = 0,
) -> Records:
    """Records read from ``path`` (its records from ``start`` on, a whole file when 0) typed as
    declared.

    Row ids and ``_source_row`` count from ``start``, so a piece of a file gets what the whole
    file's reading gives its rows.
    """
    spec = loaded.spec
    fmt = spec.source.format
    clash = [c for c in read.columns if c in RESERVED_COLUMNS]
    if clash:
        where = f"{path}:1" if fmt == "csv" else path
        raise InputError(
            f"{where}: the source has a column named {clash[0]!r}, a name sluice reserves for "
            f"its own columns ({', '.join(RESERVED_COLUMNS)}); rename it in the source"
        )
    n = read.height
    ids = pl.Series(ROW_ID, row_ids(sha, n, start), dtype=pl.UInt64)
    typed = type_frame(read, spec.columns, ids, path, first_row=start)
    frame, raw, parts = typed.frame, typed.raw, [typed.failures]
    for rule in ("malformed", "encoding"):
        records = [b for b in bad if b.rule == rule]
        if records:
            parts.append(
                make_failures(
                    ids.gather([b.row for b in records]),
                    column=MALFORMED,
                    rule=rule,
                    severity="error",
                    values=[b.text for b in records],
                    details=json.dumps(_bad_details(rule, fmt, read.width, spec.source.csv)),
                )
            )
    read = typed.read
    types = tuple((c, str(read[c].dtype)) for c in read.columns if read[c].dtype != pl.Null)
    return Records(frame, raw, concat_failures(parts), types, typed.aliases)


class Records(NamedTuple):
    """What :func:`typed_records` gives: frame, raw and failures as on :class:`Ingested`; the
    types of the columns as read (null-typed ones aside) and the ``(column, alias)`` pairs."""

    frame: pl.DataFrame
    raw: pl.DataFrame
    failures: pl.DataFrame
    types: tuple[tuple[str, str], ...]
    aliases: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Typed:
    """A frame as read, typed as declared: what :func:`type_frame` gives.

    ``frame`` holds the provenance columns then every column (declared ones typed), ``raw``
    ``_row_id`` and every column as read (:func:`sluice.core.text.as_text` gives its text, made
    only for the rows that need it), ``failures`` one ``column|type`` failure per declared
    cell that is not null but did not parse; ``read`` is the frame as read with aliases renamed,
    ``aliases`` the ``(column, alias)`` pairs that were.
    """

    frame: pl.DataFrame
    raw: pl.DataFrame
    failures: pl.DataFrame
    read: pl.DataFrame
    aliases: tuple[tuple[str, str], ...]


def type_frame(
    read: pl.DataFrame,
    declared: Mapping[str, ColumnSpec],
    ids: pl.Series,
    path: str,
    first_row: int = 0,
) -> Typed:
    """Type the columns of a frame as read from ``path`` (one row per record) as declared.

    Aliases are renamed, each declared column's ``null_values`` made null, and every cell parsed
    as its declared type (text by the column's parser, other types converted when they can be);
    a cell that does not parse is null in ``frame`` and a ``column|type`` failure carrying its
    text. ``ids`` are the rows' ``_row_id``; ``_source_file`` is ``path`` and ``_source_row``
    the position (from ``first_row``). This is ingest's reading of every file, and
    :func:`sluice.screening.screen`'s of a frame.
    """
    columns = dict(declared)
    read, aliases = _rename(read, columns, path)
    for c in read.columns:
        problem = name_problem(c)
        if problem is not None:
            raise InputError(
                f"{path}: the source has a column named {c!r}: {problem}; declare it in the "
                f"schema under another name with aliases: [{c!r}]"
            )
    n = read.height
    prov = pl.DataFrame(
        {
            ROW_ID: ids,
            SOURCE_FILE: pl.repeat(path, n, dtype=pl.String, eager=True).alias(SOURCE_FILE),
            SOURCE_ROW: pl.Series(SOURCE_ROW, np.arange(first_row, first_row + n, dtype=np.int64)),
        }
    )
    raw = pl.concat([ids.to_frame(), read], how="horizontal")
    parsed, masks = _parse(_null_tokens(read, columns), columns, path)
    frame = pl.concat([prov, parsed], how="horizontal")
    parts: list[pl.DataFrame] = []
    for name in masks.columns:
        hit = masks[name]
        if hit.any():
            parts.append(
                make_failures(
                    ids.filter(hit),
                    column=name,
                    rule="type",
                    severity="error",
                    values=column_text(read[name].filter(hit)),
                    details=json.dumps(
                        {"expected": _expected(columns[name])}, separators=(",", ":")
                    ),
                )
            )
    failures = concat_failures(parts) if parts else empty_failures()
    return Typed(frame, raw, failures, read, aliases)


def _rename(
    read: pl.DataFrame, declared: Mapping[str, ColumnSpec], path: str
) -> tuple[pl.DataFrame, tuple[tuple[str, str], ...]]:
    """Source columns named by an alias, renamed to their declared name; and which were."""
    names: dict[str, str] = {}
    have = set(read.columns)
    for column, spec in declared.items():
        present = [n for n in (column, *spec.aliases) if n in have]
        if len(present) > 1:
            raise InputError(
                f"{path}: columns {present[0]!r} and {present[1]!r} are both present and both "
                f"name the declared column {column!r} (its name and schema.{column}.aliases); "
                "keep one of them in the file or change the aliases"
            )
        if present and present[0] != column:
            names[present[0]] = column
    if not names:
        return read, ()
    return read.rename(names), tuple((c, a) for a, c in names.items())


def _null_tokens(read: pl.DataFrame, declared: Mapping[str, ColumnSpec]) -> pl.DataFrame:
    """The frame as read with the cells of text columns (CSV fields, NDJSON values, Parquet
    string and dictionary-encoded string columns) that equal one of their declared column's
    own null tokens made null."""
    cols = [
        c
        for c in read.columns
        if c in declared
        and declared[c].null_values
        and isinstance(read[c].dtype, pl.String | pl.Categorical | pl.Enum)
    ]
    if not cols:
        return read
    return read.with_columns(
        pl.when(pl.col(c).cast(pl.String).is_in(declared[c].null_values))
        .then(None)
        .otherwise(pl.col(c))
        .alias(c)
        for c in cols
    )


def _expected(spec: ColumnSpec) -> str:
    within = f", {YEARS}" if spec.type in ("date", "datetime") else ""
    comma = ", decimal comma" if spec.decimal == "," else ""
    groups = f", digits grouped by {spec.thousands!r}" if spec.thousands else ""
    symbol = f", currency {spec.currency!r}" if spec.currency else ""
    return (
        spec.type + (f" ({spec.format})" if spec.format else "") + within + comma + groups + symbol
    )


def _bad_details(rule: str, fmt: str, width: int, opts: CsvOptions) -> dict[str, str]:
    if rule == "encoding":
        encoding = opts.encoding if fmt == "csv" else "utf8"
        return {"expected": f"{encoding} text", "value": "the record's bytes read as latin1"}
    return {"expected": f"{width} fields" if fmt == "csv" else "one JSON object on the line"}
