"""The soft path: ``sluice.screen`` and ``sluice.validate`` on frames, and their agreement with
``sluice run`` on the same rows written to files."""

from __future__ import annotations

import datetime as dt
import decimal
import doctest
import importlib.metadata
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import sluice
import sluice.screening
from expectations.suite import suite_from_dict
from sluice.core.errors import ConfigError, InputError, SluiceError, ValidationFailed
from sluice.core.failures import FAILURE_SCHEMA
from sluice.core.frame import EngineChoice
from sluice.decide import quarantine_columns
from sluice.screening import FRAME_SOURCE, ScreenResult, screen, validate

SCHEMA: dict[str, Any] = {
    "id": "string",
    "amount": "float",
    "count": "int",
    "when": {"type": "datetime", "format": "%Y-%m-%d %H:%M:%S"},
    "kind": "string",
}
SUITE: dict[str, Any] = {
    "name": "trips",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}},
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "amount", "min_value": 0, "max_value": 100},
        },
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "kind", "value_set": ["a", "b"]},
            "meta": {"severity": "warn"},
        },
    ],
}
AMOUNT_SUITE: dict[str, Any] = {"name": "amount", "expectations": SUITE["expectations"][:2]}
DETECTOR: dict[str, Any] = {
    "name": "counts",
    "detector": "iforest",
    "features": ["count"],
    "severity": "error",
    "seed": 3,
}


def trips(n: int = 300, seed: int = 5) -> pl.DataFrame:
    """Rows as a file would hold them (text), with planted faults: a fare that is not a number,
    a missing fare, a fare out of range, a repeated id, a kind out of set and one huge count."""
    rng = np.random.default_rng(seed)
    amount = [f"{v:.2f}" for v in rng.uniform(1, 60, n)]
    count = [int(v) for v in rng.integers(40, 60, n)]
    ids = [f"t{i}" for i in range(n)]
    kind = ["a" if v < 0.5 else "b" for v in rng.uniform(0, 1, n)]
    amount[3], amount[7], amount[11] = "abc", None, "250"  # type: ignore[call-overload]
    ids[20] = ids[19]
    kind[30] = "z"
    count[40] = 100_000
    when = [f"2024-01-01 {i % 24:02d}:{i % 60:02d}:00" for i in range(n)]
    when[50] = "yesterday"
    return pl.DataFrame(
        {"id": ids, "amount": amount, "count": count, "when": when, "kind": kind},
        schema={
            "id": pl.String,
            "amount": pl.String,
            "count": pl.Int64,
            "when": pl.String,
            "kind": pl.String,
        },
    )


def reasons_of(result: ScreenResult) -> dict[int, list[str]]:
    """Quarantined rows' positions and reasons."""
    rows = result.quarantine.select("_source_row", "_reasons").rows()
    return {int(r): list(why) for r, why in rows}


def test_the_docstring_examples_run() -> None:
    failed, tried = doctest.testmod(sluice.screening)
    assert failed == 0
    assert tried >= 8


