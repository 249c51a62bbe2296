"""The tail model that sets thresholds, fed known distributions."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from detectors.threshold import gpd_fit, gpd_quantile, gpd_scale, tail_threshold


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


def _censored_tail(s: np.ndarray) -> tuple[np.ndarray, int, float]:
    """The kept excesses, the censored count and the censoring level, as tail_threshold cuts."""
    u = np.quantile(s, 0.95)
    excess = s[s > u] - u
    c = float(np.quantile(excess, 0.8))
    return excess[excess <= c], int((excess > c).sum()), c


def _loglik(kept: np.ndarray, m: int, c: float, shape: float, scale: float) -> float:
    g = stats.genpareto(shape, 0.0, scale)
    return float(g.logpdf(kept).sum() + m * g.logsf(c))


SAMPLES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "exponential": lambda r, n: r.exponential(size=n),
    "lognormal": lambda r, n: r.lognormal(size=n),
    "t3": lambda r, n: np.abs(r.standard_t(3, size=n)),
    "normal": lambda r, n: r.normal(size=n),
    "uniform": lambda r, n: r.uniform(size=n),
    "pareto": lambda r, n: r.pareto(0.8, size=n),
    "beta": lambda r, n: r.beta(2.0, 5.0, size=n),
    "contaminated": lambda r, n: np.concatenate(
        [r.exponential(size=n), 30 + r.exponential(size=n // 200)]
    ),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
@pytest.mark.parametrize("n", [1_000, 20_000, 100_000])
def test_the_tail_fit_is_the_maximum_scipy_finds_or_higher(name: str, n: int) -> None:
    """gpd_fit against scipy.stats.genpareto.fit on the same censored excesses: the likelihood is
    at least scipy's, and the shape and scale agree to 1e-3 (both find the same maximum)."""
    kept, m, c = _censored_tail(SAMPLES[name](np.random.default_rng(n), n))
    shape, scale = gpd_fit(kept, m, c)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        want_shape, _, want_scale = stats.genpareto.fit(
            stats.CensoredData(uncensored=kept, right=np.full(m, c)), floc=0.0
        )
    ours, theirs = _loglik(kept, m, c, shape, scale), _loglik(kept, m, c, want_shape, want_scale)
    assert ours >= theirs - 1e-9 * abs(theirs)
    assert shape == pytest.approx(want_shape, abs=1e-3)
    assert scale == pytest.approx(want_scale, rel=1e-3)


@pytest.mark.parametrize("seed", range(3))
def test_the_capped_shape_gets_the_scale_scipy_fits_for_it(seed: int) -> None:
    kept, m, c = _censored_tail(np.random.default_rng(seed).pareto(0.5, size=20_000))
    scale = gpd_scale(kept, m, c, 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, _, want = stats.genpareto.fit(
            stats.CensoredData(uncensored=kept, right=np.full(m, c)), floc=0.0, fc=0.5
        )
    assert _loglik(kept, m, c, 0.5, scale) >= _loglik(kept, m, c, 0.5, want) - 1e-9
    assert scale == pytest.approx(want, rel=1e-5)


def test_the_tail_quantile_is_scipys() -> None:
    for shape in (0.0, 0.1, 0.5):
        for tail in (0.5, 0.02, 1e-4):
            want = stats.genpareto.ppf(1.0 - tail, shape, 0.0, 2.5)
            assert gpd_quantile(tail, shape, 2.5) == pytest.approx(want, rel=1e-12)
