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