def test_every_planted_fault_lands_where_the_pipeline_puts_it() -> None:
    result = screen(
        trips(), SUITE, schema=SCHEMA, keys=["id"], detectors=[DETECTOR], engine="polars"
    )
    assert reasons_of(result) == {
        3: ["amount|type"],
        7: ["amount|expect_column_values_to_not_be_null"],
        11: ["amount|expect_column_values_to_be_between"],
        20: ["id|key_duplicate"],
        40: ["outlier|counts"],
        50: ["when|type"],
    }
    assert result.counts["in"] == 300
    assert result.counts["clean"] == 294
    assert result.counts["quarantine"] == 6
    assert result.counts["warnings_by_reason"] == {"kind|expect_column_values_to_be_in_set": 1}
    assert 30 in result.clean["_row_id"].to_list()  # a warning keeps its row clean
    assert result.clean.columns == ["_row_id", "_source_file", "_source_row", *SCHEMA]
    assert set(result.clean["_source_file"]) == {"<frame>"}
    assert result.clean["_source_row"].to_list() == result.clean["_row_id"].cast(pl.Int64).to_list()
    assert result.clean.schema["when"] == pl.Datetime("us")
    assert result.quarantine.columns == quarantine_columns({c: pl.String() for c in SCHEMA}), (
        "the pipeline's quarantine layout"
    )
    bad = result.quarantine.filter(pl.col("_source_row") == 3)
    assert bad["_raw"].struct.field("amount").to_list() == ["abc"]
    assert bad["amount"].to_list() == [None]
    assert set(result.quarantine["_source_file"]) == {FRAME_SOURCE}
    assert result.failures.schema == FAILURE_SCHEMA
    dup = json.loads(result.failures.filter(pl.col("rule") == "key_duplicate")["details"].item())
    assert (dup["duplicate_of"], dup["duplicate_of_row"]) == (19, 19)
    assert [v["state"] for v in result.verdicts] == ["failed", "failed", "failed"]
    assert result.detectors[0]["name"] == "counts"
    assert result.detectors[0]["fit_mode"] == "batch"
    assert result.status == "passed"  # 2% quarantined: under every default threshold
    assert result.verdict.causes == ()


def test_a_pyarrow_table_a_suite_file_and_a_loaded_suite_give_the_same_result(
    tmp_path: Path,
) -> None:
    frame = trips(60)
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(SUITE))
    base = screen(frame, SUITE, schema=SCHEMA, keys=["id"])
    for data, suite in (
        (frame.to_arrow(), SUITE),
        (frame, path),
        (frame, str(path)),
        (frame, suite_from_dict(SUITE)),
    ):
        other = screen(data, suite, schema=SCHEMA, keys=["id"])
        assert other.clean.equals(base.clean)
        assert other.quarantine.equals(base.quarantine)
        assert other.counts == base.counts


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (pd.DataFrame({"x": [1]}), "polars.from_pandas"),
        (pl.DataFrame({"x": [1]}).lazy(), ".collect()"),
        ([{"x": 1}], "builtins.list"),
    ],
)
def test_anything_but_a_frame_or_table_is_a_type_error(value: object, hint: str) -> None:
    with pytest.raises(
        TypeError, match="frame must be a polars DataFrame or a pyarrow Table"
    ) as info:
        screen(value, SUITE)
    assert hint in str(info.value)
    frame = pl.DataFrame({"amount": [1.0], "kind": ["a"]})
    with pytest.raises(TypeError, match="reference must be a polars DataFrame"):
        screen(frame, SUITE, reference=value)


# columns of types no file gives a declared column, which a frame screened with its own types
# can hold: bytes (valid UTF-8 or not), durations, bytes in a list
_ODD = {
    "bin": pl.Series([b"A", b"\xff\xfe", b"ok", None, b"A"], dtype=pl.Binary),
    "dur": pl.Series([dt.timedelta(seconds=s) for s in (0, 1, 2, 3, 0)]),
    "lbin": pl.Series([[b"\xff"], [b"a"], [], None, [b"\xff"]]),
}
_ODD_CHECKS: dict[str, Callable[[str], tuple[str, dict[str, Any]]]] = {
    "in_set": lambda c: ("expect_column_values_to_be_in_set", {"column": c, "value_set": ["A"]}),
    "regex": lambda c: ("expect_column_values_to_match_regex", {"column": c, "regex": "^A"}),
    "lengths": lambda c: (
        "expect_column_value_lengths_to_be_between",
        {"column": c, "min_value": 1, "max_value": 1},
    ),
    "json": lambda c: ("expect_column_values_to_be_json_parseable", {"column": c}),
    "pair": lambda c: ("expect_column_pair_values_to_be_equal", {"column_A": c, "column_B": "s"}),
    "compound": lambda c: ("expect_compound_columns_to_be_unique", {"column_list": [c, "s"]}),
    "unique": lambda c: ("expect_column_values_to_be_unique", {"column": c}),
}


