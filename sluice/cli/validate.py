"""``sluice validate DATA --suite SUITE.json``: validate one file, so engines can be compared.

DATA is Parquet, CSV or NDJSON, read with polars' own type inference once sluice's own reader
found every CSV or NDJSON record well formed (a broken file is an input error naming the file
and the line or record: nothing is padded, renamed, dropped or decoded lossily). The result JSON
lists, in suite order, each expectation's type, kwargs, success, unexpected count, failing row
positions (0-based; null for batch-level checks), observed value and engine. The failures Parquet
has one row per failing (row, rule): ``_row`` (position), ``rule``, ``column``, ``value``.

Exit codes: 0 every expectation passed, 1 one failed (or could not run), 2 usage or
configuration error.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from expectations.engine import validate
from expectations.failures import failures_from_outcomes, verdict_state
from expectations.results import ExpectationOutcome
from expectations.suite import check_columns, load_suite
from sluice.core.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, InputError, SluiceError
from sluice.core.files import input_error, read_regular
from sluice.core.frame import ENGINE_CHOICES, ROW_ID, EngineChoice
from sluice.core.text import column_text
from sluice.core.values import json_safe
from sluice.ingest import (
    BadRecord,
    arrow_reader,
    arrow_to_polars,
    outside_years,
    read_text_records,
)

MAX_NESTING = 60  # pyarrow, which GX goes through, stops at 64 levels
INFER_ROWS = 10_000
FORMATS: dict[str, str] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``validate`` command's arguments on ``parser``."""
    parser.add_argument("data", type=Path, help="data file: .parquet, .csv, .ndjson or .jsonl")
    parser.add_argument("--suite", type=Path, required=True, help="GX suite JSON file")
    parser.add_argument(
        "--engine",
        choices=ENGINE_CHOICES,
        default="auto",
        help="auto: polars where it compiles, GX for the rest (default); polars; gx",
    )
    parser.add_argument("--result", type=Path, help="write the result JSON here")
    parser.add_argument("--failures", type=Path, help="write failing rows here (Parquet)")


def main(args: argparse.Namespace) -> int:
    """Run the ``validate`` command from parsed arguments; return the exit code."""
    try:
        return validate_file(
            args.data,
            args.suite,
            engine=cast(EngineChoice, args.engine),
            result=args.result,
            failures=args.failures,
            on_result=_keep(args) if getattr(args, "json", False) else None,
        )
    except SluiceError as exc:
        print(f"sluice validate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"sluice validate: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE


def _keep(args: argparse.Namespace) -> Callable[[dict[str, Any]], None]:
    """Keep the result document on ``args.document``, for ``sluice validate --json``."""

    def keep(document: dict[str, Any]) -> None:
        args.document = document

    return keep


def read_data(path: Path) -> pl.DataFrame:
    """Read a data file with its own types; ``InputError`` if it cannot be read.

    CSV and NDJSON go through ``sluice.ingest``'s reader first: a malformed record, bytes that
    are not UTF-8, a duplicate header or JSON key or an unclosed quote stop here, naming the file
    and the line or record. A well-formed file is then read with polars' type inference; a CSV
    file polars reads otherwise (other records or columns, or not at all) has its types inferred
    by polars from the records sluice read.
    """
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{path}: unknown data format {path.suffix!r}; allowed: " + ", ".join(sorted(FORMATS))
        )
    data = read_regular(path, input_error(path))
    if fmt == "parquet":
        return _polars_read(io.BytesIO(data), fmt, path)
    text, bad = read_text_records(data, fmt, str(path))
    if bad:
        raise InputError(bad_records_message(path, fmt, text.width, bad))
    if fmt == "ndjson":
        try:
            frame = _polars_read(io.BytesIO(data), fmt, path)
            if frame.height != text.height or set(frame.columns) != set(text.columns):
                frame = _polars_read(io.BytesIO(data), fmt, path, infer=None)
        except InputError:
            # NaN or Infinity (JSON has neither; Python's json and the pipeline read them), or a
            # key whose values change JSON type between records: polars refuses both
            frame = _ndjson_by_python(data, path)
        if frame.height != text.height or set(frame.columns) != set(text.columns):
            raise InputError(
                f"{path}: polars reads {frame.height} records with keys {sorted(frame.columns)}, "
                f"sluice {text.height} with keys {sorted(text.columns)}"
            )
    else:
        frame = _csv_frame(data, text, path)
    _check_nesting(frame, path)
    return frame


def _csv_frame(data: bytes, text: pl.DataFrame, path: Path) -> pl.DataFrame:
    """polars' reading of the bytes when it has sluice's records and columns; else polars' types
    inferred from sluice's text (lines ending in a lone CR, a quote inside an unquoted field)."""
    try:
        frame = _polars_read(io.BytesIO(data), "csv", path)
    except InputError:
        pass
    else:
        if frame.shape == text.shape and frame.columns == text.columns:
            return frame
    return _polars_read(io.BytesIO(text.write_csv().encode()), "csv", path, infer=None)


