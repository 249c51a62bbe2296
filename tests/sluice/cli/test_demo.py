"""``sluice demo`` finds its dataset spec in the project, and that spec loads."""

from __future__ import annotations

from sluice.cli.demo import DEMO_DATASET, DEMO_SPEC
from sluice.config import load_spec


def test_the_demo_spec_is_the_projects_and_loads() -> None:
    assert DEMO_SPEC.is_file(), DEMO_SPEC
    assert DEMO_SPEC.parent.name == "datasets"
    assert load_spec(DEMO_SPEC).name == DEMO_DATASET