@pytest.mark.parametrize("engine", ["auto", "gx"])
@pytest.mark.parametrize("check", sorted(_ODD_CHECKS))
@pytest.mark.parametrize("column", sorted(_ODD))
def test_a_check_on_bytes_or_durations_runs_or_could_not_run_never_crashes(
    column: str, check: str, engine: EngineChoice
) -> None:
    """Bytes that are not UTF-8 stopped GX's pattern checks (UnicodeDecodeError), and a failing
    value of bytes or of a duration could not be written as text (polars refused the cast, or
    panicked encoding a pair's value as JSON): the whole call ended in an internal error."""
    frame = pl.DataFrame({"s": ["A", "x", "y", None, "A"], column: _ODD[column]})
    kind, kwargs = _ODD_CHECKS[check](column)
    result = screen(frame, {"name": "odd", "expectations": [{"type": kind, "kwargs": kwargs}]},
                    engine=engine)  # fmt: skip
    assert result.clean.height + result.quarantine.height == frame.height
    verdict = result.verdicts[0]
    assert verdict["state"] in ("passed", "failed", "could_not_run")
    if verdict["state"] == "could_not_run":
        assert verdict["why"]
    values = result.failures.get_column("value")
    if check in ("pair", "compound"):
        assert values.null_count() == 0  # a JSON object of the row's cells
    else:
        # a failing cell has its text; only a null cell has none (row ids are positions here)
        cells = frame.get_column(column).gather(result.failures.get_column("_row_id"))
        assert values.is_null().to_list() == cells.is_null().to_list()
    if check == "pair" and verdict["state"] == "failed":
        assert all(isinstance(json.loads(v), dict) for v in values.drop_nulls())


def test_failing_bytes_and_durations_keep_their_text() -> None:
    frame = pl.DataFrame({"s": ["A", "x", "y", None, "A"], **_ODD})
    result = screen(
        frame,
        {
            "name": "odd",
            "expectations": [
                {"type": kind, "kwargs": kwargs}
                for kind, kwargs in (
                    _ODD_CHECKS["in_set"]("bin"),
                    _ODD_CHECKS["lengths"]("dur"),
                    _ODD_CHECKS["pair"]("bin"),
                )
            ],
        },
        engine="gx",
    )
    by_rule = {
        rule: result.failures.filter(pl.col("rule") == rule)["value"].to_list()
        for rule in result.failures["rule"].unique()
    }
    # bytes as UTF-8, or latin-1 when they are not (GX compares bytes with text: b"A" is not
    # "A"); a duration as Python writes it; a pair as JSON of those texts
    assert by_rule["expect_column_values_to_be_in_set"] == ["A", "\u00ff\u00fe", "ok", "A"]
    assert by_rule["expect_column_value_lengths_to_be_between"][:2] == ["0:00:00", "0:00:01"]
    pairs = [json.loads(v) for v in by_rule["expect_column_pair_values_to_be_equal"]]
    assert pairs[:2] == [{"bin": "A", "s": "A"}, {"bin": "\u00ff\u00fe", "s": "x"}]


@pytest.mark.parametrize(
    "column",
    [
        pl.Series("o", [object(), object()], dtype=pl.Object),
        pl.Series("o", [1, 2**100], dtype=pl.Int128),
        pl.Series("o", [1, 2**100], dtype=pl.UInt128),
    ],
    ids=["object", "int128", "uint128"],
)
def test_a_column_of_objects_or_128_bit_integers_needs_a_schema(column: pl.Series) -> None:
    """They have no Arrow form: GX's pandas conversion, key checks and failure values ended in
    internal errors. Declared, they are parsed as any column is."""
    frame = pl.DataFrame({"s": ["a", "b"]}).with_columns(column)
    suite = {"name": "o", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "o"}}]}  # fmt: skip
    with pytest.raises(InputError, match=r"column 'o' is .*128|column 'o' is Object"):
        screen(frame, suite)
    declared = screen(frame, suite, schema={"s": "string", "o": "string"})
    assert declared.clean.height + declared.quarantine.height == 2


