"""A suite over a partition read in row batches, with the outcomes the whole frame would give.

Every entry is compiled once against the partition's schema and its null counts (what the polars
engine compiles against on the whole frame), then classified by what its verdict depends on:

- ``row``: each row's verdict depends on that row only (sets, ranges, patterns, types, pairs,
  within-record checks, row conditions): evaluated per batch; a :class:`RowState` per batch
  holds the rows in the domain, the rows considered and the rows that failed, and states merge
  by addition (associative and commutative), so ``mostly`` and the counts are judged on the
  partition's totals.
- ``count``: the table's row count (with or without a row condition): a sum over batches.
- ``sum``: the mean and the sum of a float column: an exact sum per batch
  (:class:`~expectations.exact.ExactSum`), merged, then rounded once, as the whole column's.
- ``schema``: checks of the column set, count, order and dtypes: judged from the schema alone.
- ``unique``: column and compound uniqueness: the per-batch state counts the domain and the
  considered rows; which rows repeat is found by the caller through hash buckets of the
  considered rows (all occurrences of a value share a bucket).
- ``whole``: everything else (aggregates such as mean, stdev, median, quantiles, distinct
  values and modes, neighbour and z-score checks, sluice's group rules, and whatever the
  polars engine does not compile and GX runs): run by the ordinary engine on a projection of
  only the columns the entry reads, which gives the whole frame's answer exactly (same values,
  same order, same summation) at the cost of those columns of the partition in memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from expectations.exact import ExactSum
from expectations.polars_engine.plan import (
    ARRAY_KEY,
    BatchPlan,
    CheckError,
    Ctx,
    FramePlan,
    Plan,
    RowPlan,
    Unsupported,
)
from expectations.polars_engine.runner import _raised, compile_entry
from expectations.results import ExpectationEntry, ExpectationOutcome
from sluice.core.errors import ConfigError
from sluice.core.frame import EngineChoice

Kind = Literal["row", "count", "sum", "schema", "unique", "whole"]

ROW_LOCAL_TYPES: frozenset[str] = frozenset(
    {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_null",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_in_set",
        "expect_column_values_to_be_between",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_not_match_regex",
        "expect_column_values_to_match_regex_list",
        "expect_column_values_to_not_match_regex_list",
        "expect_column_values_to_match_like_pattern",
        "expect_column_values_to_not_match_like_pattern",
        "expect_column_values_to_match_like_pattern_list",
        "expect_column_values_to_not_match_like_pattern_list",
        "expect_column_values_to_match_strftime_format",
        "expect_column_values_to_be_dateutil_parseable",
        "expect_column_values_to_be_json_parseable",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_be_in_type_list",
        "expect_column_value_lengths_to_be_between",
        "expect_column_value_lengths_to_equal",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "expect_column_pair_values_to_be_equal",
        "expect_column_pair_values_to_be_in_set",
        "expect_select_column_values_to_be_unique_within_record",
        "expect_multicolumn_sum_to_equal",
    }
)
"""Types whose compiled row plan judges each row by that row alone (an allowlist: a type added
to the engine is run on a projection until it is known to be row-local)."""
COUNT_TYPES: frozenset[str] = frozenset(
    {"expect_table_row_count_to_be_between", "expect_table_row_count_to_equal"}
)
SUM_TYPES: frozenset[str] = frozenset(
    {"expect_column_mean_to_be_between", "expect_column_sum_to_be_between"}
)
"""Types whose float aggregate is an exact sum (:class:`expectations.exact.ExactSum`)."""
UNIQUE_TYPES: frozenset[str] = frozenset(
    {"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"}
)
INDEX = "__sluice_row"


@dataclass(frozen=True)
class RowState:
    """What some rows gave for one entry: rows in its domain, rows considered, rows that
    failed, and the first error met (the check could not run)."""

    domain: int = 0
    considered: int = 0
    unexpected: int = 0
    exception: str | None = None

    def merge(self, other: RowState) -> RowState:
        """The state of both parts' rows together (associative, commutative)."""
        return RowState(
            self.domain + other.domain,
            self.considered + other.considered,
            self.unexpected + other.unexpected,
            self.exception if self.exception is not None else other.exception,
        )


