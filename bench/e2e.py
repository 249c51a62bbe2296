"""Benchmark: sluice end to end against the read + write floor and the peer script.

    python -m bench.e2e                       # 1 M rows x 20 columns, CSV and Parquet
    python -m bench.e2e --rows 10000000       # 10 M (long)
    python -m bench.e2e --rows 1000000 --rows 10000000 --formats parquet
    python -m bench.e2e --formats ndjson      # NDJSON (one JSON object a line)

For each size and format, one partition of :func:`bench.validate.generate` data is screened by
(each a fresh process, timed from start to exit):

- the floor: polars reads the file and writes it to Parquet;
- the peer (:mod:`bench.peer`): pandas + GX (the same suite) + PyOD (IForest, ECOD) + to_parquet;
- ``sluice run`` in process, with ECOD and with the default detector, on the same 8 float
  columns, flagged rows quarantined.

It prints CPU seconds (the process and every descendant it waited for) and the part of them
spent in the kernel (mostly zeroing the fresh memory a run touches), wall seconds, the peak
RSS of the whole process tree (sampled every 0.1 s) and the ratios to the peer and the floor;
then a fixed-cost row on 1,000 rows: ``sluice run`` in process, ``sluice run --prefect``
(Prefect's temporary API) and ``run_partition`` in a fresh interpreter, all with ECOD, and
``sluice run`` with the default detector. Results also go to
``OUT/results.json``.

sluice's own modules are byte-compiled first, as ``pip install`` leaves them (the peers' packages
are installed so): otherwise a shell with ``PYTHONDONTWRITEBYTECODE`` set would make every
sluice command compile its sources again, about 0.15 CPU s.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from bench.peer import FEATURES
from bench.validate import SUITE, generate

ROOT = Path(__file__).resolve().parent.parent
DAY = "2024-01-01"
PAGE = os.sysconf("SC_PAGE_SIZE")
SCHEMA: dict[str, Any] = {
    "trip_id": "string",
    "vendor_id": "int",
    "medallion": "string",
    "pickup_at": {"type": "datetime", "format": "%Y-%m-%d %H:%M:%S"},
    "dropoff_at": {"type": "datetime", "format": "%Y-%m-%d %H:%M:%S"},
    "passenger_count": "int",
    "trip_distance": "float",
    "pickup_zone": "int",
    "dropoff_zone": "int",
    "payment_type": "string",
    "fare_amount": "float",
    "tip_amount": "float",
    "total_amount": "float",
    "tolls_amount": "float",
    "extra": "float",
    "mta_tax": "float",
    "rate_code": "int",
    "store_and_fwd_flag": "string",
    "congestion_surcharge": "float",
    "notes": "string",
}
FLOOR = """
import sys, polars as pl
src, out = sys.argv[1], sys.argv[2]
if src.endswith(".parquet"):
    frame = pl.read_parquet(src)
elif src.endswith(".ndjson"):
    frame = pl.read_ndjson(src)
else:
    frame = pl.read_csv(src)
