"""Adapters that run PyOD models under the detector contract.

Each adapter names its PyOD class by import path; the PyOD constructor's own parameters are accepted
by name (checked against its signature) next to the common ones. Adapters that measure distances
standardise the features with the fit sample's mean and standard deviation first.
"""

from __future__ import annotations

import importlib
import inspect
import math
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from types import MappingProxyType
from typing import Any, ClassVar, Literal

import numpy as np

from detectors.base import COMMON_PARAMS, Detector, FitRefused, FloatArray
from detectors.params import (
    BINS,
    BOOLEAN,
    JOBS,
    MAX_BINS,
    MAX_TREES,
    NEIGHBOUR_RULES,
    NULL,
    SHARE,
    Rule,
    check_values,
    choice,
    either,
    integer,
    number,
)
from detectors.threshold import DEFAULT_FALSE_FLAG_RATE
from sluice.core.errors import ConfigError

_HIDDEN = frozenset({"self", "contamination", "random_state", "verbose", "novelty"})


@cache
def import_path(path: str) -> Any:
    """The object named by ``"package.module:Name"``."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


class PyODDetector(Detector):
    """A PyOD model behind the detector contract (set ``estimator_path`` in a subclass)."""

    estimator_path: ClassVar[str] = ""
    fixed_params: ClassVar[Mapping[str, Any]] = {}
    needs_scaling: ClassVar[bool] = False
    param_rules: ClassVar[Mapping[str, Rule]] = {}
    """The values each library parameter may take (:mod:`detectors.params`)."""

    def __init__(
        self,
        *,
        false_flag_rate: float = DEFAULT_FALSE_FLAG_RATE,
        max_fit_rows: int | Literal["auto"] | None = "auto",
        random_state: int = 0,
        chunk_rows: int = 65_536,
        scale: bool | None = None,
        **params: Any,
    ) -> None:
        super().__init__(
            false_flag_rate=false_flag_rate,
            max_fit_rows=max_fit_rows,
            random_state=random_state,
            chunk_rows=chunk_rows,
        )
        self.scale = scale
        self.params = params

    @classmethod
    def estimator_params(cls) -> list[str]:
        """The PyOD constructor's parameters a user may set."""
        sig = inspect.signature(import_path(cls.estimator_path).__init__)
        return [
            p
            for p, v in sig.parameters.items()
            if p not in _HIDDEN and p not in cls.fixed_params and v.kind is v.POSITIONAL_OR_KEYWORD
        ]

    @classmethod
    def allowed_params(cls) -> dict[str, str]:
        """Common parameters, ``scale``, and the PyOD constructor's own."""
        own = {
            p: f"{cls.estimator_path.rpartition(':')[2]} parameter" for p in cls.estimator_params()
        }
        return {
            **COMMON_PARAMS,
            "scale": "standardise features first (default per detector)",
            **own,
        }

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, detector: str) -> None:
        """Common checks, ``scale`` a boolean or null, and each library parameter within its
        rule (``param_rules``)."""
        super().check_params(params, detector=detector)
        s = params.get("scale")
        if s is not None and not isinstance(s, bool):
            raise ConfigError(
                f"bad scale for detector {detector!r}",
                key="params.scale",
                found=s,
                allowed="true, false or null",
            )
        library = "PyOD " + cls.estimator_path.rpartition(":")[2]
        check_values(cls.param_rules, params, detector=detector, library=library)

    @contextmanager
    def _library(self, X: FloatArray, passing: tuple[type[Exception], ...] = ()) -> Iterator[None]:
        """The library refusing to fit on ``X`` (scikit-learn's ``InvalidParameterError`` is a
        ``ValueError``) as :class:`FitRefused`, naming the parameters given; ``passing``: errors
        left as they are (a caller's fallback)."""
        try:
            yield
        except passing:
            raise
        except (ValueError, TypeError) as exc:
            library = "PyOD " + self.estimator_path.rpartition(":")[2]
            given = ", ".join(f"{k}={v!r}" for k, v in sorted(self.params.items()))
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise FitRefused(
                f"{library} could not be fitted on {X.shape[0]:,} rows x {X.shape[1]} features"
                + (f" with {given}" if given else "")
                + f": {first}"
            ) from exc

    def _scales(self) -> bool:
        return self.needs_scaling if self.scale is None else bool(self.scale)

    def _make(self) -> Any:
        est_cls = import_path(self.estimator_path)
        sig = inspect.signature(est_cls.__init__).parameters
        kwargs: dict[str, Any] = {**self.fixed_params, **self.params}
        if "random_state" in sig:
            kwargs["random_state"] = self.random_state
        return est_cls(**kwargs)

    def _prepare(self, X: FloatArray) -> FloatArray:
        if not self._scales():
            return X
        out: FloatArray = (X - self.center_) / self.spread_
        return out

    def _fit(self, X: FloatArray) -> FloatArray:
        if self._scales():
            self.center_ = X.mean(axis=0)
            sd = X.std(axis=0)
            self.spread_ = np.where(sd > 0, sd, 1.0)
        with self._library(X):
            est = self._make()
            est.fit(self._prepare(X))
        self.estimator_ = est
        return np.asarray(est.decision_scores_, dtype=np.float64)

    def _score(self, X: FloatArray) -> FloatArray:
        return np.asarray(self.estimator_.decision_function(self._prepare(X)), dtype=np.float64)