def test_without_a_schema_the_frames_own_types_are_kept() -> None:
    frame = pl.DataFrame(
        {"amount": [5.0, None, 500.0, 7.5], "kind": ["a", "b", "c", "a"], "n": [1, 2, 3, 4]},
        schema={"amount": pl.Float32, "kind": pl.Categorical, "n": pl.UInt8},
    )
    result = screen(frame, SUITE)
    assert result.clean.dtypes == [
        pl.UInt64,
        pl.String,
        pl.Int64,
        pl.Float32,
        pl.Categorical(),
        pl.UInt8,
    ]
    assert reasons_of(result) == {
        1: ["amount|expect_column_values_to_not_be_null"],
        2: ["amount|expect_column_values_to_be_between", "kind|expect_column_values_to_be_in_set"],
    }
    assert result.counts["warnings_by_reason"] == {"kind|expect_column_values_to_be_in_set": 1}
    assert result.quarantine["_raw"].struct.field("amount").to_list() == [None, "500.0"]


def test_a_decimal_with_a_fraction_is_not_an_int() -> None:
    frame = pl.DataFrame({"n": [decimal.Decimal("1.5"), decimal.Decimal("2.00"), None]})
    suite = {"name": "s", "expectations": []}
    result = screen(frame, suite, schema={"n": "int"})
    assert reasons_of(result) == {0: ["n|type"]}
    assert result.quarantine["_raw"].struct.field("n").to_list() == ["1.50"]
    assert result.clean["n"].to_list() == [2, None]


def test_a_declared_column_the_frame_lacks_quarantines_every_row() -> None:
    frame = trips(60).drop("kind")
    result = screen(frame, SUITE, schema=SCHEMA)
    assert result.counts["clean"] == 0
    assert result.counts["quarantine"] == 60
    assert result.critical == ("kind|missing_column",)
    assert result.status == "failed"
    assert all("kind|missing_column" in r for r in result.quarantine["_reasons"].to_list())


def test_keep_none_quarantines_every_occurrence_and_a_suite_entry_can_own_the_keys() -> None:
    frame = pl.DataFrame({"id": ["a", "b", "a", "c"], "amount": [1.0, 2.0, 3.0, 4.0]})
    result = screen(frame, AMOUNT_SUITE, keys=["id"], duplicates="keep_none")
    assert reasons_of(result) == {0: ["id|key_duplicate"], 2: ["id|key_duplicate"]}
    unique = {
        "name": "u",
        "expectations": [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}}],
    }
    owned = screen(frame, unique, keys=["id"])
    assert reasons_of(owned) == {2: ["id|expect_column_values_to_be_unique"]}


def test_reference_rows_teach_the_detector() -> None:
    rng = np.random.default_rng(1)
    normal = pl.DataFrame({"x": rng.normal(0, 1, 2000), "id": [str(i) for i in range(2000)]})
    batch = pl.DataFrame({"x": [0.1, -0.3, 8.0, 0.2] * 5, "id": [str(i) for i in range(20)]})
    spec = {"name": "x", "detector": "knn", "features": ["x"], "severity": "error"}
    suite = {"name": "empty", "expectations": []}
    result = screen(batch, suite, detectors=[spec], reference=normal)
    assert result.detectors[0]["fit_mode"] == "reference"
    assert result.detectors[0]["n_fit"] > 100
    assert set(reasons_of(result)) == {2, 6, 10, 14, 18}
    alone = screen(batch, suite, detectors=[spec])  # the batch alone: 8.0 is a quarter of it
    assert alone.detectors[0]["fit_mode"] == "batch"
    assert alone.counts["quarantine"] == 0


