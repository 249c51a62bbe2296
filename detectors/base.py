"""The detector contract every registered detector follows.

Scores are float64 and **higher means more abnormal**. ``__init__`` stores parameters only; ``fit``
draws a bounded, seeded sample of the rows, fits on it, keeps the sample's own scores in
``fit_scores_``, and sets ``threshold_`` by evidence: from scores of rows the model was not fitted
on (rows left out of the sample, else a two-fold cross-fit of the sample), through a tail model
set for ``false_flag_rate`` (:mod:`detectors.threshold`); ``calibration_`` records how. There is no
quota: a batch with nothing abnormal gets (nearly) no flags. ``score`` works in chunks and changes
nothing.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt

from detectors.threshold import DEFAULT_FALSE_FLAG_RATE, tail_threshold
from sluice.core.errors import ConfigError, SluiceError

FloatArray = npt.NDArray[np.float64]

MAX_FALSE_FLAG_RATE = 0.1
CALIBRATION_ROWS = 100_000
MIN_HELD_OUT_ROWS = 5_000
COMMON_PARAMS: dict[str, str] = {
    "false_flag_rate": (
        f"share of clean rows the threshold may flag, in (0, {MAX_FALSE_FLAG_RATE}]; "
        f"default {DEFAULT_FALSE_FLAG_RATE}"
    ),
    "max_fit_rows": "fit on at most this many rows (a seeded sample); 'auto' or null for all",
    "random_state": "seed of the sample and of the detector",
    "chunk_rows": "score at most this many rows at a time",
}


class NotFittedError(RuntimeError):
    """``score`` was called before ``fit``."""


class FitRefused(SluiceError):
    """The detector's library refused to fit with its parameters on these rows (a value that
    depends on the data, such as more components than features)."""


def as_matrix(X: Any, *, what: str = "X") -> FloatArray:
    """``X`` as a finite 2-D float64 array (no copy when it already is one)."""
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be 2-D (rows x features), got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{what} has no features")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} holds NaN or infinite values; prepare features first")
    return arr


def sample_indices(n: int, max_rows: int | None, seed: int) -> npt.NDArray[np.intp] | None:
    """Sorted indices of at most ``max_rows`` of ``n`` rows (seeded), or None for all rows."""
    if max_rows is None or n <= max_rows:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_rows, replace=False))


def sample_rows(X: FloatArray, max_rows: int | None, seed: int) -> FloatArray:
    """At most ``max_rows`` rows of ``X``, drawn without replacement, kept in their order."""
    idx = sample_indices(len(X), max_rows, seed)
    return X if idx is None else X[idx]


def threshold_from(scores: FloatArray, share: float) -> float:
    """The score above which a ``share`` of ``scores`` lies (linear percentile): a quota."""
    return float(np.percentile(scores, 100.0 * (1.0 - share)))


class Detector(ABC):
    """An outlier detector on a numeric matrix; higher scores are more abnormal."""

    default_max_fit_rows: ClassVar[int | None] = 200_000
    min_fit_rows: ClassVar[int] = 10
    fit_scores_are_scores: ClassVar[bool] = False
    extra_params: ClassVar[Mapping[str, str]] = {}

    n_features_in_: int
    n_fit_: int
    fit_scores_: FloatArray
    threshold_: float
    calibration_: dict[str, Any]

    def __init__(
        self,
        *,
        false_flag_rate: float = DEFAULT_FALSE_FLAG_RATE,
        max_fit_rows: int | Literal["auto"] | None = "auto",
        random_state: int = 0,
        chunk_rows: int = 65_536,
    ) -> None:
        self.false_flag_rate = false_flag_rate
        self.max_fit_rows = max_fit_rows
        self.random_state = random_state
        self.chunk_rows = chunk_rows

    @classmethod
    def allowed_params(cls) -> dict[str, str]:
        """Parameter names this detector accepts, each with a short description."""
        return {**COMMON_PARAMS, **cls.extra_params}

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, detector: str) -> None:
        """Raise :class:`ConfigError` for an unknown parameter name or a bad common value."""
        allowed = cls.allowed_params()
        if "contamination" in params:
            raise ConfigError(
                f"detector {detector!r}: contamination is no longer a parameter (it flagged a "
                "fixed share of every batch, whatever the data); thresholds are set for a "
                "false-flag rate on clean data",
                key="params.contamination",
                found=params["contamination"],
                allowed="false_flag_rate: the share of clean rows that may be flagged, e.g. 0.001",
            )
        for key in params:
            if key not in allowed:
                raise ConfigError(
                    f"unknown parameter for detector {detector!r}",
                    key=f"params.{key}",
                    found=key,
                    allowed=", ".join(sorted(allowed)),
                )
        r = params.get("false_flag_rate", DEFAULT_FALSE_FLAG_RATE)
        if (
            isinstance(r, bool)
            or not isinstance(r, int | float)
            or not 0.0 < r <= MAX_FALSE_FLAG_RATE
        ):
            raise ConfigError(
                f"bad false_flag_rate for detector {detector!r}",
                key="params.false_flag_rate",
                found=r,
                allowed=f"a number in (0, {MAX_FALSE_FLAG_RATE}], e.g. 0.001 (1 in 1,000)",
            )
        m = params.get("max_fit_rows", "auto")
        if m not in (None, "auto") and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
            raise ConfigError(
                f"bad max_fit_rows for detector {detector!r}",
                key="params.max_fit_rows",
                found=m,
                allowed="a positive integer, 'auto' or null",
            )
        for name in ("random_state", "chunk_rows"):
            v = params.get(name, 1)
            if (
                isinstance(v, bool)
                or not isinstance(v, int)
                or v < (0 if name == "random_state" else 1)
            ):
                raise ConfigError(
                    f"bad {name} for detector {detector!r}",
                    key=f"params.{name}",
                    found=v,
                    allowed="a non-negative integer"
                    if name == "random_state"
                    else "a positive integer",
                )

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, as given."""
        sig = inspect.signature(type(self).__init__)
        out = {
            p: getattr(self, p)
            for p in sig.parameters
            if p != "self" and sig.parameters[p].kind is not inspect.Parameter.VAR_KEYWORD
        }
        out.update(getattr(self, "params", {}))
        return out

    @property
    def effective_max_fit_rows(self) -> int | None:
        """``max_fit_rows`` with ``'auto'`` resolved to the detector's own default."""
        m = self.max_fit_rows
        return self.default_max_fit_rows if m == "auto" else m

    def fit(self, X: Any) -> Self:
        """Fit on a seeded sample of ``X`` and set ``threshold_`` from held-out scores.

        Sets ``fit_scores_``, ``n_fit_``, ``threshold_`` and ``calibration_``. The held-out scores
        are those of up to ``CALIBRATION_ROWS`` rows of ``X`` left out of the fit sample when at
        least ``MIN_HELD_OUT_ROWS`` (or as many as the sample) are left out; otherwise each half of
        the sample is scored by a model fitted on the other half.
        """
        self.fit_scored(X)
        return self

    def fit_scored(self, X: Any) -> tuple[npt.NDArray[np.intp], FloatArray]:
        """:meth:`fit`, and the rows of ``X`` whose scores the fit already computed: their
        positions (sorted) and their scores, each equal to what :meth:`score` gives that row.

        They are the held-out rows scored for the threshold, and the fit sample itself when the
        detector's fit scores are its scores (``fit_scores_are_scores``), so a caller scoring
        every row of ``X`` need not score those again.
        """
        arr = as_matrix(X)
        idx = self._fit_rows(arr)
        held, source, pick = self._held_out_scores(arr, idx)
        self.threshold_, tail = tail_threshold(held, float(self.false_flag_rate))
        self.calibration_ = {
            "false_flag_rate": float(self.false_flag_rate),
            "held_out": source,
            "held_out_rows": len(held),
            "threshold": self.threshold_,
            **tail,
        }
        pos: list[npt.NDArray[np.intp]] = []
        val: list[FloatArray] = []
        if pick is not None:
            pos.append(pick)
            val.append(held)
        if self.fit_scores_are_scores:
            pos.append(np.arange(len(arr), dtype=np.intp) if idx is None else idx)
            val.append(self.fit_scores_)
        if not pos:
            return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.float64)
        positions, scores = np.concatenate(pos), np.concatenate(val)
        order = np.argsort(positions, kind="stable")
        return positions[order], scores[order]

    def fit_uncalibrated(self, X: Any) -> Self:
        """Fit on a seeded sample of ``X`` without setting a threshold (ensemble members)."""
        for stale in ("threshold_", "calibration_"):
            self.__dict__.pop(stale, None)
        self._fit_rows(as_matrix(X))
        return self

    def _fit_rows(self, arr: FloatArray) -> npt.NDArray[np.intp] | None:
        type(self).check_params(self.get_params(), detector=type(self).__name__)
        if len(arr) < self.min_rows():
            need = self.min_rows()
            raise ValueError(
                f"{type(self).__name__} needs at least {need} rows to fit, got {len(arr)}"
            )
        idx = sample_indices(len(arr), self.effective_max_fit_rows, self.random_state)
        fit_x = arr if idx is None else arr[idx]
        self.n_features_in_ = arr.shape[1]
        self.n_fit_ = len(fit_x)
        self.fit_scores_ = np.asarray(self._fit(fit_x), dtype=np.float64)
        return idx

    def _held_out_scores(
        self, arr: FloatArray, idx: npt.NDArray[np.intp] | None
    ) -> tuple[FloatArray, str, npt.NDArray[np.intp] | None]:
        rng = np.random.default_rng(self.random_state + 1)
        n_rest = 0 if idx is None else len(arr) - len(idx)
        if idx is not None and n_rest >= min(MIN_HELD_OUT_ROWS, len(idx)):
            rest = np.ones(len(arr), dtype=bool)
            rest[idx] = False
            pick = np.flatnonzero(rest)
            if len(pick) > CALIBRATION_ROWS:
                pick = np.sort(rng.choice(pick, size=CALIBRATION_ROWS, replace=False))
            return self.score(arr[pick]), "rows left out of the fit sample", pick
        fit_x = arr if idx is None else arr[idx]
        order = rng.permutation(len(fit_x))
        halves = (np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2 :]))
        if min(len(h) for h in halves) < self.min_rows():
            return self.fit_scores_, "the fit rows themselves (too few rows to hold any out)", None
        parts = []
        for train, test in (halves, halves[::-1]):
            twin = type(self)(**self.get_params()).fit_uncalibrated(fit_x[train])
            parts.append(twin.score(fit_x[test]))
        return np.concatenate(parts), "two-fold cross-fit of the fit sample", None

    def min_rows(self) -> int:
        """The fewest rows this detector can fit on."""
        return self.min_fit_rows

    def score(self, X: Any) -> FloatArray:
        """Outlier scores of the rows of ``X`` (float64, higher is more abnormal)."""
        arr = self._check_input(X)
        out = np.empty(len(arr), dtype=np.float64)
        step = max(1, int(self.chunk_rows))
        for start in range(0, len(arr), step):
            out[start : start + step] = self._score(arr[start : start + step])
        return out

    def _check_input(self, X: Any) -> FloatArray:
        if not hasattr(self, "n_features_in_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit first")
        arr = as_matrix(X)
        if arr.shape[1] != self.n_features_in_:
            raise ValueError(
                f"{type(self).__name__} was fitted on {self.n_features_in_} features, "
                f"got {arr.shape[1]}"
            )
        return arr

    def predict(self, X: Any) -> npt.NDArray[np.bool_]:
        """True where a row's score is above the fitted threshold."""
        return self.score(X) > self.threshold_

    def feature_scores(self, X: FloatArray) -> FloatArray | None:
        """Per-feature additive parts of the score, if the detector has them (else ``None``)."""
        return None

    @abstractmethod
    def _fit(self, X: FloatArray) -> FloatArray:
        """Fit on ``X`` and return the scores of the fit rows themselves."""

    @abstractmethod
    def _score(self, X: FloatArray) -> FloatArray:
        """Scores of new rows; must not change ``self``."""
