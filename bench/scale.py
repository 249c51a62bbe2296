"""Benchmark: one partition of 1M to 100M rows, bounded path beside the read + write floor.

    python -m bench.scale --rows 1000000 10000000 30000000 100000000 --data /var/tmp/scale
    python -m bench.scale --rows 1000000 --in-memory      # also the in-memory path
    python -m bench.scale --rows 10000000 --check         # bounded and in-memory outputs equal?

For each size, :func:`bench.validate.generate`'s 20-column trips (with their planted errors) are
written as one CSV, chunk by chunk (bounded memory), and cached under ``--data`` so that reruns
reuse it. Then, in one sitting, each a fresh process timed from start to exit:

- the floor: polars ``scan_csv(...).sink_parquet(...)`` (streaming);
- ``sluice run`` of the partition through the real CLI with ``SLUICE_BOUNDED=1``;
- with ``--in-memory``, ``sluice run`` with ``SLUICE_BOUNDED=0`` as well.

It prints wall seconds, CPU seconds (user + system of the process and every descendant it waited
for), the peak RSS of the whole process tree (psutil, every 50 ms, children included), the
stage seconds the run's manifest records (``timings_s``), the bytes spilled (the run's work
folder at its largest) and the ratios to the floor. Results also go to ``DATA/results.json``.

``--check`` runs both paths on each size and compares their clean, quarantine and failures as
sets of rows with their reasons; it exits 1 when they differ.

``--dask`` also runs the partition through ``sluice run --dask`` on a local Dask cluster started
here (a scheduler and two one-thread worker processes on 127.0.0.1, stopped at the end): the
ingest and the passes of validate and screen split into tasks on the workers, the fit, the
write and the commit in the client. Its peak RSS is
the client's tree plus the scheduler and the workers, sampled together; its CPU seconds add the
cluster's processes' CPU over the run. With ``--check``, its outputs are compared with the
bounded run's as well.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import psutil
import yaml

from bench.e2e import DAY, SCHEMA, sluice_cmd
from bench.peer import FEATURES
from bench.validate import SUITE, generate
from sluice.core.memory import STAGE_LOG_ENV

ROOT = Path(__file__).resolve().parent.parent
CHUNK_ROWS = 250_000
SAMPLE_S = 0.05
STAGES = ("ingest", "validate", "screen", "write", "report")
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"
FLOOR = """
import sys, polars as pl
pl.scan_csv(sys.argv[1]).sink_parquet(sys.argv[2])
"""
MODES = {"bounded": "1", "in-memory": "0", "dask": "1"}
COMPARED = ("clean", "quarantine", "failures")


@dataclass(frozen=True)
class Measured:
    """One command's cost and what its run recorded."""

    name: str
    rows: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    spilled_mb: float
    code: int
    stages_s: dict[str, float] = field(default_factory=dict)
    stage_peak_mb: dict[str, float] = field(default_factory=dict)


def label(rows: int) -> str:
    """``1M``, ``2.5M`` or ``2,000``."""
    return f"{rows / 1e6:g}M" if rows >= 1_000_000 else f"{rows:,}"


