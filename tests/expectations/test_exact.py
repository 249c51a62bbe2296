"""ExactSum: the exact sum of floats as a mergeable state, rounded once."""

from __future__ import annotations

import math
from fractions import Fraction

import hypothesis.strategies as st
import numpy as np
from hypothesis import given, settings

from expectations.exact import SCALE_BITS, ExactSum

finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(values=st.lists(finite, max_size=40), cut=st.integers(0, 40))
def test_the_sum_is_exact_and_any_split_merges_to_it(values: list[float], cut: int) -> None:
    arr = np.asarray(values, dtype=np.float64)
    whole = ExactSum.of(arr)
    exact = sum((Fraction(v) for v in values), Fraction(0))
    assert Fraction(whole.scaled, 1 << SCALE_BITS) == exact
    assert ExactSum.of(arr[:cut]).merge(ExactSum.of(arr[cut:])) == whole
    try:
        expected = math.fsum(values)
    except OverflowError:
        return
    assert whole.sum() == expected
    if values and abs(exact / len(values)) <= Fraction(np.finfo(np.float64).max):
        assert whole.mean() == float(exact / len(values))


def test_order_changes_the_float_sum_but_not_the_exact_one() -> None:
    values = np.array([1e16, 1.0, -1e16, 1.0])
    assert math.fsum(values) == 2.0 != float(sum(values.tolist()))
    assert ExactSum.of(values).sum() == ExactSum.of(values[::-1]).sum() == 2.0
    assert ExactSum.of(values).mean() == 0.5


def test_special_values() -> None:
    assert ExactSum.of([]).mean() is None
    assert ExactSum.of([]).sum() == 0.0
    assert ExactSum.of([1e308, 1e308]).sum() == math.inf
    assert ExactSum.of([-1e308, -1e308]).sum() == -math.inf
    assert ExactSum.of([-1e308, -1e308]).mean() == -1e308
    assert math.isnan(ExactSum.of([math.inf, 1.0]).merge(ExactSum.of([-math.inf])).sum())
    assert ExactSum.of([math.inf, 2.0]).mean() == math.inf
    assert ExactSum.of([5e-324, 5e-324]).sum() == 1e-323


def test_a_full_chunk_of_the_widest_mantissas_sums_exactly() -> None:
    """2**24 values whose mantissas are all ones, the most any per-shift double sum holds, and
    one more (a second chunk): the sum is still exact."""
    widest = float(np.nextafter(2.0, 0.0))
    arr = np.full((1 << 24) + 1, widest)
    assert Fraction(ExactSum.of(arr).scaled, 1 << SCALE_BITS) == Fraction(widest) * arr.size
    assert Fraction(ExactSum.of(-arr).scaled, 1 << SCALE_BITS) == -Fraction(widest) * arr.size
