"""A category chart's bars: the clean side's most frequent values and the quarantine's four."""

from __future__ import annotations

from collections import Counter

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.report.metrics import VALUE, _categories, counts_by_value

WORDS = st.sampled_from([f"v{i}" for i in range(12)])


@settings(max_examples=200, deadline=None)
@given(
    clean=st.lists(WORDS, max_size=60),
    batches=st.lists(st.lists(WORDS, max_size=30), max_size=4),
)
def test_the_quarantines_four_most_frequent_values_are_labelled_ties_by_value(
    clean: list[str], batches: list[list[str]]
) -> None:
    c = counts_by_value(pl.Series(VALUE, clean, dtype=pl.String)).cast({"n": pl.Int64})
    got = _categories(c, len(clean), lambda: iter(pl.Series(VALUE, b) for b in batches))
    counted = Counter(v for b in batches for v in b)
    top = sorted(counted, key=lambda v: (-counted[v], v))[:4]
    labels = c[VALUE].head(8).to_list()
    labels += [v for v in top if v not in labels]
    kept_c = [dict(c.iter_rows()).get(v, 0) for v in labels]
    kept_q = [counted.get(v, 0) for v in labels]
    rest = (len(clean) - sum(kept_c), sum(counted.values()) - sum(kept_q))
    if rest != (0, 0):
        labels, kept_c, kept_q = [*labels, "(other)"], [*kept_c, rest[0]], [*kept_q, rest[1]]
    assert got.labels == labels
    assert got.clean.tolist() == kept_c
    assert got.quarantine.tolist() == kept_q
