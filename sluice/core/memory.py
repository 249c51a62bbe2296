"""This process's peak memory, and a log of each stage's time and peak for benchmarks.

``SLUICE_STAGE_LOG`` names a file to which every stage of a run appends one JSON line: run id,
stage, seconds, and this process's peak resident set so far (``VmHWM``; the high-water mark is
never reset, so a stage's line is the peak of the process up to its end: the stage that raised
it is the first whose line shows the new value). bench/scale reads it; runs without the setting
write nothing.
"""

from __future__ import annotations

import json
import os
import resource

STAGE_LOG_ENV = "SLUICE_STAGE_LOG"


def peak_rss() -> int:
    """This process's peak resident set size in bytes (Linux ``VmHWM``, else ``ru_maxrss``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def note_stage(run_id: str, stage: str, seconds: float) -> None:
    """Append the stage's line to ``SLUICE_STAGE_LOG`` when it is set (never fails the run)."""
    path = os.environ.get(STAGE_LOG_ENV, "").strip()
    if not path:
        return
    line = {
        "run_id": run_id,
        "stage": stage,
        "seconds": round(seconds, 4),
        "peak_rss_bytes": peak_rss(),
        "pid": os.getpid(),
    }
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
    except OSError:
        pass
