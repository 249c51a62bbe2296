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
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import fsspec
import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sluice.config import ColumnSpec, CsvOptions, LoadedSpec, Partition, is_pattern_name
from sluice.core.errors import InputError
from sluice.core.failures import concat_failures, empty_failures, make_failures
from sluice.core.files import input_error, kind, read_regular
from sluice.core.frame import (
    MALFORMED,
    PROVENANCE,
    RESERVED_COLUMNS,
    ROW_ID,
    SOURCE_FILE,
    SOURCE_ROW,
)

TRUE_TEXT = ("true", "t", "yes", "y", "1")
FALSE_TEXT = ("false", "f", "no", "n", "0")
_HASH_CHUNK = 1 << 20
_HEAD_BYTES = 1 << 16
_BAD_BYTE = re.compile("[\udc80-\udcff]")
_EOF = "\ue000sluice-end-of-file\ue001"
_FIELD_LIMIT = 2**31 - 1


class BadRecord(NamedTuple):
    """A record kept as a row of nulls: its row number, raw text and rule (malformed, encoding)."""

    row: int
    text: str
    rule: str


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


@dataclass(frozen=True)
class Ingested:
    """What ingest gives: typed rows, their raw text, parse failures and the files read.

    ``frame`` holds the provenance columns then every column of the files: declared ones in their
    declared type, undeclared ones as text. ``raw`` holds ``_row_id`` and every column as text, as
    read. ``missing_columns`` are declared columns no file had; ``extra_columns`` are columns of the
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


def row_ids(file_sha256: str, n: int) -> npt.NDArray[np.uint64]:
    """Stable row ids: splitmix64 of (first 8 bytes of the file's sha256 + row number).

    splitmix64 is a bijection on 64-bit integers, so the ids of one file never collide; the same
    bytes always give the same ids, wherever the file lives.
    """
    base = np.uint64(int(file_sha256[:16], 16))
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) + base
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def list_source_files(loaded: LoadedSpec, partition: Partition) -> list[str]:
    """The files of one partition, sorted, from the spec's path template.

    The template was parsed when the spec was loaded (:class:`sluice.config.PathTemplate`);
    filling it never runs ``str.format`` on the spec's text.
    """
    spec = loaded.spec
    pattern = loaded.source_pattern(partition)
    fs, _, paths = fsspec.get_fs_token_paths(pattern)
    files = sorted(p for p in paths if fs.isfile(p))
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol in ("file", "local"):
        _refuse_special(sorted(set(paths) - set(files)))
    if not files:
        raise InputError(
            f"no source files for {spec.name} {partition.dirname}: nothing matches {pattern}"
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


def _csv_fast(data: bytes, opts: CsvOptions, path: str) -> pl.DataFrame | None:
    """pyarrow's multi-threaded reader, all columns as text; None when any record is malformed
    (pyarrow then raises: no Python ``invalid_row_handler``, see :func:`arrow_reader`).

    A sentinel record appended after the last line must come back as the last row: pyarrow
    silently lets a quoted field opened on the last record run to the end of the file, and that
    field would swallow the sentinel. Also None for bytes invalid in the file's encoding. In
    every such case the exact reader decides.
    """
    header = _csv_header(data, opts, path)
    if not _valid(data, opts):
        return None
    codec = _codec(opts)
    mark = "".join(c for c in "sluiceEndOfFile7319" if c not in (opts.delimiter, opts.quote_char))
    sentinel = [mark] * len(header)
    tail = opts.delimiter.join(sentinel).encode(codec)
    end = b"" if not data or data.endswith((b"\n", b"\r")) else b"\n"
    try:
        table = pacsv.read_csv(
            arrow_reader(data, end + tail + b"\n"),
            read_options=pacsv.ReadOptions(encoding=codec, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(
                delimiter=opts.delimiter, quote_char=opts.quote_char, newlines_in_values=True
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                null_values=opts.null_values,
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowKeyError, UnicodeDecodeError):
        return None
    if table.column_names != header or table.num_rows == 0:
        return None
    if list(table.slice(table.num_rows - 1).to_pylist()[0].values()) != sentinel:
        return None
    return _from_arrow(table.slice(0, table.num_rows - 1))


def arrow_reader(*parts: bytes) -> pa.BufferReader:
    """A reader of the ``parts`` one after the other, for pyarrow, that holds no Python object.

    pyarrow's threaded readers may drop their last reference to the input (and to any Python
    callback) on one of Arrow's worker threads after the read returned. When that object is
    Python's (``io.BytesIO``, a buffer over ``bytes``, an ``invalid_row_handler``), the worker
    must take the GIL; if the interpreter is exiting by then, Python ends the thread with
    ``pthread_exit``, which unwinds through C++ ``noexcept`` frames and aborts the process
    ("terminate called without an active exception", SIGABRT). A copy into Arrow's own memory
    needs no GIL to release.
    """
    sink = pa.BufferOutputStream()
    for part in parts:
        sink.write(part)
    return pa.BufferReader(sink.getvalue())


def _from_arrow(table: pa.Table) -> pl.DataFrame:
    """A polars frame of an Arrow table, keeping column names polars would replace (``""``)."""
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    if frame.columns != table.column_names:
        frame.columns = table.column_names
    return frame


def _valid(data: bytes, opts: CsvOptions) -> bool:
    """Whether every byte is valid in the encoding (pyarrow's handler of ragged rows would fail
    decoding one that is not, and print the error)."""
    try:
        data.decode(_codec(opts))
    except UnicodeDecodeError:
        return False
    return True


def _codec(opts: CsvOptions) -> str:
    return {"utf8": "utf8", "utf-8": "utf8", "latin1": "latin1", "cp1252": "cp1252"}[opts.encoding]


def _decode(data: bytes, codec: str) -> tuple[str, bool]:
    """Text and whether some bytes were not valid; those are kept as lone surrogates."""
    codec = "utf-8-sig" if codec == "utf8" else codec
    try:
        return data.decode(codec), False
    except UnicodeDecodeError:
        return data.decode(codec, "surrogateescape"), True


def _as_latin1(text: str, codec: str) -> str:
    """Text holding undecodable bytes (as surrogates) as the latin-1 reading of its bytes."""
    return text.encode(codec, "surrogateescape").decode("latin-1")


def _check_header(header: list[str], opts: CsvOptions, path: str, line: int) -> list[str]:
    for name in header:
        hit = _BAD_BYTE.search(name)
        if hit is not None:
            byte = hit.group().encode(_codec(opts), "surrogateescape")
            raise InputError(
                f"{path}:{line}: the header holds bytes that are not valid {opts.encoding} "
                f"(found {byte!r} in {_as_latin1(name, _codec(opts))!r}); set "
                "source.csv.encoding to the file's encoding (utf8, latin1, cp1252)"
            )
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise InputError(f"{path}:{line}: duplicate column names in the header: {', '.join(dupes)}")
    return header


def _first_record(reader: Any) -> tuple[list[str], int]:
    for record in reader:
        if record:
            return record, reader.line_num
    return [], reader.line_num


def _csv_header(data: bytes, opts: CsvOptions, path: str) -> list[str]:
    text, _ = _decode(data[:_HEAD_BYTES], _codec(opts))
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=opts.delimiter, quotechar=opts.quote_char
    )
    try:
        header, line = _first_record(reader)
    except csv.Error as exc:
        raise InputError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None
    if not header or all(not h.strip() for h in header):
        raise InputError(f"{path}:1: no header row (the file is empty)")
    return _check_header(header, opts, path, line)


def _csv_exact(data: bytes, opts: CsvOptions, path: str) -> tuple[pl.DataFrame, list[BadRecord]]:
    """The standard library's reader: exact record numbers, bad records kept with their raw text.

    A marker appended after the last line tells whether the file ends inside a quoted field: the
    standard library then silently returns the rest of the file as one field.
    """
    codec = _codec(opts)
    text, lossy = _decode(data, codec)
    end = "" if not text or text.endswith(("\n", "\r")) else "\n"
    lines = io.StringIO(text + end + _EOF, newline="").readlines()
    csv.field_size_limit(_FIELD_LIMIT)
    reader = csv.reader(iter(lines), delimiter=opts.delimiter, quotechar=opts.quote_char)
    try:
        header, start = _first_record(reader)
        if header == [_EOF] or not header or all(not h.strip() for h in header):
            raise InputError(f"{path}:1: no header row (the file is empty)")
        if header[-1].endswith(_EOF):
            raise InputError(f"{path}:1: the header opens a quoted field that is never closed")
        _check_header(header, opts, path, start)
        width = len(header)
        nulls = set(opts.null_values)
        columns: list[list[str | None]] = [[] for _ in header]
        bad: list[BadRecord] = []
        for record in reader:
            first, start = start + 1, reader.line_num
            if record == [_EOF]:
                break
            if not record:
                continue
            if record[-1].endswith(_EOF):
                raise InputError(
                    f"{path}:{first}: a quoted field opened on this record is never closed "
                    "(it would swallow every line after it)"
                )
            raw = "".join(lines[first - 1 : start]).rstrip("\r\n")
            if lossy and _BAD_BYTE.search(raw):
                bad.append(BadRecord(len(columns[0]), _as_latin1(raw, codec), "encoding"))
            elif len(record) != width:
                bad.append(BadRecord(len(columns[0]), raw, "malformed"))
            else:
                for col, value in zip(columns, record, strict=True):
                    col.append(None if value in nulls else value)
                continue
            for col in columns:
                col.append(None)
    except csv.Error as exc:
        raise InputError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None
    frame = pl.DataFrame(
        {h: pl.Series(h, c, dtype=pl.String) for h, c in zip(header, columns, strict=True)}
    )
    return frame, bad


def _read_csv(data: bytes, opts: CsvOptions, path: str) -> tuple[pl.DataFrame, list[BadRecord]]:
    fast = _csv_fast(data, opts, path)
    if fast is not None:
        return fast, []
    return _csv_exact(data, opts, path)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("a key appears twice in one object")
    return out


def _read_ndjson(data: bytes, path: str) -> tuple[pl.DataFrame, list[BadRecord]]:
    """One JSON object a line; values become text (objects and arrays as compact JSON).

    Lines end at ``\\n`` only (JSON strings may hold U+2028 and other separators). A line that is
    not one JSON object with distinct keys is malformed; a line with bytes that are not UTF-8 is
    an encoding failure.
    """
    text, lossy = _decode(data, "utf8")
    records: list[dict[str, Any] | None] = []
    bad: list[BadRecord] = []
    first_bad: tuple[int, str] | None = None
    keys: dict[str, None] = {}
    for lineno, ended in enumerate(text.split("\n"), start=1):
        line = ended.removesuffix("\r")
        if not line.strip():
            continue
        if lossy and _BAD_BYTE.search(line):
            bad.append(BadRecord(len(records), _as_latin1(line, "utf8"), "encoding"))
            records.append(None)
            first_bad = first_bad or (lineno, "holds bytes that are not valid UTF-8")
            continue
        obj: Any = None
        why = "is not a JSON object"
        try:
            obj = json.loads(line, object_pairs_hook=_unique_keys)
        except (ValueError, RecursionError) as exc:
            why = str(exc).split("\n", 1)[0]
        if not isinstance(obj, dict):
            bad.append(BadRecord(len(records), line, "malformed"))
            records.append(None)
            first_bad = first_bad or (lineno, why)
            continue
        keys.update(dict.fromkeys(obj))
        records.append(obj)
    if not keys:
        if first_bad is not None:
            raise InputError(
                f"{path}:{first_bad[0]}: no line holds a JSON object (line {first_bad[0]}: "
                f"{first_bad[1][:200]})"
            )
        raise InputError(f"{path}: no JSON object lines (the file is empty or holds no records)")
    cols: dict[str, list[str | None]] = {k: [] for k in keys}
    for rec in records:
        for k, out in cols.items():
            v = None if rec is None else rec.get(k)
            out.append(None if v is None else v if isinstance(v, str) else _json_text(v))
    return pl.DataFrame({k: pl.Series(k, v, dtype=pl.String) for k, v in cols.items()}), bad


def read_text_records(
    data: bytes, fmt: str, path: str, csv_options: CsvOptions | None = None
) -> tuple[pl.DataFrame, list[BadRecord]]:
    """CSV or NDJSON bytes as ingest reads them: every column as text, and the bad records.

    The frame has one row per record (a bad record is a row of nulls at ``BadRecord.row``, a
    0-based position). Raises ``InputError`` naming ``path`` and the line for what stops a run
    (no header, a duplicate or undecodable header, an unclosed quote, no JSON object at all).
    """
    if fmt == "csv":
        return _read_csv(data, csv_options or CsvOptions(), path)
    if fmt == "ndjson":
        return _read_ndjson(data, path)
    raise ValueError(f"read_text_records reads csv or ndjson, not {fmt!r}")


def _read_parquet(data: bytes, path: str) -> pl.DataFrame:
    try:
        source = pq.ParquetFile(arrow_reader(data))
        names = source.schema_arrow.names
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InputError(f"{path}: duplicate column names: {', '.join(dupes)}")
        table = source.read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        first = str(exc).strip().split("\n", 1)[0] or type(exc).__name__
        raise InputError(f"{path}: not a readable Parquet file: {first}") from None
    return arrow_to_polars(table, path)[0]


class Converted(NamedTuple):
    """A column whose Arrow type polars cannot hold as it is: what it was and what it became."""

    column: str
    arrow_type: str
    became: str


def arrow_to_polars(table: pa.Table, path: str) -> tuple[pl.DataFrame, list[Converted]]:
    """A polars frame of an Arrow table read from ``path``, and the columns that changed type.

    polars panics or refuses on some Arrow types (256-bit decimals, durations it cannot cast,
    maps, unions, intervals, run-end and view layouts, extension types, time zones it does not
    know): those become a type polars holds with the same values (dictionaries decoded,
    extension types as their storage, fixed-size binary as binary, half floats as float32, an
    unknown time zone as the same instant in UTC) or their text (decimals exactly, durations as
    ``<n><unit>``, anything else as its JSON). A column that cannot be converted at all is an
    ``InputError`` naming the file and the column.
    """
    columns: list[pl.Series] = []
    converted: list[Converted] = []
    for index, name in enumerate(table.column_names):
        original = table.column(index)
        safe, became = _polars_safe(original)
        series = _series(name, safe)
        if series is None and pa.types.is_timestamp(safe.type) and safe.type.tz is not None:
            safe, became = safe.cast(pa.timestamp(safe.type.unit, "UTC")), "timestamp (UTC)"
            series = _series(name, safe)
        if series is None:
            try:
                safe, became = _arrow_text(original), "text"
            except (pa.ArrowException, ValueError, TypeError, OverflowError):
                pass
            else:
                series = _series(name, safe)
        if series is None:
            raise InputError(
                f"{path}: column {name!r} holds Arrow type {original.type} that sluice cannot "
                "read, not even as text"
            )
        if became:
            converted.append(Converted(name, str(original.type), became))
        columns.append(series)
    return pl.DataFrame(columns, height=table.num_rows), converted


def _series(name: str, column: pa.ChunkedArray) -> pl.Series | None:
    try:
        series = pl.from_arrow(column.combine_chunks() if column.num_chunks > 1 else column)
    except (pl.exceptions.PanicException, pl.exceptions.PolarsError, pa.ArrowException):
        return None
    except (ValueError, TypeError, OverflowError):
        return None
    assert isinstance(series, pl.Series)
    return series.alias(name)


def _holds(t: pa.DataType) -> bool:
    """Whether polars holds Arrow type ``t`` as it is and can cast it to text."""
    if (
        pa.types.is_null(t)
        or pa.types.is_boolean(t)
        or pa.types.is_integer(t)
        or pa.types.is_float32(t)
        or pa.types.is_float64(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_string_view(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_date(t)
        or pa.types.is_time(t)
        or pa.types.is_timestamp(t)
    ):
        return True
    if pa.types.is_decimal(t):
        return not pa.types.is_decimal256(t) and t.precision <= 38
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _holds(t.value_type)
    if pa.types.is_struct(t):
        names = [t.field(i).name for i in range(t.num_fields)]
        return (
            bool(names)
            and len(set(names)) == len(names)
            and all(_holds(t.field(i).type) for i in range(t.num_fields))
        )
    return False


def _polars_safe(column: pa.ChunkedArray) -> tuple[pa.ChunkedArray, str]:
    """``column`` in a type polars holds, and what it became ("" when unchanged)."""
    t = column.type
    try:
        if isinstance(t, pa.BaseExtensionType):
            storage = pa.chunked_array([c.storage for c in column.chunks], type=t.storage_type)
            safe, became = _polars_safe(storage)
            return safe, became or str(t.storage_type)
        if pa.types.is_dictionary(t):
            safe, became = _polars_safe(column.cast(t.value_type))
            return safe, became or str(t.value_type)
        if _holds(t):
            return column, ""
        if pa.types.is_float16(t):
            return column.cast(pa.float32()), "float"
        if pa.types.is_fixed_size_binary(t):
            return column.cast(pa.binary()), "binary"
        if pa.types.is_decimal(t):
            return column.cast(pa.string()), "text"
        if pa.types.is_duration(t):
            unit = t.unit
            text = pc.binary_join_element_wise(column.cast(pa.int64()).cast(pa.string()), unit, "")
            return text, "text"
        return _arrow_text(column), "text"
    except (pa.ArrowException, ValueError, TypeError, OverflowError):
        return column, ""


def _arrow_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Every value as text: strings as they are, anything else as its JSON (or, when Python
    cannot hold it, Arrow's own rendering of the value)."""
    values: list[str | None]
    try:
        values = [
            None if v is None else v if isinstance(v, str) else _json_text(_plain(v))
            for v in column.to_pylist()
        ]
    except (pa.ArrowException, ValueError, TypeError, KeyError, OverflowError):
        values = [str(v) if v.is_valid else None for v in column]
    return pa.chunked_array([pa.array(values, pa.string())], type=pa.string())


