"""Values as plain JSON: what manifests, verdicts and failure details hold."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np


def is_json_number(value: Any) -> bool:
    """Whether a value read from JSON or YAML is a number: an int or a float, not NaN, and not
    a bool (``true`` reads as a bool, which Python counts as an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON types: numpy and temporal values converted, NaN as a string."""
    if value is None:
        return None
    pd = sys.modules.get("pandas")  # a pandas value exists only once pandas is imported
    if pd is not None and (value is pd.NaT or value is pd.NA):
        return None
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else str(value)
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | dt.timedelta):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return str(value)
