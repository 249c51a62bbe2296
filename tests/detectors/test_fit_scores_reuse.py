"""Screening reuses the scores the fit computed: same scores, fewer rows scored twice."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest

from detectors import screen
from detectors.base import FloatArray
from detectors.pyod_adapters import IForest
from detectors.screen import fit_model
from detectors.spec import DetectorSpec


def table(n: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pl.DataFrame(
        {
            "_row_id": pl.Series(np.arange(n) + 7, dtype=pl.UInt64),
            "x": x,
            "y": x * 2 + rng.normal(scale=0.3, size=n),
            "k": rng.choice(["a", "b", "c"], n).tolist(),
        }
    )


def spec(detector: str, **params: Any) -> DetectorSpec:
    return DetectorSpec.model_validate(
        {
            "name": "d",
            "detector": detector,
            "features": ["x", "y", {"column": "k", "kind": "categorical"}],
            "seed": 5,
            "params": {"n_estimators": 20, **params} if "iforest" in detector else params,
        }
    )


def scored_rows(monkeypatch: pytest.MonkeyPatch, cls: type[Any]) -> list[int]:
    """Count the rows a detector class scores (a spy on its ``_score``)."""
    seen: list[int] = []
    real = cls._score

    def spy(self: Any, X: FloatArray) -> FloatArray:
        seen.append(len(X))
        out: FloatArray = real(self, X)
        return out

    monkeypatch.setattr(cls, "_score", spy)
    return seen


@pytest.mark.parametrize(
    ("rows", "max_fit_rows", "scored"),
    [
        (6_000, 1_000, 5_000),  # 5,000 held out, scored once at fit; the fit rows reused
        (3_000, 2_000, 2_000 + 1_000),  # cross-fit halves, then the 1,000 rows left out
        (1_500, None, 1_500),  # cross-fit halves; every row is a fit row
    ],
)
def test_screen_scores_equal_scoring_every_row(
    monkeypatch: pytest.MonkeyPatch, rows: int, max_fit_rows: int | None, scored: int
) -> None:
    """No row is scored twice (scoring every row again would add ``rows``); each row's score is
    the fitted model's score of that row."""
    frame = table(rows)
    s = spec("iforest", max_fit_rows=max_fit_rows)
    seen = scored_rows(monkeypatch, IForest)
    result = screen(frame, [s])
    assert sum(seen) == scored
    assert result.models[0]["n_scored"] == rows
    fitted = fit_model(frame, s)
    want = fitted.detector.score(fitted.preparer.transform(frame))
    np.testing.assert_array_equal(result.scores.sort("_row_id")["score"].to_numpy(), want)


def test_a_detector_whose_fit_scores_differ_rescored(monkeypatch: pytest.MonkeyPatch) -> None:
    """ECOD's fit scores are not promised equal to its scores: only held-out rows are reused."""
    from detectors.ecdf import ECOD

    frame = table(7_000)
    s = spec("ecod", max_fit_rows=1_000)
    real_score = ECOD.score
    calls: list[int] = []

    def spy(self: Any, X: Any) -> FloatArray:
        calls.append(len(X))
        out: FloatArray = real_score(self, X)
        return out

    monkeypatch.setattr(ECOD, "score", spy)
    result = screen(frame, [s])
    assert sum(calls) == 6_000 + 1_000  # held out once at fit, then the fit rows only
    fitted = fit_model(frame, s)
    want = fitted.detector.score(fitted.preparer.transform(frame))
    np.testing.assert_array_equal(result.scores.sort("_row_id")["score"].to_numpy(), want)
