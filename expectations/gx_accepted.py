"""Expectation arguments GX has accepted, remembered so that a later run need not import GX.

The suite loader validates each GX expectation's arguments by building GX's own expectation
(which imports GX: seconds, tens of seconds on a busy machine). GX's answer depends only on its
version, the type and the arguments, so an accepted ``(type, kwargs)`` is remembered as an empty
file named by the sha256 of its canonical JSON under ``<cache>/gx-accepted/<GX version>/``, and
the next load of the same entry skips GX. Only acceptance is remembered: a refused entry is
checked by GX every time, so its error message stays GX's. The cache is
``SLUICE_CACHE_DIR`` when set (``off`` disables it), else ``$XDG_CACHE_HOME/sluice`` or
``~/.cache/sluice``; a cache that cannot be read or written is ignored.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from expectations.gx_catalog import gx_version
from sluice.core.files import sha256_hex

CACHE_ENV = "SLUICE_CACHE_DIR"


def cache_dir() -> Path | None:
    """Where accepted entries of the installed GX are remembered; None when disabled."""
    text = os.environ.get(CACHE_ENV, "").strip()
    if text.lower() == "off":
        return None
    if text:
        base = Path(text).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "sluice"
    return base / "gx-accepted" / gx_version()


def _key(type_name: str, kwargs: dict[str, Any]) -> str | None:
    try:
        text = json.dumps({"type": type_name, "kwargs": kwargs}, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        return None
    return sha256_hex(text.encode("utf-8"))


def accepted(type_name: str, kwargs: dict[str, Any]) -> bool:
    """Whether GX of this version accepted exactly these arguments before."""
    folder, key = cache_dir(), _key(type_name, kwargs)
    if folder is None or key is None:
        return False
    try:
        return (folder / key).is_file()
    except OSError:
        return False


def remember(type_name: str, kwargs: dict[str, Any]) -> None:
    """Record that GX accepted these arguments (best effort; never raises)."""
    folder, key = cache_dir(), _key(type_name, kwargs)
    if folder is None or key is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        os.close(fd)
        os.replace(tmp, folder / key)
    except OSError:
        return