frame.write_parquet(out)
"""
IN_PROCESS = """
import sys
from sluice.pipeline import run_partition
print(run_partition(sys.argv[1], sys.argv[2])["status"])
"""


@dataclass(frozen=True)
class Measured:
    """One command's cost: CPU (children included; ``sys_s`` of it in the kernel), wall, peak
    RSS of its process tree."""

    name: str
    cpu_s: float
    wall_s: float
    peak_rss_mb: float
    code: int
    sys_s: float = 0.0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as f:
                found.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return found


def tree_rss(pid: int) -> int:
    """Bytes resident in ``pid`` and all its descendants now."""
    total, todo, seen = 0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/statm", encoding="ascii") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
        todo.extend(_children(p))
    return total


def measure(name: str, cmd: list[str], env: dict[str, str], log: Path) -> Measured:
    """Run ``cmd`` to its end; its output goes to ``log``."""
    with log.open("w") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        peak = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, tree_rss(proc.pid))
            time.sleep(0.1)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    peak = max(peak, usage.ru_maxrss * 1024)
    got = Measured(
        name,
        round(cpu, 2),
        round(wall, 2),
        round(peak / 2**20, 1),
        proc.returncode,
        sys_s=round(usage.ru_stime, 2),
    )
    print(
        f"  {name}: {got.cpu_s} CPU s ({got.sys_s} in the kernel), {got.wall_s} s, "
        f"{got.peak_rss_mb} MB, exit {got.code}"
    )
    return got


def write_spec(folder: Path, fmt: str, detector: str) -> Path:
    """A dataset spec over the generated file, with the bench suite and one detector."""
    (folder / "suite.json").write_text(json.dumps(SUITE), encoding="utf-8")
    spec = {
        "name": f"e2e_{fmt}_{detector}",
        "source": {"path": f"raw/date={{date}}/trips.{fmt}", "format": fmt},
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
        "outputs": {side: f"out-{detector}/{side}" for side in ("clean", "quarantine", "reports")},
    }
    path = folder / f"{fmt}-{detector}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def make_data(folder: Path, rows: int, fmt: str) -> Path:
    """Generate the partition's file in ``fmt``."""
    target = folder / "raw" / f"date={DAY}" / f"trips.{fmt}"
    target.parent.mkdir(parents=True, exist_ok=True)
    frame = generate(rows)
    if fmt == "csv":
        frame.write_csv(target, datetime_format="%Y-%m-%d %H:%M:%S")
    elif fmt == "ndjson":  # timestamps as the schema's format, like the CSV's
        text = [pl.col(c).dt.strftime("%Y-%m-%d %H:%M:%S") for c in ("pickup_at", "dropoff_at")]
        frame.with_columns(text).write_ndjson(target)
    else:
        frame.write_parquet(target)
    return target


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "SLUICE_PREFECT")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")
    return env


PACKAGES = ("sluice", "detectors", "expectations", "flows")


def byte_compile() -> None:
    """Byte-compile sluice's packages, as an installation does (unchanged files are skipped)."""
    for name in PACKAGES:
        if not compileall.compile_dir(ROOT / name, quiet=1):
            raise SystemExit(f"cannot byte-compile {ROOT / name}")


def sluice_cmd(*args: str) -> list[str]:
    """The installed ``sluice`` command with ``args``."""
    return [str(Path(sys.executable).with_name("sluice")), *args]


