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

import json
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from pyod.models.copod import COPOD as PyodCOPOD
from pyod.models.ecod import ECOD as PyodECOD
from scipy.stats import spearmanr

from detectors import _ecdf_kernel as kernel
from detectors import ecdf, get_detector
from detectors.ecdf import ECOD, skewness
from tests.conftest import ROOT

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


def _oracle(det: ECOD, Q: np.ndarray) -> np.ndarray:
    """Per-feature parts by plain binary search over the same fitted tables."""
    out = np.empty(Q.shape)
    for j in range(Q.shape[1]):
        u = det.values_[det.value_offsets_[j] : det.value_offsets_[j + 1]]
        t0 = 2 * (det.value_offsets_[j] + j)
        table = det.tables_[t0 : t0 + 2 * len(u) + 2]
        k = np.searchsorted(u, Q[:, j], side="right")
        eq = (k > 0) & (u[np.maximum(k - 1, 0)] == Q[:, j])
        out[:, j] = table[2 * k + eq]
    return out


def _hostile_columns(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [
            rng.lognormal(sigma=3.0, size=n),  # long right tail: a log-like map
            -rng.pareto(1.1, size=n),  # long left tail
            rng.poisson(0.3, size=n).astype(float),  # mostly ties
            np.full(n, 7.0),  # one value
            rng.choice([-1e300, -1.0, -0.0, 0.0, 1e-310, 1.0, 1e300], size=n),  # huge span
            rng.standard_normal(n),
        ]
    )


def test_lookups_equal_binary_search_on_hostile_columns() -> None:
    X = _hostile_columns(5000, 8)
    det = ECOD(n_jobs=2, chunk_rows=1000).fit(X)
    det.compiled_min_rows = 0  # every batch through the kernel
    rng = np.random.default_rng(9)
    Q = np.vstack(
        [
            _hostile_columns(3000, 10),
            X[:500],  # values equal to reference values
            np.nextafter(X[:500], np.inf),  # just above them
            np.nextafter(X[:500], -np.inf),  # just below them
            np.full((1, 6), 1.7976931348623157e308),
            np.full((1, 6), -1.7976931348623157e308),
            rng.uniform(-1e6, 1e6, size=(200, 6)),
        ]
    )
    np.testing.assert_array_equal(det.feature_scores(Q), _oracle(det, Q))
    assert ecdf.LOG_LIKE in det.maps_  # both maps are exercised
    assert ecdf.LINEAR in det.maps_


def _kernels_fill(  # noqa: PLR0917 (the kernel's arguments)
    u: np.ndarray, kind: int, center: float, lo: float, w: float, k: int
) -> np.ndarray:
    """The bucket starts as the compiled kernel filled them, value by value, with its own
    bucket map (``_bucket``)."""
    s = np.empty(k + 1, dtype=np.int32)
    b_prev = s[0] = 0
    for i, x in enumerate(u):
        b = int(kernel._bucket(float(x), kind, center, lo, w, k))
        while b_prev < b:
            b_prev += 1
            s[b_prev] = i
    s[b_prev + 1 :] = len(u)
    return s


