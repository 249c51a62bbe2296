"""What values a detector's library parameters may take, checked before any data moves.

PyOD checks almost nothing when a model is made: scikit-learn refuses ``n_neighbors: 0`` only
when the model is fitted, ``method: x`` makes PyOD's KNN fail when it scores, and
``n_estimators: 10000000`` is taken and fills the machine's memory. Each adapter therefore names
the values its library parameters may take (:class:`Rule`), scikit-learn's own constraints where
it has them, with upper bounds on those that set how much memory or time a fit takes; a value
outside them is a ``ConfigError`` naming the parameter and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sluice.core.errors import ConfigError
from sluice.core.values import is_json_number

MAX_TREES = 10_000
"""Trees of an isolation forest: 300 by default. Measured on 300,000 rows x 8 features: 10,000
trees fit in 26 CPU s (300: 1.2) and score in 26 (300: 0.5), peak 342 MB (300: 261)."""
MAX_BINS = 10_000
"""Histogram bins (HBOS, LODA) per feature."""
MAX_NEIGHBOURS = 10_000
"""Neighbours of a row (KNN, LOF): the neighbour detectors fit on at most 10,000 rows by default."""
MAX_JOBS = 64
"""Threads a detector may ask for (negative: all cores but ``-n - 1``). The isolation forest
starts no more than the machine's cores; PyOD's neighbour detectors pass it to scikit-learn."""


@dataclass(frozen=True)
class Rule:
    """The values one parameter may take: ``ok(value)``, described as ``allowed``."""

    allowed: str
    ok: Callable[[Any], bool]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def integer(lo: int, hi: int) -> Rule:
    """An integer from ``lo`` to ``hi``."""
    return Rule(f"an integer from {lo:,} to {hi:,}", lambda v: _is_int(v) and lo <= v <= hi)


def number(lo: float, hi: float, *, open_lo: bool = False, open_hi: bool = False) -> Rule:
    """A number between ``lo`` and ``hi`` (each end included unless ``open_``)."""
    left, right = "(" if open_lo else "[", ")" if open_hi else "]"

    def ok(v: Any) -> bool:
        return (
            is_json_number(v)
            and (v > lo if open_lo else v >= lo)
            and (v < hi if open_hi else v <= hi)
        )

    return Rule(f"a number in {left}{lo}, {hi}{right}", ok)


def choice(*values: Any) -> Rule:
    """One of ``values``."""
    return Rule(
        "one of " + ", ".join(map(repr, values)),
        lambda v: isinstance(v, type(values[0])) and not isinstance(v, bool) and v in values,
    )


def either(*rules: Rule) -> Rule:
    """Any of ``rules``."""
    return Rule(" or ".join(r.allowed for r in rules), lambda v: any(r.ok(v) for r in rules))


BOOLEAN = Rule("true or false", lambda v: isinstance(v, bool))
NULL = Rule("null", lambda v: v is None)
JOBS = either(
    NULL,
    Rule(
        f"an integer from -{MAX_JOBS} to {MAX_JOBS} but 0",
        lambda v: _is_int(v) and v != 0 and -MAX_JOBS <= v <= MAX_JOBS,
    ),
)
SHARE = number(0.0, 1.0, open_lo=True)
BINS = either(integer(2, MAX_BINS), choice("auto"))
NEIGHBOURS = integer(1, MAX_NEIGHBOURS)
# scikit-learn's metrics for dense float rows that need no parameters beyond minkowski's
# weights (not "precomputed", "pyfunc", haversine's two columns or the boolean ones)
METRICS = (
    "euclidean",
    "l2",
    "sqeuclidean",
    "manhattan",
    "l1",
    "cityblock",
    "chebyshev",
    "infinity",
    "minkowski",
    "cosine",
    "correlation",
    "canberra",
    "braycurtis",
    "nan_euclidean",
)
METRIC_PARAMS = either(
    NULL,
    Rule(
        'null or {"w": [positive weights, one per feature]} (minkowski)',
        lambda v: (
            isinstance(v, Mapping)
            and set(v) <= {"w"}
            and (
                "w" not in v
                or (
                    isinstance(v["w"], list)
                    and bool(v["w"])
                    and all(is_json_number(x) and 0 < x < math.inf for x in v["w"])
                )
            )
        ),
    ),
)
NEIGHBOUR_RULES: Mapping[str, Rule] = {
    "n_neighbors": NEIGHBOURS,
    "algorithm": choice("auto", "ball_tree", "kd_tree", "brute"),
    "leaf_size": integer(1, MAX_NEIGHBOURS),
    "metric": choice(*METRICS),
    "p": number(1.0, math.inf, open_hi=True),
    "metric_params": METRIC_PARAMS,
    "n_jobs": JOBS,
}


def check_values(
    rules: Mapping[str, Rule], params: Mapping[str, Any], *, detector: str, library: str
) -> None:
    """Raise :class:`ConfigError` for the first parameter of ``params`` outside its rule."""
    for name, value in params.items():
        rule = rules.get(name)
        if rule is not None and not rule.ok(value):
            raise ConfigError(
                f"bad {name} for detector {detector!r} ({library})",
                key=f"params.{name}",
                found=value,
                allowed=rule.allowed,
            )
