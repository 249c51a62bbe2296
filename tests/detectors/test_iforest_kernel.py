"""The compiled isolation-forest scorer equals scikit-learn and PyOD bit for bit."""

from __future__ import annotations

import os
import pickle
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import numpy as np
import numpy.typing as npt
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.extra.numpy import arrays
from numba.core.errors import TypingError
from pyod.models.iforest import IForest as PyODIForest
from sklearn.ensemble import IsolationForest

from detectors import get_detector
from detectors.iforest_kernel import (
    BLOCK,
    LANES,
    MIN_PARALLEL_ROWS,
    TOP,
    CompactForest,
    TooLarge,
    float32_at_most,
    leaf_sums,
    ordered_key,
    threshold_keys,
)
from detectors.persist import FittedModel, load_model, save_model
from detectors.pyod_adapters import IForest
from detectors.screen import fit_model
from detectors.spec import DetectorSpec

FloatArray = npt.NDArray[np.float64]
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).smallest_subnormal)


def hostile(n: int, seed: int) -> FloatArray:
    """Columns that break naive float handling: constant, beyond float32, subnormal, signed zeros,
    few distinct values, heavy tails."""
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [
            rng.normal(size=n),
            np.full(n, 7.0),
            rng.choice([-1e300, -F32_MAX * 2, 1e200, F32_MAX, 3.0], n),
            rng.choice([-F32_TINY, F32_TINY, 0.0, -0.0, 1e-300, -1e-300], n),
            rng.integers(0, 3, n).astype(np.float64),
            rng.standard_cauchy(n) * 1e30,
            rng.normal(size=n) * 1e-30,
        ]
    )


