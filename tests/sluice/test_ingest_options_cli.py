"""Null tokens, aliases and ISO-8601 timestamps as a user meets them: through `sluice run`."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tests.conftest import SpecFactory, thin

DAY = "2024-01-01"
SCHEMA: dict[str, Any] = {
    "id": "string",
    "vendor_id": {"type": "int", "aliases": ["VendorID"]},
    "pickup": "datetime",
    "note": {"type": "string", "null_values": ["empty"]},
}
SUITE = {
    "name": "taxi",
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "note"}},
    ],
}


def sluice(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed ``sluice`` command, run to its end."""
    exe = str(Path(sys.executable).with_name("sluice"))
    return subprocess.run(
        [exe, *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.parametrize(
    ("column", "key", "says"),
    thin(
        [
            ({"type": "datetime", "format": "%Y-%m-%d %H:%M %Z"}, "schema.pickup.format", "%Z"),
            ({"type": "datetime", "aliases": ["_source_row"]}, "schema.pickup.aliases", "reserved"),
            ({"type": "datetime", "format": "%Y-%m-%d %Q"}, "schema.pickup.format", "%Q"),
        ]
    ),
)
def test_a_column_option_sluice_cannot_honour_stops_the_run(
    make_dataset: SpecFactory, column: dict[str, Any], key: str, says: str
) -> None:
    spec = make_dataset({DAY: "id\n1\n"}, schema={**SCHEMA, "pickup": column}, suite=SUITE)
    got = sluice("run", str(spec), "--partition", DAY)
    assert got.returncode == 2, got.stderr
    assert "Traceback" not in got.stderr
    assert f"{spec}:" in got.stderr
    assert key in got.stderr
    assert says in got.stderr
    assert not (spec.parent / "out").exists()


@pytest.mark.e2e
def test_run_reads_renamed_columns_null_tokens_and_offsets(
    prefect_api: None, make_dataset: SpecFactory
) -> None:
    import prefect.settings

    old = "id,vendor_id,pickup,note\na,1,2024-01-01T02:30:00-05:00,ok\nb,2,2024-01-01,empty\n"
    new = "id,VendorID,pickup,note,tip\nc,3,2024-01-01 09:00:00.25,ok,1\nd,4,01/01/2024,ok,2\n"
    spec = make_dataset({DAY: old}, schema=SCHEMA, suite=SUITE, extra={"keys": []})
    newer = spec.parent / "raw" / f"date={DAY}" / "later.csv"
    newer.write_text(new)
    env = {
        **os.environ,
        "PREFECT_API_URL": str(prefect.settings.PREFECT_API_URL.value()),
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    got = sluice("run", str(spec), "--partition", DAY, env=env)
    assert got.returncode == 0, got.stderr
    assert "4 rows in, 2 clean, 2 quarantined" in got.stdout
    folder = f"date={DAY}"
    manifest = json.loads((spec.parent / "out" / "reports" / folder / "manifest.json").read_text())
    assert manifest["schema"]["aliases"] == [
        {"file": str(newer), "column": "vendor_id", "alias": "VendorID"}
    ]
    assert manifest["schema"]["extra_columns"] == ["tip"]
    clean = pl.read_parquet(manifest["outputs"]["clean"]["path"]).sort("id")
    assert clean["vendor_id"].to_list() == [1, 3]
    assert clean["pickup"].to_list() == [
        dt.datetime(2024, 1, 1, 7, 30),
        dt.datetime(2024, 1, 1, 9, 0, 0, 250000),
    ]
    q = pl.read_parquet(manifest["outputs"]["quarantine"]["path"]).sort("id")
    assert q["_reasons"].to_list() == [
        ["note|expect_column_values_to_not_be_null"],
        ["pickup|type"],
    ]
    assert q["pickup"].to_list() == [dt.datetime(2024, 1, 1), None]
    assert q["note"].to_list() == [None, "ok"]
    assert [r["note"] for r in q["_raw"]] == ["empty", "ok"]
    assert [r["pickup"] for r in q["_raw"]] == ["2024-01-01", "01/01/2024"]
    assert [json.loads(e) for e in q["_extra"]] == [{"tip": None}, {"tip": "2"}]
