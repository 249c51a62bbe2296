"""The isolation forest grown without scikit-learn is scikit-learn's, array for array."""

from __future__ import annotations

import inspect
import subprocess
import sys
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyod.models.iforest import IForest as PyODIForest
from sklearn.ensemble import IsolationForest
from sklearn.ensemble._iforest import _average_path_length
from sklearn.tree import ExtraTreeRegressor
from sklearn.utils.random import sample_without_replacement as sk_sample

from detectors.iforest_fit import (
    RAND_R_MAX,
    Unsupported,
    _grow,
    average_path_length,
    fit_forest,
    node_depths,
    resolve,
    sample_without_replacement,
)
from detectors.pyod_adapters import _HIDDEN, IForest

# infinities and 1e300 cast to float32 (scikit-learn's cast warns; both make them inf)
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
FloatArray = npt.NDArray[np.float64]
ARRAYS = ("children_left", "children_right", "feature", "threshold", "n_node_samples")


def assert_same_trees(X: FloatArray, **params: Any) -> None:
    ours = fit_forest(X, **params)
    theirs = IsolationForest(**params).fit(X)
    assert len(ours.trees) == len(theirs.estimators_)
    assert ours.max_samples == theirs.max_samples_
    for t, (tree, est, cols) in enumerate(
        zip(ours.trees, theirs.estimators_, theirs.estimators_features_, strict=True)
    ):
        for name in ARRAYS:
            np.testing.assert_array_equal(
                getattr(tree, name), getattr(est.tree_, name), err_msg=f"tree {t}: {name}"
            )
        np.testing.assert_array_equal(ours.features[t], cols, err_msg=f"tree {t}: features")
        np.testing.assert_array_equal(
            node_depths(tree.children_left, tree.children_right),
            est.tree_.compute_node_depths(),
        )


def table(kind: str, rows: int, cols: int, seed: int) -> FloatArray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, cols))
    if kind == "ties":
        X = np.round(X, 1)
    elif kind == "few values":
        X = rng.integers(0, 3, size=(rows, cols)).astype(np.float64)
    elif kind == "constant columns":
        X[:, ::2] = 7.0
    elif kind == "all constant":
        X[:] = -1.5
    elif kind == "infinities":
        X[rng.random(X.shape) < 0.02] = np.inf
        X[rng.random(X.shape) < 0.02] = -np.inf
    elif kind == "float32 edges":
        # values that round together in float32, beyond its range, and subnormal
        X = np.asarray(1.0 + rng.integers(0, 4, size=(rows, cols)) * 2.0**-30, dtype=np.float64)
        X[rng.random(X.shape) < 0.05] = 1e300
        X[rng.random(X.shape) < 0.05] = 1e-42
    elif kind == "tiny spread":
        # columns whose spread is within scikit-learn's FEATURE_THRESHOLD (1e-7): constant to it
        X[:, ::2] = 3.0 + X[:, ::2] * 1e-8
        X[:, 1::3] *= 1e-6
    elif kind == "heavy tails":
        X = rng.standard_cauchy(size=(rows, cols)) * 1e6
    return X


KINDS = [
    "normal",
    "ties",
    "few values",
    "constant columns",
    "all constant",
    "infinities",
    "float32 edges",
    "tiny spread",
    "heavy tails",
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rows", [1, 2, 3, 255, 256, 257, 4_000])
def test_default_parameters(kind: str, rows: int) -> None:
    assert_same_trees(table(kind, rows, 5, rows), n_estimators=12, random_state=rows)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "params",
    [
        {"max_features": 0.5},
        {"max_features": 1},
        {"max_features": 3},
        {"bootstrap": True},
        {"bootstrap": True, "max_samples": 1.0},
        {"max_samples": 0.5},
        {"max_samples": 1.0},
        {"max_samples": 37},
        {"max_samples": 2_000, "max_features": 0.7, "bootstrap": True},
    ],
    ids=str,
)
def test_other_parameters(kind: str, params: dict[str, Any]) -> None:
    assert_same_trees(table(kind, 2_000, 6, 3), n_estimators=8, random_state=11, **params)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 2),
    rows=st.integers(1, 3_000),
    cols=st.integers(1, 9),
    kind=st.sampled_from(KINDS),
    trees=st.integers(1, 6),
)
def test_any_seed_and_shape(seed: int, rows: int, cols: int, kind: str, trees: int) -> None:
    assert_same_trees(table(kind, rows, cols, seed), n_estimators=trees, random_state=seed)


