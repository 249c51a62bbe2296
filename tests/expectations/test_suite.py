"""Strict suite loading: nothing dropped, every error names file, line, key, found and allowed."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from expectations.suite import (
    UNIQUENESS_TYPES,
    check_columns,
    load_suite,
    partition_parameters,
    registered_types,
    suite_from_dict,
)
from sluice.core.errors import ConfigError

SUITES = sorted((Path(__file__).parents[2] / "expectations" / "suites").glob("*.json"))

# Line numbers below are counted by hand from this text.
GOOD = """{
  "name": "small",
  "expectations": [
    {
      "type": "expect_column_values_to_not_be_null",
      "kwargs": {"column": "a"},
      "meta": {"severity": "warn"}
    },
    {
      "type": "expect_column_values_to_be_between",
      "kwargs": {
        "column": "b",
        "min_value": 0
      }
    },
    {
      "expectation_type": "expect_column_values_to_be_unique",
      "kwargs": {"column": "c"},
      "meta": {"severity": "critical", "duplicates": "keep_none"}
    }
  ],
  "meta": {"owner": "qa"}
}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.json"
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str) -> ConfigError:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    assert info.value.file == str(path)
    return info.value


def _suite(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"name": "t", "expectations": list(entries)}


def _dict_error(*entries: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        suite_from_dict(_suite(*entries))
    return info.value


def test_good_suite_loads_every_entry_with_lines_and_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD)
    suite = load_suite(path)
    assert suite.name == "small"
    assert suite.path == path
    assert suite.meta == {"owner": "qa"}
    assert suite.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert [e.index for e in suite.entries] == [0, 1, 2]
    assert [e.line for e in suite.entries] == [4, 9, 16]
    assert [e.severity for e in suite.entries] == ["warn", "error", "critical"]
    assert [e.duplicates for e in suite.entries] == ["keep_first", "keep_first", "keep_none"]
    assert suite.entries[2].type == "expect_column_values_to_be_unique"
    assert suite.entries[1].kwargs == {"column": "b", "min_value": 0}


def test_misspelt_type_names_file_line_key_and_suggestion(tmp_path: Path) -> None:
    text = GOOD.replace(
        '"type": "expect_column_values_to_be_between"', '"type": "expect_column_value_to_be_betwen"'
    )
    err = _error(tmp_path, text)
    assert err.line == 10
    assert err.key == "expectations[1].type"
    assert err.found == "expect_column_value_to_be_betwen"
    assert err.allowed is not None
    assert "'expect_column_values_to_be_between'" in err.allowed
    assert "suite.json:10: expectations[1].type: unknown expectation type" in str(err)


def test_unknown_type_far_from_any_name_lists_the_registry_size(tmp_path: Path) -> None:
    err = _error(tmp_path, GOOD.replace("expect_column_values_to_not_be_null", "zzz"))
    assert err.key == "expectations[0].type"
    assert err.line == 5
    assert f"{len(registered_types())} registered" in (err.allowed or "")


def test_unknown_kwarg_points_at_the_kwarg_line(tmp_path: Path) -> None:
    err = _error(tmp_path, GOOD.replace('"min_value": 0', '"min_value": 0, "colour": 1'))
    assert err.key == "expectations[1].kwargs.colour"
    assert err.line == 13
    assert err.found == "colour"
    assert "max_value" in (err.allowed or "")


def test_misspelt_kwarg_suggests_the_right_one() -> None:
    err = _dict_error({"type": "expect_column_values_to_not_be_null", "kwargs": {"colum": "a"}})
    assert err.key == "expectations[0].kwargs.colum"
    assert "did you mean 'column'" in (err.allowed or "")


def test_missing_required_kwarg(tmp_path: Path) -> None:
    err = _error(tmp_path, GOOD.replace('"kwargs": {"column": "c"}', '"kwargs": {}'))
    assert err.key == "expectations[2].kwargs"
    assert err.line == 18
    assert "needs the argument `column`" in err.problem


