"""Fixtures of the pipeline tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def tiny_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounded runs read and write batches of 7 rows."""
    monkeypatch.setenv("SLUICE_BATCH_ROWS", "7")
