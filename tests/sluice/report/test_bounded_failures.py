"""The quarantined rows and the failures read in batches: a bounded report's rule summaries,
examples, stage counts, quarantined-side profiles, detector features and segments are the
in-memory report's, for hostile failures split into row groups of a few rows."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from sluice.config import Partition
from sluice.core.failures import FAILURE_SCHEMA
from sluice.core.frame import ROW_ID, SOURCE_FILE, SOURCE_ROW
from sluice.core.spill import PartSpill
from sluice.decide import RAW
from sluice.report import metrics, streaming
from sluice.report.build import compose
from sluice.report.html import render
from sluice.report.metrics import (
    RunOutputs,
    detector_stats,
    load_outputs,
    metrics_frame,
    profiles,
    rule_summaries,
    stage_counts,
)
from sluice.report.segments import SegmentPolicy, segment_bias
from tests.sluice.report.test_bounded_report import _bounded

WORDS = ["a", "é", "日本", "", " x ", "\u202e", "NULL", "🙂", "*", "^a.*$", "n"]


def _details(rng: np.random.Generator, columns: list[str]) -> str | None:
    """An outlier's details: its top features, sometimes none."""
    pick = rng.integers(0, 10)
    if pick == 0:
        return None
    if pick == 1:
        return "{}"
    chosen = rng.choice(columns, size=min(3, len(columns)), replace=False)
    top = [{"column": str(c), "contribution": float(rng.normal())} for c in chosen]
    return json.dumps({"top_features": top})


