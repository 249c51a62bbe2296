"""Conservation as a property: generated CSV and Parquet inputs and generated suites.

For every example: rows in = clean + quarantine (in the manifest and in the files, against the
number of records written here), row ids disjoint, a reason on every quarantined row, and the
manifest's sha256 and checksums matching the files. The default run is short; ``-m slow`` runs
many more examples.
"""

from __future__ import annotations

import csv
import io
import math
import re
import tempfile
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sluice.core.errors import InputError
from sluice.pipeline import run_partition
from tests.robustness.support import check_conserved, manifest_path, write_dataset

DAY = "2024-01-01"
HEADER = ["id", "amount", "count", "when", "kind"]
QUICK = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LONG = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

nasty_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12
) | st.sampled_from(["", " ", '"', '""', ",", "\n", "\r\n", "\x00", "NaN", "inf", "1e309", "é"])
cells = {
    "id": st.sampled_from(["a", "b", "c", "d", ""]) | nasty_text,
    "amount": st.floats(allow_nan=True, allow_infinity=True).map(repr)
    | st.integers(-10, 200).map(str)
    | nasty_text,
    "count": st.integers(-(2**70), 2**70).map(str) | nasty_text,
    "when": st.datetimes().map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S")) | nasty_text,
    "kind": st.sampled_from(["a", "b", "z"]) | nasty_text,
}


@st.composite
def csv_rows(draw: st.DrawFn) -> list[list[str]]:
    """Records of the tiny schema's five columns; some short or long (ragged)."""
    n = draw(st.integers(0, 25))
    rows = []
    for _ in range(n):
        row = [draw(cells[c]) for c in HEADER]
        shape = draw(st.sampled_from(["whole"] * 6 + ["short", "long"]))
        if shape == "short":
            row = row[: draw(st.integers(1, 4))]
        elif shape == "long":
            row = [*row, draw(nasty_text)]
        rows.append(row)
    return rows


EMPTY: dict[str, Any] = {"name": "empty", "expectations": []}
SEVERITY = st.sampled_from(["warn", "error", "error", "critical"])


@st.composite
def suites(draw: st.DrawFn) -> dict[str, Any]:
    """A GX suite over the tiny schema: a random choice of rules, bounds and severities."""
    lo = draw(st.floats(-100, 100, allow_nan=False))
    templates: list[tuple[str, dict[str, Any]]] = [
        ("expect_column_values_to_not_be_null", {"column": draw(st.sampled_from(HEADER))}),
        (
            "expect_column_values_to_be_between",
            {"column": "amount", "min_value": lo, "max_value": lo + draw(st.floats(0, 500))},
        ),
        ("expect_column_values_to_be_in_set", {"column": "kind", "value_set": ["a", "b"]}),
        ("expect_column_values_to_be_unique", {"column": "id"}),
        ("expect_column_values_to_match_regex", {"column": "id", "regex": "^[a-d]$"}),
        ("expect_compound_columns_to_be_unique", {"column_list": ["id", "kind"]}),
        ("expect_table_row_count_to_be_between", {"min_value": 0, "max_value": 20}),
    ]
    chosen = draw(st.lists(st.sampled_from(templates), min_size=0, max_size=5))
    entries = []
    for kind, kwargs in chosen:
        meta: dict[str, Any] = {"severity": draw(SEVERITY)}
        if kind.endswith("_unique"):
            meta["duplicates"] = draw(st.sampled_from(["keep_first", "keep_none"]))
        entries.append({"type": kind, "kwargs": dict(kwargs), "meta": meta})
    return {"name": "fuzz", "expectations": entries}