def _plain(value: Any) -> Any:
    """A Python value from Arrow as JSON-able data (bytes as text, maps' pairs as lists)."""
    if isinstance(value, bytes):
        return _bytes_text(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _text(expr: pl.Expr) -> pl.Expr:
    return expr.str.strip_chars()


Parser = Callable[[pl.Expr], pl.Expr]


def _parser(spec: ColumnSpec) -> Parser:
    """How text becomes the declared type; a value that does not parse becomes null."""
    t = spec.type
    if t == "string":
        return lambda e: e
    if t == "int":
        return lambda e: _text(e).cast(pl.Int64, strict=False)
    if t == "float":
        return lambda e: _text(e).cast(pl.Float64, strict=False)
    if t == "bool":
        return lambda e: (
            pl.when(_text(e).str.to_lowercase().is_in(TRUE_TEXT))
            .then(True)
            .when(_text(e).str.to_lowercase().is_in(FALSE_TEXT))
            .then(False)
            .otherwise(None)
        )
    if t == "date":
        fmt = spec.format or "%Y-%m-%d"
        return lambda e: e.str.strptime(pl.Date, fmt, strict=False)
    fmt_dt = spec.format
    if fmt_dt is None:
        return _iso_datetime
    if _OFFSET_DIRECTIVE.search(fmt_dt):
        return lambda e: e.str.to_datetime(
            fmt_dt, time_unit="us", time_zone="UTC", strict=False
        ).dt.replace_time_zone(None)
    return lambda e: e.str.strptime(pl.Datetime("us"), fmt_dt, strict=False)


_OFFSET_DIRECTIVE = re.compile(r"%[-_0^#]?[0-9]*:{0,3}z")
_ISO_OFFSET = r"(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"
_ISO_SPACED_OFFSET = r"^(\S+ \S+) ([Zz]|[+-]\d)"
_ISO_NO_SECONDS = r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2})($|[Zz+-])"


