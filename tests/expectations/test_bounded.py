"""Python's re under a time budget: on the main thread, on worker threads, through both engines."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import polars as pl
import pytest

from expectations.engine import validate
from expectations.failures import verdict_state
from expectations.gx_runner import run_gx
from expectations.polars_engine.bounded import (
    BUDGET_ENV,
    DEFAULT_BUDGET_S,
    PatternTimeout,
    budget_seconds,
    search_all,
)
from expectations.polars_engine.runner import run_polars
from expectations.results import ExpectationOutcome
from sluice.core.errors import ConfigError
from tests.expectations.conftest import make_entry

T = TypeVar("T")
CATASTROPHIC = r"^(?=a)(a+)+$"
EVIL_VALUE = "a" * 40 + "!"
BUDGET = 0.5
BOUND = BUDGET + 3.0


def on_thread(fn: Callable[[], T]) -> T:
    """Run ``fn`` on a worker thread (where no signal reaches it) and return its result."""
    box: list[T] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive()
    if errors:
        raise errors[0]
    return box[0]


VALUES = ["aaa", "b", "", "a\n", "ba", "aab", "x" * 50]


@pytest.mark.parametrize("pattern", [CATASTROPHIC, r"(a)\1", r"a(?!b)", r"^\w+$", r"a$"])
@pytest.mark.parametrize("where", ["main", "thread"])
def test_answers_are_pythons_on_every_thread(pattern: str, where: str) -> None:
    expected = [re.search(pattern, v) is not None for v in VALUES]

    def call() -> list[bool]:
        return search_all(pattern, VALUES, 5.0)

    assert (call() if where == "main" else on_thread(call)) == expected


@pytest.mark.parametrize("where", ["main", "thread"])
def test_a_catastrophic_search_stops_at_the_budget(where: str) -> None:
    started = time.monotonic()

    def call() -> list[bool]:
        return search_all(CATASTROPHIC, ["aaa", EVIL_VALUE], BUDGET)

    with pytest.raises(PatternTimeout, match=r"0\.5 s budget"):
        call() if where == "main" else on_thread(call)
    assert time.monotonic() - started < BOUND


def test_an_outer_timer_survives_the_budget() -> None:
    rang: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: rang.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 2.0)
        assert search_all("a", ["a"], 1.0) == [True]
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < left <= 2.0
        assert signal.getsignal(signal.SIGALRM) is not None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_the_budget_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    assert budget_seconds() == DEFAULT_BUDGET_S
    monkeypatch.setenv(BUDGET_ENV, "2.5")
    assert budget_seconds() == 2.5
    for bad in ("0", "-1", "nan", "inf", "soon"):
        monkeypatch.setenv(BUDGET_ENV, bad)
        with pytest.raises(ConfigError, match=BUDGET_ENV):
            budget_seconds()


FRAME = pl.DataFrame({"s": [EVIL_VALUE, "aaa", "b"], "t": ["x", None, "z"]})


@pytest.mark.parametrize("engine", ["polars", "gx"])
@pytest.mark.parametrize("where", ["main", "thread"])
def test_only_the_slow_expectation_could_not_run(
    monkeypatch: pytest.MonkeyPatch, engine: str, where: str
) -> None:
    monkeypatch.setenv(BUDGET_ENV, str(BUDGET))
    entries = [
        make_entry("expect_column_values_to_match_regex", 0, column="s", regex=CATASTROPHIC),
        make_entry("expect_column_values_to_not_be_null", 1, column="t"),
        make_entry("expect_column_values_to_match_regex", 2, column="s", regex=r"(a)\1"),
    ]
    run = run_polars if engine == "polars" else run_gx
    run(FRAME, entries[1:2])
    started = time.monotonic()

    def call() -> list[ExpectationOutcome]:
        return run(FRAME, entries)

    slow, nulls, backref = call() if where == "main" else on_thread(call)
    assert time.monotonic() - started < 2 * BUDGET + BOUND
    assert slow.exception is not None
    assert "budget" in slow.exception
    state = verdict_state(slow)
    assert state["state"] == "could_not_run"
    assert BUDGET_ENV in state["why"]
    assert nulls.exception is None
    assert nulls.unexpected_rows is not None
    assert nulls.unexpected_rows.tolist() == [1]
    assert backref.exception is None
    assert backref.unexpected_rows is not None
    assert backref.unexpected_rows.tolist() == [2]


def test_auto_sends_a_regex_on_numbers_to_gx_and_still_bounds_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(BUDGET_ENV, str(BUDGET))
    frame = pl.DataFrame({"n": [1111111111111111.0, 5.0]})
    slow = make_entry("expect_column_values_to_match_regex", column="n", regex=r"^(?=1)(1|1|1|1)+2")
    fine = make_entry("expect_column_values_to_match_regex", 1, column="n", regex=r"^(?=1)1+\.")
    started = time.monotonic()
    out = validate(frame, [slow, fine], "auto")
    assert [o.engine for o in out] == ["gx", "gx"]
    assert out[0].exception is not None
    assert "budget" in out[0].exception
    assert out[1].exception is None
    assert out[1].unexpected_rows is not None
    assert out[1].unexpected_rows.tolist() == [1]
    assert time.monotonic() - started < 60
