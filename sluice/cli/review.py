"""``sluice review`` and ``sluice release``: decide about quarantined rows, then apply it.

``sluice review DATASET --partition P [--out FILE]`` writes the partition's quarantined rows
for review (CSV by default, Parquet for a ``.parquet`` name); ``sluice release DATASET
--partition P --decisions FILE --by NAME`` applies the filled-in file as a new commit of the
partition (docs/review.md). Exit codes: 0 done (also when the file was applied already), 2 a
decision file that cannot be applied or was made from another commit, 3 an internal error.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sluice.core.errors import EXIT_OK


def add_review_arguments(p: argparse.ArgumentParser, date: Callable[[str], Any]) -> None:
    """The options of ``sluice review``."""
    p.add_argument("dataset", help="dataset name (datasets/<name>.yaml) or a spec file")
    p.add_argument(
        "--partition", required=True, type=date, help="YYYY-MM-DD, YYYY-MM or YYYY-MM-DDTHH"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="the review file, .csv or .parquet (default review-<dataset>-<partition>.csv)",
    )


def add_release_arguments(p: argparse.ArgumentParser, date: Callable[[str], Any]) -> None:
    """The options of ``sluice release``."""
    p.add_argument("dataset", help="dataset name (datasets/<name>.yaml) or a spec file")
    p.add_argument(
        "--partition", required=True, type=date, help="YYYY-MM-DD, YYYY-MM or YYYY-MM-DDTHH"
    )
    p.add_argument(
        "--decisions", required=True, type=Path, help="the filled-in review file (.csv, .parquet)"
    )
    p.add_argument("--by", required=True, help="who took the decisions (kept in the audit log)")
    p.add_argument("--engine", choices=("auto", "polars", "gx"), default=None)


def review_main(args: argparse.Namespace) -> int:
    """Write the review file of a partition's quarantine."""
    from sluice.config import value_text
    from sluice.pipeline.release import review_partition

    path, rows = review_partition(args.dataset, args.partition, args.out)
    args.document = {"path": str(path), "rows": rows}
    shown = value_text(args.partition)
    print(f"{args.dataset} {shown}: {rows} quarantined rows for review in {path}")
    print("  fill in decision (release | fix | reject), note and, for a fix, the corrected values;")
    print(f"  then: sluice release {args.dataset} --partition {shown} --decisions {path} ")
    print("        --by NAME")
    return EXIT_OK


def release_main(args: argparse.Namespace) -> int:
    """Apply a decision file to a partition as a new commit."""
    from sluice.pipeline.release import release_partition

    summary = release_partition(
        args.dataset, args.partition, args.decisions, args.by, engine=args.engine
    )
    args.document = summary
    _print(summary)
    return EXIT_OK


def _print(s: dict[str, Any]) -> None:
    head = f"{s['dataset']} {s['partition']}"
    if s["applied_already"]:
        print(
            f"{head}: these decisions are applied already (commit {s['run_id']}); nothing changed"
        )
        return
    c = s["counts"]
    print(
        f"{head}: released {s['released']}, fixed {s['fixed']}, still failing "
        f"{s['still_failing']}, rejected {s['rejected']}; now {c['clean']} clean, "
        f"{c['quarantine']} quarantined of {c['in']} ({s['status']})"
    )
    print(f"  manifest: {s['manifest']}")
    print(f"  audit log: {s['audit_log']}")
