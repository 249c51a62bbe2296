"""Which source columns made a flagged row's score high.

- Detectors with additive per-feature scores (ECOD, COPOD: ``-log`` tail probabilities) report
  those parts, summed over the prepared columns of each source column.
- Every other detector gets an occlusion attribution: the drop in score when all prepared columns
  of one source column are replaced by their fit-sample median. It costs one extra scoring of the
  flagged rows per source column (flagged rows are a small share of the batch), works for
  any detector including ensembles, and, unlike a per-feature deviation from the median, credits
  both columns of a combination that is impossible while each value alone is ordinary.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from detectors.base import Detector, FloatArray

TOP_K = 3


def _groups(sources: Sequence[str]) -> list[tuple[str, list[int]]]:
    out: dict[str, list[int]] = {}
    for i, s in enumerate(sources):
        out.setdefault(s, []).append(i)
    return list(out.items())


def explanation_method(detector: Detector) -> str:
    """``tail_probability`` for detectors with per-feature parts, else ``occlusion``."""
    probe = getattr(type(detector), "feature_scores", None)
    return "occlusion" if probe is Detector.feature_scores else "tail_probability"


def contributions(
    detector: Detector,
    X: FloatArray,
    scores: FloatArray,
    sources: Sequence[str],
    typical: FloatArray,
) -> tuple[list[str], FloatArray]:
    """Per-source-column contributions (rows of ``X`` by source columns)."""
    groups = _groups(sources)
    out = np.empty((len(X), len(groups)), dtype=np.float64)
    if len(X) == 0:
        return [g for g, _ in groups], out
    parts = detector.feature_scores(X)
    for j, (_, idx) in enumerate(groups):
        if parts is not None:
            out[:, j] = parts[:, idx].sum(axis=1)
        else:
            masked = X.copy()
            masked[:, idx] = typical[idx]
            out[:, j] = scores - detector.score(masked)
    return [g for g, _ in groups], out


def top_features(
    names: Sequence[str], contrib: FloatArray, k: int = TOP_K
) -> list[list[dict[str, object]]]:
    """For each row the ``k`` largest contributions, largest first (ties by column order)."""
    order = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
    return [
        [{"column": names[j], "contribution": round(float(contrib[r, j]), 6)} for j in order[r]]
        for r in range(len(contrib))
    ]