def test_bucket_starts_are_the_kernels_on_hostile_columns() -> None:
    X = _hostile_columns(4000, 21)
    det = ECOD().fit(X)
    det._index()
    extremes = np.array([-1.7976931348623157e308, -1e300, -0.0, 0.0, 5e-324, 1e300])
    for j in range(X.shape[1]):
        u = det.values_[det.value_offsets_[j] : det.value_offsets_[j + 1]]
        s = det.buckets_[det.bucket_offsets_[j] : det.bucket_offsets_[j + 1]]
        kind, (center, lo, w) = int(det.maps_[j]), det.map_params_[j]
        k = len(s) - 1
        np.testing.assert_array_equal(s, _kernels_fill(u, kind, center, lo, w, k))
        # numpy's bucket of a value is the kernel's: reference values, values beside them, and
        # the float64 extremes
        probes = np.concatenate((u, np.nextafter(u, np.inf), np.nextafter(u, -np.inf), extremes))
        theirs = [kernel._bucket(float(x), kind, center, lo, w, k) for x in probes]
        np.testing.assert_array_equal(ecdf.bucket_numbers(probes, kind, center, lo, w, k), theirs)
        # and the compiled look-up over numpy's index finds every reference value
        one = np.empty(1)
        for x in u[:: max(1, len(u) // 200)]:
            kernel.lookup(np.array([x]), u, s, np.arange(2 * len(u) + 2.0), kind,
                          center, lo, w, int(det.steps_[j]), one)  # fmt: skip
            assert one[0] == 2 * np.searchsorted(u, x, side="right") + 1


@pytest.mark.parametrize("chunk_rows", [1000, 262_144])
def test_numpys_bucket_lookups_equal_the_kernels_and_binary_search(chunk_rows: int) -> None:
    X = _hostile_columns(5000, 8)
    rng = np.random.default_rng(10)
    Q = np.vstack(
        [
            _hostile_columns(3000, 10),
            X[:500],
            np.nextafter(X[:500], np.inf),
            np.nextafter(X[:500], -np.inf),
            np.full((1, 6), 1.7976931348623157e308),
            np.full((1, 6), -1.7976931348623157e308),
            rng.uniform(-1e6, 1e6, size=(200, 6)),
        ]
    )
    by_numpy = ECOD(chunk_rows=chunk_rows).fit(X)
    by_numpy.compiled_min_rows, by_numpy.use_kernel = 0, "never"
    compiled = ECOD(chunk_rows=chunk_rows).fit(X)
    compiled.compiled_min_rows, compiled.use_kernel = 0, "always"
    np.testing.assert_array_equal(by_numpy.feature_scores(Q), _oracle(by_numpy, Q))
    np.testing.assert_array_equal(by_numpy.score(Q), compiled.score(Q))
    np.testing.assert_array_equal(by_numpy.buckets_, compiled.buckets_)


LOADS = """
import sys, numpy as np
import detectors.ecdf as ecdf
ecdf.COMPILED_MIN_CELLS = int(sys.argv[1])
X = np.random.default_rng(0).normal(size=(70_000, 4))
det = ecdf.ECOD().fit(X[:20_000])
first = det.score(X)
print("numba" in sys.modules, end=" ")
second = det.score(X)
print("numba" in sys.modules, bool((second == first).all()))
"""


@pytest.mark.parametrize(
    ("cells", "loaded"),
    [
        (10**9, ["False", "False", "True"]),  # under the limit: numpy's look-ups only
        (400_000, ["False", "True", "True"]),  # the second batch passes it: compiled
        (100_000, ["True", "True", "True"]),  # the first does
    ],
)
def test_numba_is_loaded_only_past_the_values_it_pays_for(cells: int, loaded: list[str]) -> None:
    ran = subprocess.run(
        [sys.executable, "-c", LOADS, str(cells)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert ran.stdout.split() == loaded


def test_small_batches_score_as_the_kernel_does_without_numba() -> None:
    X = _hostile_columns(5000, 8)
    searched = ECOD(n_jobs=2).fit(X)
    compiled = ECOD(n_jobs=2).fit(X)
    compiled.compiled_min_rows = 0
    Q = np.vstack([_hostile_columns(3000, 10), X[:500], np.nextafter(X[:500], np.inf)])
    assert len(Q) < searched.compiled_min_rows
    np.testing.assert_array_equal(searched.score(Q), compiled.score(Q))
    np.testing.assert_array_equal(searched.fit_scores_, compiled.fit_scores_)
    assert not hasattr(searched, "buckets_")
    probe = (
        "import sys, numpy as np\n"
        "from detectors.ecdf import ECOD\n"
        "X = np.random.default_rng(0).normal(size=(3000, 4))\n"
        "ECOD().fit(X).score(X)\n"
        "print('numba' in sys.modules)"
    )
    ran = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert ran.stdout.split() == ["False"]


@pytest.mark.parametrize("kernel", ["always", "never"])  # compiled, numpy
@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(10, 60), st.integers(1, 3)),
        elements=st.floats(allow_nan=False, allow_infinity=False, width=64),
    ),
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 40), st.just(3)),
        elements=st.floats(allow_nan=False, allow_infinity=False, width=64),
    ),
)
def test_lookups_equal_binary_search_on_any_finite_floats(
    kernel: str, X: np.ndarray, queries: np.ndarray
) -> None:
    det = ECOD().fit(X)
    det.compiled_min_rows, det.use_kernel = 0, kernel  # type: ignore[assignment]
    Q = np.vstack([queries[:, : X.shape[1]], X])
    np.testing.assert_array_equal(det.feature_scores(Q), _oracle(det, Q))


def test_pickle_drops_the_derived_index_and_rebuilds_it() -> None:
    X = _hostile_columns(2000, 11)
    det = ECOD().fit(X)
    det.compiled_min_rows = 0
    det.score(X[:10])
    blob = pickle.dumps(det)
    assert b"buckets_" not in blob
    again = pickle.loads(blob)
    Q = _hostile_columns(500, 12)
    np.testing.assert_array_equal(again.score(Q), det.score(Q))
    np.testing.assert_array_equal(again.buckets_, det.buckets_)


def test_non_contiguous_input_scores_like_contiguous() -> None:
    X = _skewed(1000, 13)
    det = get_detector("copod").fit(X)
    Q = np.asfortranarray(_skewed(300, 14))
    np.testing.assert_array_equal(det.score(Q), det.score(np.ascontiguousarray(Q)))
    np.testing.assert_array_equal(det.score(Q[::2]), det.score(np.ascontiguousarray(Q[::2])))


def test_scores_without_a_writable_compile_cache() -> None:
    """A read-only install with no home folder: numba finds nowhere to cache compiled code."""
    code = (
        "import numba.core.caching as c\n"
        "c.CacheImpl._locator_classes = []\n"
        "import numpy as np\n"
        "from detectors import get_detector\n"
        "X = np.arange(200.0).reshape(100, 2)\n"
        "print(get_detector('ecod').fit(X).score(X[:3] + 0.5).tolist())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    X = np.arange(200.0).reshape(100, 2)
    assert json.loads(out.stdout) == get_detector("ecod").fit(X).score(X[:3] + 0.5).tolist()


@settings(max_examples=200, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40),
        elements=st.one_of(
            st.floats(-1e6, 1e6, allow_nan=False),
            st.sampled_from([0.0, -0.0, 1.0, 1e15, 1e15 + 2.0, 5e-324, -1e300, 1e300]),
        ),
    )
)
def test_skewness_is_scipys_float_for_float(X: np.ndarray) -> None:
    """The skew signs come from the same floats scipy.stats.skew gives (constant and
    nearly constant columns NaN; huge values overflow the same way)."""
    from scipy.stats import skew

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = skew(X, axis=0)
    np.testing.assert_array_equal(skewness(X), want)


def test_ecod_never_imports_scipy_stats() -> None:
    """scipy.stats costs about half a second to import: fitting, calibrating and scoring ECOD
    (skew signs, the tail threshold) does without it."""
    code = (
        "import sys, numpy as np\n"
        "from detectors.ecdf import ECOD\n"
        "X = np.random.default_rng(0).normal(size=(200_000, 4))\n"
        "ECOD().fit(X).score(X)\n"
        "print(sorted(m for m in sys.modules if m.startswith('scipy.stats')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
