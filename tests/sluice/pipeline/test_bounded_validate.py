"""The bounded validate stage against the in-memory one: same verdicts, failures and facts.

Every case runs :func:`sluice.screening.check_rows` on the whole frame and
:func:`sluice.pipeline.bounded_validate.check_partition` on the same frame written as
``frame.parquet``, in batches of 1, 7 and 1000 rows, and compares everything the stage keeps.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from polars.testing import assert_frame_equal

from expectations.polars_engine import SUPPORTED_TYPES, supports
from expectations.results import ExpectationEntry, Suite
from expectations.sluice_types import is_sluice_type
from expectations.suite import suite_from_dict
from sluice.core.errors import ConfigError
from sluice.core.failures import concat_failures, make_failures
from sluice.core.frame import MALFORMED, ROW_ID, SOURCE_FILE, SOURCE_ROW, EngineChoice
from sluice.pipeline.bounded_validate import check_partition
from sluice.screening import check_rows
from sluice.write import OutputError, write_parquet
from tests.expectations.test_differential_support import cases, families

BATCHES = (1, 7, 1000)
GX_TYPES = [t for t in SUPPORTED_TYPES if not is_sluice_type(t)]
FAMILIES = sorted(families(GX_TYPES))


def _with_provenance(data: pl.DataFrame, files: int = 2) -> pl.DataFrame:
    n = data.height
    per = max(1, math.ceil(n / files))
    return pl.DataFrame(
        {
            ROW_ID: pl.Series(range(n), dtype=pl.UInt64),
            SOURCE_FILE: [f"part-{i // per}.csv" for i in range(n)],
            SOURCE_ROW: pl.Series([i % per for i in range(n)], dtype=pl.Int64),
        }
    ).hstack(data)


def _canonical(verdicts: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(verdicts), sort_keys=True, default=repr)


def compare(
    tmp: Path,
    data: pl.DataFrame,
    suite: Suite,
    *,
    keys: Sequence[str] = (),
    duplicates: str = "keep_first",
    parse_failures: pl.DataFrame | None = None,
    engine: EngineChoice = "auto",
    batches: Sequence[int] = BATCHES,
) -> int:
    """Check both paths agree on ``data``; the number of failures they found."""
    frame = _with_provenance(data)
    parse = parse_failures if parse_failures is not None else concat_failures([])
    whole = check_rows(frame, parse, suite, engine=engine, keys=keys, duplicates=duplicates)
    tmp.mkdir(parents=True, exist_ok=True)
    write_parquet(frame, tmp / "frame.parquet")
    write_parquet(parse, tmp / "ingest_failures.parquet")
    for size in batches:
        out = tmp / f"validation_failures_{size}.parquet"
        got = check_partition(
            tmp / "frame.parquet",
            tmp / "ingest_failures.parquet",
            suite,
            out,
            engine=engine,
            keys=keys,
            duplicates=duplicates,
            rows_per_batch=size,
            spill_dir=tmp / "spill",
        )
        assert _canonical(got.verdicts) == _canonical(whole.verdicts), f"batch {size}"
        assert_frame_equal(pl.read_parquet(out), whole.failures)
        assert got.failures == whole.failures.height
        assert got.critical_failed == whole.critical_failed
        assert got.keys == whole.keys
        assert not (tmp / "spill").exists()
        groups = pq.ParquetFile(out).metadata
        assert all(groups.row_group(g).num_rows <= size for g in range(groups.num_row_groups))
    return whole.failures.height


def _suite(entries: Sequence[ExpectationEntry]) -> Suite:
    return Suite(name="t", path=None, sha256="", entries=tuple(entries))


@pytest.mark.parametrize("type_", FAMILIES)
def test_every_polars_type_matches_the_whole_frame(type_: str, tmp_path: Path) -> None:
    runs = [0]

    @settings(
        max_examples=4,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases(type_, 6))
    def check(case: tuple[pl.DataFrame, list[ExpectationEntry]]) -> None:
        data, generated = case
        entries = [e for e in generated if supports(e, data)]
        if not entries:
            return
        runs[0] += 1
        compare(tmp_path / f"c{runs[0]}", data, _suite(entries), engine="polars")

    check()
    assert runs[0] > 0


HOSTILE = pl.DataFrame(
    {
        "id": [
            "a",
            "b",
            "a",
            "ç",
            None,
            "b",
            "d",
            "é",
            "a",
            "f",
            "ç",
            "b",
            "z",
            "\u0000",
            "\u0000",
        ],
        "x": [1.0, -0.0, 0.0, math.nan, None, 3.0, math.inf, 5.0, 1.0, 2.0, 3.0, 1.0, -1.0, 7, 7],
        "n": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
        "empty": pl.Series([None] * 15, dtype=pl.String),
        "city": [
            "Paris",
            "paris",
            "Paris",
            "Lyon",
            "Lyon",
            "Lyön",
            "Paris",
            None,
            "Lyon",
            "Lyon",
            "Paris",
            "Paris",
            "Nice",
            "Nice",
            "Nice",
        ],
        "zip": [
            "75",
            "75",
            "75",
            "69",
            "69",
            "69",
            "75",
            "13",
            "69",
            "69",
            "75",
            "75",
            "06",
            "06",
            "06",
        ],
    }
)
HOSTILE_SUITE: dict[str, Any] = {
    "name": "hostile",
    "expectations": [
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
        {
            "type": "expect_column_values_to_be_unique",
            "kwargs": {"column": "x"},
            "meta": {"duplicates": "keep_none"},
        },
        {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["id", "zip"]}},
        {
            "type": "expect_column_values_to_be_unique",
            "kwargs": {"column": "city", "row_condition": "n > 4"},
        },
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "x", "min_value": 0, "max_value": 4, "mostly": 0.6},
        },
        {
            "type": "expect_column_values_to_not_be_null",
            "kwargs": {"column": "empty"},
            "meta": {"severity": "warn"},
        },
        {
            "type": "expect_column_values_to_match_regex",
            "kwargs": {"column": "id", "regex": "^[a-z]$", "row_condition": "n < 10"},
        },
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "city", "value_set": ["Paris", "Lyon"]},
        },
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "x", "max_value": 1}},
        {"type": "expect_column_stdev_to_be_between", "kwargs": {"column": "n", "min_value": 1}},
        {
            "type": "expect_column_median_to_be_between",
            "kwargs": {"column": "n", "min_value": 7, "max_value": 9},
        },
        {
            "type": "expect_column_unique_value_count_to_be_between",
            "kwargs": {"column": "city", "min_value": 3},
        },
        {
            "type": "expect_column_most_common_value_to_be_in_set",
            "kwargs": {"column": "city", "value_set": ["Paris"]},
        },
        {"type": "expect_column_values_to_be_increasing", "kwargs": {"column": "n"}},
        {
            "type": "expect_column_value_z_scores_to_be_less_than",
            "kwargs": {"column": "n", "threshold": 1.5, "double_sided": True},
        },
        {
            "type": "expect_table_row_count_to_be_between",
            "kwargs": {"min_value": 20},
            "meta": {"severity": "critical"},
        },
        {
            "type": "expect_table_row_count_to_equal",
            "kwargs": {"value": 6, "row_condition": "n > 9"},
        },
        {
            "type": "expect_table_columns_to_match_set",
            "kwargs": {"column_set": ["id", "x", "n", "empty", "city", "zip"]},
        },
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "id", "min_value": 0}},
        {
            "type": "sluice.expect_column_values_to_follow_majority_by",
            "kwargs": {"column": "city", "by": ["zip"]},
        },
        {
            "type": "sluice.expect_column_values_to_not_be_rare_variants",
            "kwargs": {"column": "city", "min_frequent_count": 3},
        },
        {
            "type": "sluice.expect_compound_columns_to_be_unique_after_normalising",
            "kwargs": {"column_list": ["city", "zip"], "transform": "casefold"},
        },
        {
            "type": "sluice.expect_rows_to_not_be_near_duplicates",
            "kwargs": {"block_on": ["zip"], "compare": ["city"], "threshold": 0.8},
        },
    ],
}
COLUMNS = list(HOSTILE.columns)


def _hostile_suite() -> Suite:
    return suite_from_dict(HOSTILE_SUITE, columns=COLUMNS)


@pytest.mark.parametrize("duplicates", ["keep_first", "keep_none"])
def test_hostile_frame_with_keys_matches(duplicates: str, tmp_path: Path) -> None:
    found = compare(
        tmp_path, HOSTILE, _hostile_suite(), keys=["city", "zip"], duplicates=duplicates
    )
    assert found > 20


def test_duplicates_across_batches_carry_the_first_occurrence(tmp_path: Path) -> None:
    data = pl.DataFrame({"id": [f"k{i % 9}" for i in range(60)], "v": list(range(60))})
    suite = suite_from_dict(
        {
            "name": "d",
            "expectations": [
                {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}}
            ],
        },
        columns=["id", "v"],
    )
    compare(tmp_path, data, suite, keys=["id"])
    failures = pl.read_parquet(tmp_path / "validation_failures_7.parquet")
    later = failures.filter(pl.col("rule") == "expect_column_values_to_be_unique")
    assert later.height == 60 - 9
    details = json.loads(later.filter(pl.col(ROW_ID) == 52)["details"][0])
    assert (details["duplicate_of"], details["duplicate_of_row"]) == (7, 7)
    assert details["group_size"] == 6


def test_parse_failures_shadow_rule_failures(tmp_path: Path) -> None:
    data = pl.DataFrame({"id": ["a", "b", None, "d", "e"], "x": [1.0, None, 3.0, 99.0, None]})
    parse = concat_failures(
        [
            make_failures([1], column="x", rule="type", severity="error", values=["oops"]),
            make_failures([4], column=MALFORMED, rule="malformed", severity="error"),
        ]
    )
    suite = suite_from_dict(
        {
            "name": "p",
            "expectations": [
                {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x"}},
                {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
            ],
        },
        columns=["id", "x"],
    )
    found = compare(tmp_path, data, suite, parse_failures=parse)
    assert found == 1


@pytest.mark.parametrize("rows", [0, 1])
def test_empty_and_single_row_partitions(rows: int, tmp_path: Path) -> None:
    compare(tmp_path, HOSTILE.head(rows), _hostile_suite(), keys=["id"])


def test_gx_fallback_entries_run_on_their_columns(tmp_path: Path) -> None:
    suite = suite_from_dict(
        {
            "name": "g",
            "expectations": [
                {
                    "type": "expect_column_kl_divergence_to_be_less_than",
                    "kwargs": {
                        "column": "n",
                        "partition_object": {"bins": [0, 5, 100], "weights": [0.5, 0.5]},
                        "threshold": 0.1,
                    },
                },
                {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
            ],
        },
        columns=COLUMNS,
    )
    compare(tmp_path, HOSTILE, suite, batches=(4,))


def test_table_level_entries_gx_runs_are_refused(tmp_path: Path) -> None:
    suite = suite_from_dict(
        {
            "name": "r",
            "expectations": [
                {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}
            ],
        },
        columns=COLUMNS,
    )
    frame = _with_provenance(HOSTILE)
    write_parquet(frame, tmp_path / "frame.parquet")
    write_parquet(concat_failures([]), tmp_path / "ingest_failures.parquet")
    with pytest.raises(ConfigError, match=r"expect_table_row_count_to_be_between.*bounded"):
        check_partition(
            tmp_path / "frame.parquet",
            tmp_path / "ingest_failures.parquet",
            suite,
            tmp_path / "out.parquet",
            engine="gx",
            rows_per_batch=7,
            spill_dir=tmp_path / "spill",
        )


def test_a_spill_folder_that_cannot_be_made_is_an_output_error(tmp_path: Path) -> None:
    frame = _with_provenance(HOSTILE)
    write_parquet(frame, tmp_path / "frame.parquet")
    write_parquet(concat_failures([]), tmp_path / "ingest_failures.parquet")
    (tmp_path / "blocked").write_text("a file where the spill folder's parent should be")
    with pytest.raises(OutputError, match=r"cannot write .*blocked/spill"):
        check_partition(
            tmp_path / "frame.parquet",
            tmp_path / "ingest_failures.parquet",
            _hostile_suite(),
            tmp_path / "out.parquet",
            keys=["id"],
            rows_per_batch=7,
            spill_dir=tmp_path / "blocked" / "spill",
        )
    assert not (tmp_path / "out.parquet").exists()
