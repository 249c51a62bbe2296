from __future__ import annotations

import pytest

from sluice.config import find_spec
from sluice.core.errors import ConfigError
from sluice.pipeline import budget
from sluice.pipeline.run import Run
from tests.conftest import SpecFactory


def test_bounded_is_forced_forbidden_or_judged_by_size(
    make_dataset: SpecFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_dataset({"2024-03-01": "id,fare\n1,2.5\n"})
    loaded = find_spec(str(spec))
    part = loaded.spec.partition.parse("2024-03-01")
    estimate = budget.partition_estimate(loaded, part)
    monkeypatch.setenv(budget.MEMORY_ENV, str(estimate - 1))
    assert budget.use_bounded(loaded, part)
    monkeypatch.setenv(budget.MEMORY_ENV, str(estimate + 1))
    assert not budget.use_bounded(loaded, part)
    monkeypatch.setenv(budget.BOUNDED_ENV, "1")
    assert budget.use_bounded(loaded, part)
    monkeypatch.setenv(budget.BOUNDED_ENV, "yes")
    with pytest.raises(ConfigError, match="SLUICE_BOUNDED"):
        budget.use_bounded(loaded, part)


def test_batch_rows_follow_the_budget_or_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(budget.MEMORY_ENV, "4G")
    at_4g = budget.batch_rows(20)
    monkeypatch.setenv(budget.MEMORY_ENV, "2G")
    assert budget.batch_rows(20) == at_4g // 2
    monkeypatch.setenv(budget.MEMORY_ENV, "1M")
    assert budget.batch_rows(20) == 10_000
    monkeypatch.setenv(budget.BATCH_ROWS_ENV, "123")
    assert budget.batch_rows(20) == 123
    monkeypatch.setenv(budget.BATCH_ROWS_ENV, "0")
    with pytest.raises(ConfigError, match="SLUICE_BATCH_ROWS"):
        budget.batch_rows(20)


def test_a_run_keeps_the_size_judgement_of_its_first_stage(
    make_dataset: SpecFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_dataset({"2024-03-01": "id,fare\n1,2.5\n"})
    run = Run.prepare(str(spec), "2024-03-01")
    estimate = budget.partition_estimate(run.loaded, run.partition)
    run.work.mkdir(parents=True)
    monkeypatch.setenv(budget.MEMORY_ENV, str(estimate - 1))
    assert run.bounded
    monkeypatch.setenv(budget.MEMORY_ENV, str(estimate + 1))
    assert run.bounded, "the memory available changed while the run went on"
    monkeypatch.setenv(budget.BOUNDED_ENV, "0")
    assert not run.bounded
