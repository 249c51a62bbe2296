"""Run a whole suite on a polars frame in one pass.

Every entry compiles to polars expressions; one ``select`` computes, for each row-level entry,
the positions of its failing rows and its counts, and for each batch-level entry its aggregates.
That select is collected once; verdicts are then judged from the collected values with GX's
rules (``mostly``, vacuous truth on empty domains, ``_validate_metric_value_between``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from expectations.polars_engine.plan import (
    ARRAY_KEY,
    POSITION,
    BatchPlan,
    CheckError,
    Ctx,
    FramePlan,
    Plan,
    Unsupported,
)
from expectations.polars_engine.registry import COMPILERS, SUPPORTED_TYPES
from expectations.polars_engine.row_condition import compile_row_condition, condition_columns
from expectations.results import PROVENANCE_COLUMNS, ExpectationEntry, ExpectationOutcome
from sluice.core.errors import ConfigError, SluiceError


class ExpectationRaised(SluiceError):
    """A check raised and its entry sets ``catch_exceptions: false``."""


@dataclass(frozen=True)
class _Compiled:
    entry: ExpectationEntry
    plan: Plan
    ctx: Ctx
    mostly: float


def data_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame without sluice's provenance columns (GX never sees them either)."""
    return frame.drop([c for c in PROVENANCE_COLUMNS if c in frame.columns])


def compile_entry(
    entry: ExpectationEntry,
    frame: pl.DataFrame,
    null_counts: Mapping[str, int] | None = None,
    prefix: str = "__sluice_",
    schema: pl.Schema | None = None,
) -> tuple[Plan, Ctx]:
    """Compile one entry against a frame's columns (``schema``: the frame's, when the caller
    holds it: making it costs a few milliseconds a thousand columns, for every entry).

    Raises :class:`Unsupported` when the polars engine does not compile it,
    :class:`CheckError` when GX would raise running it, ``ConfigError`` when its kwargs are
    malformed.
    """
    compiler = COMPILERS.get(entry.type)
    if compiler is None:
        raise Unsupported(f"{entry.type} is not compiled")
    schema = frame.schema if schema is None else schema
    condition = entry.kwargs.get("row_condition")
    domain: pl.Expr = pl.repeat(True, pl.len())
    domain_count: pl.Expr = pl.len()
    if condition:
        if not isinstance(condition, str):
            raise Unsupported("a row_condition given as an object")
        parser = entry.kwargs.get("condition_parser")
        if parser not in (None, "pandas"):
            raise Unsupported(f"condition_parser {parser!r}")
    nulls = _null_counts(frame) if null_counts is None else null_counts
    if condition:
        domain = compile_row_condition(condition, schema, nulls)
        domain_count = domain.sum()
    ctx = Ctx(entry, schema, domain, domain_count, nulls, prefix)
    return compiler(ctx), ctx


def _null_counts(frame: pl.DataFrame) -> dict[str, int]:
    return frame.null_count().row(0, named=True) if frame.width else {}


def compiled_on(frame: pl.DataFrame) -> Callable[[ExpectationEntry], bool]:
    """:func:`supports` on ``frame`` for many entries: the frame's data columns, schema and null
    counts made once (per entry, they cost time in proportion to the columns: a suite of a
    check or two per column grew as the square of the columns)."""
    data = data_columns(frame)
    schema = data.schema
    nulls = _null_counts(data)

    def compiles(entry: ExpectationEntry) -> bool:
        if entry.type not in COMPILERS:
            return False
        try:
            compile_entry(entry, data, nulls, schema=schema)
        except Unsupported:
            return False
        except (CheckError, ConfigError):
            return True
        return True

    return compiles


def supports(entry: ExpectationEntry, frame: pl.DataFrame | None = None) -> bool:
    """Whether the polars engine compiles ``entry`` (on ``frame``'s columns, when given).

    Without a frame only the type and the ``row_condition`` syntax are checked; some entries
    compile only for some dtypes (a regex on a float column goes to GX).
    """
    if entry.type not in COMPILERS:
        return False
    if frame is None:
        condition = entry.kwargs.get("row_condition")
        if not condition:
            return True
        if not isinstance(condition, str):
            return False
        if entry.kwargs.get("condition_parser") not in (None, "pandas"):
            return False
        names = condition_columns(condition)
        if names is None:
            return False
        try:
            compile_row_condition(condition, pl.Schema(dict.fromkeys(names, pl.String())))
        except Unsupported:
            return False
        except CheckError:
            return True
        return True
    return compiled_on(frame)(entry)


