"""Loading sluice's own types strictly, and refusing them on GX, in code and through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from expectations.engine import validate
from expectations.sluice_types import SLUICE_TYPES
from expectations.suite import load_suite, suite_from_dict
from sluice.core.errors import ConfigError

FD = "sluice.expect_column_values_to_follow_majority_by"
NEAR = "sluice.expect_rows_to_not_be_near_duplicates"
NORM = "sluice.expect_compound_columns_to_be_unique_after_normalising"
GOOD: dict[str, dict[str, Any]] = {
    FD: {"column": "state", "by": ["zip"], "min_group_size": 3, "min_majority": 0.5},
    "sluice.expect_column_values_to_not_be_rare_variants": {
        "column": "city",
        "max_count": 2,
        "min_frequent_count": 10,
        "max_distance": 2,
        "max_relative_distance": 0.25,
    },
    NORM: {"column_list": ["phone"], "transform": ["digits"]},
    NEAR: {"block_on": ["zip"], "compare": ["city"], "threshold": 0.9, "max_block_size": 1000},
}
COLUMNS = ["zip", "state", "city", "phone"]


def suite_of(type_: str, kwargs: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {"name": "s", "expectations": [{"type": type_, "kwargs": kwargs, "meta": meta}]}


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def test_every_sluice_type_loads_with_the_kwargs_of_the_contract() -> None:
    assert set(GOOD) == set(SLUICE_TYPES)
    for type_, kwargs in GOOD.items():
        suite = suite_from_dict(suite_of(type_, kwargs, severity="warn"), columns=COLUMNS)
        (entry,) = suite.entries
        assert entry.type == type_
        assert entry.severity == "warn"


@pytest.mark.parametrize(
    ("type_", "kwargs", "key", "words"),
    [
        ("sluice.expect_column_values_to_follow_majority", {}, "type", FD),
        (
            FD,
            {"column": "state", "by": ["zip"], "min_groupsize": 3},
            "min_groupsize",
            "min_group_size",
        ),
        (FD, {"column": "state", "by": ["zip"], "min_majority": "0.5"}, "min_majority", "number"),
        (FD, {"column": "state", "by": ["zip"], "min_majority": 1.5}, "min_majority", "less than"),
        (FD, {"column": "state"}, "kwargs", "`by`"),
        (FD, {"column": "state", "by": ["state"]}, "kwargs", "determines itself"),
        (NORM, {"column_list": ["phone"], "transform": "soundex"}, "transform", "digits"),
        (NEAR, {"block_on": ["zip"], "compare": ["zip"]}, "kwargs", "both block_on and compare"),
        (
            NEAR,
            {"block_on": ["zip"], "compare": ["city"], "max_block_size": True},
            "max_block_size",
            "integer",
        ),
        (FD, {"column": "state", "by": ["zipp"]}, "by[0]", "did you mean 'zip'"),
        (
            FD,
            {"column": "state", "by": ["zip"], "result_format": "COMPLETE"},
            "result_format",
            "runner",
        ),
    ],
)
def test_a_bad_entry_stops_the_load_naming_file_line_and_key(
    tmp_path: Path, type_: str, kwargs: dict[str, Any], key: str, words: str
) -> None:
    path = write(tmp_path, suite_of(type_, kwargs))
    with pytest.raises(ConfigError) as info:
        load_suite(path, columns=COLUMNS)
    text = str(info.value)
    assert str(path) in text
    assert info.value.line is not None
    assert info.value.key is not None
    assert key in info.value.key
    assert words in text


def test_meta_duplicates_is_refused_on_a_sluice_type() -> None:
    data = suite_of(NORM, GOOD[NORM], duplicates="keep_none")
    with pytest.raises(ConfigError, match=r"meta\.duplicates"):
        suite_from_dict(data, columns=COLUMNS)


FRAME = pl.DataFrame(
    {
        "zip": ["1", "1", "1", "1"],
        "state": ["AL", "AL", "AL", "AK"],
        "city": ["b"] * 4,
        "phone": ["1"] * 4,
    }
)


def test_the_gx_engine_refuses_a_sluice_type_naming_it_and_the_polars_engine() -> None:
    suite = suite_from_dict(suite_of(FD, GOOD[FD]), "suite.json", columns=COLUMNS)
    with pytest.raises(ConfigError) as info:
        validate(FRAME, suite, engine="gx")
    assert FD in str(info.value)
    assert "polars engine runs it" in str(info.value)
    assert info.value.key == "expectations[0].type"
    (auto,) = validate(FRAME, suite, engine="auto")
    assert auto.engine == "polars"
    assert auto.unexpected_rows is not None
    assert auto.unexpected_rows.tolist() == [3]


def sluice(*args: str) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("sluice"))
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=300, check=False)


def test_cli_validate_runs_sluice_types_and_refuses_them_on_gx(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text(
        "zip,state,city,phone\n"
        + "".join(f"1,AL,birmingham,555-000{i}\n" for i in range(9))
        + "1,AK,birminghxm,(555) 0000\n"
    )
    entries = [{"type": t, "kwargs": k} for t, k in GOOD.items()]
    suite = write(tmp_path, {"name": "s", "expectations": entries})
    failures = tmp_path / "failures.parquet"
    out = sluice("validate", str(data), "--suite", str(suite), "--failures", str(failures))
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    table = pl.read_parquet(failures)
    reasons = set(table.get_column("reason").to_list())
    assert f"state|{FD}" in reasons
    assert f"phone|{NORM}" in reasons
    gx = sluice("validate", str(data), "--suite", str(suite), "--engine", "gx")
    assert gx.returncode == 2
    assert "Traceback" not in gx.stderr
    assert FD in gx.stderr
    assert "polars engine" in gx.stderr


def test_the_hospital_hand_suite_of_the_benchmark_loads() -> None:
    path = Path(__file__).resolve().parents[2] / "bench" / "suites" / "hospital_hand.json"
    suite = load_suite(path)
    types = {e.type for e in suite.entries}
    assert len(suite.entries) == 27
    assert types & set(SLUICE_TYPES)