def _outputs(rows: int, seed: int) -> RunOutputs:
    """A run's outputs with failures a real run leaves and some it should not: several reasons
    and severities per row, a row's failure repeated, warned rows that stay clean, type
    failures with their cell left null, outliers with top features, quarantined values that
    are many and unicode, and ids out of order across row groups."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.arange(1, rows + 1)).astype(np.uint64)
    zone = rng.choice([1, 2, 3, 4], rows)
    frame = pl.DataFrame(
        {
            ROW_ID: pl.Series(ids, dtype=pl.UInt64),
            "*": rng.normal(0, 1, rows),
            "^a.*$": [None if i % 5 == 0 else WORDS[i % len(WORDS)] for i in range(rows)],
            "zone": pl.Series(zone, dtype=pl.Int64),
            "note": [f"{WORDS[i % len(WORDS)]}{i}" for i in range(rows)],
            "all_null": pl.Series([None] * rows, dtype=pl.Float64),
        }
    )
    quarantined = rng.random(rows) < 0.3
    warned = (~quarantined) & (rng.random(rows) < 0.2)
    outlier = rng.random(rows) < 0.15
    failures: list[dict[str, Any]] = []
    for i in range(rows):
        rid = int(ids[i])
        if quarantined[i]:
            kinds = rng.choice(["range", "type", "set", "dup"], size=rng.integers(1, 3))
            for kind in kinds:
                if kind == "type":
                    failures.append(_failure(rid, "*", "type", "error", f"x{i}", None))
                elif kind == "range":
                    failures.append(_failure(rid, "*", "between", "error", f"{i}", None))
                elif kind == "set":
                    failures.append(_failure(rid, "^a.*$", "in_set", "error", WORDS[i % 4], None))
                else:
                    failures += [_failure(rid, "note", "unique", "error", "dup", None)] * 2
        if warned[i]:
            failures.append(_failure(rid, "zone", "between", "warn", str(zone[i]), "{}"))
        if outlier[i]:
            severity = "error" if quarantined[i] else "warn"
            details = _details(rng, ["*", "zone", "^a.*$"])
            failures.append(_failure(rid, "outlier", "knn", severity, None, details))
    failures_frame = pl.DataFrame(failures, schema=FAILURE_SCHEMA, orient="row")
    mask = pl.Series(quarantined)
    clean = frame.filter(~mask)
    q = frame.filter(mask)
    typed_failed = set(failures_frame.filter(pl.col("rule") == "type")[ROW_ID].to_list())
    failed = q[ROW_ID].is_in(list(typed_failed))
    star = q.get_column("*").zip_with(~failed, pl.Series("*", [None] * q.height, dtype=pl.Float64))
    typed = q.with_columns(star)
    raw = pl.DataFrame([c.cast(pl.String) for c in q.drop(ROW_ID).get_columns()])
    reasons = (
        failures_frame.group_by(ROW_ID)
        .agg(pl.col("reason").unique().sort().alias("_reasons"))
        .with_columns(pl.col(ROW_ID).cast(pl.UInt64))
    )
    quarantine = pl.DataFrame(
        [
            typed[ROW_ID],
            pl.Series(SOURCE_FILE, [f"part-{i % 3}.csv" for i in range(q.height)]),
            pl.Series(SOURCE_ROW, rng.permutation(q.height), dtype=pl.Int64),
            *typed.drop(ROW_ID).get_columns(),
            raw.to_struct(RAW),
        ]
    ).join(reasons, on=ROW_ID, how="left", maintain_order="left")
    scores = pl.DataFrame(
        {
            ROW_ID: frame[ROW_ID],
            "detector": ["knn"] * rows,
            "score": rng.random(rows) + np.where(outlier, 1.0, 0.0),
        }
    )
    counts = {"in": rows, "clean": clean.height, "quarantine": q.height, "warned_rows": 0}
    manifest: dict[str, Any] = {
        "dataset": "hostile",
        "run_id": "r1",
        "finished_at": "2024-01-02T00:00:00+00:00",
        "partition": {"key": "date", "kind": "day", "value": "2024-01-01"},
        "status": "failed",
        "counts": counts,
        "validation": {"engine": "polars", "verdicts": []},
        "detectors": [{"name": "knn", "severity": "error", "threshold": 1.0}],
        "outputs": {},
    }
    part = Partition.parse("2024-01-01", "day", "date")
    return RunOutputs(manifest, part, clean, quarantine, failures_frame, scores)


def _failure(
    rid: int, column: str, rule: str, severity: str, *values: str | None
) -> dict[str, Any]:
    value, details = values
    return {
        ROW_ID: rid,
        "column": column,
        "rule": rule,
        "reason": f"{column}|{rule}",
        "severity": severity,
        "value": value,
        "details": details,
    }


@pytest.mark.parametrize(("rows", "seed", "group"), [(400, 1, 1), (600, 2, 7), (300, 3, 64)])
def test_failure_side_numbers_are_the_in_memory_ones(
    rows: int, seed: int, group: int, tmp_path: Path
) -> None:
    outputs = _outputs(rows, seed)
    bounded = _bounded(outputs, tmp_path / "b", rows=group)
    assert bounded.quarantine.is_empty()
    assert bounded.failures.is_empty()
    rules = rule_summaries(outputs)
    assert len(rules) == 7
    assert all(r.examples for r in rules)
    assert rule_summaries(bounded) == rules
    assert stage_counts(bounded) == stage_counts(outputs)
    cols = profiles(outputs)
    assert any(c.distribution is not None and c.distribution.quarantine.sum() for c in cols)
    assert [repr(c) for c in profiles(bounded)] == [repr(c) for c in cols]
    dets = detector_stats(outputs)
    assert dets[0].features
    assert [repr(d) for d in detector_stats(bounded)] == [repr(d) for d in dets]
    assert metrics_frame(bounded, cols, dets).equals(metrics_frame(outputs, cols, dets))
    policy = SegmentPolicy(min_rows=5, min_ratio=1.0, min_flagged=1, alpha=1.0)
    assert segment_bias(bounded, policy) == segment_bias(outputs, policy)


def test_examples_are_the_first_failures_by_source_row(tmp_path: Path) -> None:
    """Examples come in source-row order whatever the failures' order in the file, rows
    that were not quarantined (warnings) last."""
    outputs = _outputs(500, 4)
    bounded = _bounded(outputs, tmp_path, rows=5)
    q = outputs.quarantine.select(ROW_ID, SOURCE_ROW)
    for rule in rule_summaries(bounded, examples=4):
        rows = [e.source_row for e in rule.examples]
        known = [r for r in rows if r is not None]
        assert known == sorted(known)
        assert rows[: len(known)] == known
        failing = outputs.failures.filter(pl.col("reason") == rule.reason).join(q, on=ROW_ID)
        smallest = sorted(failing[SOURCE_ROW].to_list())[:4]
        assert known == smallest[: len(known)]


def test_the_whole_report_is_the_same(tmp_path: Path) -> None:
    outputs = _outputs(500, 5)
    root = tmp_path / uuid.uuid4().hex
    exact = compose(outputs, reports_root=root / "reports", clean_root=root / "clean")
    got = compose(
        _bounded(outputs, root / "bounded", rows=3),
        reports_root=root / "reports",
        clean_root=root / "clean",
        bounded=True,
    )
    assert got.metrics.equals(exact.metrics)
    assert got.rules == exact.rules
    assert render(got) == render(exact)


def test_a_bounded_load_leaves_quarantine_and_failures_on_disk(tmp_path: Path) -> None:
    outputs = _outputs(200, 6)
    clean = tmp_path / "clean.parquet"
    quarantine = tmp_path / "quarantine.parquet"
    outputs.clean.write_parquet(clean)
    outputs.quarantine.write_parquet(quarantine, row_group_size=10)
    outputs.failures.write_parquet(tmp_path / "failures.parquet", row_group_size=10)
    manifest = {
        **outputs.manifest,
        "outputs": {"clean": {"path": str(clean)}, "quarantine": {"path": str(quarantine)}},
    }
    loaded = load_outputs(manifest, tmp_path, bounded=True, spill_dir=tmp_path, batch_rows=9)
    assert loaded.quarantine.is_empty()
    assert loaded.failures.is_empty()
    assert loaded.quarantine.schema == outputs.quarantine.schema
    assert loaded.quarantine_rows == outputs.quarantine.height
    assert [f.height for f in loaded.failure_frames()][:2] == [9, 9]
    assert pl.concat(loaded.quarantine_frames()).equals(outputs.quarantine)
    assert rule_summaries(loaded) == rule_summaries(outputs)
    whole = load_outputs(manifest, tmp_path)
    assert whole.quarantine.equals(outputs.quarantine)
    assert whole.quarantine_file is None
    assert whole.failures_file is None


def test_distinct_values_spill_to_buckets_that_grow_with_the_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the limit, distinct values go to one bucket per ``limit`` clean rows: no bucket
    holds much more than that, however many rows the column has."""
    spills: list[PartSpill] = []

    class Recorded(PartSpill):
        def __init__(self, folder: Path, name: str, parts: int, rows: int) -> None:
            super().__init__(folder, name, parts, rows)
            spills.append(self)

    monkeypatch.setattr(streaming, "PartSpill", Recorded)
    monkeypatch.setattr(metrics, "DISTINCT_LIMIT", 50)
    outputs = _outputs(3000, 7)
    bounded = _bounded(outputs, tmp_path, rows=100)
    got = {c.name: c.distinct for c in profiles(bounded)}
    assert got == {c.name: c.distinct for c in profiles(outputs)}
    assert got["note"] > 1000
    assert spills
    assert all(s.parts >= bounded.clean_rows // 50 for s in spills)
    assert max(s.largest for s in spills) < 200
