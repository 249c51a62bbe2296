"""The screen stage: fit each declared detector, score every row, flag and explain outliers.

``screen`` is a plain function on frames. For each detector spec it picks the fit rows (the
``reference`` frame when one is given and the spec allows it, else the batch), draws a seeded sample
of at most the detector's ``max_fit_rows`` plus ``CALIBRATION_ROWS`` held-out rows, fits the feature
preparation and the detector, and sets the threshold from scores of rows the model was not fitted
on, for the spec's ``false_flag_rate`` (:mod:`detectors.threshold`); then it prepares and scores the
batch in chunks. Rows above the threshold become failures ``outlier|<spec name>`` with the spec's
severity (``warn`` by default: the row stays clean), their score, the threshold and the top
contributing source columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from detectors.base import CALIBRATION_ROWS, Detector, FitRefused, sample_indices
from detectors.explain import contributions, explanation_method, top_features
from detectors.features import FeaturePreparer, check_features
from detectors.persist import FittedModel, check_model_file, load_model, spec_features
from detectors.registry import get_detector
from detectors.spec import DetectorSpec
from sluice.core.errors import ConfigError, SluiceError
from sluice.core.failures import concat_failures, details_json, make_failures
from sluice.core.values import json_safe

OUTLIER_COLUMN = "outlier"
SCORE_CHUNK_ROWS = 262_144
SCORES_SCHEMA: dict[str, pl.DataType] = {
    "_row_id": pl.UInt64(),
    "detector": pl.String(),
    "score": pl.Float64(),
    "threshold": pl.Float64(),
    "is_outlier": pl.Boolean(),
}


@dataclass(frozen=True)
class ScreenResult:
    """What the screen stage gives: failures for flagged rows, all scores, and model records."""

    failures: pl.DataFrame
    scores: pl.DataFrame
    models: list[dict[str, Any]]


def _params(spec: DetectorSpec) -> dict[str, Any]:
    if "random_state" in spec.params:
        raise ConfigError(
            "set the seed with 'seed', not params.random_state",
            key="params.random_state",
            found=spec.params["random_state"],
        )
    return {**spec.params, "random_state": spec.seed}


def build_detector(spec: DetectorSpec, index: int = 0) -> Detector:
    """The unfitted detector of a spec; :class:`ConfigError` names the spec on any problem."""
    try:
        return get_detector(spec.detector_name, **_params(spec))
    except ConfigError as exc:
        same = spec.name == spec.detector_name
        raise ConfigError(
            exc.problem if same else f"detector {spec.name!r}: {exc.problem}",
            key=f"detectors[{index}].{exc.key}" if exc.key else f"detectors[{index}]",
            found=exc.found,
            allowed=exc.allowed,
        ) from None


def check_specs(
    specs: Sequence[DetectorSpec], schema: Mapping[str, pl.DataType | str] | None = None
) -> None:
    """Raise :class:`ConfigError` for any spec that cannot run, before any data moves.

    Checks detector names, parameter names and values, duplicate spec names and, when ``schema``
    is given (polars types, or dataset-spec type names such as ``"float"``), that every feature
    column exists with a type its kind can read. A saved model's file must exist and match its
    ``model_sha256`` (its contents are checked when it is loaded).
    """
    names: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.name in names:
            raise ConfigError(
                "two detectors share a name (it is their rule name)",
                key=f"detectors[{i}].name",
                found=spec.name,
            )
        names.add(spec.name)
        build_detector(spec, i)
        if spec.model is not None:
            check_model_file(spec.model, spec.model_sha256, key=f"detectors[{i}].model_sha256")
        if schema is not None:
            try:
                check_features(spec.feature_specs(), schema, detector=spec.name)
            except ConfigError as exc:
                raise ConfigError(
                    exc.problem,
                    key=f"detectors[{i}].{exc.key}",
                    found=exc.found,
                    allowed=exc.allowed,
                ) from None


def _class_path(det: Detector) -> str:
    return f"{type(det).__module__}.{type(det).__qualname__}"


@dataclass(frozen=True)
class KnownScores:
    """Rows of the fit frame the fit already scored: positions in the frame (sorted), their
    prepared features and their scores."""

    positions: npt.NDArray[np.intp]
    features: npt.NDArray[np.float64]
    scores: npt.NDArray[np.float64]


def fit_model(frame: pl.DataFrame, spec: DetectorSpec, *, index: int = 0) -> FittedModel:
    """Fit a spec's feature preparation and detector on (a seeded sample of) ``frame``.

    Raises :class:`SluiceError` when ``frame`` has fewer rows than the detector needs.
    """
    return fit_model_scored(frame, spec, index=index)[0]


def fit_model_scored(
    frame: pl.DataFrame, spec: DetectorSpec, *, index: int = 0
) -> tuple[FittedModel, KnownScores]:
    """:func:`fit_model`, and the rows of ``frame`` whose scores the fit computed
    (:meth:`Detector.fit_scored`), so scoring ``frame`` need not score them again."""
    check_specs([spec], dict(frame.schema))
    det = build_detector(spec, index)
    need = det.min_rows()
    if frame.height < need:
        raise SluiceError(
            f"detector {spec.name!r}: {frame.height} rows to fit on; "
            f"{spec.detector_name} needs at least {need}"
        )
    fit_rows = det.effective_max_fit_rows
    rows = sample_indices(
        frame.height, None if fit_rows is None else fit_rows + CALIBRATION_ROWS, spec.seed
    )
    columns = frame.select([f.column for f in spec.feature_specs()])
    sample = columns if rows is None else columns[rows]
    prep = FeaturePreparer(spec.feature_specs())
    X = prep.fit_transform(sample)
    at, scores = det.fit_scored(X)
    model = FittedModel(spec.detector_name, spec_features(spec), prep, det, np.median(X, axis=0))
    positions = at if rows is None else rows[at]
    return model, KnownScores(positions, X[at], scores)


def _fit(
    spec: DetectorSpec, index: int, frame: pl.DataFrame, reference: pl.DataFrame | None
) -> tuple[FittedModel | None, dict[str, Any], KnownScores | None]:
    det = build_detector(spec, index)
    record: dict[str, Any] = {
        "name": spec.name,
        "detector": spec.detector_name,
        "class": _class_path(det),
        "params": json_safe(det.get_params()),
        "features": spec_features(spec),
        "seed": spec.seed,
        "severity": spec.severity,
        "false_flag_rate": det.false_flag_rate,
    }
    if spec.fit == "model" and spec.model is not None:
        model = load_model(spec.model, spec, expected_sha256=spec.model_sha256)
        record.update(
            fit_mode="model",
            model_path=str(spec.model),
            model_sha256=spec.model_sha256,
            params=json_safe(model.detector.get_params()),
            false_flag_rate=model.detector.false_flag_rate,
            model_provenance=json_safe(model.provenance),
        )
        return model, _fitted_record(record, model), None
    use_reference = spec.fit in ("auto", "reference") and reference is not None
    fit_frame = reference if use_reference and reference is not None else frame
    mode = "reference" if use_reference else "batch"
    if spec.fit == "reference" and reference is None:
        record["note"] = "fit: reference was asked for but no reference rows were given"
    record["fit_mode"] = mode
    need = det.min_rows()
    if fit_frame.height < need:
        record.update(
            skipped=True,
            reason=f"{fit_frame.height} {mode} rows to fit on; {spec.detector_name} needs {need}",
            n_fit=fit_frame.height,
            threshold=None,
        )
        return None, record, None
    try:
        model, known = fit_model_scored(fit_frame, spec, index=index)
    except FitRefused as exc:
        record.update(skipped=True, reason=str(exc), n_fit=fit_frame.height, threshold=None)
        return None, record, None
    record["model_sha256"] = None
    return model, _fitted_record(record, model), known if fit_frame is frame else None


def _fitted_record(record: dict[str, Any], model: FittedModel) -> dict[str, Any]:
    det = model.detector
    record.update(
        skipped=False,
        n_fit=det.n_fit_,
        threshold=det.threshold_,
        threshold_method=json_safe(det.calibration_),
        feature_preparation=model.preparer.summary(),
        explanation=explanation_method(det),
    )
    return record


def _chunk_scores(
    det: Detector, X: npt.NDArray[np.float64], start: int, known: KnownScores | None
) -> npt.NDArray[np.float64]:
    """Scores of the prepared rows ``X`` (frame rows from ``start``): the fit's where it scored
    the same prepared row, the detector's for the rest."""
    if known is None:
        return det.score(X)
    lo, hi = np.searchsorted(known.positions, [start, start + len(X)])
    local = known.positions[lo:hi] - start
    same = (X[local] == known.features[lo:hi]).all(axis=1)
    local = local[same]
    if not len(local):
        return det.score(X)
    s = np.empty(len(X), dtype=np.float64)
    s[local] = known.scores[lo:hi][same]
    rest = np.ones(len(X), dtype=bool)
    rest[local] = False
    if rest.any():
        s[rest] = det.score(X[rest])
    return s


