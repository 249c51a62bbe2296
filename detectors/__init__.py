"""Screen: the detector registry, PyOD adapters, feature preparation and explanations.

Every detector scores rows with float64 numbers where higher means more abnormal.
"""

from detectors.base import Detector
from detectors.persist import FittedModel, save_model
from detectors.registry import available_detectors, get_detector
from detectors.screen import ScreenResult, check_specs, fit_model, screen

__all__ = [
    "Detector",
    "FittedModel",
    "ScreenResult",
    "available_detectors",
    "check_specs",
    "fit_model",
    "get_detector",
    "save_model",
    "screen",
]
