from __future__ import annotations

import datetime as dt
import io
import json
import os
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from sluice.config import Partition, load_spec
from sluice.core.errors import ConfigError, InputError
from sluice.core.failures import concat_failures, make_failures
from sluice.core.frame import row_ids
from sluice.decide import split
from sluice.ingest import Ingested, arrow_reader, arrow_to_polars, ingest, list_source_files
from tests.conftest import TINY_SCHEMA, SpecFactory, tiny_suite
from tests.robustness.corpus import odd_arrow_columns

HEADER = "id,amount,count,when,kind\n"


def _ingest(make_dataset: SpecFactory, content: str | bytes, fmt: str = "csv") -> Ingested:
    loaded = load_spec(make_dataset({"2024-01-01": content}, fmt=fmt))
    return ingest(loaded, loaded.spec.partition.parse("2024-01-01"))


def test_typed_frame_provenance_and_parse_failures(make_dataset: SpecFactory) -> None:
    got = _ingest(
        make_dataset,
        HEADER
        + "a,1.5,2,2024-01-01 10:00:00,a\n"
        + "b,12.5O,x,2024-13-01 10:00:00,b\n"
        + "c,,3,2024-01-01 11:00:00,\n",
    )
    f = got.frame
    assert f.columns[:3] == ["_row_id", "_source_file", "_source_row"]
    assert f["_source_row"].to_list() == [0, 1, 2]
    assert f.schema["amount"] == pl.Float64
    assert f.schema["count"] == pl.Int64
    assert f.schema["when"] == pl.Datetime("us")
    assert f["amount"].to_list() == [1.5, None, None]
    fails = got.failures.sort("column")
    assert fails["reason"].to_list() == ["amount|type", "count|type", "when|type"]
    assert fails["value"].to_list() == ["12.5O", "x", "2024-13-01 10:00:00"]
    assert set(fails["_row_id"].to_list()) == {f["_row_id"][1]}
    # an empty cell is missing, not a parse failure
    assert got.raw["amount"].to_list() == ["1.5", "12.5O", None]


def test_ragged_rows_become_malformed_rows_never_lost(make_dataset: SpecFactory) -> None:
    got = _ingest(
        make_dataset,
        HEADER + "a,1,1,2024-01-01 10:00:00,a\nb,2\nc,3,3,2024-01-01 10:00:00,a,extra\nd,4,4,,b\n",
    )
    f = got.frame
    assert f.height == 4
    assert f["id"].to_list() == ["a", None, None, "d"]
    mal = got.failures.filter(pl.col("column") == "_row")
    assert mal["reason"].to_list() == ["_row|malformed", "_row|malformed"]
    assert mal["value"].to_list() == ["b,2", "c,3,3,2024-01-01 10:00:00,a,extra"]
    by_id = dict(zip(f["_row_id"].to_list(), f["_source_row"].to_list(), strict=True))
    assert sorted(by_id[i] for i in mal["_row_id"].to_list()) == [1, 2]
    assert json.loads(mal["details"][0]) == {"expected": "5 fields"}


def test_quoted_newlines_bom_and_crlf(make_dataset: SpecFactory) -> None:
    content = ("\ufeff" + HEADER + 'a,1,1,2024-01-01 10:00:00,"x\ny"\r\nb,2,2,,b\r\n').encode()
    got = _ingest(make_dataset, content)
    f = got.frame
    assert f.columns[3] == "id"
    assert f["kind"].to_list() == ["x\ny", "b"]
    assert got.failures.is_empty()


def test_invalid_encoding_is_a_row_failure_and_in_the_header_a_clear_error(
    make_dataset: SpecFactory,
) -> None:
    content = (HEADER + "a,1,1,,a\n").encode() + b"b,\xff,1,,a\n"
    got = _ingest(make_dataset, content)
    assert got.frame["id"].to_list() == ["a", None]
    assert got.failures["reason"].to_list() == ["_row|encoding"]
    assert got.failures["value"][0].encode("latin-1") == b"b,\xff,1,,a"
    with pytest.raises(InputError, match=r"data\.csv:1: the header holds bytes .* not valid utf8"):
        _ingest(make_dataset, b"id,\xffamount\n" + content)