class IForest(PyODDetector):
    """Isolation forest (PyOD ``IForest``), fitted by :mod:`detectors.iforest_fit` and scored by
    the compiled kernel of :mod:`detectors.iforest_kernel`.

    The trees are scikit-learn's, node for node, grown without importing scikit-learn or PyOD
    (about a CPU second of imports); the fit sample is scored once, by the kernel, and those
    scores give both PyOD's ``decision_scores_`` and scikit-learn's ``offset_`` (PyOD's own fit
    scores the sample twice). Scores equal PyOD's ``decision_function`` bit for bit. Scoring runs
    on ``n_jobs`` threads when it is given (``-1`` or null: every core), else on every core.
    What the module does not reproduce (a fit sample holding NaN, parameter values scikit-learn
    would refuse or warn about) and forests the compact layout cannot hold (a tree of 65,536
    nodes or more) are fitted, or scored, by scikit-learn through PyOD, with the same results.
    """

    estimator_path = "pyod.models.iforest:IForest"
    fit_scores_are_scores = True
    # PyOD IForest's parameters and their defaults (a test compares them with its signature),
    # so that checking a configuration or fitting does not import PyOD.
    pyod_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType(
        {
            "n_estimators": 100,
            "max_samples": "auto",
            "max_features": 1.0,
            "bootstrap": False,
            "n_jobs": 1,
            "behaviour": "old",
        }
    )
    pyod_contamination: ClassVar[float] = 0.1
    param_rules: ClassVar[Mapping[str, Rule]] = MappingProxyType(
        {
            "n_estimators": integer(1, MAX_TREES),
            "max_samples": either(choice("auto"), integer(1, 2**31 - 1), SHARE),
            "max_features": either(integer(1, 2**31 - 1), SHARE),
            "bootstrap": BOOLEAN,
            "n_jobs": JOBS,
            "behaviour": choice("old", "new"),
        }
    )

    @classmethod
    def estimator_params(cls) -> list[str]:
        """PyOD IForest's parameters a user may set, without importing PyOD."""
        return list(cls.pyod_defaults)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the compact forest derived from scikit-learn's trees (rebuilt on use);
        a forest fitted here is pickled as it is scored."""
        return {k: v for k, v in self.__dict__.items() if k != "_compact"}

    def _threads(self) -> int:
        from detectors.iforest_kernel import default_threads

        cores = default_threads()
        n = self.params.get("n_jobs")
        if n is None or isinstance(n, bool) or not isinstance(n, int) or n == 0:
            return cores
        return max(1, min(cores, n if n > 0 else cores + 1 + n))

    def _forest_scores(self, forest: Any, X: FloatArray) -> FloatArray:
        """scikit-learn's ``score_samples`` of the rows of ``X``, compiled where possible."""
        from detectors.iforest_kernel import CompactForest, TooLarge

        compact = self.__dict__.get("_compact")
        if compact is None:
            try:
                compact = CompactForest.from_sklearn(forest)
            except TooLarge:
                compact = False
            self.__dict__["_compact"] = compact
        if isinstance(compact, CompactForest):
            return compact.score_samples(X, self._threads())
        return np.asarray(forest.score_samples(X), dtype=np.float64)

    def _fit(self, X: FloatArray) -> FloatArray:
        from detectors.iforest_fit import Unsupported, fit_forest
        from detectors.iforest_kernel import CompactForest, TooLarge

        self.__dict__.pop("_compact", None)
        self.__dict__.pop("forest_", None)
        self.__dict__.pop("estimator_", None)
        p = {**self.pyod_defaults, **self.params}
        try:
            with self._library(X, passing=(Unsupported, TooLarge)):
                forest = CompactForest.from_forest(
                    fit_forest(
                        X,
                        n_estimators=p["n_estimators"],
                        max_samples=p["max_samples"],
                        max_features=p["max_features"],
                        bootstrap=p["bootstrap"],
                        random_state=self.random_state,
                    )
                )
        except (Unsupported, TooLarge):
            return self._fit_by_sklearn(X)
        raw = forest.score_samples(X, self._threads())
        # IsolationForest.fit's offset_ for PyOD's contamination, then PyOD's invert_order
        self.offset_ = float(np.percentile(raw, 100.0 * self.pyod_contamination))
        self.forest_ = forest
        out: FloatArray = (raw - self.offset_) * -1
        return out

    def _fit_by_sklearn(self, X: FloatArray) -> FloatArray:
        from pyod.utils.utility import invert_order
        from sklearn.ensemble import IsolationForest

        with self._library(X):
            est = self._make()
            est._set_n_classes(None)
            forest = IsolationForest(
                n_estimators=est.n_estimators,
                max_samples=est.max_samples,
                contamination="auto",  # no scoring inside fit; offset_ is set below as it would be
                max_features=est.max_features,
                bootstrap=est.bootstrap,
                n_jobs=est.n_jobs,
                random_state=est.random_state,
                verbose=est.verbose,
            )
            forest.fit(X)
        raw = self._forest_scores(forest, X)
        forest.contamination = est.contamination
        forest.offset_ = np.percentile(raw, 100.0 * est.contamination)
        est.detector_ = forest
        est.decision_scores_ = invert_order(raw - forest.offset_)
        est._process_decision_scores()
        self.estimator_ = est
        return np.asarray(est.decision_scores_, dtype=np.float64)

    def _score(self, X: FloatArray) -> FloatArray:
        forest = self.__dict__.get("forest_")
        if forest is not None:
            out: FloatArray = (forest.score_samples(X, self._threads()) - self.offset_) * -1
            return out
        sk = self.estimator_.detector_
        out = (self._forest_scores(sk, X) - sk.offset_) * -1
        return out


