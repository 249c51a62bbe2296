"""The detector contract, checked for every registered detector."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from detectors import available_detectors, get_detector
from detectors.base import Detector, NotFittedError

NAMES = available_detectors()


def _data(n: int = 400, d: int = 4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d))


def _fast(name: str) -> Detector:
    params = {"n_estimators": 25} if name == "iforest" else {}
    return get_detector(name, **params)


def test_registry_is_not_empty_and_has_default() -> None:
    assert "default" in NAMES
    assert {"iforest", "hbos", "ecod", "copod", "pca", "loda", "knn", "lof"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_sets_fitted_state(name: str) -> None:
    det = _fast(name)
    assert det.fit(_data()) is det
    assert det.n_fit_ == 400
    assert det.fit_scores_.shape == (400,)
    assert np.isfinite(det.threshold_)


@pytest.mark.parametrize("name", NAMES)
def test_score_shape_dtype_and_finite(name: str) -> None:
    det = _fast(name).fit(_data())
    s = det.score(_data(123, seed=1))
    assert s.shape == (123,)
    assert s.dtype == np.float64
    assert np.isfinite(s).all()


@pytest.mark.parametrize("name", NAMES)
def test_seeded_fits_give_equal_scores(name: str) -> None:
    X, Q = _data(), _data(50, seed=2)
    a = get_detector(name, random_state=3, max_fit_rows=300).fit(X).score(Q)
    b = get_detector(name, random_state=3, max_fit_rows=300).fit(X).score(Q)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_far_outlier_ranks_at_the_top(name: str) -> None:
    det = _fast(name).fit(_data())
    Q = _data(200, seed=4)
    Q[137] = [9.0, -9.0, 9.0, -9.0]
    s = det.score(Q)
    assert int(np.argmax(s)) == 137
    assert s[137] > det.threshold_


@pytest.mark.parametrize("name", NAMES)
def test_scoring_does_not_mutate_the_detector(name: str) -> None:
    det = _fast(name).fit(_data())
    before = pickle.dumps(det)
    det.score(_data(300, seed=5))
    det.predict(_data(10, seed=6))
    assert pickle.dumps(det) == before


@pytest.mark.parametrize("name", NAMES)
def test_score_before_fit_and_wrong_width_are_errors(name: str) -> None:
    det = _fast(name)
    with pytest.raises(NotFittedError):
        det.score(_data(5))
    det.fit(_data())
    with pytest.raises(ValueError, match="features"):
        det.score(_data(5, d=3))
    with pytest.raises(ValueError, match="NaN"):
        det.score(np.full((2, 4), np.nan))


@pytest.mark.parametrize("name", NAMES)
def test_constant_column_and_minimum_rows(name: str) -> None:
    det = _fast(name)
    n = det.min_rows()
    X = _data(n, d=3)
    X[:, 1] = 5.0
    s = det.fit(X).score(X)
    assert np.isfinite(s).all()
    with pytest.raises(ValueError, match="at least"):
        _fast(name).fit(X[: n - 1])


@pytest.mark.parametrize("name", NAMES)
def test_params_round_trip_through_the_registry(name: str) -> None:
    det = _fast(name)
    again = get_detector(name, **det.get_params())
    assert again.get_params() == det.get_params()


@pytest.mark.parametrize("name", NAMES)
def test_fit_is_bounded_by_max_fit_rows(name: str) -> None:
    det = get_detector(name, max_fit_rows=150).fit(_data(600))
    assert det.n_fit_ == 150


@pytest.mark.parametrize("name", NAMES)
def test_threshold_leaves_contamination_share_of_fit_rows_above(name: str) -> None:
    det = get_detector(name, contamination=0.05).fit(_data(1000))
    share = float((det.fit_scores_ > det.threshold_).mean())
    assert 0.03 <= share <= 0.05