def partition_csv(data: Path, rows: int, seed: int = 7) -> Path:
    """The CSV of a ``rows``-row partition under ``data``, written chunk by chunk (at most
    :data:`CHUNK_ROWS` rows in memory) to a temporary name and renamed, or the one a
    previous run left there."""
    target = data / f"rows-{rows}" / "raw" / f"date={DAY}" / "trips.csv"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".trips.csv.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as out:
            for start in range(0, max(rows, 1), CHUNK_ROWS):
                n = min(CHUNK_ROWS, rows - start)
                if n <= 0:
                    break
                chunk = generate(n, seed, offset=start, total=rows)
                chunk.write_csv(out, include_header=start == 0, datetime_format=DATETIME_FORMAT)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def write_spec(folder: Path, mode: str, detector: str) -> Path:
    """A dataset spec over the partition's CSV: the bench suite, one detector on the float
    columns, outputs under ``out-<mode>``."""
    (folder / "suite.json").write_text(json.dumps(SUITE), encoding="utf-8")
    spec = {
        "name": f"scale_{mode.replace('-', '_')}",
        "source": {"path": "raw/date={date}/trips.csv", "format": "csv"},
        "partition": {"key": "date", "kind": "day"},
        "schema": SCHEMA,
        "suite": "suite.json",
        "detectors": [
            {
                "name": "outliers",
                "detector": detector,
                "features": list(FEATURES),
                "severity": "error",
            }
        ],
        "outputs": {side: f"out-{mode}/{side}" for side in ("clean", "quarantine", "reports")},
    }
    path = folder / f"scale-{mode}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def folder_bytes(folder: Path) -> int:
    """Bytes in the files under ``folder`` now (0 when it does not exist)."""
    total, todo = 0, [folder]
    while todo:
        try:
            entries = list(os.scandir(todo.pop()))
        except OSError:
            continue
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    todo.append(Path(e.path))
                elif e.is_file(follow_symlinks=False):
                    total += e.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return total


def tree_rss(proc: psutil.Process) -> int:
    """Bytes resident in ``proc`` and all its descendants now."""
    total = 0
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in family:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total


def measure(
    name: str,
    rows: int,
    cmd: list[str],
    env: dict[str, str],
    log: Path,
    *,
    spill: Path | None,
    limit_mb: float | None = None,
    cluster: Sequence[psutil.Process] = (),
) -> Measured:
    """Run ``cmd`` to its end (output to ``log``), sampling its tree's RSS and the size of
    ``spill`` every :data:`SAMPLE_S` seconds; a tree passing ``limit_mb`` is killed (its
    session: the command runs in a new one).

    The peak is the samples' only: the child's ``ru_maxrss`` is not, since a child that
    ``subprocess`` starts by ``vfork`` and ``exec`` inherits this process's high-water RSS.
    ``cluster`` (processes the command uses but did not start: a Dask scheduler and workers)
    count in every sample's RSS, and their CPU over the run in the CPU seconds."""
    cpu_before = sum(_cpu(p) for p in cluster)
    with log.open("w") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        watched = psutil.Process(proc.pid)
        peak = spilled = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, tree_rss(watched) + sum(tree_rss(p) for p in cluster))
            if limit_mb is not None and peak > limit_mb * 2**20:
                os.killpg(proc.pid, signal.SIGKILL)
            if spill is not None:
                spilled = max(spilled, folder_bytes(spill))
            time.sleep(SAMPLE_S)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Measured(
        name,
        rows,
        round(wall, 2),
        round(usage.ru_utime + usage.ru_stime + sum(_cpu(p) for p in cluster) - cpu_before, 2),
        round(peak / 2**20, 1),
        round(spilled / 2**20, 1),
        proc.returncode,
    )


def _cpu(proc: psutil.Process) -> float:
    """User + system CPU seconds of a process and its children so far (0 once it is gone)."""
    try:
        t = proc.cpu_times()
    except psutil.Error:
        return 0.0
    return float(t.user + t.system + t.children_user + t.children_system)


def _env(mode: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "SLUICE_PREFECT")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if mode is not None:
        env["SLUICE_BOUNDED"] = MODES[mode]
    return env


def manifest_of(folder: Path, mode: str) -> dict[str, Any] | None:
    """The manifest of the partition's last run in ``mode``, if it finished."""
    path = folder / f"out-{mode}" / "reports" / f"date={DAY}" / "manifest.json"
    if not path.exists():
        return None
    got: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return got


def run_sluice(folder: Path, rows: int, mode: str, detector: str) -> Measured:
    """``sluice run`` of the partition in ``mode``, measured, with its manifest's stage times;
    ``dask`` on a local cluster of two workers started for it."""
    if mode != "dask":
        return _run_sluice(folder, rows, mode, detector)
    from bench.dask_ingest import local_cluster  # it imports this module

    env = {**_env(mode), "SLUICE_PREFECT": "0"}
    with local_cluster(folder, env) as (address, workers, scheduler):
        return _run_sluice(
            folder, rows, mode, detector, address=address, cluster=[*scheduler, *workers]
        )


