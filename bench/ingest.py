"""Benchmark: the ingest stage alone, in memory and bounded (issue 16), on one generated CSV.

    python -m bench.ingest                          # 1 M rows x 20 columns
    python -m bench.ingest --rows 1000000 --rows 10000000

For each size, :func:`bench.validate.generate` data (written 1 M rows at a time, so generating
10 M rows holds 1 M) becomes one partition's CSV, and three fresh processes run on it: the ingest
stage with ``SLUICE_BOUNDED=0`` and with ``SLUICE_BOUNDED=1`` (``sluice.pipeline.stages._ingest``
on a prepared run), and pyarrow's streaming CSV reader (``pyarrow.csv.open_csv``) reading every
column as text, the floor of a streamed read. Prints wall and CPU seconds and the peak RSS of
each process (sampled every 0.1 s, and ``ru_maxrss``); a process passing ``--limit`` is stopped
and reported so (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from bench.e2e import DAY, ROOT, _env, tree_rss, write_spec
from bench.validate import generate

STAGE = """
import json, sys, time
from sluice.pipeline.budget import batch_rows
from sluice.pipeline.run import Run
from sluice.pipeline.stages import _ingest
run = Run.prepare(sys.argv[1], sys.argv[2], check_detectors=False)
t0 = time.perf_counter()
facts = _ingest(run)
print(json.dumps({"rows": facts["rows"], "batch_rows": batch_rows(23),
                  "seconds": round(time.perf_counter() - t0, 2)}))
run.discard()
"""

FLOOR = """
import sys, time
import pyarrow as pa, pyarrow.csv as pacsv
names = pacsv.open_csv(sys.argv[1]).schema.names
t0 = time.perf_counter()
reader = pacsv.open_csv(sys.argv[1], convert_options=pacsv.ConvertOptions(
    column_types=dict.fromkeys(names, pa.string())))
rows = sum(batch.num_rows for batch in reader)
print(f'{{"rows": {rows}, "seconds": {time.perf_counter() - t0:.2f}}}')
"""


def make_csv(folder: Path, rows: int, step: int = 1_000_000) -> Path:
    """The partition's CSV, generated ``step`` rows at a time."""
    target = folder / "raw" / f"date={DAY}" / "trips.csv"
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        for i, start in enumerate(range(0, rows, step)):
            frame = generate(min(step, rows - start), seed=7 + i)
            frame.write_csv(out, include_header=i == 0, datetime_format="%Y-%m-%d %H:%M:%S")
    return target


def measure(name: str, cmd: list[str], env: dict[str, str], limit: int) -> None:
    """Run ``cmd``; print its wall, CPU, peak RSS and what it printed."""
    import subprocess

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    peak, stopped = 0, False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        peak = max(peak, tree_rss(proc.pid))
        if peak > limit:
            proc.kill()
            stopped = True
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    peak = max(peak, usage.ru_maxrss * 1024)
    out = proc.stdout.read().strip() if proc.stdout else ""
    cpu = usage.ru_utime + usage.ru_stime
    what = f"stopped past {limit / 2**30:.1f} GiB" if stopped else f"exit {status >> 8}"
    print(
        f"  {name}: {wall:.1f} s, {cpu:.1f} CPU s, peak RSS {peak / 2**20:.0f} MB, {what} {out}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    """Generate, then measure each size."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, action="append")
    p.add_argument("--work", type=Path, default=Path("/tmp/sluice-bench-ingest"))
    p.add_argument("--limit", type=float, default=5.0, help="GiB a process may reach")
    args = p.parse_args(argv)
    limit = int(args.limit * 2**30)
    for rows in args.rows or [1_000_000]:
        folder = args.work / str(rows)
        data = make_csv(folder, rows)
        spec = write_spec(folder, "csv", "iforest")
        print(f"{rows:,} rows, csv ({data.stat().st_size / 2**20:.0f} MB):", flush=True)
        env = _env()
        measure("pyarrow open_csv, as text", [sys.executable, "-c", FLOOR, str(data)], env, limit)
        for bounded in ("0", "1"):
            measure(
                f"ingest, SLUICE_BOUNDED={bounded}",
                [sys.executable, "-c", STAGE, str(spec), DAY],
                {**env, "SLUICE_BOUNDED": bounded},
                limit,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
