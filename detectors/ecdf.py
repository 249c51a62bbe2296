"""ECOD and COPOD with fast inductive scoring against the fitted reference.

PyOD scores new rows by sorting them together with every training row. Here ``fit`` keeps, per
feature, the sorted distinct values of the fit sample and one table of the per-feature outlier score
of a value equal to each of them (odd slots) or falling just below it (even slots); scoring a chunk
is one argsort of the chunk per feature, a binary search of the sorted chunk (``np.searchsorted``,
cache-friendly because the keys are sorted) and one table look-up, features in parallel threads.

A new row's tail probabilities are those PyOD gives when that row alone is appended to the fit
sample: ``(count + 1) / (n + 1)``. The scores of the fit rows themselves (``fit_scores_``) are
PyOD's ``decision_scores_``: ``count / n``. The skewness sign per feature is the fit sample's.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Literal

import numpy as np
from scipy.stats import skew

from detectors.base import Detector, FloatArray
from sluice.errors import ConfigError


class _ECDFDetector(Detector):
    default_max_fit_rows = 100_000
    extra_params: ClassVar[dict[str, str]] = {
        "n_jobs": "threads used to score features in parallel; null for one per core",
    }

    def __init__(
        self,
        *,
        contamination: float = 0.01,
        max_fit_rows: int | Literal["auto"] | None = "auto",
        random_state: int = 0,
        chunk_rows: int = 65_536,
        n_jobs: int | None = None,
    ) -> None:
        super().__init__(
            contamination=contamination,
            max_fit_rows=max_fit_rows,
            random_state=random_state,
            chunk_rows=chunk_rows,
        )
        self.n_jobs = n_jobs

    @classmethod
    def check_params(cls, params: Any, *, detector: str) -> None:
        """Common checks plus ``n_jobs`` must be a positive integer or null."""
        super().check_params(params, detector=detector)
        j = params.get("n_jobs")
        if j is not None and (isinstance(j, bool) or not isinstance(j, int) or j < 1):
            raise ConfigError(
                f"bad n_jobs for detector {detector!r}",
                key="params.n_jobs",
                found=j,
                allowed="a positive integer or null",
            )

    def _combine(self, u_l: FloatArray, u_r: FloatArray, sign: float) -> FloatArray:
        raise NotImplementedError

    def _fit(self, X: FloatArray) -> FloatArray:
        n, d = X.shape
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            signs = np.sign(np.nan_to_num(skew(X, axis=0)))
        self.skew_sign_ = signs.astype(np.float64)
        values: list[FloatArray] = []
        tables: list[FloatArray] = []
        fit_parts = np.empty((n, d), dtype=np.float64)
        for j in range(d):
            col = X[:, j]
            u, counts = np.unique(col, return_counts=True)
            le = np.cumsum(counts).astype(np.float64)
            lt = le - counts
            s = float(signs[j])
            le0 = np.concatenate(([0.0], le))
            btw = self._combine(
                -np.log((le0 + 1.0) / (n + 1.0)), -np.log((n - le0 + 1.0) / (n + 1.0)), s
            )
            eq = self._combine(
                -np.log((le + 1.0) / (n + 1.0)), -np.log((n - lt + 1.0) / (n + 1.0)), s
            )
            in_sample = self._combine(-np.log(le / n), -np.log((n - lt) / n), s)
            k = np.searchsorted(u, col, side="right")
            fit_parts[:, j] = in_sample[k - 1]
            table = np.empty(2 * len(btw), dtype=np.float64)
            table[0::2] = btw
            table[1::2] = np.concatenate((btw[:1], eq))
            values.append(np.concatenate(([np.nan], u)))
            tables.append(table)
        self.values_ = values
        self.tables_ = tables
        total: FloatArray = fit_parts.sum(axis=1)
        return total

    def _feature_part(self, j: int, q: FloatArray) -> FloatArray:
        order = np.argsort(q)
        qs = q[order]
        vals = self.values_[j]
        k = np.searchsorted(vals[1:], qs, side="right")
        part = self.tables_[j][2 * k + (vals[k] == qs)]
        out = np.empty(len(q), dtype=np.float64)
        out[order] = part
        return out

    def _threads(self) -> int:
        n = self.n_jobs if self.n_jobs is not None else (os.cpu_count() or 1)
        return max(1, min(int(n), self.n_features_in_))

    def feature_scores(self, X: FloatArray) -> FloatArray:
        """Per-feature outlyingness of new rows (``-log`` tail probabilities); sums to ``score``."""
        arr = self._check_input(X)
        out = np.empty(arr.shape, dtype=np.float64)
        cols = np.ascontiguousarray(arr.T)
        for j in range(arr.shape[1]):
            out[:, j] = self._feature_part(j, cols[j])
        return out

    def score(self, X: Any) -> FloatArray:
        """Scores of new rows, in chunks, features in parallel threads."""
        arr = self._check_input(X)
        out = np.empty(len(arr), dtype=np.float64)
        step = max(1, int(self.chunk_rows))
        d = arr.shape[1]
        workers = self._threads()
        pool = ThreadPoolExecutor(workers) if workers > 1 else None
        try:
            for start in range(0, len(arr), step):
                cols = np.ascontiguousarray(arr[start : start + step].T)
                if pool is None:
                    parts = [self._feature_part(j, cols[j]) for j in range(d)]
                else:
                    parts = list(pool.map(self._feature_part, range(d), cols))
                acc = parts[0].copy()
                for p in parts[1:]:
                    acc += p
                out[start : start + step] = acc
        finally:
            if pool is not None:
                pool.shutdown()
        return out

    def _score(self, X: FloatArray) -> FloatArray:
        return self.score(X)


def _skewed(u_l: FloatArray, u_r: FloatArray, sign: float) -> FloatArray:
    out: FloatArray = u_l * -np.sign(sign - 1.0) + u_r * np.sign(sign + 1.0)
    return out


class ECOD(_ECDFDetector):
    """Empirical-CDF outlier detection (the ECOD score), scored against the fit sample."""

    def _combine(self, u_l: FloatArray, u_r: FloatArray, sign: float) -> FloatArray:
        return np.maximum(np.maximum(u_l, u_r), _skewed(u_l, u_r, sign))


class COPOD(_ECDFDetector):
    """Copula-based outlier detection (the COPOD score), scored against the fit sample."""

    def _combine(self, u_l: FloatArray, u_r: FloatArray, sign: float) -> FloatArray:
        return np.maximum(_skewed(u_l, u_r, sign), (u_l + u_r) / 2.0)