def near_thresholds(forest: IsolationForest, cols: int) -> FloatArray:
    """Rows whose values sit on, just below and just above the forest's thresholds (float64 and
    float32 neighbours), where a wrong rounding of thresholds or inputs would change a branch."""
    t = np.concatenate([e.tree_.threshold[e.tree_.children_left != -1] for e in forest.estimators_])
    t = np.unique(t)
    with np.errstate(over="ignore"):
        vals = _neighbours(t)
    rng = np.random.default_rng(1)
    return rng.choice(vals, size=(max(64, 4 * len(vals) // cols), cols))


def _neighbours(t: FloatArray) -> FloatArray:
    t32 = t.astype(np.float32).astype(np.float64)
    return np.concatenate(
        [
            t,
            np.nextafter(t, -np.inf),
            np.nextafter(t, np.inf),
            t32,
            np.nextafter(t.astype(np.float32), np.float32(-np.inf)).astype(np.float64),
            np.nextafter(t.astype(np.float32), np.float32(np.inf)).astype(np.float64),
            np.array([0.0, -0.0, np.inf, -np.inf, 1e300, -1e300]),
        ]
    )


def assert_same_as_sklearn(forest: IsolationForest, *queries: FloatArray) -> None:
    compact = CompactForest.from_sklearn(forest)
    for q in queries:
        np.testing.assert_array_equal(compact.score_samples(q), forest.score_samples(q))


@pytest.mark.parametrize("max_features", [1.0, 0.5, 2])
@pytest.mark.parametrize("bootstrap", [False, True])
def test_equals_sklearn_on_hostile_columns(max_features: float, bootstrap: bool) -> None:
    X = hostile(2_000, 0)
    forest = IsolationForest(
        n_estimators=40, max_features=max_features, bootstrap=bootstrap, random_state=3
    ).fit(X)
    assert_same_as_sklearn(forest, X, hostile(1_000, 1), near_thresholds(forest, X.shape[1]))


def test_equals_sklearn_with_infinities_in_queries() -> None:
    X = np.random.default_rng(0).normal(size=(500, 4))
    forest = IsolationForest(n_estimators=30, random_state=0).fit(X)
    q = np.array([[np.inf, 0, 0, 0], [-np.inf, 0, 0, 0], [np.inf, -np.inf, np.inf, -np.inf]])
    assert_same_as_sklearn(forest, q)


@pytest.mark.parametrize("rows", [1, 2, 3])
def test_equals_sklearn_on_tiny_fits(rows: int) -> None:
    X = np.arange(rows * 3, dtype=np.float64).reshape(rows, 3)
    forest = IsolationForest(n_estimators=10, random_state=0).fit(X)
    assert_same_as_sklearn(forest, X, np.full((5, 3), 1.5))


def test_equals_sklearn_on_duplicate_rows() -> None:
    X = np.tile([[1.0, 2.0, -0.0]], (300, 1))
    forest = IsolationForest(n_estimators=20, random_state=0).fit(X)
    assert_same_as_sklearn(forest, X, np.array([[1.0, 2.0, 0.0], [5.0, -5.0, 1e300]]))


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
extreme = st.sampled_from([0.0, -0.0, 1.0, -1.0, F32_MAX, -F32_MAX, 1e300, -1e300, F32_TINY])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    X=arrays(
        np.float64,
        st.tuples(st.integers(2, 60), st.integers(1, 5)),
        elements=st.one_of(finite, extreme),
    ),
    max_features=st.sampled_from([1.0, 0.6]),
    seed=st.integers(0, 2**16),
)
def test_equals_sklearn_on_generated_data(X: FloatArray, max_features: float, seed: int) -> None:
    forest = IsolationForest(n_estimators=8, max_features=max_features, random_state=seed).fit(X)
    assert_same_as_sklearn(forest, X, near_thresholds(forest, X.shape[1]))


any_float = st.one_of(
    st.floats(allow_nan=False, width=64), extreme, st.floats(width=32, allow_nan=False)
)


@settings(max_examples=500, deadline=None)
@given(x=any_float, t=any_float)
def test_key_comparison_is_sklearns_branch(x: float, t: float) -> None:
    """Going left in scikit-learn (``float32(x) <= t``, ``t`` a float64) is exactly the kernel's
    ``key(x) <= key(threshold rounded down to float32)``; signed zeros compare equal."""
    with np.errstate(over="ignore"):
        left = bool(np.float64(np.float32(x)) <= t)
    key_t = int(threshold_keys(float32_at_most(np.array([t])))[0])
    assert (int(ordered_key(x)) <= key_t) == left
    assert int(ordered_key(-0.0)) == int(ordered_key(0.0))


@pytest.mark.parametrize("name", ["iforest", "default"])
def test_registry_detectors_equal_pyod(name: str) -> None:
    """Fit scores, scores of new rows and scikit-learn's offset are PyOD's, to the bit (the trees
    grown without scikit-learn)."""
    X = hostile(3_000, 4)
    X = X[:, [0, 1, 3, 4, 5]]  # what feature preparation leaves: finite, in float64 range
    ours = get_detector(name).fit(X)
    assert isinstance(ours, IForest)
    theirs = PyODIForest(random_state=0, n_estimators=300 if name == "default" else 100).fit(X)
    q = hostile(2_000, 5)[:, [0, 1, 3, 4, 5]]
    np.testing.assert_array_equal(ours.fit_scores_, theirs.decision_scores_)
    np.testing.assert_array_equal(ours.score(q), theirs.decision_function(q))
    assert ours.offset_ == theirs.detector_.offset_
    assert "estimator_" not in vars(ours)  # not fitted by scikit-learn


def test_scores_do_not_depend_on_threads() -> None:
    rng = np.random.default_rng(0)
    forest = IsolationForest(n_estimators=20, random_state=0).fit(rng.normal(size=(1_000, 5)))
    compact = CompactForest.from_sklearn(forest)
    q = rng.normal(size=(2 * MIN_PARALLEL_ROWS + 17, 5))
    one = compact.score_samples(q, threads=1)
    np.testing.assert_array_equal(compact.score_samples(q, threads=3), one)
    np.testing.assert_array_equal(one, forest.score_samples(q))


@pytest.mark.parametrize(
    "rows", [1, LANES - 1, LANES, LANES + 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK + LANES + 3]
)
def test_partial_lanes_and_blocks(rows: int) -> None:
    """Row counts that end inside a vector of lanes or a block: the rows past the end are walked
    on stale keys and must not leak into the scores of the rows that are there."""
    rng = np.random.default_rng(rows)
    forest = IsolationForest(n_estimators=25, random_state=0).fit(rng.normal(size=(600, 6)))
    big = rng.normal(size=(2 * BLOCK + LANES + 3, 6)) * 50
    compact = CompactForest.from_sklearn(forest)
    compact.score_samples(big)  # leaves other keys behind in a reused thread's buffers, if any
    q = rng.normal(size=(rows, 6))
    np.testing.assert_array_equal(compact.score_samples(q), forest.score_samples(q))


def test_wide_rows_and_deep_feature_indices() -> None:
    """Features far apart in wide rows (the key gather's offsets grow with the feature index)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3_000))
    forest = IsolationForest(n_estimators=20, max_features=0.01, random_state=0).fit(X)
    q = rng.normal(size=(300, 3_000)) * 3
    assert_same_as_sklearn(forest, q, X[:50])


PORTABLE_CHECK = """
import numpy as np
from sklearn.ensemble import IsolationForest
from detectors.iforest_kernel import CompactForest
rng = np.random.default_rng(0)
forest = IsolationForest(n_estimators=30, random_state=0).fit(rng.normal(size=(800, 5)))
q = rng.normal(size=(3_001, 5)) * 2
ours = CompactForest.from_sklearn(forest).score_samples(q, 2)
assert np.array_equal(ours, forest.score_samples(q))
print("same")
"""


@pytest.mark.slow
@pytest.mark.skipif(platform.machine() not in {"x86_64", "AMD64"}, reason="x86 CPU names")
@pytest.mark.parametrize(("cpu", "features"), [("generic", ""), ("haswell", "-avx512f")])
def test_same_scores_compiled_for_cpus_without_avx512(
    cpu: str, features: str, tmp_path: Path
) -> None:
    """Compiled for a CPU without AVX-512 (LLVM turns the vector gathers into scalar loads, SSE2
    or AVX2): same scores bit for bit."""
    env = {
        **os.environ,
        "NUMBA_CPU_NAME": cpu,
        "NUMBA_CPU_FEATURES": features,
        "NUMBA_CACHE_DIR": str(tmp_path),
    }
    proc = subprocess.run(
        [sys.executable, "-c", PORTABLE_CHECK],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "same"


def _top_arrays(
    offsets: type[np.generic] = np.int64,
    thresholds: type[np.generic] = np.int32,
    reached: type[np.generic] = np.int32,
) -> tuple[Any, Any, Any]:
    slots = (1 << TOP) - 1
    return (
        np.zeros((1, slots), dtype=offsets),
        np.zeros((1, slots), dtype=thresholds),
        np.zeros((1, slots + 1), dtype=reached),
    )


@pytest.mark.parametrize("dtype", [np.int32, np.float64])
def test_kernel_refuses_node_arrays_it_would_misread(dtype: type[np.generic]) -> None:
    """The gathers read raw memory as int64 nodes: any other node array fails at typing."""
    out = np.empty(3)
    one = np.ones(1, dtype=np.int64)
    top = _top_arrays()
    with pytest.raises(TypingError):
        leaf_sums(
            np.zeros((3, 2)), 0, 3, np.zeros(3, dtype=dtype), np.zeros(3), one * 0, one, out, *top
        )


@pytest.mark.parametrize(
    "top",
    [
        _top_arrays(offsets=np.int32),
        _top_arrays(thresholds=np.int64),
        _top_arrays(reached=np.int64),
    ],
)
def test_kernel_refuses_top_tables_it_would_misread(top: tuple[Any, Any, Any]) -> None:
    """The top levels' loads read raw memory too: tables of another type fail at typing."""
    out = np.empty(3)
    one = np.full(1, TOP, dtype=np.int64)
    with pytest.raises(TypingError):
        leaf_sums(
            np.zeros((3, 2)),
            0,
            3,
            np.zeros(3, dtype=np.int64),
            np.zeros(3),
            one * 0,
            one,
            out,
            *top,
        )


@pytest.mark.parametrize("max_samples", [2 ** (TOP - 1), 2**TOP, 2**TOP + 1, 2 ** (TOP + 1)])
@pytest.mark.parametrize("distinct", [3, 40, 10_000])
def test_trees_about_as_deep_as_the_top_levels(max_samples: int, distinct: int) -> None:
    """Trees one level short of, as deep as and deeper than the levels taken all at once, with
    leaves among those levels (few distinct values make pure nodes early): same scores."""
    rng = np.random.default_rng(max_samples + distinct)
    X = rng.integers(0, distinct, size=(3_000, 4)).astype(np.float64)
    X[:, 3] = rng.normal(size=3_000)
    forest = IsolationForest(n_estimators=30, max_samples=max_samples, random_state=1).fit(X)
    depths = CompactForest.from_sklearn(forest).depths
    if distinct == 10_000:  # trees of ceil(log2(max_samples)) levels: under TOP, or not
        assert bool((depths >= TOP).any()) == (max_samples > 2 ** (TOP - 1))
    q = np.vstack([X[:700], rng.normal(size=(300, 4)) * distinct])
    assert_same_as_sklearn(forest, q, near_thresholds(forest, 4))


def test_top_tables_follow_the_trees() -> None:
    """Each path through a tree's top reaches the node a walk of the same steps reaches."""
    X = np.random.default_rng(0).integers(0, 6, size=(2_000, 3)).astype(np.float64)
    compact = CompactForest.from_sklearn(IsolationForest(n_estimators=20, random_state=0).fit(X))
    offsets, thresholds, reached = compact.top
    for t in np.flatnonzero(compact.depths >= TOP):
        r = int(compact.roots[t])
        for path in range(1 << TOP):
            at, slot = 0, 0
            for level in range(TOP):
                w = int(compact.node[r + at])
                assert offsets[t, slot] == ((w >> 16) & 0xFFFF) * BLOCK
                assert thresholds[t, slot] == w >> 32
                right = (path >> (TOP - 1 - level)) & 1
                kid = w & 0xFFFF
                leaf = kid == at
                at = kid if leaf else kid + right
                slot = 2 * slot + 1 + right
            assert reached[t, path] == at


def test_forest_pickled_without_top_tables_scores_the_same() -> None:
    """The top tables are made from the nodes: not pickled, and made again after loading (a
    forest pickled before they existed has none)."""
    X = np.random.default_rng(0).normal(size=(600, 4))
    forest = IsolationForest(n_estimators=15, random_state=0).fit(X)
    compact = CompactForest.from_sklearn(forest)
    before = compact.score_samples(X)
    assert "top" in vars(compact)
    loaded = pickle.loads(pickle.dumps(compact))
    assert "top" not in vars(loaded)
    np.testing.assert_array_equal(loaded.score_samples(X), before)


def test_nan_is_refused() -> None:
    forest = IsolationForest(n_estimators=5, random_state=0).fit(np.eye(20))
    with pytest.raises(ValueError, match="NaN"):
        CompactForest.from_sklearn(forest).score_samples(np.full((2, 20), np.nan))


def test_forest_beyond_the_layout_is_scored_by_sklearn() -> None:
    """Feature indices of 65,536 and more do not fit the 16-bit field: same scores, by
    scikit-learn."""
    X = np.random.default_rng(0).normal(size=(12, 65_536))
    det = get_detector("iforest", n_estimators=3)
    assert isinstance(det, IForest)
    det.fit_uncalibrated(X)
    with pytest.raises(TooLarge):
        CompactForest.from_sklearn(det.estimator_.detector_)
    theirs = PyODIForest(n_estimators=3, random_state=0).fit(X)
    np.testing.assert_array_equal(det.fit_scores_, theirs.decision_scores_)
    np.testing.assert_array_equal(det.score(X[:5] * 2), theirs.decision_function(X[:5] * 2))


def test_pickle_leaves_out_the_compact_forest_derived_from_sklearns() -> None:
    """A forest fitted by scikit-learn is pickled as its trees, without the compact copy; one
    fitted here is pickled as it is scored. Both score the same after loading."""
    X = np.random.default_rng(0).normal(size=(500, 3))
    det = get_detector("iforest").fit(X)
    before = det.score(X)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(det)).score(X), before)
    # more rows asked for than there are: scikit-learn warns and takes them all; not reproduced
    by_sklearn = get_detector("iforest", max_samples=1_000)
    assert isinstance(by_sklearn, IForest)
    with pytest.warns(UserWarning, match="max_samples"):
        by_sklearn.fit_uncalibrated(X)
    assert "forest_" not in vars(by_sklearn)
    q = X * 2
    scores = by_sklearn.score(q)
    blob = pickle.dumps(by_sklearn)
    assert b"CompactForest" not in blob
    np.testing.assert_array_equal(pickle.loads(blob).score(q), scores)