def test_clean_rows_with_their_provenance_are_a_reference_but_not_a_frame() -> None:
    rng = np.random.default_rng(2)
    earlier = screen(pl.DataFrame({"x": rng.normal(0, 1, 2000)}), {"name": "e", "expectations": []})
    assert earlier.clean.columns == ["_row_id", "_source_file", "_source_row", "x"]
    batch = pl.DataFrame({"x": [0.1, -0.3, 8.0, 0.2] * 5})
    spec = {"name": "x", "detector": "knn", "features": ["x"], "severity": "error"}
    suite = {"name": "empty", "expectations": []}
    traced = screen(batch, suite, detectors=[spec], reference=earlier.clean)
    bare = screen(batch, suite, detectors=[spec], reference=earlier.clean.select("x"))
    assert traced.detectors[0]["n_fit"] == bare.detectors[0]["n_fit"] > 100
    assert reasons_of(traced) == reasons_of(bare)
    assert set(reasons_of(traced)) == {2, 6, 10, 14, 18}
    with pytest.raises(InputError, match=r"_source_file.*drop _source_file and _source_row"):
        screen(earlier.clean, suite)


def test_the_input_row_id_is_kept_and_must_identify_rows() -> None:
    frame = pl.DataFrame({"_row_id": [10, 20, 30], "amount": [1.0, None, 2.0]})
    result = screen(frame, AMOUNT_SUITE)
    assert result.clean["_row_id"].to_list() == [10, 30]
    assert result.quarantine["_row_id"].to_list() == [20]
    with pytest.raises(InputError, match="distinct non-negative integers"):
        screen(frame.with_columns(pl.lit(1).alias("_row_id")), AMOUNT_SUITE)
    with pytest.raises(InputError, match="'_reasons'"):
        screen(frame.with_columns(pl.lit("x").alias("_reasons")), AMOUNT_SUITE)
    raw = frame.with_columns(pl.lit("x").alias("_raw"))
    with pytest.raises(InputError, match="'_raw': names starting with '_' are reserved"):
        screen(raw, AMOUNT_SUITE)
    declared = screen(raw, AMOUNT_SUITE, schema={"amount": "float"})
    assert declared.quarantine["_extra"].to_list() == ['{"_raw":"x"}']


@pytest.mark.parametrize(
    ("options", "key", "found"),
    [
        ({"schema": {"amount": "decimal"}}, "schema.amount", "decimal"),
        ({"schema": {"_x": "int"}}, "schema._x", "_x"),
        ({"keys": ["nope"]}, "keys", "nope"),
        ({"detectors": [{"name": "d", "features": ["nope"]}]}, "detectors[0].features", "nope"),
        ({"detectors": [{"name": "d"}]}, "detectors[0].features", None),
        ({"engine": "spark"}, "engine", "spark"),
        ({"duplicates": "keep_last"}, "duplicates", "keep_last"),
        ({"policies": {"quarantine": {"warn": 2, "error": 3}}}, "policies.quarantine", None),
    ],
)
def test_bad_options_are_config_errors_naming_the_key(
    options: dict[str, Any], key: str, found: str | None
) -> None:
    frame = pl.DataFrame({"amount": ["1.0"], "kind": ["a"]})
    with pytest.raises(ConfigError) as info:
        screen(frame, SUITE, **options)
    assert info.value.key is not None
    assert info.value.key.startswith(key)
    if found is not None:
        assert info.value.found == found


def test_a_suite_naming_a_column_the_frame_lacks_is_refused() -> None:
    with pytest.raises(ConfigError, match="amount"):
        screen(pl.DataFrame({"x": [1]}), SUITE)
    with pytest.raises(TypeError, match="suite must be"):
        screen(pl.DataFrame({"amount": [1.0]}), 42)  # type: ignore[arg-type]


def test_validate_returns_the_clean_rows_or_raises_with_the_result() -> None:
    good = pl.DataFrame({"amount": [1.0, 2.0], "kind": ["a", "b"]})
    assert validate(good, SUITE).rows() == [
        (0, "<frame>", 0, 1.0, "a"),
        (1, "<frame>", 1, 2.0, "b"),
    ]
    bad = trips(60)
    with pytest.raises(ValidationFailed) as info:
        validate(bad, SUITE, schema=SCHEMA, keys=["id"])
    message = str(info.value)
    assert message.startswith("5 of 60 rows quarantined (")
    assert "amount|type 1" in message
    assert "id|key_duplicate 1" in message
    assert isinstance(info.value, SluiceError)
    assert info.value.exit_code == 1
    result = info.value.result
    assert isinstance(result, ScreenResult)
    assert result.counts["quarantine"] == 5


