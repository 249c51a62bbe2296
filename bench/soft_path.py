"""Benchmark: ``sluice.screen`` on a frame against ``run_partition`` on the same rows in a file.

    python -m bench.soft_path                  # 1 M rows
    python -m bench.soft_path --rows 200000

Reads the NYC taxi samples in ``../shared/data/nyc_taxi_2019`` (stops, saying so, when the folder
is not there) as text, repeats them to ``--rows`` rows, and screens them with one schema, suite
and isolation forest four ways: ``screen`` on the text frame with the schema (as ingest types a
file), the same without the detector, ``screen`` on the typed clean rows without a schema, and
``run_partition`` on the rows written to a CSV file (ingest, validate, screen, write, report).
A warm-up call on 2,000 rows is not timed. Prints seconds and rows/s of each, and checks that
``screen`` and ``run_partition`` agree on the counts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl
import yaml

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nyc_taxi_2019"
FLOATS = [
    "trip_distance",
    "fare_amount",
    "extra",
    "mta_tax",
    "tip_amount",
    "tolls_amount",
    "improvement_surcharge",
    "total_amount",
    "congestion_surcharge",
]
SCHEMA: dict[str, Any] = {
    "vendor_id": "int",
    "pickup_datetime": {"type": "datetime", "format": "%Y-%m-%d %H:%M:%S"},
    "dropoff_datetime": {"type": "datetime", "format": "%Y-%m-%d %H:%M:%S"},
    "passenger_count": "int",
    "rate_code_id": "int",
    "store_and_fwd_flag": "string",
    "pickup_location_id": "int",
    "dropoff_location_id": "int",
    "payment_type": "int",
    **dict.fromkeys(FLOATS, "float"),
}
SUITE: dict[str, Any] = {
    "name": "taxi",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "vendor_id"}},
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "passenger_count", "min_value": 1, "max_value": 6},
        },
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "fare_amount", "min_value": 0, "max_value": 500},
        },
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "payment_type", "value_set": [1, 2, 3, 4, 5, 6]},
            "meta": {"severity": "warn"},
        },
        {
            "type": "expect_column_pair_values_a_to_be_greater_than_b",
            "kwargs": {
                "column_A": "dropoff_datetime",
                "column_B": "pickup_datetime",
                "or_equal": True,
            },
        },
    ],
}
DETECTORS = [
    {
        "name": "fares",
        "detector": "iforest",
        "features": ["trip_distance", "fare_amount", "tip_amount", "total_amount"],
        "seed": 1,
    }
]


def taxi(rows: int) -> pl.DataFrame:
    """The samples as text, repeated to ``rows`` rows."""
    files = sorted(DATA.glob("*.csv"))
    if not files:
        sys.exit(f"no taxi samples in {DATA}: this benchmark needs ../shared/data")
    base = pl.concat([pl.read_csv(f, infer_schema=False) for f in files])
    return pl.concat([base] * (rows // base.height + 1)).head(rows)


def main() -> None:
    """Run the four ways and print their times."""
    from sluice.pipeline import run_partition
    from sluice.screening import screen

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    rows = parser.parse_args().rows
    text = taxi(rows)
    screen(text.head(2000), SUITE, schema=SCHEMA, detectors=DETECTORS)  # imports, JIT: untimed
    results: dict[str, Any] = {}
    t0 = time.perf_counter()
    checks = screen(text, SUITE, schema=SCHEMA)
    results["screen, text + schema, no detector"] = (time.perf_counter() - t0, checks.counts)
    t0 = time.perf_counter()
    soft = screen(text, SUITE, schema=SCHEMA, detectors=DETECTORS)
    results["screen, text frame + schema"] = (time.perf_counter() - t0, soft.counts)
    typed = soft.clean.drop("_row_id", "_source_file", "_source_row")
    t0 = time.perf_counter()
    own = screen(typed, SUITE, detectors=DETECTORS)
    results["screen, typed frame (clean rows)"] = (time.perf_counter() - t0, own.counts)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "raw" / "date=2019-01-01").mkdir(parents=True)
        text.write_csv(root / "raw" / "date=2019-01-01" / "taxi.csv")
        (root / "suite.json").write_text(json.dumps(SUITE))
        spec = {
            "name": "taxi",
            "source": {"path": "raw/date={date}/*.csv"},
            "schema": SCHEMA,
            "suite": "suite.json",
            "detectors": DETECTORS,
            "outputs": {s: f"out/{s}" for s in ("clean", "quarantine", "reports")},
        }
        (root / "taxi.yaml").write_text(yaml.safe_dump(spec))
        t0 = time.perf_counter()
        summary = run_partition(str(root / "taxi.yaml"), "2019-01-01")
        results["run_partition, CSV file"] = (time.perf_counter() - t0, summary["counts"])
    print(f"{rows:,} rows, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for name, (seconds, counts) in results.items():
        print(
            f"{name:36s} {seconds:7.1f} s {counts['in'] / seconds:>10,.0f} rows/s  "
            f"in {counts['in']:,} clean {counts['clean']:,} quarantine {counts['quarantine']:,}"
        )
    soft_counts, run_counts = results["screen, text frame + schema"][1], summary["counts"]
    assert soft_counts == run_counts, (soft_counts, run_counts)


if __name__ == "__main__":
    main()
