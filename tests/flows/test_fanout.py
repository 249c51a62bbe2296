from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import pytest
from prefect.states import Completed, Failed, Running

from flows import fanout
from flows.screen import BackfillFailed, backfill
from sluice.pipeline import run_partition
from tests.conftest import SpecFactory

GOOD = "id,amount,count,when,kind\na,1,1,2024-01-01 10:00:00,a\n"


class FakeClient:
    """Answers read_flow_runs from a script of states, one list per poll."""

    def __init__(self, polls: list[dict[UUID, Any]]) -> None:
        self.polls = polls
        self.calls = 0

    def read_flow_runs(self, **_: Any) -> list[Any]:
        states = self.polls[min(self.calls, len(self.polls) - 1)]
        self.calls += 1
        return [
            SimpleNamespace(id=i, state=s, total_run_time=dt.timedelta(seconds=1.5))
            for i, s in states.items()
        ]


def test_wait_polls_until_every_run_is_final(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = uuid4(), uuid4()
    client = FakeClient(
        [
            {a: Running(), b: Running()},
            {a: Completed(), b: Running()},
            {a: Completed(), b: Failed(message="boom")},
        ]
    )

    @contextmanager
    def fake_get_client(**_: Any) -> Iterator[FakeClient]:
        yield client

    monkeypatch.setattr(fanout, "get_client", fake_get_client)
    seen: list[tuple[str, int]] = []
    runs = fanout.wait(
        {"2024-01-01": a, "2024-01-02": b},
        poll_seconds=0,
        on_final=lambda run: seen.append((run.partition, client.calls)),
    )
    assert client.calls == 3
    assert seen == [("2024-01-01", 2), ("2024-01-02", 3)]  # each as soon as it is final
    assert [r.seconds for r in runs] == [1.5, 1.5]
    assert [(r.partition, r.ok, r.message) for r in runs] == [
        ("2024-01-01", True, "Completed"),
        ("2024-01-02", False, "boom"),
    ]


def test_outside_a_flow_run_there_is_no_deployment() -> None:
    assert fanout.in_deployment() is False


@pytest.mark.usefixtures("prefect_api")
def test_a_deployed_backfill_launches_what_is_not_done_and_reads_child_manifests(
    make_dataset: SpecFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_dataset({"2024-01-01": GOOD, "2024-01-02": GOOD})
    launches: list[dict[str, Any]] = []
    outcome = {"2024-01-01": "Completed", "2024-01-02": "Crashed: out of memory"}

    def launch(parts: Mapping[str, dt.date], params: dict[str, Any], **kw: Any) -> dict[str, UUID]:
        launches.append({"parts": dict(parts), "params": params, **kw})
        for name in parts:  # what each child run does
            run_partition(str(spec), name)
        return {name: uuid4() for name in parts}

    def wait(
        ids: Mapping[str, UUID], on_final: Callable[[fanout.ChildRun], None]
    ) -> list[fanout.ChildRun]:
        runs = [
            fanout.ChildRun(p, i, outcome[p] == "Completed", outcome[p]) for p, i in ids.items()
        ]
        for run in runs:
            on_final(run)
        return runs

    monkeypatch.setattr(fanout, "in_deployment", lambda: True)
    monkeypatch.setattr(fanout, "deployment_exists", lambda name=None: True)
    monkeypatch.setattr(fanout, "launch", launch)
    monkeypatch.setattr(fanout, "wait", wait)
    with pytest.raises(BackfillFailed, match=r"1 of 2 partitions failed: 2024-01-02: Crashed"):
        backfill(str(spec), dt.date(2024, 1, 1), dt.date(2024, 1, 2), force=True)
    assert launches[0]["parts"] == {
        "2024-01-01": dt.date(2024, 1, 1),
        "2024-01-02": dt.date(2024, 1, 2),
    }
    assert launches[0]["params"] == {
        "dataset": str(spec),
        "engine": None,
        "force": True,
        "max_quarantine_rate": None,
    }
    assert launches[0]["run_name"] == "tiny {partition}"

    outcome["2024-01-02"] = "Completed"
    manifest = spec.parent / "out" / "reports" / "date=2024-01-02" / "manifest.json"
    manifest.unlink()  # the failed child left nothing
    summary = backfill(str(spec), dt.date(2024, 1, 1), dt.date(2024, 1, 2))
    assert list(launches[1]["parts"]) == ["2024-01-02"]
    assert [s["partition"] for s in summary["skipped"]] == ["2024-01-01"]
    (screened,) = summary["screened"]
    assert screened["partition"] == "2024-01-02"
    assert screened["manifest"] == str(manifest)
    assert screened["counts"]["in"] == 1
    assert summary["failed"] == []
