"""Exact statistics over batches: the same numbers as numpy and polars on the whole column, and
a bounded report's profiles, detector statistics and segment bias equal to the in-memory ones on
hostile rows read in batches of a few rows, with everything that can spill spilled."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expectations.exact import ExactSum
from sluice.config import Partition
from sluice.core.errors import SluiceError
from sluice.core.failures import make_failures
from sluice.report import metrics, streaming
from sluice.report.build import compose
from sluice.report.drift import DriftPolicy
from sluice.report.html import render
from sluice.report.metrics import RunOutputs, detector_stats, load_outputs, profiles
from sluice.report.segments import SegmentPolicy, segment_bias
from sluice.report.streaming import (
    DistinctCount,
    HashBuckets,
    exact_quantiles,
    float_keys,
    key_value,
)
from tests.robustness.corpus import CASES, Case
from tests.robustness.support import write_dataset
from tests.sluice.pipeline.bounded_support import run_stages
from tests.sluice.report.test_bounded_report import _bounded
from tests.sluice.report.test_hostile_frames import earlier_runs, outputs_of

CORPUS_DAY = "2024-01-02"
CORPUS = [c for c in CASES if c.error is None]
QUICK = {"csv_extreme_values", "ndjson_nan_and_infinities", "parquet_timezone_datetime"}
QUICK_CASES = [c for c in CORPUS if c.name in QUICK]
QS = (0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999)
SPECIAL = [np.inf, -np.inf, 0.0, -0.0, 1e308, -1e308, 5e-324, -5e-324]


def _split(values: np.ndarray, parts: int) -> list[np.ndarray]:
    return [np.asarray(p) for p in np.array_split(values, max(1, parts))]


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            st.floats(allow_nan=False), st.sampled_from(SPECIAL), st.integers(-3, 3).map(float)
        ),
        min_size=1,
        max_size=60,
    ),
    parts=st.integers(1, 9),
    collect=st.sampled_from([1, 2, 5, 1 << 20]),
)
def test_quantiles_over_batches_are_numpys(values: list[float], parts: int, collect: int) -> None:
    """Any split, any collect threshold (so the radix refines through every level): the
    quantiles are :func:`numpy.quantile` of the whole column, bit for bit."""
    v = np.array(values, dtype=np.float64)
    old = streaming.COLLECT
    streaming.COLLECT = collect
    try:
        got = exact_quantiles(lambda: iter(_split(v, parts)), v.size, QS)
    finally:
        streaming.COLLECT = old
    with np.errstate(invalid="ignore"):
        expected = np.quantile(v, QS)
    assert np.array_equal(np.array(got), expected, equal_nan=True), (got, expected)


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(
        st.one_of(st.sampled_from(SPECIAL), st.integers(-3, 3).map(float)), min_size=1, max_size=40
    )
)
def test_counted_values_give_numpys_quantiles_and_the_exact_sum(values: list[float]) -> None:
    """A column kept as its distinct values and their counts: the same quantiles as numpy on
    the column, and the same exact sum as the column's."""
    v = np.array(values, dtype=np.float64)
    table = streaming.ValueTable()
    table.add(v)
    counted = table.arrays()
    assert counted is not None
    ranks = streaming.quantile_ranks(v.size, QS)
    got = streaming.numpy_quantiles(v.size, QS, streaming.weighted_statistics(*counted, ranks))
    with np.errstate(invalid="ignore"):
        assert np.array_equal(np.array(got), np.quantile(v, QS), equal_nan=True)
    assert streaming.weighted_sum(*counted) == ExactSum.of(v)


def test_a_nan_makes_every_quantile_nan_as_in_numpy() -> None:
    v = np.array([1.0, np.nan, 3.0])
    assert np.isnan(np.quantile(v, QS)).all()
    assert all(np.isnan(exact_quantiles(lambda: iter([v[~np.isnan(v)]]), 3, QS, nan=True)))


def test_keys_keep_the_order_of_floats() -> None:
    v = np.array(sorted([*SPECIAL, 1.5, -2.25, 3e-310, -3e-310]))
    keys = float_keys(v)
    assert (np.diff(keys.astype(object)) >= 0).all()
    assert [key_value(int(k)) for k in keys] == [x + 0.0 for x in v]


