"""Benchmark: one suite of 15 expectations on 20 generated columns, three ways.

    python -m bench.validate                 # 1 M rows
    python -m bench.validate --rows 1000000 --rows 10000000
    python -m bench.validate --strftime      # one strftime check on 1 M distinct timestamps

Engines: the GX runner (GX on pandas), the polars engine, and the same checks written by hand as
polars expressions. Each engine runs in its own subprocess on the same Parquet file, so peak RSS
is per engine; imports and a warm-up run on 100 rows are not timed. Prints rows/s, wall and CPU
seconds, peak RSS and the ratios, and checks that the three agree on every verdict and count.

``--strftime`` measures one check alone: ``expect_column_values_to_match_strftime_format`` on a
column of distinct timestamps written as text (0.1% of them malformed or impossible dates). Each
engine runs a one-entry suite (the row count) and the same suite plus the strftime check; the
difference is the check's marginal cost.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ENGINES = ("gx", "polars", "hand")
PAYMENT_TYPES = ["card", "cash", "no_charge", "dispute"]

SUITE: dict[str, Any] = {
    "name": "bench",
    "expectations": [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "trip_id"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "trip_id"}},
        {
            "type": "expect_column_values_to_match_regex",
            "kwargs": {"column": "trip_id", "regex": "^T[0-9]{9}$"},
        },
        {
            "type": "expect_column_values_to_match_regex",
            "kwargs": {"column": "medallion", "regex": "^[0-9][A-Z][0-9]{2}$"},
        },
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "vendor_id", "value_set": [1, 2]},
        },
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "payment_type", "value_set": PAYMENT_TYPES},
        },
        {
            "type": "expect_column_values_to_not_be_null",
            "kwargs": {"column": "passenger_count", "mostly": 0.99},
        },
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "passenger_count", "min_value": 1, "max_value": 6},
        },
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "fare_amount", "min_value": 0, "max_value": 500},
        },
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {
                "column": "trip_distance",
                "min_value": 0,
                "max_value": 100,
                "strict_min": True,
                "mostly": 0.999,
            },
        },
        {
            "type": "expect_column_pair_values_a_to_be_greater_than_b",
            "kwargs": {"column_A": "dropoff_at", "column_B": "pickup_at", "or_equal": False},
        },
        {
            "type": "expect_column_value_lengths_to_equal",
            "kwargs": {"column": "store_and_fwd_flag", "value": 1},
        },
        {
            "type": "expect_column_values_to_not_match_regex",
            "kwargs": {"column": "notes", "regex": "[<>]"},
        },
        {
            "type": "expect_column_mean_to_be_between",
            "kwargs": {"column": "fare_amount", "min_value": 5, "max_value": 60},
        },
    ],
}


def generate(
    rows: int, seed: int = 7, *, offset: int = 0, total: int | None = None
) -> pl.DataFrame:
    """Taxi-like trips, 20 columns, with about 0.1% planted errors of each kind.

    ``offset`` and ``total`` make one chunk of a larger partition (bench/scale writes one chunk
    at a time): rows ``offset`` to ``offset + rows`` of ``total``, trip ids and planted errors
    placed by their position in the whole partition, duplicate ids drawn from all of it."""
    rng = np.random.default_rng(seed if offset == 0 else [seed, offset])
    total = rows if total is None else total

    def some(p: float) -> np.ndarray[Any, Any]:
        return rng.random(rows) < p

    ids = np.arange(offset, offset + rows, dtype=np.int64)
    dup = some(0.001)
    ids[dup] = rng.integers(0, total, int(dup.sum()))
    pickup = np.datetime64("2024-01-01", "us") + rng.integers(0, 30 * 86_400, rows).astype(
        "timedelta64[s]"
    ).astype("timedelta64[us]")
    minutes = rng.gamma(2.0, 8.0, rows)
    minutes[some(0.001)] *= -1
    dropoff = pickup + (minutes * 60).astype("timedelta64[s]").astype("timedelta64[us]")
    fare = np.round(3 + rng.gamma(2.0, 8.0, rows), 2)
    fare[some(0.001)] = -5.0
    distance = np.round(rng.gamma(1.5, 2.0, rows), 2)
    distance[some(0.001)] = 0.0
    passengers = rng.integers(1, 7, rows).astype(np.float64)
    passengers[some(0.001)] = 9
    passengers[some(0.002)] = np.nan
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))[rng.integers(0, 26, rows)]
    letters[some(0.001)] = "a"
    position = pl.int_range(pl.len()) + offset
    frame = pl.DataFrame(
        {
            "trip_id": ids,
            "vendor_id": rng.choice([1, 2, 2, 2, 1], rows),
            "medallion": letters,
            "pickup_at": pickup,
            "dropoff_at": dropoff,
            "passenger_count": pl.Series(passengers).fill_nan(None).cast(pl.Int64),
            "trip_distance": distance,
            "pickup_zone": rng.integers(1, 266, rows),
            "dropoff_zone": rng.integers(1, 266, rows),
            "payment_type": rng.choice(PAYMENT_TYPES, rows, p=[0.7, 0.25, 0.03, 0.02]),
            "fare_amount": fare,
            "tip_amount": np.round(fare * rng.uniform(0, 0.25, rows), 2),
            "total_amount": np.round(fare * 1.2, 2),
            "tolls_amount": np.round(rng.exponential(0.5, rows), 2),
            "extra": rng.choice([0.0, 0.5, 1.0, 2.5], rows),
            "mta_tax": np.full(rows, 0.5),
            "rate_code": rng.integers(1, 7, rows),
            "store_and_fwd_flag": rng.choice(
                ["N", "N", "N", "Y", "NY"], rows, p=[0.3, 0.3, 0.3, 0.0995, 0.0005]
            ),
            "congestion_surcharge": rng.choice([0.0, 2.5], rows),
            "notes": rng.choice(
                ["", "ok", "late", "airport", "<b>"], rows, p=[0.6, 0.2, 0.1, 0.0995, 0.0005]
            ),
        }
    )
    medallion = (
        (pl.col("pickup_zone") % 10).cast(pl.String)
        + pl.col("medallion")
        + (pl.col("dropoff_zone") % 100).cast(pl.String).str.zfill(2)
    )
    return frame.with_columns(
        pl.when(position % 1999 == 0)
        .then(None)
        .otherwise("T" + pl.col("trip_id").cast(pl.String).str.zfill(9))
        .alias("trip_id"),
        pl.when(position % 997 == 0).then(3).otherwise(pl.col("vendor_id")).alias("vendor_id"),
        medallion.alias("medallion"),
        pl.when(position % 1499 == 0)
        .then(pl.lit("unknown"))
        .otherwise(pl.col("payment_type"))
        .alias("payment_type"),
    )


STRFTIME_FORMAT = "%Y-%m-%d %H:%M:%S"
BASE_SUITE: dict[str, Any] = {
    "name": "bench-base",
    "expectations": [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}],
}
STRFTIME_SUITE: dict[str, Any] = {
    "name": "bench-strftime",
    "expectations": [
        *BASE_SUITE["expectations"],
        {
            "type": "expect_column_values_to_match_strftime_format",
            "kwargs": {"column": "stamp", "strftime_format": STRFTIME_FORMAT},
        },
    ],
}


def generate_stamps(rows: int, seed: int = 7) -> pl.DataFrame:
    """One column of ``rows`` distinct timestamps as text; about 0.1% malformed or impossible."""
    rng = np.random.default_rng(seed)
    seconds = rng.permutation(rows).astype("timedelta64[s]").astype("timedelta64[us]")
    stamps = pl.Series(np.datetime64("2020-01-01T00:00:00", "us") + seconds).dt.strftime(
        STRFTIME_FORMAT
    )
    bad = pl.Series(rng.random(rows) < 0.001)
    broken = pl.concat_str([stamps.str.slice(0, 5), pl.lit("02-30"), stamps.str.slice(10)])
    frame = pl.DataFrame({"stamp": stamps})
    return frame.with_columns(
        pl.when(bad).then(pl.select(broken).to_series()).otherwise(pl.col("stamp")).alias("stamp")
    )


def hand_written(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """The suite's checks as plain polars, one select, with GX's rules for nulls and mostly."""
    idx = pl.int_range(pl.len(), dtype=pl.Int64)

    def rows(bad: pl.Expr) -> pl.Expr:
        return idx.filter(bad).implode()

    trip = pl.col("trip_id")
    pc = pl.col("passenger_count")
    dist = pl.col("trip_distance")
    out = (
        frame.lazy()
        .select(
            pl.len().alias("n"),
            rows(trip.is_null()).alias("r1"),
            rows(trip.is_not_null() & trip.is_duplicated()).alias("r2"),
            trip.null_count().alias("n2"),
            rows(~trip.str.contains(r"\AT[0-9]{9}\n?\z")).alias("r3"),
            rows(~pl.col("medallion").str.contains(r"\A[0-9][A-Z][0-9]{2}\n?\z")).alias("r4"),
            rows(~pl.col("vendor_id").is_in([1, 2])).alias("r5"),
            rows(~pl.col("payment_type").is_in(PAYMENT_TYPES)).alias("r6"),
            rows(pc.is_null()).alias("r7"),
            rows(~pc.is_between(1, 6)).alias("r8"),
            pc.null_count().alias("n8"),
            rows(~pl.col("fare_amount").is_between(0, 500)).alias("r9"),
            rows(~dist.is_between(0, 100, closed="right")).alias("r10"),
            rows(~(pl.col("dropoff_at") > pl.col("pickup_at"))).alias("r11"),
            rows(pl.col("store_and_fwd_flag").str.len_chars() != 1).alias("r12"),
            rows(pl.col("notes").str.contains("[<>]")).alias("r13"),
            pl.col("fare_amount").mean().alias("mean"),
        )
        .collect()
    )
    got = out.row(0, named=True)
    n = got["n"]

    def verdict(key: str, denominator: int, mostly: float = 1.0) -> dict[str, Any]:
        count = len(got[key])
        ok = denominator == 0 or (denominator - count) / denominator >= mostly
        return {"success": ok, "unexpected_count": count}

    return [
        {"success": n >= 1, "unexpected_count": None},
        verdict("r1", n),
        verdict("r2", n - got["n2"]),
        verdict("r3", n - got["n2"]),
        verdict("r4", n),
        verdict("r5", n),
        verdict("r6", n),
        verdict("r7", n, 0.99),
        verdict("r8", n - got["n8"]),
        verdict("r9", n),
        verdict("r10", n, 0.999),
        verdict("r11", n),
        verdict("r12", n),
        verdict("r13", n),
        {"success": 5 <= got["mean"] <= 60, "unexpected_count": None},
    ]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(
    engine: str, data: Path, repeat: int, suite_doc: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run one engine on the data file ``repeat`` times; keep the fastest run."""
    from expectations.suite import suite_from_dict

    suite = suite_from_dict(suite_doc or SUITE)
    frame = pl.read_parquet(data)
    rss_loaded = _rss_mb()
    warm = frame.head(100)

    def run(f: pl.DataFrame) -> list[dict[str, Any]]:
        if engine == "gx":
            from expectations.gx_runner import run_gx

            return [_summary(o) for o in run_gx(f, suite.entries)]
        if engine == "polars":
            from expectations.polars_engine import run_polars

            return [_summary(o) for o in run_polars(f, suite.entries)]
        if suite_doc is not None:
            raise ValueError("the hand-written checks cover the main suite only")
        return hand_written(f)

    run(warm)
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        results = run(frame)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {
        "engine": engine,
        "rows": frame.height,
        "repeat": repeat,
        "seconds": min(walls),
        "cpu_seconds": min(cpus),
        "peak_rss_mb": _rss_mb(),
        "rss_after_load_mb": rss_loaded,
        "results": results,
    }