def _iso_datetime(e: pl.Expr) -> pl.Expr:
    """ISO-8601 text, parsed value by value: a date alone (midnight), ``T`` or a space before
    the time, seconds and fractional seconds optional (``.`` or ``,``; kept to the
    microsecond), and an offset (``Z``, ``+01``, ``-0500``, ``-05:00``) converted to UTC. The
    value is naive: UTC when the text gave an offset, else the wall time as written.

    polars' own reading without a format takes its pattern from a column's first value, which
    would make one value's reading depend on another's; here every value is read alone.
    """
    return e.map_batches(_iso_series, return_dtype=pl.Datetime("us"))


def _iso_series(s: pl.Series) -> pl.Series:
    """:func:`_iso_datetime` on a series.

    Values are routed by their shape, so that no parse runs on values it cannot take (polars
    is several times slower on a value it refuses): ``YYYY-MM-DD HH:MM:SS`` and a date alone
    by one fixed format each; every other value, and any those refused, brought to
    ``YYYY-MM-DD HH:MM:SS[.f][offset]`` and parsed with or without an offset.
    """
    text = s.str.strip_chars()
    text = _where(
        text,
        text.str.slice(10, 1).is_in(["T", "t"]),
        lambda t: (
            pl.select(pl.concat_str(t.str.slice(0, 10), pl.lit(" "), t.str.slice(11)))
            .to_series()
            .alias(t.name)
        ),
    )
    size = text.str.len_bytes()
    out = pl.Series(s.name, [None] * len(s), dtype=pl.Datetime("us"))
    out = _where(out, size == 19, lambda _: _strptime(text.filter(size == 19), "%Y-%m-%d %H:%M:%S"))
    out = _where(out, size == 10, lambda _: _strptime(text.filter(size == 10), "%Y-%m-%d"))
    left = out.is_null() & text.is_not_null()
    if not left.any():
        return out
    t = text.filter(left)
    t = _where(t, t.str.contains(",", literal=True), lambda x: x.str.replace_all(",", "."))
    t = _where(
        t,
        t.str.slice(11).str.contains(" ", literal=True),
        lambda x: x.str.replace(_ISO_SPACED_OFFSET, "${1}${2}"),
    )
    t = _where(
        t, t.str.slice(16, 1) != ":", lambda x: x.str.replace(_ISO_NO_SECONDS, "${1}:00${2}")
    )
    aware = t.str.contains(_ISO_OFFSET)
    got = pl.Series(s.name, [None] * len(t), dtype=pl.Datetime("us"))
    got = _where(got, ~aware, lambda _: _strptime(t.filter(~aware), "%Y-%m-%d %H:%M:%S%.f"))
    got = _where(got, aware, lambda _: _strptime(t.filter(aware), "%Y-%m-%d %H:%M:%S%.f%#z"))
    return out.scatter(left.arg_true(), got)


