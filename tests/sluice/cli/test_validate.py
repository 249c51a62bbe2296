"""``sluice validate``: reading files, the result JSON, the failures Parquet and exit codes."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import sluice.cli.validate as validate_file_module
from sluice.cli.validate import MAX_NESTING, add_arguments, main, read_data, validate_file
from sluice.core.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, InputError
from sluice.core.failures import FAILURE_SCHEMA

FRAME = pl.DataFrame(
    {
        "trip_id": ["T000000001", "T000000002", "X", None],
        "vendor_id": [1, 2, 3, 1],
        "fare": [10.0, 600.0, 5.0, None],
    }
)
SUITE: dict[str, Any] = {
    "name": "t",
    "expectations": [
        {
            "type": "expect_column_values_to_match_regex",
            "kwargs": {"column": "trip_id", "regex": "^T[0-9]{9}$"},
        },
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "vendor_id", "value_set": [1, 2]},
        },
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "fare", "min_value": 0, "max_value": 500},
        },
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "fare", "min_value": 0}},
        {
            "type": "expect_compound_columns_to_be_unique",
            "kwargs": {"column_list": ["trip_id", "vendor_id"]},
        },
    ],
}


def write_suite(tmp_path: Path, suite: Mapping[str, Any] = SUITE) -> Path:
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(suite, indent=2))
    return path


@pytest.mark.parametrize("fmt", ["parquet", "csv", "ndjson"])
def test_result_and_failures(tmp_path: Path, fmt: str) -> None:
    data = tmp_path / f"data.{fmt}"
    getattr(FRAME, f"write_{fmt}")(data)
    result, failures = tmp_path / "out.json", tmp_path / "fail.parquet"
    code = validate_file(data, write_suite(tmp_path), "auto", result, failures)
    assert code == EXIT_FAILED
    doc = json.loads(result.read_text())
    assert doc["rows"] == 4
    assert doc["success"] is False
    records = doc["results"]
    assert [r["type"] for r in records] == [e["type"] for e in SUITE["expectations"]]
    assert [r["unexpected_rows"] for r in records] == [[2], [2], [1], None, []]
    assert [r["success"] for r in records] == [False, False, False, True, True]
    assert records[3]["observed_value"] == pytest.approx(205.0)
    assert {r["engine"] for r in records} == {"polars"}
    assert records[0]["kwargs"] == {"column": "trip_id", "regex": "^T[0-9]{9}$"}
    table = pl.read_parquet(failures)
    assert table.schema == FAILURE_SCHEMA
    assert table.select("_row_id", "rule", "column", "value", "severity").rows() == [
        (2, "expect_column_values_to_match_regex", "trip_id", "X", "error"),
        (2, "expect_column_values_to_be_in_set", "vendor_id", "3", "error"),
        (1, "expect_column_values_to_be_between", "fare", "600.0", "error"),
    ]


def test_engines_give_the_same_result_file(tmp_path: Path) -> None:
    data = tmp_path / "data.parquet"
    FRAME.write_parquet(data)
    suite = write_suite(tmp_path)
    docs = {}
    for engine in ("polars", "gx"):
        out = tmp_path / f"{engine}.json"
        assert validate_file(data, suite, engine, out) == EXIT_FAILED
        docs[engine] = json.loads(out.read_text())["results"]
    keys = ("type", "success", "unexpected_count", "unexpected_rows")
    assert [{k: r[k] for k in keys} for r in docs["polars"]] == [
        {k: r[k] for k in keys} for r in docs["gx"]
    ]
    assert {r["engine"] for r in docs["gx"]} == {"gx"}


def test_all_passing_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data.csv"
    FRAME.write_csv(data)
    suite = write_suite(tmp_path, {"name": "ok", "expectations": [SUITE["expectations"][3]]})
    assert validate_file(data, suite) == EXIT_OK
    assert "1/1 expectations passed" in capsys.readouterr().out


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_main_reports_usage_errors_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = write_suite(tmp_path)
    assert main(parse([str(tmp_path / "missing.parquet"), "--suite", str(suite)])) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "missing.parquet" in err
    assert "Traceback" not in err

    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    assert main(parse([str(bad), "--suite", str(suite)])) == EXIT_USAGE
    assert "cannot read it as parquet" in capsys.readouterr().err

    other = tmp_path / "data.xlsx"
    other.write_text("x")
    assert main(parse([str(other), "--suite", str(suite)])) == EXIT_USAGE
    assert "unknown data format" in capsys.readouterr().err


def test_main_reports_bad_suites_and_polars_refusals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data.parquet"
    FRAME.write_parquet(data)
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x", "expectations": [{"type": "expect_nothing"}]}')
    assert main(parse([str(data), "--suite", str(broken)])) == EXIT_USAGE
    assert "expect_nothing" in capsys.readouterr().err

    kl = {
        "name": "kl",
        "expectations": [
            {
                "type": "expect_column_kl_divergence_to_be_less_than",
                "kwargs": {
                    "column": "fare",
                    "partition_object": {"bins": [0, 10, 1000], "weights": [0.5, 0.5]},
                    "threshold": 0.9,
                },
            }
        ],
    }
    suite = write_suite(tmp_path, kl)
    assert main(parse([str(data), "--suite", str(suite), "--engine", "polars"])) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "suite.json" in err
    assert "expectations[0]" in err
    assert "Traceback" not in err
    assert main(parse([str(data), "--suite", str(suite)])) in (EXIT_OK, EXIT_FAILED)


BROKEN: dict[str, tuple[str, bytes, str]] = {
    "short_row": ("csv", b"a,b,c\n1,2,3\n4,5\n", r"data\.csv: record 2 after the header does not"),
    "long_row": ("csv", b"a,b\n1,2,3\n", r"data\.csv: record 1 after the header does not have"),
    "blank_and_short": ("csv", b"a,b\n1,2\n\n\n3\n", r"data\.csv: record 2 after the header"),
    "duplicate_header": ("csv", b"a,b,a\n1,2,3\n", r"data\.csv:1: duplicate column names.*: a"),
    "unnamed_columns": (  # a spreadsheet's export with trailing empty columns
        "csv",
        b"\xef\xbb\xbfa,b,,\r\n1,2,,\r\n",
        r"data\.csv:1: duplicate column names in the header: '' \(columns 3, 4, no name",
    ),
    "invalid_utf8": ("csv", b"a,b\n1,caf\xe9\n2,x\n", r"data\.csv: record 1 .*not valid UTF-8"),
    "invalid_header": ("csv", b"a,\xe9\n1,2\n", r"data\.csv:1: the header holds bytes"),
    "unclosed_quote": ("csv", b'a,b\n1,2\n3,"x\n4,5\n', r"data\.csv:3: a quoted field .* never"),
    "quote_in_header": ("csv", b'a,"b\n1,2\n', r"data\.csv:1: the header opens a quoted field"),
    "duplicate_keys": (
        "ndjson",
        b'{"a": 1}\n\n{"a": 2, "a": 3}\n',
        r"data\.ndjson: record 2 is not one JSON object .*duplicate key 'a'",
    ),
    "not_an_object": ("ndjson", b'{"a": 1}\n[1]\n', r"data\.ndjson: record 2 .*a JSON list"),
    "ndjson_invalid_utf8": (
        "ndjson",
        b'{"a": 1}\n{"a": "\xff"}\n',
        r"data\.ndjson: record 2 holds bytes that are not valid UTF-8",
    ),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_file_is_an_input_error_naming_the_place(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fmt, content, expected = BROKEN[name]
    data = tmp_path / f"data.{fmt}"
    data.write_bytes(content)
    suite = write_suite(tmp_path, {"name": "n", "expectations": []})
    result = tmp_path / "out.json"
    assert main(parse([str(data), "--suite", str(suite), "--result", str(result)])) == EXIT_USAGE
    err = capsys.readouterr().err
    assert re.search(expected, err), err
    assert str(data) in err
    assert "Traceback" not in err
    assert not result.exists()


def test_the_message_counts_every_bad_record(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_bytes(b"a,b\n1\n2,3\n4\n5,6,7\n")
    with pytest.raises(InputError, match=r"record 1 after .*'1'; 3 bad records in all"):
        read_data(data)


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_a_well_formed_file_is_read_as_polars_reads_it(tmp_path: Path, fmt: str) -> None:
    data = tmp_path / f"data.{fmt}"
    getattr(FRAME, f"write_{fmt}")(data)
    reader = pl.read_csv if fmt == "csv" else pl.read_ndjson
    assert_frame_equal(read_data(data), reader(data, infer_schema_length=10_000))


def test_lines_ending_in_a_lone_cr_are_read_record_by_record(tmp_path: Path) -> None:
    lf, cr = tmp_path / "lf.csv", tmp_path / "cr.csv"
    FRAME.write_csv(lf)
    cr.write_bytes(lf.read_bytes().replace(b"\n", b"\r"))
    frame = read_data(cr)
    assert frame.height == FRAME.height
    assert_frame_equal(frame, read_data(lf))


def test_a_stray_quote_polars_refuses_is_read_as_sluice_reads_it(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_bytes(b'a,b\n1,x"y\n2,z\n')
    frame = read_data(data)
    assert frame.to_dict(as_series=False) == {"a": [1, 2], "b": ['x"y', "z"]}


def test_an_ndjson_key_first_seen_late_is_kept(tmp_path: Path) -> None:
    data = tmp_path / "data.ndjson"
    lines = [json.dumps({"a": i}) for i in range(10_001)] + [json.dumps({"a": 0, "late": "x"})]
    data.write_text("\n".join(lines) + "\n")
    frame = read_data(data)
    assert frame.columns == ["a", "late"]
    assert frame["late"].drop_nulls().to_list() == ["x"]


def test_ndjson_nan_and_infinity_are_read_as_floats(tmp_path: Path) -> None:
    data = tmp_path / "data.ndjson"
    data.write_text('{"a": NaN, "n": 1}\n{"a": Infinity, "n": 2}\n{"a": -Infinity, "n": 3}\n')
    frame = read_data(data)  # polars refuses these tokens; Python's json and the pipeline read them
    assert frame.schema == {"a": pl.Float64, "n": pl.Int64}
    a = frame["a"].to_list()
    assert a[0] != a[0]  # NaN
    assert a[1:] == [float("inf"), float("-inf")]


def test_ndjson_keys_that_change_type_are_read_as_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data.ndjson"
    rows = [  # an object before a number in one key: polars refuses the file
        {"a": {"k": 1}, "b": 1, "c": {"k": 1}, "d": [1, 2]},
        {"a": 0.5, "b": 2.5, "c": {"j": 2}, "d": [1.5]},
        {"a": None, "b": None, "c": None, "d": None},
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    frame = read_data(data)
    assert frame.to_dict(as_series=False) == {
        "a": ['{"k": 1}', "0.5", None],  # mixed: text, every record kept
        "b": [1.0, 2.5, None],  # integers and numbers: floats
        "c": ['{"k": 1}', '{"j": 2}', None],  # as a struct each would gain the other's field
        "d": [[1.0, 2.0], [1.5], None],
    }
    assert "'a', 'c' change JSON type between records; read as text" in capsys.readouterr().err


def test_values_nested_deeper_than_the_limit_are_an_input_error(tmp_path: Path) -> None:
    data = tmp_path / "data.ndjson"
    suite = write_suite(tmp_path, {"name": "n", "expectations": []})
    for depth, ok in ((MAX_NESTING, True), (MAX_NESTING + 1, False)):
        value = json.loads("[" * depth + "]" * depth)
        data.write_text(json.dumps({"id": "a", "deep": value}) + "\n")
        if ok:
            assert validate_file(data, suite, "polars") == EXIT_OK
        else:
            with pytest.raises(InputError, match=rf"column 'deep' .* nested {depth} levels"):
                validate_file(data, suite, "polars")


def test_a_recursion_error_while_checking_is_an_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def recurse(*_: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(validate_file_module, "validate", recurse)
    data = tmp_path / "data.parquet"
    FRAME.write_parquet(data)
    assert main(parse([str(data), "--suite", str(write_suite(tmp_path))])) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"{data}: a value is nested too deeply" in err
    assert "Traceback" not in err


def test_dates_beyond_years_1_to_9999_are_read_as_text_and_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Parquet date or timestamp can be any 64-bit count: polars panics comparing one beyond
    its calendar with a date, and neither GX nor Python holds year 0. Such a column is read as
    its text, said on stderr, and the suite runs on it."""
    days = pl.Series("day", [19_723, 19_724, 2**31 - 1, -719_163], dtype=pl.Int32).cast(pl.Date)
    data = tmp_path / "data.parquet"
    pl.DataFrame({"day": days, "ok": days.head(2).append(days.head(2))}).write_parquet(data)
    between = {"column": "day", "min_value": "2024-01-01", "max_value": "2024-12-31"}
    suite = write_suite(
        tmp_path,
        {
            "name": "dates",
            "expectations": [
                {"type": "expect_column_values_to_be_between", "kwargs": between},
                {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "day"}},
            ],
        },
    )
    assert main(parse([str(data), "--suite", str(suite)])) == EXIT_FAILED
    out = capsys.readouterr()
    assert "column 'day' holds 2 value(s) beyond years 1 to 9999; read as text" in out.err
    assert "'ok'" not in out.err
    assert "1/2 expectations passed" in out.out
    frame = read_data(data)
    assert frame["day"].to_list() == [
        "2024-01-01",
        "2024-01-02",
        "2147483647 days from 1970-01-01",
        "0000-12-31",
    ]
    assert frame["ok"].dtype == pl.Date
