"""Near-duplicate suggestions for entity records (people, places, products, citations).

Chosen without labels, from the shape of the values, never from column names:

- **blocking columns** are identifier-like: dates, or integer or text columns whose values are
  digit-heavy or code-shaped (no spaces, a digit in them) and of one width on
  :data:`BLOCK_MIN_WIDTH_SHARE` of rows (codes, not counts or amounts), with a high distinct share
  (:data:`BLOCK_MIN_DISTINCT`: a value is shared by a few rows at most) yet not unique (a unique
  column is a row key and blocks nothing). Each such column is its own entry (a duplicate whose
  identifier has a typo is still found through another one), up to :data:`MAX_ENTRIES`, the most
  distinct first. A column whose equal values would make more than :data:`MAX_PAIRS_PER_ROW`
  pairs per row in the sample is no block;
- **compared columns** are the name/address-like text: string columns mostly letters
  (:data:`TEXT_MIN_LETTERS`), not categorical (:data:`TEXT_MIN_VALUES` distinct values or
  :data:`TEXT_MIN_DISTINCT` of rows), not a unique row key,
  plus the other blocking columns (a date of birth is evidence when blocking on a postcode);
- **the threshold** separates a duplicate from two different entities: rows of the sample paired
  at random (seeded) are nearly all different entities, so the threshold is the
  :data:`RANDOM_QUANTILE` quantile of their scores plus :data:`THRESHOLD_MARGIN`, and never below
  :data:`THRESHOLD_FLOOR` (Jaro-Winkler, the engine's default measure).

Duplicates are expected to fail, so these entries are not judged by the ``max_fail`` rule of the
other suggestions: each carries its own evidence (the blocks, the pairs compared, the rows it
flags on the whole sample, the random pairs' scores and how many reach the threshold). Cost: the
engine scores ``sum k(k-1)/2`` pairs over blocks of ``k`` rows, at most
:data:`MAX_PAIRS_PER_ROW` per sample row when suggested; blocks larger than ``max_block_size`` are
counted in the verdict, never compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from rapidfuzz import process, utils
from rapidfuzz.distance import JaroWinkler

from expectations.engine import validate
from expectations.suite import suite_from_dict
from sluice.profile.columns import Column
from sluice.profile.rules import Candidate

NEAR = "sluice.expect_rows_to_not_be_near_duplicates"
MIN_ROWS = 20
BLOCK_MIN_DISTINCT = 0.3
BLOCK_MAX_NULL = 0.5
MAX_PAIRS_PER_ROW = 5.0
MAX_ENTRIES = 4
TEXT_MIN_LETTERS = 0.5
TEXT_MIN_DISTINCT = 0.1
TEXT_MIN_VALUES = 100
BLOCK_MIN_WIDTH_SHARE = 0.8
MIN_COMPARE = 2
RANDOM_PAIRS = 20_000
RANDOM_QUANTILE = 0.99
THRESHOLD_MARGIN = 0.1
THRESHOLD_FLOOR = 0.8
THRESHOLD_CEILING = 0.95
BLOCK_SIZE_FACTOR = 10
MIN_BLOCK_SIZE = 50


@dataclass(frozen=True)
class _Profiled:
    name: str
    distinct: float
    nulls: float
    pairs_per_row: float
    largest: int
    letters: float
    digits: float
    code_shaped: float
    values: int
    width_share: float


def near_duplicates(
    frame: pl.DataFrame, columns: Sequence[Column], keys: Sequence[str], seed: int
) -> list[Candidate]:
    """Near-duplicate entries for ``frame`` (every sample row, in the declared types), each with
    its evidence; none when the rows have no identifier-like column or no text to compare."""
    n = frame.height
    if n < MIN_ROWS:
        return []
    schema = frame.schema  # once: made per column, it grew as the square of the columns
    scalar = [
        c for c in columns if c.type in ("string", "int", "date") and not schema[c.name].is_nested()
    ]
    stats = {c.name: _profile(frame.get_column(c.name)) for c in scalar}
    blocks = sorted(
        (s for c in scalar if _blocks(c, s := stats[c.name])),
        key=lambda s: -s.distinct,
    )[:MAX_ENTRIES]
    texts = [
        c.name
        for c in scalar
        if c.type == "string"
        and c.name not in keys
        and stats[c.name].letters >= TEXT_MIN_LETTERS
        and stats[c.name].distinct < 1
        and (stats[c.name].distinct >= TEXT_MIN_DISTINCT or stats[c.name].values >= TEXT_MIN_VALUES)
        and stats[c.name].nulls <= BLOCK_MAX_NULL
    ]
    if not blocks or len(texts) < MIN_COMPARE:
        return []
    block_names = [b.name for b in blocks]
    out: list[Candidate] = []
    for b in blocks:
        compare = texts + [x for x in block_names if x != b.name]
        scores = _random_scores(frame, compare, seed)
        high = float(np.quantile(scores, RANDOM_QUANTILE)) if scores.size else 0.0
        threshold = round(min(THRESHOLD_CEILING, max(THRESHOLD_FLOOR, high + THRESHOLD_MARGIN)), 3)
        max_block = min(1000, max(MIN_BLOCK_SIZE, BLOCK_SIZE_FACTOR * b.largest))
        kwargs: dict[str, Any] = {
            "block_on": [b.name],
            "compare": compare,
            "threshold": threshold,
            "max_block_size": max_block,
        }
        observed, flagged = _run(frame, kwargs)
        reach = int((scores >= threshold).sum())
        why = (
            f"{b.name} is identifier-like ({b.distinct:.0%} of values distinct, "
            f"{_looks(b)}): rows sharing it are compared on {', '.join(compare)}; "
            f"{RANDOM_QUANTILE:.1%} of {scores.size} random row pairs score below "
            f"{high:.3f} (different entities); threshold {threshold}: that plus "
            f"{THRESHOLD_MARGIN}, kept within {THRESHOLD_FLOOR} to {THRESHOLD_CEILING}"
        )
        c = Candidate(NEAR, kwargs, lambda f: pl.Series([True] * f.height), why)
        c.evidence = {
            "why": why,
            "judged": "outside max_fail_share: duplicates are expected to fail",
            "sample_rows": n,
            "flagged_rows": flagged,
            "flagged_share": round(flagged / n, 6),
            "block_distinct_share": round(b.distinct, 6),
            "block_missing_share": round(b.nulls, 6),
            "largest_block": b.largest,
            "pairs_compared": observed.get("pairs_compared", 0),
            "random_pairs": int(scores.size),
            "random_pair_score_quantile": {str(RANDOM_QUANTILE): round(high, 6)},
            "random_pairs_at_threshold": reach,
        }
        out.append(c)
    return out


def _looks(s: _Profiled) -> str:
    if s.digits >= 0.5:
        return f"{s.digits:.0%} digits"
    if s.code_shaped >= 0.9:
        return "code-shaped"
    return "a date"


def _profile(values: pl.Series) -> _Profiled:
    present = values.drop_nulls()
    n = max(1, values.len())
    counts = present.alias("v").value_counts(name="count").get_column("count")
    pairs = float((counts * (counts - 1) / 2).sum())
    text = present.cast(pl.String).str.strip_chars()
    joined = "".join(text.head(2000).str.replace_all(r"\s", "").to_list())
    total = max(1, len(joined))
    coded = ~text.str.contains(r"\s") & text.str.contains(r"[0-9]") & (text.str.len_chars() >= 2)
    code = float(coded.sum()) / max(1, text.len())
    return _Profiled(
        name=str(values.name),
        distinct=present.n_unique() / max(1, present.len()),
        nulls=values.null_count() / n,
        pairs_per_row=pairs / n,
        largest=int(counts.max() or 0) if counts.len() else 0,  # type: ignore[arg-type]
        letters=sum(ch.isalpha() for ch in joined) / total,
        digits=sum(ch.isdigit() for ch in joined) / total,
        code_shaped=code,
        values=present.n_unique(),
        width_share=_width_share(text),
    )


def _width_share(text: pl.Series) -> float:
    """The share of values of the most common length."""
    if text.len() == 0:
        return 0.0
    lengths = text.str.len_chars().alias("v").value_counts(name="count")
    return int(lengths.get_column("count").max() or 0) / text.len()  # type: ignore[arg-type]


def _blocks(col: Column, s: _Profiled) -> bool:
    """Whether ``col`` is identifier-like enough to block on."""
    shaped = col.type == "date" or (
        col.type in ("int", "string")
        and (s.digits >= 0.5 or s.code_shaped >= 0.9)
        and s.width_share >= BLOCK_MIN_WIDTH_SHARE
    )
    return (
        shaped
        and BLOCK_MIN_DISTINCT <= s.distinct < 1
        and s.nulls <= BLOCK_MAX_NULL
        and s.pairs_per_row <= MAX_PAIRS_PER_ROW
        and s.largest >= 2
    )


def _random_scores(frame: pl.DataFrame, compare: Sequence[str], seed: int) -> np.ndarray[Any, Any]:
    """The engine's pair score (mean Jaro-Winkler over the columns present on both rows, 0 below
    half of them) of row pairs drawn at random."""
    n = frame.height
    rng = np.random.default_rng(seed)
    left = rng.integers(0, n, RANDOM_PAIRS)
    right = rng.integers(0, n, RANDOM_PAIRS)
    keep = left != right
    left, right = left[keep], right[keep]
    total = np.zeros(len(left))
    weight = np.zeros(len(left), dtype=np.int64)
    for name in compare:
        col = frame.get_column(name).cast(pl.String)
        missing = col.is_null().to_numpy()
        text = np.array([utils.default_process(v or "") for v in col.to_list()], dtype=object)
        sim = process.cpdist(
            text[left].tolist(), text[right].tolist(), scorer=JaroWinkler.normalized_similarity
        )
        both = ~(missing[left] | missing[right])
        total += np.where(both, np.asarray(sim, dtype=np.float64), 0.0)
        weight += both
    enough = (weight >= (len(compare) + 1) // 2) & (weight > 0)
    return np.where(enough, total / np.maximum(weight, 1), 0.0)


def _run(frame: pl.DataFrame, kwargs: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The engine's observed value and flagged rows for one entry on every sample row."""
    suite = suite_from_dict({"name": "init", "expectations": [{"type": NEAR, "kwargs": kwargs}]})
    (out,) = validate(frame, suite, engine="polars")
    observed = out.observed_value if isinstance(out.observed_value, dict) else {}
    flagged = 0 if out.unexpected_rows is None else len(out.unexpected_rows)
    return observed, flagged
