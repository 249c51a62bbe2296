"""Seconds, CPU and peak RSS of the bounded ingest and write stages alone (issues 16 and 17).

    python -m bench.bounded_io --data /var/tmp/scale --rows 1000000 10000000

Uses the partitions :mod:`bench.scale` caches under ``--data`` (``rows-N/raw/date=.../trips.csv``,
made by ``python -m bench.scale --rows N --data DIR`` when missing) with the spec it writes. Per
size, each in a fresh process with ``SLUICE_BOUNDED=1``: the ingest stage (prepare and ingest a
run, then discard it); then one process runs ingest, validate and screen and keeps the work
folder, and the write stage runs on a copy of it. Each stage's line of ``SLUICE_STAGE_LOG``
gives its seconds and the process's peak RSS at its end, with the CPU seconds of the process
(every thread) since the stage began or the previous stage's line; the process tree's peak is
sampled too. ``--profile DIR`` writes a cProfile of each measured stage there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.e2e import DAY
from bench.scale import partition_csv, tree_rss, write_spec

ROOT = Path(__file__).resolve().parent.parent
STAGE = """
import cProfile, json, os, shutil, sys, time
from pathlib import Path
import sluice.core.memory as memory
from sluice.pipeline import Run, stage_ingest, stage_screen, stage_validate, stage_write
from sluice.pipeline.run import RunRef
what, spec, ref_file, keep, profile = sys.argv[1:6]
cpu = {"at": time.process_time()}
real_note = memory.note_stage
def note_stage(run_id, stage, seconds):
    now = time.process_time()
    with open(os.environ["SLUICE_STAGE_LOG"] + ".cpu", "a") as f:
        f.write(json.dumps({"stage": stage, "cpu_s": round(now - cpu["at"], 2)}) + "\\n")
    cpu["at"] = now
    real_note(run_id, stage, seconds)
memory.note_stage = note_stage
for name in ("sluice.pipeline.run", "sluice.pipeline.commit"):
    sys.modules[name].note_stage = note_stage
profiler = cProfile.Profile() if profile else None
if what == "write":
    ref = RunRef.model_validate_json(Path(ref_file).read_text())
    shutil.rmtree(ref.work, ignore_errors=True)
    shutil.copytree(keep, ref.work)
    run = Run.resume(ref)
    if profiler:
        profiler.enable()
    cpu["at"] = time.process_time()
    stage_write(run)
else:
    run = Run.prepare(spec, "DAY")
    if profiler:
        profiler.enable()
    cpu["at"] = time.process_time()
    stage_ingest(run)
    if profiler:
        profiler.disable()
    if what == "prepare":
        stage_validate(run)
        stage_screen(run)
        shutil.rmtree(keep, ignore_errors=True)
        shutil.copytree(run.work, keep)
        Path(ref_file).write_text(run.ref.model_dump_json())
    run.discard()
if profiler:
    profiler.disable()
    profiler.dump_stats(profile)
""".replace('"DAY"', repr(DAY))


def measure(cmd: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run ``cmd``; its wall and CPU seconds, tree peak and the stage lines it logged."""
    log.unlink(missing_ok=True)
    t0 = time.perf_counter()
    proc = psutil.Popen(cmd, env={**env, "SLUICE_STAGE_LOG": str(log)})
    peak = 0
    cpu = 0.0
    while proc.poll() is None:
        try:
            peak = max(peak, tree_rss(proc))
            times = proc.cpu_times()
            cpu = times.user + times.system
        except psutil.Error:
            pass
        time.sleep(0.05)
    stages = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    cpu_log = log.with_name(log.name + ".cpu")
    cpus = (
        [json.loads(line) for line in cpu_log.read_text().splitlines()] if cpu_log.exists() else []
    )
    cpu_log.unlink(missing_ok=True)
    cpu_of = {c["stage"]: c["cpu_s"] for c in cpus}
    return {
        "code": proc.returncode,
        "wall_s": round(time.perf_counter() - t0, 1),
        "cpu_s": round(cpu, 1),
        "tree_peak_mb": round(peak / 2**20),
        "stages": {
            s["stage"]: {
                "s": s["seconds"],
                "cpu_s": cpu_of.get(s["stage"]),
                "peak_mb": round(s["peak_rss_bytes"] / 2**20),
            }
            for s in stages
        },
    }


def bench_size(data: Path, rows: int, env: dict[str, str], profile: Path | None) -> dict[str, Any]:
    """Measure ingest, then write, on the partition of ``rows`` rows."""
    partition_csv(data, rows)
    folder = data / f"rows-{rows}"
    spec = write_spec(folder, "bounded", "ecod")
    scratch = Path(tempfile.mkdtemp(prefix="sluice-io-"))
    ref, keep, log = scratch / "ref.json", scratch / "work", scratch / "stages.jsonl"
    out: dict[str, Any] = {"rows": rows}
    try:
        for what in ("ingest", "prepare", "write"):
            prof = str(profile / f"{what}-{rows}.prof") if profile and what != "prepare" else ""
            cmd = [sys.executable, "-c", STAGE, what, str(spec), str(ref), str(keep), prof]
            got = measure(cmd, env, log)
            if what != "prepare":
                out[what] = got
            if got["code"]:
                out["failed"] = what
                break
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    """Print one JSON object per size."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--profile", type=Path, default=None)
    args = ap.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "SLUICE_PREFECT")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["SLUICE_BOUNDED"] = "1"
    env.setdefault("SLUICE_MEMORY_BUDGET", "4G")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    for rows in args.rows:
        print(json.dumps(bench_size(args.data, rows, env, args.profile)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
