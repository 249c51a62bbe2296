"""The report's bounded readers: drift references by row group, scores copied by streaming."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sluice.config import Partition
from sluice.report.bounded import column_values, copy_columns, sample_rows
from sluice.report.build import compose
from sluice.report.drift import REF_PARTITION, DriftPolicy, load_reference
from sluice.report.html import render
from sluice.report.metrics import RunOutputs
from sluice.report.segments import segment_bias
from tests.conftest import SpecFactory
from tests.sluice.report.test_hostile_frames import RULES, earlier_runs, frames, outputs_of
from tests.sluice.report.test_segments import _outputs as segment_outputs


def _hostile(rows: int, seed: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    words = ["a", "é", "日本", "", " x ", "\u202e", "NULL", "🙂"]
    return pl.DataFrame(
        {
            "*": rng.normal(0, 1, rows),
            "^a.*$": [None if i % 3 == 0 else words[i % len(words)] for i in range(rows)],
            "all_null": pl.Series([None] * rows, dtype=pl.Float64),
            "n": pl.Series(rng.integers(0, 5, rows)).cast(pl.Int32),
            "when": [dt.date(2024, 1, 1) + dt.timedelta(days=i % 40) for i in range(rows)],
            "dup": [7] * rows,
        }
    )


def _write(frame: pl.DataFrame, path: Path, group: int) -> Path:
    frame.write_parquet(path, row_group_size=group)
    return path


@pytest.mark.parametrize(
    ("rows", "group", "n"),
    [
        (0, 10, 5),
        (1, 10, 5),
        (5, 10, 5),
        (6, 10, 5),
        (100, 7, 13),
        (1000, 64, 100),
        (1000, 1000, 999),
        (2500, 7, 1),
        (3000, 128, 2999),
    ],
)
def test_the_exact_sample_is_the_whole_file_sample(
    tmp_path: Path, rows: int, group: int, n: int
) -> None:
    path = _write(_hostile(rows), tmp_path / "p.parquet", group)
    for columns, seed in (([0, 1, 2, 3, 4], 0), ([5, 1], 11), ([3], 123)):
        whole = pl.read_parquet(path, columns=columns)
        expected = whole.sample(n, seed=seed) if whole.height > n else whole
        got = sample_rows(path, columns, n, seed)
        assert got.schema == expected.schema
        assert got.equals(expected), (rows, group, n, columns)


def test_row_groups_reads_a_seeded_choice_of_groups_holding_the_sample(tmp_path: Path) -> None:
    rows, group, n = 10_000, 500, 1_200
    frame = _hostile(rows).with_row_index("i")
    path = _write(frame, tmp_path / "p.parquet", group)
    assert pq.ParquetFile(path).metadata.num_row_groups == rows // group
    got = sample_rows(path, [0, 2], n, 5, "row_groups")
    assert got.height == n
    assert got.get_column("i").n_unique() == n
    touched = set((got.get_column("i") // group).to_list())
    assert len(touched) == 3, "1,200 rows come from three groups of 500"
    again = sample_rows(path, [0, 2], n, 5, "row_groups")
    assert got.equals(again)
    other = sample_rows(path, [0, 2], n, 6, "row_groups")
    assert not other.equals(got)
    small = sample_rows(path, [0, 2], rows, 5, "row_groups")
    assert small.equals(pl.read_parquet(path, columns=[0, 2]))


def test_load_reference_reads_earlier_partitions_as_before(tmp_path: Path) -> None:
    files: list[tuple[Partition, Path]] = []
    for day in range(3):
        p = Partition.parse(f"2024-01-0{day + 1}", "day", "date")
        frame = _hostile(3000 + 500 * day, seed=day)
        files.append((p, _write(frame, tmp_path / f"{day}.parquet", 256)))
    policy = DriftPolicy(rows_per_partition=1000, seed=4)
    columns = ["^a.*$", "*", "all_null"]
    got = load_reference(files, columns, policy, names={c: f"_c{i}" for i, c in enumerate(columns)})
    parts = []
    for p, f in files:
        whole = pl.read_parquet(f, columns=[1, 0, 2]).sample(1000, seed=4)
        parts.append(
            whole.rename(dict(zip(whole.columns, ["_c0", "_c1", "_c2"], strict=True))).with_columns(
                pl.lit(str(p)).alias(REF_PARTITION)
            )
        )
    assert got.equals(pl.concat(parts))
    bounded = load_reference(files, columns, policy, mode="row_groups")
    assert bounded.height == 3000
    assert (
        bounded.get_column(REF_PARTITION).value_counts().get_column("count").to_list() == [1000] * 3
    )


def test_scores_are_copied_row_for_row(tmp_path: Path) -> None:
    scores = pl.DataFrame(
        {
            "_row_id": pl.Series(range(5000), dtype=pl.UInt64),
            "detector": ["iforest", "ecod"] * 2500,
            "score": np.random.default_rng(1).normal(size=5000),
            "extra": ["x"] * 5000,
        }
    )
    source = _write(scores, tmp_path / "s.parquet", 300)
    target = tmp_path / "kept.parquet"
    assert copy_columns(source, target, ["_row_id", "detector", "score"]) == 5000
    assert pl.read_parquet(target).equals(scores.drop("extra"))
    assert column_values(target, 2).equals(scores.get_column("score"))


def _bounded(outputs: RunOutputs, folder: Path, rows: int = 3) -> RunOutputs:
    """The same outputs with the clean rows, the scores, the quarantined rows and the failures
    left in Parquet files of row groups of ``rows`` rows, read in batches of ``rows`` rows,
    spilling under ``folder``, as a bounded report has them."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "clean.parquet"
    outputs.clean.write_parquet(path, row_group_size=rows)
    scores = None
    if outputs.scores is not None:
        scores = folder / "scores.parquet"
        outputs.scores.write_parquet(scores, row_group_size=rows)
    quarantine = folder / "quarantine.parquet"
    outputs.quarantine.write_parquet(quarantine, row_group_size=rows)
    failures = folder / "failures.parquet"
    outputs.failures.write_parquet(failures, row_group_size=rows)
    return replace(
        outputs,
        clean=outputs.clean.head(0),
        clean_file=path,
        scores=None,
        scores_file=scores,
        spill_dir=folder,
        batch_rows=rows,
        quarantine=outputs.quarantine.head(0),
        quarantine_file=quarantine,
        failures=outputs.failures.head(0),
        failures_file=failures,
    )


