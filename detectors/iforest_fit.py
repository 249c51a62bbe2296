"""scikit-learn's ``IsolationForest.fit``, tree for tree, without importing scikit-learn.

Importing ``sklearn.ensemble`` costs about a CPU second (``sklearn.utils`` imports
``scipy.stats``), more than fitting and scoring the default detector on a small partition; and
scikit-learn's fit walks every row of the fit sample once per tree (a weight per row). This module
draws the same random numbers in the same order and builds the same trees:

- the forest's ``random_state`` gives the targets (``uniform(size=n)``, which only decide whether a
  node is pure) and one seed per tree (``randint(2**31 - 1, size=n_estimators)``);
- a tree's seed gives its feature subset and its rows (``sample_without_replacement``, by the
  same method for the same ratio, or ``randint`` with replacement) and the seed of the tree's own
  generator, the 32-bit xorshift of ``sklearn.utils._random.our_rand_r``;
- each tree is grown depth first, left child first, by ``node_split_random`` with
  ``max_features=1``: a feature drawn by the partial Fisher-Yates that skips features known to be
  constant, its minimum and maximum over the node's rows in float32, a threshold
  ``(max - min) * r / RAND_R_MAX + min`` (the minimum when that rounds to the maximum), and the
  rows partitioned in place as scikit-learn partitions them. The mean-squared-error bookkeeping
  on the targets is repeated in the same order of operations, since it decides (rarely) that a
  node is a leaf.

``tests/detectors/test_iforest_fit.py`` checks every array of every tree against scikit-learn's on
data with ties, constant columns, infinities, subsampled features and bootstrap rows. What this
module does not reproduce (rows holding NaN, parameters scikit-learn would refuse or warn about)
raises :class:`Unsupported`, and the caller fits with scikit-learn.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors._numba import compiled

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
MAX_INT = int(np.iinfo(np.int32).max)
RAND_R_MAX = 2_147_483_647
EPSILON = float(np.finfo("double").eps)
LEAF = -1  # scikit-learn's _TREE_LEAF: a leaf's children
UNDEFINED = -2  # _TREE_UNDEFINED: a leaf's feature and threshold, the root's parent


class Unsupported(ValueError):
    """A fit this module does not reproduce; scikit-learn's own fit gives it."""


@dataclass(frozen=True)
class Tree:
    """One fitted tree in scikit-learn's node order (``tree_.children_left`` and so on)."""

    children_left: IntArray
    children_right: IntArray
    feature: IntArray
    threshold: FloatArray
    n_node_samples: IntArray


@dataclass(frozen=True)
class Forest:
    """The fitted trees, each tree's feature columns (``estimators_features_``), and the
    ``max_samples_`` and feature count the scores are normalised by."""

    trees: list[Tree]
    features: list[IntArray]
    n_features: int
    max_samples: int


def average_path_length(n: npt.ArrayLike) -> FloatArray:
    """scikit-learn's ``_average_path_length``, computed by the same expression."""
    arr = np.asarray(n)
    shape = arr.shape
    flat = arr.reshape((1, -1))
    out = np.zeros(flat.shape)
    mask_1 = flat <= 1
    mask_2 = flat == 2
    rest = ~np.logical_or(mask_1, mask_2)
    out[mask_1] = 0.0
    out[mask_2] = 1.0
    out[rest] = (
        2.0 * (np.log(flat[rest] - 1.0) + np.euler_gamma) - 2.0 * (flat[rest] - 1.0) / flat[rest]
    )
    return out.reshape(shape)


def node_depths(children_left: IntArray, children_right: IntArray) -> IntArray:
    """``Tree.compute_node_depths``: the root at depth 1 (children come after their parent)."""
    depths = np.zeros(len(children_left), dtype=np.int64)
    depths[0] = 1
    for k in range(len(children_left)):
        if children_left[k] != LEAF:
            depths[children_left[k]] = depths[children_right[k]] = depths[k] + 1
    return depths


