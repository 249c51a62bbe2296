"""Reading records: CSV (a fast path through Arrow, an exact path record by record), NDJSON and
Parquet, keeping every record, also the ones that cannot be split or decoded."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sluice.config import CsvOptions
from sluice.core.errors import InputError
from sluice.core.text import json_text
from sluice.ingest.arrow import arrow_to_polars, reading_memory, reading_pool

_HEAD_BYTES = 1 << 16
# the slice of a file whose encoding is checked at a time
_CHECK_BYTES = 1 << 24


_BAD_BYTE = re.compile("[\udc80-\udcff]")


_EOF = "\ue000sluice-end-of-file\ue001"


_FIELD_LIMIT = 2**31 - 1


# byte-order marks of the encodings a text source may not be in: UTF-32's first (its little-endian
# mark starts as UTF-16's does)
_WIDE_MARKS = (
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\xfe\xff", "UTF-16"),
    (b"\xff\xfe", "UTF-16"),
)


def wide_encoding(head: bytes) -> str | None:
    """``"UTF-16"`` or ``"UTF-32"`` when the first bytes of a file are those of text in it: its
    byte-order mark, or (UTF-16 without one) a NUL in nine in ten of every other byte of the
    first 4 KiB and few in the rest, as text in a Latin script is; else ``None``."""
    for mark, name in _WIDE_MARKS:
        if head.startswith(mark):
            return name
    sample = head[:4096]
    if len(sample) < 16:
        return None
    halves = (sample[0::2], sample[1::2])
    nuls = [h.count(0) / len(h) for h in halves]
    if max(nuls) >= 0.9 and min(nuls) < 0.1:
        return "UTF-16"
    return None


_NOT_TEXT: tuple[tuple[bytes, str, str], ...] = (
    (b"\x1f\x8b", "gzip-compressed", "decompress it first (gunzip)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "decompress it first (zstd -d)"),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it first (xz -d)"),
    (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook is one)", "extract or export the CSV"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel .xls workbook", "export it as CSV"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image", "point source.path at the data files"),
    (b"%PDF-", "a PDF document", "point source.path at the data files"),
)
"""Signatures of files that are not text, and what to do: a compressed feed is common, and read
as CSV its bytes would become a header of garbage and rows of encoding failures."""


def not_text(head: bytes) -> tuple[str, str] | None:
    """What a file starting with ``head`` is, and the advice, when it is a compressed file, an
    archive, a workbook, a Parquet file or an image rather than text; else ``None``. (bzip2's
    ``BZh`` and Parquet's ``PAR1`` could start a header: each is named only with the binary
    bytes that follow it.)"""
    for magic, what, advice in _NOT_TEXT:
        if head.startswith(magic):
            return what, advice
    if re.match(rb"BZh[1-9]\x31\x41\x59\x26\x53\x59", head):
        return "bzip2-compressed", "decompress it first (bunzip2)"
    # Parquet's magic, then the first page header's binary bytes (a header "PAR1,PAR2" is text)
    if re.match(rb"PAR1[\x00-\x08\x0b\x0c\x0e-\x1f]", head):
        return "a Parquet file", "declare source.format: parquet"
    return None


def refuse_wide_encoding(head: bytes, path: str, fmt: str) -> None:
    """An ``InputError`` naming ``path`` when its first bytes are not text (:func:`not_text`:
    a gzip file, a workbook, ...) or are UTF-16 or UTF-32 text (:func:`wide_encoding`), which
    the CSV and NDJSON readers would take byte by byte."""
    binary = not_text(head)
    if binary is not None:
        what, advice = binary
        raise InputError(
            f"{path}: the file is {what}, not {fmt.upper()} text (sluice reads CSV and NDJSON "
            f"uncompressed); {advice}"
        )
    name = wide_encoding(head)
    if name is None:
        return
    allowed = "UTF-8" if fmt == "ndjson" else "utf8, latin1 or cp1252 (source.csv.encoding)"
    raise InputError(
        f"{path}: the file is {name} text; sluice reads {fmt.upper()} as {allowed}: convert it "
        f"to UTF-8 first (for example `iconv -f {name} -t UTF-8`)"
    )


class BadRecord(NamedTuple):
    """A record kept as a row of nulls: its row number, raw text and rule (malformed, encoding)."""

    row: int
    text: str
    rule: str


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
            memory_pool=reading_pool(),
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
    buffer = pa.allocate_buffer(sum(len(p) for p in parts), memory_pool=reading_pool())
    with memoryview(buffer) as whole, whole.cast("B") as view:
        at = 0
        for part in parts:
            view[at : at + len(part)] = part
            at += len(part)
    return pa.BufferReader(buffer)


def _from_arrow(table: pa.Table) -> pl.DataFrame:
    """A polars frame of an Arrow table, keeping column names polars would replace (``""``)."""
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    if frame.columns != table.column_names:
        frame.columns = table.column_names
    return frame


def _valid(data: bytes, opts: CsvOptions) -> bool:
    """Whether every byte is valid in the encoding (pyarrow's handler of ragged rows would fail
    decoding one that is not, and print the error).

    ASCII is valid in every encoding sluice reads, and any byte in latin-1; other bytes are
    decoded a slice at a time, so that the check never holds the file's text (up to four times
    the file's size)."""
    codec = _codec(opts)
    if codec == "latin1" or data.isascii():
        return True
    decoder = codecs.getincrementaldecoder(codec)()
    view = memoryview(data)
    try:
        for start in range(0, len(view), _CHECK_BYTES):
            decoder.decode(view[start : start + _CHECK_BYTES])
        decoder.decode(b"", final=True)
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
    dupes = duplicate_names(header)
    if dupes:
        raise InputError(f"{path}:{line}: duplicate column names in the header: {dupes}")
    return header


