"""The versions a run records, so a run can be reproduced years later."""

from __future__ import annotations

import platform
from importlib import metadata

VERSIONED = (
    "sluice",
    "polars",
    "pyarrow",
    "pandas",
    "numpy",
    "scipy",
    "great-expectations",
    "pyod",
    "scikit-learn",
    "prefect",
)


def version(name: str = "sluice") -> str:
    """The installed version of a distribution, or ``"not installed"``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions(names: tuple[str, ...] = VERSIONED) -> dict[str, str]:
    """Versions of Python and of ``names`` (sluice and its main dependencies by default)."""
    return {"python": platform.python_version(), **{n: version(n) for n in names}}
