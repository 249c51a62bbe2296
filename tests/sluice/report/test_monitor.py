"""Monitoring against a named baseline over partitions with a planted gradual shift.

Twenty-four monthly partitions go through the report functions the pipeline calls
(:func:`sluice.report.build.compose`, then the clean file, a manifest naming its sha256 and the
metrics are committed as a run does). The first six make baseline ``training``; from month 6 on
``fare`` and ``distance`` grow by 2% a month until they are 30% higher (month 20), then stay
there. Against the baseline the alarm starts when the shift crosses the drift threshold and stays
on; the rolling window, which moves with the data, never sees a shift. An acknowledgement quiets
the alarm until another column (``payment``, from month 22) drifts too.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from sluice.config import MonitorSpec, Partition
from sluice.core.failures import make_failures
from sluice.core.files import file_sha256
from sluice.report.baseline import (
    BaselineError,
    acknowledge,
    acknowledgements,
    list_baselines,
    load_baseline,
    save_baseline,
)
from sluice.report.build import Report, compose
from sluice.report.history import METRICS_NAME, append_history, load_history
from sluice.report.metrics import RunOutputs
from sluice.report.monitor import (
    MonitorPlan,
    change_points,
    classifier_test,
    last_drifted,
    level_shifts,
)
from sluice.write import MANIFEST_NAME, PARQUET_NAME

MONTHS = [Partition(dt.date(2020 + i // 12, i % 12 + 1, 1), "month", "month") for i in range(24)]
BASE = 6
ACK_AT = 18
PAYMENT_AT = 22
ROWS = 1_500


def scale(i: int) -> float:
    """The planted shift: none for the baseline months, then 2% a month up to 30%."""
    return 1.0 + min(max(i - BASE + 1, 0) * 0.02, 0.30) if i >= BASE else 1.0


def outputs(i: int, part: Partition) -> RunOutputs:
    """Month ``i``'s outputs: nothing quarantined, fares and distances scaled by ``scale(i)``."""
    rng = np.random.default_rng(500 + i)
    card = 0.45 if i >= PAYMENT_AT else 0.7
    frame = pl.DataFrame(
        {
            "_row_id": pl.Series(np.arange(ROWS), dtype=pl.UInt64),
            "fare": rng.gamma(4.0, 4.0, ROWS) * scale(i),
            "distance": rng.gamma(2.0, 1.5, ROWS) * scale(i),
            "payment": rng.choice(["card", "cash"], ROWS, p=[card, 1 - card]).tolist(),
            "passengers": rng.integers(1, 5, ROWS),
        }
    )
    empty = frame.head(0).select(
        "_row_id",
        pl.lit("t.csv").alias("_source_file"),
        pl.col("_row_id").alias("_source_row"),
        pl.lit("").alias("_reasons"),
    )
    return RunOutputs(
        manifest={
            "dataset": "trips",
            "run_id": f"run-{i}",
            "finished_at": "",
            "counts": {"in": ROWS, "clean": ROWS, "quarantine": 0},
            "detectors": [],
        },
        partition=part,
        clean=frame,
        quarantine=empty,
        failures=make_failures(empty["_row_id"], column="fare", rule="r", severity="error"),
        scores=None,
    )


def commit(root: Path, report: Report) -> None:
    """Commit a month as a run does: clean file, a manifest naming its sha256, the metrics."""
    part = report.outputs.partition
    clean = root / "clean" / part.dirname
    clean.mkdir(parents=True)
    report.outputs.clean.write_parquet(clean / PARQUET_NAME)
    folder = root / "reports" / part.dirname
    folder.mkdir(parents=True)
    path = clean / PARQUET_NAME
    manifest = {"outputs": {"clean": {"path": str(path), "sha256": file_sha256(path)}}}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    report.metrics.write_parquet(folder / METRICS_NAME)
    append_history(folder)


@dataclass
class Screened:
    """Every month's report, against the rolling window and against baseline ``training``."""

    root: Path
    reports: list[Report]
    ack: dict[str, Any]


