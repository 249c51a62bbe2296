"""Shared fixtures: a small trips frame with one planted error per row, and entry builders."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest

from expectations.results import DuplicatePolicy, ExpectationEntry
from sluice.core.failures import Severity
from sluice.demo_data import COLUMNS

TRIPS_COLUMNS = list(COLUMNS)


def make_entry(
    type_: str,
    index: int = 0,
    severity: Severity = "error",
    duplicates: DuplicatePolicy = "keep_first",
    **kwargs: Any,
) -> ExpectationEntry:
    """An entry as the loader would build it (no file, no line)."""
    return ExpectationEntry(
        index=index,
        type=type_,
        kwargs=kwargs,
        meta={"severity": severity},
        severity=severity,
        duplicates=duplicates,
    )


@pytest.fixture
def trips_frame() -> pl.DataFrame:
    """Eight trips, ``_row_id`` 100..107. Row 0 is clean; each other row plants errors:

    1 repeats row 0's trip_id; 2 has vendor_id 3; 3 has no passenger_count; 4 has a bad trip_id
    and a bad medallion; 5 drops off before pickup; 6 tips 60 (warn only); 7 pays in bitcoin and
    has a fare of 600, which also lifts the mean fare above 60.
    """
    t0 = dt.datetime(2024, 3, 1, 8, 0, 0)
    minute = dt.timedelta(minutes=1)
    pickups = [t0 + i * 10 * minute for i in range(8)]
    dropoffs = [p + 15 * minute for p in pickups]
    dropoffs[5] = pickups[5] - minute
    fares = [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 600.0]
    tips = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 60.0, 1.0]
    return pl.DataFrame(
        {
            "_row_id": pl.Series(range(100, 108), dtype=pl.UInt64),
            "trip_id": [
                "T000000001",
                "T000000001",
                "T000000003",
                "T000000004",
                "X1",
                "T000000006",
                "T000000007",
                "T000000008",
            ],
            "vendor_id": [1, 2, 3, 1, 2, 1, 2, 1],
            "medallion": ["1A23", "2B34", "3C45", "4D56", "XX", "5E67", "6F78", "7G89"],
            "pickup_at": pickups,
            "dropoff_at": dropoffs,
            "passenger_count": [1, 2, 3, None, 1, 2, 1, 4],
            "trip_distance": [1.0, 2.5, 3.0, 0.5, 7.0, 2.0, 1.2, 9.9],
            "pickup_zone": [1, 10, 100, 265, 4, 5, 6, 7],
            "dropoff_zone": [2, 20, 200, 264, 8, 9, 10, 11],
            "payment_type": [
                "card",
                "cash",
                "card",
                "no_charge",
                "dispute",
                "card",
                "cash",
                "bitcoin",
            ],
            "fare_amount": fares,
            "tip_amount": tips,
            "total_amount": [f + t for f, t in zip(fares, tips, strict=True)],
        },
        schema_overrides={"passenger_count": pl.Int64},
    )