def _summary(outcome: Any) -> dict[str, Any]:
    return {"success": bool(outcome.success), "unexpected_count": outcome.unexpected_count}


def run_engine(engine: str, data: Path, repeat: int, suite: str = "main") -> dict[str, Any]:
    """Run one engine in a fresh interpreter and read back its measurements."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "bench.validate", "--worker", engine, "--data", str(data)]
    cmd += ["--suite", suite]
    proc = subprocess.run(
        [*cmd, "--repeat", str(repeat)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} worker failed:\n{proc.stderr[-4000:]}")
    last = proc.stdout.strip().splitlines()[-1]
    result: dict[str, Any] = json.loads(last)
    return result


def report(rows: int, results: dict[str, dict[str, Any]]) -> None:
    """Print the table, the ratios and whether the engines agree."""
    repeat = next(iter(results.values()))["repeat"]
    print(
        f"\n{rows:,} rows x 20 columns, {len(SUITE['expectations'])} expectations, "
        f"best of {repeat} runs per engine, each engine in its own process"
    )
    print(f"{'engine':<8}{'rows/s':>14}{'wall s':>10}{'CPU s':>10}{'peak RSS MB':>14}")
    for name, r in results.items():
        print(
            f"{name:<8}{r['rows'] / r['seconds']:>14,.0f}{r['seconds']:>10.2f}"
            f"{r['cpu_seconds']:>10.2f}{r['peak_rss_mb']:>14,.0f}"
        )
    p, g, h = results.get("polars"), results.get("gx"), results.get("hand")
    if p and g:
        print(f"polars / GX rows/s:           {g['seconds'] / p['seconds']:.1f}x")
        print(f"polars / GX peak RSS:         {p['peak_rss_mb'] / g['peak_rss_mb']:.2f}")
    if p and h:
        print(f"polars / hand-written time:   {p['seconds'] / h['seconds']:.2f}x")
        print(f"polars / hand-written CPU:    {p['cpu_seconds'] / h['cpu_seconds']:.2f}x")
    verdicts = {name: r["results"] for name, r in results.items()}
    names = list(verdicts)
    agree = all(verdicts[n] == verdicts[names[0]] for n in names[1:])
    print("verdicts and counts agree:   ", "yes" if agree else "NO")
    if not agree:
        for n in names:
            print(f"  {n}: {verdicts[n]}")


SUITES: dict[str, dict[str, Any]] = {
    "main": SUITE,
    "base": BASE_SUITE,
    "strftime": STRFTIME_SUITE,
}


def strftime_report(rows: int, repeat: int) -> dict[str, Any]:
    """The strftime check's marginal CPU per engine, and whether the engines agree on it."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
        data = Path(tmp) / "stamps.parquet"
        frame = generate_stamps(rows)
        frame.write_parquet(data)
        distinct = frame["stamp"].n_unique()
        for engine in ("gx", "polars"):
            base = run_engine(engine, data, repeat, "base")
            full = run_engine(engine, data, repeat, "strftime")
            out[engine] = {
                "cpu_seconds": full["cpu_seconds"] - base["cpu_seconds"],
                "seconds": full["seconds"] - base["seconds"],
                "results": full["results"],
            }
    print(
        f"\nstrftime check ({STRFTIME_FORMAT!r}) on {rows:,} rows, {distinct:,} distinct values; "
        f"marginal cost over a row-count-only suite, best of {repeat}"
    )
    print(f"{'engine':<8}{'wall s':>10}{'CPU s':>10}  unexpected")
    for name, r in out.items():
        print(
            f"{name:<8}{r['seconds']:>10.2f}{r['cpu_seconds']:>10.2f}  "
            f"{r['results'][-1]['unexpected_count']:,}"
        )
    g, p = out["gx"], out["polars"]
    print(f"GX / polars marginal CPU:     {g['cpu_seconds'] / max(p['cpu_seconds'], 1e-9):.1f}x")
    print("verdicts and counts agree:   ", "yes" if g["results"] == p["results"] else "NO")
    return out


