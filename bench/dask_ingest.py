"""Wall and peak RSS of one partition's bounded ingest, in one process and split into tasks on a
local Dask cluster of two worker processes (issue 16, part b).

``python -m bench.dask_ingest --csv /var/tmp/scale/rows-10000000/raw/date=2024-01-01/trips.csv
--out /var/tmp/dask-ingest`` writes a dataset spec under ``--out`` whose source is that CSV's
partition (only read), then runs the ingest stage twice in child processes: ``single`` (the
bounded ingest) and ``split`` (:func:`sluice.pipeline.dask_partition.ingest_split` on a
scheduler and two workers started here on 127.0.0.1, which import sluice's ingest as they
start). It prints wall seconds, the client's peak RSS and each worker's, and whether the three
work files are byte for byte the same.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import import_module
from pathlib import Path
from typing import Any

import psutil

from bench.e2e import DAY, ROOT
from bench.scale import tree_rss, write_spec

SAMPLE_S = 0.2
QUIET = ("--no-dashboard",)
WORK_FILES = ("frame.parquet", "raw.parquet", "ingest_failures.parquet")
CHILD = """
import hashlib, json, logging, sys, time
logging.basicConfig(level=logging.INFO, format="%(message)s")
from sluice.pipeline.run import Run
from sluice.pipeline.stages import _ingest
spec, mode, address = sys.argv[1], sys.argv[2], sys.argv[3]
run = Run.prepare(spec, "DAY", check_detectors=False)
t0 = time.perf_counter()
if mode == "single":
    facts = _ingest(run)
else:
    from sluice.pipeline.cluster import Address, connect
    from sluice.pipeline.dask_backfill import no_workers_seconds
    from sluice.pipeline.dask_partition import DaskTasks, ingest_split
    where = Address(address, "bench")
    client = connect(where)
    tasks = DaskTasks(client, where, no_workers_seconds())
    facts = _ingest(run, bounded=lambda r: ingest_split(r, tasks))
    client.close()
seconds = time.perf_counter() - t0
sums = {}
for name in ("frame.parquet", "raw.parquet", "ingest_failures.parquet"):
    digest = hashlib.sha256()
    with run.file(name).open("rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    sums[name] = digest.hexdigest()
run.discard()
print(json.dumps({"seconds": seconds, "rows": facts["rows"], "sha256": sums}))
""".replace("DAY", DAY)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def local_cluster(folder: Path, env: dict[str, str]) -> Iterator[tuple[str, list[Any], list[Any]]]:
    """A scheduler and two one-thread workers on 127.0.0.1, stopped on the way out: the
    scheduler's address, the workers' processes and the scheduler's (psutil)."""
    dask = str(Path(sys.executable).with_name("dask"))
    address = f"tcp://127.0.0.1:{_port()}"
    log = (folder / "cluster.log").open("ab")
    procs = [
        subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], *QUIET],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    ]
    try:
        for i in range(2):
            args = [dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard"]
            args += ["--host", "127.0.0.1", "--local-directory", str(folder / f"worker{i}")]
            args += ["--preload", "sluice.pipeline.dask_partition"]
            procs.append(subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT))
        client: Any = import_module("distributed").Client(address, timeout=60, set_as_default=False)
        client.wait_for_workers(2, timeout=120)
        client.close()
        yield address, [psutil.Process(p.pid) for p in procs[1:]], [psutil.Process(procs[0].pid)]
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait()
        log.close()


def run_child(spec: Path, mode: str, address: str, env: dict[str, str], workers: list[Any]) -> Any:
    """The ingest stage in a child process; its facts with the peaks sampled here."""
    cmd = [sys.executable, "-c", CHILD, str(spec), mode, address]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    watched = psutil.Process(proc.pid)
    peak = 0
    worker_peaks = [0] * len(workers)
    while proc.poll() is None:
        peak = max(peak, tree_rss(watched))
        for i, w in enumerate(workers):
            worker_peaks[i] = max(worker_peaks[i], tree_rss(w))
        time.sleep(SAMPLE_S)
    out, _ = proc.communicate()
    got: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    got["client_peak_mb"] = round(peak / 2**20)
    got["worker_peaks_mb"] = [round(p / 2**20) for p in worker_peaks]
    return got


def main(argv: list[str] | None = None) -> int:
    """Measure, print one JSON line per mode and whether the work files agree."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--csv", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)
    args = p.parse_args(argv)
    folder = args.out
    folder.mkdir(parents=True, exist_ok=True)
    spec = write_spec(folder, "dask", "iforest")
    source = f"{args.csv.resolve().parent.parent}/date={{date}}/{args.csv.name}"
    spec.write_text(spec.read_text().replace("raw/date={date}/trips.csv", source))
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL",)}
    env.update(SLUICE_BOUNDED="1", SLUICE_PREFECT="0")
    env.setdefault("SLUICE_MEMORY_BUDGET", "4G")
    env["PYTHONPATH"] = str(ROOT)
    results = {}
    results["single"] = run_child(spec, "single", "", env, [])
    print(json.dumps({"mode": "single", **results["single"]}), flush=True)
    with local_cluster(folder, env) as (address, workers, _):
        results["split"] = run_child(spec, "split", address, env, workers)
    print(json.dumps({"mode": "split", **results["split"]}), flush=True)
    same = {n: results["single"]["sha256"][n] == results["split"]["sha256"][n] for n in WORK_FILES}
    print(json.dumps({"identical": same}))
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