@pytest.mark.parametrize("target", ["uniform", "constant", "two values", "tiny differences"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_tree_is_extra_tree_regressors(target: str, weighted: bool, seed: int) -> None:
    """The tree builder against scikit-learn's on targets an isolation forest never draws: nodes
    made leaves by a pure target (impurity within EPSILON), rows of zero and integer weights."""
    rng = np.random.default_rng(seed)
    X = np.round(rng.normal(size=(400, 4)), 1).astype(np.float32)
    y = {
        "uniform": rng.random(400),
        "constant": np.full(400, 0.5),
        "two values": rng.integers(0, 2, 400) * 0.3,
        "tiny differences": 0.5 + rng.integers(0, 3, 400) * 1e-9,
    }[target]
    w = rng.integers(0, 4, 400).astype(np.float64) if weighted else np.ones(400)
    theirs = ExtraTreeRegressor(max_features=1, max_depth=9, random_state=seed)
    theirs.fit(X, y, sample_weight=w if weighted else None)
    keep = np.flatnonzero(w)
    ours = _grow(
        np.ascontiguousarray(X[keep]),
        y[keep],
        w[keep],
        weight_total=float(w.sum()),
        max_depth=9,
        seed=int(np.random.RandomState(seed).randint(0, RAND_R_MAX)),
    )
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(ours, name), getattr(theirs.tree_, name), name)


@pytest.mark.parametrize(
    ("population", "samples"),
    [
        (10, 10),
        (10, 1),
        (200_000, 256),
        (1_000, 10),
        (1_000, 11),
        (1_000, 500),
        (1_000, 990),
        (1_000, 995),
        (100, 99),
        (5, 0),
        (3, 3),
        (50_000, 1),
    ],
)
def test_sample_without_replacement_is_sklearns(population: int, samples: int) -> None:
    """Tracking selection (with its repeats drawn again), permutation and reservoir: the same
    draws from the same generator, and the generator left in the same state."""
    for seed in range(5):
        ours_rng, their_rng = np.random.RandomState(seed), np.random.RandomState(seed)
        ours = sample_without_replacement(population, samples, ours_rng)
        np.testing.assert_array_equal(ours, sk_sample(population, samples, random_state=their_rng))
        assert ours_rng.randint(2**30) == their_rng.randint(2**30)


def test_tracking_selection_with_repeats() -> None:
    """A population small enough that repeats are drawn (256 of 25,600: a draw repeats an
    earlier one with a chance of up to one in a hundred), for seeds where they are."""
    repeats = [
        len(set(np.random.RandomState(seed).randint(25_600, size=256).tolist())) < 256
        for seed in range(20)
    ]
    assert sum(repeats) >= 10
    for seed in range(20):
        ours = sample_without_replacement(25_600, 256, np.random.RandomState(seed))
        np.testing.assert_array_equal(ours, sk_sample(25_600, 256, random_state=seed))


def test_average_path_length_is_sklearns() -> None:
    n = np.arange(0, 70_000)
    np.testing.assert_array_equal(average_path_length(n), _average_path_length(n))
    np.testing.assert_array_equal(average_path_length([256]), _average_path_length([256]))


@pytest.mark.parametrize(
    ("params", "rows", "cols"),
    [
        ({"max_samples": 0}, 10, 2),
        ({"max_samples": 11}, 10, 2),  # scikit-learn warns and takes 10
        ({"max_samples": 1.5}, 10, 2),
        ({"max_samples": 0.05}, 10, 2),  # no rows
        ({"max_samples": "all"}, 10, 2),
        ({"max_samples": True}, 10, 2),
        ({"max_features": 0}, 10, 2),
        ({"max_features": 3}, 10, 2),
        ({"max_features": 0.0}, 10, 2),
        ({"max_features": "sqrt"}, 10, 2),
        ({"max_features": np.float32(0.5)}, 10, 2),  # numpy's float32 multiplies otherwise
        ({"bootstrap": 1}, 10, 2),
        ({}, 0, 2),
    ],
    ids=str,
)
def test_what_is_not_reproduced_is_refused(params: dict[str, Any], rows: int, cols: int) -> None:
    full = {"max_samples": "auto", "max_features": 1.0, "bootstrap": False, **params}
    with pytest.raises(Unsupported):
        resolve(rows, cols, full["max_samples"], full["max_features"], full["bootstrap"])


def test_nan_and_bad_counts_are_refused() -> None:
    X = np.ones((5, 2))
    X[0, 0] = np.nan
    with pytest.raises(Unsupported, match="NaN"):
        fit_forest(X, n_estimators=3, random_state=0)
    with pytest.raises(Unsupported, match="n_estimators"):
        fit_forest(np.ones((5, 2)), n_estimators=0, random_state=0)


def test_pyod_defaults_are_pyods() -> None:
    """The parameters IForest offers and fits with, without importing PyOD, are PyOD's."""
    sig = inspect.signature(PyODIForest.__init__).parameters
    offered = [p for p, v in sig.items() if p not in _HIDDEN and v.kind is v.POSITIONAL_OR_KEYWORD]
    assert IForest.estimator_params() == offered
    assert dict(IForest.pyod_defaults) == {p: sig[p].default for p in offered}
    assert sig["contamination"].default == IForest.pyod_contamination


def test_fit_falls_back_to_sklearn_where_not_reproduced() -> None:
    """``max_samples`` above the rows: scikit-learn's path, with its warning, PyOD's scores."""
    X = np.random.default_rng(0).normal(size=(300, 3))
    det = IForest(max_samples=500, n_estimators=20)
    with pytest.warns(UserWarning, match="max_samples"):
        det.fit_uncalibrated(X)
    theirs = PyODIForest(max_samples=500, n_estimators=20, random_state=0)
    with pytest.warns(UserWarning, match="max_samples"):
        theirs.fit(X)
    np.testing.assert_array_equal(det.fit_scores_, theirs.decision_scores_)
    np.testing.assert_array_equal(det.score(X * 3), theirs.decision_function(X * 3))


NO_SKLEARN = """
import sys
import numpy as np
from detectors.registry import check_detector, get_detector
check_detector("default", {"n_jobs": 2})
det = get_detector("default")
X = np.random.default_rng(0).normal(size=(50_000, 6))
det.fit(X)
det.score(X[:1000] * 3)
heavy = ("sklearn", "pyod", "scipy.stats", "scipy.sparse", "pandas")
loaded = sorted(m for m in sys.modules if m.startswith(heavy))
print(",".join(loaded) or "none")
"""


def test_default_detector_imports_neither_sklearn_nor_pyod() -> None:
    """Checking, fitting, calibrating and scoring the default detector: no scikit-learn, PyOD,
    scipy.stats or pandas import (about a CPU second; numba loads scipy's top package only)."""
    proc = subprocess.run(
        [sys.executable, "-c", NO_SKLEARN],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "none"
