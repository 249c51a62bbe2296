"""The tail model that sets thresholds, fed known distributions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from detectors.threshold import tail_threshold


@pytest.mark.parametrize(
    ("dist", "rate"),
    [
        (stats.expon(), 1e-3),
        (stats.lognorm(1.0), 1e-3),
        (stats.t(3), 1e-3),
        (stats.norm(), 1e-2),
    ],
)
def test_threshold_meets_the_target_rate_on_clean_scores(
    dist: stats.rv_continuous, rate: float
) -> None:
    """Over three seeds of 50,000 scores, the true share above the threshold is within 0.3x to
    2x of the target (the exponential floor on the shape errs towards fewer flags)."""
    for seed in range(3):
        s = dist.rvs(size=50_000, random_state=seed)
        t, how = tail_threshold(s, rate)
        assert 0.3 * rate <= dist.sf(t) <= 2.0 * rate, (seed, how)
        assert how["method"].startswith("generalized Pareto tail")
        assert how["u"] < t
        assert how["excesses"] == pytest.approx(0.05 * len(s), abs=2)


def test_outliers_in_the_scores_are_flagged_and_only_make_the_threshold_stricter() -> None:
    """0.5% of far outliers among the scores: censored, their values do not stretch the tail, but
    their number makes it heavier, so the threshold moves up (fewer clean rows flagged), and the
    outliers are all still above it."""
    rng = np.random.default_rng(1)
    clean = rng.exponential(size=50_000)
    far = 30.0 + rng.exponential(size=250)
    t_clean, _ = tail_threshold(clean, 1e-3)
    t_mixed, how = tail_threshold(np.concatenate([clean, far]), 1e-3)
    assert t_clean <= t_mixed < 2.0 * t_clean
    assert (far > t_mixed).all()
    assert how["censored"] >= 250
    t_farther, _ = tail_threshold(np.concatenate([clean, far * 100.0]), 1e-3)
    assert t_farther == pytest.approx(t_mixed)  # how far out they are does not matter


def test_bounded_scores_get_an_exponential_tail() -> None:
    s = np.random.default_rng(2).uniform(size=20_000)
    t, how = tail_threshold(s, 1e-3)
    assert how["shape_fitted"] < 0
    assert how["shape"] == 0.0
    assert t > 1.0  # beyond the bound: a bounded score is never flagged by a fitted end


def test_heavy_shapes_are_capped() -> None:
    s = stats.pareto(0.8).rvs(size=20_000, random_state=3)  # shape 1.25
    _, how = tail_threshold(s, 1e-3)
    assert how["shape_fitted"] > 0.5
    assert how["shape"] == 0.5


@pytest.mark.parametrize(
    ("scores", "note"),
    [
        (np.arange(200, dtype=np.float64), "too few rows"),
        (np.full(5000, 3.0), "too few distinct scores"),
        (np.repeat(np.arange(5, dtype=np.float64), 1000), "too few distinct scores"),
    ],
)
def test_degenerate_scores_fall_back_to_the_empirical_quantile(
    scores: np.ndarray, note: str
) -> None:
    t, how = tail_threshold(scores, 1e-3)
    assert how["method"] == "empirical quantile"
    assert note in how["note"]
    assert t == float(np.quantile(scores, 1 - 1e-3, method="higher"))
    assert not (scores > t).mean() > 1e-3


def test_no_scores_flag_nothing() -> None:
    t, how = tail_threshold(np.array([], dtype=np.float64), 1e-3)
    assert math.isinf(t)
    assert how["method"] == "empirical quantile"