def plan(root: Path) -> MonitorPlan:
    """The monitoring plan a run of this dataset makes: baseline ``training``, its acks."""
    reports = root / "reports"
    spec = MonitorSpec.model_validate({"baselines": ["training"]})
    got = load_baseline(reports, "training")
    assert got is not None
    return MonitorPlan(
        [got],
        {"training": acknowledgements(reports, "training")},
        spec.drift_share,
        spec.classifier_auc,
    )


@pytest.fixture(scope="module")
def screened(tmp_path_factory: pytest.TempPathFactory) -> Screened:
    """Screen the months in order; save the baseline after month 5; acknowledge after month 16."""
    root = tmp_path_factory.mktemp("monitor")
    reports: list[Report] = []
    ack: dict[str, Any] = {}
    for i, part in enumerate(MONTHS):
        monitor = plan(root) if i >= BASE else None
        out = outputs(i, part)
        report = compose(
            out, reports_root=root / "reports", clean_root=root / "clean", monitor=monitor
        )
        commit(root, report)
        reports.append(report)
        if i == BASE - 1:
            save_baseline(
                root / "reports",
                dataset="trips",
                name="training",
                partitions=MONTHS[:BASE],
                now=dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
            )
        if i == ACK_AT:
            last, columns, clf = last_drifted(load_history(root / "reports"), "training")
            ack = acknowledge(
                root / "reports",
                "training",
                by="ana",
                reason="fares rose with the new tariff",
                columns=columns,
                classifier=clf,
                partition=last,
                now=dt.datetime(2021, 6, 1, tzinfo=dt.UTC),
            )
    return Screened(root, reports, ack)


def status(r: Report) -> str:
    """The run's status against baseline ``training``."""
    (c,) = r.monitoring
    return c.status


def test_alarm_starts_when_the_shift_crosses_and_stays_on(screened: Screened) -> None:
    checks = [r.monitoring[0] for r in screened.reports[BASE : ACK_AT + 1]]
    states = [c.status for c in checks]
    first = states.index("alarm")
    # 2% a month: the first months of the shift stay within the thresholds
    assert first >= 2, states
    assert states[first:] == ["alarm"] * len(states[first:]), states
    assert set(states[:first]) == {"ok"}, states
    before, crossed = checks[first - 1], checks[first]
    assert before.share is not None
    assert before.share < before.share_threshold
    assert before.classifier is not None
    assert not before.classifier.alarm
    assert crossed.share is not None
    assert crossed.share >= crossed.share_threshold
    assert "fare" in [d.column for d in crossed.drifted]
    assert crossed.causes
    assert "columns drifted" in crossed.causes[0]


def test_rolling_window_never_sees_the_gradual_shift(screened: Screened) -> None:
    rolling = [
        [d.column for d in r.drift if d.drifted and d.column in ("fare", "distance")]
        for r in screened.reports[BASE:]
    ]
    assert rolling == [[]] * len(rolling), rolling
    pinned = [r.monitoring[0] for r in screened.reports[-3:]]
    assert all({"fare", "distance"} <= {d.column for d in c.drifted} for c in pinned)


def test_the_classifier_tells_the_shifted_months_from_the_baseline(screened: Screened) -> None:
    aucs = [r.monitoring[0].classifier for r in screened.reports[BASE:]]
    assert all(c is not None and c.auc is not None for c in aucs)
    first, last = aucs[0], aucs[-1]
    assert first is not None
    assert last is not None
    assert first.auc is not None
    assert last.auc
    assert first.auc < 0.6 < last.auc


def test_acknowledging_stops_the_alarm_and_is_recorded(screened: Screened) -> None:
    assert screened.ack["by"] == "ana"
    assert screened.ack["reason"] == "fares rose with the new tariff"
    assert screened.ack["partition"] == str(MONTHS[ACK_AT])
    assert "fare" in screened.ack["columns"]
    assert acknowledgements(screened.root / "reports", "training") == [screened.ack]
    after = [status(r) for r in screened.reports[ACK_AT + 1 : PAYMENT_AT]]
    assert after == ["acknowledged"] * len(after), after
    acked = screened.reports[ACK_AT + 1].monitoring[0]
    assert acked.acknowledged == [screened.ack]
    assert acked.as_dict()["acknowledged"][0]["by"] == "ana"


