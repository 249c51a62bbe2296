"""Screen: the detector registry, PyOD adapters, feature preparation and explanations.

Every detector scores rows with float64 numbers where higher means more abnormal.
"""

from detectors.base import Detector
from detectors.registry import available_detectors, get_detector
from detectors.screen import ScreenResult, check_specs, screen

__all__ = [
    "Detector",
    "ScreenResult",
    "available_detectors",
    "check_specs",
    "get_detector",
    "screen",
]
