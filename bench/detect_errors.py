"""Zero-configuration error detection: ``sluice init`` then ``sluice run``, no edits, scored.

For each folder holding ``dirty.csv`` and ``clean.csv`` (default: ``../shared/data/dirty/hospital``
beside the repository, never copied), the real ``sluice`` command profiles ``dirty.csv`` into a
spec and suite in a work folder and screens it. The quarantine's failures become cell flags: a
failure naming a column flags that cell (one naming several columns flags each), a row-level
reason (``_row``, ``_table``, ``outlier``) flags every cell of the row. Truth follows Raha's
convention: both files read as text, no null conversion, each value HTML-unescaped, runs of
whitespace collapsed, stripped; a cell is an error when the dirty value differs from the clean
one at the same row and column position; a row is dirty when any cell is. Printed: cell and
row precision, recall and F1.

A folder holding ``dataset1.csv`` with a ``rec_id`` column (FEBRL: ``rec-N-org`` and
``rec-N-dup-k``) is scored as duplicates: every failure whose details name a first occurrence
(``duplicate_of_row``) reports the pair, pairs are expanded to all pairs within each reported
group, and pairwise precision, recall and F1 are printed against the pairs sharing ``N``.

    python -m bench.detect_errors                        # hospital and febrl1 from ../shared
    python -m bench.detect_errors DIR [DIR ...] --no-sluice-types
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import polars as pl
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "dirty"
DEFAULT_DIRS = (SHARED / "hospital", SHARED / "febrl1")
PARTITION = "2024-01-01"
ROW_LEVEL = ("_row", "_table", "outlier")


def normalise(value: str | None) -> str:
    """A cell as the truth convention compares it."""
    return re.sub(r"\s+", " ", html.unescape(value or "")).strip()


def prf(flagged: set[Any], truth: set[Any]) -> dict[str, float]:
    """Precision, recall and F1 of ``flagged`` against ``truth`` (0 when undefined)."""
    hit = len(flagged & truth)
    p = hit / len(flagged) if flagged else 0.0
    r = hit / len(truth) if truth else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f, "flagged": len(flagged), "true": len(truth)}


def sluice(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the installed ``sluice`` command."""
    exe = Path(sys.executable).with_name("sluice")
    return subprocess.run(
        [str(exe), *args], env=env, capture_output=True, text=True, check=False, timeout=1800
    )


def init_and_run(
    name: str, data: Path, work: Path, env: dict[str, str], sluice_types: bool | None
) -> tuple[Path, int]:
    """``sluice init`` then ``sluice run`` on one file; the project folder and the run's exit."""
    project = work / name
    flag = (
        [] if sluice_types is None else ["--sluice-types" if sluice_types else "--no-sluice-types"]
    )
    init = sluice(
        "init", name, "--from", str(data), "--out", str(project), "--force", *flag, env=env
    )
    if init.returncode != 0:
        raise SystemExit(f"sluice init {name} failed ({init.returncode}): {init.stderr.strip()}")
    spec = project / "datasets" / f"{name}.yaml"
    run = sluice("run", str(spec), "--partition", PARTITION, "--force", env=env)
    print(run.stdout.strip().splitlines()[0] if run.stdout.strip() else run.stderr.strip())
    if run.returncode not in (0, 1):
        raise SystemExit(f"sluice run {name} exited {run.returncode}: {run.stderr.strip()}")
    return project, run.returncode


def quarantine_failures(project: Path, name: str) -> tuple[pl.DataFrame, list[str]]:
    """The failures of quarantined rows (with their source row) and the declared columns' source
    names in schema order."""
    spec = yaml.safe_load((project / "datasets" / f"{name}.yaml").read_text())
    var = project / "var" / name
    q = pl.concat(
        [pl.read_parquet(p) for p in sorted((var / "quarantine").glob("*=*/part-*.parquet"))],
        how="diagonal_relaxed",
    ).select("_row_id", "_source_row")
    f = pl.read_parquet(next((var / "reports").glob(f"*={PARTITION}/failures.parquet")))
    failures = f.join(q, on="_row_id", how="inner").filter(pl.col("severity") != "warn")
    sources = []
    for col, entry in spec["schema"].items():
        aliases = entry.get("aliases", []) if isinstance(entry, dict) else []
        sources.append(aliases[0] if aliases else col)
    return failures, sources


def cell_flags(failures: pl.DataFrame, declared: Sequence[str], width: int) -> set[tuple[int, int]]:
    """(row, column position) of every flagged cell."""
    position = {c: i for i, c in enumerate(declared)}
    out: set[tuple[int, int]] = set()
    for row, column in failures.select("_source_row", "column").iter_rows():
        names = [c.strip() for c in str(column).split(",")]
        cols = [position[c] for c in names if c in position]
        if not cols or any(c.startswith(ROW_LEVEL) for c in names):
            cols = list(range(width))
        out.update((int(row), c) for c in cols)
    return out