def test_a_column_not_acknowledged_alarms_again(screened: Screened) -> None:
    late = [r.monitoring[0] for r in screened.reports[PAYMENT_AT:]]
    assert [c.status for c in late] == ["alarm"] * len(late)
    assert all("payment" in [d.column for d in c.drifted] for c in late)


def test_saving_again_makes_a_new_version_that_starts_afresh(screened: Screened) -> None:
    reports = screened.root / "reports"
    newer, left = save_baseline(
        reports, dataset="trips", name="training", partitions=MONTHS[18:21] + MONTHS[30:31]
    )
    assert newer.version == 2
    assert left == []  # MONTHS has 24 entries: the slice past its end adds nothing
    got = load_baseline(reports, "training")
    assert got is not None
    assert got.version == 2
    assert [p["partition"] for p in got.partitions] == ["2021-07", "2021-08", "2021-09"]
    v1 = load_baseline(reports, "training", 1)
    assert v1 is not None
    assert len(v1.partitions) == BASE
    assert [b.name for b in list_baselines(reports)] == ["training"]
    assert got.reference_text(MONTHS[23]).startswith(
        "baseline training v2: 3 partitions, 2021-07 to 2021-09, 3 to 5 months before"
    )


def test_history_holds_the_drift_share_and_alarm(screened: Screened) -> None:
    h = load_history(screened.root / "reports").filter(pl.col("scope") == "baseline")
    shares = h.filter(pl.col("metric") == "drift_share").sort("partition_start")
    assert shares.height == len(MONTHS) - BASE
    assert shares["value"][-1] == screened.reports[-1].monitoring[0].share
    cols = load_history(screened.root / "reports").filter(pl.col("scope") == "baseline_column")
    assert set(cols["name"].unique()) >= {"training|fare", "training|payment"}


def test_baseline_refuses_partitions_without_verified_clean_output(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="no partition of trips from 2020-01 to 2020-02"):
        save_baseline(tmp_path, dataset="trips", name="b", partitions=MONTHS[:2])
    with pytest.raises(BaselineError, match="not allowed"):
        save_baseline(tmp_path, dataset="trips", name="../x", partitions=MONTHS[:2])


def test_a_changed_clean_file_is_left_out(tmp_path: Path) -> None:
    for i in range(3):
        out = outputs(i, MONTHS[i])
        commit(
            tmp_path, compose(out, reports_root=tmp_path / "reports", clean_root=tmp_path / "clean")
        )
    target = tmp_path / "clean" / MONTHS[1].dirname / PARQUET_NAME
    outputs(9, MONTHS[1]).clean.write_parquet(target)
    saved, left = save_baseline(
        tmp_path / "reports", dataset="trips", name="b", partitions=MONTHS[:3]
    )
    assert [p["partition"] for p in saved.partitions] == ["2020-01", "2020-03"]
    assert len(left) == 1
    assert left[0].startswith("2020-02 (clean output not verified: ")


def test_a_tampered_sample_is_refused(screened: Screened, tmp_path: Path) -> None:
    reports = screened.root / "reports"
    folder = reports / "_baselines" / "training" / "v1"
    copy = tmp_path / "_baselines" / "training" / "v1"
    copy.mkdir(parents=True)
    for f in folder.iterdir():
        copy.joinpath(f.name).write_bytes(f.read_bytes())
    pl.DataFrame({"fare": [1.0]}).write_parquet(copy / "sample.parquet")
    with pytest.raises(BaselineError, match="does not verify"):
        load_baseline(tmp_path, "training")