def resolve(
    n_samples: int, n_features: int, max_samples: Any, max_features: Any, bootstrap: Any
) -> tuple[int, int]:
    """The ``(max_samples_, _max_features)`` scikit-learn would use; :class:`Unsupported` where it
    would refuse the values or warn about them."""
    if n_samples < 1 or n_features < 1:
        raise Unsupported("no rows or no features")
    if not isinstance(bootstrap, bool):
        raise Unsupported(f"bootstrap={bootstrap!r}")
    if isinstance(max_samples, str) and max_samples == "auto":
        rows = min(256, n_samples)
    elif isinstance(max_samples, numbers.Integral) and not isinstance(max_samples, bool):
        if not 1 <= int(max_samples) <= n_samples:
            raise Unsupported(f"max_samples={max_samples} for {n_samples} rows")
        rows = int(max_samples)
    elif isinstance(max_samples, float):  # as scikit-learn multiplies it (not numpy's float32)
        if not 0.0 < max_samples <= 1.0:
            raise Unsupported(f"max_samples={max_samples}")
        rows = int(max_samples * n_samples)
        if rows < 1:
            raise Unsupported(f"max_samples={max_samples} leaves no rows of {n_samples}")
    else:
        raise Unsupported(f"max_samples={max_samples!r}")
    if isinstance(max_features, numbers.Integral) and not isinstance(max_features, bool):
        if not 1 <= int(max_features) <= n_features:
            raise Unsupported(f"max_features={max_features} for {n_features} features")
        cols = int(max_features)
    elif isinstance(max_features, float):
        if not 0.0 < max_features <= 1.0:
            raise Unsupported(f"max_features={max_features}")
        cols = max(1, int(max_features * n_features))
    else:
        raise Unsupported(f"max_features={max_features!r}")
    return rows, cols


def sample_without_replacement(
    n_population: int, n_samples: int, rng: np.random.RandomState
) -> IntArray:
    """``sklearn.utils.random.sample_without_replacement(..., method="auto")``: the same draws.

    ``RandomState.randint`` gives the same numbers drawn one at a time or as an array, so the
    tracking selection draws a batch and keeps the first unseen values, drawing more while short.
    """
    ratio = n_samples / n_population if n_population != 0 else 1.0
    if 0.01 < ratio < 0.99:
        return np.asarray(rng.permutation(n_population)[:n_samples], dtype=np.int64)
    if ratio < 0.2:
        out: list[int] = []
        seen: set[int] = set()
        while len(out) < n_samples:
            for j in rng.randint(n_population, size=n_samples - len(out)).tolist():
                if j not in seen:
                    seen.add(j)
                    out.append(j)
                    if len(out) == n_samples:
                        break
                # a repeat is drawn again, so the batch after it is still in order
        return np.asarray(out, dtype=np.int64)
    picks = np.arange(n_samples, dtype=np.int64)
    if n_population > n_samples:
        draws = rng.randint(0, np.arange(n_samples + 1, n_population + 1))
        for i, j in enumerate(draws.tolist(), start=n_samples):
            if j < n_samples:
                picks[j] = i
    return picks


def fit_forest(
    X: npt.NDArray[np.floating[Any]],
    *,
    n_estimators: int,
    max_samples: Any = "auto",
    max_features: Any = 1.0,
    bootstrap: bool = False,
    random_state: int,
) -> Forest:
    """The trees ``IsolationForest(n_estimators, max_samples, max_features=max_features,
    bootstrap=bootstrap, random_state=random_state).fit(X)`` grows."""
    if (
        not isinstance(n_estimators, numbers.Integral)
        or isinstance(n_estimators, bool)
        or n_estimators < 1
    ):
        raise Unsupported(f"n_estimators={n_estimators!r}")
    if not isinstance(random_state, numbers.Integral) or isinstance(random_state, bool):
        raise Unsupported(f"random_state={random_state!r}")
    with np.errstate(over="ignore"):  # beyond float32's range: inf, as scikit-learn casts
        X32 = np.asarray(X, dtype=np.float32)
    if X32.ndim != 2:
        raise Unsupported(f"X of shape {X32.shape}")
    n, m = X32.shape
    rows, cols = resolve(n, m, max_samples, max_features, bootstrap)
    if np.isnan(X32).any():
        raise Unsupported("X holds NaN")
    # scikit-learn makes a fresh RandomState(seed) at each step below; re-seeding one generator
    # gives the same state (RandomState.seed is what its constructor runs) in 1 us, not 70
    rng = np.random.RandomState(random_state)
    y = rng.uniform(size=n)
    rng.seed(random_state)
    seeds = rng.randint(MAX_INT, size=int(n_estimators))
    depth = math.ceil(math.log2(max(rows, 2)))
    trees, features = [], []
    for seed in seeds.tolist():
        rng.seed(seed)
        tree_seed = rng.randint(MAX_INT)
        rng.seed(tree_seed)
        rand_r_seed = rng.randint(0, RAND_R_MAX)
        rng.seed(seed)
        feats = sample_without_replacement(m, cols, rng)
        if bootstrap:
            counts = np.bincount(rng.randint(0, n, rows), minlength=n)
            picked = np.flatnonzero(counts)
            weight = counts[picked].astype(np.float64)
        else:
            picked = np.sort(sample_without_replacement(n, rows, rng))
            weight = np.ones(len(picked), dtype=np.float64)
        sub = X32[picked] if cols == m else X32[picked][:, feats]
        trees.append(
            _grow(
                np.ascontiguousarray(sub),
                y[picked],
                weight,
                weight_total=float(rows),
                max_depth=depth,
                seed=rand_r_seed,
            )
        )
        features.append(feats)
    return Forest(trees, features, m, rows)


