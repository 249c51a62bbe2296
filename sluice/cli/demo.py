"""``sluice demo``: generate trips with planted errors, screen them under Prefect, score the catch.

The demo dataset is the project's ``datasets/trips.yaml`` (named by its path, so the datasets
folder in use, ``$SLUICE_DATASETS`` or ``./datasets``, does not matter); its paths follow
``$SLUICE_DEMO_DIR``, which the demo sets to its folder. The spec, its suite and its detectors are
checked before any data is generated or Prefect starts. The ground truth says which rows carry
which planted error; the demo prints, for each kind, how many were planted and how many the
screening quarantined.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import polars as pl

from sluice.config import load_spec

DEMO_DATASET = "trips"
DEMO_SPEC = Path(__file__).resolve().parents[2] / "datasets" / f"{DEMO_DATASET}.yaml"
DEMO_START = dt.date(2024, 3, 4)


def demo_days(days: int) -> list[dt.date]:
    """The demo's partitions: consecutive days from a fixed start."""
    return [DEMO_START + dt.timedelta(days=i) for i in range(days)]


def read_outputs(root: Path) -> pl.DataFrame:
    """Every quarantine file under a root, as one frame (empty if none)."""
    files = sorted(root.glob("*=*/part-*.parquet"))
    if not files:
        return pl.DataFrame(
            schema={
                "_source_file": pl.String,
                "_source_row": pl.Int64,
                "_reasons": pl.List(pl.String),
            }
        )
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")


def catch_table(truth: pl.DataFrame, quarantine: pl.DataFrame, n_rows: int) -> str:
    """The catch rate per planted error kind, as aligned text."""
    from sluice.demo_data import evaluate, false_quarantines

    table = evaluate(truth, quarantine)
    lines = [f"{'planted error':<22}{'planted':>9}{'caught':>9}{'by its rule':>13}{'rate':>9}"]
    for row in table.iter_rows(named=True):
        lines.append(
            f"{row['kind']:<22}{row['planted']:>9}{row['caught']:>9}"
            f"{row['caught_by_expected_rule']:>13}{row['rate']:>9.1%}"
        )
    total_planted = int(table["planted"].sum())
    total_caught = int(table["caught"].sum())
    lines.append(
        f"{'all':<22}{total_planted:>9}{total_caught:>9}"
        f"{int(table['caught_by_expected_rule'].sum()):>13}"
        f"{(total_caught / total_planted if total_planted else 0):>9.1%}"
    )
    fq = false_quarantines(truth, quarantine, n_rows)
    lines.append(
        f"rows quarantined with no planted error: {fq} of {n_rows} "
        f"({fq / n_rows:.2%}; the detector's flags on legitimate extremes)"
    )
    return "\n".join(lines)


def run_demo(
    directory: str | Path,
    *,
    days: int = 3,
    rows: int = 100_000,
    seed: int = 2024,
    prefect: bool = True,
) -> int:
    """Generate, screen and score the demo, as a Prefect flow or (``prefect`` false) in this
    process; returns the CLI exit code."""
    from sluice.demo_data import generate
    from sluice.preflight import preflight

    root = Path(directory).resolve()
    os.environ["SLUICE_DEMO_DIR"] = str(root)
    parts = demo_days(days)
    preflight(str(DEMO_SPEC), parts[0])
    from sluice.pipeline.local import backfill_local

    if prefect:
        from flows.screen import backfill

    print(f"generating {days} partitions of {rows:,} trips in {root / 'raw'} ...")
    truth = generate(root, parts, rows_per_partition=rows, seed=seed)
    how = "under Prefect" if prefect else "in this process"
    print(f"planted {truth.height:,} errors; screening {how} ...")
    spec, first, last = str(DEMO_SPEC), parts[0], parts[-1]
    summary = (
        backfill(spec, first, last, "auto", force=True)
        if prefect
        else backfill_local(spec, first, last, "auto", force=True)
    )
    for s in summary["screened"]:
        c = s["counts"]
        print(
            f"  {s['partition']}: {c['in']:,} in, {c['clean']:,} clean, "
            f"{c['quarantine']:,} quarantined ({s['status']})"
        )
    for f in summary["failed"]:
        print(f"  {f['partition']}: FAILED: {f['error']}")
    loaded = load_spec(DEMO_SPEC)
    quarantine = read_outputs(loaded.output_root("quarantine"))
    n_rows = sum(s["counts"]["in"] for s in summary["screened"])
    print()
    print(catch_table(truth, quarantine, n_rows))
    print()
    print(f"clean data:   {loaded.output_root('clean')}")
    print(f"quarantine:   {loaded.output_root('quarantine')}")
    print(
        f"reports:      {loaded.output_root('reports')} "
        "(report.html, manifest.json, failures.parquet per partition)"
    )
    return 1 if summary["failed"] else 0