def test_mistyped_kwarg_reports_gx_reason() -> None:
    err = _dict_error(
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "a", "min_value": 0, "mostly": 3},
        }
    )
    assert err.key == "expectations[0].kwargs.mostly"
    assert err.found == 3
    assert "less than or equal to 1" in (err.allowed or "")


def test_cross_field_rule_of_gx_is_enforced() -> None:
    err = _dict_error({"type": "expect_column_values_to_be_between", "kwargs": {"column": "a"}})
    assert err.key == "expectations[0].kwargs"
    assert "min_value and max_value cannot both be None" in err.problem


QUANTILES = "expect_column_quantile_values_to_be_between"


@pytest.mark.parametrize(
    ("ranges", "key", "problem"),
    [
        ({"quantiles": [0.5, 2], "value_ranges": [[0, 1], [0, 1]]}, "quantiles[1]", "0 to 1"),
        ({"quantiles": [-0.1], "value_ranges": [[0, 1]]}, "quantiles[0]", "0 to 1"),
        ({"quantiles": [None], "value_ranges": [[0, 1]]}, "quantiles[0]", "0 to 1"),
        ({"quantiles": [True], "value_ranges": [[0, 1]]}, "quantiles[0]", "0 to 1"),
        ({"quantiles": [], "value_ranges": []}, "quantiles", "at least one"),
        ({"quantiles": [0.5], "value_ranges": [[0, 1], [0, 1]]}, "value_ranges", "for each"),
        ({"quantiles": [0.5, 0.9], "value_ranges": [[0, 1]]}, "value_ranges", "for each"),
        ({"quantiles": [0.5], "value_ranges": [[1]]}, "value_ranges[0]", "[min, max]"),
        ({"quantiles": [0.5], "value_ranges": [[1, 2, 3]]}, "value_ranges[0]", "[min, max]"),
        ({"quantiles": [0.5], "value_ranges": [["a", "b"]]}, "value_ranges[0]", "[min, max]"),
        ({"quantiles": [0.5], "value_ranges": [[100, 1]]}, "value_ranges[0]", "above its max"),
        ({"quantiles": [0.5]}, "", "needs quantiles and value_ranges"),
    ],
)
def test_quantile_ranges_no_engine_can_check_are_refused(
    ranges: dict[str, Any], key: str, problem: str
) -> None:
    """GX takes these and raises on every batch (the polars engine crashed the run on some)."""
    err = _dict_error({"type": QUANTILES, "kwargs": {"column": "a", "quantile_ranges": ranges}})
    assert err.key == "expectations[0].kwargs.quantile_ranges" + (f".{key}" if key else "")
    assert problem in err.problem


def test_quantile_ranges_open_at_either_end_load() -> None:
    ranges = {"quantiles": [0.0, 0.5, 1], "value_ranges": [[None, 1], [0, None], [None, None]]}
    (entry,) = suite_from_dict(
        _suite({"type": QUANTILES, "kwargs": {"column": "a", "quantile_ranges": ranges}})
    ).entries
    assert entry.kwargs["quantile_ranges"] == ranges


@pytest.mark.parametrize(
    "type_",
    [
        "expect_select_column_values_to_be_unique_within_record",
        "expect_compound_columns_to_be_unique",
        "expect_multicolumn_sum_to_equal",
    ],
)
def test_a_column_listed_twice_is_refused(type_: str) -> None:
    kwargs: dict[str, Any] = {"column_list": ["a", "b", "a"]}
    if type_ == "expect_multicolumn_sum_to_equal":
        kwargs["sum_total"] = 1
    err = _dict_error({"type": type_, "kwargs": kwargs})
    assert err.key == "expectations[0].kwargs.column_list[2]"
    assert "'a' is listed twice" in err.problem


@pytest.mark.parametrize("key", ["result_format", "severity", "meta", "catch_exceptions"])
def test_envelope_fields_inside_kwargs_are_refused(key: str) -> None:
    entry = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a", key: None}}
    err = _dict_error(entry)
    assert err.key == f"expectations[0].kwargs.{key}"