def test_acknowledgement_needs_who_and_why(screened: Screened) -> None:
    reports = screened.root / "reports"
    with pytest.raises(BaselineError, match="who"):
        acknowledge(
            reports, "training", by=" ", reason="x", columns=[], classifier=False, partition=None
        )
    with pytest.raises(BaselineError, match="no baseline named"):
        acknowledge(
            reports, "nope", by="a", reason="x", columns=[], classifier=False, partition=None
        )


def test_classifier_is_half_for_the_same_distribution() -> None:
    rng = np.random.default_rng(1)
    a = pl.DataFrame({"x": rng.normal(size=2000), "c": rng.choice(["a", "b"], 2000).tolist()})
    b = pl.DataFrame({"x": rng.normal(size=2000), "c": rng.choice(["a", "b"], 2000).tolist()})
    same = classifier_test(a, b, ["x", "c"], 0.7)
    assert same.auc is not None
    assert abs(same.auc - 0.5) < 0.05
    assert not same.alarm
    moved = b.with_columns(pl.col("x") + 1.0)
    shifted = classifier_test(a, moved, ["x", "c"], 0.7)
    assert shifted.auc is not None
    assert shifted.auc > 0.7
    assert shifted.alarm
    assert classifier_test(a, b, ["x"], None).auc is None


def test_level_shift_found_where_it_is() -> None:
    rng = np.random.default_rng(3)
    x = np.r_[rng.normal(0.02, 0.004, 18), rng.normal(0.08, 0.004, 8)]
    assert level_shifts(x) == [18]
    assert level_shifts(rng.normal(0.02, 0.004, 26)) == []
    assert level_shifts(np.full(20, 0.5)) == []


def test_change_points_name_the_partition_where_the_level_moved() -> None:
    rng = np.random.default_rng(4)
    rows = []
    for i, part in enumerate(MONTHS[:20]):
        value = rng.normal(0.08 if i >= 12 else 0.02, 0.004)
        rows.append(
            ("trips", str(part), part.start, 0, "", "", "run", "", "quarantine_rate", value, 100)
        )
    schema = ["dataset", "partition", "partition_start", "weekday", "run_id", "finished_at",
              "scope", "name", "metric", "value", "denominator"]  # fmt: skip
    frame = pl.DataFrame(rows, schema=schema, orient="row").with_columns(
        pl.col("weekday").cast(pl.Int8)
    )
    found = change_points(frame[:-1], frame[-1:], [("run", "", "quarantine_rate")])
    assert [(c.partition, c.runs_after) for c in found] == [("2021-01", 8)]
    assert found[0].before < 0.03
    assert found[0].after > 0.07


def test_report_shows_the_drift_against_the_baseline(screened: Screened) -> None:
    from sluice.report.html import render

    html = render(screened.reports[ACK_AT + 1])
    assert '<h2 id="baselines">Drift against baselines</h2>' in html
    assert "Reference: baseline training v1: 6 partitions, 2020-01 to 2020-06" in html
    assert "Acknowledged by ana on 2021-06-01: fares rose with the new tariff" in html
    assert html.count('aria-label="fare: this partition against baseline training"') == 1
    assert 'aria-label="drift share against baseline training, last' in html
    assert '<a href="#baseline-training">' not in html  # acknowledged: not in Needs attention
    alarm = render(screened.reports[PAYMENT_AT])
    assert 'against <a href="#baseline-training"><code>training</code></a>: ' in alarm
    quiet = render(screened.reports[0])
    assert 'id="baselines"' not in quiet


