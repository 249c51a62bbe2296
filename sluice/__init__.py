"""sluice: data-quality and anomaly screening of tabular data.

The public API, for notebooks and scripts (docs/notebook.md): :func:`screen` gives sluice's
verdict on a frame, :func:`validate` is its strict twin raising :class:`ValidationFailed`.
Exports load on first use, so ``import sluice.core.errors`` stays cheap: no polars-heavy or
Great Expectations module is imported until one is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sluice.core.errors import SluiceError, ValidationFailed
    from sluice.screening import ScreenResult, screen, validate

    __version__: str

__all__ = ["ScreenResult", "SluiceError", "ValidationFailed", "__version__", "screen", "validate"]

_FROM = {
    "ScreenResult": "sluice.screening",
    "screen": "sluice.screening",
    "validate": "sluice.screening",
    "SluiceError": "sluice.core.errors",
    "ValidationFailed": "sluice.core.errors",
}


def __getattr__(name: str) -> Any:
    """The public API, imported on first use; ``__version__`` from the installed metadata."""
    if name == "__version__":
        from sluice.core.versions import version

        return version("sluice")
    if name in _FROM:
        import importlib

        return getattr(importlib.import_module(_FROM[name]), name)
    raise AttributeError(f"module 'sluice' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names, the lazy exports included."""
    return sorted({*globals(), *__all__})