def _spec(model: Path | None = None, sha: str | None = None) -> DetectorSpec:
    raw: dict[str, Any] = {"name": "d", "detector": "default", "features": ["x", "y"]}
    if model is not None:
        raw.update(fit="model", model=str(model), model_sha256=sha)
    return DetectorSpec.model_validate(raw)


def test_model_saved_by_pyods_own_fit_still_loads_and_scores(tmp_path: Path) -> None:
    """Models saved before the compiled scorer hold a forest fitted by PyOD's ``fit`` (its
    scikit-learn forest fitted with contamination 0.1): they load and score as PyOD does."""
    rng = np.random.default_rng(0)
    frame = pl.DataFrame({"x": rng.normal(size=600), "y": rng.normal(size=600)})
    fitted = fit_model(frame, _spec())
    det = fitted.detector
    assert isinstance(det, IForest)
    X = fitted.preparer.transform(frame)
    old = PyODIForest(n_estimators=300, random_state=0).fit(X)
    det.estimator_ = old
    det.__dict__.pop("_compact", None)
    det.__dict__.pop("forest_", None)
    det.__dict__.pop("offset_", None)
    path = tmp_path / "old.model"
    sha = save_model(
        FittedModel("default", fitted.features, fitted.preparer, det, fitted.typical), path
    )
    loaded = load_model(path, _spec(path, sha), expected_sha256=sha)
    np.testing.assert_array_equal(loaded.detector.score(X), old.decision_function(X))