@dataclass(frozen=True)
class Entry:
    """One suite entry classified for a batched run (``plan`` is None for ``whole`` ones, or
    when compiling raised ``error``, which GX would raise running it)."""

    entry: ExpectationEntry
    kind: Kind
    plan: Plan | None = None
    ctx: Ctx | None = None
    mostly: float = 1.0
    error: str | None = None


@dataclass(frozen=True)
class BatchResult:
    """One batch's states (by entry index), the failing rows of row entries (positions in the
    batch) and the considered mask of unique entries."""

    states: dict[int, RowState]
    rows: dict[int, npt.NDArray[np.int64]]
    considered: dict[int, npt.NDArray[np.bool_]]
    sums: dict[int, ExactSum]


def classify(
    entries: Sequence[ExpectationEntry],
    schema: pl.Schema,
    null_counts: Mapping[str, int],
    engine: EngineChoice,
) -> list[Entry]:
    """Compile and classify every entry for ``schema`` (the data columns, without provenance)
    and the partition's ``null_counts``, as the engine would compile it on the whole frame."""
    empty = pl.DataFrame(schema=schema)
    out: list[Entry] = []
    for pos, e in enumerate(entries):
        if engine == "gx":
            out.append(Entry(e, "whole"))
            continue
        try:
            plan, ctx = compile_entry(e, empty, null_counts, prefix=f"__sluice_{pos}_")
            mostly = ctx.mostly()
        except (Unsupported, ConfigError):
            out.append(Entry(e, "whole"))
            continue
        except CheckError as exc:
            out.append(Entry(e, "schema", error=str(exc)))
            continue
        kind: Kind = "whole"
        if isinstance(plan, RowPlan):
            if e.type in UNIQUE_TYPES:
                kind = "unique"
            elif e.type in ROW_LOCAL_TYPES and not plan.sequence:
                kind = "row"
        elif isinstance(plan, BatchPlan):
            if not plan.aggregates:
                kind = "schema"
            elif e.type in COUNT_TYPES:
                kind = "count"
            elif e.type in SUM_TYPES and set(plan.aggregates) == {ARRAY_KEY}:
                kind = "sum"
        elif isinstance(plan, FramePlan):
            kind = "whole"
        out.append(Entry(e, kind, plan if kind != "whole" else None, ctx, mostly))
    return out


def _selects(pos: int, item: Entry) -> tuple[dict[str, pl.Expr], list[pl.Expr]]:
    plan, ctx = item.plan, item.ctx
    assert ctx is not None
    if isinstance(plan, BatchPlan):
        return {}, [expr.alias(f"b{pos}_{key}") for key, expr in plan.aggregates.items()]
    assert isinstance(plan, RowPlan)
    masks = dict(plan.columns)
    name = f"__sluice_c{pos}"
    masks[name] = plan.considered
    considered = pl.col(name)
    count = ctx.domain_count if plan.considered is ctx.domain else considered.sum()
    selected = [ctx.domain_count.alias(f"d{pos}"), count.alias(f"c{pos}")]
    if item.kind == "unique":
        selected.append(considered.implode().alias(f"m{pos}"))
    else:
        rows = pl.col(INDEX).filter(considered & plan.failing)
        selected.append(rows.implode().alias(f"r{pos}"))
    return masks, selected


def _collect(
    data: pl.DataFrame, parts: list[tuple[dict[str, pl.Expr], list[pl.Expr]]]
) -> dict[str, pl.Series]:
    masks = {name: expr for m, _ in parts for name, expr in m.items()}
    selected = [e for _, s in parts for e in s]
    lazy = data.lazy()
    if masks:
        lazy = lazy.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(INDEX), **masks)
    out = lazy.select(selected).collect()
    return {name: out.get_column(name) for name in out.columns}


