from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sluice.core.frame import ids_meet, row_ids, same_ids, split_in_order

IDS = pl.Series("_row_id", [5, 1, 9, 3, 7], dtype=pl.UInt64)


def _sha(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def _ids(files: list[tuple[str, int]]) -> np.ndarray:
    return np.concatenate([row_ids(sha, n) for sha, n in files] or [np.array([], np.uint64)])


# starts near each other and near 2**64: ranges that overlap, and ranges that wrap to 0
_STARTS = st.integers(0, 63).map(lambda k: (2**64 - 40 + 7 * k) % 2**64)


@given(st.lists(st.tuples(_STARTS, st.integers(0, 50)), max_size=6))
def test_ids_meet_exactly_when_two_rows_get_one_id(spans: list[tuple[int, int]]) -> None:
    files = [(f"{start:016x}" + "0" * 48, n) for start, n in spans]
    ids = _ids(files)
    assert ids_meet(files) == (len(np.unique(ids)) != len(ids))


def test_identical_files_meet_and_distinct_ones_do_not() -> None:
    assert ids_meet([(_sha(1), 10), (_sha(1), 10)])
    assert not ids_meet([(_sha(1), 10), (_sha(2), 10), (_sha(3), 0)])
    assert not ids_meet([(_sha(1), 10)])
    assert not ids_meet([(_sha(1), 0), (_sha(1), 0)])


@pytest.mark.parametrize(
    ("clean", "held", "holds"),
    [
        ([5, 9, 7], [1, 3], True),
        ([5, 1, 9, 3, 7], [], True),
        ([], [5, 1, 9, 3, 7], True),
        ([9, 5, 7], [1, 3], False),  # out of the input's order
        ([5, 9, 7], [3, 1], False),
        ([5, 9], [1, 3], False),  # a row lost
        ([5, 9, 7, 1], [1, 3], False),  # a row on both sides
        ([5, 9, 7, 7], [1], False),  # a row twice, one lost: same count
        ([5, 9, 8], [1, 3], False),  # a row not from the input
    ],
)
def test_split_in_order(clean: list[int], held: list[int], holds: bool) -> None:
    sides = [pl.Series(v, dtype=pl.UInt64) for v in (clean, held)]
    assert split_in_order(IDS, *sides) is holds


@pytest.mark.parametrize(
    ("held", "same"),
    [
        ([7, 3, 9, 1, 5], True),
        ([7, 3, 9, 1], False),
        ([7, 3, 9, 1, 1], False),
        ([7, 3, 9, 1, 6], False),
    ],
)
def test_same_ids_is_the_same_ids_each_once_in_any_order(held: list[int], same: bool) -> None:
    assert same_ids(pl.Series(held, dtype=pl.Int64), IDS) is same
