"""The long failures table every stage produces: one row per (row, reason).

A reason is the stable machine name ``column|rule``: ``fare_amount|type``,
``fare_amount|expect_column_values_to_be_between``, ``outlier|iforest``. Batch-level rules use the
column ``_table``; rules over several columns join the column names with ``,``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import polars as pl

Severity = Literal["warn", "error", "critical"]
SEVERITIES: tuple[Severity, ...] = ("warn", "error", "critical")
TABLE_COLUMN = "_table"

FAILURE_SCHEMA: pl.Schema = pl.Schema(
    {
        "_row_id": pl.UInt64(),
        "column": pl.String(),
        "rule": pl.String(),
        "reason": pl.String(),
        "severity": pl.String(),
        "value": pl.String(),
        "details": pl.String(),
    }
)


def reason(column: str, rule: str) -> str:
    """The stable machine name of a failure."""
    return f"{column}|{rule}"


def empty_failures() -> pl.DataFrame:
    """A failures table with no rows."""
    return pl.DataFrame(schema=FAILURE_SCHEMA)


def details_json(details: Mapping[str, Any] | None) -> str | None:
    """Serialise a failure's details deterministically (sorted keys, no spaces)."""
    if not details:
        return None
    return json.dumps(details, sort_keys=True, separators=(",", ":"), default=str)


def make_failures(
    row_ids: Iterable[int] | pl.Series,
    *,
    column: str,
    rule: str,
    severity: Severity,
    values: Iterable[str | None] | pl.Series | None = None,
    details: Iterable[str | None] | pl.Series | str | None = None,
) -> pl.DataFrame:
    """Build failure rows for one rule; ``values`` and ``details`` align with ``row_ids``.

    A text the same on every row is held once (``pl.repeat``: every row's view points at one
    copy): a rule failing millions of rows, each with the same details, would otherwise hold
    its text millions of times."""
    ids = pl.Series("_row_id", row_ids, dtype=pl.UInt64)
    n = len(ids)

    def same(name: str, text: str | None) -> pl.Series:
        return pl.repeat(text, n, dtype=pl.String, eager=True).alias(name)

    vals = same("value", None) if values is None else pl.Series("value", values, dtype=pl.String)
    if details is None or isinstance(details, str):
        dets = same("details", details)
    else:
        dets = pl.Series("details", details, dtype=pl.String)
    return pl.DataFrame(
        {
            "_row_id": ids,
            "column": same("column", column),
            "rule": same("rule", rule),
            "reason": same("reason", reason(column, rule)),
            "severity": same("severity", severity),
            "value": vals,
            "details": dets,
        },
        schema=FAILURE_SCHEMA,
    )


def concat_failures(parts: Iterable[pl.DataFrame]) -> pl.DataFrame:
    """Concatenate failure tables, keeping the schema when there are none."""
    frames = [p.select(list(FAILURE_SCHEMA)).cast(FAILURE_SCHEMA) for p in parts]
    return pl.concat(frames, how="vertical") if frames else empty_failures()
