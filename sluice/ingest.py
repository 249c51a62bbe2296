"""Ingest: one partition of a dataset into polars, in the declared schema.

Every record of every source file becomes exactly one row. A cell that does not parse as its
declared type becomes null in the typed frame and a failure ``column|type`` carrying its raw text;
a record that cannot be split into the header's columns (a ragged CSV row, a broken NDJSON line)
becomes a row of nulls with a failure ``_row|malformed`` carrying the raw record. Nothing here
judges quality beyond "did it parse".
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from sluice.config import ColumnSpec, CsvOptions, LoadedSpec, Partition
from sluice.errors import ConfigError, InputError
from sluice.failures import concat_failures, empty_failures, make_failures

ROW_ID = "_row_id"
SOURCE_FILE = "_source_file"
SOURCE_ROW = "_source_row"
PROVENANCE = (ROW_ID, SOURCE_FILE, SOURCE_ROW)
MALFORMED = "_row"
TRUE_TEXT = ("true", "t", "yes", "y", "1")
FALSE_TEXT = ("false", "f", "no", "n", "0")
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class SourceFile:
    """One file read for a partition."""

    path: str
    sha256: str
    size: int
    rows: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe form for the manifest."""
        return {"path": self.path, "sha256": self.sha256, "size": self.size, "rows": self.rows}


@dataclass(frozen=True)
class Ingested:
    """What ingest gives: typed rows, their raw text, parse failures and the files read.

    ``frame`` holds the provenance columns then every column of the files: declared ones in their
    declared type, undeclared ones as text. ``raw`` holds ``_row_id`` and every column as text, as
    read. ``missing_columns`` are declared columns no file had; ``extra_columns`` are columns of the
    files the spec does not declare.
    """

    frame: pl.DataFrame
    raw: pl.DataFrame
    failures: pl.DataFrame
    files: tuple[SourceFile, ...]
    missing_columns: tuple[str, ...]
    extra_columns: tuple[str, ...]


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
    """The files of one partition, sorted, from the spec's path template."""
    spec = loaded.spec
    template = loaded.resolve(spec.source.path, key="source.path")
    key = spec.partition.key
    try:
        pattern = template.format_map({key: partition})
    except (KeyError, ValueError, IndexError) as exc:
        raise ConfigError(
            f"cannot fill the path template: {exc}",
            file=loaded.path,
            key="source.path",
            found=spec.source.path,
            allowed=f"placeholders {{{key}}} or {{{key}:<strftime format>}}",
        ) from None
    fs, _, paths = fsspec.get_fs_token_paths(pattern)
    files = sorted(p for p in paths if fs.isfile(p))
    if not files:
        raise InputError(
            f"no source files for {spec.name} {partition.dirname}: nothing matches {pattern}"
        )
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return [p if protocol in ("file", "local") else f"{protocol}://{p}" for p in files]


def _read_bytes(path: str) -> bytes:
    try:
        with fsspec.open(path, "rb") as fh:
            data: bytes = fh.read()
            return data
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None


def _csv_fast(data: bytes, opts: CsvOptions, path: str) -> pl.DataFrame | None:
    """pyarrow's multi-threaded reader, all columns as text; None when any record is malformed."""
    header = _csv_header(data, opts, path)
    malformed: list[int] = []

    def on_invalid(_row: Any) -> str:
        malformed.append(1)
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(encoding=_codec(opts), block_size=1 << 24),
            parse_options=pacsv.ParseOptions(
                delimiter=opts.delimiter,
                quote_char=opts.quote_char,
                newlines_in_values=True,
                invalid_row_handler=on_invalid,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(header, pa.string()),
                null_values=opts.null_values,
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowKeyError, UnicodeDecodeError):
        return None
    if malformed or table.column_names != header:
        return None
    return pl.from_arrow(table)  # type: ignore[return-value]


def _codec(opts: CsvOptions) -> str:
    return {"utf8": "utf8", "utf-8": "utf8", "latin1": "latin1", "cp1252": "cp1252"}[opts.encoding]


def _decode(data: bytes, opts: CsvOptions, path: str) -> str:
    codec = "utf-8-sig" if _codec(opts) == "utf8" else _codec(opts)
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{path}:{line}: byte {exc.start} is not valid {opts.encoding} "
            f"(found {data[exc.start : exc.start + 1]!r}); set source.csv.encoding "
            "to the file's encoding (utf8, latin1, cp1252)"
        ) from None


def _csv_header(data: bytes, opts: CsvOptions, path: str) -> list[str]:
    text = (
        _decode(data[: 1 << 16], opts, path) if len(data) > 1 << 16 else _decode(data, opts, path)
    )
    reader = csv.reader(io.StringIO(text), delimiter=opts.delimiter, quotechar=opts.quote_char)
    header = next(reader, None)
    if not header or all(not h.strip() for h in header):
        raise InputError(f"{path}:1: no header row (the file is empty)")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise InputError(f"{path}:1: duplicate column names in the header: {', '.join(dupes)}")
    return header


def _csv_exact(
    data: bytes, opts: CsvOptions, path: str
) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
    """The standard library's reader: exact record numbers, malformed records kept as text."""
    text = _decode(data, opts, path).replace("\x00", "\ufffd")
    reader = csv.reader(io.StringIO(text), delimiter=opts.delimiter, quotechar=opts.quote_char)
    header = next(reader, None)
    if not header:
        raise InputError(f"{path}:1: no header row (the file is empty)")
    width = len(header)
    nulls = set(opts.null_values)
    columns: list[list[str | None]] = [[] for _ in header]
    malformed: list[tuple[int, str]] = []
    try:
        for i, record in enumerate(reader):
            if len(record) != width:
                malformed.append((i, opts.delimiter.join(record)))
                for col in columns:
                    col.append(None)
                continue
            for col, value in zip(columns, record, strict=True):
                col.append(None if value in nulls else value)
    except csv.Error as exc:
        raise InputError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None
    frame = pl.DataFrame(
        {h: pl.Series(h, c, dtype=pl.String) for h, c in zip(header, columns, strict=True)}
    )
    return frame, malformed