def _where(
    values: pl.Series, mask: pl.Series, change: Callable[[pl.Series], pl.Series]
) -> pl.Series:
    """``values`` with the entries where ``mask`` holds replaced by ``change`` of them."""
    mask = mask.fill_null(False)
    if not mask.any():
        return values
    return values.scatter(mask.arg_true(), change(values.filter(mask)))


def _strptime(text: pl.Series, fmt: str) -> pl.Series:
    """Text in one fixed format as naive datetimes; an offset (``%#z``) converted to UTC."""
    if "%#z" not in fmt:
        return text.str.strptime(pl.Datetime("us"), fmt, strict=False)
    aware = text.str.to_datetime(fmt, time_unit="us", time_zone="UTC", strict=False)
    return aware.dt.replace_time_zone(None)


_TARGET: dict[str, pl.DataType] = {
    "string": pl.String(),
    "int": pl.Int64(),
    "float": pl.Float64(),
    "bool": pl.Boolean(),
    "date": pl.Date(),
    "datetime": pl.Datetime("us"),
}


def polars_dtype(spec: ColumnSpec) -> pl.DataType:
    """The polars type a declared column has in the typed frame."""
    return _TARGET[spec.type]


def _native(dtype: pl.DataType, spec: ColumnSpec | None) -> bool:
    """Whether a column's own type converts to its declared type without going through text."""
    if spec is None or dtype == pl.String:
        return True
    if dtype.is_nested() or dtype in (pl.Binary, pl.Object):
        return False
    target = _TARGET[spec.type]
    return (
        dtype == target
        or spec.type == "string"
        or (spec.type in ("int", "float") and dtype.is_numeric())
        or (spec.type == "datetime" and dtype in (pl.Date, pl.Datetime))
    )