PARAMS = partition_parameters(dt.date(2024, 1, 1), dt.date(2024, 2, 1))


@pytest.mark.parametrize(
    "value",
    [
        {"$PARAMETER": "low"},
        {"$PARAMETER": "partition_start + 1"},
        {"$PARAMETER": "now()"},
        {"$PARAMETER": "partition_start", "x": 1},
    ],
)
def test_a_suite_parameter_names_only_what_sluice_provides(value: dict[str, Any]) -> None:
    entry = {
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "a", "min_value": value},
    }
    with pytest.raises(ConfigError) as info:
        suite_from_dict(_suite(entry), parameters=PARAMS)
    err = info.value
    assert err.key == "expectations[0].kwargs.min_value"
    assert err.allowed is not None
    assert "partition_start" in err.allowed
    assert "partition_end" in err.allowed


def test_partition_parameters_are_substituted_before_any_engine() -> None:
    entry = {
        "type": "expect_column_values_to_be_between",
        "kwargs": {
            "column": "a",
            "min_value": {"$PARAMETER": "partition_start"},
            "max_value": {"$PARAMETER": "partition_end"},
            "strict_max": True,
        },
    }
    (loaded,) = suite_from_dict(_suite(entry), parameters=PARAMS).entries
    assert loaded.kwargs["min_value"] == "2024-01-01"
    assert loaded.kwargs["max_value"] == "2024-02-01"
    err = _dict_error(entry)
    assert err.key == "expectations[0].kwargs.min_value"
    assert "sluice run" in err.problem


def test_bad_severity(tmp_path: Path) -> None:
    err = _error(tmp_path, GOOD.replace('"severity": "warn"', '"severity": "fatal"'))
    assert err.key == "expectations[0].meta.severity"
    assert err.line == 7
    assert err.found == "fatal"
    assert err.allowed == "warn, error, critical"


@pytest.mark.parametrize(
    "type_",
    [
        "expect_column_values_to_not_be_null",
        "expect_select_column_values_to_be_unique_within_record",
    ],
)
def test_duplicates_only_on_uniqueness_types(type_: str) -> None:
    kwargs: dict[str, Any] = (
        {"column": "a"} if "select" not in type_ else {"column_list": ["a", "b"]}
    )
    err = _dict_error({"type": type_, "kwargs": kwargs, "meta": {"duplicates": "keep_first"}})
    assert err.key == "expectations[0].meta.duplicates"
    assert "expect_column_values_to_be_unique" in (err.allowed or "")


def test_duplicates_policy_values() -> None:
    err = _dict_error(
        {
            "type": "expect_column_values_to_be_unique",
            "kwargs": {"column": "a"},
            "meta": {"duplicates": "keep_last"},
        }
    )
    assert err.allowed == "keep_first, keep_none"
    suite = suite_from_dict(
        _suite(
            {
                "type": "expect_compound_columns_to_be_unique",
                "kwargs": {"column_list": ["a", "b"]},
                "meta": {"duplicates": "keep_none"},
            }
        )
    )
    assert suite.entries[0].duplicates == "keep_none"
    assert sorted(UNIQUENESS_TYPES) == [
        "expect_column_values_to_be_unique",
        "expect_compound_columns_to_be_unique",
    ]


def test_gx_severity_field_is_reconciled() -> None:
    base = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}}
    assert suite_from_dict(_suite({**base, "severity": "critical"})).entries[0].severity == "error"
    kept = suite_from_dict(_suite({**base, "severity": "warning", "meta": {"severity": "warn"}}))
    assert kept.entries[0].severity == "warn"
    err = _dict_error({**base, "severity": "warning"})
    assert err.key == "expectations[0].severity"
    assert "meta.severity" in (err.allowed or "")
    err = _dict_error({**base, "severity": "warn"})
    assert "critical, warning, info" in (err.allowed or "")


