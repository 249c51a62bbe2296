"""The demo with Delta outputs on a local S3-compatible server (``make demo-s3``).

Starts moto's S3 server on 127.0.0.1 (tests/s3.py), generates the demo trips under ``--dir``,
writes a copy of ``datasets/trips.yaml`` whose clean, quarantine and failures outputs are Delta
tables in ``s3://sluice-demo/trips`` (reports stay local), screens each day in this process (no
Prefect), and reads the clean table back with polars at the version each manifest names. The
server stops when the script ends; pass ``--keep`` to leave it running for exploring.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    """Run the demo against a local S3 server; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="var/demo-s3", help="raw data, spec and reports")
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--keep", action="store_true", help="wait for Enter before stopping")
    args = parser.parse_args()

    import polars as pl

    from sluice.demo_data import generate
    from sluice.pipeline import run_partition
    from tests.s3 import s3_server

    root = Path(args.dir).resolve()
    days = [dt.date(2024, 3, 4) + dt.timedelta(days=i) for i in range(args.days)]
    with s3_server(bucket="sluice-demo") as server:
        os.environ.update(server.env())
        print(f"S3 server: {server.endpoint} (moto, bucket {server.bucket})")
        generate(root, days, rows_per_partition=args.rows)
        text = (ROOT / "datasets" / "trips.yaml").read_text(encoding="utf-8")
        text = text.replace("${SLUICE_DEMO_DIR:-../var/demo}", str(root))
        text = text.replace("../expectations/", f"{ROOT}/expectations/")
        head = text.split("\noutputs:", 1)[0]
        spec = root / "trips.yaml"
        spec.write_text(
            head + "\noutputs:\n  format: delta\n"
            f"  clean: s3://{server.bucket}/trips/clean\n"
            f"  quarantine: s3://{server.bucket}/trips/quarantine\n"
            f"  reports: {root}/reports\n",
            encoding="utf-8",
        )
        for day in days:
            s = run_partition(str(spec), day)
            c = s["counts"]
            manifest = json.loads(Path(s["manifest"]).read_text(encoding="utf-8"))
            clean = manifest["tables"]["clean"]
            rows = (
                pl.scan_delta(clean["uri"], version=clean["version"])
                .filter(pl.col("pickup_date") == clean["partition_value"])
                .select(pl.len())
                .collect()
                .item()
            )
            print(
                f"  {day}: {c['in']:,} in, {c['clean']:,} clean, {c['quarantine']:,} "
                f"quarantined ({s['status']}); {clean['uri']} version {clean['version']} "
                f"holds {rows:,} clean rows for the day"
            )
        print(f"manifests and reports: {root / 'reports'}")
        if args.keep:
            input("S3 server running; press Enter to stop it ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
