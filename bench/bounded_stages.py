"""Peak RSS, CPU and wall of the screen and write stages, in memory and bounded (issue 16).

``python -m bench.bounded_stages --rows 1000000 10000000`` builds, per size, one partition's work
folder from :func:`bench.validate.generate` data (20 columns, planted errors): ingest and
validate run on chunks of ``--chunk`` rows, each chunk's work files appended to the partition's
as row groups, so building never holds the partition. Then each stage runs in its own process,
once per path, on the same work files (``SLUICE_BOUNDED=0`` then ``1``; the write stage on a
copy per path), with the default detector on :data:`bench.peer.FEATURES`. A process whose tree
passes ``--kill-above`` MB is stopped and reported as such.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.e2e import DAY, ROOT, SCHEMA, tree_rss
from bench.peer import FEATURES
from bench.validate import SUITE, generate

BUILD = """
import json, sys
from pathlib import Path
from sluice.ingest import ingest
from sluice.pipeline import Run
from sluice.pipeline.bounded_screen import StreamWriter, arrow_schema
from sluice.screening import check_rows
spec, chunks = sys.argv[1], sys.argv[2:]
run = Run.prepare(spec, "DAY")
run.work.mkdir(parents=True)
writers = {}
rows = failures = bad = 0
facts = None
for chunk in chunks:
    got = ingest(run.loaded, run.partition, [chunk])
    checked = check_rows(got.frame, got.failures, run.suite, engine="polars", keys=[])
    for name, frame in (("frame", got.frame), ("raw", got.raw),
                        ("ingest_failures", got.failures),
                        ("validation_failures", checked.failures)):
        if name not in writers:
            writers[name] = StreamWriter(run.file(name + ".parquet"), arrow_schema(frame.schema))
        writers[name].write(frame)
    rows += got.frame.height
    failures += got.failures.height
    bad += checked.failures.height
    facts = (got, checked)
for w in writers.values():
    w.close()
got, checked = facts
run.record("ingest", 0.0, rows=rows, inputs=[f.as_dict() for f in got.files],
           missing_columns=[], extra_columns=[], aliases=got.aliases_used,
           retyped_columns=got.retyped_columns, failures=failures)
run.record("validate", 0.0, engine="polars", verdicts=checked.verdicts,
           critical_failed=False, failures=bad, keys=checked.keys)
print(run.ref.model_dump_json())
""".replace('"DAY"', repr(DAY))
STAGE = """
import sys
from sluice.pipeline import Run, stage_screen, stage_write
from sluice.pipeline.run import RunRef
run = Run.resume(RunRef.model_validate_json(open(sys.argv[1]).read()))
(stage_screen if sys.argv[2] == "screen" else stage_write)(run)
"""


def _measure(cmd: list[str], env: dict[str, str], kill_above_mb: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    before = os.times()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    killed = False
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        if peak > kill_above_mb * 2**20:
            proc.kill()
            killed = True
            break
        time.sleep(0.05)
    out, err = proc.communicate()
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return {
        "wall_s": round(time.perf_counter() - t0, 1),
        "cpu_s": round(cpu, 1),
        "peak_rss_mb": round(peak / 2**20),
        "code": proc.returncode,
        "killed_above_mb": kill_above_mb if killed else None,
        "stdout": out.decode(errors="replace")[-2000:],
        "stderr": err.decode(errors="replace")[-2000:] if proc.returncode else "",
    }


def _spec(folder: Path) -> Path:
    (folder / "suite.json").write_text(json.dumps(SUITE), encoding="utf-8")
    spec = {
        "name": "bounded_stages",
        "source": {"path": "raw/date={date}/*.csv", "format": "csv"},
        "partition": {"key": "date", "kind": "day"},
        "schema": SCHEMA,
        "suite": "suite.json",
        "detectors": [{"name": "default", "features": list(FEATURES), "severity": "error"}],
        "outputs": {side: f"out/{side}" for side in ("clean", "quarantine", "reports")},
    }
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def bench_size(
    work: Path, rows: int, chunk: int, env: dict[str, str], kill_above_mb: float
) -> dict[str, Any]:
    """Build one partition's work folder, then measure each stage on each path once."""
    folder = work / f"rows-{rows}"
    raw = folder / "raw" / f"date={DAY}"
    raw.mkdir(parents=True)
    chunks = []
    for i, start in enumerate(range(0, rows, chunk)):
        path = raw / f"part-{i:04d}.csv"
        generate(min(chunk, rows - start), seed=7 + i).write_csv(
            path, datetime_format="%Y-%m-%d %H:%M:%S"
        )
        chunks.append(str(path))
    spec = _spec(folder)
    built = subprocess.run(
        [sys.executable, "-c", BUILD, str(spec), *chunks],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    ref = folder / "ref.json"
    ref.write_text(built.stdout.strip().splitlines()[-1])
    work_dir = Path(json.loads(ref.read_text())["work"])
    kept = folder / "work-copy"
    out: dict[str, Any] = {"rows": rows}
    for bounded in ("0", "1"):
        stage_env = {**env, "SLUICE_BOUNDED": bounded}
        cmd = [sys.executable, "-c", STAGE, str(ref), "screen"]
        out[f"screen_{bounded}"] = _measure(cmd, stage_env, kill_above_mb)
    shutil.copytree(work_dir, kept)
    for bounded in ("1", "0"):
        if not work_dir.exists():
            shutil.copytree(kept, work_dir)
        stage_env = {**env, "SLUICE_BOUNDED": bounded}
        cmd = [sys.executable, "-c", STAGE, str(ref), "write"]
        out[f"write_{bounded}"] = _measure(cmd, stage_env, kill_above_mb)
        manifest = folder / "out" / "reports" / f"date={DAY}" / "manifest.json"
        if manifest.exists():
            doc = json.loads(manifest.read_text())
            out[f"write_{bounded}"]["counts"] = {
                k: doc["counts"][k] for k in ("in", "clean", "quarantine")
            }
            out[f"write_{bounded}"]["checksums"] = doc["checksums"]
            manifest.unlink()
        shutil.rmtree(work_dir, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one JSON object per size."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--chunk", type=int, default=1_000_000)
    ap.add_argument("--kill-above", type=float, default=5000.0, help="MB")
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "SLUICE_PREFECT")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    work = args.work or Path(tempfile.mkdtemp(prefix="sluice-bounded-"))
    for rows in args.rows:
        result = bench_size(work, rows, args.chunk, env, args.kill_above)
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