def unsupported_error(
    entry: ExpectationEntry, reason: str, path: Path | str | None = None
) -> ConfigError:
    """The error the polars engine gives for an entry it cannot compile."""
    what = (
        f"the polars engine compiles {entry.type} but not here: {reason}"
        if entry.type in COMPILERS
        else f"the polars engine does not compile {entry.type}"
    )
    return ConfigError(
        f"{what} (run it with engine auto or gx)",
        file=path if path is not None else "<suite>",
        line=entry.line,
        key=f"expectations[{entry.index}]",
        found=entry.type,
        allowed="these types: " + ", ".join(SUPPORTED_TYPES),
    )


def run_polars(
    frame: pl.DataFrame,
    entries: Sequence[ExpectationEntry],
    *,
    path: Path | str | None = None,
    null_counts: Mapping[str, int] | None = None,
) -> list[ExpectationOutcome]:
    """Validate ``frame`` with the polars engine: one outcome per entry, in entry order.

    Every entry must compile (``ConfigError`` names the first that does not, with the list of
    supported types). Row positions are 0-based positions in ``frame``. ``null_counts`` (each
    column's nulls in the whole partition, when ``frame`` is a part of it) is what entries
    compile against; by default the frame's own.
    """
    data = data_columns(frame)
    nulls = _null_counts(data) if null_counts is None else null_counts
    schema = data.schema
    compiled: dict[int, _Compiled] = {}
    outcomes: dict[int, ExpectationOutcome] = {}
    for pos, entry in enumerate(entries):
        try:
            plan, ctx = compile_entry(entry, data, nulls, prefix=f"__sluice_{pos}_", schema=schema)
            compiled[pos] = _Compiled(entry, plan, ctx, ctx.mostly())
        except Unsupported as exc:
            raise unsupported_error(entry, str(exc), path) from None
        except CheckError as exc:
            outcomes[pos] = _raised(entry, str(exc))
        except ConfigError as exc:
            if path is None or exc.file not in (None, "<suite>"):
                raise
            raise ConfigError(
                exc.problem,
                file=path,
                line=exc.line,
                key=exc.key,
                found=exc.found,
                allowed=exc.allowed,
            ) from None

    values = _evaluate(data, compiled, outcomes)
    for pos, item in compiled.items():
        if pos in outcomes:
            continue
        try:
            if isinstance(item.plan, FramePlan):
                outcomes[pos] = _judge_frame(item, item.plan, data)
            else:
                outcomes[pos] = _judge(item, pos, values)
        except CheckError as exc:
            outcomes[pos] = _raised(item.entry, str(exc))
        except pl.exceptions.PolarsError as exc:
            outcomes[pos] = _raised(item.entry, str(exc).splitlines()[0])
    return [outcomes[pos] for pos in range(len(entries))]


INDEX = "__sluice_row"


def _stage(pos: int, item: _Compiled) -> tuple[dict[str, pl.Expr], list[pl.Expr]]:
    """The masks one entry adds to the frame, and the scalars it selects from it."""
    plan = item.plan
    if isinstance(plan, FramePlan):
        return {}, []
    if isinstance(plan, BatchPlan):
        return {}, [expr.alias(f"b{pos}_{key}") for key, expr in plan.aggregates.items()]
    masks = dict(plan.columns)
    considered_name = f"__sluice_c{pos}"
    masks[considered_name] = plan.considered
    considered = pl.col(considered_name)
    index = pl.col(INDEX)
    if plan.sequence:
        subset = considered if plan.subset is None else plan.subset
        rows = index.filter(subset).filter(plan.failing)
    else:
        rows = index.filter(considered & plan.failing)
    count = item.ctx.domain_count if plan.considered is item.ctx.domain else considered.sum()
    return masks, [
        rows.implode().alias(f"r{pos}"),
        item.ctx.domain_count.alias(f"d{pos}"),
        count.alias(f"c{pos}"),
    ]


QUERY_ENTRIES = 256
"""Entries evaluated by one lazy query: planning a query grows faster than its expressions (a
suite of 8,000 entries over 4,000 columns: 20 CPU s in one query, 2.7 in queries of 256)."""


