"""Compiled look-ups behind fast ECOD/COPOD scoring (numba, no GIL held while they run).

Per feature the fitted reference is a sorted array of its distinct values ``U`` and a table ``T``
of the per-feature score of a new value ``x``: ``T[2k]`` when ``x`` lies strictly between the
``k``-th and ``(k+1)``-th distinct values, ``T[2k + 1]`` when it equals the ``k``-th. Scoring
needs ``k`` = how many distinct values are ``<= x``, exactly.

``k`` is found without sorting the batch and without a full binary search: a bucket index maps
``x`` in O(1) to a short run of ``U`` (``S[b]`` to ``S[b+1]``) through a monotone map: linear, or
log-like (the bits of ``x - c`` read as an ordered integer, ``c`` below the smallest or above the
largest value), whichever left the shortest longest run on the fit sample; heavy-tailed columns
would crowd a linear map's first buckets. Within the run a fixed number of branch-free halving
steps (``L`` per feature, the bit length of the longest run) finish the search; two guard loops
then step ``k`` until ``U[k-1] <= x < U[k]`` holds, so the answer is exact even where the map is
not strictly monotone (``-0.0`` and ``0.0``, rounding of huge spans); they never move a correct
``k``. The index is built by numpy (:func:`detectors.ecdf.fill_buckets`), which also has this
look-up uncompiled (:func:`detectors.ecdf.bucket_lookup`) for a process that has not loaded
numba.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from detectors._numba import compiled
from detectors.ecdf import LINEAR

FloatArray = Any  # numba's dispatchers are untyped; callers pass float64/int arrays

GROUP = 32


@compiled
def ordered_bits(x: float) -> float:
    """The float64's bits as an integer that orders like the float (a piecewise-linear log2)."""
    i = np.int64(np.float64(x).view(np.int64))
    if i < 0:
        i ^= np.int64(0x7FFFFFFFFFFFFFFF)
    return float(i)


@compiled
def _bucket(x: float, kind: int, center: float, lo: float, w: float, k: int) -> int:  # noqa: PLR0917
    g = x if kind == LINEAR else ordered_bits(x - center)
    f = (g - lo) * w
    if not f > 0.0:  # also NaN (an infinite span): bucket 0
        return 0
    if f >= k - 1:
        return k - 1
    return int(f)


@compiled
def lookup(  # noqa: PLR0917 (numba takes no keyword-only parameters)
    col: FloatArray,
    u: FloatArray,
    s: FloatArray,
    t: FloatArray,
    kind: int,
    center: float,
    lo: float,
    w: float,
    n_steps: int,
    out: FloatArray,
) -> None:
    """``out[i]`` = this feature's score of ``col[i]``: ``t[2k + (u[k-1] == x)]``, ``k`` the number
    of reference values ``<= x``. Values go in groups of ``GROUP``, each stage of the search run
    across the group, so the group's memory reads are independent and overlap instead of waiting
    on each other (the reference rarely fits in cache)."""
    m = u.shape[0]
    nb = s.shape[0] - 1
    first_step = (1 << n_steps) >> 1
    ks = np.empty(GROUP, dtype=np.int64)
    ends = np.empty(GROUP, dtype=np.int64)
    n = col.shape[0]
    for g0 in range(0, n, GROUP):
        gn = min(n, g0 + GROUP) - g0
        for q in range(gn):
            b = _bucket(col[g0 + q], kind, center, lo, w, nb)
            ks[q] = s[b]
            ends[q] = s[b + 1]
        step = first_step
        while step > 0:
            for q in range(gn):
                k = ks[q]
                probe = min(k + step, ends[q])
                ks[q] = probe if u[max(probe - 1, 0)] <= col[g0 + q] else k
            step >>= 1
        for q in range(gn):
            x = col[g0 + q]
            k = ks[q]
            while k < m and u[k] <= x:
                k += 1
            while k > 0 and u[k - 1] > x:
                k -= 1
            eq = 1 if k > 0 and u[k - 1] == x else 0
            out[g0 + q] = t[2 * k + eq]


@compiled
def columns(X: FloatArray, r0: int, r1: int, out: FloatArray) -> None:
    """``out[:, :r1-r0] = X[r0:r1].T`` in tiles of 64 rows (several times numpy's strided copy)."""
    d = X.shape[1]
    for i0 in range(r0, r1, 64):
        i1 = min(r1, i0 + 64)
        for j in range(d):
            for i in range(i0, i1):
                out[j, i - r0] = X[i, j]