def test_not_json(tmp_path: Path) -> None:
    err = _error(tmp_path, '{\n  "name": "x",\n  "expectations": [,]\n}\n')
    assert err.line == 3
    assert "not valid JSON" in err.problem


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "suite.json"
    path.write_bytes(b'{"name": "\xff"}')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_suite(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_suite(tmp_path / "nope.json")


def test_expectations_not_a_list(tmp_path: Path) -> None:
    err = _error(tmp_path, '{\n  "name": "x",\n  "expectations": {"a": 1}\n}\n')
    assert err.key == "expectations"
    assert err.line == 3
    assert err.found == "dict"


def test_suite_not_an_object_and_missing_pieces() -> None:
    with pytest.raises(ConfigError, match="a suite is a JSON object"):
        suite_from_dict([])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs a name"):
        suite_from_dict({"expectations": []})
    with pytest.raises(ConfigError, match="no expectations list"):
        suite_from_dict({"name": "x"})
    with pytest.raises(ConfigError, match="suite parameters are not supported"):
        suite_from_dict({"name": "x", "expectations": [], "suite_parameters": {"p": 1}})


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    err = _error(tmp_path, GOOD.replace('"meta": {"owner": "qa"}', '"metta": {"owner": "qa"}'))
    assert err.key == "metta"
    assert err.line == 22
    err = _dict_error({"type": "expect_column_values_to_not_be_null", "kwarg": {"column": "a"}})
    assert err.key == "expectations[0].kwarg"


def test_duplicate_json_key_is_refused(tmp_path: Path) -> None:
    err = _error(tmp_path, GOOD.replace('"column": "b",', '"column": "b", "column": "a",'))
    assert err.key == "expectations[1].kwargs.column"
    assert err.line == 12


@pytest.mark.parametrize(
    ("entry", "key", "problem"),
    [
        ({"kwargs": {"column": "a"}}, "expectations[0]", "has no type"),
        ({"type": 3, "kwargs": {}}, "expectations[0].type", "must be a string"),
        (
            {
                "type": "expect_column_values_to_be_null",
                "expectation_type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "a"},
            },
            "expectations[0].expectation_type",
            "disagree",
        ),
        (
            {"type": "expect_column_values_to_be_null", "kwargs": ["a"]},
            "expectations[0].kwargs",
            "must be an object",
        ),
        (
            {"type": "expect_column_values_to_be_null", "kwargs": {"column": "a"}, "meta": 1},
            "expectations[0].meta",
            "must be an object",
        ),
        ("expect_column_values_to_be_null", "expectations[0]", "is a JSON object"),
    ],
)
def test_malformed_entries(entry: Any, key: str, problem: str) -> None:
    err = _dict_error(entry)
    assert err.key == key
    assert problem in err.problem
    assert err.line is None


def test_suite_from_dict_detaches_from_the_callers_dict() -> None:
    data = _suite({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}})
    suite = suite_from_dict(data, path="x.json")
    data["expectations"][0]["kwargs"]["column"] = "changed"
    assert suite.entries[0].kwargs == {"column": "a"}
    assert suite.path == Path("x.json")
    assert suite.sha256 != suite_from_dict(data).sha256


@pytest.mark.parametrize("type_", registered_types())
def test_every_registered_type_loads_or_names_its_kwargs(type_: str) -> None:
    """Contract over GX's registry: no type crashes the loader; bare kwargs either build or
    are refused with a ConfigError that points into kwargs."""
    error: ConfigError | None = None
    try:
        suite = suite_from_dict(_suite({"type": type_, "kwargs": {}}))
    except ConfigError as exc:
        error = exc
    if error is not None:
        assert (error.key or "").startswith("expectations[0].kwargs"), str(error)
    else:
        assert suite.entries[0].type == type_


