"""Reading real data: per-column null tokens, column aliases, ISO-8601 timestamps, and a record's
judgement that never depends on the other records of its file."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path
from typing import Any
from unittest.mock import patch

import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sluice.config import ColumnSpec, CsvOptions, LoadedSpec, load_spec
from sluice.core.errors import ConfigError, InputError
from sluice.ingest import Ingested, column_parser, ingest
from sluice.ingest import text as text_module
from sluice.ingest.parse import _parse, _typed
from sluice.ingest.text import _csv_exact, _csv_fast, _read_ndjson
from sluice.pipeline import run_partition
from tests.conftest import SpecFactory

DAY = "2024-01-01"


def _ingest(make_dataset: SpecFactory, content: str | bytes, **kw: Any) -> Ingested:
    loaded = load_spec(make_dataset({DAY: content}, **kw))
    return ingest(loaded, loaded.spec.partition.parse(DAY))


def _parquet(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_parquet(buf)
    return buf.getvalue()


def test_column_null_tokens_apply_to_their_column_only(make_dataset: SpecFactory) -> None:
    schema = {
        "id": "string",
        "abv": {"type": "float", "null_values": ["N/A"]},
        "ibu": "float",
        "note": {"type": "string", "null_values": ["empty"]},
    }
    got = _ingest(
        make_dataset,
        "id,abv,ibu,note\na,N/A,N/A,empty\nb,0.05,30,fine\nc,,1,\n",
        schema=schema,
    )
    f = got.frame
    assert f["abv"].to_list() == [None, 0.05, None]
    assert f["note"].to_list() == [None, "fine", None]
    # "N/A" is a null token of abv only: in ibu it is a value that is not a float
    assert got.failures["reason"].to_list() == ["ibu|type"]
    assert got.failures["value"].to_list() == ["N/A"]
    # the raw text keeps what the file held
    assert got.raw["abv"].to_list() == ["N/A", "0.05", None]


def test_column_null_tokens_apply_to_ndjson_and_parquet_text(make_dataset: SpecFactory) -> None:
    schema = {"id": "string", "n": {"type": "int", "null_values": ["N/A", "-1"]}}
    lines = [{"id": "a", "n": "N/A"}, {"id": "b", "n": 3}, {"id": "c", "n": "-1"}]
    got = _ingest(
        make_dataset,
        "\n".join(json.dumps(r) for r in lines) + "\n",
        schema=schema,
        fmt="ndjson",
    )
    assert got.frame["n"].to_list() == [None, 3, None]
    assert got.failures.is_empty()
    text = pl.DataFrame({"id": ["a", "b"], "n": ["N/A", "4"]})
    got = _ingest(make_dataset, _parquet(text), schema=schema, fmt="parquet")
    assert got.frame["n"].to_list() == [None, 4]
    coded = text.with_columns(pl.col("n").cast(pl.Categorical))
    got = _ingest(make_dataset, _parquet(coded), schema=schema, fmt="parquet")
    assert got.frame["n"].to_list() == [None, 4]
    assert got.failures.is_empty()
    # a Parquet integer column is not text: its -1 is a number, not a token
    numbers = pl.DataFrame({"id": ["a", "b"], "n": [-1, 4]})
    got = _ingest(make_dataset, _parquet(numbers), schema=schema, fmt="parquet")
    assert got.frame["n"].to_list() == [-1, 4]


def test_file_null_tokens_match_quoted_and_unquoted_fields(make_dataset: SpecFactory) -> None:
    extra = {"source": {"path": "raw/date={date}/*.csv", "csv": {"null_values": ["", "NA"]}}}
    got = _ingest(
        make_dataset,
        'id,kind\na,""\nb,"NA"\nc,NA\nd,\ne,x\n',
        schema={"id": "string", "kind": "string"},
        extra=extra,
    )
    assert got.frame["kind"].to_list() == [None, None, None, None, "x"]


def _renamed_taxi(make_dataset: SpecFactory, old: str, new: str) -> Path:
    spec = make_dataset(
        {DAY: old},
        schema={
            "vendor_id": {"type": "int", "aliases": ["VendorID", "vendorid"]},
            "fare": "float",
        },
        suite={"name": "tiny", "expectations": []},
        extra={"keys": []},
    )
    (spec.parent / "raw" / f"date={DAY}" / "new.csv").write_text(new)
    return spec


def test_aliases_rename_per_file_and_the_manifest_says_which(make_dataset: SpecFactory) -> None:
    spec = _renamed_taxi(make_dataset, "vendor_id,fare\n1,2.5\n", "VendorID,fare,tip\n2,3.5,1\n")
    loaded = load_spec(spec)
    got = ingest(loaded, loaded.spec.partition.parse(DAY))
    assert got.frame["vendor_id"].to_list() == [1, 2]
    assert got.missing_columns == ()
    assert got.extra_columns == ("tip",)
    assert got.aliases_used == [
        {"file": str(spec.parent / "raw" / f"date={DAY}" / "new.csv"), "column": "vendor_id",
         "alias": "VendorID"}
    ]  # fmt: skip
    summary = run_partition(str(spec), DAY)
    manifest = json.loads(Path(summary["manifest"]).read_text())
    assert manifest["status"] == "passed"
    assert manifest["schema"]["aliases"] == got.aliases_used
    assert manifest["counts"]["clean"] == 2


def test_two_names_of_one_column_in_a_file_is_an_input_error(make_dataset: SpecFactory) -> None:
    spec = _renamed_taxi(
        make_dataset, "vendor_id,fare\n1,2.5\n", "VendorID,vendor_id,fare\n2,2,3\n"
    )
    loaded = load_spec(spec)
    with pytest.raises(InputError, match=r"new\.csv: columns 'vendor_id' and 'VendorID' are both"):
        ingest(loaded, loaded.spec.partition.parse(DAY))


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        ({"a": {"type": "int", "aliases": ["b"]}, "b": "int"}, "alias 'b' of column 'a'"),
        (
            {"a": {"type": "int", "aliases": ["x"]}, "b": {"type": "int", "aliases": ["x"]}},
            "alias 'x' of column 'b' already names column 'a'",
        ),
    ],
)
def test_an_alias_naming_another_column_is_refused_at_load(
    make_dataset: SpecFactory, schema: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConfigError, match=says) as err:
        load_spec(make_dataset({DAY: "a,b\n1,2\n"}, schema=schema, extra={"keys": []}))
    assert err.value.line is not None


@pytest.mark.parametrize(
    ("column", "bad"),
    [
        ({"type": "int", "aliases": ["_row_id"]}, "reserved"),
        ({"type": "int", "aliases": ["x", "x"]}, "twice"),
    ],
)
def test_bad_aliases_are_refused_at_load(
    make_dataset: SpecFactory, column: dict[str, Any], bad: str
) -> None:
    with pytest.raises(ConfigError, match=bad) as err:
        load_spec(make_dataset({DAY: "a\n1\n"}, schema={"a": column}, extra={"keys": []}))
    assert str(err.value.key).startswith("schema.a")


def test_columns_named_empty_or_with_an_underscore_are_declared_by_aliases(
    make_dataset: SpecFactory,
) -> None:
    """pandas writes its index under an empty name; a source may name a column ``_x``. Neither
    can be declared under its own name, both can be by an alias (as ``sluice init`` writes)."""
    spec = make_dataset(
        {DAY: ",_x,b\n0,1,2\n1,3,4\n"},
        schema={
            "column_1": {"type": "int", "aliases": [""]},
            "column_2": {"type": "int", "aliases": ["_x"]},
            "b": "int",
        },
        suite={"name": "tiny", "expectations": []},
        extra={"keys": []},
    )
    summary = run_partition(str(spec), DAY)
    manifest = json.loads(Path(summary["manifest"]).read_text())
    assert manifest["status"] == "passed"
    assert manifest["counts"]["clean"] == 2
    clean = pl.read_parquet(next(spec.parent.rglob("clean/**/*.parquet")))
    assert clean.select("column_1", "column_2", "b").rows() == [(0, 1, 2), (1, 3, 4)]


ISO = [
    ("2024-03-10T02:30:00-05:00", dt.datetime(2024, 3, 10, 7, 30)),
    ("2024-03-10 02:30:00", dt.datetime(2024, 3, 10, 2, 30)),
    ("2024-03-10", dt.datetime(2024, 3, 10)),
    ("2024-03-10T02:30:00.123456789Z", dt.datetime(2024, 3, 10, 2, 30, 0, 123456)),
    ("2024-03-10T02:30+0130", dt.datetime(2024, 3, 10, 1, 0)),
    ("2024-03-09T23:30:00.5-05", dt.datetime(2024, 3, 10, 4, 30, 0, 500000)),
    ("2024-03-10 02:30:00 +01:00", dt.datetime(2024, 3, 10, 1, 30)),
]
NOT_ISO = ["2024-02-30", "2024-03-10T25:00", "2024-03-10T02:30+24:00", "10/03/2024", "2024-3-1"]


def test_datetimes_without_format_parse_iso_8601_value_by_value(
    make_dataset: SpecFactory,
) -> None:
    schema = {"id": "string", "when": "datetime"}
    texts = [t for t, _ in ISO] + NOT_ISO
    content = "id,when\n" + "".join(f"r{i},{t}\n" for i, t in enumerate(texts))
    got = _ingest(make_dataset, content, schema=schema)
    assert got.frame.schema["when"] == pl.Datetime("us")
    assert got.frame["when"].to_list() == [v for _, v in ISO] + [None] * len(NOT_ISO)
    assert sorted(got.failures["value"].to_list()) == sorted(NOT_ISO)
    # the same values in reverse order: no value's reading depends on the first one's form
    content = "id,when\n" + "".join(f"r{i},{t}\n" for i, t in enumerate(reversed(texts)))
    again = _ingest(make_dataset, content, schema=schema)
    assert again.frame["when"].to_list()[::-1] == got.frame["when"].to_list()


def test_declared_offset_directive_is_honoured_and_zone_names_refused(
    make_dataset: SpecFactory,
) -> None:
    schema = {"id": "string", "when": {"type": "datetime", "format": "%d/%m/%Y %H:%M %z"}}
    got = _ingest(
        make_dataset, "id,when\na,10/03/2024 02:30 -0500\nb,10/03/2024 02:30\n", schema=schema
    )
    assert got.frame["when"].to_list() == [dt.datetime(2024, 3, 10, 7, 30), None]
    assert got.failures["reason"].to_list() == ["when|type"]
    zone = {"id": "string", "when": {"type": "datetime", "format": "%Y-%m-%d %H:%M %Z"}}
    with pytest.raises(ConfigError, match="%Z") as err:
        load_spec(make_dataset({DAY: "id,when\n"}, schema=zone))
    assert err.value.key == "schema.when.format"
    assert err.value.line is not None


def test_parquet_timestamps_with_a_zone_become_naive_utc(make_dataset: SpecFactory) -> None:
    frame = pl.DataFrame({"id": ["a"], "when": [dt.datetime(2024, 3, 12, 2, 30)]}).with_columns(
        pl.col("when").dt.replace_time_zone("America/New_York")
    )
    got = _ingest(
        make_dataset, _parquet(frame), schema={"id": "string", "when": "datetime"}, fmt="parquet"
    )
    assert got.frame.schema["when"] == pl.Datetime("us")
    assert got.frame["when"].to_list() == [dt.datetime(2024, 3, 12, 6, 30)]


# A record's judgement must not depend on the other records of its file: CSV files read by
# pyarrow when every record is well formed, and by the standard library when one is not.
field = st.text(
    alphabet=["a", "1", '"', ",", "\n", "\r", " ", "N", "A", "\t", "\x00", "é", "\u2028", "-"],
    max_size=5,
) | st.sampled_from(["", "NA", "2024-01-01T00:00:00-05:00", "2024-01-01 10:00:00", "1.5", "7"])
record = st.tuples(*[st.tuples(field, st.booleans()) for _ in range(3)])


def _cell(text: str, quoted: bool) -> str:
    return '"' + text.replace('"', '""') + '"' if quoted or '"' in text else text


def _line(rec: tuple[tuple[str, bool], ...]) -> str:
    return ",".join(_cell(t, q or any(c in t for c in ',\n\r"')) for t, q in rec)


def _judged(got: Ingested, row: int) -> tuple[Any, ...]:
    ids = got.frame["_row_id"]
    f = got.failures.filter(pl.col("_row_id") == ids[row])
    reasons = sorted(zip(f["reason"].to_list(), f["value"].to_list(), strict=True))
    return (*got.frame.drop("_row_id", "_source_file", "_source_row").row(row), reasons)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    records=st.lists(record, min_size=1, max_size=5),
    nl=st.sampled_from(["\n", "\r\n"]),
    bad=st.sampled_from(["x,y", "x,y,z,w", "x"]),
    where=st.integers(0, 5),
)
@example(records=[(("1", False), ("", True), ("x", False))], nl="\n", bad="x,y", where=1)
@example(records=[(("1", False), ("NA", True), ("x", False))], nl="\n", bad="x,y", where=0)
def test_a_record_is_judged_alike_whether_or_not_another_is_ragged(
    tmp_path_factory: pytest.TempPathFactory, records: list[Any], nl: str, bad: str, where: int
) -> None:
    base = tmp_path_factory.mktemp("prop")
    schema = {"a": "string", "b": {"type": "string", "null_values": ["-"]}, "c": "datetime"}
    extra = {"source": {"path": "raw/*.csv", "csv": {"null_values": ["", "NA"]}}}
    lines = [_line(r) for r in records]
    where = min(where, len(lines))
    with_bad = [*lines[:where], bad, *lines[where:]]
    whole = _spec_at(base / "whole", nl.join(["a,b,c", *lines]) + nl, schema, extra)
    ragged = _spec_at(base / "ragged", nl.join(["a,b,c", *with_bad]) + nl, schema, extra)
    try:
        one = ingest(whole, whole.spec.partition.parse(DAY))
    except InputError:
        with pytest.raises(InputError):
            ingest(ragged, ragged.spec.partition.parse(DAY))
        return
    two = ingest(ragged, ragged.spec.partition.parse(DAY))
    assert two.frame.height == one.frame.height + 1
    assert two.failures.filter(pl.col("column") == "_row")["value"].to_list() == [bad]
    for row in range(one.frame.height):
        assert _judged(one, row) == _judged(two, row + (row >= where))


def _spec_at(root: Path, text: str, schema: dict[str, Any], extra: dict[str, Any]) -> LoadedSpec:
    (root / "raw").mkdir(parents=True)
    (root / "raw" / "data.csv").write_bytes(text.encode())
    (root / "suite.json").write_text(json.dumps({"name": "t", "expectations": []}))
    spec = {
        "name": "t",
        "source": {"path": "raw/*.csv", **extra["source"]},
        "schema": schema,
        "suite": "suite.json",
        "outputs": {"clean": "c", "quarantine": "q", "reports": "r"},
    }
    (root / "t.yaml").write_text(yaml.safe_dump(spec))
    return load_spec(root / "t.yaml")


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(records=st.lists(record, min_size=1, max_size=4), nl=st.sampled_from(["\n", "\r\n", "\r"]))
@example(
    records=[(("", False), ('A"', False), ("", False)), (("", False), ('"', False), ("", False))],
    nl="\n",
)
def test_the_fast_and_exact_csv_readers_agree(records: list[Any], nl: str) -> None:
    opts = CsvOptions(null_values=["", "NA"])
    raw_lines = [
        ",".join(t if not q else '"' + t.replace('"', '""') + '"' for t, q in r) for r in records
    ]
    data = ("a,b,c" + nl + nl.join(raw_lines) + nl).encode()
    fast = _csv_fast(data, opts, "f.csv")
    if fast is None:
        return
    exact, bad = _csv_exact(data, opts, "f.csv")
    assert bad == []
    assert fast.rows() == exact.rows()


@st.composite
def iso_texts(draw: st.DrawFn) -> tuple[str, dt.datetime]:
    """ISO-8601 text in one of its forms, and the naive UTC datetime it stands for."""
    when = draw(st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1)))
    if draw(st.booleans()):
        return when.strftime("%Y-%m-%d"), dt.datetime(when.year, when.month, when.day)
    sep = draw(st.sampled_from(["T", " ", "t"]))
    seconds = draw(st.sampled_from(["none", "whole", "fraction"]))
    text = when.strftime(f"%Y-%m-%d{sep}%H:%M")
    value = when.replace(second=0, microsecond=0)
    if seconds != "none":
        text += when.strftime(":%S")
        value = value.replace(second=when.second)
    if seconds == "fraction":
        digits = draw(st.integers(1, 9))
        frac = f"{when.microsecond:06d}{draw(st.integers(0, 999)):03d}"[:digits]
        text += draw(st.sampled_from([".", ","])) + frac
        value = value.replace(microsecond=int(frac[:6].ljust(6, "0")))
    minutes = draw(st.none() | st.integers(-(23 * 60 + 59), 23 * 60 + 59))
    if minutes is None:
        return text, value
    sign, (h, m) = "-" if minutes < 0 else "+", divmod(abs(minutes), 60)
    form = draw(st.sampled_from(["{s}{h:02d}:{m:02d}", "{s}{h:02d}{m:02d}", "Z"]))
    if form == "Z" or (m == 0 and draw(st.booleans())):
        form = "Z" if form == "Z" else "{s}{h:02d}"
    minutes = 0 if form == "Z" else minutes
    space = draw(st.sampled_from(["", " "]))
    text += space + form.format(s=sign, h=h, m=m)
    return text, value - dt.timedelta(minutes=minutes)


@settings(max_examples=200, deadline=None)
@given(cases=st.lists(iso_texts(), min_size=1, max_size=20))
def test_iso_datetimes_read_as_the_utc_instant_they_name(
    cases: list[tuple[str, dt.datetime]],
) -> None:
    texts = pl.Series("when", [t for t, _ in cases], dtype=pl.String)
    got = pl.select(column_parser(ColumnSpec(type="datetime"))(pl.lit(texts))).to_series()
    assert got.to_list() == [v for _, v in cases]


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("*", "polars reads this name as a pattern"),
        ("^a.*$", "polars reads this name as a pattern"),
        ("^$", "polars reads this name as a pattern"),
        ("a\x00b", "holds a NUL byte"),
        ("\x00", "holds a NUL byte"),
    ],
)
def test_a_column_name_polars_cannot_carry_is_refused_or_renamed(
    make_dataset: SpecFactory, name: str, why: str
) -> None:
    csv = f'id,"{name}"\n1,x\n2,y\n'
    with pytest.raises(ConfigError, match=why):
        load_spec(
            make_dataset({DAY: csv}, schema={"id": "int", name: "string"}, extra={"keys": []})
        )
    with pytest.raises(InputError, match=rf"{why}.*aliases"):
        _ingest(make_dataset, csv, schema={"id": "int"}, extra={"keys": []})
    schema = {"id": "int", "tag": {"type": "string", "aliases": [name]}}
    got = _ingest(make_dataset, csv, schema=schema, extra={"keys": []})
    assert got.frame.get_column("tag").to_list() == ["x", "y"]
    assert got.failures.is_empty()


_NUMBER_TEXT = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [
            "",
            " ",
            "1e5",
            "1E-3",
            "+7",
            "-0",
            ".5",
            "5.",
            "1_000",
            "0x10",
            "inf",
            "-Infinity",
            "NaN",
            "1,5",
            "１２",
            "٣",
            "12abc",
            "--1",
        ]
    ),
)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["", " ", "\t", "\u00a0", "\u2003", "\n"]),
            _NUMBER_TEXT,
            st.sampled_from(["", " ", "\t", "\u00a0", "\r\n"]),
        ).map("".join)
        | st.none(),
        max_size=30,
    )
)
@example(["1.5", " 2.5", "x", None, " inf ", "7 "])
def test_numbers_read_first_as_they_are_equal_the_parser(texts: list[str | None]) -> None:
    """Ingest casts text declared a number without stripping blanks first and parses again
    the cells the cast refuses: the same values and failures as the column's parser."""
    read = pl.DataFrame({"i": texts, "f": texts}, schema={"i": pl.String, "f": pl.String})
    declared = {"i": ColumnSpec(type="int"), "f": ColumnSpec(type="float")}
    parsed, masks = _parse(read, declared, "x.csv")
    for c, spec in declared.items():
        want = read.select(_typed(c, pl.String(), spec)).to_series()
        assert parsed[c].equals(want), (c, texts)
        assert masks[c].equals(read[c].is_not_null() & want.is_null())


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=40)
    | st.text(max_size=20).map(lambda t: t.encode("utf-8"))
    | st.text(max_size=20).map(lambda t: t.encode("utf-8")[:-1]),
    encoding=st.sampled_from(["utf8", "latin1", "cp1252"]),
)
@example(data="é".encode(), encoding="utf8")
@example(data=b"ab\xc3", encoding="utf8")
@example(data=b"ab\x81", encoding="cp1252")
def test_the_encoding_check_read_in_slices_equals_decoding_the_whole_file(
    data: bytes, encoding: str
) -> None:
    """The check decodes a slice at a time (here of 3 bytes, so that a character is cut across
    slices) and agrees with decoding the whole file."""
    from sluice.ingest import text

    try:
        data.decode({"utf8": "utf-8"}.get(encoding, encoding))
        whole = True
    except UnicodeDecodeError:
        whole = False
    opts = CsvOptions.model_validate({"encoding": encoding})
    before = text._CHECK_BYTES
    text._CHECK_BYTES = 3
    try:
        assert text._valid(data, opts) is whole
    finally:
        text._CHECK_BYTES = before