def bench_size(
    work: Path, rows: int, fmt: str, detectors: list[str], peers: list[str]
) -> list[Measured]:
    """Floor, peers and sluice on one generated file."""
    folder = work / f"{rows}-{fmt}"
    data = make_data(folder, rows, fmt)
    env, logs = _env(), folder / "logs"
    logs.mkdir(exist_ok=True)
    print(f"{rows:,} rows, {fmt} ({data.stat().st_size / 2**20:.0f} MB):")
    out = [
        measure(
            "floor",
            [sys.executable, "-c", FLOOR, str(data), str(folder / "floor.parquet")],
            env,
            logs / "floor.log",
        )
    ]
    for det in peers:
        out.append(
            measure(
                f"peer {det}",
                [
                    sys.executable,
                    "-m",
                    "bench.peer",
                    str(data),
                    str(folder / f"peer-{det}"),
                    "--detector",
                    det,
                ],
                env,
                logs / f"peer-{det}.log",
            )
        )
    for det in detectors:
        spec = write_spec(folder, fmt, det)
        out.append(
            measure(
                f"sluice {det}",
                sluice_cmd("run", str(spec), "--partition", DAY, "--force"),
                env,
                logs / f"sluice-{det}.log",
            )
        )
        stages = stage_seconds(folder / f"out-{det}" / "reports" / f"date={DAY}" / "manifest.json")
        if stages:
            print("    stages (wall s): " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    return out


def stage_seconds(manifest: Path) -> dict[str, float]:
    """The wall seconds of each stage a run's manifest records (``timings_s``), if it has one."""
    try:
        timings = json.loads(manifest.read_text(encoding="utf-8")).get("timings_s") or {}
    except (OSError, ValueError):
        return {}
    order = ("ingest", "validate", "screen", "write", "report")
    return {k: float(timings[k]) for k in order if isinstance(timings.get(k), int | float)}


def fixed_cost(work: Path) -> list[Measured]:
    """1,000 rows: ``sluice run`` in process and with Prefect, and a bare run_partition (ECOD);
    and ``sluice run`` with the default detector."""
    folder = work / "1000-csv"
    make_data(folder, 1000, "csv")
    spec = write_spec(folder, "csv", "ecod")
    default = write_spec(folder, "csv", "default")
    env, logs = _env(), folder / "logs"
    logs.mkdir(exist_ok=True)
    print("1,000 rows, csv: fixed cost")
    run = ("run", str(spec), "--partition", DAY, "--force")
    return [
        measure("sluice run", sluice_cmd(*run), env, logs / "run.log"),
        measure(
            "sluice run, default",
            sluice_cmd("run", str(default), "--partition", DAY, "--force"),
            env,
            logs / "run-default.log",
        ),
        measure("sluice run --prefect", sluice_cmd(*run, "--prefect"), env, logs / "prefect.log"),
        measure(
            "run_partition",
            [sys.executable, "-c", IN_PROCESS, str(spec), DAY],
            env,
            logs / "run_partition.log",
        ),
    ]


def table(results: dict[str, list[Measured]]) -> str:
    """The results as a Markdown table with CPU ratios to the peer (IForest) and the floor."""
    lines = [
        "| data | command | CPU s | of which kernel s | wall s | peak RSS MB "
        "| CPU / peer IForest | CPU / peer, same detector | CPU / floor |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    same = {"sluice ecod": "peer ecod", "sluice default": "peer iforest"}
    for label, ms in results.items():
        by = {m.name: m for m in ms}
        peer, floor = by.get("peer iforest"), by.get("floor")
        for m in ms:
            rp = f"{m.cpu_s / peer.cpu_s:.2f}" if peer and peer.cpu_s else ""
            twin = by.get(same.get(m.name, ""))
            rs = f"{m.cpu_s / twin.cpu_s:.2f}" if twin and twin.cpu_s else ""
            rf = f"{m.cpu_s / floor.cpu_s:.1f}" if floor and floor.cpu_s else ""
            failed = "" if m.code == 0 or m.name.startswith("sluice") else f" (exit {m.code})"
            lines.append(
                f"| {label} | {m.name}{failed} | {m.cpu_s} | {m.sys_s} | {m.wall_s} "
                f"| {m.peak_rss_mb} "
                f"| {rp} | {rs} | {rf} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    p = argparse.ArgumentParser(prog="python -m bench.e2e", description=__doc__)
    p.add_argument("--rows", type=int, action="append", help="rows (repeatable; default 1M)")
    p.add_argument(
        "--formats", nargs="+", choices=("csv", "parquet", "ndjson"), default=["csv", "parquet"]
    )
    p.add_argument("--detectors", nargs="+", default=["ecod", "default"])
    p.add_argument(
        "--peers",
        nargs="*",
        choices=("iforest", "ecod"),
        default=["iforest", "ecod"],
        help="peer scripts to run (none: `--peers` alone, e.g. at 10M rows)",
    )
    p.add_argument("--out", type=Path, help="work folder (default: a temporary one)")
    p.add_argument("--no-fixed-cost", action="store_true", help="skip the 1,000-row row")
    args = p.parse_args(argv)
    work = args.out or Path(tempfile.mkdtemp(prefix="sluice-e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    byte_compile()
    load = os.getloadavg()
    print(f"work folder {work}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    results: dict[str, list[Measured]] = {}
    if not args.no_fixed_cost:
        results["1k csv"] = fixed_cost(work)
    for rows in args.rows or [1_000_000]:
        for fmt in args.formats:
            label = f"{rows / 1e6:g}M {fmt}" if rows >= 1_000_000 else f"{rows:,} {fmt}"
            results[label] = bench_size(work, rows, fmt, args.detectors, args.peers)
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}\n")
    print(table(results))
    (work / "results.json").write_text(
        json.dumps({k: [asdict(m) for m in v] for k, v in results.items()}, indent=1)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
