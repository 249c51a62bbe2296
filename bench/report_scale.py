"""Benchmark: the report stage alone on a large partition, in memory and bounded.

    python -m bench.report_scale --rows 1000000 10000000 --data /var/tmp/scale

For each size, :mod:`bench.scale`'s generated partition becomes a committed run's outputs:
its rows typed as clean Parquet (row groups of 262,144 rows, as polars writes them), seven
earlier partitions of the same rows (hard links) for drift, a run manifest, and no failures.
Then the report is built (:func:`sluice.report.build.compose` and the HTML) in a fresh process
per mode, the way the write stage builds it: ``in-memory`` loads the clean rows whole,
``bounded`` reads them by column and samples drift references by row group. Prints wall and
CPU seconds and the peak RSS of that process; a process passing ``--limit-mb`` is stopped.

``--failing`` (what a 100M run leaves, scaled): every 83rd row (1.2%) is quarantined with its
provenance, typed values, raw text (``_raw``) and reasons, failing one of five rules, and
every 10th row has a ``warn`` failure as well (about 11% of the rows with failures). These
outputs go to ``report-failing/`` beside the others (the clean file hard-linked: it still holds
the quarantined rows, which the report's numbers do not check).
``SLUICE_BATCH_ROWS`` sets the bounded report's batch rows (else 262,144).

    python -m bench.report_scale --rows 1000000 10000000 30000000 --modes bounded --failing
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

import polars as pl

from bench.e2e import SCHEMA
from bench.scale import label, measure, partition_csv
from sluice.write import PARQUET_NAME

DAY = dt.date(2024, 1, 8)
EARLIER = 7
BUILD = """
import sys, time
from pathlib import Path
from sluice.report.build import compose
from sluice.report.html import render
from sluice.report.metrics import load_outputs
import json
import os
root, bounded = Path(sys.argv[1]), sys.argv[2] == "bounded"
manifest = json.loads((root / "manifest.json").read_text())
batch = int(os.environ.get("SLUICE_BATCH_ROWS") or 262144)
t0 = time.perf_counter()
spill = root / "spill"
spill.mkdir(exist_ok=True)
outputs = load_outputs(
    manifest, root / "run", bounded=bounded, spill_dir=spill if bounded else None,
    batch_rows=batch,
)
report = compose(outputs, reports_root=root / "reports", clean_root=root / "clean", bounded=bounded)
html = render(report)
report.metrics.write_parquet(root / f"metrics-{sys.argv[2]}.parquet")
print(json.dumps({"seconds": round(time.perf_counter() - t0, 2), "metrics": report.metrics.height,
                  "drift_tested": report.summary()["drift_tested"]}))
"""
TYPES = {"string": pl.String, "int": pl.Int64, "float": pl.Float64}


def _typed(csv: Path) -> pl.LazyFrame:
    frame = pl.scan_csv(csv, infer_schema=False)
    cols: list[pl.Expr] = [pl.int_range(pl.len(), dtype=pl.UInt64).alias("_row_id")]
    for name, kind in SCHEMA.items():
        if isinstance(kind, dict):
            cols.append(pl.col(name).str.strptime(pl.Datetime("us"), kind["format"], strict=False))
        else:
            cols.append(pl.col(name).cast(TYPES[kind], strict=False))
    return frame.select(cols)


def prepare(data: Path, rows: int) -> Path:
    """A committed run's outputs over the generated partition (made once, then reused)."""
    root = data / f"rows-{rows}" / "report"
    if (root / "manifest.json").exists():
        return root
    csv = partition_csv(data, rows)
    clean = root / "clean" / f"date={DAY}" / PARQUET_NAME
    clean.parent.mkdir(parents=True, exist_ok=True)
    _typed(csv).sink_parquet(clean)
    for back in range(1, EARLIER + 1):
        earlier = root / "clean" / f"date={DAY - dt.timedelta(days=back)}" / PARQUET_NAME
        earlier.parent.mkdir(parents=True, exist_ok=True)
        os.link(clean, earlier)
    run = root / "run"
    run.mkdir(parents=True, exist_ok=True)
    quarantine = run / "quarantine.parquet"
    pl.DataFrame(schema={"_row_id": pl.UInt64, "_raw": pl.String}).write_parquet(quarantine)
    from sluice.core.failures import empty_failures

    empty_failures().write_parquet(run / "failures.parquet")
    manifest: dict[str, Any] = {
        "dataset": "report_scale",
        "run_id": "bench",
        "finished_at": "2024-01-09T00:00:00+00:00",
        "partition": {"key": "date", "kind": "day", "value": DAY.isoformat()},
        "status": "passed",
        "critical": [],
        "verdict": {"status": "passed", "causes": []},
        "counts": {"in": rows, "clean": rows, "quarantine": 0, "warned_rows": 0},
        "conservation": {"holds": True},
        "validation": {"engine": "polars", "verdicts": []},
        "detectors": [],
        "outputs": {"clean": {"path": str(clean)}, "quarantine": {"path": str(quarantine)}},
        "versions": {"sluice": "bench"},
    }
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return root


QUARANTINE_EVERY = 83
WARN_EVERY = 10
REASONS = [
    ("fare_amount", "expect_column_values_to_be_between"),
    ("passenger_count", "expect_column_values_to_not_be_null"),
    ("medallion", "expect_column_values_to_match_regex"),
    ("notes", "expect_column_values_to_not_match_regex"),
    ("trip_id", "expect_column_values_to_be_unique"),
]