def test_empty_file_and_missing_partition(make_dataset: SpecFactory) -> None:
    with pytest.raises(InputError, match="no header row"):
        _ingest(make_dataset, "")
    loaded = load_spec(make_dataset({"2024-01-01": HEADER}))
    with pytest.raises(InputError, match="no source files for tiny date=2024-01-02"):
        ingest(loaded, loaded.spec.partition.parse("2024-01-02"))
    header_only = ingest(loaded, loaded.spec.partition.parse("2024-01-01"))
    assert header_only.frame.height == 0


def test_schema_drift_is_reported(make_dataset: SpecFactory) -> None:
    got = _ingest(make_dataset, "id,amount,bonus\na,1,z\n")
    assert got.missing_columns == ("count", "when", "kind")
    assert got.extra_columns == ("bonus",)


def test_parquet_native_types_are_coerced(make_dataset: SpecFactory) -> None:
    buf = io.BytesIO()
    pl.DataFrame(
        {
            "id": ["a", "b"],
            "amount": [1, 2],
            "count": [1.0, 2.5],
            "when": ["2024-01-01 00:00:00", "x"],
            "kind": ["a", "b"],
        }
    ).write_parquet(buf)
    got = _ingest(make_dataset, buf.getvalue(), fmt="parquet")
    f = got.frame
    assert f["amount"].to_list() == [1.0, 2.0]
    assert f["count"].to_list() == [1, None]
    assert sorted(got.failures["reason"].to_list()) == ["count|type", "when|type"]


