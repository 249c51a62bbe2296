"""Run inside a private mount namespace whose ``<root>/out`` is a small tmpfs (see test_faults).

Screens a small partition, then a partition too big for the filesystem, then (after remounting
the filesystem read-only) a changed one, and prints one JSON line: the two error messages,
whether the first outputs stayed byte for byte as they were, and what was left behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from sluice.core.errors import SluiceError
from sluice.pipeline import run_partition
from tests.robustness.corpus import csv_text, good
from tests.robustness.support import leftovers, snapshot, write_dataset

DAY = "2024-01-01"


def _attempt(spec: Path) -> str:
    try:
        run_partition(str(spec), DAY)
    except SluiceError as exc:
        return str(exc)
    return "no error"


def main(root: Path) -> dict[str, object]:
    """Screen, overfill, remount read-only; report what happened."""
    out = root / "out"
    spec = write_dataset(root, {DAY: csv_text(*[good(i) for i in range(20)])})
    run_partition(str(spec), DAY)
    before = snapshot(out)
    rng = np.random.default_rng(0)
    big = [f"b{i},1.5,1,,{rng.bytes(200_000).hex()}" for i in range(15)]
    write_dataset(root, {DAY: csv_text(*big)})
    full = _attempt(spec)
    intact_full = snapshot(out) == before
    subprocess.run(["mount", "-o", "remount,ro", str(out)], check=True)
    write_dataset(root, {DAY: csv_text(*[good(i) for i in range(21)])})
    read_only = _attempt(spec)
    return {
        "full": full,
        "read_only": read_only,
        "intact_after_full": intact_full,
        "intact_after_read_only": snapshot(out) == before,
        "leftovers": leftovers(out),
    }


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