def _csv_bytes(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(HEADER)
    writer.writerows(rows)
    return buf.getvalue().encode()


def _run(root: Path, spec: Path) -> str:
    """Screen the partition; the input error's message, or "" when the run finished."""
    try:
        run_partition(str(spec), DAY)
    except InputError as exc:
        return str(exc)
    return ""


def _screen(content: bytes, fmt: str, suite: dict[str, Any], rows_in: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        error = _run(root, write_dataset(root, {DAY: content}, fmt=fmt, suite=suite))
        if error:
            assert fmt == "parquet", error
            assert re.search(r"data\.parquet: not a readable Parquet file: \w", error), error
            return
        check_conserved(manifest_path(root, DAY), rows_in=rows_in)


def _check_csv(rows: list[list[str]], suite: dict[str, Any]) -> None:
    data = _csv_bytes(rows)
    records = sum(1 for r in csv.reader(io.StringIO(data.decode(), newline="")) if r) - 1
    assert records == len(rows)
    _screen(data, "csv", suite, len(rows))


@QUICK
@example(rows=[["a", "1", "1", "", "a"], ["a", '"', "\x00", "\r\n", "é"], ["x"]], suite=EMPTY)
@example(rows=[[""], ["", "", "", "", "", ""]], suite=EMPTY)
@given(rows=csv_rows(), suite=suites())
def test_csv_conservation(rows: list[list[str]], suite: dict[str, Any]) -> None:
    _check_csv(rows, suite)


@pytest.mark.slow
@LONG
@given(rows=csv_rows(), suite=suites())
def test_csv_conservation_long(rows: list[list[str]], suite: dict[str, Any]) -> None:
    _check_csv(rows, suite)


column_values: dict[str, st.SearchStrategy[list[Any]]] = {
    "id": st.lists(st.none() | st.text(max_size=5), min_size=0),
    "amount": st.lists(st.none() | st.floats(allow_nan=True, allow_infinity=True)),
    "count": st.lists(st.none() | st.integers(-(2**63), 2**63 - 1)),
    "when": st.lists(st.none() | st.datetimes()),
    "kind": st.lists(st.none() | st.sampled_from(["a", "b", "z"])),
}
WRONG_TYPES: dict[str, st.SearchStrategy[list[Any]]] = {
    "amount": st.lists(st.none() | st.text(max_size=4)),
    "count": st.lists(st.none() | st.floats()),
    "when": st.lists(st.none() | st.integers(0, 10**12)),
    "id": st.lists(st.none() | st.lists(st.integers(), max_size=3)),
}


@st.composite
def parquet_frames(draw: st.DrawFn) -> pl.DataFrame:
    """A frame with the tiny schema's columns, some of the wrong type, missing or extra."""
    n = draw(st.integers(0, 20))
    data: dict[str, pl.Series] = {}
    for name in HEADER:
        choice = draw(st.sampled_from(["right"] * 4 + ["wrong", "missing"]))
        if choice == "missing":
            continue
        wrong = choice == "wrong" and name in WRONG_TYPES
        drawn: list[Any] = draw(WRONG_TYPES[name] if wrong else column_values[name])
        values = (drawn * (n // max(len(drawn), 1) + 1))[:n] if drawn else [None] * n
        data[name] = pl.Series(name, values, strict=False)
    if draw(st.booleans()):
        data["extra"] = pl.Series("extra", [draw(st.text(max_size=3)) for _ in range(n)])
    return pl.DataFrame(data, height=n) if data else pl.DataFrame()


def _check_parquet(frame: pl.DataFrame, suite: dict[str, Any]) -> None:
    buf = io.BytesIO()
    frame.write_parquet(buf)
    _screen(buf.getvalue(), "parquet", suite, frame.height)


@QUICK
@example(
    frame=pl.DataFrame({"amount": [math.nan, math.inf, -math.inf, 1e308, None]}),
    suite=EMPTY,
)
@given(frame=parquet_frames(), suite=suites())
def test_parquet_conservation(frame: pl.DataFrame, suite: dict[str, Any]) -> None:
    _check_parquet(frame, suite)


@pytest.mark.slow
@LONG
@given(frame=parquet_frames(), suite=suites())
def test_parquet_conservation_long(frame: pl.DataFrame, suite: dict[str, Any]) -> None:
    _check_parquet(frame, suite)


@QUICK
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_as_csv_never_crash(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        error = _run(root, write_dataset(root, {DAY: b"id,amount,count,when,kind\n" + data}))
        if error:
            assert re.search(r"data\.csv:\d+: ", error), error
            return
        check_conserved(manifest_path(root, DAY))
