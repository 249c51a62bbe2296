"""The versions a run records, so a run can be reproduced years later."""

from __future__ import annotations

import platform
from functools import cache
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
    return _installed(name)


@cache
def _installed(name: str) -> str:
    """Looked up once per process (each look-up scans every installed distribution's metadata):
    the code a process runs is the code it imported, whatever is installed after it started."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions(names: tuple[str, ...] = VERSIONED) -> dict[str, str]:
    """Versions of Python and of ``names`` (sluice and its main dependencies by default)."""
    return {"python": platform.python_version(), **{n: version(n) for n in names}}
