"""An average of registered detectors on one shared fit sample.

The ensemble draws its fit sample once; each member fits on that sample or, if the member bounds
its own fit rows lower (KNN and LOF: 10,000), on a seeded sample of it.

Each member's scores are put on a common scale using its own fit-sample scores: ``zscore`` subtracts
their mean and divides by their standard deviation; ``rank`` maps a score to the share of fit
scores at or below it. The ensemble score is the plain mean over members. The default members
(IForest, ECOD, KNN) were the best ensemble measured on the ADBench sample and, through KNN, catch
rows whose values break a relation between columns (bench/README.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np

from detectors.base import Detector, FloatArray, sample_indices
from detectors.threshold import DEFAULT_FALSE_FLAG_RATE
from sluice.core.errors import ConfigError

Member = str | Mapping[str, Any]
DEFAULT_MEMBERS: tuple[str, ...] = ("iforest", "ecod", "knn")
_COMBINE = ("zscore", "rank")


def _member(m: Member) -> tuple[str, dict[str, Any]]:
    if isinstance(m, str):
        return m, {}
    return str(m.get("detector")), dict(m.get("params") or {})


class Ensemble(Detector):
    """Mean of standardised (or ranked) member scores; members are registered detector names."""

    default_max_fit_rows = 100_000
    extra_params: ClassVar[dict[str, str]] = {
        "members": "registered detector names, or {detector: name, params: {...}} mappings",
        "combine": "how member scores are put on one scale: zscore or rank",
    }

    def __init__(
        self,
        *,
        false_flag_rate: float = DEFAULT_FALSE_FLAG_RATE,
        max_fit_rows: int | Literal["auto"] | None = "auto",
        random_state: int = 0,
        chunk_rows: int = 65_536,
        members: Sequence[Member] = DEFAULT_MEMBERS,
        combine: str = "zscore",
    ) -> None:
        super().__init__(
            false_flag_rate=false_flag_rate,
            max_fit_rows=max_fit_rows,
            random_state=random_state,
            chunk_rows=chunk_rows,
        )
        self.members = members
        self.combine = combine

    @classmethod
    def check_params(cls, params: Mapping[str, Any], *, detector: str) -> None:
        """Common checks, a known ``combine``, and every member a valid registered detector."""
        from detectors.registry import check_detector, detector_class

        super().check_params(params, detector=detector)
        combine = params.get("combine", "zscore")
        if combine not in _COMBINE:
            raise ConfigError(
                f"bad combine for detector {detector!r}",
                key="params.combine",
                found=combine,
                allowed=", ".join(_COMBINE),
            )
        members = params.get("members", DEFAULT_MEMBERS)
        if isinstance(members, str | bytes) or not isinstance(members, Sequence) or not members:
            raise ConfigError(
                f"bad members for detector {detector!r}",
                key="params.members",
                found=members,
                allowed="a non-empty list of detector names or {detector, params} mappings",
            )
        for i, m in enumerate(members):
            if not isinstance(m, str | Mapping) or (
                isinstance(m, Mapping) and not set(m) <= {"detector", "params"}
            ):
                raise ConfigError(
                    f"bad member of detector {detector!r}",
                    key=f"params.members[{i}]",
                    found=m,
                    allowed="a detector name or a mapping with keys detector and params",
                )
            name, mparams = _member(m)
            if issubclass(detector_class(name), Ensemble):
                raise ConfigError(
                    f"detector {detector!r}: a member cannot be an ensemble",
                    key=f"params.members[{i}]",
                    found=name,
                )
            check_detector(name, mparams)

    def _build(self) -> list[Detector]:
        from detectors.registry import get_detector

        out = []
        for i, m in enumerate(self.members):
            name, params = _member(m)
            params = {"random_state": self.random_state + i, **params}
            out.append(get_detector(name, **params))
        return out

    def min_rows(self) -> int:
        """The most any member needs."""
        return max([self.min_fit_rows, *(d.min_rows() for d in self._build())])

    def _fit(self, X: FloatArray) -> FloatArray:
        fitted = [d.fit_uncalibrated(X) for d in self._build()]
        self.members_ = fitted
        if self.combine == "rank":
            self.sorted_fit_scores_ = [np.sort(d.fit_scores_) for d in fitted]
        else:
            self.centers_ = np.array([d.fit_scores_.mean() for d in fitted])
            sds = np.array([d.fit_scores_.std() for d in fitted])
            self.spreads_ = np.where(sds > 0, sds, 1.0)
        return self._mean([self._scores_of_fit_rows(d, X) for d in fitted])

    @staticmethod
    def _scores_of_fit_rows(member: Detector, X: FloatArray) -> FloatArray:
        """A member's scores of all ensemble fit rows: its own fit scores on its sample rows."""
        idx = sample_indices(len(X), member.effective_max_fit_rows, member.random_state)
        if idx is None:
            return member.fit_scores_
        out = member.score(X)
        out[idx] = member.fit_scores_
        return out

    def _mean(self, parts: Sequence[FloatArray]) -> FloatArray:
        acc = np.zeros(len(parts[0]), dtype=np.float64)
        for i, p in enumerate(parts):
            if self.combine == "rank":
                ref = self.sorted_fit_scores_[i]
                acc += np.searchsorted(ref, p, side="right") / len(ref)
            else:
                acc += (p - self.centers_[i]) / self.spreads_[i]
        return acc / len(parts)

    def _score(self, X: FloatArray) -> FloatArray:
        return self._mean([d.score(X) for d in self.members_])