def test_validate_raises_on_a_failed_batch_check_that_marks_no_row() -> None:
    suite = {
        "name": "rows",
        "expectations": [
            {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 10}}
        ],
    }
    frame = pl.DataFrame({"x": [1, 2]})
    assert screen(frame, suite).counts["quarantine"] == 0
    with pytest.raises(ValidationFailed, match="verdict failed"):
        validate(frame, suite)


def test_the_top_level_package_is_cheap_and_versioned() -> None:
    code = (
        "import sys, sluice.core.errors; "
        "print('great_expectations' in sys.modules, 'polars' in sys.modules, "
        "'sluice.screening' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["False", "False", "False"]
    assert sluice.__version__ == importlib.metadata.version("sluice")
    assert set(sluice.__all__) <= set(dir(sluice))
    assert sluice.screen is screen
    assert sluice.ValidationFailed is ValidationFailed
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = sluice.nope
    assert (Path(sluice.__file__).parent / "py.typed").is_file()


_TEXT = st.sampled_from(["1", "2", " 3", "-4", "x", "", "2.5", "1e3", None])
_SUITE_ENTRIES = [
    {
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "a", "min_value": 0, "max_value": 2},
    },
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "b"}},
    {
        "type": "expect_column_values_to_be_in_set",
        "kwargs": {"column": "c", "value_set": ["1", "2"]},
        "meta": {"severity": "warn"},
    },
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "c"}},
]


@st.composite
def frames(draw: st.DrawFn) -> pl.DataFrame:
    """Frames of text and numbers, nulls included, 0 to 40 rows."""
    n = draw(st.integers(0, 40))
    return pl.DataFrame(
        {
            "a": draw(st.lists(_TEXT, min_size=n, max_size=n)),
            "b": draw(st.lists(st.one_of(st.none(), st.floats()), min_size=n, max_size=n)),
            "c": draw(st.lists(_TEXT, min_size=n, max_size=n)),
        },
        schema={"a": pl.String, "b": pl.Float64, "c": pl.String},
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    frame=frames(),
    typed=st.booleans(),
    picked=st.lists(st.sampled_from(range(len(_SUITE_ENTRIES))), max_size=4, unique=True),
    keys=st.sampled_from([None, ["c"], ["a", "c"]]),
    arrow=st.booleans(),
)
@example(
    frame=pl.DataFrame({"a": ["x"], "b": pl.Series([None], dtype=pl.Float64), "c": ["1"]}),
    typed=True,
    picked=[0, 1],
    keys=["c"],
    arrow=False,
)
def test_every_row_is_in_exactly_one_of_clean_and_quarantine(
    frame: pl.DataFrame,
    typed: bool,
    picked: list[int],
    keys: list[str] | None,
    arrow: bool,
) -> None:
    suite = {"name": "random", "expectations": [_SUITE_ENTRIES[i] for i in picked]}
    schema = {"a": "int", "b": "float", "c": "string"} if typed else None
    data: pl.DataFrame | pa.Table = frame.to_arrow() if arrow else frame
    result = screen(data, suite, schema=schema, keys=keys, engine="polars")
    clean = result.clean["_row_id"].to_list()
    held = result.quarantine["_row_id"].to_list()
    assert sorted(clean + held) == list(range(frame.height))
    assert result.counts["in"] == frame.height
    assert result.counts["clean"] + result.counts["quarantine"] == frame.height
    quarantining = result.failures.filter(pl.col("severity").is_in(["error", "critical"]))
    assert set(held) == set(quarantining["_row_id"].to_list())
    assert all(len(r) >= 1 for r in result.quarantine["_reasons"].to_list())