def prepare_failing(data: Path, rows: int) -> Path:
    """:func:`prepare`'s outputs with a quarantine and failures (module docstring)."""
    base = prepare(data, rows)
    root = data / f"rows-{rows}" / "report-failing"
    if (root / "manifest.json").exists():
        return root
    manifest = json.loads((base / "manifest.json").read_text(encoding="utf-8"))
    clean_src = Path(manifest["outputs"]["clean"]["path"])
    for folder in sorted((base / "clean").iterdir()):
        target = root / "clean" / folder.name / PARQUET_NAME
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(folder / PARQUET_NAME, target)
    csv = partition_csv(data, rows)
    text = pl.scan_csv(csv, infer_schema=False).with_row_index("_i")
    picked = text.filter(pl.col("_i") % QUARANTINE_EVERY == 0)
    typed = _typed(csv).with_row_index("_i").filter(pl.col("_i") % QUARANTINE_EVERY == 0)
    rule = pl.col("_i") // QUARANTINE_EVERY % len(REASONS)
    reason = pl.lit(None, dtype=pl.String)
    for k, (column, name) in enumerate(REASONS):
        reason = pl.when(rule == k).then(pl.lit(f"{column}|{name}")).otherwise(reason)
    quarantine = (
        typed.join(picked.select("_i", pl.struct(list(SCHEMA)).alias("_raw")), on="_i")
        .with_columns(
            pl.lit(str(csv)).alias("_source_file"),
            (pl.col("_i") + 2).cast(pl.Int64).alias("_source_row"),
            pl.concat_list(reason).alias("_reasons"),
        )
        .select("_row_id", "_source_file", "_source_row", *SCHEMA, "_raw", "_reasons")
    )
    run = root / "run"
    run.mkdir(parents=True, exist_ok=True)
    quarantine.sink_parquet(run / "quarantine.parquet")
    failing = pl.scan_parquet(run / "quarantine.parquet").select(
        pl.col("_row_id"),
        pl.col("_reasons").list.first().str.split("|").list.first().alias("column"),
        pl.col("_reasons").list.first().str.split("|").list.last().alias("rule"),
        pl.col("_reasons").list.first().alias("reason"),
        pl.lit("error").alias("severity"),
        pl.col("_raw").struct.field("fare_amount").alias("value"),
        pl.lit(None, dtype=pl.String).alias("details"),
    )
    warned = (
        pl.scan_parquet(clean_src)
        .select("_row_id", "tip_amount")
        .filter(pl.col("_row_id") % WARN_EVERY == 1)
        .select(
            pl.col("_row_id"),
            pl.lit("tip_amount").alias("column"),
            pl.lit("expect_column_values_to_be_between").alias("rule"),
            pl.lit("tip_amount|expect_column_values_to_be_between").alias("reason"),
            pl.lit("warn").alias("severity"),
            pl.col("tip_amount").cast(pl.String).alias("value"),
            pl.lit(None, dtype=pl.String).alias("details"),
        )
    )
    pl.concat([failing, warned]).sink_parquet(run / "failures.parquet")
    n_q = int(pl.scan_parquet(run / "quarantine.parquet").select(pl.len()).collect().item())
    manifest["counts"] = {
        "in": rows,
        "clean": rows - n_q,
        "quarantine": n_q,
        "warned_rows": (rows + WARN_EVERY - 2) // WARN_EVERY,
    }
    manifest["status"] = "failed"
    manifest["outputs"] = {
        "clean": {"path": str(root / "clean" / clean_src.parent.name / PARQUET_NAME)},
        "quarantine": {"path": str(run / "quarantine.parquet")},
    }
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return root


def main(argv: list[str] | None = None) -> int:
    """Build the report of each size in each mode and print the table."""
    p = argparse.ArgumentParser(
        prog="python -m bench.report_scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    p.add_argument("--data", type=Path, required=True, help="bench.scale's data folder")
    p.add_argument("--modes", nargs="+", default=["in-memory", "bounded"])
    p.add_argument("--limit-mb", type=float, default=5000.0, help="stop a process above this")
    p.add_argument("--failing", action="store_true", help="with a quarantine and failures")
    args = p.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    lines = [
        "| rows | mode | wall s | CPU s | peak RSS MB | exit |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for rows in args.rows:
        root = prepare_failing(args.data, rows) if args.failing else prepare(args.data, rows)
        for mode in args.modes:
            log = root / f"{mode}.log"
            got = measure(
                f"report {mode}",
                rows,
                [sys.executable, "-c", BUILD, str(root), mode],
                env,
                log,
                spill=None,
                limit_mb=args.limit_mb,
            )
            print(f"  {label(rows)} {mode}: {log.read_text().strip()[-300:]}", flush=True)
            lines.append(
                f"| {label(rows)} | {mode} | {got.wall_s} | {got.cpu_s} | {got.peak_rss_mb} "
                f"| {got.code} |"
            )
        if set(args.modes) == {"in-memory", "bounded"}:
            print(f"  {label(rows)}: metrics that differ: {differences(root) or 'none'}")
    print("\n".join(lines))
    return 0


def differences(root: Path) -> list[str]:
    """``scope name metric: in-memory -> bounded`` for every metric whose value differs."""
    keys = ["scope", "name", "metric"]
    a, b = (pl.read_parquet(root / f"metrics-{m}.parquet") for m in ("in-memory", "bounded"))
    joined = a.join(b, on=keys, how="full", suffix="_b", coalesce=True)
    bad = joined.filter(~pl.col("value").eq_missing(pl.col("value_b")))
    return [
        f"{s} {n} {k}: {v} -> {w}"
        for s, n, k, v, w in bad.select(*keys, "value", "value_b").iter_rows()
    ]


if __name__ == "__main__":
    sys.exit(main())
