"""The polars engine against GX: same verdicts, counts and failing rows on generated data.

Each compiled type draws frames with polars' parametric strategies and, per frame, a batch of
kwargs variants validated in one GX call. ``make test`` runs at least 200 cases per type;
``make test-slow`` runs many more, unseeded.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from expectations.polars_engine import SUPPORTED_TYPES, run_polars, supports
from tests.expectations.test_differential_support import (
    LIKE_TYPES,
    cases,
    comparable,
    describe,
    families,
    gx_outcomes,
    mismatch,
)

COMPARED = sorted(families(SUPPORTED_TYPES))
MIN_CASES = 200
VARIANTS = 25
EXAMPLES = 9


def run_differential(type_: str, examples: int, *, derandomize: bool) -> int:
    """Compare the engines on generated cases of one type; return how many were compared."""
    compared = [0]

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases(type_, VARIANTS))
    def check(case: tuple[object, list[object]]) -> None:
        frame, generated = case
        # what auto does: entries the engine does not compile on this frame go to GX itself
        entries = [e for e in generated if supports(e, frame)]  # type: ignore[arg-type]
        if not entries:
            return
        polars_out = run_polars(frame, entries)  # type: ignore[arg-type]
        gx_out = gx_outcomes(type_, frame, entries)  # type: ignore[arg-type]
        problems = []
        for p, g in zip(polars_out, gx_out, strict=True):
            if not comparable(g):
                continue
            compared[0] += 1
            problem = mismatch(p, g)
            if problem is not None:
                problems.append(describe(frame, p.entry, problem))  # type: ignore[arg-type]
        assert not problems, f"{len(problems)} mismatches:\n\n" + "\n\n".join(problems[:4])

    check()
    return compared[0]


def test_every_type_has_a_generator_or_another_oracle() -> None:
    assert set(COMPARED) | LIKE_TYPES == set(SUPPORTED_TYPES)


@pytest.mark.parametrize("type_", COMPARED)
def test_polars_engine_matches_gx(type_: str) -> None:
    assert run_differential(type_, EXAMPLES, derandomize=True) >= MIN_CASES


@pytest.mark.slow
@pytest.mark.parametrize("type_", COMPARED)
def test_polars_engine_matches_gx_long(type_: str) -> None:
    assert run_differential(type_, 200, derandomize=False) >= 10 * MIN_CASES
