"""Releasing quarantined rows: a new commit that keeps row ids, proves conservation and logs.

One partition is screened and released once for the module (in-process, no Prefect); the tests
read what the release left.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml

from sluice.config import load_spec
from sluice.decide import add_checksums, checksum
from sluice.pipeline import reference_rows, run_partition
from sluice.pipeline.manifest import Manifest
from sluice.pipeline.release import (
    FIXED_FROM,
    RELEASED_AS,
    RELEASED_BY,
    release_partition,
    review_partition,
)
from sluice.review import StaleDecisions, row_decisions
from sluice.review.audit import overturned_flags
from sluice.write import load_partition

SCHEMA = {"id": "string", "x": "float", "y": "float", "code": "int"}
SUITE: dict[str, Any] = {
    "name": "xy",
    "expectations": [
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "x", "min_value": -50, "max_value": 50},
        },
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "code", "value_set": [1, 2]},
        },
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
    ],
}
DETECTORS = [
    {
        "name": "default",
        "detector": "knn",
        "features": ["x", "y"],
        "seed": 3,
        "severity": "error",
        "params": {"false_flag_rate": 0.01},
    }
]


def _day(seed: int, n: int = 400, extra: tuple[str, ...] = ()) -> str:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    y = x * 2 + rng.normal(0, 0.1, n)
    rows = [f"r{seed}-{i},{a:.4f},{b:.4f},1" for i, (a, b) in enumerate(zip(x, y, strict=True))]
    return "id,x,y,code\n" + "\n".join([*rows, *extra]) + "\n"


PLANTED = (
    "airport,4.5,-9.0,1",  # an outlier the reviewer says is real
    "vendor,0.5,1.0,7",  # a code the source corrected later: fixed to 1
    "unparsed,abc,0.2,1",  # x does not parse; fixed to 99, which breaks the x rule
    "dup,0.1,0.2,9",  # rejected
)


@dataclass(frozen=True)
class Released:
    spec: str
    before: dict[str, Any]
    before_bytes: bytes
    after: dict[str, Any]
    decisions: Path
    ids: dict[str, int]
    summary: dict[str, Any]
    clean_before: frozenset[int]


def _manifest(path: str | Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(path).read_text())
    return data


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Released:
    """Screen day 1, review it, release the outlier, fix two rows and reject one."""
    base = tmp_path_factory.mktemp("release")
    for part, text in {"2024-01-01": _day(1, extra=PLANTED), "2024-01-02": _day(2)}.items():
        folder = base / "raw" / f"date={part}"
        folder.mkdir(parents=True)
        (folder / "data.csv").write_text(text)
    (base / "suite.json").write_text(json.dumps(SUITE))
    spec_doc = {
        "name": "xy",
        "source": {"path": "raw/date={date}/*.csv", "format": "csv"},
        "partition": {"key": "date", "kind": "day"},
        "schema": SCHEMA,
        "keys": [],
        "suite": "suite.json",
        "detectors": DETECTORS,
        "reference": {"partitions": 2},
        "outputs": {"clean": "out/clean", "quarantine": "out/quarantine", "reports": "out/reports"},
    }
    spec = base / "xy.yaml"
    spec.write_text(yaml.safe_dump(spec_doc, sort_keys=False))
    first = run_partition(str(spec), "2024-01-01")
    before_bytes = Path(first["manifest"]).read_bytes()
    before = _manifest(first["manifest"])
    clean_before = frozenset(_frame(before, "clean")["_row_id"].to_list())
    review, _ = review_partition(str(spec), "2024-01-01", base / "review.csv")
    frame = pl.read_csv(review, infer_schema=False)
    ids = {r["id"]: int(r["_row_id"]) for r in frame.iter_rows(named=True) if r["id"]}
    assert {"airport", "vendor", "unparsed", "dup"} <= set(ids), frame["id"].to_list()
    decided = frame.with_columns(
        pl.when(pl.col("id") == "airport")
        .then(pl.lit("release"))
        .when(pl.col("id").is_in(["vendor", "unparsed"]))
        .then(pl.lit("fix"))
        .when(pl.col("id") == "dup")
        .then(pl.lit("reject"))
        .otherwise(None)
        .alias("decision"),
        pl.when(pl.col("id") == "vendor").then(pl.lit("1")).otherwise(pl.col("code")).alias("code"),
        pl.when(pl.col("id") == "unparsed").then(pl.lit("99")).otherwise(pl.col("x")).alias("x"),
        pl.when(pl.col("id") == "airport")
        .then(pl.lit("a real airport trip"))
        .otherwise(pl.lit("checked"))
        .alias("note"),
    )
    decisions = base / "decisions.csv"
    decided.write_csv(decisions)
    summary = release_partition(str(spec), "2024-01-01", decisions, "alice")
    return Released(
        str(spec),
        before,
        before_bytes,
        _manifest(summary["manifest"]),
        decisions,
        ids,
        summary,
        clean_before,
    )


def _frame(manifest: dict[str, Any], side: str) -> pl.DataFrame:
    return pl.read_parquet(manifest["outputs"][side]["path"])


def test_released_and_fixed_rows_move_to_clean_with_their_ids(released: Released) -> None:
    ids = released.ids
    clean = _frame(released.after, "clean")
    quarantine = _frame(released.after, "quarantine")
    gained = set(clean["_row_id"].to_list()) - released.clean_before
    assert gained == {ids["airport"], ids["vendor"]}
    assert not gained & set(quarantine["_row_id"].to_list())
    rows = {r["_row_id"]: r for r in clean.filter(pl.col("_row_id").is_in(list(gained))).to_dicts()}
    assert rows[ids["airport"]][RELEASED_AS] == "release"
    assert rows[ids["airport"]]["_released_why"] == "a real airport trip"
    assert rows[ids["airport"]][FIXED_FROM] is None
    assert rows[ids["vendor"]][RELEASED_AS] == "fix"
    assert rows[ids["vendor"]]["code"] == 1
    assert json.loads(rows[ids["vendor"]][FIXED_FROM]) == {"code": "7"}
    assert {r[RELEASED_BY] for r in rows.values()} == {"alice"}
    untouched = clean.filter(~pl.col("_row_id").is_in(list(gained)))
    assert untouched[RELEASED_BY].null_count() == untouched.height
    from sluice.audit.lookup import audit_row

    reports = Path(released.after["outputs"]["report"]["path"]).parents[1]
    for rid, row in rows.items():
        source = audit_row(reports, "xy", rid).source
        assert (row["_source_file"], row["_source_row"]) == (source["file"], source["row"])


def test_a_fixed_row_that_still_fails_stays_with_its_new_reason(released: Released) -> None:
    quarantine = _frame(released.after, "quarantine")
    row = quarantine.filter(pl.col("_row_id") == released.ids["unparsed"]).to_dicts()
    assert len(row) == 1
    assert row[0]["_reasons"] == ["x|expect_column_values_to_be_between"]
    assert row[0]["x"] == 99.0
    assert row[0]["_raw"]["x"] == "abc", "the raw text as read is kept"
    assert released.after["release"]["still_failing"] == [released.ids["unparsed"]]
    rejected = quarantine.filter(pl.col("_row_id") == released.ids["dup"])
    assert rejected["_reasons"].to_list() == [["code|expect_column_values_to_be_in_set"]]


def test_the_new_manifest_proves_conservation_and_names_the_previous(released: Released) -> None:
    after, before = released.after, released.before
    Manifest.model_validate(after)
    committed = load_partition(Path(released.summary["manifest"]))
    assert set(committed.files) >= {"report", "decisions"}
    c, s = after["counts"], after["checksums"]
    assert c["in"] == before["counts"]["in"] == c["clean"] + c["quarantine"]
    assert c["clean"] == before["counts"]["clean"] + 2
    assert s["in"] == add_checksums(s["clean"], s["quarantine"])
    assert s["clean"] == checksum(_frame(after, "clean")["_row_id"])
    assert after["conservation"]["holds"] is True
    prev = Path(after["previous"]["path"])
    assert prev.read_bytes() == released.before_bytes
    assert Manifest.model_validate(json.loads(prev.read_bytes())).run_id == before["run_id"]
    assert after["previous"]["run_id"] == before["run_id"]
    assert after["release"]["suite_sha256"] == before["suite"]["sha256"]  # the suite is unchanged
    assert "outlier|default" not in after["counts"]["quarantined_by_reason"] or (
        after["counts"]["quarantined_by_reason"]["outlier|default"]
        == before["counts"]["quarantined_by_reason"]["outlier|default"] - 1
    )


def test_one_audit_entry_per_decision_and_row_history(released: Released) -> None:
    log = Path(released.after["release"]["audit_log"])
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert sorted(e["row_id"] for e in lines) == sorted(
        released.ids[k] for k in ("airport", "vendor", "unparsed", "dup")
    )
    outcomes = {e["row_id"]: e["outcome"] for e in lines}
    assert outcomes[released.ids["vendor"]] == "fixed"
    assert outcomes[released.ids["unparsed"]] == "still_quarantined"
    assert outcomes[released.ids["dup"]] == "rejected"
    history = row_decisions(released.spec, released.ids["vendor"])
    assert [h.decision for h in history] == ["fix"]
    assert history[0].fixed == {"code": ["7", "1"]}
    assert history[0].before.reasons == ["code|expect_column_values_to_be_in_set"]
    assert history[0].by == "alice"
    flags = overturned_flags(Path(log).parents[2])
    assert flags.filter(pl.col("detector") == "default")["overturned"].to_list() == [1]


def test_the_report_has_a_released_section(released: Released) -> None:
    text = Path(released.after["outputs"]["report"]["path"]).read_text()
    assert 'id="released-rows"' in text
    assert 'id="overturned"' in text
    assert str(released.ids["airport"]) in text


def test_a_second_identical_release_changes_nothing(released: Released) -> None:
    manifest = Path(released.summary["manifest"])
    before = manifest.read_bytes()
    again = release_partition(released.spec, "2024-01-01", released.decisions, "alice")
    assert again["applied_already"] is True
    assert manifest.read_bytes() == before
    log = Path(released.after["release"]["audit_log"])
    assert len(log.read_text().splitlines()) == 4


def test_audit_entries_a_crash_kept_out_of_the_log_are_appended(released: Released) -> None:
    log = Path(released.after["release"]["audit_log"])
    kept = log.read_bytes()
    log.write_bytes(b"")
    try:
        again = release_partition(released.spec, "2024-01-01", released.decisions, "alice")
        assert again["applied_already"] is True
        assert log.read_bytes() == kept
    finally:
        log.write_bytes(kept)


def test_a_decision_file_made_from_an_older_commit_is_refused(
    released: Released, tmp_path: Path
) -> None:
    stale = pl.read_csv(released.decisions, infer_schema=False).with_columns(
        pl.when(pl.col("id") == "dup").then(pl.lit("fix")).otherwise(None).alias("decision"),
        pl.when(pl.col("id") == "dup").then(pl.lit("2")).otherwise(pl.col("code")).alias("code"),
    )
    path = tmp_path / "stale.csv"
    stale.write_csv(path)
    with pytest.raises(StaleDecisions, match="another commit"):
        release_partition(released.spec, "2024-01-01", path, "bob")


def test_the_next_partition_learns_from_released_rows(released: Released) -> None:
    loaded = load_spec(released.spec)
    part = loaded.spec.partition.parse("2024-01-02")
    rows, used = reference_rows(loaded, part, ["x", "y"])
    assert rows is not None
    assert released.ids["airport"] in rows["_row_id"].to_list()
    assert used[0]["sha256"] == released.after["outputs"]["clean"]["sha256"]


def test_the_next_run_reports_flags_overturned_over_time(released: Released) -> None:
    summary = run_partition(released.spec, "2024-01-02")
    manifest = _manifest(summary["manifest"])
    load_partition(Path(summary["manifest"]))  # every file is the one the manifest names
    assert (
        manifest["screen"]["reference"][0]["sha256"]
        == (released.after["outputs"]["clean"]["sha256"])
    )
    assert manifest["screen"]["reference"][0]["rows"] == released.after["counts"]["clean"]
    text = Path(manifest["outputs"]["report"]["path"]).read_text()
    assert 'id="overturned"' in text
    assert 'id="released-rows"' not in text, "this run released nothing"
    row = text[text.index('id="overturned"') :]
    assert '<tr><td>2024-01-01</td><td><code>default</code></td><td class="num">1</td></tr>' in (
        row.replace("\n", "")
    )


def test_sluice_audit_answers_with_every_decision_about_the_row(released: Released) -> None:
    from sluice.audit.lookup import audit_row

    reports = Path(released.after["outputs"]["report"]["path"]).parents[1]
    fixed = audit_row(reports, "xy", released.ids["vendor"])
    assert fixed.where == "clean"
    assert [d["decision"] for d in fixed.decisions] == ["fix"]
    assert fixed.decisions[0]["by"] == "alice"
    assert fixed.decisions[0]["fixed"] == {"code": ["7", "1"]}
    held = audit_row(reports, "xy", released.ids["dup"])
    assert held.where == "quarantine"
    assert [(d["decision"], d["outcome"]) for d in held.decisions] == [("reject", "rejected")]
    untouched = next(i for i in released.clean_before if i not in released.ids.values())
    assert audit_row(reports, "xy", untouched).decisions == []
