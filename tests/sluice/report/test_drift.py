"""Drift tests chosen by type and size, on generated samples."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from sluice.config import Partition
from sluice.report.drift import (
    REF_PARTITION,
    DriftPolicy,
    categorical_drift,
    detect_drift,
    earlier_partitions,
    load_reference,
    numeric_drift,
    psi,
    wasserstein,
)

RNG = np.random.default_rng(11)


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift() -> None:
    assert psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0)
    small = psi([30, 30, 40], [33, 33, 34])
    large = psi([10, 10, 80], [33, 33, 34])
    assert 0 < small < 0.1
    assert large > 0.2


@pytest.mark.parametrize("seed", range(6))
def test_wasserstein_is_scipys_float_for_float(seed: int) -> None:
    """Written out to spare the import of scipy.stats: the same computation, the same float,
    on samples with ties, different sizes and signed zeros."""
    rng = np.random.default_rng(seed)
    u = np.round(rng.normal(size=rng.integers(1, 3000)), seed)
    v = np.concatenate([rng.lognormal(size=rng.integers(1, 3000)), [0.0, -0.0]])
    assert wasserstein(u, v) == stats.wasserstein_distance(u, v)


def test_wasserstein_known_values_and_no_data() -> None:
    assert wasserstein(np.array([0.0, 1.0, 3.0]), np.array([5.0, 6.0, 8.0])) == pytest.approx(5.0)
    assert wasserstein(np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0])) == pytest.approx(1 / 3)
    u = RNG.normal(0, 1, 700)
    assert wasserstein(u, u + 3.0) == pytest.approx(3.0)
    nan_inf = np.array([np.nan, 0.0, 1.0, 3.0, np.inf])
    assert wasserstein(nan_inf, np.array([5.0, 6.0, 8.0, -np.inf])) == pytest.approx(5.0)
    assert wasserstein(np.array([]), u) is None
    assert wasserstein(np.array([np.nan, np.nan]), u) is None


def test_ks_known_value() -> None:
    """Two samples of three with no overlap: D = 1, exact two-sided p = 2 / C(6, 3) = 0.1."""
    test, d, p, drifted, w = numeric_drift(np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]), 1)
    assert (test, d, drifted) == ("ks", 1.0, False)
    assert p == pytest.approx(0.1)
    assert w == pytest.approx(3.0 / np.std([4.0, 5.0, 6.0]))


def test_numeric_drift_without_finite_values_tests_nothing() -> None:
    ref = RNG.normal(0, 1, 100)
    assert numeric_drift(np.array([np.nan, np.inf]), ref, 1) == ("", None, None, False, None)
    assert numeric_drift(ref, np.array([]), 1) == ("", None, None, False, None)
    constant = numeric_drift(np.full(50, 2.0), np.full(80, 2.0), 1)
    assert constant == ("ks", 0.0, 1.0, False, None), "no spread: no Wasserstein in sd"
    half = np.concatenate([ref, [np.nan] * 100])
    test, d, p, drifted, _ = numeric_drift(half, ref, 1)
    assert (test, d, p, drifted) == ("ks", 0.0, 1.0, False), "NaN left out like nulls"


def test_an_all_nan_column_is_skipped_as_not_enough_data() -> None:
    n = 200
    parts = [
        pl.DataFrame({"x": RNG.normal(0, 1, n), REF_PARTITION: [f"2024-01-0{i}"] * n})
        for i in (1, 2)
    ]
    (x,) = detect_drift(pl.DataFrame({"x": [float("nan")] * n}), pl.concat(parts), ["x"])
    assert (x.kind, x.test, x.statistic, x.drifted) == ("skipped", "", None, False)
    assert x.note.startswith("not enough data")


def test_small_numeric_samples_use_ks_and_need_significance_and_effect() -> None:
    ref = RNG.lognormal(2.3, 0.5, 10_000)
    same = RNG.lognormal(2.3, 0.5, 2_000)
    test, d, p, drifted, w = numeric_drift(same, ref, n_tests=10)
    assert test == "ks"
    assert p is not None
    assert not drifted
    test, d, p, drifted, w = numeric_drift(same * 1.3, ref, n_tests=10)
    assert drifted
    assert d is not None
    assert d > 0.1
    assert w is not None
    assert w > 0.2
    tiny = numeric_drift(same * 1.02, ref, n_tests=10)
    assert not tiny[3], "a 2% move is not drift"


def test_large_numeric_samples_use_psi() -> None:
    ref = RNG.normal(0, 1, 60_000)
    test, value, p, drifted, _ = numeric_drift(RNG.normal(0, 1, 50_000), ref, n_tests=1)
    assert (test, p, drifted) == ("psi", None, False)
    assert value is not None
    assert value < 0.01
    test, value, p, drifted, _ = numeric_drift(RNG.normal(0.8, 1, 50_000), ref, n_tests=1)
    assert drifted
    assert value is not None
    assert value > 0.2


def test_categorical_samples_use_chi_square_or_psi_by_size() -> None:
    ref = pl.Series("v", RNG.choice(["a", "b", "c"], 10_000, p=[0.6, 0.3, 0.1]))
    same = pl.Series("v", RNG.choice(["a", "b", "c"], 1_000, p=[0.6, 0.3, 0.1]))
    moved = pl.Series("v", RNG.choice(["a", "b", "c", "d"], 1_000, p=[0.3, 0.3, 0.1, 0.3]))
    assert categorical_drift(same, ref, 1)[3] is False
    test, _, p, drifted, counts = categorical_drift(moved, ref, 1)
    assert (test, drifted) == ("chi2", True)
    assert counts.labels[-1] == "(other)"
    assert counts.clean[-1] == pytest.approx((moved == "d").sum())
    big = pl.Series("v", RNG.choice(["a", "b", "c", "d"], 20_000, p=[0.3, 0.3, 0.1, 0.3]))
    test, _, p, drifted, _ = categorical_drift(big, ref, 1)
    assert (test, p, drifted) == ("psi", None, True)


def test_cramers_v_known_values() -> None:
    """V = sqrt(chi2 / n) without Yates' correction; the p-value keeps the correction on 2x2."""
    current = pl.Series("v", ["a"] * 30 + ["b"] * 10)
    reference = pl.Series("v", ["a"] * 10 + ["b"] * 30)
    test, v, p, drifted, _ = categorical_drift(current, reference, 1)
    assert test == "chi2"
    assert v == pytest.approx(0.5)  # chi2 = 4 * 10**2 / 20 = 20 over 80 rows
    # Yates: n (|ad - bc| - n / 2)^2 / (product of the margins) = 80 * 760**2 / 40**4
    assert p == pytest.approx(stats.chi2.sf(18.05, 1))
    test, v, p, drifted, _ = categorical_drift(
        pl.Series("v", ["a"] * 10), pl.Series("v", ["b"] * 10), 1
    )
    assert v == pytest.approx(1.0)
    assert p == pytest.approx(stats.chi2.sf(16.2, 1))
    assert drifted
    same = categorical_drift(pl.Series("v", ["a"] * 5), pl.Series("v", ["a"] * 9), 1)
    assert same[:4] == ("chi2", 0.0, 1.0, False), "one category: nothing to test"


