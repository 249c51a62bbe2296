"""Distinct failing rows per key: :meth:`FailureIds.rows_by` against a plain join of the pairs
with their keys' text."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from sluice.core.frame import ROW_ID
from sluice.report.metrics import KEYS, FailureIds, _key_table


def _ids(seed: int, n_codes: int, n_pairs: int) -> FailureIds:
    rng = np.random.default_rng(seed)
    pick = ["a", "b", None, "é", "*"]
    codes: dict[tuple[str | None, ...], int] = {}
    while len(codes) < n_codes:
        key = tuple(pick[i] for i in rng.integers(0, len(pick), len(KEYS)))
        codes.setdefault(key, len(codes))
    pairs = pl.DataFrame(
        {
            "code": rng.integers(0, n_codes + 2, n_pairs).astype(np.uint32),  # some unknown
            ROW_ID: rng.integers(0, max(1, n_pairs // 3), n_pairs).astype(np.uint64),
        }
    ).unique()
    return FailureIds(_key_table(codes), pairs)


def _plain(ids: FailureIds, by: tuple[str, ...], where: pl.Expr | None) -> set[tuple[object, ...]]:
    keys = ids.keys if where is None else ids.keys.filter(where)
    got = (
        ids.pairs.join(keys.select("code", *by), on="code", how="inner")
        .group_by(*by)
        .agg(pl.col(ROW_ID).n_unique().alias("rows"))
    )
    return set(got.iter_rows())


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    ("by", "where"),
    [
        (KEYS, None),
        (("reason",), None),
        (("column",), pl.col("rule") == "a"),
        (("severity", "column"), pl.col("severity").is_in(["a", "b"])),
    ],
)
def test_rows_by_counts_the_distinct_rows_a_join_would(
    seed: int, by: tuple[str, ...], where: pl.Expr | None
) -> None:
    ids = _ids(seed, n_codes=1 + seed * 3, n_pairs=50 * (seed + 1))
    got = ids.rows_by(*by, where=where)
    assert got.columns == [*by, "rows"]
    assert set(got.iter_rows()) == _plain(ids, by, where)


def test_rows_by_on_no_pairs_is_empty() -> None:
    ids = _ids(0, n_codes=3, n_pairs=0)
    assert ids.rows_by(*KEYS).is_empty()