def _ndjson_by_python(data: bytes, path: Path) -> pl.DataFrame:
    """NDJSON records parsed by Python's json (already checked: one object a line, UTF-8).

    A key whose non-null values are all of one JSON type gets that type (integers and numbers
    together are floats); a key whose values mix types is read as text (strings as they are,
    other values as their JSON), said on stderr.
    """
    lines = data.decode("utf-8").split("\n")
    records: list[dict[str, Any]] = [json.loads(line) for line in lines if line.strip()]
    keys = list(dict.fromkeys(k for r in records for k in r))
    columns: list[pl.Series] = []
    mixed: list[str] = []
    for key in keys:
        values = [r.get(key) for r in records]
        series = _one_json_type(key, values)
        if series is None:
            mixed.append(key)
            texts = [v if v is None or isinstance(v, str) else json.dumps(v) for v in values]
            series = pl.Series(key, texts, dtype=pl.String)
        columns.append(series)
    if mixed:
        print(
            f"sluice validate: {path}: values of {', '.join(map(repr, mixed))} change JSON type "
            "between records; read as text",
            file=sys.stderr,
        )
    return pl.DataFrame(columns)


_SCALARS: dict[frozenset[type], pl.DataType] = {
    frozenset({bool}): pl.Boolean(),
    frozenset({int}): pl.Int64(),
    frozenset({float}): pl.Float64(),
    frozenset({int, float}): pl.Float64(),
    frozenset({str}): pl.String(),
}


def _one_json_type(key: str, values: list[Any]) -> pl.Series | None:
    """``values`` as one typed column, or None when they do not share a JSON type."""
    kinds = frozenset(type(v) for v in values if v is not None)
    if not kinds:
        return pl.Series(key, values, dtype=pl.Null)
    dtype = _SCALARS.get(kinds)
    try:
        if dtype is not None:
            if dtype == pl.Float64:
                values = [None if v is None else float(v) for v in values]
            return pl.Series(key, values, dtype=dtype)
        if kinds in (frozenset({dict}), frozenset({list})):
            series = pl.Series(key, values, strict=False)
            # polars fills a field some objects lack with null and casts mixed inner types:
            # keep the column only if every value comes back as it was
            return series if series.to_list() == values else None
    except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
        return None  # an integer beyond 64 bits, an unbuildable nesting
    return None