def _frame(n: int, shift: float = 0.0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "x": RNG.normal(10 + shift, 2, n),
            "kind": RNG.choice(["a", "b"], n),
            "id": [f"id{i}-{RNG.integers(1 << 40)}" for i in range(n)],
            "when": [dt.datetime(2024, 1, 1)] * n,
        }
    )


def test_detect_drift_skips_times_and_ids_and_leaves_out_drifted_partitions() -> None:
    parts = [
        _frame(800).with_columns(pl.lit(f"2024-01-0{i}").alias(REF_PARTITION)) for i in range(1, 4)
    ]
    bad = _frame(800, shift=6.0).with_columns(pl.lit("2024-01-04").alias(REF_PARTITION))
    reference = pl.concat([*parts, bad])
    current = _frame(800)
    cols = ["x", "kind", "id", "when"]
    got = {d.column: d for d in detect_drift(current, reference, cols)}
    assert got["when"].kind == "skipped"
    assert got["id"].kind == "skipped"
    assert "identifier" in got["id"].note
    assert got["kind"].test == "chi2"
    assert not got["kind"].drifted
    assert got["x"].reference == ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
    assert got["x"].drifted, "a quarter of the reference moved by three sd"
    clean = detect_drift(current, reference, cols, drifted_before={"x": {"2024-01-04"}})
    x = next(d for d in clean if d.column == "x")
    assert x.reference == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert not x.drifted


def test_too_few_earlier_partitions_is_not_tested() -> None:
    reference = _frame(500).with_columns(pl.lit("2024-01-01").alias(REF_PARTITION))
    (x,) = detect_drift(_frame(500, shift=5), reference, ["x"])
    assert x.kind == "skipped"
    assert not x.drifted
    assert "needs 2" in x.note


def test_reference_partitions_come_before_this_one_with_a_sample_each(tmp_path: Path) -> None:
    for day in (1, 2, 3, 5):
        folder = tmp_path / f"date=2024-01-0{day}"
        folder.mkdir()
        _frame(300).write_parquet(folder / "part-00000.parquet")
    (tmp_path / ".staging-date=2024-01-02-x").mkdir()
    part = Partition(dt.date(2024, 1, 4), "day", "date")
    files = earlier_partitions(tmp_path, part, limit=2)
    assert [str(p) for p, _ in files] == ["2024-01-02", "2024-01-03"]
    ref = load_reference(files, ["x"], DriftPolicy(rows_per_partition=100))
    assert ref.height == 200
    assert ref[REF_PARTITION].unique().sort().to_list() == ["2024-01-02", "2024-01-03"]
    again = load_reference(files, ["x"], DriftPolicy(rows_per_partition=100))
    assert ref.equals(again)
