"""Every sluice reader of clean output reads Delta tables at the manifest's versions: the
reference window, skip-if-done, report rebuild, drift, baselines and sluice audit; review,
release and replay, built for the POSIX layout, refuse them clearly."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from flows.idempotence import check_done
from sluice.audit.lookup import audit_row
from sluice.audit.retention import plan as retention_plan
from sluice.config import load_spec
from sluice.pipeline import reference_rows, run_partition, verified_clean
from sluice.pipeline.release import review_partition
from sluice.pipeline.replay import CannotReplay, replay
from sluice.report.baseline import save_baseline
from sluice.report.build import rebuild_report
from sluice.report.drift import DriftPolicy, load_reference, reference_files, table_partitions
from tests.sluice.storage.conftest import DAYS, trips_spec


def test_reference_skip_if_done_and_report_rebuild_read_the_tables(
    demo_raw: Path, tmp_path: Path
) -> None:
    spec = trips_spec(tmp_path, demo_raw, name="trips_readers", delta=True, reference=1)
    first = run_partition(str(spec), DAYS[0])
    second = run_partition(str(spec), DAYS[1])
    m1 = json.loads(Path(first["manifest"]).read_text(encoding="utf-8"))
    m2 = json.loads(Path(second["manifest"]).read_text(encoding="utf-8"))
    clean = m1["tables"]["clean"]
    assert m2["screen"]["reference"] == [
        {
            "partition": str(DAYS[0]),
            "table": clean["uri"],
            "table_version": clean["version"],
            "rows": m1["counts"]["clean"],
        }
    ]
    loaded = load_spec(spec)
    part2 = loaded.spec.partition.parse(DAYS[1])
    rows, used = reference_rows(loaded, part2, ["fare_amount"])
    assert rows is not None
    assert rows.height == m1["counts"]["clean"]
    assert used[0]["table_version"] == clean["version"]

    part1 = loaded.spec.partition.parse(DAYS[0])
    done = check_done(loaded, part1)
    assert done.done, done.reason
    rebuilt = rebuild_report(str(spec), str(DAYS[1]))
    assert rebuilt.path.exists()
    found = table_partitions(loaded.output_root("reports"), part2)
    assert [str(p) for p, _ in found] == [str(DAYS[0]), str(DAYS[1])]
    files, policy = reference_files(tmp_path, part2, DriftPolicy(), None, candidates=found)
    reference = load_reference(files, ["fare_amount"], policy)
    assert reference.height == min(m1["counts"]["clean"], policy.rows_per_partition)

    reports = loaded.output_root("reports")
    saved, left = save_baseline(
        reports, dataset=loaded.name, name="first", partitions=[part1], rows=500
    )
    assert left == []
    assert saved.partitions[0]["sha256"] == f"{clean['uri']}@v{clean['version']}"
    assert saved.partitions[0]["rows"] == m1["counts"]["clean"]

    quarantine = pl.read_delta(m1["tables"]["quarantine"]["uri"])
    held = int(quarantine["_row_id"][0])
    answer = audit_row(reports, loaded.name, held)
    assert answer.where == "quarantine"
    assert "Delta version" in answer.file
    assert answer.failures
    kept = int(pl.read_delta(clean["uri"])["_row_id"][0])
    assert audit_row(reports, loaded.name, kept).where == "clean"

    _, held_rows = review_partition(str(spec), DAYS[0], tmp_path / "review.csv")
    assert held_rows == m1["counts"]["quarantine"]
    with pytest.raises(CannotReplay, match="Delta tables"):
        replay(Path(first["manifest"]))
    with spec.open("a", encoding="utf-8") as f:
        f.write("retention:\n  outputs: 1d\n")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    assert [i.kind for i in retention_plan(load_spec(spec), later).expired] == []

    shutil.rmtree(clean["uri"])
    assert verified_clean(Path(first["manifest"]), ["fare_amount"]) is None
    gone = check_done(loaded, part1)
    assert not gone.done
    assert "clean table" in gone.reason