class HBOS(PyODDetector):
    """Histogram-based outlier score (PyOD ``HBOS``)."""

    estimator_path = "pyod.models.hbos:HBOS"
    param_rules: ClassVar[Mapping[str, Rule]] = MappingProxyType(
        {
            "n_bins": BINS,
            "alpha": number(0.0, 1.0, open_lo=True, open_hi=True),
            "tol": number(0.0, 1.0),
        }
    )


class PCA(PyODDetector):
    """Weighted distance in principal-component space (PyOD ``PCA``, which standardises itself).

    Components with no variance (constant or collinear columns) would divide scores by zero: unless
    ``n_components`` is given, the model is refitted without them.
    """

    estimator_path = "pyod.models.pca:PCA"
    param_rules: ClassVar[Mapping[str, Rule]] = MappingProxyType(
        {
            "n_components": either(
                NULL,
                integer(1, 2**31 - 1),
                number(0.0, 1.0, open_lo=True, open_hi=True),
                choice("mle"),
            ),
            "n_selected_components": either(NULL, integer(1, 2**31 - 1)),
            "copy": BOOLEAN,
            "whiten": BOOLEAN,
            "svd_solver": choice("auto", "full", "covariance_eigh", "arpack", "randomized"),
            "tol": number(0.0, math.inf, open_hi=True),
            "iterated_power": either(choice("auto"), integer(0, 1_000)),
            "weighted": BOOLEAN,
            "standardization": BOOLEAN,
        }
    )

    def _fit(self, X: FloatArray) -> FloatArray:
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            scores = super()._fit(X)
        ratio = np.asarray(self.estimator_.detector_.explained_variance_ratio_)
        keep = int((ratio > 1e-9).sum())
        if keep < len(ratio) and "n_components" not in self.params:
            with self._library(X):
                est = self._make()
                est.n_components = max(1, keep)
                est.fit(self._prepare(X))
            self.estimator_ = est
            scores = np.asarray(est.decision_scores_, dtype=np.float64)
        return scores


