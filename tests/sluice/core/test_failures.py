"""The failures table: one rule's rows, the same text repeated held once."""

from __future__ import annotations

import polars as pl
from polars.testing import assert_frame_equal

from sluice.core.failures import FAILURE_SCHEMA, make_failures


def test_one_rules_rows_carry_its_names_details_and_values() -> None:
    details = '{"partition":"' + "x" * 200 + '"}'
    got = make_failures(range(5), column="amount", rule="type", severity="error", details=details)
    expected = pl.DataFrame(
        {
            "_row_id": list(range(5)),
            "column": ["amount"] * 5,
            "rule": ["type"] * 5,
            "reason": ["amount|type"] * 5,
            "severity": ["error"] * 5,
            "value": [None] * 5,
            "details": [details] * 5,
        },
        schema=FAILURE_SCHEMA,
    )
    assert_frame_equal(got, expected)
    # the repeated text survives what the pipeline does to failures: filter, gather, concat
    kept = pl.concat([got.filter(pl.col("_row_id") > 2), got.head(1)])
    assert kept["details"].to_list() == [details] * 3
    per_row = make_failures(
        [7, 8], column="c", rule="r", severity="warn", values=["a", None], details=["d", None]
    )
    assert per_row["value"].to_list() == ["a", None]
    assert per_row["details"].to_list() == ["d", None]
    assert make_failures([], column="c", rule="r", severity="warn").schema == FAILURE_SCHEMA
