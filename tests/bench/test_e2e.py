"""bench.e2e's pieces that need no long run: the stage seconds it reads from a manifest."""

from __future__ import annotations

import json
from pathlib import Path

from bench.e2e import stage_seconds


def test_stage_seconds_come_from_the_manifest_in_stage_order(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    timings = {"report": 3.5, "write": 1.25, "ingest": 2.0, "screen": 0.5, "validate": 0.75}
    manifest.write_text(json.dumps({"timings_s": timings}))
    got = stage_seconds(manifest)
    assert list(got) == ["ingest", "validate", "screen", "write", "report"]
    assert got == timings


def test_a_missing_or_broken_manifest_gives_no_stages(tmp_path: Path) -> None:
    assert stage_seconds(tmp_path / "absent.json") == {}
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert stage_seconds(broken) == {}
