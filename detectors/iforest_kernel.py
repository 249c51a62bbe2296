"""A fitted scikit-learn isolation forest as compact arrays, scored by a compiled kernel.

scikit-learn's ``IsolationForest.score_samples`` walks its trees one after another on one thread,
over 64-byte nodes. :class:`CompactForest` exports the same trees to one int64 per node (feature,
float32 threshold, child) and scores blocks of ``BLOCK`` rows tree by tree, so one tree (about a
KiB) stays in L1 while a block of rows goes through it, with blocks split over threads that run
without the GIL. A block's values are held as integer keys feature by feature, and each level of
a tree is taken for ``LANES`` rows at once in vector registers: their nodes and then their keys
are gathered (``llvm.masked.gather``, AVX-512 ``vpgather`` where the CPU has it; LLVM makes scalar
loads of it elsewhere), compared, and the next nodes computed without a branch. The first ``TOP``
levels are not gathered: they hold at most ``2 ** TOP - 1`` splits, each the same for every row,
so each split's keys are loaded for ``LANES`` rows at once (contiguous, feature by feature), every
split of those levels is compared, and each row's path picks its own comparisons by selects
(:func:`_top_levels`); the node a path reaches is then read from a small per-tree table.

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic

from detectors._numba import compiled
from detectors.iforest_fit import Forest, Tree, average_path_length, node_depths

FloatArray = npt.NDArray[np.float64]
BLOCK = 256
LANES = 16
MIN_PARALLEL_ROWS = 8_192
LIMIT = 0xFFFF
TOP = 5  # levels taken by comparing every split of them (measured best of 3 to 6, bench/README)
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)


@compiled
def ordered_key(x: float) -> Any:
    """``x`` cast to float32, its bits read as an int32 that orders like the float (``-0.0`` as
    ``0.0``): ``a32 > b32`` iff ``ordered_key(a) > ordered_key(b)`` for numbers and infinities."""
    b = np.int32(np.float32(np.float32(x) + np.float32(0.0)).view(np.int32))
    return b ^ ((b >> 31) & np.int32(0x7FFFFFFF))


def _vector(element: Any) -> Any:
    return ir.VectorType(element, LANES)


def _const(vt: Any, values: Any) -> Any:
    return ir.Constant(vt, [ir.Constant(vt.element, v) for v in values])


def _splat(builder: Any, x: Any, vt: Any) -> Any:
    v = builder.insert_element(ir.Constant(vt, None), x, ir.Constant(_I32, 0))
    return builder.shuffle_vector(v, ir.Constant(vt, None), _const(_vector(_I32), [0] * LANES))


def _gather(builder: Any, base: Any, index: Any, shift: int, vt: Any) -> Any:
    """``LANES`` elements of type ``vt.element`` at ``base[index]`` (``index`` an int32 vector,
    elements ``1 << shift`` bytes): ``llvm.masked.gather``, all lanes on."""
    i64 = ir.IntType(64)
    offsets = builder.shl(builder.sext(index, _vector(i64)), _const(_vector(i64), [shift] * LANES))
    addr = builder.add(_splat(builder, builder.ptrtoint(base, i64), _vector(i64)), offsets)
    vp = _vector(base.type)
    ptrs = builder.inttoptr(addr, vp)
    kind = "f64" if isinstance(vt.element, ir.DoubleType) else f"i{vt.element.width}"
    fnty = ir.FunctionType(vt, [vp, _I32, _vector(ir.IntType(1)), vt])
    name = f"llvm.masked.gather.v{LANES}{kind}.v{LANES}p0"
    fn = builder.module.globals.get(name) or ir.Function(builder.module, fnty, name)
    on = _const(_vector(ir.IntType(1)), [1] * LANES)
    return builder.call(fn, [ptrs, ir.Constant(_I32, 1 << shift), on, ir.Constant(vt, None)])


def _arrays_of(*pairs: tuple[Any, Any]) -> bool:
    """Each argument type a contiguous 1-d array of the given element type (the gathers read
    raw memory: any other array is refused at typing, not read wrongly)."""
    return all(
        isinstance(t, types.Array) and t.ndim == 1 and t.layout == "C" and t.dtype == dtype
        for t, dtype in pairs
    )


def _level_typer(  # noqa: PLR0917 (numba passes the typing context and the argument types)
    typingctx: Any, at: Any, node: Any, root: Any, keys: Any, i0: Any
) -> Any:
    """One level of tree ``node[root:]`` for rows ``i0 .. i0 + LANES`` of the block, in vector
    registers: ``at[i] = child + (keys[feature * BLOCK + i] > threshold)``, nodes and keys
    gathered."""
    if not _arrays_of((at, types.int32), (node, types.int64), (keys, types.int32)):
        return None
    sig = types.void(at, node, root, keys, i0)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        arr = [context.make_array(signature.args[k])(context, builder, args[k]) for k in (0, 1, 3)]
        p_at = builder.gep(arr[0].data, [args[4]])
        p_node = builder.gep(arr[1].data, [args[2]])
        p_keys = builder.gep(arr[2].data, [args[4]])
        v32 = _vector(_I32)
        v64 = _vector(ir.IntType(64))
        pv = builder.bitcast(p_at, v32.as_pointer())
        w = _gather(builder, p_node, builder.load(pv, align=4), 3, v64)
        mask = _const(v32, [LIMIT] * LANES)
        feature = builder.and_(builder.trunc(builder.lshr(w, _const(v64, [16] * LANES)), v32), mask)
        threshold = builder.trunc(builder.ashr(w, _const(v64, [32] * LANES)), v32)
        child = builder.and_(builder.trunc(w, v32), mask)
        row = builder.mul(feature, _const(v32, [BLOCK] * LANES))
        key = _gather(builder, p_keys, builder.add(row, _const(v32, range(LANES))), 2, v32)
        right = builder.zext(builder.icmp_signed(">", key, threshold), v32)
        builder.store(builder.add(child, right), pv, align=4)
        return context.get_dummy_value()

    return sig, codegen


def _add_leaves_typer(  # noqa: PLR0917 (as for _level_typer)
    typingctx: Any, acc: Any, at: Any, value: Any, root: Any, i0: Any
) -> Any:
    """``acc[i] += value[root + at[i]]`` for rows ``i0 .. i0 + LANES``, lane by lane."""
    if not _arrays_of((acc, types.float64), (at, types.int32), (value, types.float64)):
        return None
    sig = types.void(acc, at, value, root, i0)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        arr = [context.make_array(signature.args[k])(context, builder, args[k]) for k in (0, 1, 2)]
        vd = _vector(ir.DoubleType())
        p_acc = builder.bitcast(builder.gep(arr[0].data, [args[4]]), vd.as_pointer())
        p_at = builder.bitcast(builder.gep(arr[1].data, [args[4]]), _vector(_I32).as_pointer())
        leaf = _gather(
            builder, builder.gep(arr[2].data, [args[3]]), builder.load(p_at, align=4), 3, vd
        )
        builder.store(builder.fadd(builder.load(p_acc, align=8), leaf), p_acc, align=8)
        return context.get_dummy_value()

    return sig, codegen


def _pick(builder: Any, candidates: list[Any], bits: list[Any]) -> Any:
    """Per lane, the candidate that the path ``bits`` (first step first) names: the candidates
    of one level in path order, ``2 ** len(bits)`` of them."""
    if not bits:
        return candidates[0]
    half = len(candidates) // 2
    return builder.select(
        bits[0],
        _pick(builder, candidates[half:], bits[1:]),
        _pick(builder, candidates[:half], bits[1:]),
    )


def _top_typer(  # noqa: PLR0917 (as for _level_typer)
    typingctx: Any, at: Any, keys: Any, offsets: Any, thresholds: Any, reached: Any
) -> Any:
    """The first ``TOP`` levels of one tree for the ``BLOCK`` rows of a block: ``at[i]`` the node
    row ``i`` reaches there (``reached[path]``).

    A tree's top holds ``2 ** TOP - 1`` split slots in path order (level by level; a slot's two
    next slots are its left and right child, a leaf's both itself): ``offsets[s]`` is the slot's
    feature times ``BLOCK``, ``thresholds[s]`` its threshold key. For ``LANES`` rows at a time
    every slot's keys are loaded and compared, and each level's step is the comparison of the
    slot the row's path so far names."""
    if not _arrays_of(
        (at, types.int32),
        (keys, types.int32),
        (offsets, types.int64),
        (thresholds, types.int32),
        (reached, types.int32),
    ):
        return None
    sig = types.void(at, keys, offsets, thresholds, reached)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        a_at, a_keys, a_off, a_thr, a_reached = (
            context.make_array(signature.args[k])(context, builder, args[k]) for k in range(5)
        )
        v32 = _vector(_I32)
        slots = (1 << TOP) - 1
        # read once per tree, before the rows: each slot's offset and threshold
        offsets = [
            builder.load(builder.gep(a_off.data, [ir.Constant(_I64, k)])) for k in range(slots)
        ]
        thresholds = [
            _splat(builder, builder.load(builder.gep(a_thr.data, [ir.Constant(_I64, k)])), v32)
            for k in range(slots)
        ]
        with cgutils.for_range(builder, ir.Constant(_I64, BLOCK // LANES)) as loop:
            i0 = builder.mul(loop.index, ir.Constant(_I64, LANES))
            path: list[Any] = []
            for level in range(TOP):
                first = (1 << level) - 1
                compared = []
                for k in range(first, 2 * first + 1):
                    p = builder.gep(a_keys.data, [builder.add(offsets[k], i0)])
                    row = builder.load(builder.bitcast(p, v32.as_pointer()), align=4)
                    compared.append(builder.icmp_signed(">", row, thresholds[k]))
                path.append(_pick(builder, compared, path))
            index = _const(v32, [0] * LANES)
            for j, bit in enumerate(path):
                shift = _const(v32, [TOP - 1 - j] * LANES)
                index = builder.or_(index, builder.shl(builder.zext(bit, v32), shift))
            node = _gather(builder, a_reached.data, index, 2, v32)
            p_at = builder.bitcast(builder.gep(a_at.data, [i0]), v32.as_pointer())
            builder.store(node, p_at, align=4)
        return context.get_dummy_value()

    return sig, codegen


_level: Any = intrinsic(_level_typer)
_top_levels: Any = intrinsic(_top_typer)
_add_leaves: Any = intrinsic(_add_leaves_typer)


@compiled
def leaf_sums(  # noqa: PLR0917 (numba takes no keyword-only parameters)
    X: Any,
    r0: int,
    r1: int,
    node: Any,
    value: Any,
    roots: Any,
    depths: Any,
    out: Any,
    top_offsets: Any,
    top_thresholds: Any,
    top_reached: Any,
) -> None:
    """``out[i]`` for rows ``r0 <= i < r1`` of ``X`` (float64, C order): the sum over trees, in
    order, of the leaf term of the leaf row ``i`` reaches.

    A node is one int64: threshold key (high 32 bits), feature (16 bits), left child (low 16
    bits, counted from the tree's root ``roots[t]``; the right child is next to it). A row goes
    right when its value's key is above the threshold key. Tree ``t`` is ``depths[t]`` levels
    deep; its leaves point to themselves, so every row walks exactly that many levels, and
    ``value`` holds the leaf terms by node. Rows go in blocks of ``BLOCK``, their keys feature by
    feature; the rows of a block past ``r1`` walk the trees on stale keys and are not written.
    A tree of ``TOP`` levels or more starts with :func:`_top_levels` (its top: row ``t`` of
    ``top_offsets``, ``top_thresholds`` and ``top_reached``, :class:`Top`)."""
    d = X.shape[1]
    keys = np.zeros(d * BLOCK, dtype=np.int32)
    at = np.empty(BLOCK, dtype=np.int32)
    acc = np.empty(BLOCK, dtype=np.float64)
    for b0 in range(r0, r1, BLOCK):
        m = min(r1, b0 + BLOCK) - b0
        for i in range(m):
            for j in range(d):
                keys[j * BLOCK + i] = ordered_key(X[b0 + i, j])
        acc[:] = 0.0
        for t in range(roots.shape[0]):
            r = roots[t]
            if depths[t] >= TOP:
                _top_levels(at, keys, top_offsets[t], top_thresholds[t], top_reached[t])
                for _ in range(depths[t] - TOP):
                    for i0 in range(0, BLOCK, LANES):
                        _level(at, node, r, keys, i0)
                for i0 in range(0, BLOCK, LANES):
                    _add_leaves(acc, at, value, r, i0)
                continue
            # the root and its two children are the same nodes for every row: their splits are
            # read once and their keys loaded row after row, not gathered
            w0 = node[r]
            row = keys[((w0 >> 16) & LIMIT) * BLOCK :]
            k0, t0 = np.int32(w0 & LIMIT), w0 >> 32
            walked = 1
            if depths[t] >= 2:
                wl, wr = node[r + k0], node[r + k0 + 1]
                row_l = keys[((wl >> 16) & LIMIT) * BLOCK :]
                row_r = keys[((wr >> 16) & LIMIT) * BLOCK :]
                kl, tl = np.int32(wl & LIMIT), wl >> 32
                kr, tr = np.int32(wr & LIMIT), wr >> 32
                for i in range(BLOCK):
                    left = kl + np.int32(row_l[i] > tl)
                    right = kr + np.int32(row_r[i] > tr)
                    at[i] = right if row[i] > t0 else left
                walked = 2
            else:
                for i in range(BLOCK):
                    at[i] = k0 + np.int32(row[i] > t0)
            for _ in range(depths[t] - walked):
                for i0 in range(0, BLOCK, LANES):
                    _level(at, node, r, keys, i0)
            for i0 in range(0, BLOCK, LANES):
                _add_leaves(acc, at, value, r, i0)
        out[b0 : b0 + m] = acc[:m]


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
        trees = [
            Tree(
                np.asarray(t.children_left, dtype=np.int64),
                np.asarray(t.children_right, dtype=np.int64),
                np.asarray(t.feature, dtype=np.int64),
                np.asarray(t.threshold, dtype=np.float64),
                np.asarray(t.n_node_samples, dtype=np.int64),
            )
            for t in (est.tree_ for est in forest.estimators_)
        ]
        features = [np.asarray(f, dtype=np.int64) for f in forest.estimators_features_]
        return cls.from_forest(
            Forest(trees, features, int(forest.n_features_in_), int(forest._max_samples))
        )

    @classmethod
    def from_forest(cls, forest: Forest) -> CompactForest:
        """Export trees in scikit-learn's layout (:mod:`detectors.iforest_fit`); :class:`TooLarge`
        if they do not fit this one."""
        n_features = forest.n_features
        if n_features > LIMIT:
            raise TooLarge(f"{n_features} features; the compact layout holds {LIMIT}")
        nodes, vals, roots, depths = [], [], [], []
        start = 0
        for tree, cols in zip(forest.trees, forest.features, strict=True):
            left = tree.children_left
            if len(left) > LIMIT:
                raise TooLarge(f"a tree of {len(left)} nodes; the layout holds {LIMIT}")
            # scikit-learn's per-leaf term, by its expression (IsolationForest.fit, _compute_score)
            leaf_term = (
                node_depths(left, tree.children_right)
                + average_path_length(tree.n_node_samples)
                - 1.0
            )
            order, kid, depth = _breadth_first(left, tree.children_right)
            leaf = left[order] == -1
            feat = np.asarray(cols, dtype=np.int64)[np.where(leaf, 0, tree.feature[order])]
            feat = np.where(leaf, 0, feat)
            thr = float32_at_most(tree.threshold[order])
            thr[leaf] = np.inf
            kid = np.where(leaf, np.arange(len(order)), kid)
            nodes.append((threshold_keys(thr) << 32) | (feat << 16) | kid)
            vals.append(np.asarray(leaf_term[order], dtype=np.float64))
            roots.append(start)
            depths.append(depth)
            start += len(order)
        denominator = len(forest.trees) * float(average_path_length([forest.max_samples])[0])
        return cls(
            np.concatenate(nodes),
            np.concatenate(vals),
            np.asarray(roots, dtype=np.int64),
            np.asarray(depths, dtype=np.int64),
            n_features,
            denominator,
        )

    @cached_property
    def top(self) -> Top:
        """Each tree's first ``TOP`` levels as :func:`_top_levels` reads them (made on first use,
        so a forest pickled before they existed scores as well)."""
        return top_tables(self.node, self.roots, self.depths)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without :attr:`top`, which is made again from the nodes."""
        return {k: v for k, v in self.__dict__.items() if k != "top"}

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
        trees = (self.node, self.value, self.roots, self.depths)
        top = self.top

        def run(a: int, b: int) -> None:
            leaf_sums(arr, a, b, *trees, out, top.offsets, top.thresholds, top.reached)

        if parts == 1:
            run(0, n)
            return out
        bounds = np.linspace(0, n, 4 * parts + 1).astype(np.int64)
        with ThreadPoolExecutor(parts) as pool:
            done = [pool.submit(run, int(a), int(b)) for a, b in pairwise(bounds)]
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


class Top(NamedTuple):
    """The first ``TOP`` levels of every tree, a row per tree (:func:`_top_levels`)."""

    offsets: npt.NDArray[np.int64]
    thresholds: npt.NDArray[np.int32]
    reached: npt.NDArray[np.int32]


def top_tables(
    node: npt.NDArray[np.int64], roots: npt.NDArray[np.int64], depths: npt.NDArray[np.int64]
) -> Top:
    """The slots of each tree's first ``TOP`` levels in path order, from its nodes: a split's
    feature offset and threshold key, and the node each path of ``TOP`` steps reaches (relative
    to the tree's root). A leaf's two next slots are the leaf itself (its threshold key, that of
    ``+inf``, sends every row left). Trees of fewer levels get zeros; they are not read."""
    n = len(roots)
    offsets = np.zeros((n, (1 << TOP) - 1), dtype=np.int64)
    thresholds = np.zeros((n, (1 << TOP) - 1), dtype=np.int32)
    reached = np.zeros((n, 1 << TOP), dtype=np.int32)
    deep = np.flatnonzero(depths >= TOP)
    root = roots[deep][:, None]
    slots = np.zeros((len(deep), 1), dtype=np.int64)  # each path's node, all trees at once
    for level in range(TOP):
        first = (1 << level) - 1
        w = node[root + slots]
        offsets[deep, first : 2 * first + 1] = ((w >> 16) & LIMIT) * BLOCK
        thresholds[deep, first : 2 * first + 1] = w >> 32
        kid = w & LIMIT
        right = np.where(kid == slots, kid, kid + 1)  # a leaf is its own child
        slots = np.stack([kid, right], axis=2).reshape(len(deep), 2 << level)
    reached[deep] = slots
    return Top(offsets, thresholds, reached)


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