def _dupe_check(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("a key appears twice")
    return out


def _ndjson_as_python_reads_it(
    text: str,
) -> tuple[dict[str, list[str | None]], list[tuple[int, str]], int | None]:
    """NDJSON text as ingest promises to read it, line by line with the standard library:
    strings as they are, other values as compact JSON, bad lines as rows of nulls; and the
    number of the first bad line."""
    records: list[dict[str, Any] | None] = []
    bad: list[tuple[int, str]] = []
    keys: dict[str, None] = {}
    first_bad: int | None = None
    lines = text.removeprefix("\ufeff").split("\n")  # a mark opening the file is dropped
    for number, ended in enumerate(lines, start=1):
        line = ended.removesuffix("\r")
        if not line.strip():
            continue
        try:
            obj = json.loads(line, object_pairs_hook=_dupe_check)
        except (ValueError, RecursionError):
            obj = None
        if not isinstance(obj, dict):
            bad.append((len(records), line))
            records.append(None)
            first_bad = first_bad or number
            continue
        keys.update(dict.fromkeys(obj))
        records.append(obj)

    def text_of(value: Any) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value, separators=(",", ":"), default=str)

    columns = {k: [text_of(None if r is None else r.get(k)) for r in records] for k in keys}
    return columns, bad, first_bad


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3)
    ),
    max_leaves=6,
)
_NDJSON_LINES = st.one_of(
    st.tuples(
        st.dictionaries(st.sampled_from(["a", "b", "é", "a b", ""]), _JSON_VALUES, max_size=4),
        st.booleans(),
    ).map(lambda pair: json.dumps(pair[0], ensure_ascii=pair[1])),
    st.sampled_from(
        [
            '{"a": 1, "a": 2}',
            '{"a": {"b": 1, "b": 2}}',
            '{"a": NaN, "b": Infinity, "c": -Infinity}',
            '{"a": 1e400, "b": -0.0, "c": 1E16, "d": 5e-324, "e": 1.50}',
            '{"a": 123456789012345678901234567890, "b": true, "c": false}',
            '{"a": "\\ud800"}',
            "nope",
            "[]",
            "1",
            '"s"',
            "{",
            "\ufeff{}",
            "",
            " ",
            "\t",
        ]
    ),
)


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(st.tuples(_NDJSON_LINES, st.booleans()), max_size=12))
@example(lines=[('{"n": 1.5}', False), ('{"n": 2}', True), ("{", False)])
@example(lines=[('{"n": 123456789012345678901234567890}', False), ('{"n": 5}', False)])
@example(lines=[('{"n": 9223372036854775807}', False), ('{"n": -9223372036854775808}', False)])
@example(lines=[('{"x": NaN}', False), ('{"x": 1e-05}', False), ('{"x": -Infinity}', False)])
@example(lines=[('{"x": null, "y": true}', False), ('{"x": 2.5e-7, "y": false}', False)])
def test_ndjson_reads_as_the_standard_library_reads_each_line(
    lines: list[tuple[str, bool]],
) -> None:
    for size in (1 << 24, 1, 5):  # one slice, a line a slice, slices cut mid-line
        with patch.object(text_module, "NDJSON_SLICE", size):
            _reads_as_the_standard_library(lines)


def _reads_as_the_standard_library(lines: list[tuple[str, bool]]) -> None:
    text = "\n".join(line + ("\r" if cr else "") for line, cr in lines)
    columns, bad, first_bad = _ndjson_as_python_reads_it(text)
    if not columns:
        with pytest.raises(InputError) as refused:
            _read_ndjson(text.encode(), "f.ndjson")
        where = f"f.ndjson:{first_bad}: " if first_bad else "f.ndjson: no JSON object lines"
        assert str(refused.value).startswith(where)
        return
    try:
        frame, records = _read_ndjson(text.encode(), "f.ndjson")
    except UnicodeEncodeError:  # a lone surrogate from an escape: no UTF-8 text holds it
        return
    assert frame.to_dict(as_series=False) == columns
    assert [(r.row, r.text) for r in records] == bad
    assert {r.rule for r in records} <= {"malformed"}