def _run_sluice(
    folder: Path,
    rows: int,
    mode: str,
    detector: str,
    *,
    address: str | None = None,
    cluster: Sequence[psutil.Process] = (),
) -> Measured:
    spec = write_spec(folder, mode, detector)
    work = folder / f"out-{mode}" / "reports" / ".work"
    stage_log = folder / "logs" / f"stages-{mode}.jsonl"
    stage_log.unlink(missing_ok=True)
    got = measure(
        f"sluice {mode}",
        rows,
        sluice_cmd(
            "run",
            str(spec),
            "--partition",
            DAY,
            "--force",
            *(["--dask", address] if address else []),
        ),
        {**_env(mode), STAGE_LOG_ENV: str(stage_log)},
        folder / "logs" / f"sluice-{mode}.log",
        spill=work,
        cluster=cluster,
    )
    manifest = manifest_of(folder, mode) if got.code in (0, 1) else None
    timings = (manifest or {}).get("timings_s") or {}
    stages = {s: float(timings[s]) for s in STAGES if timings.get(s) is not None}
    return Measured(**{**asdict(got), "stages_s": stages, "stage_peak_mb": stage_peaks(stage_log)})


def stage_peaks(path: Path) -> dict[str, float]:
    """The process's peak RSS in MB at the end of each stage, from the run's stage log
    (``SLUICE_STAGE_LOG``: a high-water mark, so a stage that raised it shows the new value)."""
    if not path.exists():
        return {}
    peaks: dict[str, float] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        peaks[entry["stage"]] = round(entry["peak_rss_bytes"] / 2**20, 1)
    return peaks


def bench_size(data: Path, rows: int, modes: list[str], detector: str) -> list[Measured]:
    """The floor and ``sluice run`` in each of ``modes`` on one partition."""
    csv = partition_csv(data, rows)
    folder = data / f"rows-{rows}"
    (folder / "logs").mkdir(exist_ok=True)
    print(f"{label(rows)} rows ({csv.stat().st_size / 2**20:.0f} MB CSV):", flush=True)
    floor = measure(
        "floor",
        rows,
        [sys.executable, "-c", FLOOR, str(csv), str(folder / "floor.parquet")],
        _env(None),
        folder / "logs" / "floor.log",
        spill=None,
    )
    (folder / "floor.parquet").unlink(missing_ok=True)
    out = [floor]
    for mode in modes:
        out.append(run_sluice(folder, rows, mode, detector))
    for m in out:
        print(
            f"  {m.name}: {m.wall_s} s, {m.cpu_s} CPU s, {m.peak_rss_mb} MB, exit {m.code}",
            flush=True,
        )
    return out


def table(results: list[Measured]) -> str:
    """The results as a Markdown table, with wall and CPU ratios to the floor of each size."""
    head = "| rows | command | wall s | CPU s | peak RSS MB | spilled MB | "
    head += " | ".join(f"{s} s" for s in STAGES) + " | wall / floor | CPU / floor | exit |"
    head += " peak MB after " + " / ".join(STAGES) + " |"
    lines = [head, "|---|---|" + "---:|" * (len(STAGES) + 8)]
    floors = {m.rows: m for m in results if m.name == "floor"}
    for m in results:
        f = floors.get(m.rows)
        rw = f"{m.wall_s / f.wall_s:.1f}" if f and f.wall_s else ""
        rc = f"{m.cpu_s / f.cpu_s:.1f}" if f and f.cpu_s else ""
        stages = " | ".join(str(m.stages_s.get(s, "")) for s in STAGES)
        peaks = " / ".join(f"{m.stage_peak_mb[s]:.0f}" for s in STAGES if s in m.stage_peak_mb)
        lines.append(
            f"| {label(m.rows)} | {m.name} | {m.wall_s} | {m.cpu_s} | {m.peak_rss_mb} "
            f"| {m.spilled_mb} | {stages} | {rw} | {rc} | {m.code} | {peaks} |"
        )
    return "\n".join(lines)