def _typed(name: str, dtype: pl.DataType, spec: ColumnSpec) -> pl.Expr:
    """The typed value of a column; a cell that does not parse becomes null."""
    col = pl.col(name)
    target = _TARGET[spec.type]
    if dtype == pl.String:
        value = _parser(spec)(col)
    elif dtype == target:
        value = col
    elif spec.type == "string":
        value = col.cast(pl.String)
    elif spec.type in ("int", "float") and dtype.is_numeric():
        value = col.cast(target, strict=False)
        if spec.type == "int" and (dtype.is_float() or dtype.is_decimal()):
            value = pl.when(col == col.round(0)).then(value).otherwise(None)
    elif spec.type == "datetime" and isinstance(dtype, pl.Datetime) and dtype.time_zone:
        value = col.dt.convert_time_zone("UTC").dt.replace_time_zone(None).cast(target)
    elif spec.type == "datetime" and dtype in (pl.Date, pl.Datetime):
        value = col.cast(target)
    else:
        value = _parser(spec)(col.cast(pl.String, strict=False))
    if spec.type == "float":
        value = pl.when(value.is_finite()).then(value).otherwise(None)
    return value.alias(name)


def _parse(
    read: pl.DataFrame, text: pl.DataFrame, declared: Mapping[str, ColumnSpec], path: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Typed columns, and masks of the declared cells that are not null but did not parse.

    Columns whose own type does not convert to the declared one go through their text (bytes
    only when they are UTF-8). Should polars still refuse a conversion, every column is parsed
    from its text instead.
    """

    def as_text(c: str) -> pl.Expr | pl.Series:
        if read[c].dtype == pl.Binary:
            return pl.col(c).map_elements(_utf8_or_none, return_dtype=pl.String)
        return text[c]

    native = read.with_columns(
        as_text(c) for c in read.columns if not _native(read[c].dtype, declared.get(c))
    )
    everything = read.with_columns(as_text(c) for c in read.columns if read[c].dtype != pl.String)
    for attempt in (native, everything):
        try:
            parsed = attempt.select(
                _typed(c, attempt[c].dtype, declared[c]) if c in declared else pl.col(c)
                for c in attempt.columns
            )
        except pl.exceptions.PolarsError:
            continue
        masks = pl.DataFrame(
            [
                (read[c].is_not_null() & parsed[c].is_null()).alias(c)
                for c in read.columns
                if c in declared
            ]
        )
        return parsed, masks
    raise InputError(f"{path}: cannot convert the columns to their declared types")


def _text_of(series: pl.Series) -> pl.Expr | pl.Series:
    dtype = series.dtype
    if dtype.is_nested() or dtype == pl.Object:
        # from Python values: map_elements hands a list cell over as a Series
        values = [None if v is None else _json_text(_plain(v)) for v in series.to_list()]
        return pl.Series(series.name, values, dtype=pl.String)
    if dtype == pl.Binary:
        return pl.col(series.name).map_elements(_bytes_text, return_dtype=pl.String)
    return pl.col(series.name).cast(pl.String)


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Every column as text: nested values as compact JSON, bytes as UTF-8 or else latin-1."""
    exprs = [_text_of(frame[c]) for c in frame.columns if frame[c].dtype != pl.String]
    try:
        return frame.with_columns(exprs)
    except pl.exceptions.PolarsError:
        return frame.with_columns(
            pl.col(c).map_elements(str, return_dtype=pl.String)
            for c in frame.columns
            if frame[c].dtype != pl.String
        )


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _utf8_or_none(value: bytes) -> str | None:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _bytes_text(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def ingest_file(
    path: str, loaded: LoadedSpec, *, data: bytes | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, SourceFile]:
    """Read one source file: (frame, raw, failures, source file), as on :class:`Ingested`."""
    spec = loaded.spec
    data = _read_bytes(path) if data is None else data
    sha = hashlib.sha256(data).hexdigest()
    fmt = spec.source.format
    bad: list[BadRecord] = []
    if fmt == "csv":
        read, bad = _read_csv(data, spec.source.csv, path)
    elif fmt == "ndjson":
        read, bad = _read_ndjson(data, path)
    else:
        read = _read_parquet(data, path)
    clash = [c for c in read.columns if c in RESERVED_COLUMNS]
    if clash:
        where = f"{path}:1" if fmt == "csv" else path
        raise InputError(
            f"{where}: the source has a column named {clash[0]!r}, a name sluice reserves for "
            f"its own columns ({', '.join(RESERVED_COLUMNS)}); rename it in the source"
        )
    n = read.height
    ids = pl.Series(ROW_ID, row_ids(sha, n), dtype=pl.UInt64)
    typed = type_frame(read, spec.columns, ids, path)
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
    failures = concat_failures(parts)
    read = typed.read
    types = tuple((c, str(read[c].dtype)) for c in read.columns if read[c].dtype != pl.Null)
    return frame, raw, failures, SourceFile(path, sha, len(data), n, typed.aliases, types)


@dataclass(frozen=True)
class Typed:
    """A frame as read, typed as declared: what :func:`type_frame` gives.

    ``frame`` holds the provenance columns then every column (declared ones typed), ``raw``
    ``_row_id`` and every column as text, ``failures`` one ``column|type`` failure per declared
    cell that is not null but did not parse; ``read`` is the frame as read with aliases renamed,
    ``aliases`` the ``(column, alias)`` pairs that were.
    """

    frame: pl.DataFrame
    raw: pl.DataFrame
    failures: pl.DataFrame
    read: pl.DataFrame
    aliases: tuple[tuple[str, str], ...]


def type_frame(
    read: pl.DataFrame, declared: Mapping[str, ColumnSpec], ids: pl.Series, path: str
) -> Typed:
    """Type the columns of a frame as read from ``path`` (one row per record) as declared.

    Aliases are renamed, each declared column's ``null_values`` made null, and every cell parsed
    as its declared type (text by the column's parser, other types converted when they can be);
    a cell that does not parse is null in ``frame`` and a ``column|type`` failure carrying its
    text. ``ids`` are the rows' ``_row_id``; ``_source_file`` is ``path`` and ``_source_row``
    the position. This is ingest's reading of every file, and :func:`sluice.screening.screen`'s
    of a frame.
    """
    columns = dict(declared)
    read, aliases = _rename(read, columns, path)
    patterned = [c for c in read.columns if is_pattern_name(c)]
    if patterned:
        raise InputError(
            f"{path}: the source has a column named {patterned[0]!r}, which polars reads as a "
            "pattern, not a column name; declare it in the schema under another name with "
            f"aliases: [{patterned[0]!r}]"
        )
    n = read.height
    prov = pl.DataFrame(
        {
            ROW_ID: ids,
            SOURCE_FILE: pl.Series(SOURCE_FILE, [path] * n, dtype=pl.String),
            SOURCE_ROW: pl.Series(SOURCE_ROW, np.arange(n, dtype=np.int64)),
        }
    )
    text = _as_text(read)
    raw = pl.concat([ids.to_frame(), text], how="horizontal")
    parsed, masks = _parse(*_null_tokens((read, text), columns), columns, path)
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
                    values=raw[name].filter(hit),
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
    for column, spec in declared.items():
        present = [n for n in (column, *spec.aliases) if n in read.columns]
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


def _null_tokens(
    frames: tuple[pl.DataFrame, pl.DataFrame], declared: Mapping[str, ColumnSpec]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The frame as read and its text, with the cells of text columns (CSV fields, NDJSON
    values, Parquet string and dictionary-encoded string columns) that equal one of their
    declared column's own null tokens made null."""
    read, text = frames
    cols = [
        c
        for c in read.columns
        if c in declared
        and declared[c].null_values
        and isinstance(read[c].dtype, pl.String | pl.Categorical | pl.Enum)
    ]
    if not cols:
        return read, text
    hit = read.select(pl.col(c).cast(pl.String).is_in(declared[c].null_values) for c in cols)

    def nulled(f: pl.DataFrame) -> pl.DataFrame:
        return f.with_columns(
            pl.when(hit[c]).then(None).otherwise(pl.col(c)).alias(c) for c in cols
        )

    return nulled(read), nulled(text)


def _expected(spec: ColumnSpec) -> str:
    return spec.type + (f" ({spec.format})" if spec.format else "")


def _bad_details(rule: str, fmt: str, width: int, opts: CsvOptions) -> dict[str, str]:
    if rule == "encoding":
        encoding = opts.encoding if fmt == "csv" else "utf8"
        return {"expected": f"{encoding} text", "value": "the record's bytes read as latin1"}
    return {"expected": f"{width} fields" if fmt == "csv" else "one JSON object on the line"}


def ingest(
    loaded: LoadedSpec, partition: Partition, files: Sequence[str] | None = None
) -> Ingested:
    """Read every file of one partition into one frame in the declared schema."""
    paths = list(files) if files is not None else list_source_files(loaded, partition)
    frames, raws, fails, sources = [], [], [], []
    for p in paths:
        f, r, x, s = ingest_file(p, loaded)
        frames.append(f)
        raws.append(r)
        fails.append(x)
        sources.append(s)
    retyped = _retyped(sources)
    frames = [_undeclared_as_text(f, r, retyped, loaded) for f, r in zip(frames, raws, strict=True)]
    try:
        frame = pl.concat(frames, how="diagonal_relaxed")
        raw = pl.concat(raws, how="diagonal_relaxed")
    except pl.exceptions.PolarsError as exc:
        first = str(exc).strip().split("\n", 1)[0]
        raise InputError(
            f"{loaded.name} {partition.dirname}: the files' columns cannot be put together "
            f"({', '.join(paths)}): {first}"
        ) from None
    if frame[ROW_ID].n_unique() != frame.height:
        raise InputError(
            f"{loaded.name} {partition.dirname}: two source files have identical bytes "
            f"({', '.join(paths)}); a row would be counted twice"
        )
    declared = list(loaded.spec.columns)
    seen = [c for c in frame.columns if c not in PROVENANCE]
    missing = tuple(c for c in declared if c not in seen)
    extra = tuple(c for c in seen if c not in declared)
    order = [*PROVENANCE, *[c for c in declared if c in seen], *extra]
    return Ingested(
        frame=frame.select(order),
        raw=raw.select([ROW_ID, *[c for c in order if c in raw.columns and c != ROW_ID]]),
        failures=concat_failures(fails),
        files=tuple(sources),
        missing_columns=missing,
        extra_columns=extra,
        retyped_columns=retyped,
    )


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
    return frame.with_columns(raw[c] for c in text) if text else frame
