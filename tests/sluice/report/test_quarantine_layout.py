"""The report reads the quarantine's typed columns and its raw text, from new and older files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl

from sluice.pipeline import run_partition
from sluice.report.metrics import load_outputs, profiles, quarantine_text, rule_summaries
from tests.conftest import SpecFactory

SCHEMA = {
    "id": "string",
    "amount": {"type": "float", "null_values": ["N/A"]},
    "count": "int",
    "when": "datetime",
    "kind": "string",
}
CSV = (
    "id,amount,count,when,kind\n"
    "a,1.5,1,2024-01-01T10:00:00+01:00,a\n"
    "b,N/A,2,2024-01-01 11:00:00,b\n"
    "c,abc,3,2024-01-01 12:00:00,a\n"
    "d,900,4,2024-01-01T13:00:00Z,b\n"
    "e,2.5,5,2024-01-01,a\n"
)


def test_profiles_and_examples_from_a_typed_quarantine(make_dataset: SpecFactory) -> None:
    spec = make_dataset({"2024-01-01": CSV}, schema=SCHEMA)
    manifest = json.loads(Path(run_partition(str(spec), "2024-01-01")["manifest"]).read_text())
    out = load_outputs(manifest, Path(manifest["outputs"]["report"]["path"]).parent)
    assert sorted(out.quarantine["id"].to_list()) == ["b", "c", "d"]
    cols = {c.name: c for c in profiles(out)}
    # "N/A" (a null token of amount, quarantined as not null) is missing; "abc" is unparsed
    assert cols["amount"].missing == 1
    assert cols["amount"].unparsed == 1
    assert cols["when"].unparsed == 0
    rules = {r.reason: r for r in rule_summaries(out)}
    (example,) = rules["amount|expect_column_values_to_be_between"].examples
    assert example.raw["when"] == "2024-01-01T13:00:00Z"
    assert example.raw["amount"] == "900"
    q = out.quarantine.sort("id")
    assert q["when"].to_list()[-1] == dt.datetime(2024, 1, 1, 13)
    # the failures come from failures.parquet: the quarantine's heaviest column stays on disk
    written = pl.read_parquet_schema(manifest["outputs"]["quarantine"]["path"])
    assert set(written) - set(out.quarantine.columns) == {"_failures", "_extra"}


def test_quarantine_text_reads_older_files_that_held_text_in_the_columns() -> None:
    old = pl.DataFrame({"_row_id": [1], "amount": ["12.5O"], "kind": ["a"]})
    assert quarantine_text(old, ["amount", "kind", "gone"]).rows() == [(1, "12.5O", "a")]
    new = pl.DataFrame({"_row_id": [1], "amount": [None], "_raw": [{"amount": "12.5O"}]})
    assert quarantine_text(new, ["amount", "gone"]).rows() == [(1, "12.5O")]
