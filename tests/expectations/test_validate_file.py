"""``sluice validate``: reading files, the result JSON, the failures Parquet and exit codes."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from expectations.validate_file import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_arguments,
    main,
    validate_file,
)

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
    assert table.columns == ["_row", "rule", "column", "value"]
    assert table.rows() == [
        (2, "expect_column_values_to_match_regex", "trip_id", "X"),
        (2, "expect_column_values_to_be_in_set", "vendor_id", "3"),
        (1, "expect_column_values_to_be_between", "fare", "600.0"),
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
