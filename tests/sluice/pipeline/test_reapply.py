"""A partition screened again after a release: the recorded decisions are applied again to the
rows that are back in quarantine unchanged, and the ones that no longer apply are reported."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import polars as pl

from sluice.pipeline import run_partition
from sluice.pipeline.release import release_partition, review_partition
from sluice.review.audit import read_log
from tests.conftest import ROOT, SpecFactory, tiny_suite
from tests.test_e2e import sluice

DAY = "2024-01-01"
HEAD = "id,amount,count,when,kind\n"
FIRST = HEAD + "a,1,1,2024-01-01 10:00:00,a\nb,200,2,2024-01-01 11:00:00,a\n"
SECOND = HEAD + "d,300,4,2024-01-01 13:00:00,b\ne,2,5,2024-01-01 14:00:00,b\n"
_SHARE = {"warn": 0.05, "error": 0.9}
LENIENT = {
    "policies": {
        "quarantine": _SHARE,
        "per_rule": _SHARE,
        "stages": {"ingest": _SHARE, "validate": _SHARE, "screen": _SHARE},
    }
}


def _json(path: str | Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(path).read_text(encoding="utf-8"))
    return data


def _release_all(spec: Path, tmp_path: Path) -> dict[str, Any]:
    review, _ = review_partition(str(spec), DAY, tmp_path / "review.csv")
    frame = pl.read_csv(review, infer_schema=False)
    frame.with_columns(
        pl.lit("release").alias("decision"), pl.lit("a real big trip").alias("note")
    ).write_csv(review)
    return release_partition(str(spec), DAY, review, "alice")


def test_a_forced_run_applies_the_decisions_again_and_reports_those_that_no_longer_apply(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    spec = make_dataset({DAY: FIRST}, extra=LENIENT)
    folder = tmp_path / "raw" / f"date={DAY}"
    (folder / "second.csv").write_text(SECOND, encoding="utf-8")
    first = _json(run_partition(str(spec), DAY)["manifest"])
    held = pl.read_parquet(first["outputs"]["quarantine"]["path"])
    ids = dict(zip(held["id"].to_list(), held["_row_id"].to_list(), strict=True))
    assert set(ids) == {"b", "d"}
    released = _release_all(spec, tmp_path)
    assert released["released"] == 2
    log = Path(released["audit_log"])
    assert len(read_log(log)) == 2

    (folder / "second.csv").write_text(SECOND.replace("d,300", "d,301"), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = sluice("run", str(spec), "--partition", DAY, "--force", "--json", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    again = summary["reapplied"]
    assert again["applied"] == [ids["b"]]
    (skipped,) = again["not_applied"]
    assert (skipped["row_id"], skipped["decision"], skipped["by"]) == (ids["d"], "release", "alice")
    assert "no longer in the partition" in skipped["why"]
    assert f"row {ids['d']} by alice" in done.stderr
    assert "not applied again" in done.stderr

    after = _json(summary["manifest"])
    assert after["release"]["released"] == [ids["b"]]
    assert after["release"]["by"] == "alice"
    assert after["conservation"]["holds"] is True
    assert after["previous"]["run_id"] != released["run_id"], "a new run came in between"
    clean = pl.read_parquet(after["outputs"]["clean"]["path"])
    row = clean.filter(pl.col("_row_id") == ids["b"]).to_dicts()
    assert row[0]["_released_by"] == "alice"
    assert "a real big trip" in row[0]["_released_why"]
    quarantine = pl.read_parquet(after["outputs"]["quarantine"]["path"])
    assert quarantine["id"].to_list() == ["d"]
    assert summary["counts"] == after["counts"]
    entries = read_log(log)
    assert len(entries) == 3
    assert (entries[-1].row_id, entries[-1].outcome) == (ids["b"], "released")
    assert Path(again["decisions"]).is_file()


def test_a_run_of_a_partition_nobody_reviewed_applies_nothing(
    make_dataset: SpecFactory,
) -> None:
    spec = make_dataset({DAY: FIRST}, extra=LENIENT)
    summary = run_partition(str(spec), DAY)
    assert "reapplied" not in summary
    assert summary["counts"]["quarantine"] == 1


def test_decisions_that_a_changed_suite_or_spec_made_moot_are_reported(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    spec = make_dataset({DAY: FIRST}, extra=LENIENT)
    (tmp_path / "raw" / f"date={DAY}" / "second.csv").write_text(SECOND, encoding="utf-8")
    run_partition(str(spec), DAY)
    released = _release_all(spec, tmp_path)
    assert released["released"] == 2

    suite = tiny_suite()
    suite["expectations"][2]["kwargs"]["max_value"] = 250
    (tmp_path / "suite.json").write_text(json.dumps(suite), encoding="utf-8")
    text = spec.read_text(encoding="utf-8").replace("count: int", "count: float")
    assert text != spec.read_text(encoding="utf-8")
    spec.write_text(text, encoding="utf-8")
    summary = run_partition(str(spec), DAY)
    again = summary["reapplied"]
    assert again["applied"] == []
    assert again["release"] is None
    why = {s["row_id"]: s["why"] for s in again["not_applied"]}
    held = pl.read_parquet(_json(summary["manifest"])["outputs"]["quarantine"]["path"])
    (d,) = held["_row_id"].to_list()
    (b,) = set(why) - {d}
    assert why[b] == "the run put the row in clean on its own"
    assert why[d] == "its values changed since the decision (count)"
    assert len(read_log(Path(released["audit_log"]))) == 2, "nothing new decided"