def _score_spec(
    spec: DetectorSpec, fitted: FittedModel, frame: pl.DataFrame, known: KnownScores | None = None
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    det, prep = fitted.detector, fitted.preparer
    threshold = float(det.threshold_)
    score_parts: list[pl.DataFrame] = []
    failure_parts: list[pl.DataFrame] = []
    flagged_total = 0
    cols = ["_row_id", *(f.column for f in spec.feature_specs())]
    start = 0
    for chunk in frame.select(cols).iter_slices(SCORE_CHUNK_ROWS):
        X = prep.transform(chunk)
        s = _chunk_scores(det, X, start, known)
        start += chunk.height
        flag = s > threshold
        ids = chunk.get_column("_row_id")
        score_parts.append(
            pl.DataFrame(
                {
                    "_row_id": ids,
                    "detector": pl.repeat(spec.name, len(s), dtype=pl.String, eager=True),
                    "score": s,
                    "threshold": np.full(len(s), threshold),
                    "is_outlier": flag,
                },
                schema=SCORES_SCHEMA,
            )
        )
        if not flag.any():
            continue
        idx = np.flatnonzero(flag)
        flagged_total += len(idx)
        names, contrib = contributions(det, X[idx], s[idx], prep.sources_, fitted.typical)
        tops = top_features(names, contrib)
        details = [
            details_json({"score": float(s[i]), "threshold": threshold, "top_features": top})
            for i, top in zip(idx, tops, strict=True)
        ]
        failure_parts.append(
            make_failures(
                ids.gather(idx),
                column=OUTLIER_COLUMN,
                rule=spec.name,
                severity=spec.severity,
                values=[repr(float(s[i])) for i in idx],
                details=details,
            )
        )
    scores = pl.concat(score_parts) if score_parts else pl.DataFrame(schema=SCORES_SCHEMA)
    return scores, concat_failures(failure_parts), flagged_total


def screen(
    frame: pl.DataFrame,
    specs: Sequence[DetectorSpec],
    *,
    reference: pl.DataFrame | None = None,
) -> ScreenResult:
    """Screen the rows that passed validation with every detector spec.

    ``frame`` holds ``_row_id`` and the typed declared columns. ``reference``, when given, holds the
    same columns for rows known to be clean; specs with ``fit: auto`` or ``fit: reference`` fit on
    it. A spec with fewer fit rows than its detector needs is skipped (recorded in ``models``).
    """
    if "_row_id" not in frame.columns:
        raise ValueError("screen needs a frame with a _row_id column")
    check_specs(specs, dict(frame.schema))
    if reference is not None:
        try:
            check_specs(specs, dict(reference.schema))
        except ConfigError as exc:
            raise ConfigError(
                f"reference rows: {exc.problem}", key=exc.key, found=exc.found, allowed=exc.allowed
            ) from None
    scores: list[pl.DataFrame] = []
    failures: list[pl.DataFrame] = []
    models: list[dict[str, Any]] = []
    for i, spec in enumerate(specs):
        fitted, record, known = _fit(spec, i, frame, reference)
        if fitted is not None:
            s, f, n_flagged = _score_spec(spec, fitted, frame, known)
            scores.append(s)
            failures.append(f)
            record.update(
                n_scored=frame.height,
                n_flagged=n_flagged,
                expected_clean_flags=round(frame.height * float(record["false_flag_rate"]), 2),
            )
        models.append(record)
    return ScreenResult(
        failures=concat_failures(failures),
        scores=pl.concat(scores) if scores else pl.DataFrame(schema=SCORES_SCHEMA),
        models=models,
    )
