"""Turn expectation outcomes (from either engine) into the failures table and per-entry verdicts.

Row-level outcomes name failing rows by position; each becomes one failure row with the reason
``column|rule``, the entry's severity and the failing value as text. Uniqueness rules apply the
entry's duplicate policy (``keep_first``: the first occurrence by position passes and every later
one fails with ``duplicate_of``; ``keep_none``: every occurrence fails). Batch-level outcomes and
checks that could not run mark no rows; they live in the verdicts, and a failed ``critical`` entry
sets ``critical_failed``.

Every row an engine names becomes a failure row, also when ``mostly`` lets the entry's verdict
pass: ``mostly`` decides the verdict, severity decides whether the row is quarantined
(``warn`` only annotates).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from polars.datatypes import DataTypeClass

from expectations.results import ExpectationEntry, ExpectationOutcome
from expectations.suite import UNIQUENESS_TYPES
from sluice.core.failures import concat_failures, details_json, make_failures, reason
from sluice.core.frame import ROW_ID
from sluice.core.text import column_text
from sluice.core.values import json_safe

QUARANTINING_SEVERITIES: tuple[str, ...] = ("error", "critical")


@dataclass(frozen=True)
class ValidationResult:
    """What validating one frame gave: failing rows, one verdict per entry, and the stop flag.

    ``failures`` has the schema ``sluice.core.failures.FAILURE_SCHEMA``.
    """

    failures: pl.DataFrame
    verdicts: list[dict[str, Any]]
    critical_failed: bool


def failures_from_outcomes(
    frame: pl.DataFrame, outcomes: Sequence[ExpectationOutcome]
) -> ValidationResult:
    """Build the failures table and verdicts from outcomes on ``frame``.

    ``frame`` holds ``_row_id`` and the data columns, rows in the order the engines saw them, so
    an outcome's row positions index it directly. Verdicts come in suite order (by entry index).
    """
    if ROW_ID not in frame.columns:
        raise ValueError(f"the frame has no {ROW_ID} column")
    ordered = sorted(outcomes, key=lambda o: o.entry.index)
    indices = [o.entry.index for o in ordered]
    if len(set(indices)) != len(indices):
        raise ValueError(f"more than one outcome for the same entry: {indices}")
    parts: list[pl.DataFrame] = []
    verdicts: list[dict[str, Any]] = []
    critical_failed = False
    for outcome in ordered:
        entry = outcome.entry
        marked = 0
        if (
            outcome.exception is None
            and outcome.unexpected_rows is not None
            and len(outcome.unexpected_rows)
        ):
            part = _row_failures(frame, outcome)
            marked = part.height
            parts.append(part)
        verdict = entry_verdict(outcome, marked)
        if entry.severity == "critical" and not verdict["success"]:
            critical_failed = True
        verdicts.append(verdict)
    return ValidationResult(
        failures=concat_failures(parts), verdicts=verdicts, critical_failed=critical_failed
    )


def entry_verdict(outcome: ExpectationOutcome, marked: int) -> dict[str, Any]:
    """One entry's verdict as the validate stage records it; ``marked`` is the number of
    failure rows its outcome gave."""
    entry = outcome.entry
    success = outcome.success and outcome.exception is None
    note: str | None = None
    if outcome.exception is not None:
        note = "the check could not run, so it fails and marks no rows"
    elif outcome.unexpected_rows is None and not success:
        note = "batch-level check: it marks no rows"
    return {
        "index": entry.index,
        "type": entry.type,
        "kwargs": json_safe(entry.kwargs),
        "severity": entry.severity,
        "success": success,
        "unexpected_count": outcome.unexpected_count,
        "observed_value": json_safe(outcome.observed_value),
        "engine": outcome.engine,
        "exception": outcome.exception,
        "reason": reason(entry.failure_column, entry.type),
        "failing_rows": marked,
        "note": note,
        **verdict_state(outcome),
    }


def verdict_state(outcome: ExpectationOutcome) -> dict[str, str]:
    """``{"state": "passed" | "failed"}``, or ``could_not_run`` with ``why`` (one line)."""
    if outcome.exception is not None:
        lines = outcome.exception.strip().splitlines()
        return {"state": "could_not_run", "why": lines[0] if lines else "the check raised"}
    return {"state": "passed" if outcome.success else "failed"}


def quarantining(failures: pl.DataFrame) -> pl.DataFrame:
    """The failures that send their row to quarantine (severity error or critical)."""
    return failures.filter(pl.col("severity").is_in(QUARANTINING_SEVERITIES))


def _row_failures(frame: pl.DataFrame, outcome: ExpectationOutcome) -> pl.DataFrame:
    entry = outcome.entry
    rows = outcome.unexpected_rows
    assert rows is not None
    positions = np.unique(np.asarray(rows, dtype=np.int64))
    if positions[0] < 0 or positions[-1] >= frame.height:
        raise ValueError(
            f"{entry.type} (expectation {entry.index}) names row positions outside the frame "
            f"of {frame.height} rows"
        )
    cols = [c for c in dict.fromkeys(entry.columns) if c in frame.columns]
    sub = frame.select(ROW_ID, *cols)[pl.Series(positions)]
    values = _values(sub, cols) if cols else None
    if outcome.row_details is not None:
        return _detailed_failures(frame, sub, outcome, values)
    if entry.type in UNIQUENESS_TYPES and values is not None:
        return _duplicate_failures(sub, cols, entry, values)
    return make_failures(
        sub.get_column(ROW_ID),
        column=entry.failure_column,
        rule=entry.type,
        severity=entry.severity,
        values=values,
        details=details_json({"expectation_index": entry.index}),
    )


def _detailed_failures(
    frame: pl.DataFrame,
    sub: pl.DataFrame,
    outcome: ExpectationOutcome,
    values: pl.Series | None,
) -> pl.DataFrame:
    """Failures whose engine said what each one means (a majority value, an earlier row).

    The details are JSON objects with sorted keys, as :func:`details_json` writes them;
    ``duplicate_of`` positions become the earlier row's ``_row_id``.
    """
    entry = outcome.entry
    rows = np.asarray(outcome.unexpected_rows, dtype=np.int64)
    details = outcome.row_details
    assert details is not None
    if details.height != len(rows) or (len(rows) > 1 and not (np.diff(rows) > 0).all()):
        raise ValueError(
            f"{entry.type} (expectation {entry.index}) gives {details.height} details for "
            f"{len(rows)} rows, or rows out of order"
        )
    extra = details.with_columns(pl.lit(entry.index, dtype=pl.Int64).alias("expectation_index"))
    if outcome.duplicate_of is not None:
        earlier = pl.Series(outcome.duplicate_of, dtype=pl.Int64)
        ids = frame.get_column(ROW_ID).gather(earlier.clip(lower_bound=0))
        extra = extra.with_columns(
            pl.when(earlier >= 0).then(ids).otherwise(None).alias("duplicate_of")
        )
    texts = extra.select(pl.struct(sorted(extra.columns)).struct.json_encode()).to_series()
    return make_failures(
        sub.get_column(ROW_ID),
        column=entry.failure_column,
        rule=entry.type,
        severity=entry.severity,
        values=values,
        details=texts,
    )


def _duplicate_failures(
    sub: pl.DataFrame, cols: list[str], entry: ExpectationEntry, values: pl.Series
) -> pl.DataFrame:
    groups = sub.with_columns(
        pl.col(ROW_ID).first().over(cols).alias("_first"),
        pl.len().over(cols).alias("_size"),
        values,
    )
    later = pl.col(ROW_ID) != pl.col("_first")
    index = pl.lit(str(entry.index))
    size = pl.col("_size").cast(pl.String)
    groups = groups.with_columns(
        pl.when(later)
        .then(
            pl.concat_str(
                pl.lit('{"duplicate_of":'),
                pl.col("_first").cast(pl.String),
                pl.lit(',"expectation_index":'),
                index,
                pl.lit(',"group_size":'),
                size,
                pl.lit("}"),
            )
        )
        .otherwise(
            pl.concat_str(
                pl.lit('{"expectation_index":'), index, pl.lit(',"group_size":'), size, pl.lit("}")
            )
        )
        .alias("details")
    )
    if entry.duplicates == "keep_first":
        # A group of one is a row the engine called a duplicate whose twin polars did not find
        # among the failing rows: it stays a failure rather than being dropped.
        groups = groups.filter(later | (pl.col("_size") == 1))
    return make_failures(
        groups.get_column(ROW_ID),
        column=entry.failure_column,
        rule=entry.type,
        severity=entry.severity,
        values=groups.get_column("value"),
        details=groups.get_column("details"),
    )


def _values(sub: pl.DataFrame, cols: list[str]) -> pl.Series:
    if len(cols) == 1:
        return _text(sub.get_column(cols[0])).alias("value")
    ready = sub.select(_json_ready(sub.get_column(c)) for c in cols)
    return ready.select(pl.struct(cols).struct.json_encode()).to_series().alias("value")


def _text(series: pl.Series) -> pl.Series:
    """A failing cell's text: datetimes as ISO text, nested values and Python objects as JSON,
    anything else as :func:`sluice.core.text.column_text` writes it (bytes as UTF-8 or else
    latin-1, durations as Python writes them, where polars casts neither to text)."""
    dtype = series.dtype
    if isinstance(dtype, pl.Datetime):
        fmt = "%Y-%m-%d %H:%M:%S%.f" + ("%:z" if dtype.time_zone else "")
        return series.dt.to_string(fmt)
    if dtype.is_nested() or dtype == pl.Object:
        return pl.Series(
            series.name,
            [None if v is None else json.dumps(json_safe(v)) for v in series.to_list()],
            dtype=pl.String,
        )
    return column_text(series)


def _json_ready(series: pl.Series) -> pl.Series:
    """One column of a multi-column failure's value as polars can encode it in JSON: datetimes
    as ISO text, other temporal values and decimals as polars writes them, bytes, durations,
    Python objects and 128-bit integers (polars' encoder refuses or panics on them, also
    inside lists and structs) as their :func:`_text`; anything else as it is."""
    dtype = series.dtype
    if isinstance(dtype, pl.Datetime) or _not_encodable(dtype):
        return _text(series)
    if dtype.is_temporal() or isinstance(dtype, pl.Decimal):
        return series.cast(pl.String)
    return series


def _not_encodable(dtype: pl.DataType | DataTypeClass) -> bool:
    if isinstance(dtype, pl.List | pl.Array):
        return _not_encodable(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return any(_not_encodable(f.dtype) for f in dtype.fields)
    return isinstance(dtype, pl.Binary | pl.Object | pl.Duration | pl.Int128 | pl.UInt128)
