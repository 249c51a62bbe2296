"""The ``policies:`` and ``duplicates:`` sections of a dataset spec."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sluice.config import PoliciesSpec, Threshold, load_spec
from sluice.core.errors import ConfigError
from tests.conftest import SpecFactory


def _with(path: Path, **extra: object) -> Path:
    spec = yaml.safe_load(path.read_text())
    spec.update(extra)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_defaults_fail_a_majority_and_warn_early() -> None:
    p = PoliciesSpec()
    assert p.quarantine == Threshold(warn=0.05, error=0.5)
    assert p.stages.of("ingest") == Threshold(warn=0.01, error=0.5)
    assert p.stages.of("validate").error == 0.5
    assert p.rule("a|type") == Threshold(warn=None, error=0.5)
    assert p.could_not_run == "warn"
    assert p.alerts.max_quarantine_rate == 0.05


def test_a_spec_sets_policies_and_a_rule_of_its_own(make_dataset: SpecFactory) -> None:
    path = _with(
        make_dataset({}),
        policies={
            "stages": {"validate": {"warn": 0.1, "error": None}},
            "rules": {"amount|type": {"warn": 0.0, "error": 0.01}},
            "could_not_run": "error",
        },
        duplicates="keep_none",
    )
    spec = load_spec(path).spec
    assert spec.duplicates == "keep_none"
    assert spec.policies.stages.of("validate") == Threshold(warn=0.1, error=None)
    assert spec.policies.rule("amount|type") == Threshold(warn=0.0, error=0.01)
    assert spec.policies.rule("count|type") == spec.policies.per_rule
    assert spec.policies.could_not_run == "error"


@pytest.mark.parametrize(
    ("policies", "says"),
    [
        ({"quarantine": {"warn": 0.1}}, "policies.quarantine.error: Field required"),
        ({"quarantine": {"warn": 0.6, "error": 0.5}}, "must not be above error"),
        ({"quarantine": {"warn": 0.1, "error": 2}}, "less than or equal to 1"),
        ({"rules": {"amount": {"warn": 0, "error": 0}}}, "keyed by reason 'column|rule'"),
        ({"rules": {"amout|type": {"warn": 0, "error": 0}}}, "'amout' is not a column"),
        ({"could_not_run": "ignore"}, "policies.could_not_run"),
        ({"stagse": {}}, "unknown key"),
    ],
)
def test_a_policy_that_cannot_be_understood_names_the_file_line_and_key(
    make_dataset: SpecFactory, policies: dict[str, object], says: str
) -> None:
    path = _with(make_dataset({}), policies=policies)
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}:")
    assert says in msg


def test_a_duplicate_policy_must_be_known(make_dataset: SpecFactory) -> None:
    path = _with(make_dataset({}), duplicates="keep_last")
    with pytest.raises(ConfigError, match="duplicates"):
        load_spec(path)