def main(argv: list[str] | None = None) -> int:
    """Generate the data, run every engine in its own process, print the comparison."""
    parser = argparse.ArgumentParser(prog="python -m bench.validate", description=__doc__)
    parser.add_argument("--rows", type=int, action="append", help="rows (repeatable)")
    parser.add_argument("--engines", default=",".join(ENGINES), help="gx,polars,hand")
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=3, help="runs per engine (best kept)")
    parser.add_argument("--json", type=Path, help="also write all measurements here")
    parser.add_argument(
        "--strftime", action="store_true", help="measure one strftime check on distinct stamps"
    )
    parser.add_argument("--suite", choices=list(SUITES), default="main", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        doc = None if args.suite == "main" else SUITES[args.suite]
        print(json.dumps(worker(args.worker, args.data, args.repeat, doc)))
        return 0
    if args.strftime:
        measured = {rows: strftime_report(rows, args.repeat) for rows in args.rows or [1_000_000]}
        if args.json:
            args.json.write_text(json.dumps(measured, indent=2))
        return 0
    engines = [e for e in args.engines.split(",") if e]
    everything = {}
    for rows in args.rows or [1_000_000]:
        with tempfile.TemporaryDirectory(prefix="sluice-bench-") as tmp:
            data = Path(tmp) / "trips.parquet"
            started = time.perf_counter()
            generate(rows).write_parquet(data)
            print(f"generated {rows:,} rows in {time.perf_counter() - started:.1f}s", flush=True)
            results = {engine: run_engine(engine, data, args.repeat) for engine in engines}
        report(rows, results)
        everything[rows] = results
    if args.json:
        args.json.write_text(json.dumps(everything, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
