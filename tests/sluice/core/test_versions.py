"""The versions a run records: read once per process, the same for every run in it."""

from __future__ import annotations

from importlib import metadata

import pytest

from sluice.core import versions


def test_each_distribution_is_looked_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = metadata.version

    def counted(name: str) -> str:
        calls.append(name)
        return real(name)

    versions._installed.cache_clear()
    monkeypatch.setattr(metadata, "version", counted)
    try:
        first = versions.versions()
        assert versions.versions() == first
        assert sorted(calls) == sorted(versions.VERSIONED)
        assert first["polars"] == real("polars")
        assert versions.version("no-such-distribution-here") == "not installed"
    finally:
        versions._installed.cache_clear()