def run_batch(data: pl.DataFrame, items: Sequence[Entry]) -> BatchResult:
    """Evaluate the ``row``, ``count`` and ``unique`` entries of ``items`` on one batch (its
    data columns, without provenance).

    An entry whose evaluation raises gets a state carrying the error, as the whole frame's run
    would (it evaluates entries one by one once the suite's single query raised).
    """
    chosen = {
        e.entry.index: e
        for e in items
        if e.kind in ("row", "count", "sum", "unique") and e.error is None
    }
    parts = {i: _selects(i, e) for i, e in chosen.items()}
    states: dict[int, RowState] = {}
    values: dict[str, pl.Series] = {}
    if parts:
        try:
            values = _collect(data, list(parts.values()))
        except Exception:
            for i, part in parts.items():
                try:
                    values.update(_collect(data, [part]))
                except Exception as exc:
                    states[i] = RowState(exception=str(exc).splitlines()[0])
    rows: dict[int, npt.NDArray[np.int64]] = {}
    considered: dict[int, npt.NDArray[np.bool_]] = {}
    sums: dict[int, ExactSum] = {}
    for i, item in chosen.items():
        if i in states:
            continue
        if item.kind == "sum":
            found = values[f"b{i}_{ARRAY_KEY}"][0]
            assert isinstance(found, pl.Series)
            sums[i] = ExactSum.of(found.to_numpy())
            states[i] = RowState()
            continue
        if item.kind == "count":
            plan = item.plan
            assert isinstance(plan, BatchPlan)
            total = sum(int(values[f"b{i}_{k}"][0]) for k in plan.aggregates)
            states[i] = RowState(domain=total)
            continue
        d, c = int(values[f"d{i}"][0]), int(values[f"c{i}"][0])
        if item.kind == "unique":
            mask = values[f"m{i}"][0]
            assert isinstance(mask, pl.Series)
            considered[i] = mask.fill_null(False).to_numpy().astype(np.bool_, copy=False)
            states[i] = RowState(d, c)
            continue
        found = values[f"r{i}"][0]
        assert isinstance(found, pl.Series)
        rows[i] = found.to_numpy().astype(np.int64, copy=False)
        states[i] = RowState(d, c, len(rows[i]))
    return BatchResult(states, rows, considered, sums)


def finish(item: Entry, state: RowState, exact: ExactSum | None = None) -> ExpectationOutcome:
    """The outcome of a ``row``, ``count``, ``sum``, ``schema`` or ``unique`` entry from its
    merged state (``exact`` for a ``sum`` entry), judged with GX's rules as the polars engine
    judges the whole frame."""
    entry = item.entry
    if item.error is not None:
        return _raised(entry, item.error)
    if state.exception is not None:
        return _raised(entry, state.exception)
    plan = item.plan
    try:
        if isinstance(plan, BatchPlan):
            collected: dict[str, object] = {k: state.domain for k in plan.aggregates}
            if item.kind == "sum":
                collected = {ARRAY_KEY: exact if exact is not None else ExactSum()}
            result = plan.finish(collected)
            return ExpectationOutcome(
                entry=entry,
                success=bool(result.success),
                engine="polars",
                unexpected_count=result.unexpected_count,
                observed_value=result.observed_value,
            )
        assert isinstance(plan, RowPlan)
        if plan.error is not None and state.considered >= plan.error_min_rows:
            raise CheckError(plan.error)
    except CheckError as exc:
        return _raised(entry, str(exc))
    except pl.exceptions.PolarsError as exc:
        return _raised(entry, str(exc).splitlines()[0])
    denominator = state.domain if plan.denominator == "domain" else state.considered
    if state.domain == 0 or denominator == 0:
        success = True
    else:
        success = (float(denominator) - float(state.unexpected)) / float(denominator) >= item.mostly
    return ExpectationOutcome(
        entry=entry,
        success=success,
        engine="polars",
        unexpected_count=state.unexpected,
        unexpected_rows=np.empty(0, dtype=np.int64),
    )


__all__ = [
    "COUNT_TYPES",
    "ROW_LOCAL_TYPES",
    "SUM_TYPES",
    "UNIQUE_TYPES",
    "BatchResult",
    "Entry",
    "Kind",
    "RowState",
    "classify",
    "finish",
    "run_batch",
]
