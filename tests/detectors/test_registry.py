"""Registry look-ups and parameter validation."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import available_detectors, get_detector
from detectors.base import Detector
from detectors.pyod_adapters import import_path
from detectors.registry import REGISTRY
from sluice.core.errors import ConfigError


def test_every_entry_names_a_detector_class_by_import_path() -> None:
    for name, entry in REGISTRY.items():
        cls = import_path(entry.class_path)
        assert isinstance(cls, type), name
        assert issubclass(cls, Detector), name
        assert entry.summary


def test_unknown_detector_names_what_is_allowed() -> None:
    with pytest.raises(ConfigError) as info:
        get_detector("isolation_forest")
    assert info.value.found == "isolation_forest"
    assert info.value.allowed is not None
    assert "iforest" in info.value.allowed
    assert "unknown detector" in str(info.value)


def test_misspelt_pyod_parameter_is_refused_with_the_right_name_offered() -> None:
    with pytest.raises(ConfigError) as info:
        get_detector("knn", n_neighbours=3)
    msg = str(info.value)
    assert "'knn'" in msg
    assert "n_neighbours" in msg
    assert "n_neighbors" in msg
    assert info.value.key == "params.n_neighbours"


def test_pyod_parameter_reaches_the_model() -> None:
    det = get_detector("knn", n_neighbors=3).fit(np.random.default_rng(0).normal(size=(50, 2)))
    assert det.get_params()["n_neighbors"] == 3
    assert det.estimator_.n_neighbors == 3  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "params", "key"),
    [
        ("lof", {"novelty": False}, "params.novelty"),
        ("iforest", {"verbose": 1}, "params.verbose"),
        ("ecod", {"contamination": 0.7}, "params.contamination"),
        ("ecod", {"contamination": "1%"}, "params.contamination"),
        ("hbos", {"max_fit_rows": 0}, "params.max_fit_rows"),
        ("hbos", {"random_state": -1}, "params.random_state"),
        ("ecod", {"n_jobs": 0}, "params.n_jobs"),
        ("pca", {"scale": "yes"}, "params.scale"),
        ("ensemble", {"combine": "max"}, "params.combine"),
        ("ensemble", {"members": []}, "params.members"),
        ("ensemble", {"members": ["ensemble"]}, "params.members[0]"),
        ("ensemble", {"members": [{"detector": "knn", "param": {}}]}, "params.members[0]"),
    ],
)
def test_bad_parameters_are_config_errors(name: str, params: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        get_detector(name, **params)
    assert info.value.key == key
    assert repr(name) in str(info.value)


def test_ensemble_member_parameters_are_checked() -> None:
    with pytest.raises(ConfigError, match="n_neighbours"):
        get_detector("ensemble", members=[{"detector": "knn", "params": {"n_neighbours": 2}}])
    with pytest.raises(ConfigError, match="unknown detector"):
        get_detector("ensemble", members=["iforest", "nope"])


def test_available_detectors_is_sorted_and_complete() -> None:
    names = available_detectors()
    assert names == sorted(REGISTRY)
    assert len(names) == len(set(names))


def test_rank_ensemble_scores_in_the_unit_interval() -> None:
    X = np.random.default_rng(1).normal(size=(300, 3))
    det = get_detector("ensemble", combine="rank", members=["ecod", "hbos"]).fit(X)
    s = det.score(X)
    assert s.min() >= 0.0
    assert s.max() <= 1.0


def test_ensemble_member_with_a_smaller_sample_scores_every_fit_row() -> None:
    X = np.random.default_rng(2).normal(size=(300, 3))
    knn = {"detector": "knn", "params": {"max_fit_rows": 50}}
    det = get_detector("ensemble", members=["hbos", knn]).fit(X)
    assert det.fit_scores_.shape == (300,)
    member = det.members_[1]  # type: ignore[attr-defined]
    assert member.n_fit_ == 50
    assert np.isfinite(det.fit_scores_).all()
