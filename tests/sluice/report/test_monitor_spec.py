"""The ``monitor`` keys for named baselines: what a spec may write and what it is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from sluice.config import MonitorSpec, load_spec
from sluice.core.errors import ConfigError
from tests.sluice.report.conftest import trips_spec


def test_named_baselines_and_thresholds_are_read() -> None:
    m = MonitorSpec.model_validate(
        {"baselines": ["q1", {"model": "default"}], "bands_from": "q1", "drift_share": 0.5,
         "classifier_auc": None}
    )  # fmt: skip
    assert m.baselines[0] == "q1"
    assert m.bands_from == "q1"
    assert m.drift_share == 0.5
    assert m.classifier_auc is None
    assert MonitorSpec().classifier_auc == 0.7


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"baselines": ["q1", "q1"]}, "listed twice"),
        ({"baselines": ["../q1"]}, "must start with a letter"),
        ({"baselines": ["q1"], "bands_from": "q2"}, "not one of the saved baselines"),
        ({"baselines": ["q1"], "bands_from": "q1", "baseline": ["2024-01"]}, "keep one"),
        ({"drift_share": 0}, "greater than 0"),
        ({"classifier_auc": 0.5}, "greater than 0.5"),
        ({"baselines": [{"model": "a", "eval": "x"}]}, "Extra inputs are not permitted"),
    ],
)
def test_bad_monitor_keys_are_refused(given: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MonitorSpec.model_validate(given)


def test_a_model_baseline_needs_a_detector_with_a_saved_model(tmp_path: Path) -> None:
    spec = trips_spec(tmp_path)
    spec.write_text(spec.read_text() + "monitor:\n  baselines: [{model: default}]\n")
    with pytest.raises(ConfigError) as err:
        load_spec(str(spec))
    text = str(err.value)
    assert "monitor.baselines names model 'default'" in text
    assert "fit: model" in text
    assert str(spec) in text


def test_plan_pins_bands_to_a_named_baseline_and_says_when_one_is_missing(tmp_path: Path) -> None:
    import datetime as dt
    import json

    import polars as pl

    from sluice.config import Partition
    from sluice.core.files import file_sha256
    from sluice.report.baseline import save_baseline
    from sluice.report.monitor import check_all, plan_monitoring

    spec = trips_spec(tmp_path)
    spec.write_text(spec.read_text() + "monitor:\n  baselines: [week, gone]\n  bands_from: week\n")
    loaded = load_spec(str(spec))
    reports, clean = loaded.output_root("reports"), loaded.output_root("clean")
    days = [Partition(dt.date(2024, 3, 4 + i), "day", "pickup_date") for i in range(3)]
    for i, part in enumerate(days):
        path = clean / part.dirname / "part.parquet"
        path.parent.mkdir(parents=True)
        pl.DataFrame({"fare_amount": [1.0 + i, 2.0, 3.0]}).write_parquet(path)
        (reports / part.dirname).mkdir(parents=True)
        entry = {"path": str(path), "sha256": file_sha256(path)}
        (reports / part.dirname / "manifest.json").write_text(
            json.dumps({"outputs": {"clean": entry}})
        )
    save_baseline(reports, dataset="trips", name="week", partitions=days)
    today = Partition(dt.date(2024, 3, 20), "day", "pickup_date")
    plan = plan_monitoring(loaded, today)
    assert plan.bands is not None
    assert sorted(plan.bands.partitions) == [d.start for d in days]
    checks = check_all(pl.DataFrame({"fare_amount": [5.0] * 60}), ["fare_amount"], today, plan)
    assert [c.name for c in checks] == ["week", "gone"]
    assert checks[0].reference.startswith(
        "baseline week v1: 3 partitions, 2024-03-04 to 2024-03-06, 14 to 16 days before"
    )
    assert checks[1].status == "unavailable"
    assert "no saved baseline named 'gone'" in checks[1].causes[0]
    assert "sluice baseline trips --name gone" in checks[1].causes[0]