def _collect(
    data: pl.DataFrame, stages: list[tuple[dict[str, pl.Expr], list[pl.Expr]]]
) -> pl.DataFrame:
    """Lazy queries of at most ``QUERY_ENTRIES`` entries each: add the row index and every
    mask, then select every result; their one-row results side by side."""
    parts = []
    for at in range(0, len(stages), QUERY_ENTRIES):
        some = stages[at : at + QUERY_ENTRIES]
        masks = {name: expr for m, _ in some for name, expr in m.items()}
        selected = [e for _, s in some for e in s]
        if not selected:
            continue
        lazy = data.lazy()
        if masks:
            lazy = lazy.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias(INDEX), **masks)
        parts.append(lazy.select(selected).collect())
    return pl.concat(parts, how="horizontal") if parts else pl.DataFrame()


def _evaluate(
    data: pl.DataFrame, compiled: Mapping[int, _Compiled], outcomes: dict[int, ExpectationOutcome]
) -> dict[str, pl.Series]:
    stages = {pos: _stage(pos, item) for pos, item in compiled.items()}
    if not any(selected for _, selected in stages.values()):
        return {}
    try:
        out = _collect(data, list(stages.values()))
        return {name: out.get_column(name) for name in out.columns}
    except Exception:
        # One entry's check raised (as GX's would): find it by evaluating entries one by one.
        pass
    values: dict[str, pl.Series] = {}
    for pos, item in compiled.items():
        if not stages[pos][1]:
            continue
        try:
            out = _collect(data, [stages[pos]])
        except Exception as exc:
            outcomes[pos] = _raised(item.entry, str(exc).splitlines()[0])
            continue
        values.update({name: out.get_column(name) for name in out.columns})
    return values


def _scalar(series: pl.Series, key: str = "") -> Any:
    value = series[0]
    if isinstance(value, pl.Series):
        return value.to_numpy() if key.startswith(ARRAY_KEY) else value.to_list()
    return value


def _judge_frame(item: _Compiled, plan: FramePlan, data: pl.DataFrame) -> ExpectationOutcome:
    """Run a frame plan on the rows its condition keeps and judge it as a row-level check."""
    kept = data.with_row_index(POSITION).filter(item.ctx.domain)
    found = plan.compute(kept.with_columns(pl.col(POSITION).cast(pl.Int64)))
    unexpected = len(found.rows)
    considered = found.considered
    success = (
        kept.height == 0
        or considered == 0
        or (considered - unexpected) / considered >= (item.mostly)
    )
    return ExpectationOutcome(
        entry=item.entry,
        success=success,
        engine="polars",
        unexpected_count=unexpected,
        unexpected_rows=found.rows,
        observed_value=found.observed_value,
        row_details=found.details,
        duplicate_of=found.duplicate_of,
    )


def _judge(item: _Compiled, pos: int, values: Mapping[str, pl.Series]) -> ExpectationOutcome:
    plan = item.plan
    assert not isinstance(plan, FramePlan)
    entry = item.entry
    if isinstance(plan, BatchPlan):
        collected = {key: _scalar(values[f"b{pos}_{key}"], key) for key in plan.aggregates}
        result = plan.finish(collected)
        return ExpectationOutcome(
            entry=entry,
            success=bool(result.success),
            engine="polars",
            unexpected_count=result.unexpected_count,
            observed_value=result.observed_value,
        )
    rows_value = values[f"r{pos}"][0]
    assert isinstance(rows_value, pl.Series)
    rows = rows_value.to_numpy().astype(np.int64, copy=False)
    n_domain = int(values[f"d{pos}"][0])
    n_considered = int(values[f"c{pos}"][0])
    if plan.error is not None and n_considered >= plan.error_min_rows:
        raise CheckError(plan.error)
    unexpected = len(rows)
    denominator = n_domain if plan.denominator == "domain" else n_considered
    if n_domain == 0 or denominator == 0:
        success = True
    else:
        success = (float(denominator) - float(unexpected)) / float(denominator) >= item.mostly
    return ExpectationOutcome(
        entry=entry,
        success=success,
        engine="polars",
        unexpected_count=unexpected,
        unexpected_rows=rows,
    )


def _where(entry: ExpectationEntry) -> str:
    cols = entry.columns
    on = f" on {', '.join(cols)}" if cols else ""
    return f"{entry.type}{on} (expectation {entry.index})"


def _raised(entry: ExpectationEntry, message: str) -> ExpectationOutcome:
    if entry.kwargs.get("catch_exceptions") is False:
        raise ExpectationRaised(f"{_where(entry)}: {message}")
    return ExpectationOutcome(
        entry=entry, success=False, engine="polars", exception=f"{_where(entry)}: {message}"
    )