class LODA(PyODDetector):
    """Lightweight on-line detector of anomalies: random projections and histograms."""

    estimator_path = "pyod.models.loda:LODA"
    needs_scaling = True
    param_rules: ClassVar[Mapping[str, Rule]] = MappingProxyType(
        {"n_bins": BINS, "n_random_cuts": integer(1, MAX_BINS)}
    )


class _Neighbours(PyODDetector):
    default_max_fit_rows = 10_000

    def min_rows(self) -> int:
        """One more row than the number of neighbours."""
        k = self.params.get("n_neighbors")
        if k is None:
            k = (
                inspect.signature(import_path(self.estimator_path).__init__)
                .parameters["n_neighbors"]
                .default
            )
        return max(self.min_fit_rows, int(k) + 1)

    def _trees(self) -> list[Any]:
        from sklearn.neighbors import BallTree, KDTree

        found: dict[int, Any] = {}
        objs = [self.estimator_, *vars(self.estimator_).values()]
        for obj in objs:
            for v in [obj, *getattr(obj, "__dict__", {}).values()]:
                if isinstance(v, KDTree | BallTree):
                    found[id(v)] = v
        return list(found.values())

    def _score(self, X: FloatArray) -> FloatArray:
        """Scores of new rows; the trees' query counters are put back, so nothing changes."""
        trees = self._trees()
        saved = [t.__getstate__() for t in trees]
        try:
            return super()._score(X)
        finally:
            for t, state in zip(trees, saved, strict=True):
                t.__setstate__(state)


class KNN(_Neighbours):
    """Distance to the k-th nearest neighbour in a bounded fit sample (PyOD ``KNN``)."""

    estimator_path = "pyod.models.knn:KNN"
    needs_scaling = True
    param_rules: ClassVar[Mapping[str, Rule]] = MappingProxyType(
        {
            **NEIGHBOUR_RULES,
            "method": choice("largest", "mean", "median"),
            "radius": number(0.0, math.inf, open_lo=True, open_hi=True),
        }
    )


class LOF(_Neighbours):
    """Local outlier factor against a bounded fit sample (PyOD ``LOF`` in novelty mode)."""

    estimator_path = "pyod.models.lof:LOF"
    fixed_params: ClassVar[Mapping[str, Any]] = {"novelty": True}
    needs_scaling = True
    param_rules: ClassVar[Mapping[str, Rule]] = NEIGHBOUR_RULES