@pytest.mark.parametrize("limit", [1, 3, 1000])
@pytest.mark.parametrize(
    "values",
    [
        pl.Series([0.0, -0.0, float("nan"), float("nan"), 1.0, None, 2.0, 1.0]),
        pl.Series(["a", "é", "日本", "", " a", "a", None, "\u202e", "🙂", "é"]),
        pl.Series(list(range(500)) * 3),
        pl.Series([None, None], dtype=pl.Int64),
    ],
)
def test_distinct_counts_spilled_or_held_are_polars_n_unique(
    values: pl.Series, limit: int, tmp_path: Path
) -> None:
    counter = DistinctCount(values.dtype, limit=limit, spill_dir=tmp_path)
    for start in range(0, values.len(), 4):
        batch = values.slice(start, 4)
        assert counter.add(batch) == batch.drop_nulls().n_unique()
    assert counter.count() == values.drop_nulls().n_unique()
    assert list(tmp_path.iterdir()) == [], "the spill is removed"
    whole = DistinctCount(values.dtype, limit=limit, spill_dir=tmp_path)
    assert whole.add(values) == whole.count() == values.drop_nulls().n_unique()


def test_one_batch_is_counted_without_spilling(tmp_path: Path) -> None:
    """A column read as one batch is already in memory: its distinct values are held, however
    many, and nothing is written; a second batch past the limit spills them."""
    values = pl.Series(range(1000))
    counter = DistinctCount(values.dtype, limit=10, spill_dir=tmp_path)
    assert counter.add(values) == 1000
    assert list(tmp_path.iterdir()) == []
    assert counter.add(pl.Series(range(500, 1500))) == 1000
    assert len(list(tmp_path.iterdir())) == 1, "spilled once the merged values pass the limit"
    assert counter.count() == 1500
    assert list(tmp_path.iterdir()) == []


def test_hash_buckets_keep_every_key_in_one_bucket_in_order(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {"_row_id": pl.Series([5, 1, 5, 9, 1, 2] * 50, dtype=pl.UInt64), "v": list(range(300))}
    )
    buckets = HashBuckets(frame.schema, "_row_id", 7, tmp_path)
    for start in range(0, 300, 11):
        buckets.add(frame.slice(start, 11))
    got = list(buckets.buckets())
    assert len(got) == 7
    assert sum(b.height for b in got) == 300
    for b in got:
        for (key,), part in b.partition_by("_row_id", as_dict=True).items():
            assert part["v"].to_list() == frame.filter(pl.col("_row_id") == key)["v"].to_list()
    buckets.close()
    assert list(tmp_path.iterdir()) == []


def _hostile_outputs(rows: int, seed: int) -> RunOutputs:
    """Rows with unicode, nulls, an all-null column, NaN and infinities, a literal ``(null)``
    category, duplicated values across batches; two detectors (one screening half the rows,
    with null and NaN scores), flags concentrated on one category, some flagged rows
    quarantined with their raw text."""
    rng = np.random.default_rng(seed)
    ids = pl.Series("_row_id", rng.permutation(10 * rows)[:rows].astype(np.uint64))
    zone = rng.choice([1, 2, 3, 4], rows)
    label = rng.choice(["a", "é", "日本", "(null)", "", "🙂"], rows).tolist()
    label = [None if i % 9 == 0 else x for i, x in enumerate(label)]
    amount = rng.normal(10, 3, rows)
    amount[::17] = np.nan
    amount[5 % rows] = np.inf
    frame = pl.DataFrame(
        {
            "_row_id": ids,
            "zone": pl.Series(zone, dtype=pl.Int64),
            "label": label,
            "amount": amount,
            "ratio": rng.normal(0, 1, rows),
            "empty": pl.Series([None] * rows, dtype=pl.Float64),
            "name": [f"n{i % max(1, rows // 3)}" for i in range(rows)],
            "day": pl.date_range(pl.date(2024, 1, 1), pl.date(2024, 1, 1), "1d", eager=True).gather(
                [0] * rows
            ),
        }
    )
    flag_a = (zone == 3) & (rng.random(rows) < 0.8) | (rng.random(rows) < 0.03)
    flag_b = rng.random(rows) < 0.05
    quarantined = flag_a & (np.arange(rows) % 2 == 0)
    a_ids = ids.filter(pl.Series(flag_a))
    b_ids = ids.filter(pl.Series(flag_b))
    failures = pl.concat(
        [
            make_failures(a_ids, column="outlier", rule="knn", severity="error"),
            make_failures(b_ids, column="outlier", rule="iforest", severity="warn"),
        ]
    )
    score_a = rng.random(rows)
    score_a[::13] = np.nan
    half = ids.filter(pl.Series(np.arange(rows) % 2 == 0))
    scores = pl.concat(
        [
            pl.DataFrame({"_row_id": ids, "detector": ["knn"] * rows, "score": score_a}),
            pl.DataFrame(
                {
                    "_row_id": half,
                    "detector": ["iforest"] * half.len(),
                    "score": [None if i % 5 == 0 else float(i % 7) for i in range(half.len())],
                },
                schema_overrides={"score": pl.Float64},
            ),
        ]
    )
    q = frame.filter(pl.Series(quarantined))
    quarantine = q.select(
        "_row_id", *(pl.col(c).cast(pl.String) for c in frame.columns if c != "_row_id")
    ).with_columns(pl.col("zone").str.pad_start(3, " "))
    manifest = {
        "counts": {"in": rows},
        "detectors": [
            {"name": "knn", "severity": "error", "threshold": 0.9},
            {"name": "iforest", "severity": "warn"},
        ],
    }
    return RunOutputs(
        manifest=manifest,
        partition=Partition.parse("2024-01-01", "day", "date"),
        clean=frame.filter(pl.Series(~quarantined)),
        quarantine=quarantine,
        failures=failures,
        scores=scores,
    )