def score_cells(
    folder: Path, work: Path, env: dict[str, str], types: bool | None, estimate: bool = False
) -> dict[str, Any]:
    """Cell and row P/R/F1 of the zero-configuration run on one dirty/clean pair."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", folder.name) or "data"
    project, code = init_and_run(name, folder / "dirty.csv", work, env, types)
    dirty = pl.read_csv(folder / "dirty.csv", infer_schema=False, empty_string_is_null=False)
    clean = pl.read_csv(folder / "clean.csv", infer_schema=False, empty_string_is_null=False)
    truth: set[tuple[int, int]] = set()
    for j in range(min(dirty.width, clean.width)):
        d = [normalise(v) for v in dirty.to_series(j).to_list()]
        c = [normalise(v) for v in clean.to_series(j).to_list()]
        truth.update((i, j) for i, (a, b) in enumerate(zip(d, c, strict=False)) if a != b)
    failures, declared = quarantine_failures(project, name)
    names = [n.strip() for n in dirty.columns]
    order = [names.index(s.strip()) if s.strip() in names else -1 for s in declared]
    flags = {
        (r, order[c]) for r, c in cell_flags(failures, declared, len(declared)) if order[c] >= 0
    }
    rows_true = {r for r, _ in truth}
    result: dict[str, Any] = {
        "dataset": name,
        "exit": code,
        "cells": prf(flags, truth),
        "rows": prf({r for r, _ in flags}, rows_true),
    }
    if estimate:
        extra = {
            (r, order[declared.index(c)])
            for r, c in estimated_sluice_flags(folder / "dirty.csv")
            if c in declared and order[declared.index(c)] >= 0
        }
        both = flags | extra
        result["estimated_with_sluice_types"] = {
            "cells": prf(both, truth),
            "rows": prf({r for r, _ in both}, rows_true),
        }
    return result


def estimated_sluice_flags(data: Path, seed: int = 0) -> set[tuple[int, str]]:
    """(row, column) flags of the sluice.* suggestions init would make on ``data``, judged by the
    profiler's own reference of their semantics on every row (an estimate, for a sluice whose
    engine does not run these types yet)."""
    from sluice.profile import SLUICE_TYPES, profile, typed_frame

    prof = profile([data], seed=seed, sluice_types=True)
    frame = typed_frame(prof)
    out: set[tuple[int, str]] = set()
    for c in prof.suggestions:
        if c.type not in SLUICE_TYPES:
            continue
        blamed = c.kwargs.get("column_list") or [c.kwargs["column"]]
        failing = (~c.passes(frame)).arg_true().to_list()
        out.update((int(r), str(col)) for r in failing for col in blamed)
    return out


def group_pairs(groups: Iterable[set[int]]) -> set[tuple[int, int]]:
    """Every pair of rows within each group, smaller row first."""
    out: set[tuple[int, int]] = set()
    for g in groups:
        out.update((a, b) for a, b in combinations(sorted(g), 2))
    return out


def score_pairs(
    folder: Path, work: Path, env: dict[str, str], types: bool | None
) -> dict[str, Any]:
    """Pairwise duplicate P/R/F1 of the zero-configuration run on a FEBRL file."""
    data = next(folder.glob("dataset*.csv"))
    name = re.sub(r"[^A-Za-z0-9_-]", "_", folder.name)
    project, code = init_and_run(name, data, work, env, types)
    frame = pl.read_csv(data, infer_schema=False)
    ids = [str(v).strip() for v in frame.to_series(0).to_list()]
    entity: dict[str, set[int]] = {}
    for i, rec in enumerate(ids):
        m = re.match(r"rec-(\d+)-", rec)
        if m:
            entity.setdefault(m.group(1), set()).add(i)
    truth = group_pairs(entity.values())
    failures, _ = quarantine_failures(project, name)
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for row, details in failures.select("_source_row", "details").iter_rows():
        first = json.loads(details or "{}").get("duplicate_of_row")
        if first is not None:
            parent[find(int(row))] = find(int(first))
    groups: dict[int, set[int]] = {}
    for row in list(parent):
        groups.setdefault(find(row), {find(row)}).add(row)
    return {"dataset": name, "exit": code, "pairs": prf(group_pairs(groups.values()), truth)}


def _line(label: str, m: dict[str, float]) -> str:
    return (
        f"  {label:<6} P {m['precision']:.3f}  R {m['recall']:.3f}  F1 {m['f1']:.3f}  "
        f"({int(m['flagged'])} flagged, {int(m['true'])} true)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Score every folder given (default: hospital and febrl1 under ../shared/data/dirty)."""
    ap = argparse.ArgumentParser(prog="python -m bench.detect_errors", description=__doc__)
    ap.add_argument("folders", nargs="*", type=Path, help="folders of dirty.csv + clean.csv")
    ap.add_argument("--sluice-types", action=argparse.BooleanOptionalAction, default=None)
    ap.add_argument(
        "--estimate-sluice-types",
        action="store_true",
        help="also score the run's flags plus those of the sluice.* suggestions, judged by the "
        "profiler's reference of their semantics (until the engine runs them)",
    )
    ap.add_argument("--work", type=Path, help="where projects go (default: a temporary folder)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)
    folders = list(args.folders) or [d for d in DEFAULT_DIRS if d.is_dir()]
    if not folders:
        print(f"no data: give folders, or put the benchmarks in {SHARED}", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="detect-errors-"))
    env = {
        **os.environ,
        "PREFECT_HOME": str(work / "prefect-home"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
    }
    results = []
    for folder in folders:
        if (folder / "dirty.csv").is_file() and (folder / "clean.csv").is_file():
            r = score_cells(folder, work, env, args.sluice_types, args.estimate_sluice_types)
            print(f"{r['dataset']} (exit {r['exit']}):")
            print(_line("cells", r["cells"]))
            print(_line("rows", r["rows"]))
            if "estimated_with_sluice_types" in r:
                est = r["estimated_with_sluice_types"]
                print("  estimated with the sluice.* suggestions (profiler's reference semantics):")
                print(_line("cells", est["cells"]))
                print(_line("rows", est["rows"]))
        elif any(folder.glob("dataset*.csv")):
            r = score_pairs(folder, work, env, args.sluice_types)
            print(f"{r['dataset']} (exit {r['exit']}):")
            print(_line("pairs", r["pairs"]))
        else:
            print(f"{folder}: neither dirty.csv + clean.csv nor dataset*.csv; skipped")
            continue
        results.append(r)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
