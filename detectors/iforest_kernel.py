"""A fitted scikit-learn isolation forest as compact arrays, scored by a compiled kernel.

scikit-learn's ``IsolationForest.score_samples`` walks its trees one after another on one thread,
over 64-byte nodes (a 300-tree forest is beyond L2). :class:`CompactForest` exports the same trees
to a few small arrays per node (feature, float32 threshold, child) and scores blocks of rows tree
by tree, so one tree (a few KiB) stays in L1 while a block of rows goes through it, with blocks
split over threads that run without the GIL.

Exact, not approximate: scikit-learn casts ``X`` to float32 and sends a row left when
``x32 <= threshold`` (a float64). For a float32 ``x`` that holds exactly when ``x`` is at most the
largest float32 not above the threshold, so thresholds are stored rounded down to float32 and
compared with the float32 cast of ``x``; the same branch is taken for every input, ``inf`` and
values beyond the float32 range included. Each leaf holds scikit-learn's own per-leaf term
(``depth + c(n_node_samples) - 1``, computed by the same expression), the terms are added for a row
tree by tree in the forest's order starting from zero, as scikit-learn adds them, and the final
``2 ** (-sum / (n_trees * c(max_samples)))`` is scikit-learn's expression: the scores are equal
bit for bit. Trees are descended level by level for a group of rows at once, branch-free: a leaf
points to itself with a threshold of ``+inf``, so a row that has reached it stays there until the
tree's depth is walked.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BLOCK = 256
MIN_PARALLEL_ROWS = 8_192
LIMIT = 0xFFFF


def _compiled(fn: Callable[..., Any]) -> Any:
    """``numba.njit`` caching compiled code on disk where numba can (see ``_ecdf_kernel``)."""
    try:
        return numba.njit(nogil=True, cache=True, boundscheck=False)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(nogil=True, boundscheck=False)(fn)


@_compiled
def ordered_key(x: float) -> Any:
    """``x`` cast to float32, its bits read as an int32 that orders like the float (``-0.0`` as
    ``0.0``): ``a32 > b32`` iff ``ordered_key(a) > ordered_key(b)`` for numbers and infinities."""
    b = np.int32(np.float32(np.float32(x) + np.float32(0.0)).view(np.int32))
    return b ^ ((b >> 31) & np.int32(0x7FFFFFFF))


@_compiled
def leaf_sums(  # noqa: PLR0917 (numba takes no keyword-only parameters)
    X: Any, r0: int, r1: int, node: Any, value: Any, roots: Any, depths: Any, out: Any
) -> None:
    """``out[i]`` for rows ``r0 <= i < r1`` of ``X`` (float64, C order): the sum over trees, in
    order, of the leaf term of the leaf row ``i`` reaches.

    A node is one int64: threshold key (high 32 bits), feature (16 bits), left child (low 16
    bits, counted from the tree's root ``roots[t]``; the right child is next to it). A row goes
    right when its value's key is above the threshold key. Tree ``t`` is ``depths[t]`` levels
    deep; its leaves point to themselves, so every row walks exactly that many levels, and
    ``value`` holds the leaf terms by node."""
    d = X.shape[1]
    keys = np.empty((BLOCK, d), dtype=np.int32)
    at = np.empty(BLOCK, dtype=np.int64)
    acc = np.empty(BLOCK, dtype=np.float64)
    for b0 in range(r0, r1, BLOCK):
        m = min(r1, b0 + BLOCK) - b0
        for i in range(m):
            for j in range(d):
                keys[i, j] = ordered_key(X[b0 + i, j])
            acc[i] = 0.0
        for t in range(roots.shape[0]):
            tree = node[roots[t] :]
            # the root is the same node for every row: its split is read once, not per row
            w0 = tree[0]
            f0, t0, k0 = (w0 >> 16) & 0xFFFF, w0 >> 32, w0 & 0xFFFF
            for i in range(m):
                at[i] = k0 + (1 if keys[i, f0] > t0 else 0)
            for _ in range(depths[t] - 1):
                for i in range(m):
                    w = tree[at[i]]
                    right = keys[i, (w >> 16) & 0xFFFF] > (w >> 32)
                    at[i] = (w & 0xFFFF) + (1 if right else 0)
            leaf = value[roots[t] :]
            for i in range(m):
                acc[i] += leaf[at[i]]
        for i in range(m):
            out[b0 + i] = acc[i]


def float32_at_most(t: FloatArray) -> npt.NDArray[np.float32]:
    """The largest float32 not above each float64 of ``t`` (``x32 <= t`` iff ``x32 <= result``),
    with ``-0.0`` as ``0.0``."""
    with np.errstate(over="ignore"):
        near = t.astype(np.float32)
    above = near.astype(np.float64) > t
    near[above] = np.nextafter(near[above], np.float32(-np.inf))
    out: npt.NDArray[np.float32] = near + np.float32(0.0)
    return out


def threshold_keys(t: npt.NDArray[np.float32]) -> npt.NDArray[np.int64]:
    """:func:`ordered_key` of float32 values, vectorised."""
    b = (t + np.float32(0.0)).view(np.int32).astype(np.int64)
    out: npt.NDArray[np.int64] = b ^ ((b >> 31) & 0x7FFFFFFF)
    return out


class TooLarge(ValueError):
    """The forest does not fit the compact layout (a tree of 65,536 nodes or more, or a feature
    index of 65,536 or more)."""


@dataclass(frozen=True)
class CompactForest:
    """The trees of a fitted ``IsolationForest`` as one int64 per node, trees end to end.

    Within a tree nodes are in breadth-first order, so a split's children are adjacent; a leaf has
    feature 0, threshold ``+inf`` and itself as child.
    """

    node: npt.NDArray[np.int64]
    value: FloatArray
    roots: npt.NDArray[np.int64]
    depths: npt.NDArray[np.int64]
    n_features: int
    denominator: float

    @classmethod
    def from_sklearn(cls, forest: Any) -> CompactForest:
        """Export a fitted ``sklearn.ensemble.IsolationForest``; :class:`TooLarge` if it does not
        fit the layout."""
        from sklearn.ensemble._iforest import _average_path_length

        n_features = int(forest.n_features_in_)
        if n_features > LIMIT:
            raise TooLarge(f"{n_features} features; the compact layout holds {LIMIT}")
        subsample = forest._max_features != n_features
        nodes, vals, roots, depths = [], [], [], []
        start = 0
        for t, (est, cols) in enumerate(
            zip(forest.estimators_, forest.estimators_features_, strict=True)
        ):
            tree = est.tree_
            if tree.node_count > LIMIT:
                raise TooLarge(f"a tree of {tree.node_count} nodes; the layout holds {LIMIT}")
            leaf_term = (
                forest._decision_path_lengths[t] + forest._average_path_length_per_tree[t] - 1.0
            )
            order, kid, depth = _breadth_first(tree.children_left, tree.children_right)
            leaf = tree.children_left[order] == -1
            feat = np.asarray(tree.feature[order], dtype=np.int64)
            if subsample:
                feat = np.asarray(cols, dtype=np.int64)[np.where(leaf, 0, feat)]
            feat = np.where(leaf, 0, feat)
            thr = float32_at_most(np.asarray(tree.threshold[order], dtype=np.float64))
            thr[leaf] = np.inf
            kid = np.where(leaf, np.arange(len(order)), kid)
            nodes.append((threshold_keys(thr) << 32) | (feat << 16) | kid)
            vals.append(np.asarray(leaf_term[order], dtype=np.float64))
            roots.append(start)
            depths.append(depth)
            start += len(order)
        denominator = len(forest.estimators_) * float(
            _average_path_length([forest._max_samples])[0]
        )
        return cls(
            np.concatenate(nodes),
            np.concatenate(vals),
            np.asarray(roots, dtype=np.int64),
            np.asarray(depths, dtype=np.int64),
            n_features,
            denominator,
        )

    @staticmethod
    def workers(rows: int, threads: int) -> int:
        """How many threads score ``rows`` rows when ``threads`` are allowed (one per
        ``MIN_PARALLEL_ROWS`` rows at most)."""
        return max(1, min(int(threads), rows // MIN_PARALLEL_ROWS))

    def path_sums(self, X: FloatArray, threads: int = 1) -> FloatArray:
        """Per row, the sum over trees of the leaf terms (scikit-learn's ``depths``)."""
        arr = np.ascontiguousarray(X, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features, got {arr.shape}")
        if np.isnan(arr).any():
            raise ValueError("X holds NaN; the compiled scorer takes numbers and infinities only")
        out = np.empty(len(arr), dtype=np.float64)
        n = len(arr)
        parts = self.workers(n, threads)
        node, value, roots, depths = self.node, self.value, self.roots, self.depths
        if parts == 1:
            leaf_sums(arr, 0, n, node, value, roots, depths, out)
            return out
        bounds = np.linspace(0, n, 4 * parts + 1).astype(np.int64)
        with ThreadPoolExecutor(parts) as pool:
            done = [
                pool.submit(leaf_sums, arr, int(a), int(b), node, value, roots, depths, out)
                for a, b in pairwise(bounds)
            ]
            for f in done:
                f.result()
        return out

    def score_samples(self, X: FloatArray, threads: int = 1) -> FloatArray:
        """scikit-learn's ``IsolationForest.score_samples(X)``, equal bit for bit."""
        depths = self.path_sums(X, threads)
        denominator = self.denominator
        scores: FloatArray = 2 ** (
            -np.divide(depths, denominator, out=np.ones_like(depths), where=denominator != 0)
        )
        return -scores


def _breadth_first(
    left: npt.NDArray[np.intp], right: npt.NDArray[np.intp]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int]:
    """Old node ids in breadth-first order, each node's new left child id, and the tree depth."""
    order = [0]
    level = [0]
    i = 0
    while i < len(order):
        k = order[i]
        if left[k] != -1:
            order.extend((int(left[k]), int(right[k])))
            level.extend((level[i] + 1, level[i] + 1))
        i += 1
    new = np.empty(len(left), dtype=np.int64)
    new[np.asarray(order)] = np.arange(len(order))
    old = np.asarray(order, dtype=np.int64)
    kid = np.where(left[old] == -1, -1, new[np.maximum(left[old], 0)])
    return old, kid, max(level)


def default_threads() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1
