"""The registered detectors, declared here and nowhere else, by import path.

To add a detector: write a :class:`detectors.base.Detector` subclass and add one line below. The
contract test (tests/detectors/test_contract.py) covers every entry automatically.

``default`` is what a dataset gets when its detector spec names none. It was chosen by measurement:
the highest mean ROC-AUC over three seeds on the ten ADBench sets in the shared sample, among the
single detectors and the ensembles in ``bench.detect.CANDIDATES`` (``python -m bench.detect
--candidates --seeds 3 --no-synthetic``; numbers in bench/README.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from detectors.base import Detector
from detectors.pyod_adapters import import_path
from sluice.core.errors import ConfigError


@dataclass(frozen=True)
class Entry:
    """A registered detector: the class by import path and the parameters it is preset with."""

    class_path: str
    summary: str
    params: Mapping[str, Any] = field(default_factory=dict)


REGISTRY: Mapping[str, Entry] = MappingProxyType(
    {
        "iforest": Entry("detectors.pyod_adapters:IForest", "isolation forest (PyOD)"),
        "hbos": Entry("detectors.pyod_adapters:HBOS", "histogram-based outlier score (PyOD)"),
        "ecod": Entry("detectors.ecdf:ECOD", "empirical-CDF tails, fast inductive scoring"),
        "copod": Entry("detectors.ecdf:COPOD", "copula tails, fast inductive scoring"),
        "pca": Entry("detectors.pyod_adapters:PCA", "principal-component reconstruction (PyOD)"),
        "loda": Entry("detectors.pyod_adapters:LODA", "random projections and histograms (PyOD)"),
        "knn": Entry("detectors.pyod_adapters:KNN", "k-th neighbour distance on a sample (PyOD)"),
        "lof": Entry("detectors.pyod_adapters:LOF", "local outlier factor on a sample (PyOD)"),
        "ensemble": Entry("detectors.ensemble:Ensemble", "mean of standardised member scores"),
        "default": Entry(
            "detectors.pyod_adapters:IForest",
            "the configuration used when a dataset names none: isolation forest, 300 trees",
            {"n_estimators": 300},
        ),
    }
)


def available_detectors() -> list[str]:
    """Names of the registered detectors, sorted."""
    return sorted(REGISTRY)


def detector_class(name: str) -> type[Detector]:
    """The class of a registered detector; :class:`ConfigError` for an unknown name."""
    entry = REGISTRY.get(name)
    if entry is None:
        raise ConfigError(
            "unknown detector",
            key="detector",
            found=name,
            allowed=", ".join(available_detectors()),
        )
    cls = import_path(entry.class_path)
    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        raise TypeError(f"registry entry {name!r} ({entry.class_path}) is not a Detector")
    return cls


def check_detector(name: str, params: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` unless ``name`` is registered and ``params`` suit it."""
    cls = detector_class(name)
    cls.check_params({**REGISTRY[name].params, **params}, detector=name)


def get_detector(name: str, **params: Any) -> Detector:
    """A new, unfitted detector: the registry entry's preset parameters updated with ``params``."""
    check_detector(name, params)
    cls = detector_class(name)
    return cls(**{**REGISTRY[name].params, **params})