@pytest.mark.parametrize("path", SUITES, ids=[p.name for p in SUITES])
def test_every_repository_suite_loads_with_nothing_dropped(path: Path) -> None:
    """Every suite in expectations/suites/ must load whole. If this fails, the message names the
    file, line and key: fix the entry there (a misspelt type or kwarg, a severity other than
    warn|error|critical, meta.duplicates on a non-uniqueness rule)."""
    try:
        suite = load_suite(path)
    except ConfigError as err:
        pytest.fail(f"{err}\nFix this entry in {path} so the suite loads.")
    written = json.loads(path.read_text(encoding="utf-8"))["expectations"]
    assert len(suite.entries) == len(written), f"{path}: entries were dropped while loading"
    assert [e.type for e in suite.entries] == [
        w.get("type", w.get("expectation_type")) for w in written
    ]


def test_demo_suite_is_in_the_repository() -> None:
    assert "trips.json" in [p.name for p in SUITES]


HOSTILE_CONDITIONS = [
    "a > @logging.os.system('touch PWNED')",
    "a > logging.os.system('touch PWNED')",
    "a.__class__.__mro__ > 1",
    "__import__('os').system('id') > 0",
    "(lambda: 1)() > 0",
    "`a` > 1 or `__import__`('os')",
    "a[0] > 1",
    "a + 1 > 2",
    "a > 1 if b else c",
    "a.str.contains('x')",
    "a.isin(b)",
    "a.isnull(x=1)",
    "a is None",
    "[x for x in a] == 1",
    "a > (" * 200 + "1" + ")" * 200,
    "a.isin([b])",
    "a.isin([[1]])",
    "a > 1 and 5",
    "'a' > 1",
    "a.isnull(1)",
    "a\x00 > 1",
    "a > 1" + "1" * 5000,
]


@pytest.mark.parametrize("condition", HOSTILE_CONDITIONS)
def test_a_condition_outside_sluices_grammar_is_refused_at_load(
    tmp_path: Path, condition: str
) -> None:
    entry = {
        "type": "expect_column_values_to_not_be_null",
        "kwargs": {"column": "a", "row_condition": condition, "condition_parser": "pandas"},
    }
    err = _error(tmp_path, json.dumps(_suite(entry), indent=1))
    assert err.key == "expectations[0].kwargs.row_condition"
    assert err.line is not None
    assert err.allowed is not None
    assert "isin" in err.allowed


@pytest.mark.parametrize("parser", ["great_expectations", "spark", "python", "sql", 1])
def test_an_unknown_condition_parser_is_refused(parser: object) -> None:
    err = _dict_error(
        {
            "type": "expect_column_values_to_not_be_null",
            "kwargs": {"column": "a", "row_condition": 'col("a") > 1', "condition_parser": parser},
        }
    )
    assert err.key == "expectations[0].kwargs.condition_parser"
    assert err.found == parser


@pytest.mark.parametrize(
    ("condition", "text"),
    [
        ({"type": "pass_through", "pass_through_filter": "a > 1"}, "a > 1"),
        (
            {"type": "comparison", "column": {"name": "a b"}, "operator": ">=", "parameter": 2},
            "`a b` >= 2",
        ),
        ({"type": "nullity", "column": {"name": "a"}, "is_null": True}, "`a`.isnull()"),
        (
            {
                "type": "or",
                "conditions": [
                    {
                        "type": "comparison",
                        "column": {"name": "a"},
                        "operator": "IN",
                        "parameter": ["x", "y"],
                    },
                    {"type": "nullity", "column": {"name": "b"}, "is_null": False},
                ],
            },
            "(`a` in ['x', 'y']) or (`b`.notnull())",
        ),
    ],
)
def test_gx_condition_objects_become_sluices_grammar(condition: object, text: str) -> None:
    entry = {
        "type": "expect_column_values_to_not_be_null",
        "kwargs": {"column": "a", "row_condition": condition},
    }
    (loaded,) = suite_from_dict(_suite(entry)).entries
    assert loaded.kwargs["row_condition"] == text
    assert loaded.kwargs["condition_parser"] == "pandas"