def duplicate_names(names: Sequence[str]) -> str | None:
    """The names that occur more than once, each with its 1-based column positions (None when
    every name is distinct). A name that is empty or blank-edged is quoted, so that the columns
    without a header (a spreadsheet's trailing empty columns) read as such."""
    where: dict[str, list[int]] = {}
    for i, name in enumerate(names, start=1):
        where.setdefault(name, []).append(i)
    parts = []
    for name, at in sorted(where.items()):
        if len(at) < 2:
            continue
        shown = repr(name) if name != name.strip() or not name else name
        unnamed = ", no name: remove the empty columns or name them" if not name.strip() else ""
        parts.append(f"{shown} (columns {', '.join(map(str, at))}{unnamed})")
    return "; ".join(parts) or None


def _first_record(reader: Any) -> tuple[list[str], int]:
    for record in reader:
        if record:
            return record, reader.line_num
    return [], reader.line_num


def _csv_header(data: bytes, opts: CsvOptions, path: str) -> list[str]:
    """The header record, read from the file's head: 64 KiB, doubled until the record ends
    before the head does (a file of many thousand columns has a longer header)."""
    size = _HEAD_BYTES
    while True:
        text, _ = _decode(data[:size], _codec(opts))
        stream = io.StringIO(text, newline="")
        reader = csv.reader(stream, delimiter=opts.delimiter, quotechar=opts.quote_char)
        try:
            header, line = _first_record(reader)
        except csv.Error as exc:
            if size < len(data):  # a quoted field the head cuts off
                size *= 2
                continue
            raise InputError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None
        if size >= len(data) or stream.tell() < len(text):
            break
        size *= 2
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
    refuse_wide_encoding(data, path, "csv")
    fast = _csv_fast(data, opts, path)
    if fast is not None:
        return fast, []
    return _csv_exact(data, opts, path)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("a key appears twice in one object")
    return out


# one decoder for every line (json.loads with a hook builds a decoder per call)
_JSON = json.JSONDecoder(object_pairs_hook=_unique_keys)


def _json_line(line: str) -> Any:
    """``json.loads(line, object_pairs_hook=_unique_keys)``, the same answers and errors."""
    if line.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", line, 0)
    return _JSON.decode(line)


def _read_ndjson(
    data: bytes,
    path: str,
    *,
    keys: Sequence[str] | None = None,
    at_start: bool = True,
    first_line: int = 1,
) -> tuple[pl.DataFrame, list[BadRecord]]:
    """One JSON object a line; values become text (objects and arrays as compact JSON).

    Lines end at ``\\n`` only (JSON strings may hold U+2028 and other separators). A line that is
    not one JSON object with distinct keys is malformed; a line with bytes that are not UTF-8 is
    an encoding failure. ``keys`` (a piece of a file, :mod:`sluice.ingest.pieces`) are the
    frame's columns, those of the whole file; ``at_start`` whether ``data`` starts the file (a
    byte order mark is dropped only there) and ``first_line`` the line it starts on.

    The lines are decoded a slice of the text at a time (:data:`NDJSON_SLICE` characters), each
    slice's objects made into text columns before the next is decoded: a Python object per value
    costs several times the value's text.
    """
    if at_start:
        refuse_wide_encoding(data, path, "ndjson")
    found = NdjsonKeys()
    parts: list[tuple[int, dict[str, pl.Series]]] = []
    bad: list[BadRecord] = []
    nothing: dict[str, Any] = {}
    for records, slice_bad in ndjson_batches(
        data, path, found, at_start=at_start, first_line=first_line
    ):
        objects = [nothing if rec is None else rec for rec in records]
        wanted = found.keys if keys is None else keys
        parts.append((len(objects), {k: _json_column(k, objects) for k in wanted}))
        bad.extend(slice_bad)
    if keys is None:
        if not found.keys:
            raise no_json_objects(path, found.first_bad)
        keys = list(found.keys)

    def column(key: str) -> pl.Series:
        pieces = [
            got[key] if key in got else pl.repeat(None, n, dtype=pl.String, eager=True).alias(key)
            for n, got in parts
        ]
        return pieces[0] if len(pieces) == 1 else pl.concat(pieces)

    return pl.DataFrame({k: column(k) for k in keys}), bad


