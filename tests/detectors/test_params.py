"""Library parameters of the detectors are checked before data moves, and a library that refuses
to fit on the rows it is given leaves its detector not run, said in the verdict."""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import polars as pl
import pytest

from detectors.base import FitRefused
from detectors.params import BINS, JOBS, METRIC_PARAMS, choice, integer, number
from detectors.pyod_adapters import PyODDetector, import_path
from detectors.registry import REGISTRY, check_detector, detector_class, get_detector
from sluice.core.errors import ConfigError
from sluice.screening import screen

ADAPTERS = [n for n in REGISTRY if issubclass(detector_class(n), PyODDetector)]


def test_the_rules_read_values_as_json_gives_them() -> None:
    assert integer(1, 5).ok(5)
    assert not integer(1, 5).ok(6)
    assert not integer(1, 5).ok(True)
    assert not integer(1, 5).ok(2.0)  # a float is not an integer, even a whole one
    assert number(0, 1, open_lo=True).ok(1)
    assert not number(0, 1, open_lo=True).ok(0)
    assert not number(0, 1).ok(math.nan)
    assert not number(0, 1).ok("0.5")
    assert choice("auto").ok("auto")
    assert not choice("auto").ok("AUTO")
    assert BINS.ok("auto")
    assert BINS.ok(2)
    assert not BINS.ok(1)
    assert not BINS.ok(10**9)
    assert JOBS.ok(None)
    assert JOBS.ok(-1)
    assert not JOBS.ok(0)
    assert not JOBS.ok(1000)
    assert METRIC_PARAMS.ok({"w": [1, 2.5]})
    assert METRIC_PARAMS.ok(None)
    assert not METRIC_PARAMS.ok({"w": []})
    assert not METRIC_PARAMS.ok({"V": [[1]]})
    assert not METRIC_PARAMS.ok({"w": [1, -1]})
    assert not METRIC_PARAMS.ok({"w": "1"})


@pytest.mark.parametrize("name", ADAPTERS)
def test_the_librarys_own_defaults_are_within_the_rules(name: str) -> None:
    cls = detector_class(name)
    assert isinstance(cls, type)
    assert issubclass(cls, PyODDetector)
    sig = inspect.signature(import_path(cls.estimator_path).__init__).parameters
    defaults = {p: sig[p].default for p in cls.estimator_params() if p in sig}
    assert set(cls.param_rules) <= set(cls.estimator_params())
    check_detector(name, {p: v for p, v in defaults.items() if p in cls.param_rules})


@pytest.mark.parametrize(
    ("name", "params", "key"),
    [
        ("knn", {"n_neighbors": 0}, "n_neighbors"),
        ("knn", {"n_neighbors": -1}, "n_neighbors"),
        ("knn", {"n_neighbors": "5"}, "n_neighbors"),
        ("knn", {"method": "x"}, "method"),
        ("knn", {"metric": "precomputed"}, "metric"),
        ("knn", {"p": 0.5}, "p"),
        ("knn", {"radius": 0}, "radius"),
        ("lof", {"n_neighbors": 10**9}, "n_neighbors"),
        ("lof", {"algorithm": "octree"}, "algorithm"),
        ("iforest", {"n_estimators": 0}, "n_estimators"),
        ("default", {"n_estimators": 10**7}, "n_estimators"),
        ("default", {"max_samples": 0}, "max_samples"),
        ("default", {"max_features": 1.5}, "max_features"),
        ("default", {"bootstrap": "yes"}, "bootstrap"),
        ("default", {"n_jobs": 1000}, "n_jobs"),
        ("hbos", {"n_bins": 10**9}, "n_bins"),
        ("hbos", {"alpha": 0}, "alpha"),
        ("loda", {"n_random_cuts": 10**8}, "n_random_cuts"),
        ("pca", {"svd_solver": "x"}, "svd_solver"),
        ("pca", {"n_components": 0}, "n_components"),
        ("ensemble", {"members": [{"detector": "knn", "params": {"n_neighbors": -3}}]}, ""),
    ],
)
def test_a_value_the_library_would_refuse_or_choke_on_is_a_config_error(
    name: str, params: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as info:
        check_detector(name, params)
    if key:
        assert info.value.key == f"params.{key}"
        assert info.value.found == params[key]
        assert info.value.allowed


@pytest.mark.parametrize(
    ("name", "params", "said"),
    [
        ("pca", {"n_components": 5}, "PyOD PCA could not be fitted on 200 rows x 2 features"),
        ("iforest", {"max_features": 5}, "PyOD IForest could not be fitted on 200 rows"),
        ("knn", {"metric_params": {"w": [1, 2, 3]}}, "PyOD KNN could not be fitted"),
    ],
)
def test_a_fit_the_library_refuses_on_these_rows_is_fit_refused(
    name: str, params: dict[str, Any], said: str
) -> None:
    """Values right in themselves but not for these rows (more components or features than
    the rows have, one weight per feature)."""
    X = np.random.default_rng(0).normal(size=(200, 2))
    check_detector(name, params)
    with pytest.raises(FitRefused) as info:
        get_detector(name, **params).fit(X)
    assert said in str(info.value)
    assert next(iter(params)) in str(info.value)


def test_the_detectors_own_checks_are_not_taken_for_the_librarys() -> None:
    with pytest.raises(ValueError, match="needs at least"):
        get_detector("pca").fit(np.zeros((3, 2)))


def test_a_refused_fit_leaves_the_detector_not_run_and_warns() -> None:
    frame = pl.DataFrame({"amount": np.arange(100.0), "n": np.arange(100)})
    spec = {"name": "pca", "features": ["amount", "n"], "params": {"n_components": 5}}
    result = screen(frame, {"name": "s", "expectations": []}, detectors=[spec])
    (record,) = result.detectors
    assert record["skipped"] is True
    assert "could not be fitted" in record["reason"]
    assert result.clean.height == 100  # nothing was lost: the rows are clean, unscreened
    assert result.verdict.status == "warned"
    (cause,) = result.verdict.causes
    assert cause.name == "outlier|pca"
    assert "n_components=5" in cause.message
