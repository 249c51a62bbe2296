"""Thresholds set by evidence: a tail model of scores of rows the model was not fitted on.

A detector's scores on clean rows have some upper tail; the threshold is the score that a share
``false_flag_rate`` of clean rows would exceed. It is read off the scores of held-out rows
(:func:`tail_threshold`) with a peaks-over-threshold model: above a high level ``u`` (the top 5%
of the scores) the excesses follow a generalized Pareto distribution (GPD), whose shape and scale
are fitted by maximum likelihood, then extrapolated to the target rate.

The fit is made robust to outliers among the held-out rows (a batch is not known to be clean):
scores in the top 1% enter the likelihood only as "above this level", never with their value, so
a few extreme rows cannot stretch the tail by how far out they are. Their number still counts:
outliers above 1% of the rows make the fitted tail heavier and the threshold higher (0.5% of far
outliers among exponential scores raised the threshold from 6.9 to 10.4), so a contaminated batch
gets fewer flags, never more; a truncated likelihood that ignores that count was tried and was far
noisier on clean scores. With too few rows for a tail fit (under 1,000: fewer than 50 excesses),
or excesses that do not fit (ties, a constant tail), the threshold is the empirical quantile, and
the record says so.

The shape is taken no lower than 0 (an exponential tail). Many detectors' scores are bounded
(isolation forest, histograms), and a fitted bounded tail (shape < 0) ends too early when it is
extrapolated from the top 5% to the top 0.1%: on clean rows it flagged four to five times the
target rate. An exponential tail can only put the threshold higher, so fewer clean rows are
flagged; heavy tails (shape > 0, such as distances on skewed data) are kept as fitted up to 0.5
(finite variance). Above that, the fit is noise from a small sample (shapes of 1 to 2 were fitted
on 500 rows of two normal columns) and would put the threshold out of reach of any row.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

DEFAULT_FALSE_FLAG_RATE = 1e-3
MIN_EXCESSES = 50
TAIL_SHARE = 0.05
CENSOR_FRACTION = 0.2  # of the tail: with a 5% tail, the top 1% of the scores are censored
MIN_SHAPE = 0.0  # the lightest tail extrapolated: exponential
MAX_SHAPE = 0.5  # the heaviest: a finite variance


def _empirical(scores: FloatArray, rate: float, why: str) -> tuple[float, dict[str, Any]]:
    q = float(np.quantile(scores, 1.0 - rate, method="higher")) if len(scores) else math.inf
    return q, {"method": "empirical quantile", "note": why}


def tail_threshold(scores: FloatArray, false_flag_rate: float) -> tuple[float, dict[str, Any]]:
    """The score a ``false_flag_rate`` share of rows like ``scores`` would exceed, and a record.

    ``scores`` are held-out scores (higher is more abnormal). The record holds the method and,
    for the tail model, the level ``u``, the share of rows above it, the GPD ``shape`` (xi) and
    ``scale`` (sigma), the number of excesses and how many were censored.
    """
    s = np.asarray(scores, dtype=np.float64)
    s = s[np.isfinite(s)]
    n = len(s)
    share = TAIL_SHARE
    if false_flag_rate >= share:
        return _empirical(s, false_flag_rate, "the target rate is not in the far tail")
    u = float(np.quantile(s, 1.0 - share)) if n else 0.0
    excess = s[s > u] - u
    if n * share < MIN_EXCESSES:
        return _empirical(s, false_flag_rate, f"too few rows for a tail fit ({n})")
    if len(excess) < MIN_EXCESSES:
        return _empirical(s, false_flag_rate, "the tail has too few distinct scores to fit")
    above_u = len(excess) / n
    c = float(np.quantile(excess, 1.0 - CENSOR_FRACTION))
    kept, censored = excess[excess <= c], int((excess > c).sum())
    if c <= 0 or len(np.unique(kept)) < 10:
        return _empirical(s, false_flag_rate, "the tail has too few distinct scores to fit")
    with np.errstate(all="ignore"):
        fitted, scale = gpd_fit(kept, censored, c)
        if not (np.isfinite(fitted) and np.isfinite(scale)):
            return _empirical(s, false_flag_rate, "tail fit failed: no finite maximum")
        shape = min(max(fitted, MIN_SHAPE), MAX_SHAPE)
        if shape == 0.0:  # exponential tail: the censored maximum-likelihood scale
            scale = (float(kept.sum()) + censored * c) / len(kept)
        elif shape != fitted:
            scale = gpd_scale(kept, censored, c, shape)
        threshold = u + gpd_quantile(false_flag_rate / above_u, shape, scale)
    if not (np.isfinite(threshold) and scale > 0):
        return _empirical(s, false_flag_rate, "tail fit gave no finite threshold")
    return threshold, {
        "method": "generalized Pareto tail (peaks over threshold, top scores censored)",
        "u": u,
        "tail_share": above_u,
        "shape": shape,
        "shape_fitted": fitted,
        "scale": float(scale),
        "excesses": len(excess),
        "censored": censored,
    }


# The generalized Pareto likelihood of excesses ``x`` (the ``k`` kept) with ``m`` more known only to
# exceed ``c``, location 0: with theta = shape / scale,
#   l(shape, scale) = -k log(scale) - (1/shape + 1) A(theta) - (m/shape) B(theta),
#   A = sum(log1p(theta x)), B = log1p(theta c),
# and for a given theta the best shape is (A + m B) / k, so the maximum is a search over theta
# alone (the profile likelihood, Grimshaw 1993): l = -k log(shape / theta) - k - A. theta runs over
# t / c for t in (-1, inf) (every value stays in the support); shape 0 is the limit theta -> 0.
# A fixed grid over t finds the highest point, golden-section search refines it between the
# grid's neighbours: the same answer for the same scores, with no starting guess to depend on.
_GRID_POSITIVE = np.logspace(-8.0, 8.0, 240)
_GRID = np.concatenate(
    [
        -1.0 + np.logspace(-12.0, np.log10(0.5), 120),  # t from -1 + 1e-12 to -0.5
        -np.logspace(np.log10(0.5), -8.0, 120)[1:],  # to -1e-8
        _GRID_POSITIVE,
    ]
)
_GOLDEN_STEPS = 100


def _log_terms(theta: FloatArray, x: FloatArray) -> FloatArray:
    """A(theta) = sum(log1p(theta x)) at each ``theta``."""
    a: FloatArray = np.log1p(np.multiply.outer(theta, x)).sum(axis=-1)
    return a


def _profile(x: FloatArray, m: int, c: float, theta: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(log-likelihood, shape) at each ``theta``, the shape set to its best for that theta."""
    k = len(x)
    a = _log_terms(theta, x)
    shape = (a + m * np.log1p(theta * c)) / k
    ll = -k * np.log(shape / theta) - k - a
    return ll, shape


