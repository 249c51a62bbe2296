"""The polars engine's compilers for sluice's own types (declared in expectations/sluice_types.py).

Each needs the whole frame at once (groups, spellings, pairs), so each compiles to a
:class:`FramePlan` whose ``compute`` gets the rows its ``row_condition`` keeps and returns the
failing positions with what each failure says (the majority value, the frequent spelling, the
earlier row it repeats). Edit distances and string similarities come from rapidfuzz.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import polars as pl
from pydantic import ValidationError
from rapidfuzz import process, utils
from rapidfuzz.distance import Indel, JaroWinkler, Levenshtein

from expectations.polars_engine.plan import (
    POSITION,
    CheckError,
    Ctx,
    FramePlan,
    FrameResult,
)
from expectations.sluice_types import (
    MajorityBy,
    NearDuplicates,
    RareVariants,
    UniqueAfterNormalising,
    _Kwargs,
    argument_names,
    first_error,
)

K = TypeVar("K", bound=_Kwargs)

RARE_CHUNK = 2048
"""Rare values compared against every frequent value at once (bounds the distance matrix)."""
PAIR_CHUNK = 1_000_000
"""Row pairs scored at once by the near-duplicate rule."""
_RUNNER_KEYS = frozenset({"catch_exceptions", "result_format"})


def _model(ctx: Ctx, model: type[K]) -> K:
    kwargs = {k: v for k, v in ctx.kwargs.items() if k not in _RUNNER_KEYS}
    try:
        return model.model_validate(kwargs)
    except ValidationError as exc:
        key, message, found = first_error(exc)
        raise ctx.config_error(
            message,
            key or "",
            found,
            "arguments " + ", ".join(argument_names(ctx.entry.type)),
        ) from None


def _text(ctx: Ctx, name: str) -> pl.Expr:
    """A column as text for comparing spellings; nested columns have no spelling."""
    dtype = ctx.dtype(name)
    if dtype.is_nested() or dtype == pl.Object:
        raise CheckError(f"column {name!r} is {dtype}: only scalar values can be compared as text")
    return ctx.value(name).cast(pl.String)


def _present(names: Sequence[str]) -> pl.Expr:
    return pl.all_horizontal([pl.col(n).is_not_null() for n in names])


def _empty(considered: int, observed: Any, *, duplicates: bool = False) -> FrameResult:
    none = np.zeros(0, dtype=np.int64)
    return FrameResult(none, considered, pl.DataFrame(), observed, none if duplicates else None)


def follow_majority_by(ctx: Ctx) -> FramePlan:
    """``sluice.expect_column_values_to_follow_majority_by``: the minority of each group fails.

    Rows with a missing ``by`` value or a missing ``column`` value are not judged. A group is
    judged when it has at least ``min_group_size`` judged rows and its most frequent value is
    unique and holds more than ``min_majority`` of them; its other rows fail.
    """
    kw = _model(ctx, MajorityBy)
    target = ctx.column()
    by = ctx.column_list("by")
    keys = [f"__sluice_by{i}" for i in range(len(by))]
    y, n = "__sluice_y", "__sluice_n"

    def compute(frame: pl.DataFrame) -> FrameResult:
        judged = frame.select(
            POSITION,
            *[ctx.value(b).alias(k) for b, k in zip(by, keys, strict=True)],
            ctx.value(target).alias(y),
        ).filter(_present([*keys, y]))
        counts = judged.group_by([*keys, y]).agg(pl.len().alias(n))
        top = pl.col(n).max()
        groups = counts.group_by(keys).agg(
            pl.col(n).sum().alias("__sluice_size"),
            top.alias("__sluice_top"),
            (pl.col(n) == top).sum().alias("__sluice_tops"),
            pl.col(y).filter(pl.col(n) == top).first().alias("__sluice_majority"),
        )
        ruled = groups.filter(
            (pl.col("__sluice_size") >= kw.min_group_size)
            & (pl.col("__sluice_tops") == 1)
            & (pl.col("__sluice_top") > kw.min_majority * pl.col("__sluice_size"))
        )
        observed = {"groups": groups.height, "groups_judged": ruled.height}
        failing = (
            judged.join(ruled, on=keys, how="inner")
            .filter(pl.col(y) != pl.col("__sluice_majority"))
            .sort(POSITION)
        )
        observed["minority_rows"] = failing.height
        details = failing.select(
            pl.col("__sluice_majority").alias("majority"),
            pl.col("__sluice_size").alias("group_size"),
            pl.col("__sluice_top").alias("majority_count"),
            (pl.col("__sluice_top") / pl.col("__sluice_size")).round(4).alias("majority_share"),
            pl.lit(by, dtype=pl.List(pl.String)).alias("by"),
        )
        rows = failing.get_column(POSITION).to_numpy().astype(np.int64)
        return FrameResult(rows, judged.height, details, observed)

    return FramePlan(compute)


def not_be_rare_variants(ctx: Ctx) -> FramePlan:
    """``sluice.expect_column_values_to_not_be_rare_variants``: rare near-spellings fail.

    Only distinct values are compared: every value seen at most ``max_count`` times against
    every value seen at least ``min_frequent_count`` times, by Levenshtein distance (rapidfuzz
    ``cdist`` with a score cutoff). A rare value fails when some frequent value is within
    ``max_distance`` edits and within ``max_relative_distance`` of the longer one's length;
    its failure names the closest (then most frequent, then smallest) frequent value.
    """
    kw = _model(ctx, RareVariants)
    col = ctx.column()
    v, n = "__sluice_v", "__sluice_n"

    def compute(frame: pl.DataFrame) -> FrameResult:
        text = frame.select(POSITION, _text(ctx, col).alias(v)).filter(pl.col(v).is_not_null())
        counts = text.group_by(v).agg(pl.len().alias(n))
        rare = counts.filter(pl.col(n) <= kw.max_count).sort(v)
        frequent = counts.filter(pl.col(n) >= kw.min_frequent_count).sort(
            [n, v], descending=[True, False]
        )
        observed: dict[str, Any] = {
            "distinct_values": counts.height,
            "rare_values": rare.height,
            "frequent_values": frequent.height,
        }
        if rare.is_empty() or frequent.is_empty():
            observed["variants"] = 0
            return _empty(text.height, observed)
        matches = _closest(
            rare.get_column(v).to_list(),
            frequent.get_column(v).to_list(),
            kw.max_distance,
            kw.max_relative_distance,
        )
        observed["variants"] = len(matches)
        if not matches:
            return _empty(text.height, observed)
        values = list(matches)
        picked = frequent.select(
            pl.col(v).alias("frequent_value"), pl.col(n).alias("frequent_count")
        )[[matches[x][0] for x in values]]
        found = picked.with_columns(
            pl.Series(v, values, dtype=pl.String),
            pl.Series("distance", [matches[x][1] for x in values], dtype=pl.Int64),
        ).join(rare.select(v, pl.col(n).alias("count")), on=v)
        failing = text.join(found, on=v, how="inner").sort(POSITION)
        details = failing.select("frequent_value", "frequent_count", "count", "distance")
        rows = failing.get_column(POSITION).to_numpy().astype(np.int64)
        return FrameResult(rows, text.height, details, observed)

    return FramePlan(compute)


def _closest(
    rare: list[str], frequent: list[str], max_distance: int, max_relative: float
) -> dict[str, tuple[int, int]]:
    """For each rare value within the bounds of some frequent one: (frequent index, distance).

    ``frequent`` is ordered by preference (most frequent first): among equally close frequent
    values the first wins.
    """
    freq_len = np.fromiter((len(f) for f in frequent), dtype=np.int64, count=len(frequent))
    out: dict[str, tuple[int, int]] = {}
    for start in range(0, len(rare), RARE_CHUNK):
        chunk = rare[start : start + RARE_CHUNK]
        dist = process.cdist(
            chunk,
            frequent,
            scorer=Levenshtein.distance,
            score_cutoff=max_distance,
            dtype=np.int32,
        )
        rare_len = np.fromiter((len(r) for r in chunk), dtype=np.int64, count=len(chunk))
        longer = np.maximum(rare_len[:, None], freq_len[None, :])
        ok = (dist <= max_distance) & (dist <= max_relative * longer)
        masked = np.where(ok, dist, np.iinfo(np.int32).max)
        best = masked.argmin(axis=1)
        for i in np.flatnonzero(ok.any(axis=1)):
            out[chunk[i]] = (int(best[i]), int(dist[i, best[i]]))
    return out


_STEPS: dict[str, Callable[[pl.Expr], pl.Expr]] = {
    "digits": lambda e: e.str.replace_all(r"\D", ""),
    "casefold": lambda e: e.str.to_lowercase(),
    "strip_punctuation": lambda e: e.str.replace_all(r"\p{P}", ""),
    "collapse_whitespace": lambda e: e.str.replace_all(r"\s+", " ").str.strip_chars(),
    "sorted_tokens": lambda e: e.str.extract_all(r"\S+").list.sort().list.join(" "),
}


def normalise(expr: pl.Expr, steps: Sequence[str]) -> pl.Expr:
    """Text after ``steps`` in order; empty text becomes null (nothing is left to compare)."""
    for step in steps:
        expr = _STEPS[step](expr)
    return pl.when(expr.str.len_chars() > 0).then(expr)


def unique_after_normalising(ctx: Ctx) -> FramePlan:
    """``sluice.expect_compound_columns_to_be_unique_after_normalising``, keep-first.

    Each column is taken as text and normalised; a row with a null part of its key is not
    judged; the first row of each key passes and every later one fails with ``duplicate_of``.
    """
    kw = _model(ctx, UniqueAfterNormalising)
    cols = ctx.column_list()
    keys = [f"__sluice_k{i}" for i in range(len(cols))]
    steps = kw.steps

    def compute(frame: pl.DataFrame) -> FrameResult:
        judged = frame.select(
            POSITION,
            *[normalise(_text(ctx, c), steps).alias(k) for c, k in zip(cols, keys, strict=True)],
        ).filter(_present(keys))
        grouped = judged.with_columns(
            pl.col(POSITION).first().over(keys).alias("__sluice_first"),
            pl.len().over(keys).alias("__sluice_size"),
        )
        failing = grouped.filter(pl.col(POSITION) != pl.col("__sluice_first"))
        normalised = pl.col(keys[0]) if len(keys) == 1 else pl.concat_list(keys)
        details = failing.select(
            normalised.alias("normalised"), pl.col("__sluice_size").alias("group_size")
        )
        observed = {"duplicate_rows": failing.height, "transform": steps}
        return FrameResult(
            failing.get_column(POSITION).to_numpy().astype(np.int64),
            judged.height,
            details,
            observed,
            failing.get_column("__sluice_first").to_numpy().astype(np.int64),
        )

    return FramePlan(compute)


_SCORERS: dict[str, Any] = {
    "jaro_winkler": JaroWinkler.normalized_similarity,
    "indel": Indel.normalized_similarity,
}


def near_duplicates(ctx: Ctx) -> FramePlan:
    """``sluice.expect_rows_to_not_be_near_duplicates``, keep-first within each block.

    Rows with equal ``block_on`` values (none missing) form a block; within a block every pair
    is scored as the mean over ``compare`` of a per-column similarity in [0, 1] (rapidfuzz,
    after its default processing: lower case, punctuation to spaces, trimmed). A column missing
    on either row is left out of the mean; a pair with fewer than ``min_columns`` columns
    present on both (default: half of ``compare``, rounded up) scores 0. A row whose score against
    an earlier row reaches ``threshold`` fails, with ``duplicate_of`` the most similar earlier
    row. Blocks larger than ``max_block_size`` are not compared; the verdict's observed value
    counts them and their rows.
    """
    kw = _model(ctx, NearDuplicates)
    block = ctx.column_list("block_on")
    compare = ctx.column_list("compare")
    bkeys = [f"__sluice_b{i}" for i in range(len(block))]
    ckeys = [f"__sluice_c{i}" for i in range(len(compare))]
    scorer = _SCORERS[kw.similarity]
    min_columns = kw.min_columns if kw.min_columns is not None else (len(compare) + 1) // 2

    def compute(frame: pl.DataFrame) -> FrameResult:
        rows = frame.select(
            POSITION,
            *[ctx.value(b).alias(k) for b, k in zip(block, bkeys, strict=True)],
            *[_text(ctx, c).alias(k) for c, k in zip(compare, ckeys, strict=True)],
        ).filter(_present(bkeys))
        blocks = (
            rows.with_row_index("__sluice_i")
            .group_by(bkeys, maintain_order=True)
            .agg(pl.col("__sluice_i"))
            .select(pl.col("__sluice_i"), pl.col("__sluice_i").list.len().alias("__sluice_k"))
        )
        too_big = blocks.filter(pl.col("__sluice_k") > kw.max_block_size)
        judged = blocks.filter(
            (pl.col("__sluice_k") >= 2) & (pl.col("__sluice_k") <= kw.max_block_size)
        )
        values = [_prepared(rows.get_column(c)) for c in ckeys]
        pairs = 0
        hits: list[pl.DataFrame] = []
        for (k,), members in judged.group_by("__sluice_k"):
            grid = members.get_column("__sluice_i").explode().to_numpy().reshape(-1, int(k))
            for left, right in _pairs(grid.astype(np.int64)):
                pairs += len(left)
                score = _score(values, left, right, scorer, min_columns)
                hit = score >= kw.threshold
                if hit.any():
                    hits.append(
                        pl.DataFrame(
                            {
                                "left": left[hit],
                                "right": right[hit],
                                "score": score[hit],
                                "size": np.full(int(hit.sum()), int(k), dtype=np.int64),
                            }
                        )
                    )
        largest = blocks.get_column("__sluice_k").max()
        observed = {
            "blocks_compared": judged.height,
            "pairs_compared": pairs,
            "blocks_skipped": too_big.height,
            "rows_in_skipped_blocks": int(too_big.get_column("__sluice_k").sum()),
            "largest_block": largest if isinstance(largest, int) else 0,
            "max_block_size": kw.max_block_size,
        }
        considered = rows.height - observed["rows_in_skipped_blocks"]
        if not hits:
            observed["near_duplicate_rows"] = 0
            return _empty(considered, observed, duplicates=True)
        best = (
            pl.concat(hits)
            .sort(["right", "score", "left"], descending=[False, True, False])
            .group_by("right", maintain_order=True)
            .first()
        )
        observed["near_duplicate_rows"] = best.height
        position = rows.get_column(POSITION).to_numpy().astype(np.int64)
        details = best.select(
            pl.col("score").round(4).alias("similarity"), pl.col("size").alias("block_size")
        )
        return FrameResult(
            position[best.get_column("right").to_numpy()],
            considered,
            details,
            observed,
            position[best.get_column("left").to_numpy()],
        )

    return FramePlan(compute)


def _prepared(column: pl.Series) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.bool_]]:
    """A compare column as processed text ("" for missing) and its missing mask.

    Distinct values are processed once (rapidfuzz's ``default_process``) and spread back.
    """
    missing = column.is_null().to_numpy()
    filled = column.fill_null("")
    codes = (filled.rank("dense") - 1).cast(pl.Int64).to_numpy()
    categories = filled.unique().sort().to_list()
    processed = np.array([utils.default_process(s) for s in categories], dtype=object)
    return processed[codes], missing


def _pairs(
    grid: npt.NDArray[np.int64],
) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
    """Every (earlier, later) pair of rows within each block (a row of ``grid``), in chunks."""
    k = grid.shape[1]
    i, j = np.triu_indices(k, 1)
    per_chunk = max(1, PAIR_CHUNK // len(i))
    return [
        (grid[s : s + per_chunk][:, i].ravel(), grid[s : s + per_chunk][:, j].ravel())
        for s in range(0, grid.shape[0], per_chunk)
    ]


def _score(
    values: list[tuple[npt.NDArray[np.object_], npt.NDArray[np.bool_]]],
    left: npt.NDArray[np.int64],
    right: npt.NDArray[np.int64],
    scorer: Any,
    min_columns: int,
) -> npt.NDArray[np.float64]:
    """Mean similarity over the columns present on both rows; 0 below ``min_columns`` of them."""
    total = np.zeros(len(left), dtype=np.float64)
    weight = np.zeros(len(left), dtype=np.int64)
    for text, missing in values:
        a, b = text[left].tolist(), text[right].tolist()
        sim = np.asarray(process.cpdist(a, b, scorer=scorer, dtype=np.float64), dtype=np.float64)
        both = ~(missing[left] | missing[right])
        total += np.where(both, sim, 0.0)
        weight += both
    enough = (weight >= min_columns) & (weight > 0)
    return np.where(enough, total / np.maximum(weight, 1), 0.0)
