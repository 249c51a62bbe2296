"""How the detectors' kernels are compiled."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba


def compiled(fn: Callable[..., Any]) -> Any:
    """``numba.njit`` keeping compiled code on disk when numba finds a writable cache folder (beside
    the source file or in the user's cache); without one (a read-only install, no home folder) it
    compiles once per process instead of failing at import."""
    try:
        return numba.njit(nogil=True, cache=True, boundscheck=False)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(nogil=True, boundscheck=False)(fn)