def test_artifacts_and_alert_carry_the_baseline_table(screened: Screened) -> None:
    from flows.alerts import BASELINE_DRIFT, baseline_alerts
    from sluice.report.artifacts import artifact_payloads

    findings = screened.reports[-1].summary()
    manifest = {"dataset": "trips", "status": "passed", "findings": findings, "counts": {}}
    summary = {"dataset": "trips", "partition": "2021-12", "manifest": "m.json"}
    p = artifact_payloads(summary, manifest)
    assert "## Drift against baselines" in p.markdown
    assert "| `training` | alarm |" in p.markdown
    assert p.keys["baseline-drift"] == "sluice-trips-baseline-drift"
    rows = {r["column"]: r for r in p.baselines}
    assert rows["payment"]["drifted"] is True
    assert rows["payment"]["status"] == "alarm"
    (alert,) = baseline_alerts(summary, manifest)
    assert alert.event == BASELINE_DRIFT
    assert alert.payload["baseline"] == "training"
    assert "payment" in alert.payload["drifted"]
    quiet = screened.reports[ACK_AT + 1].summary()
    assert baseline_alerts(summary, {"findings": quiet}) == []


def fake_model(path: Path, fitted_on: list[dict[str, Any]]) -> str:
    """A model file as ``sluice model`` writes one, holding only what a baseline reads (its
    ``meta.json`` provenance); returns its sha256."""
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("meta.json", json.dumps({"provenance": {"fitted_on": fitted_on}}))
    return file_sha256(path)


def test_a_models_training_partitions_are_a_baseline(screened: Screened, tmp_path: Path) -> None:
    from sluice.report.baseline import model_baseline
    from sluice.report.monitor import check_baseline

    reports = screened.root / "reports"
    fitted = []
    for part in MONTHS[2:5]:
        entry = json.loads((reports / part.dirname / MANIFEST_NAME).read_text())
        fitted.append({"partition": str(part), "sha256": entry["outputs"]["clean"]["sha256"]})
    fitted.append({"partition": "2020-06", "sha256": "0" * 64})  # screened again since
    model = tmp_path / "trips-default.sluice-model"
    sha = fake_model(model, fitted)
    b = model_baseline(
        reports, dataset="trips", detector="default", path=model, sha256=sha, kind="month",
        key="month",
    )  # fmt: skip
    assert [p["partition"] for p in b.partitions] == ["2020-03", "2020-04", "2020-05"]
    check = check_baseline(
        outputs(23, MONTHS[23]).clean, b, ["fare", "distance", "payment", "passengers"],
        MONTHS[23], share_threshold=0.3, classifier_auc=0.7,
    )  # fmt: skip
    assert check.reference == (
        "the training partitions of detector default's saved model trips-default.sluice-model: "
        "3 partitions, 2020-03 to 2020-05, 19 to 21 months before this partition; left out: "
        "2020-06 (screened again since: its clean file is not the one recorded)"
    )
    assert check.status == "alarm"
    with pytest.raises(BaselineError, match="sha256"):
        model_baseline(
            reports, dataset="trips", detector="default", path=model, sha256="1" * 64,
            kind="month", key="month",
        )  # fmt: skip


def test_hostile_names_and_changed_types_are_compared_or_skipped_by_name() -> None:
    from sluice.report.baseline import SavedBaseline, build_sample
    from sluice.report.monitor import check_baseline

    rng = np.random.default_rng(9)
    names = ["*", "^a.*$", "fare|x", "kind"]
    before = pl.DataFrame([pl.Series(n, rng.normal(size=800)) for n in names])
    frames = [(str(p), before.slice(i * 200, 200)) for i, p in enumerate(MONTHS[:4])]
    sample, _ = build_sample(frames, 10_000, 0)
    b = SavedBaseline("b", 1, "t", "month", "month", [{"partition": str(p)} for p in MONTHS[:4]],
                      "2021-01-01", "range", sample)  # fmt: skip
    now = pl.DataFrame([pl.Series(n, rng.normal(size=300) + 3.0) for n in names[:3]]).with_columns(
        pl.Series("kind", ["a", "b", "c"] * 100)
    )
    check = check_baseline(now, b, names, MONTHS[6], share_threshold=0.3, classifier_auc=0.7)
    got = {d.column: d for d in check.drift}
    assert got["*"].drifted
    assert got["^a.*$"].drifted
    assert got["fare|x"].drifted
    assert got["kind"].kind == "skipped"
    assert got["kind"].note == "type changed since the baseline (Float64 there, String here)"
    assert check.status == "alarm"