@pytest.mark.parametrize(
    "condition",
    [
        {"type": "pass_through", "pass_through_filter": "a > @os.system('id')"},
        {"type": "pass_through", "pass_through_filter": 1},
        {
            "type": "comparison",
            "column": {"name": "a`) | @x | (`"},
            "operator": "==",
            "parameter": 1,
        },
        {"type": "comparison", "column": {"name": "a"}, "operator": "~", "parameter": 1},
        {"type": "comparison", "column": {"name": "a"}, "operator": "==", "parameter": {"a": 1}},
        {"type": "and", "conditions": []},
        {"type": "python", "code": "1"},
        ["a > 1"],
    ],
)
def test_a_hostile_condition_object_is_refused(condition: object) -> None:
    err = _dict_error(
        {
            "type": "expect_column_values_to_not_be_null",
            "kwargs": {"column": "a", "row_condition": condition},
        }
    )
    assert err.key == "expectations[0].kwargs.row_condition"


def test_a_misspelt_column_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    columns = ["tip_amount", "fare_amount", "zone"]
    entries = [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "zone"}},
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "tip_amt", "min_value": 0},
        },
    ]
    path = _write(tmp_path, json.dumps(_suite(*entries), indent=1))
    with pytest.raises(ConfigError) as info:
        load_suite(path, columns=columns)
    err = info.value
    assert (err.file, err.key, err.found) == (str(path), "expectations[1].kwargs.column", "tip_amt")
    assert err.line is not None
    assert err.line > 5
    assert err.allowed is not None
    assert "did you mean 'tip_amount'" in err.allowed
    suite = load_suite(path)
    with pytest.raises(ConfigError, match="did you mean 'tip_amount'"):
        check_columns(suite, columns, "data.csv")


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"column_A": "zone", "column_B": "fare"}, "column_B"),
        ({"column_list": ["zone", "tips"]}, "column_list[1]"),
        ({"column": "zone", "row_condition": "zone > 1 and `fare amt` < 2"}, "row_condition"),
    ],
)
def test_every_column_an_entry_reads_is_checked(kwargs: dict[str, Any], key: str) -> None:
    types = {
        "column_A": "expect_column_pair_values_to_be_equal",
        "column_list": "expect_compound_columns_to_be_unique",
        "column": "expect_column_values_to_not_be_null",
    }
    entry = {"type": types[next(iter(kwargs))], "kwargs": kwargs}
    with pytest.raises(ConfigError) as info:
        suite_from_dict(_suite(entry), columns=["zone", "fare_amount"])
    assert info.value.key == f"expectations[0].kwargs.{key}"


def test_expectations_about_the_column_set_are_not_refused() -> None:
    entries = [
        {"type": "expect_column_to_exist", "kwargs": {"column": "extra"}},
        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": ["extra"]}},
        {
            "type": "expect_table_columns_to_match_ordered_list",
            "kwargs": {"column_list": ["extra"]},
        },
    ]
    assert len(suite_from_dict(_suite(*entries), columns=["zone"]).entries) == 3


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"regex": "(unclosed"}, "regex"),
        ({"regex_list": ["ok", "[z-a]"]}, "regex_list[1]"),
    ],
)
def test_a_pattern_no_engine_compiles_is_refused(kwargs: dict[str, Any], key: str) -> None:
    kind = "regex_list" if "regex_list" in kwargs else "regex"
    entry = {"type": f"expect_column_values_to_match_{kind}", "kwargs": {"column": "a", **kwargs}}
    err = _dict_error(entry)
    assert err.key == f"expectations[0].kwargs.{key}"


@pytest.mark.parametrize(
    ("schema", "key"),
    [
        ({"type": "string", "pattern": "^(a+)+$"}, "json_schema.pattern"),
        ({"$ref": "http://example.com/s.json"}, "json_schema.$ref"),
        ({"properties": {"x": {"$ref": "file:///etc/passwd"}}}, "json_schema.properties.x.$ref"),
    ],
)
def test_json_schemas_that_fetch_or_run_patterns_are_refused(
    schema: dict[str, Any], key: str
) -> None:
    err = _dict_error(
        {
            "type": "expect_column_values_to_match_json_schema",
            "kwargs": {"column": "a", "json_schema": schema},
        }
    )
    assert err.key == f"expectations[0].kwargs.{key}"