def _table_path(folder: Path, mode: str, which: str) -> Path | None:
    manifest = manifest_of(folder, mode)
    if manifest is None:
        return None
    if which == "failures":
        return folder / f"out-{mode}" / "reports" / f"date={DAY}" / "failures.parquet"
    entry = manifest.get("outputs", {}).get(which)
    return Path(entry["path"]) if entry else None


def row_hashes(path: Path) -> pl.Series:
    """One hash per row of a Parquet file (its columns in name order), sorted: the file as a
    multiset of rows, read by polars' streaming engine."""
    names = sorted(pl.read_parquet_schema(path))
    frame = (
        pl.scan_parquet(path)
        .select(pl.struct([pl.col(c) for c in names]).hash(seed=0).alias("h"))
        .collect(engine="streaming")
    )
    return frame.get_column("h").sort()


def compare(folder: Path, other: str = "in-memory") -> dict[str, dict[str, int]]:
    """Rows only in the bounded run's and only in the ``other`` run's clean, quarantine and
    failures tables (as multisets of whole rows, reasons and raw values included)."""
    out: dict[str, dict[str, int]] = {}
    for which in COMPARED:
        paths = {mode: _table_path(folder, mode, which) for mode in ("bounded", other)}
        if any(p is None or not p.exists() for p in paths.values()):
            out[which] = {"missing": 1}
            continue
        hashes = {mode: row_hashes(p) for mode, p in paths.items() if p is not None}
        counts = {mode: pl.DataFrame({"h": h}).group_by("h").len() for mode, h in hashes.items()}
        joined = counts["bounded"].join(counts[other], on="h", how="full", coalesce=True)
        a = joined.get_column("len").cast(pl.Int64).fill_null(0)
        b = joined.get_column("len_right").cast(pl.Int64).fill_null(0)
        out[which] = {
            "rows_bounded": hashes["bounded"].len(),
            f"rows_{other.replace('-', '_')}": hashes[other].len(),
            "only_bounded": int((a - b).clip(lower_bound=0).sum()),
            f"only_{other.replace('-', '_')}": int((b - a).clip(lower_bound=0).sum()),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or the check) and print the table."""
    p = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rows", type=int, nargs="+", default=[1_000_000], help="partition sizes")
    p.add_argument("--data", type=Path, help="where generated partitions are cached and run")
    p.add_argument("--in-memory", action="store_true", help="also run the in-memory path")
    p.add_argument("--check", action="store_true", help="compare bounded and in-memory outputs")
    p.add_argument("--detector", default="ecod", help="the detector on the float columns")
    p.add_argument(
        "--dask", action="store_true", help="also run on a local Dask cluster of two workers"
    )
    args = p.parse_args(argv)
    if any(r < 1 for r in args.rows):
        p.error(f"--rows: each size must be 1 or more, got {args.rows}")
    data = args.data or Path(tempfile.mkdtemp(prefix="sluice-scale-"))
    data.mkdir(parents=True, exist_ok=True)
    modes = ["bounded", "in-memory"] if args.in_memory or args.check else ["bounded"]
    modes += ["dask"] if args.dask else []
    load = os.getloadavg()
    print(f"data folder {data}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    results: list[Measured] = []
    checks: dict[str, dict[str, dict[str, int]]] = {}
    for rows in args.rows:
        results += bench_size(data, rows, modes, args.detector)
        if args.check:
            checks[label(rows)] = compare(data / f"rows-{rows}")
            if args.dask:
                checks[f"{label(rows)} dask"] = compare(data / f"rows-{rows}", "dask")
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}\n")
    print(table(results))
    (data / "results.json").write_text(
        json.dumps({"runs": [asdict(m) for m in results], "check": checks}, indent=1)
    )
    if not args.check:
        return 0
    differ = False
    print()
    for size, tables in checks.items():
        for which, got in tables.items():
            same = got.get("only_bounded") == 0 and not any(
                v for k, v in got.items() if k.startswith("only_")
            )
            differ |= not same
            verdict = "identical" if same else "DIFFER"
            print(f"check {size} {which}: {verdict} {json.dumps(got)}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
