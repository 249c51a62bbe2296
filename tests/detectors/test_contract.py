"""The detector contract, checked for every registered detector."""

from __future__ import annotations

import pickle

import numpy as np
import polars as pl
import pytest

from detectors import available_detectors, get_detector
from detectors.base import Detector, NotFittedError
from detectors.screen import screen
from detectors.spec import DetectorSpec
from sluice.core.errors import ConfigError
from sluice.decide import split

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


def _clean(n: int, seed: int) -> np.ndarray:
    """Correlated, partly skewed rows: the same distribution for every seed."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, 4))
    z[:, 1] += 0.8 * z[:, 0]
    z[:, 2] = np.exp(z[:, 2] / 2.0)
    return z


TARGET = 0.01
SEEDS = (0, 1, 2)


@pytest.mark.parametrize("name", NAMES)
def test_clean_rows_are_flagged_at_about_the_target_rate(name: str) -> None:
    """Fitted on clean rows, a detector flags fresh clean rows of the same distribution at the
    false-flag rate: the mean share over three seeds is within 0.4x to 1.6x of the target."""
    shares = []
    for seed in SEEDS:
        det = get_detector(name, false_flag_rate=TARGET, random_state=seed).fit(_clean(5000, seed))
        shares.append(float((det.score(_clean(20_000, 100 + seed)) > det.threshold_).mean()))
        assert det.calibration_["false_flag_rate"] == TARGET
        assert det.calibration_["threshold"] == det.threshold_
    assert 0.4 * TARGET <= float(np.mean(shares)) <= 1.6 * TARGET, shares


@pytest.mark.parametrize("name", NAMES)
def test_no_quota_a_clean_batch_gets_few_flags_and_planted_ones_are_caught(name: str) -> None:
    """Fitted on the batch itself at the default rate: far outliers planted in it are flagged,
    and the clean rows of the batch are flagged at well under 1% (the old quota)."""
    X = _clean(4000, 7)
    signs = np.array([[1, -1, 1], [-1, 1, -1], [1, 1, 1], [-1, -1, 1], [1, -1, -1]])
    far = np.column_stack(
        [12.0 * signs[:, 0], 12.0 * signs[:, 1], np.full(5, 40.0), 12.0 * signs[:, 2]]
    )
    X[:5] = far
    det = get_detector(name, random_state=7).fit(X)
    flagged = det.score(X) > det.threshold_
    assert flagged[:5].all()
    assert flagged[5:].mean() < 0.004
    assert det.calibration_["held_out"] == "two-fold cross-fit of the fit sample"


@pytest.mark.parametrize("name", NAMES)
def test_threshold_comes_from_rows_left_out_of_the_fit_sample(name: str) -> None:
    det = get_detector(name, max_fit_rows=1000).fit(_clean(7000, 3))
    assert det.n_fit_ == 1000
    assert det.calibration_["held_out"] == "rows left out of the fit sample"
    assert det.calibration_["held_out_rows"] == 6000
    assert det.calibration_["method"].startswith("generalized Pareto tail")


def test_contamination_is_refused_with_what_replaced_it() -> None:
    with pytest.raises(ConfigError) as info:
        get_detector("iforest", contamination=0.01)
    assert info.value.key == "params.contamination"
    assert "false_flag_rate" in str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_severity_warn_leaves_flagged_rows_clean_and_error_quarantines_them(name: str) -> None:
    X = _clean(3000, 9)
    X[:5] = [[12.0, -12.0, 40.0, 12.0], [-12.0, 12.0, 40.0, -12.0], [12.0, 12.0, 40.0, 12.0],
             [-12.0, -12.0, 40.0, 12.0], [12.0, -12.0, 40.0, -12.0]]  # fmt: skip
    cols = ["a", "b", "c", "d"]
    frame = pl.DataFrame(X, schema=cols).with_columns(
        pl.int_range(pl.len(), dtype=pl.UInt64).alias("_row_id"),
        pl.lit("f.csv").alias("_source_file"),
        pl.int_range(pl.len(), dtype=pl.Int64).alias("_source_row"),
    )
    raw = frame.select("_row_id", *(pl.col(c).cast(pl.String) for c in cols))
    declared: dict[str, pl.DataType] = {c: pl.Float64() for c in cols}
    for severity in ("warn", "error"):
        spec = DetectorSpec(name="s", detector=name, features=list(cols), seed=1, severity=severity)
        failures = screen(frame.select("_row_id", *cols), [spec]).failures
        flagged = set(failures["_row_id"].to_list())
        assert set(range(5)) <= flagged
        assert set(failures["severity"]) == {severity}
        result = split(frame, raw, failures, declared)
        if severity == "warn":
            assert result.clean.height == frame.height
            assert result.quarantine.is_empty()
        else:
            assert set(result.quarantine["_row_id"].to_list()) == flagged
            assert result.clean.height == frame.height - len(flagged)