def _polars_read(
    source: Path | io.BytesIO, fmt: str, path: Path, infer: int | None = INFER_ROWS
) -> pl.DataFrame:
    try:
        if fmt == "parquet":
            # pyarrow fails cleanly on corrupt files where polars' reader panics; it reads from
            # Arrow's memory (a Python file object aborts the process at exit, see arrow_reader)
            data = source.getvalue() if isinstance(source, io.BytesIO) else source.read_bytes()
            table = pq.read_table(arrow_reader(data))
            frame, converted = arrow_to_polars(table, str(path))
            for c in converted:
                print(
                    f"sluice validate: {path}: column {c.column!r} of Arrow type {c.arrow_type} "
                    f"read as {c.became}",
                    file=sys.stderr,
                )
            return _beyond_years_as_text(frame, path)
        if fmt == "csv":
            return pl.read_csv(source, infer_schema_length=infer)
        return pl.read_ndjson(source, infer_schema_length=infer)
    except (pl.exceptions.PolarsError, pa.ArrowException, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: cannot read it as {fmt}: {first}") from None


def _beyond_years_as_text(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    """``frame`` with each date or datetime column that holds a value beyond years 1 to 9999
    (which neither GX nor Python can hold, nor polars write out past its own calendar) as its
    text (:func:`sluice.core.text.column_text`), and said."""
    for name in frame.columns:
        n = outside_years(frame[name])
        if n:
            frame = frame.with_columns(column_text(frame[name]))
            print(
                f"sluice validate: {path}: column {name!r} holds {n} value(s) beyond years 1 to "
                "9999; read as text",
                file=sys.stderr,
            )
    return frame


def bad_records_message(path: Path, fmt: str, width: int, bad: Sequence[BadRecord]) -> str:
    """What is wrong with the first bad record of a file, for a person (records count from 1)."""
    first = bad[0]
    where = f"{path}: record {first.row + 1}"
    if fmt == "csv":
        where += " after the header"
    snippet = first.text if len(first.text) <= 120 else first.text[:120] + "..."
    if first.rule == "encoding":
        what = f"holds bytes that are not valid UTF-8 (read as latin-1: {snippet!r})"
    elif fmt == "csv":
        what = f"does not have the header's {width} fields: {snippet!r}"
    else:
        what = f"is not one JSON object with distinct keys ({_json_problem(first.text)}): "
        what += repr(snippet)
    more = f"; {len(bad)} bad records in all" if len(bad) > 1 else ""
    return f"{where} {what}{more} (records count from 1, blank lines not counted)"


def _json_problem(text: str) -> str:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"duplicate key {twice[0]!r}")
        return dict(pairs)

    try:
        value = json.loads(text, object_pairs_hook=unique)
    except (ValueError, RecursionError) as exc:
        return str(exc).split("\n", 1)[0] or type(exc).__name__
    return f"a JSON {type(value).__name__}, not an object"


def _nesting(dtype: pl.DataType) -> int:
    depth = 0
    todo: list[tuple[object, int]] = [(dtype, 0)]
    while todo:
        current, level = todo.pop()
        depth = max(depth, level)
        if isinstance(current, (pl.List, pl.Array)):
            todo.append((current.inner, level + 1))
        elif isinstance(current, pl.Struct):
            todo.extend((f.dtype, level + 1) for f in current.fields)
    return depth


def _check_nesting(frame: pl.DataFrame, path: Path) -> None:
    for name, dtype in frame.schema.items():
        depth = _nesting(dtype)
        if depth > MAX_NESTING:
            raise InputError(
                f"{path}: column {name!r} holds values nested {depth} levels deep; "
                f"sluice validate checks values nested at most {MAX_NESTING} levels"
            )


def validate_file(
    data: Path,
    suite: Path,
    engine: EngineChoice = "auto",
    result: Path | None = None,
    failures: Path | None = None,
    *,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> int:
    """Validate ``data`` against ``suite``; write the result and failures; return the exit code.

    ``on_result`` is handed the result document (what ``result`` is written with). Raises
    ``ConfigError`` for a bad suite or engine and ``InputError`` for unreadable data.
    """
    loaded = load_suite(suite)
    frame = read_data(Path(data))
    check_columns(loaded, frame.columns, f"the data file {data}")
    started = time.perf_counter()
    try:
        outcomes = validate(frame, loaded, engine)
    except RecursionError:
        raise InputError(f"{data}: a value is nested too deeply to be checked") from None
    seconds = time.perf_counter() - started
    passed = all(o.success and o.exception is None for o in outcomes)
    if result is not None or on_result is not None:
        doc = {
            "data": str(data),
            "suite": str(suite),
            "engine": engine,
            "rows": frame.height,
            "success": passed,
            "seconds": round(seconds, 6),
            "results": [result_record(o) for o in outcomes],
        }
        if result is not None:
            text = json.dumps(doc, indent=2, allow_nan=False)
            _write_atomic(Path(result), text.encode() + b"\n")
        if on_result is not None:
            on_result(doc)
    if failures is not None:
        table = failures_table(frame, outcomes)
        tmp = Path(failures).with_name(Path(failures).name + ".tmp")
        table.write_parquet(tmp)
        tmp.replace(failures)
    _print_summary(outcomes, frame.height, seconds)
    return EXIT_OK if passed else EXIT_FAILED


def result_record(outcome: ExpectationOutcome) -> dict[str, Any]:
    """One expectation's entry in the result JSON."""
    entry = outcome.entry
    rows = outcome.unexpected_rows
    return {
        "type": entry.type,
        "kwargs": json_safe(entry.kwargs),
        "success": bool(outcome.success and outcome.exception is None),
        "unexpected_count": outcome.unexpected_count,
        "unexpected_rows": None if rows is None else [int(r) for r in rows],
        "observed_value": json_safe(outcome.observed_value),
        "engine": outcome.engine,
        "exception": outcome.exception,
        **verdict_state(outcome),
    }


def failures_table(frame: pl.DataFrame, outcomes: Sequence[ExpectationOutcome]) -> pl.DataFrame:
    """The failures table of the pipeline (``sluice.core.failures.FAILURE_SCHEMA``), one row per
    failing (row, rule); ``_row_id`` is the row's 0-based position in the file."""
    if ROW_ID in frame.columns:
        raise InputError(
            f"the data has a column {ROW_ID!r}, the name the failures table uses for row ids; "
            "rename it to write --failures"
        )
    ids = pl.Series(ROW_ID, range(frame.height), dtype=pl.UInt64)
    return failures_from_outcomes(frame.with_columns(ids), outcomes).failures


def _write_atomic(path: Path, payload: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(payload)
    tmp.replace(path)


def _print_summary(outcomes: Sequence[ExpectationOutcome], rows: int, seconds: float) -> None:
    failed = [o for o in outcomes if not o.success or o.exception is not None]
    engines = sorted({o.engine for o in outcomes})
    print(
        f"{len(outcomes) - len(failed)}/{len(outcomes)} expectations passed on {rows} rows "
        f"in {seconds:.2f}s (engine: {', '.join(engines) or 'none'})"
    )
    for o in failed:
        entry = o.entry
        what = o.exception or (
            f"{o.unexpected_count} unexpected rows"
            if o.unexpected_count is not None
            else f"observed {json.dumps(json_safe(o.observed_value))}"
        )
        label = "COULD NOT RUN" if o.exception is not None else "FAIL"
        print(f"  {label} [{o.engine}] {entry.index}: {entry.type} {entry.failure_column}: {what}")
