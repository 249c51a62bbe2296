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
import warnings
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
    from scipy import stats  # imported here: scipy.stats takes a second or more to import

    data = stats.CensoredData(uncensored=kept, right=np.full(censored, c))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            fitted, _, scale = stats.genpareto.fit(data, floc=0.0)
        except (ValueError, RuntimeError, FloatingPointError) as exc:
            return _empirical(s, false_flag_rate, f"tail fit failed: {exc}")
        shape = min(max(float(fitted), MIN_SHAPE), MAX_SHAPE)
        if shape == 0.0:  # exponential tail: the censored maximum-likelihood scale
            scale = (float(kept.sum()) + censored * c) / len(kept)
        elif shape != fitted:
            _, _, scale = stats.genpareto.fit(data, floc=0.0, fc=shape)
        threshold = u + float(
            stats.genpareto.ppf(1.0 - false_flag_rate / above_u, shape, 0.0, scale)
        )
    if not (np.isfinite(threshold) and scale > 0):
        return _empirical(s, false_flag_rate, "tail fit gave no finite threshold")
    return threshold, {
        "method": "generalized Pareto tail (peaks over threshold, top scores censored)",
        "u": u,
        "tail_share": above_u,
        "shape": shape,
        "shape_fitted": float(fitted),
        "scale": float(scale),
        "excesses": len(excess),
        "censored": censored,
    }