# JSON's names for the floats Python writes as nan, inf and -inf
_NOT_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _json_column(key: str, objects: list[dict[str, Any]]) -> pl.Series:
    """The text of ``key`` in every object: a string as it is, null when absent or null, any
    other value as compact JSON (:func:`sluice.core.text.json_text`).

    A column of one type is written without a call per value: strings as they are, integers
    that fit 64 bits by polars (the same decimal digits), floats by their ``repr`` (what JSON
    writes; polars writes some otherwise, ``1e-05`` as ``0.00001``)."""
    values = [obj.get(key) for obj in objects]
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if kinds <= {str}:
        return pl.Series(key, values, dtype=pl.String)
    if kinds == {int}:
        try:
            return pl.Series(key, values, dtype=pl.Int64).cast(pl.String)
        except TypeError:  # beyond 64 bits
            pass
    if kinds == {float}:
        text = pl.Series(
            key, [v if v is None else float.__repr__(v) for v in values], dtype=pl.String
        )
        return text.replace(_NOT_FINITE)
    return pl.Series(
        key,
        [v if v is None or type(v) is str else json_text(v) for v in values],
        dtype=pl.String,
    )


NDJSON_SLICE = 1 << 22
"""Characters of NDJSON text decoded into Python objects at a time (:func:`ndjson_batches`)."""


@dataclass
class NdjsonKeys:
    """What the lines of an NDJSON file read so far give: their keys in the order they first
    appear, and the first bad line's number and why."""

    keys: dict[str, None] = field(default_factory=dict)
    first_bad: tuple[int, str] | None = None


def ndjson_batches(
    data: bytes, path: str, found: NdjsonKeys, *, at_start: bool = True, first_line: int = 1
) -> Iterator[tuple[list[dict[str, Any] | None], list[BadRecord]]]:
    """NDJSON lines as objects (None for a bad line) and the bad ones (numbered from the first
    line of ``data``), a slice of :data:`NDJSON_SLICE` characters at a time; ``found`` gathers
    the keys and the first bad line (see :func:`_read_ndjson`)."""
    text, lossy = _decode(data, "utf8" if at_start else "utf-8")
    row = 0
    for first, lines in _line_slices(text, first_line):
        records: list[dict[str, Any] | None] = []
        bad: list[BadRecord] = []
        keys = found.keys
        for lineno, ended in enumerate(lines, start=first):
            line = ended.removesuffix("\r")
            if not line.strip():
                continue
            if lossy and _BAD_BYTE.search(line):
                bad.append(BadRecord(row + len(records), _as_latin1(line, "utf8"), "encoding"))
                records.append(None)
                found.first_bad = found.first_bad or (
                    lineno,
                    "holds bytes that are not valid UTF-8",
                )
                continue
            obj: Any = None
            why = "is not a JSON object"
            try:
                obj = _json_line(line)
            except (ValueError, RecursionError) as exc:
                why = str(exc).split("\n", 1)[0]
            if not isinstance(obj, dict):
                bad.append(BadRecord(row + len(records), line, "malformed"))
                records.append(None)
                found.first_bad = found.first_bad or (lineno, why)
                continue
            if not keys.keys() >= obj.keys():
                keys.update(dict.fromkeys(obj))
            records.append(obj)
        row += len(records)
        yield records, bad


def _line_slices(text: str, first_line: int) -> Iterator[tuple[int, list[str]]]:
    """``text.split("\\n")`` a slice of about :data:`NDJSON_SLICE` characters at a time (cut
    after a newline), each with the number of its first line."""
    at, line = 0, first_line
    while True:
        cut = text.find("\n", at + NDJSON_SLICE)
        if cut < 0:
            yield line, text[at:].split("\n")
            return
        lines = text[at:cut].split("\n")
        yield line, lines
        at, line = cut + 1, line + len(lines)


def no_json_objects(path: str, first_bad: tuple[int, str] | None) -> InputError:
    """The error for an NDJSON file without a single JSON object line."""
    if first_bad is not None:
        return InputError(
            f"{path}:{first_bad[0]}: no line holds a JSON object (line {first_bad[0]}: "
            f"{first_bad[1][:200]})"
        )
    return InputError(f"{path}: no JSON object lines (the file is empty or holds no records)")


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
        dupes = duplicate_names(names)
        if dupes:
            raise InputError(f"{path}: duplicate column names: {dupes}")
        with reading_memory():
            table = source.read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        first = str(exc).strip().split("\n", 1)[0] or type(exc).__name__
        raise InputError(f"{path}: not a readable Parquet file: {first}") from None
    return arrow_to_polars(table, path)[0]
