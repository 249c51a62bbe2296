"""sluice's own expectation types: run time on 1M rows, and what a hand suite catches on hospital.

    python -m bench.sluice_types --speed       # each type on 1M rows, 10k distinct values
    python -m bench.sluice_types --hospital    # bench/suites/hospital_hand.json
    python -m bench.sluice_types --febrl       # near duplicates on febrl1, pairwise P/R/F1

Hospital is scored with the usual convention (../shared/data/README.md): both files read as text,
each value HTML-unescaped, whitespace collapsed and stripped; a cell is an error when dirty and
clean differ. A failure flags the cells of the columns it names. The data are read from
``--data`` (default ../shared/data/dirty beside the repository) and never copied.
"""

from __future__ import annotations

import argparse
import html
import json
import sys
import time
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from expectations.engine import validate
from expectations.failures import failures_from_outcomes
from expectations.suite import load_suite, suite_from_dict

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "dirty"


def _speed(n: int, distinct: int) -> None:
    rng = np.random.default_rng(0)
    words = np.array([f"value{i:05d}" for i in range(distinct)])
    weights = 1.0 / np.arange(1, distinct + 1)
    weights /= weights.sum()
    picks = rng.choice(distinct, size=n, p=weights)
    city = words[picks]
    typo = rng.random(n) < 0.001
    city = np.where(typo, np.char.replace(city, "e", "x"), city)
    frame = pl.DataFrame(
        {
            "key": picks // 3,
            "city": city,
            "phone": [f"({i % 1000:03d}) {i // 1000:04d}-{i % 997:03d}" for i in range(n)],
            "block": rng.integers(0, n // 5, size=n),
            "name": words[rng.integers(0, distinct, size=n)],
        }
    )
    kinds: list[tuple[str, dict[str, Any]]] = [
        ("sluice.expect_column_values_to_follow_majority_by", {"column": "city", "by": ["key"]}),
        ("sluice.expect_column_values_to_not_be_rare_variants", {"column": "city"}),
        (
            "sluice.expect_compound_columns_to_be_unique_after_normalising",
            {"column_list": ["phone"], "transform": ["digits"]},
        ),
        (
            "sluice.expect_rows_to_not_be_near_duplicates",
            {"block_on": ["block"], "compare": ["name", "phone"], "max_block_size": 200},
        ),
    ]
    print(f"{n:,} rows, {frame.get_column('city').n_unique():,} distinct city values")
    for type_, kwargs in kinds:
        suite = suite_from_dict(
            {"name": "speed", "expectations": [{"type": type_, "kwargs": kwargs}]}
        )
        start = time.perf_counter()
        (out,) = validate(frame, suite, engine="polars")
        took = time.perf_counter() - start
        print(
            f"{type_:64s} {took:6.2f} s  {n / took / 1e6:5.2f} M rows/s  "
            f"failing {out.unexpected_count:,}  observed {json.dumps(out.observed_value)}"
        )


def _norm(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.all().map_elements(lambda v: " ".join(html.unescape(v).split()), return_dtype=pl.String)
    )


def _hospital(data: Path, suite_path: Path) -> None:
    dirty = pl.read_csv(data / "hospital" / "dirty.csv", infer_schema=False).fill_null("")
    clean = pl.read_csv(data / "hospital" / "clean.csv", infer_schema=False).fill_null("")
    clean.columns = dirty.columns
    truth = _norm(dirty.drop("index")) != _norm(clean.drop("index"))
    errors = {(r, c) for c in truth.columns for r in truth.get_column(c).arg_true().to_list()}
    suite = load_suite(suite_path, columns=dirty.columns)
    frame = dirty.with_columns(pl.int_range(pl.len(), dtype=pl.UInt64).alias("_row_id"))
    start = time.perf_counter()
    outcomes = validate(frame.drop("_row_id"), suite, engine="polars")
    took = time.perf_counter() - start
    failures = failures_from_outcomes(frame, outcomes).failures
    flagged = {
        (int(r), c)
        for r, cols in failures.select("_row_id", "column").iter_rows()
        for c in cols.split(",")
    }
    hit = len(flagged & errors)
    p = hit / len(flagged) if flagged else 0.0
    r = hit / len(errors)
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    print(f"hospital: {len(errors)} error cells, {len(flagged)} flagged, {hit} right")
    print(f"cell precision {p:.3f} recall {r:.3f} F1 {f1:.3f}")
    print(f"suite {suite_path.name}, validated in {took:.2f} s")
    per_rule = failures.group_by("reason").len().sort("len", descending=True)
    for reason, count in per_rule.iter_rows():
        cells = {
            (int(rr), c)
            for rr, cols in failures.filter(pl.col("reason") == reason)
            .select("_row_id", "column")
            .iter_rows()
            for c in cols.split(",")
        }
        print(f"  {count:4d} {len(cells & errors):4d} right  {reason}")


def _febrl(data: Path, threshold: float, similarity: str) -> None:
    frame = pl.read_csv(data / "febrl1" / "dataset1.csv", infer_schema=False)
    frame.columns = [c.strip() for c in frame.columns]
    frame = frame.with_columns(pl.all().str.strip_chars().replace("", None))
    ids = frame.get_column("rec_id").str.extract(r"rec-(\d+)-").to_list()
    truth = {
        tuple(sorted(p))
        for members in pl.DataFrame({"i": range(len(ids)), "k": ids})
        .group_by("k")
        .agg("i")
        .get_column("i")
        .to_list()
        for p in combinations(members, 2)
    }
    compare = ["given_name", "surname", "street_number", "address_1", "suburb", "date_of_birth"]
    union: set[tuple[int, ...]] = set()
    for block in (["postcode"], ["soc_sec_id"], ["date_of_birth"]):
        kwargs = {
            "block_on": block,
            "compare": [c for c in compare if c not in block],
            "threshold": threshold,
            "similarity": similarity,
        }
        suite = suite_from_dict(
            {
                "name": "febrl",
                "expectations": [
                    {"type": "sluice.expect_rows_to_not_be_near_duplicates", "kwargs": kwargs}
                ],
            }
        )
        (out,) = validate(frame.drop("rec_id"), suite, engine="polars")
        assert out.unexpected_rows is not None
        assert out.duplicate_of is not None
        found = {
            tuple(sorted((int(a), int(b))))
            for a, b in zip(out.unexpected_rows, out.duplicate_of, strict=True)
        }
        union |= found
        _pairs_score(f"febrl1 block_on {block} {similarity} {threshold}", found, truth)
    _pairs_score(f"febrl1 the three entries together {similarity} {threshold}", union, truth)


def _pairs_score(label: str, found: set[tuple[int, ...]], truth: set[tuple[int, ...]]) -> None:
    hit = len(found & truth)
    p = hit / len(found) if found else 0.0
    r = hit / len(truth)
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    print(f"{label}: pairs {len(found)}, precision {p:.3f} recall {r:.3f} F1 {f1:.3f}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen measurements; exit 2 when the data folder is missing."""
    parser = argparse.ArgumentParser(prog="python -m bench.sluice_types")
    parser.add_argument("--speed", action="store_true")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--distinct", type=int, default=10_000)
    parser.add_argument("--hospital", action="store_true")
    parser.add_argument("--suite", type=Path, default=HERE / "suites" / "hospital_hand.json")
    parser.add_argument("--febrl", action="store_true")
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--similarity", default="jaro_winkler")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    if args.speed:
        _speed(args.rows, args.distinct)
    if args.hospital or args.febrl:
        if not args.data.is_dir():
            print(f"no data folder at {args.data} (give --data)", file=sys.stderr)
            return 2
        if args.hospital:
            _hospital(args.data, args.suite)
        if args.febrl:
            _febrl(args.data, args.threshold, args.similarity)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