def _read_csv(
    data: bytes, opts: CsvOptions, path: str
) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
    fast = _csv_fast(data, opts, path)
    if fast is not None:
        return fast, []
    return _csv_exact(data, opts, path)


def _read_ndjson(data: bytes, path: str) -> tuple[pl.DataFrame, list[tuple[int, str]]]:
    """One JSON object a line; values become text (objects and arrays as compact JSON)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        lineno = data[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}:{lineno}: byte {exc.start} is not valid UTF-8") from None
    records: list[dict[str, Any] | None] = []
    malformed: list[tuple[int, str]] = []
    keys: dict[str, None] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            obj = None
        if not isinstance(obj, dict):
            malformed.append((len(records), line))
            records.append(None)
            continue
        keys.update(dict.fromkeys(obj))
        records.append(obj)
    if not keys:
        raise InputError(f"{path}: no JSON object lines (the file is empty or holds no records)")
    cols: dict[str, list[str | None]] = {k: [] for k in keys}
    for rec in records:
        for k, out in cols.items():
            v = None if rec is None else rec.get(k)
            out.append(
                None
                if v is None
                else v
                if isinstance(v, str)
                else json.dumps(v, separators=(",", ":"))
            )
    return pl.DataFrame({k: pl.Series(k, v, dtype=pl.String) for k, v in cols.items()}), malformed


def _read_parquet(data: bytes, path: str) -> pl.DataFrame:
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file: {exc}") from None
    names = table.column_names
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"{path}: duplicate column names: {', '.join(dupes)}")
    return pl.from_arrow(table)  # type: ignore[return-value]


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
    return lambda e: e.str.to_datetime(fmt_dt, time_unit="us", strict=False)


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


def _typed(name: str, dtype: pl.DataType, spec: ColumnSpec) -> tuple[pl.Expr, pl.Expr]:
    """The typed value of a column and whether its cell failed to parse."""
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
        if spec.type == "int" and dtype.is_float():
            value = pl.when(col == col.round(0)).then(value).otherwise(None)
    elif spec.type == "datetime" and dtype in (pl.Date, pl.Datetime):
        value = col.cast(target)
    else:
        value = _parser(spec)(col.cast(pl.String, strict=False))
    if spec.type == "float":
        value = pl.when(value.is_finite()).then(value).otherwise(None)
    failed = col.is_not_null() & value.is_null()
    return value.alias(name), failed.alias(name)


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.col(c).cast(pl.String)
        if not frame[c].dtype.is_nested()
        else pl.col(c).map_elements(_json_text, return_dtype=pl.String)
        for c in frame.columns
        if frame[c].dtype != pl.String
    )


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def ingest_file(
    path: str, loaded: LoadedSpec, *, data: bytes | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, SourceFile]:
    """Read one source file: (frame, raw, failures, source file), as on :class:`Ingested`."""
    spec = loaded.spec
    data = _read_bytes(path) if data is None else data
    sha = hashlib.sha256(data).hexdigest()
    fmt = spec.source.format
    malformed: list[tuple[int, str]] = []
    if fmt == "csv":
        read, malformed = _read_csv(data, spec.source.csv, path)
    elif fmt == "ndjson":
        read, malformed = _read_ndjson(data, path)
    else:
        read = _read_parquet(data, path)
    n = read.height
    ids = pl.Series(ROW_ID, row_ids(sha, n), dtype=pl.UInt64)
    prov = pl.DataFrame(
        {
            ROW_ID: ids,
            SOURCE_FILE: pl.Series(SOURCE_FILE, [path] * n, dtype=pl.String),
            SOURCE_ROW: pl.Series(SOURCE_ROW, np.arange(n, dtype=np.int64)),
        }
    )
    declared = spec.columns
    values: list[pl.Expr] = []
    failed: list[pl.Expr] = []
    for name in read.columns:
        if name in declared:
            v, f = _typed(name, read[name].dtype, declared[name])
            values.append(v)
            failed.append(f)
        else:
            values.append(
                pl.col(name).cast(pl.String)
                if read[name].dtype.is_nested() is False
                else pl.col(name)
            )
    raw = pl.concat([ids.to_frame(), _as_text(read)], how="horizontal")
    parsed = read.select(values)
    frame = pl.concat([prov, parsed], how="horizontal")
    parts: list[pl.DataFrame] = []
    if failed:
        masks = read.select(failed)
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
                            {"expected": _expected(declared[name])}, separators=(",", ":")
                        ),
                    )
                )
    if malformed:
        rows = [r for r, _ in malformed]
        parts.append(
            make_failures(
                ids.gather(rows),
                column=MALFORMED,
                rule="malformed",
                severity="error",
                values=[t for _, t in malformed],
                details=json.dumps({"expected": _shape(fmt, read.width)}, separators=(",", ":")),
            )
        )
    failures = concat_failures(parts) if parts else empty_failures()
    return frame, raw, failures, SourceFile(path, sha, len(data), n)


def _expected(spec: ColumnSpec) -> str:
    return spec.type + (f" ({spec.format})" if spec.format else "")


def _shape(fmt: str, width: int) -> str:
    return f"{width} fields" if fmt == "csv" else "one JSON object on the line"


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
    frame = pl.concat(frames, how="diagonal_relaxed")
    raw = pl.concat(raws, how="diagonal_relaxed")
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
    )