def _same_report(outputs: RunOutputs, root: Path) -> None:
    exact = compose(outputs, reports_root=root / "reports", clean_root=root / "clean")
    bounded_outputs = _bounded(outputs, root / "bounded")
    assert bounded_outputs.clean.is_empty()
    got = compose(
        bounded_outputs, reports_root=root / "reports", clean_root=root / "clean", bounded=True
    )
    assert got.metrics.equals(exact.metrics)
    assert got.summary() == exact.summary()
    assert [repr(c) for c in got.columns] == [repr(c) for c in exact.columns]
    assert [repr(d) for d in got.drift] == [repr(d) for d in exact.drift]
    assert got.segments == exact.segments
    assert got.rules == exact.rules
    assert got.stages == exact.stages
    assert render(got) == render(exact)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=frames(), rule=st.sampled_from(RULES), history=st.booleans())
@example(
    case=(pl.DataFrame({"*": [1.0, None, 3.0, 4.0]}), ["", "", "q", ""]), rule="type", history=True
)
@example(case=(pl.DataFrame({"\x00": [0]}), ["q"]), rule="type", history=False)
@example(case=(pl.DataFrame({"": [0]}), ["q"]), rule="type", history=False)
def test_a_bounded_report_is_the_in_memory_report(
    case: tuple[pl.DataFrame, list[str]], rule: str, history: bool, tmp_path: Path
) -> None:
    """Hostile frames (names, types, nulls, NaN, empty sides) with and without earlier
    partitions: the report read by column from the clean file is the report built in memory."""
    frame, sides = case
    root = tmp_path / uuid.uuid4().hex
    if history:
        earlier_runs(frame, sides, rule, root)
    _same_report(outputs_of(frame, sides, rule), root)


@pytest.mark.parametrize("quarantined", [False, True])
def test_segment_bias_read_by_column_is_the_same(quarantined: bool, tmp_path: Path) -> None:
    outputs = segment_outputs(quarantined)
    exact = segment_bias(outputs)
    assert exact, "the fixture has a biased segment"
    assert segment_bias(_bounded(outputs, tmp_path)) == exact


def _partition(day: int) -> str:
    """A hostile day: unicode, nulls, an unparsable number, a short record, a duplicate id
    and an outlier, around ordinary rows."""
    rng = np.random.default_rng(day)
    lines = ["id,amount,count,when,kind"]
    kinds = ["a", "b", "é", "日本", ""]
    for i in range(300):
        amount = "" if i % 41 == 0 else f"{rng.gamma(2.0, 8.0):.2f}"
        lines.append(f"r{i},{amount},{i % 7},2024-01-0{day} 10:{i % 60:02d}:00,{kinds[i % 5]}")
    lines += ["r5,12.5,3,2024-01-01 10:00:00,a", "x1,abc,1,2024-01-01 10:00:00,b", "x2,5"]
    lines.append("x3,99999,2,2024-01-01 10:00:00,\u202e")
    return "\n".join(lines) + "\n"


def test_sluice_run_reports_the_same_bounded_and_in_memory(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    """The real command on a partition with two earlier ones (drift is tested): with
    ``SLUICE_BOUNDED=1`` the report's metrics, findings, counts and exit code are those of
    ``SLUICE_BOUNDED=0``."""
    spec = make_dataset({f"2024-01-0{d}": _partition(d) for d in (1, 2, 3)})
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "SLUICE_PREFECT")}
    env["SLUICE_BATCH_ROWS"] = "7"
    exe = str(Path(sys.executable).with_name("sluice"))
    reports = tmp_path / "out" / "reports"

    def run(day: str, bounded: str) -> tuple[int, dict[str, Any], pl.DataFrame]:
        done = subprocess.run(
            [exe, "run", str(spec), "--partition", day, "--force"],
            env={**env, "SLUICE_BOUNDED": bounded},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode in (0, 1), done.stderr
        folder = reports / f"date={day}"
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        metrics = pl.read_parquet(folder / "metrics.parquet").drop("run_id", "finished_at")
        return done.returncode, manifest, metrics

    run("2024-01-01", "0")
    run("2024-01-02", "0")
    code, manifest, metrics = run("2024-01-03", "0")
    got_code, got_manifest, got_metrics = run("2024-01-03", "1")
    assert got_code == code
    assert got_metrics.equals(metrics)
    assert "drift" in metrics.get_column("metric").to_list(), "drift was tested"
    assert got_manifest["findings"] == manifest["findings"]
    assert got_manifest["counts"] == manifest["counts"]
    assert "report" in got_manifest["outputs"], "a report was made"
    assert manifest["counts"]["quarantine"] > 0
