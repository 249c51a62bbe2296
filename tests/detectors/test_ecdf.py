"""Fast inductive ECOD and COPOD against PyOD.

Stated tolerances:
- the scores of the fit rows equal PyOD's ``decision_scores_`` to 1e-9 (absolute);
- a new row's score equals PyOD's ``decision_function`` on that row alone to 1e-9 (absolute):
  PyOD appends the scored rows to the training rows, so one row is scored against the reference
  plus itself, which is what the fast path computes for every row;
- scored as one batch of m rows, PyOD also lets the batch rows count each other; for m up to 10%
  of the fit rows drawn from the same distribution the two agree to a Spearman rank correlation of
  at least 0.999 and a relative difference of at most 2% on every row.
The skewness sign of each feature is the fit sample's (PyOD recomputes it with the scored rows).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from pyod.models.copod import COPOD as PyodCOPOD
from pyod.models.ecod import ECOD as PyodECOD
from scipy.stats import spearmanr

from detectors import get_detector

PAIRS = [("ecod", PyodECOD), ("copod", PyodCOPOD)]


def _skewed(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [
            rng.lognormal(size=n),
            -rng.exponential(size=n),
            rng.poisson(3, n).astype(float),
            rng.gamma(2.0, size=n),
        ]
    )


@pytest.mark.parametrize(("name", "pyod_cls"), PAIRS)
def test_fit_scores_equal_pyod_decision_scores(name: str, pyod_cls: type) -> None:
    X = _skewed(3000, 0)
    ours = get_detector(name).fit(X)
    theirs = pyod_cls().fit(X)
    np.testing.assert_allclose(ours.fit_scores_, theirs.decision_scores_, rtol=0, atol=1e-9)


@pytest.mark.parametrize(("name", "pyod_cls"), PAIRS)
def test_each_new_row_equals_pyod_scoring_it_alone(name: str, pyod_cls: type) -> None:
    X = _skewed(1500, 1)
    Q = np.vstack([_skewed(12, 2), X[:3], [[100.0, -100.0, 50.0, -1.0]], [[0.0, 0.0, 0.0, 0.0]]])
    ours = get_detector(name).fit(X).score(Q)
    theirs = np.array([pyod_cls().fit(X).decision_function(Q[i : i + 1])[0] for i in range(len(Q))])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)


@pytest.mark.parametrize(("name", "pyod_cls"), PAIRS)
@pytest.mark.parametrize("m", [50, 500])
def test_batch_agrees_with_pyod_batch_within_stated_tolerance(
    name: str, pyod_cls: type, m: int
) -> None:
    X = _skewed(5000, 3)
    Q = _skewed(m, 4)
    ours = get_detector(name).fit(X).score(Q)
    theirs = pyod_cls().fit(X).decision_function(Q)
    assert spearmanr(ours, theirs)[0] >= 0.999
    assert np.max(np.abs(ours - theirs) / theirs) <= 0.02


@pytest.mark.parametrize("name", ["ecod", "copod"])
def test_chunks_threads_and_feature_parts_agree(name: str) -> None:
    X, Q = _skewed(2000, 5), _skewed(3001, 6)
    base = get_detector(name, n_jobs=1, chunk_rows=100_000).fit(X)
    a = base.score(Q)
    b = get_detector(name, n_jobs=2, chunk_rows=97).fit(X).score(Q)
    np.testing.assert_array_equal(a, b)
    parts = base.feature_scores(Q)
    assert parts is not None
    np.testing.assert_allclose(parts.sum(axis=1), a, rtol=1e-12)


def test_out_of_range_value_scores_at_the_reference_bound() -> None:
    X = _skewed(999, 7)
    det = get_detector("ecod").fit(X)
    far = det.feature_scores(np.array([[1e9, -1e9, 1e9, 1e9]]))
    assert far is not None
    np.testing.assert_allclose(far[0, [0, 2, 3]], np.log(1000.0))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ecod", "copod"])
def test_throughput_against_pyod_on_a_million_rows(name: str) -> None:
    """Floors that hold on a loaded 2-core machine; the targets are measured by bench.detect."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1_000_000, 20))
    chunk = rng.standard_normal((65_536, 20))
    ours = get_detector(name).fit(X)
    ours.score(chunk)
    t = time.perf_counter()
    ours.score(chunk)
    fast = len(chunk) / (time.perf_counter() - t)
    pyod_model = dict(PAIRS)[name]().fit(X)
    t = time.perf_counter()
    pyod_model.decision_function(chunk)
    slow = len(chunk) / (time.perf_counter() - t)
    assert fast >= 250_000
    assert fast >= 30 * slow