def _grow(
    X: npt.NDArray[np.float32],
    y: FloatArray,
    weight: FloatArray,
    *,
    weight_total: float,
    max_depth: int,
    seed: int,
) -> Tree:
    size = 2 * len(X)
    left = np.empty(size, dtype=np.int64)
    right = np.empty(size, dtype=np.int64)
    feature = np.empty(size, dtype=np.int64)
    threshold = np.empty(size, dtype=np.float64)
    count = np.empty(size, dtype=np.int64)
    k = grow_tree(
        X, y, weight, weight_total, max_depth, seed, left, right, feature, threshold, count
    )
    return Tree(
        left[:k].copy(),
        right[:k].copy(),
        feature[:k].copy(),
        threshold[:k].copy(),
        count[:k].copy(),
    )


@compiled
def _rand_r(state: Any) -> Any:
    """``our_rand_r``: the 32-bit xorshift, its state in ``state[0]``."""
    s = state[0]
    if s == 0:
        s = 1
    s ^= (s << 13) & 0xFFFFFFFF
    s ^= s >> 17
    s ^= (s << 5) & 0xFFFFFFFF
    state[0] = s
    return s % (RAND_R_MAX + 1)


@compiled
def grow_tree(  # noqa: PLR0917 (numba: one function, positional)
    X: Any,
    y: Any,
    w: Any,
    weight_total: float,
    max_depth: int,
    seed: int,
    left: Any,
    right: Any,
    feature: Any,
    threshold: Any,
    count: Any,
) -> int:
    """Grow one tree as ``DepthFirstTreeBuilder`` with ``RandomSplitter`` (``max_features=1``),
    ``min_samples_split=2``, ``min_samples_leaf=1`` and the MSE criterion; return its node count.

    ``X`` holds the tree's rows in ascending order of their index in the fit sample (as
    scikit-learn lists the rows of positive weight), ``y`` and ``w`` their targets and weights.
    """
    n, n_features = X.shape
    samples = np.arange(n)
    values = np.empty(n, dtype=np.float32)
    features = np.arange(n_features)
    constant = np.empty(n_features, dtype=np.int64)
    state = np.array([seed], dtype=np.int64)
    gap = np.float32(1e-7)
    # the stack: start, end, depth, parent, is_left, constant features; and impurity
    stack = np.empty((2 * max_depth + 2, 6), dtype=np.int64)
    stack_impurity = np.empty(2 * max_depth + 2, dtype=np.float64)
    stack[0, 0], stack[0, 1], stack[0, 2], stack[0, 3], stack[0, 4], stack[0, 5] = (
        0,
        n,
        0,
        UNDEFINED,
        0,
        0,
    )
    stack_impurity[0] = np.inf
    top = 1
    first = True
    nodes = 0
    while top > 0:
        top -= 1
        start = stack[top, 0]
        end = stack[top, 1]
        depth = stack[top, 2]
        parent = stack[top, 3]
        is_left = stack[top, 4]
        known = stack[top, 5]
        impurity = stack_impurity[top]
        n_node = end - start
        sum_total = 0.0
        sq_total = 0.0
        w_node = 0.0
        for p in range(start, end):
            i = samples[p]
            wy = w[i] * y[i]
            sum_total += wy
            sq_total += wy * y[i]
            w_node += w[i]
        is_leaf = depth >= max_depth or n_node < 2 or w_node < 0.0
        if first:
            mean = sum_total / w_node
            impurity = sq_total / w_node - mean * mean
            first = False
        is_leaf = is_leaf or impurity <= EPSILON
        best_pos = end
        best_feature = 0
        best_threshold = 0.0
        impurity_left = np.inf
        impurity_right = np.inf
        improvement = -np.inf
        n_total = known
        if not is_leaf:
            f_i = n_features
            n_found = 0
            n_drawn = 0
            visited = 0
            while f_i > n_total and (visited < 1 or visited <= n_found + n_drawn):
                visited += 1
                f_j = n_drawn + _rand_r(state) % (f_i - n_found - n_drawn)
                if f_j < known:
                    features[n_drawn], features[f_j] = features[f_j], features[n_drawn]
                    n_drawn += 1
                    continue
                f_j += n_found
                current = features[f_j]
                lo = np.float32(np.inf)
                hi = np.float32(-np.inf)
                seen = False
                for p in range(start, end):
                    v = X[samples[p], current]
                    values[p] = v
                    if not seen:
                        lo = v
                        hi = v
                        seen = True
                    elif v < lo:
                        lo = v
                    elif v > hi:
                        hi = v
                if hi <= lo + gap:
                    features[f_j], features[n_total] = features[n_total], current
                    n_found += 1
                    n_total += 1
                    continue
                f_i -= 1
                features[f_i], features[f_j] = features[f_j], features[f_i]
                lo64 = np.float64(lo)
                hi64 = np.float64(hi)
                cut = (hi64 - lo64) * np.float64(_rand_r(state)) / np.float64(RAND_R_MAX) + lo64
                if cut == hi64:
                    cut = lo64
                a = start
                b = end
                while a < b:
                    if np.float64(values[a]) <= cut:
                        a += 1
                    else:
                        b -= 1
                        values[a], values[b] = values[b], values[a]
                        samples[a], samples[b] = samples[b], samples[a]
                if b - start < 1 or end - b < 1:
                    continue
                best_pos = b
                best_feature = current
                best_threshold = cut
            if best_pos < end:
                sum_left = 0.0
                w_left = 0.0
                if best_pos - start <= end - best_pos:
                    for p in range(start, best_pos):
                        i = samples[p]
                        sum_left += w[i] * y[i]
                        w_left += w[i]
                else:
                    sum_left = sum_total
                    w_left = w_node
                    for p in range(end - 1, best_pos - 1, -1):
                        i = samples[p]
                        sum_left -= w[i] * y[i]
                        w_left -= w[i]
                w_right = w_node - w_left
                sum_right = sum_total - sum_left
                sq_left = 0.0
                for p in range(start, best_pos):
                    i = samples[p]
                    sq_left += w[i] * y[i] * y[i]
                sq_right = sq_total - sq_left
                mean_left = sum_left / w_left
                mean_right = sum_right / w_right
                impurity_left = sq_left / w_left - mean_left * mean_left
                impurity_right = sq_right / w_right - mean_right * mean_right
                improvement = (w_node / weight_total) * (
                    impurity
                    - (w_right / w_node * impurity_right)
                    - (w_left / w_node * impurity_left)
                )
            features[:known] = constant[:known]
            constant[known:n_total] = features[known:n_total]
            is_leaf = best_pos >= end or improvement + EPSILON < 0.0
        node = nodes
        nodes += 1
        if parent != UNDEFINED:
            if is_left:
                left[parent] = node
            else:
                right[parent] = node
        count[node] = n_node
        if is_leaf:
            left[node] = LEAF
            right[node] = LEAF
            feature[node] = UNDEFINED
            threshold[node] = UNDEFINED
        else:
            feature[node] = best_feature
            threshold[node] = best_threshold
            for side in range(2):  # the right child first, so the left is grown first
                row = stack[top]
                row[0] = best_pos if side == 0 else start
                row[1] = end if side == 0 else best_pos
                row[2] = depth + 1
                row[3] = node
                row[4] = side
                row[5] = n_total
                stack_impurity[top] = impurity_right if side == 0 else impurity_left
                top += 1
    return nodes