@pytest.mark.parametrize("table", [2, 1 << 16])
@pytest.mark.parametrize(("rows", "batch"), [(1, 1), (2, 1), (400, 7), (3000, 64)])
def test_bounded_numbers_are_the_in_memory_numbers(
    rows: int, batch: int, table: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Profiles, detector statistics and segment bias read in batches of a few rows, with
    distinct values and hash buckets spilled, the radix refining or the value counts kept,
    equal those of the outputs in memory."""
    monkeypatch.setattr(metrics, "DISTINCT_LIMIT", 2)
    monkeypatch.setattr(streaming, "COLLECT", 3)
    monkeypatch.setattr(streaming, "TABLE_LIMIT", table)
    outputs = _hostile_outputs(rows, seed=rows)
    bounded = _bounded(outputs, tmp_path / "b", batch)
    assert bounded.scores is None
    assert bounded.clean.is_empty()
    assert [repr(p) for p in profiles(bounded)] == [repr(p) for p in profiles(outputs)]
    assert [repr(d) for d in detector_stats(bounded)] == [repr(d) for d in detector_stats(outputs)]
    policy = SegmentPolicy(min_rows=5, min_flagged=2, min_ratio=2.0, alpha=0.5)
    expected = segment_bias(outputs, policy)
    if rows >= 400:
        assert expected, "the hostile rows hold a biased segment"
    assert segment_bias(bounded, policy) == expected
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "clean.parquet",
        "failures.parquet",
        "quarantine.parquet",
        "scores.parquet",
    ], "every spill is removed"


def test_a_bounded_report_tests_drift_on_a_stated_sample(tmp_path: Path) -> None:
    """A partition larger than the drift sample is tested on a seeded sample of its clean rows
    drawn by row group, and every tested column's result says so; the in-memory report tests
    every clean row and says nothing of a sample."""
    rng = np.random.default_rng(2)
    frame = pl.DataFrame({"x": rng.normal(0, 1, 200), "k": rng.choice(["a", "b", "é"], 200)})
    sides = [""] * 200
    earlier_runs(frame, sides, "type", tmp_path)
    outputs = outputs_of(frame, sides, "type")
    policy = DriftPolicy(rows_per_partition=20, reference_partitions=3, min_reference_partitions=2)
    reports, clean = tmp_path / "reports", tmp_path / "clean"
    exact = compose(outputs, reports_root=reports, clean_root=clean, drift_policy=policy)
    bounded = compose(
        _bounded(outputs, tmp_path / "b", 7),
        reports_root=reports,
        clean_root=clean,
        drift_policy=policy,
        bounded=True,
    )
    assert [d.n_current for d in exact.drift] == [200, 200]
    assert all(not d.note for d in exact.drift)
    assert [d.n_current for d in bounded.drift] == [60, 60]
    assert [d.note for d in bounded.drift] == [
        "this partition: a seeded sample of 60 of its 200 clean rows, drawn by row group"
    ] * 2
    assert "a seeded sample of 60 of its 200 clean rows" in render(bounded)


def _corpus_reports(case: Case, tmp_path: Path) -> None:
    spec = write_dataset(tmp_path, {CORPUS_DAY: case.content}, fmt=case.fmt, schema=case.schema)
    try:
        manifest = run_stages(spec, CORPUS_DAY, bounded=False)
    except SluiceError:
        pytest.skip("the case ends in an error before the write stage")
    out = spec.parent / "out"
    folder = out / "reports" / f"date={CORPUS_DAY}"
    spill = tmp_path / "spill"
    spill.mkdir()
    memory = load_outputs(manifest, folder)
    bounded = replace(load_outputs(manifest, folder, bounded=True, spill_dir=spill), batch_rows=2)
    assert bounded.clean_file is not None
    roots = (out / "reports", out / "clean")
    want = compose(memory, reports_root=roots[0], clean_root=roots[1])
    got = compose(bounded, reports_root=roots[0], clean_root=roots[1], bounded=True)
    assert got.metrics.equals(want.metrics)
    assert [repr(c) for c in got.columns] == [repr(c) for c in want.columns]
    assert got.summary() == want.summary()
    assert render(got) == render(want)
    assert list(spill.iterdir()) == []


@pytest.mark.parametrize("case", QUICK_CASES, ids=lambda c: c.name)
def test_robustness_corpus_reports_bounded_as_in_memory(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A few corpus cases through the stages, their report built from the committed outputs
    read in batches of two rows (every spill forced) and in memory: the same report."""
    monkeypatch.setattr(metrics, "DISTINCT_LIMIT", 1)
    monkeypatch.setattr(streaming, "COLLECT", 1)
    monkeypatch.setattr(streaming, "TABLE_LIMIT", 1)
    _corpus_reports(case, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.name)
def test_whole_robustness_corpus_reports_bounded_as_in_memory(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every corpus case that reaches the write stage: the same report both ways."""
    monkeypatch.setattr(metrics, "DISTINCT_LIMIT", 1)
    monkeypatch.setattr(streaming, "COLLECT", 1)
    monkeypatch.setattr(streaming, "TABLE_LIMIT", 1)
    _corpus_reports(case, tmp_path)


def test_without_a_spill_folder_a_bounded_report_holds_one_bucket(tmp_path: Path) -> None:
    """Outputs read from files but given nowhere to spill: segment bias and distinct counts
    are held in memory, with the same numbers."""
    outputs = _hostile_outputs(400, seed=9)
    bounded = replace(_bounded(outputs, tmp_path / "b", 7), spill_dir=None)
    policy = SegmentPolicy(min_rows=5, min_flagged=2, min_ratio=2.0, alpha=0.5)
    assert segment_bias(bounded, policy) == segment_bias(outputs, policy)
    assert [repr(p) for p in profiles(bounded)] == [repr(p) for p in profiles(outputs)]


@settings(max_examples=200, deadline=None)
@given(
    batches=st.lists(
        st.lists(
            st.sampled_from([0.0, -0.0, float("nan"), 1.5, -2.0, 2.0**53, 2.0**53 + 2]),
            max_size=12,
        ),
        min_size=1,
        max_size=4,
    ),
    limit=st.sampled_from([1, 3, 100]),
)
def test_a_table_fed_counted_batches_is_the_table_fed_their_values(
    batches: list[list[float]], limit: int
) -> None:
    """A batch counted as categories goes to the value table as its counts: the same table as
    its values (NaN left out, -0.0 with 0.0, dropped past the limit)."""
    by_values, by_counts = streaming.ValueTable(limit), streaming.ValueTable(limit)
    for batch in batches:
        values = pl.Series("value", batch, dtype=pl.Float64)
        distinct = streaming.DistinctCount(pl.Float64(), limit=10, spill_dir=None).add(values)
        floats = values.to_numpy()
        by_values.add(floats[~np.isnan(floats)], distinct=distinct)  # as the profile feeds it
        counted = values.value_counts(name="n")
        by_counts.add_counts(counted["value"], counted["n"], distinct=distinct)
    if by_values.table is None:
        assert by_counts.table is None
    else:
        assert by_counts.table is not None
        assert by_values.table.sort("v").equals(by_counts.table.sort("v"))


@pytest.mark.parametrize(
    "values",
    [
        pl.Series([f"T{i:09d}" for i in range(100_000)]),  # an id: counted by its hashes
        pl.Series([f"T{i % 99_000:09d}" for i in range(100_000)]),  # ids that repeat
        pl.Series([f"T{i % 7}" for i in range(100_000)]),  # few values
        pl.Series([f"T{i}".encode() for i in range(100_000)]),  # bytes
        pl.Series(["é", "e\u0301"] * 40_000),  # equal to the eye, not in bytes
        pl.Series([f"T{i}" for i in range(100)]),  # short: counted as it is
    ],
    ids=["ids", "ids that repeat", "few values", "bytes", "unnormalised", "short"],
)
def test_distinct_text_counted_by_hashes_is_n_unique(values: pl.Series) -> None:
    assert streaming.count_distinct(values) == values.n_unique()
    counter = DistinctCount(values.dtype, limit=10, spill_dir=None)
    assert counter.add(values) == counter.count() == values.n_unique()