def _run_cli(spec: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("sluice"))
    return subprocess.run(
        [exe, "run", str(spec), "--partition", "2024-01-01"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _write_dataset(root: Path, fmt: str, frame: pl.DataFrame) -> Path:
    folder = root / "raw" / "date=2024-01-01"
    folder.mkdir(parents=True)
    if fmt == "csv":
        frame.write_csv(folder / "data.csv")
    else:
        frame.write_parquet(folder / "data.parquet")
    (root / "suite.json").write_text(json.dumps(SUITE))
    spec = {
        "name": "trips",
        "source": {"path": f"raw/date={{date}}/*.{fmt}", "format": fmt},
        "schema": SCHEMA,
        "keys": ["id"],
        "suite": "suite.json",
        "detectors": [DETECTOR],
        "outputs": {side: f"out/{side}" for side in ("clean", "quarantine", "reports")},
    }
    path = root / "trips.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _comparable(clean: pl.DataFrame, quarantine: pl.DataFrame) -> tuple[Any, ...]:
    """The data of both sides without row ids and file names: data columns, positions (clean
    rows keep theirs too), reasons, raw text and each failure's reason, severity and value."""
    failures = pl.col("_failures").list.eval(
        pl.element().struct.field("reason")
        + "="
        + pl.element().struct.field("severity")
        + ":"
        + pl.element().struct.field("value").fill_null("<null>")
    )
    return (
        clean.drop("_row_id", "_source_file").rows(),
        quarantine.select(
            "_source_row", *SCHEMA, "_raw", "_extra", "_reasons", failures.alias("f")
        ).rows(),
    )


@pytest.mark.e2e
def test_screen_agrees_with_sluice_run_on_csv_and_parquet(
    prefect_api: None, tmp_path: Path
) -> None:
    import prefect.settings

    frame = trips()
    result = screen(frame, SUITE, schema=SCHEMA, keys=["id"], detectors=[DETECTOR])
    expected = _comparable(result.clean, result.quarantine)
    assert len(expected[1]) == 6
    env = {
        **os.environ,
        "PREFECT_API_URL": str(prefect.settings.PREFECT_API_URL.value()),
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    for fmt in ("csv", "parquet"):
        spec = _write_dataset(tmp_path / fmt, fmt, frame)
        out = _run_cli(spec, env)
        assert out.returncode == 0, out.stderr
        manifest = json.loads(
            (tmp_path / fmt / "out/reports/date=2024-01-01/manifest.json").read_text()
        )
        clean = pl.read_parquet(manifest["outputs"]["clean"]["path"])
        assert clean.columns[:3] == ["_row_id", "_source_file", "_source_row"], fmt
        assert {Path(f).name for f in clean["_source_file"]} == {f"data.{fmt}"}, fmt
        quarantine = pl.read_parquet(manifest["outputs"]["quarantine"]["path"])
        assert _comparable(clean, quarantine) == expected, fmt
        assert manifest["counts"] == result.counts, fmt
        assert manifest["status"] == result.status, fmt
        assert [
            {k: v for k, v in m.items() if k in ("state", "reason", "failing_rows")}
            for m in manifest["validation"]["verdicts"]
        ] == [
            {k: v for k, v in m.items() if k in ("state", "reason", "failing_rows")}
            for m in result.verdicts
        ], fmt


def test_a_detector_with_too_few_rows_warns_the_verdict() -> None:
    frame = pl.DataFrame({"amount": [1.0, 2.0, 3.0, 4.0], "n": [1, 2, 3, 4]})
    result = screen(
        frame,
        {"name": "s", "expectations": []},
        detectors=[{"name": "ecod", "features": ["amount", "n"]}],
    )
    (record,) = result.detectors
    assert record["skipped"] is True
    assert result.verdict.status == "warned"
    (cause,) = result.verdict.causes
    assert (cause.kind, cause.name) == ("could_not_run", "outlier|ecod")
    assert "the 4 rows that passed validation were not screened by it" in cause.message