def _golden_max(f: Callable[[float], float], lo: float, hi: float) -> float:
    """The point of ``[lo, hi]`` where ``f`` is highest, for ``f`` with one peak there."""
    g = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = lo, hi
    p, q = b - g * (b - a), a + g * (b - a)
    fp, fq = f(p), f(q)
    for _ in range(_GOLDEN_STEPS):
        if fp >= fq:
            b, q, fq = q, p, fp
            p = b - g * (b - a)
            fp = f(p)
        else:
            a, p, fp = p, q, fq
            q = a + g * (b - a)
            fq = f(q)
    return p if fp >= fq else q


def _best(f: Callable[[float], float], grid: FloatArray, values: FloatArray) -> float:
    """The grid point with the highest finite value, refined between its neighbours."""
    finite = np.where(np.isfinite(values), values, -np.inf)
    i = int(np.argmax(finite))
    if not np.isfinite(finite[i]):
        return math.nan
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    t = _golden_max(f, float(lo), float(hi))
    return t if f(t) >= finite[i] else float(grid[i])


def gpd_fit(x: FloatArray, m: int, c: float) -> tuple[float, float]:
    """Maximum-likelihood ``(shape, scale)`` of a generalized Pareto distribution (location 0) for
    excesses ``x`` (all positive, at most ``c``) and ``m`` more censored at ``c``."""
    x = np.asarray(x, dtype=np.float64)

    def ll(t: float) -> float:
        value, _ = _profile(x, m, c, np.asarray(t / c))
        return float(value) if np.isfinite(value) else -math.inf

    with np.errstate(all="ignore"):
        values, _ = _profile(x, m, c, _GRID / c)
        t = _best(ll, _GRID, values)
        if not math.isfinite(t):
            return math.nan, math.nan
        _, shape = _profile(x, m, c, np.asarray(t / c))
    theta = t / c
    return float(shape), float(shape / theta)


def gpd_scale(x: FloatArray, m: int, c: float, shape: float) -> float:
    """The maximum-likelihood scale for the given ``shape`` (> 0), as :func:`gpd_fit` reads it."""
    x = np.asarray(x, dtype=np.float64)
    k = len(x)

    def lls(t: FloatArray) -> FloatArray:
        theta = t / c
        out: FloatArray = -k * np.log(shape / theta) - (1.0 / shape + 1.0) * _log_terms(theta, x)
        return out - (m / shape) * np.log1p(theta * c)

    with np.errstate(all="ignore"):
        t = _best(lambda v: float(lls(np.asarray(v))), _GRID_POSITIVE, lls(_GRID_POSITIVE))
    return shape * c / t if math.isfinite(t) else math.nan


def gpd_quantile(tail: float, shape: float, scale: float) -> float:
    """The excess that a share ``tail`` of a generalized Pareto distribution lies above."""
    if shape == 0.0:
        return -scale * math.log(tail)
    return scale * math.expm1(-shape * math.log(tail)) / shape
