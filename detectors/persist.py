"""Saved models: a fitted feature preparation and detector in one versioned, hashed file.

A model file is a zip archive with ``meta.json`` (format version, detector, features, prepared
feature names, threshold and how it was set, library versions, the sha256 of the payload, and the
model's provenance:
for models made by ``sluice model``, the dataset, spec and the partitions and clean files it was
fitted on) and ``model.pkl`` (the pickled preparation and detector). A dataset spec that uses it
(``fit: model``) gives the file's sha256 in ``model_sha256``; loading refuses the file unless that
hash matches before anything is unpickled, then refuses a payload whose own hash, feature list,
detector or library versions differ from what the spec and this installation have.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import platform
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors.base import Detector, FloatArray
from detectors.features import FeaturePreparer
from detectors.spec import DetectorSpec
from sluice.core.errors import ConfigError
from sluice.core.files import config_error, iter_regular, read_regular, sha256_hex
from sluice.core.versions import version

FORMAT = "sluice-model/3"  # 3: thresholds from held-out scores (calibration_), no contamination
VERSIONED = ("numpy", "scipy", "scikit-learn", "pyod", "polars")
_FIXED_TIME = (2000, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class FittedModel:
    """A fitted preparation and detector with what they were fitted for."""

    detector_name: str
    features: list[dict[str, Any]]
    preparer: FeaturePreparer
    detector: Detector
    typical: FloatArray
    provenance: dict[str, Any] = field(default_factory=dict)


def library_versions() -> dict[str, str]:
    """Versions of the libraries a pickled model depends on, and Python's major.minor."""
    python = ".".join(platform.python_version_tuple()[:2])
    return {"python": python, **{dist: version(dist) for dist in VERSIONED}}


def spec_features(spec: DetectorSpec) -> list[dict[str, Any]]:
    """A spec's features as plain data (what a model file records and is checked against)."""
    return [f.model_dump(exclude_none=True) for f in spec.feature_specs()]


def save_model(model: FittedModel, path: Path | str) -> str:
    """Write ``model`` to ``path`` (atomically, byte-for-byte reproducible); return its sha256."""
    payload = pickle.dumps((model.preparer, model.detector, model.typical), protocol=5)
    meta = {
        "format": FORMAT,
        "detector": model.detector_name,
        "class": f"{type(model.detector).__module__}.{type(model.detector).__qualname__}",
        "features": model.features,
        "prepared_features": list(model.preparer.feature_names_),
        "threshold": float(model.detector.threshold_),
        "threshold_method": model.detector.calibration_,
        "n_fit": int(model.detector.n_fit_),
        "versions": library_versions(),
        "payload_sha256": sha256_hex(payload),
        "provenance": model.provenance,
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in (
            ("meta.json", json.dumps(meta, sort_keys=True, indent=1).encode()),
            ("model.pkl", payload),
        ):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(target)
    return sha256_hex(buf.getvalue())


def check_model_file(path: Path | str, expected_sha256: str | None, *, key: str) -> None:
    """Raise :class:`ConfigError` unless the file exists and its sha256 is ``expected_sha256``."""
    p = Path(path)
    digest = hashlib.sha256()
    try:
        for chunk in iter_regular(p, config_error(p, "saved model", key)):
            digest.update(chunk)
    except OSError as exc:
        raise ConfigError(f"cannot read saved model: {exc.strerror}", file=p, key=key) from None
    actual = digest.hexdigest()
    if expected_sha256 is None or actual != expected_sha256.lower():
        raise _refuse(
            "file hash does not match", p, key=key, found=actual, allowed=str(expected_sha256)
        )


def _refuse(problem: str, path: Path, *, key: str, found: object, allowed: str) -> ConfigError:
    return ConfigError(
        f"refusing saved model: {problem}", file=path, key=key, found=found, allowed=allowed
    )


def load_model(path: Path | str, spec: DetectorSpec, *, expected_sha256: str | None) -> FittedModel:
    """Load a saved model for ``spec`` after checking its hash, features and library versions."""
    p = Path(path)
    if expected_sha256 is None:
        raise ConfigError(
            "a saved model needs model_sha256 in the detector spec (nothing is unpickled "
            "without it)",
            key="model_sha256",
            file=p,
            allowed="the sha256 printed when the model was saved",
        )
    raw = read_regular(p, config_error(p, "saved model", "model"))
    actual = sha256_hex(raw)
    if actual != expected_sha256.lower():
        raise _refuse(
            "file hash does not match",
            p,
            key="model_sha256",
            found=actual,
            allowed=expected_sha256,
        )
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            meta = json.loads(zf.read("meta.json"))
            payload = zf.read("model.pkl")
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise _refuse("not a model file", p, key="model", found=str(exc), allowed=FORMAT) from None
    if meta.get("format") != FORMAT:
        raise _refuse(
            "unknown format (saved by another sluice version: refit and save it again)",
            p,
            key="format",
            found=meta.get("format"),
            allowed=FORMAT,
        )
    if sha256_hex(payload) != meta.get("payload_sha256"):
        raise _refuse(
            "payload hash does not match its header",
            p,
            key="payload_sha256",
            found=sha256_hex(payload),
            allowed=str(meta.get("payload_sha256")),
        )
    if meta.get("detector") != spec.detector_name:
        raise _refuse(
            "it holds another detector",
            p,
            key="detector",
            found=meta.get("detector"),
            allowed=spec.detector_name,
        )
    want = spec_features(spec)
    if meta.get("features") != want:
        raise _refuse(
            "its features differ from the spec's",
            p,
            key="features",
            found=meta.get("features"),
            allowed=json.dumps(want),
        )
    have = library_versions()
    diff = {
        k: (meta.get("versions", {}).get(k), v)
        for k, v in have.items()
        if meta.get("versions", {}).get(k) != v
    }
    if diff:
        raise _refuse(
            "it was saved with other library versions (refit and save it again)",
            p,
            key="versions",
            found={k: saved for k, (saved, _) in diff.items()},
            allowed=", ".join(f"{k} {now}" for k, (_, now) in diff.items()),
        )
    preparer, detector, typical = pickle.loads(payload)  # hash-checked against the spec above
    if not isinstance(preparer, FeaturePreparer) or not isinstance(detector, Detector):
        raise _refuse(
            "payload is not a preparation and a detector",
            p,
            key="model.pkl",
            found=type(detector).__name__,
            allowed="FeaturePreparer, Detector",
        )
    provenance = meta.get("provenance")
    return FittedModel(
        spec.detector_name,
        want,
        preparer,
        detector,
        typical,
        provenance if isinstance(provenance, dict) else {},
    )