@pytest.mark.parametrize("unit", ["ms", "us", "ns"])
def test_dates_and_datetimes_beyond_years_1_to_9999_are_type_failures(
    make_dataset: SpecFactory, unit: Literal["ms", "us", "ns"]
) -> None:
    """Parquet holds any 64-bit count of days or of a unit: year 0, years past 9999 and counts
    beyond polars' calendar (which panics on writing them out) are type failures carrying
    their text, whatever they are declared as; a column declared text keeps them as text."""
    per_day = {"ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}[unit]
    counts = [19_723 * per_day, -719_163 * per_day, 2_932_897 * per_day, 2**63 - 1, -(2**63) + 1]
    counts = [max(min(c, 2**63 - 1), -(2**63) + 1) for c in counts]
    days = [19_723, -719_163, 2_932_897, 2**31 - 1, -(2**31)]
    when = pl.Series("when", counts, dtype=pl.Int64).cast(pl.Datetime(unit, "UTC"))
    frame = pl.DataFrame(
        {
            "id": [f"r{i}" for i in range(5)],
            "when": when,
            "naive": when.dt.replace_time_zone(None),
            "day": pl.Series(days, dtype=pl.Int32).cast(pl.Date),
            "day_as_datetime": pl.Series(days, dtype=pl.Int32).cast(pl.Date),
            "text": when.dt.replace_time_zone(None),
        }
    )
    buf = io.BytesIO()
    frame.write_parquet(buf)
    schema = {
        "id": "string",
        "when": "datetime",
        "naive": "datetime",
        "day": "date",
        "day_as_datetime": "datetime",
        "text": "string",
    }
    got = _ingest_with(make_dataset, buf.getvalue(), schema)
    f = got.frame
    ns = unit == "ns"  # every count of nanoseconds lies within years 1677 to 2262
    kept = [True, ns, ns, ns, ns]
    for column in ("when", "naive"):
        assert f[column].is_not_null().to_list() == kept, column
    for column in ("day", "day_as_datetime"):
        assert f[column].is_not_null().to_list() == [True, False, False, False, False], column
    assert f["when"][0] == f["day_as_datetime"][0] == dt.datetime(2024, 1, 1)
    assert f["text"].null_count() == 0
    fails = got.failures
    assert set(fails["reason"]) <= {
        f"{c}|type" for c in ("when", "naive", "day", "day_as_datetime")
    }
    assert fails.height == 8 + (0 if ns else 8)
    days_text = fails.filter(pl.col("column") == "day")["value"].to_list()
    assert days_text == [
        "0000-12-31",
        "+10000-01-01",
        "2147483647 days from 1970-01-01",
        "-2147483648 days from 1970-01-01",
    ]
    if unit != "ns":
        assert f"{2**63 - 1} {unit} from 1970-01-01" in f["text"].to_list()
        assert "from 0001-01-01 to 9999-12-31" in fails["details"][0]


def _ingest_with(make_dataset: SpecFactory, content: bytes, schema: dict[str, Any]) -> Ingested:
    suite = {"name": "s", "expectations": []}
    loaded = load_spec(
        make_dataset({"2024-01-01": content}, fmt="parquet", schema=schema, suite=suite)
    )
    return ingest(loaded, loaded.spec.partition.parse("2024-01-01"))


def test_ndjson_broken_lines_are_malformed_rows(make_dataset: SpecFactory) -> None:
    content = (
        '{"id": "a", "amount": 1.5, "count": 2}\n{"id": "b", "amount": \n'
        '{"id": "c", "amount": "oops"}\n'
    )
    got = _ingest(make_dataset, content, fmt="ndjson")
    f = got.frame
    assert f.height == 3
    assert sorted(got.failures["reason"].to_list()) == ["_row|malformed", "amount|type"]


def test_row_ids_are_stable_and_distinct() -> None:
    a = row_ids("ab" * 32, 100_000)
    assert a.dtype == np.uint64
    assert len(np.unique(a)) == 100_000
    assert np.array_equal(a, row_ids("ab" * 32, 100_000))
    assert not np.intersect1d(a, row_ids("cd" * 32, 100_000)).size


def test_arrow_types_polars_cannot_hold_are_converted_and_named() -> None:
    columns = odd_arrow_columns()
    table = pa.table(columns)
    frame, converted = arrow_to_polars(table, "f.parquet")
    assert frame.columns == list(columns)
    assert frame.height == 2
    became = {c.column: c.became for c in converted}
    assert became["decimal256"] == became["map"] == became["duration"] == "text"
    assert became["timestamp_unknown_time_zone"] == "timestamp (UTC)"
    assert became["fixed_size_binary"] == "binary"
    assert "decimal128_38_digits" not in became  # polars holds 38 digits as they are
    assert frame["decimal256"][0] == "123456789012345678901234567890123456789012345.25"
    assert frame["duration"].to_list() == ["1500ms", None]
    assert frame["map"].to_list() == ['[["k",1]]', None]
    assert frame["timestamp_unknown_time_zone"].dt.epoch("us").to_list() == [0, None]
    assert frame["fixed_size_binary"].to_list() == [b"\xff\x00", None]


def test_arrow_reads_hold_no_python_object() -> None:
    data = b"id,amount\nr1,1.5\n" * 1000
    before = sys.getrefcount(data)
    reader = arrow_reader(data)
    assert sys.getrefcount(data) == before  # Arrow's copy: no GIL needed to release it
    assert reader.read() == data


def test_a_fifo_matching_the_source_pattern_is_named_not_skipped(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    spec = make_dataset({"2024-01-01": "id,amount,count,when,kind\na,1,1,2024-01-01 10:00:00,a\n"})
    folder = tmp_path / "raw" / "date=2024-01-01"
    (folder / "old.csv").mkdir()
    loaded = load_spec(spec)
    assert [
        Path(p).name
        for p in list_source_files(loaded, Partition.parse("2024-01-01", "day", "date"))
    ] == ["data.csv"]
    os.mkfifo(folder / "late.csv")
    with pytest.raises(
        InputError,
        match=r"late\.csv: matches the source pattern but is not a regular file; found a FIFO",
    ):
        list_source_files(loaded, Partition.parse("2024-01-01", "day", "date"))


def test_parquet_values_keep_their_text_in_quarantine(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    """A Parquet cell's raw text is made only for the rows quarantined (and the cells that do
    not parse), the same text whether the file holds the column alone or beside a file that
    holds it in another type, every column but the row id."""
    one = pl.DataFrame(
        {
            "id": ["a", "b"],
            "amount": [1, 2],
            "count": [7, 8],
            "when": [dt.datetime(2024, 1, 1, 8, 30), None],
            "kind": ["x", "y"],
            "tags": [[1, 2], [3]],
            "blob": [b"\xff\x00", b"ok"],
        }
    )
    two = pl.DataFrame(
        {
            "id": ["c", "d"],
            "amount": [2.5, 3.25],
            "count": [1.5, 3.0],
            "when": ["2024-01-02 00:00:00", "soon"],
            "kind": ["z", None],
            "tags": [[4], None],
            "blob": [b"\xe9t\xe9", None],
        }
    )
    spec = make_dataset({"2024-01-01": _parquet(one)}, fmt="parquet")
    (tmp_path / "raw" / "date=2024-01-01" / "two.parquet").write_bytes(_parquet(two))
    loaded = load_spec(spec)
    got = ingest(loaded, loaded.spec.partition.parse("2024-01-01"))
    assert got.raw.schema["_row_id"] == pl.UInt64
    assert got.raw.schema["tags"] == pl.List(pl.Int64)  # kept as read: no text for clean rows
    typed = got.failures.select("reason", "value").sort("reason").rows()
    assert typed == [("count|type", "1.5"), ("when|type", "soon")]
    everything = make_failures(
        got.frame["_row_id"], column="id", rule="held", severity="error", values=None
    )
    q = split(got.frame, got.raw, concat_failures([got.failures, everything]), DECLARED_TINY)
    raw = q.quarantine["_raw"].struct.unnest().select("amount", "count", "when", "kind")
    assert raw.rows() == [
        ("1", "7", "2024-01-01 08:30:00.000000", "x"),
        ("2", "8", None, "y"),
        ("2.5", "1.5", "2024-01-02 00:00:00", "z"),
        ("3.25", "3.0", "soon", None),
    ]
    assert [json.loads(e) for e in q.quarantine["_extra"]] == [
        {"tags": "[1,2]", "blob": "ÿ\x00"},
        {"tags": "[3]", "blob": "ok"},
        {"tags": "[4]", "blob": "été"},
        {"tags": None, "blob": None},
    ]


def _parquet(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_parquet(buf)
    return buf.getvalue()


DECLARED_TINY = {
    "id": pl.String(),
    "amount": pl.Float64(),
    "count": pl.Int64(),
    "when": pl.Datetime("us"),
    "kind": pl.String(),
}


def test_reads_allocate_from_jemalloc_unless_the_environment_names_a_pool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Large reads cost the kernel less with pyarrow's jemalloc pool than with its default
    (sluice.ingest.arrow.reading_pool); ARROW_DEFAULT_MEMORY_POOL still decides when set, and
    the default pool is what it was after a read."""
    from sluice.ingest.arrow import POOL_ENV, reading_memory, reading_pool

    if "jemalloc" not in pa.supported_memory_backends():
        pytest.skip("this pyarrow has no jemalloc pool")
    before = pa.default_memory_pool().backend_name
    reading_pool.cache_clear()
    try:
        monkeypatch.delenv(POOL_ENV, raising=False)
        assert reading_pool().backend_name == "jemalloc"
        with reading_memory():
            assert pa.default_memory_pool().backend_name == "jemalloc"
            table = pa.table({"a": pa.array(["x" * 100] * 1000)})
        assert pa.default_memory_pool().backend_name == before
        assert table.column("a")[0].as_py() == "x" * 100  # read under the pool, used after
        with pytest.raises(RuntimeError), reading_memory():
            raise RuntimeError("a failed read")
        assert pa.default_memory_pool().backend_name == before
        reading_pool.cache_clear()
        monkeypatch.setenv(POOL_ENV, "system")
        assert reading_pool().backend_name == pa.default_memory_pool().backend_name
    finally:
        reading_pool.cache_clear()


def test_the_reader_of_several_parts_holds_them_one_after_the_other() -> None:
    parts = [b"id,amount\n", b"", b"r1,1.5\n" * 10_000, b"\xff\x00tail"]
    assert arrow_reader(*parts).read() == b"".join(parts)
    assert arrow_reader().read() == b""


def _semicolon_ingest(make_dataset: SpecFactory, schema: dict[str, Any], content: str) -> Ingested:
    """One day of semicolon-separated ``content`` ingested as ``schema``, with no rule."""
    spec = make_dataset(
        {"2024-01-01": content},
        schema=schema,
        suite={"name": "s", "expectations": []},
        extra={
            "source": {"path": "raw/date={date}/*.csv", "format": "csv", "csv": {"delimiter": ";"}}
        },
    )
    loaded = load_spec(spec)
    return ingest(loaded, loaded.spec.partition.parse("2024-01-01"))


def test_a_float_column_with_a_decimal_comma(make_dataset: SpecFactory) -> None:
    """``decimal: ","`` reads 3,25 and 3; a value holding a '.' (1.5, or 1.234,5 with thousands
    separators) is a type failure, never read as another number."""
    schema = {"id": "string", "amount": {"type": "float", "decimal": ","}, "count": "int"}
    values = ["3,25", "3", "-0,5", " 2,5 ", "1.5", "1.234,5", "1,2,3", "", "x"]
    content = "id;amount;count\n" + "".join(f"r{i};{v};{i}\n" for i, v in enumerate(values))
    got = _semicolon_ingest(make_dataset, schema, content)
    assert got.frame["amount"].to_list() == [3.25, 3.0, -0.5, 2.5, None, None, None, None, None]
    fails = got.failures.sort("value")
    assert fails["value"].to_list() == ["1,2,3", "1.234,5", "1.5", "x"]
    assert set(fails["reason"]) == {"amount|type"}
    assert "decimal comma" in fails["details"][0]


def test_decimal_applies_to_float_columns_only(make_dataset: SpecFactory) -> None:
    spec = make_dataset(
        {"2024-01-01": HEADER}, schema={"id": "string", "n": {"type": "int", "decimal": ","}}
    )
    with pytest.raises(ConfigError, match="'decimal' applies to float columns, not int"):
        load_spec(spec)


# (value, amount with thousands "," and currency "$", units as int with thousands ",")
GROUPED = [
    ("1,234", 1234.0, 1234),
    ("1,234,567.5", 1234567.5, None),
    ("-1,234.50", -1234.5, None),
    ("+1,000", 1000.0, 1000),
    (" 1,234 ", 1234.0, 1234),
    ("1234", 1234.0, 1234),
    ("$1,234.56", 1234.56, None),
    ("$ 1,234", 1234.0, None),
    ("-$5", -5.0, None),
    ("$-5", -5.0, None),
    ("5 $", 5.0, None),
    ("1e5", 100000.0, None),
    ("12,34", None, None),
    ("1,23,456", None, None),
    ("1234,567", None, None),
    (",123", None, None),
    ("0,123", None, None),
    ("-0,500.5", None, None),
    ("$5$", None, None),
    ("1.234,56", None, None),
    ("(5)", None, None),
    ("x", None, None),
]


def test_digit_groups_and_a_currency_symbol_are_read_only_when_well_formed(
    make_dataset: SpecFactory,
) -> None:
    """``thousands`` reads a value holding the separator only when its digits are grouped by
    threes, and ``currency`` takes one symbol before the number (after its sign, if any) or
    after it: anything else is a type failure, never read as another number. A column without
    the options reads such text as it did."""
    schema = {
        "id": "string",
        "amount": {"type": "float", "thousands": ",", "currency": "$"},
        "units": {"type": "int", "thousands": ","},
        "plain": "float",
    }
    content = "id;amount;units;plain\n" + "".join(
        f"r{i};{v};{v};{v}\n" for i, (v, _, _) in enumerate(GROUPED)
    )
    got = _semicolon_ingest(make_dataset, schema, content)
    assert got.frame["amount"].to_list() == [a for _, a, _ in GROUPED]
    assert got.frame["units"].to_list() == [u for _, _, u in GROUPED]
    assert got.frame["plain"].to_list()[:6] == [None, None, None, None, None, 1234.0]
    amount = got.failures.filter(pl.col("reason") == "amount|type")
    assert sorted(amount["value"]) == sorted(v for v, a, _ in GROUPED if a is None)
    assert json.loads(amount["details"][0]) == {
        "expected": "float, digits grouped by ',', currency '$'"
    }


def test_digit_groups_with_a_decimal_comma_and_a_symbol_after(make_dataset: SpecFactory) -> None:
    schema = {
        "id": "string",
        "amount": {"type": "float", "decimal": ",", "thousands": ".", "currency": "€"},
    }
    values = ["1.234,56 €", "1.234.567 €", "12,5€", "-3 €", "7", "1.23 €", "1,234.56", "1.2345"]
    content = "id;amount\n" + "".join(f"r{i};{v}\n" for i, v in enumerate(values))
    got = _semicolon_ingest(make_dataset, schema, content)
    assert got.frame["amount"].to_list() == [1234.56, 1234567.0, 12.5, -3.0, 7.0, None, None, None]


@pytest.mark.parametrize(
    ("column", "error"),
    [
        ({"type": "string", "thousands": ","}, "'thousands' applies to int and float columns"),
        ({"type": "date", "currency": "$"}, "'currency' applies to int and float columns"),
        ({"type": "float", "thousands": ",", "decimal": ","}, "both ','"),
        ({"type": "float", "thousands": "."}, "thousands '.' on a float column needs decimal"),
        ({"type": "float", "thousands": ";"}, r"thousands: Input should be ','"),
        ({"type": "float", "currency": "US$1"}, "one to three characters"),
        ({"type": "float", "currency": "-"}, "one to three characters"),
        ({"type": "float", "currency": ""}, "one to three characters"),
    ],
)
def test_thousands_and_currency_are_refused_where_they_cannot_apply(
    make_dataset: SpecFactory, column: dict[str, Any], error: str
) -> None:
    spec = make_dataset({"2024-01-01": HEADER}, schema={"id": "string", "n": column})
    with pytest.raises(ConfigError, match=error):
        load_spec(spec)


def test_thousands_dot_is_refused_for_ndjson(make_dataset: SpecFactory) -> None:
    """An NDJSON number such as 1.234 is read as text like any value: with '.' as the digit
    group, it would be read as 1234."""
    spec = make_dataset(
        {"2024-01-01": '{"id": "a", "n": 1.234}\n'},
        schema={"id": "string", "n": {"type": "int", "thousands": "."}},
        extra={"source": {"path": "raw/date={date}/*.ndjson", "format": "ndjson"}},
    )
    with pytest.raises(ConfigError, match=r"JSON number such as 1\.234 would be read as 1234"):
        load_spec(spec)


@pytest.mark.parametrize("template", ["../raw/date={date}/*.csv", "../raw/date={date}/f [1].csv"])
def test_a_project_folder_named_like_a_pattern_is_matched_as_it_is(
    tmp_path: Path, template: str
) -> None:
    """A ``[x]`` or ``*`` in the folders the project lies in is part of a name, not a pattern
    (``[x]`` matched only ``x``: "nothing matches"); the template's own ``*`` still is one."""
    root = tmp_path / "da ta [x] a*b"
    (root / "datasets").mkdir(parents=True)
    folder = root / "raw" / "date=2024-01-01"
    folder.mkdir(parents=True)
    (folder / "f [1].csv").write_text(HEADER + "a,1.5,2,2024-01-01 10:00:00,a\n")
    (root / "suite.json").write_text(json.dumps(tiny_suite()))
    spec = {
        "name": "tiny",
        "source": {"path": template, "format": "csv"},
        "partition": {"key": "date", "kind": "day"},
        "schema": TINY_SCHEMA,
        "suite": "../suite.json",
        "outputs": {"clean": "../out/clean", "quarantine": "../out/q", "reports": "../out/r"},
    }
    path = root / "datasets" / "tiny.yaml"
    path.write_text(json.dumps(spec))
    loaded = load_spec(path)
    partition = Partition.parse("2024-01-01", "day", "date")
    assert list_source_files(loaded, partition) == [str(folder / "f [1].csv")]
    assert ingest(loaded, partition).frame.height == 1


@pytest.mark.parametrize("name", ["c{}", "é{}"])
def test_a_header_longer_than_the_head_read_first_is_read_whole(name: str) -> None:
    """A file of many thousand columns: its header ran past the 64 KiB read to find it, and
    the cut header made a false duplicate column (``c1234`` of ``c12345``), ending the run;
    a cut that falls inside a two-byte character is read whole too."""
    from sluice.config import CsvOptions
    from sluice.ingest.text import read_text_records

    names = [name.format(i) for i in range(20_000)]
    data = (",".join(names) + "\n" + ",".join("1" for _ in names) + "\n").encode()
    assert len(data.split(b"\n")[0]) > 1 << 16
    frame, bad = read_text_records(data, "csv", "wide.csv", CsvOptions())
    assert frame.columns == names
    assert (frame.height, bad) == (1, [])
