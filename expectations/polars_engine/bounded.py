"""Python ``re`` under a time budget, on whatever thread asks.

A pattern the linear-time engines cannot run with Python's answers (look-arounds,
back-references and the like) is searched with Python's ``re``, whose backtracking can take
exponential time. Every such search of one column's distinct values runs under one budget,
``SLUICE_PATTERN_BUDGET_S`` seconds (default :data:`DEFAULT_BUDGET_S`):

- on the main thread, an ``ITIMER_REAL`` timer raises out of the search (CPython's regex engine
  checks for signals while it backtracks);
- on any other thread (Prefect runs tasks in worker threads; polars calls Python functions from
  its own), where no signal can reach it, the search runs in a child Python process
  (``-I -S``: the standard library only; the pattern and values travel as JSON data) that
  applies the same timer to itself and is killed if it outlives the budget by
  :data:`CHILD_GRACE_S`.

A search that exceeds the budget raises :class:`PatternTimeout`.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

from sluice.core.errors import ConfigError

BUDGET_ENV = "SLUICE_PATTERN_BUDGET_S"
DEFAULT_BUDGET_S = 10.0
CHILD_GRACE_S = 5.0
_TIMED_OUT_EXIT = 3

_CHILD = r"""
import json, re, signal, sys
doc = json.load(sys.stdin)
def stop(signum, frame):
    sys.exit(3)
signal.signal(signal.SIGALRM, stop)
signal.setitimer(signal.ITIMER_REAL, doc["budget"])
search = re.compile(doc["pattern"]).search
hits = "".join("1" if search(v) is not None else "0" for v in doc["values"])
signal.setitimer(signal.ITIMER_REAL, 0)
sys.stdout.write(hits)
"""


class PatternTimeout(Exception):
    """A Python ``re`` search ran longer than its budget (one message argument, so polars can
    re-raise it from a ``map_batches`` function)."""

    @classmethod
    def of(cls, pattern: str, budget: float) -> PatternTimeout:
        """The timeout of ``pattern`` after ``budget`` seconds."""
        return cls(
            f"the pattern {pattern!r} ran longer than the {budget:g} s budget for Python's re "
            f"on this column, so the check could not run (raise {BUDGET_ENV} to allow more)"
        )


def budget_seconds() -> float:
    """The budget from ``SLUICE_PATTERN_BUDGET_S``, or the default; ``ConfigError`` if bad."""
    raw = os.environ.get(BUDGET_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_BUDGET_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(
            "the pattern budget is a positive number of seconds",
            file="<environment>",
            key=BUDGET_ENV,
            found=raw,
            allowed=f"a number > 0 (default {DEFAULT_BUDGET_S:g})",
        )
    return value


def search_all(pattern: str, values: Sequence[str], budget: float | None = None) -> list[bool]:
    """Whether ``re.search(pattern, v)`` finds a match, for each value, within one budget."""
    seconds = budget_seconds() if budget is None else budget
    if not values:
        return []
    compiled = re.compile(pattern)
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        with _alarm(pattern, seconds):
            return [compiled.search(v) is not None for v in values]
    return _in_child(pattern, values, seconds)


class _Alarm(Exception):
    pass


@contextmanager
def _alarm(pattern: str, seconds: float) -> Iterator[None]:
    def ring(signum: int, frame: FrameType | None) -> None:
        raise _Alarm

    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, ring)
    outer_delay, outer_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Alarm:
        raise PatternTimeout.of(pattern, seconds) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_delay > 0:
            left = max(outer_delay - (time.monotonic() - started), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


def _in_child(pattern: str, values: Sequence[str], seconds: float) -> list[bool]:
    payload = json.dumps({"pattern": pattern, "values": list(values), "budget": seconds})
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _CHILD],
            input=payload.encode(),
            capture_output=True,
            timeout=seconds + CHILD_GRACE_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PatternTimeout.of(pattern, seconds) from None
    if done.returncode == _TIMED_OUT_EXIT:
        raise PatternTimeout.of(pattern, seconds)
    hits = done.stdout.decode()
    if done.returncode != 0 or len(hits) != len(values):
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(
            f"the pattern search process failed (exit {done.returncode}): "
            f"{detail[-1] if detail else 'no message'}"
        )
    return [h == "1" for h in hits]
