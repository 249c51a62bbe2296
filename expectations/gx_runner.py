"""The GX reference runner: validate a polars frame with Great Expectations itself, on pandas.

This is the fallback for expectation types the polars engine does not compile and the oracle the
differential tests compare that engine against. One ephemeral GX context (in-memory stores, no
progress bars, no analytics) with a pandas data source, a dataframe asset and a whole-dataframe
batch definition is built on first use and reused for the life of the process; calls are
serialised by a lock because GX's validator state is not meant to be shared between threads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import polars as pl

from expectations.results import PROVENANCE_COLUMNS, ExpectationEntry, ExpectationOutcome
from expectations.sluice_types import refuse_sluice_types

"""Columns sluice adds to every frame; they are never shown to GX."""

ROW_COUNT_TYPES: frozenset[str] = frozenset(
    {"expect_table_row_count_to_be_between", "expect_table_row_count_to_equal"}
)
_INDEX_TAG = "_sluice_entry"
_lock = threading.Lock()


def run_gx(frame: pl.DataFrame, entries: Sequence[ExpectationEntry]) -> list[ExpectationOutcome]:
    """Validate ``frame`` with GX and return one outcome per entry, in entry order.

    ``frame`` holds the data columns (provenance columns such as ``_row_id`` are dropped here).
    Only the columns the entries read go to pandas, unless an entry needs the whole column set
    (a table-level check other than the row count, ``column_index``). Row positions in the
    outcomes are 0-based positions in ``frame``. A check GX could not compute (GX reports it in
    ``exception_info`` rather than raising) comes back with ``success=False`` and ``exception``
    set. An entry of one of sluice's own types raises ``ConfigError`` (:func:`refuse_sluice_types`).

    GX never sees a ``row_condition``: sluice compiles it with its own parser, filters the
    frame in polars, validates the kept rows with the entry stripped of its condition, and maps
    the failing positions back. A condition that cannot be applied to this frame makes that
    entry alone an exception outcome.
    """
    from expectations.polars_engine.plan import CheckError, Unsupported
    from expectations.polars_engine.row_condition import compile_row_condition

    refuse_sluice_types(entries)
    if not entries:
        return []
    data = frame.drop([c for c in PROVENANCE_COLUMNS if c in frame.columns])
    groups: dict[str, list[int]] = {}
    for pos, entry in enumerate(entries):
        groups.setdefault(_condition(entry), []).append(pos)
    outcomes: dict[int, ExpectationOutcome] = {}
    nulls: dict[str, int] | None = None
    for condition, positions in groups.items():
        group = [entries[p] for p in positions]
        if not condition:
            outcomes.update(zip(positions, _run_plain(data, group), strict=True))
            continue
        if nulls is None:
            nulls = data.null_count().row(0, named=True) if data.width else {}
        try:
            mask = data.select(compile_row_condition(condition, data.schema, nulls)).to_series()
        except (Unsupported, CheckError) as exc:
            for p, entry in zip(positions, group, strict=True):
                outcomes[p] = _failed(entry, f"the row_condition cannot be applied: {exc}")
            continue
        except Exception as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            for p, entry in zip(positions, group, strict=True):
                outcomes[p] = _failed(entry, f"the row_condition raised: {message}")
            continue
        kept = mask.fill_null(False).arg_true().cast(pl.Int64).to_numpy()
        stripped = [_without_condition(e) for e in group]
        done = _run_plain(data.filter(mask.fill_null(False)), stripped)
        for p, entry, outcome in zip(positions, group, done, strict=True):
            rows = outcome.unexpected_rows
            outcomes[p] = dataclasses.replace(
                outcome,
                entry=entry,
                unexpected_rows=None if rows is None else np.sort(kept[rows]),
                exception=_retag(outcome.exception, entry),
            )
    return [outcomes[pos] for pos in range(len(entries))]


def _condition(entry: ExpectationEntry) -> str:
    value = entry.kwargs.get("row_condition")
    if value in (None, ""):
        return ""
    if not isinstance(value, str):
        raise TypeError(f"a row_condition reached the GX runner unparsed: {value!r}")
    return value


def _without_condition(entry: ExpectationEntry) -> ExpectationEntry:
    kwargs = {
        k: v for k, v in entry.kwargs.items() if k not in ("row_condition", "condition_parser")
    }
    return dataclasses.replace(entry, kwargs=kwargs)


def _retag(message: str | None, entry: ExpectationEntry) -> str | None:
    if message is None:
        return None
    head, sep, rest = message.partition(": ")
    return (
        f"{_where(entry)}: {rest}" if sep and head == _where(_without_condition(entry)) else message
    )


def _run_plain(data: pl.DataFrame, entries: Sequence[ExpectationEntry]) -> list[ExpectationOutcome]:
    """Validate ``entries`` (none with a row_condition) on ``data`` with GX."""
    needed = _columns_needed(data, entries)
    pdf = (
        to_pandas_for_gx(data.select(needed))
        if needed
        else pd.DataFrame(index=pd.RangeIndex(data.height))
    )
    built: list[Any] = []
    outcomes: dict[int, ExpectationOutcome] = {}
    for pos, entry in enumerate(entries):
        slow = _slow_pattern(pdf, entry)
        if slow is not None:
            outcomes[pos] = _failed(entry, slow)
            continue
        try:
            built.append(_expectation(entry, pos))
        except Exception as exc:
            outcomes[pos] = _failed(entry, f"GX cannot build the expectation: {exc}")

    with _lock, _quiet():
        results = _validate_each_on_error(pdf, built, entries, outcomes)

    for result in results:
        config = result.expectation_config
        tag = (config.meta or {}).get(_INDEX_TAG)
        if not isinstance(tag, int) or not 0 <= tag < len(entries) or tag in outcomes:
            raise RuntimeError(f"GX returned a result that matches no single entry: {config}")
        outcomes[tag] = _outcome(entries[tag], result)
    return [
        outcomes.get(pos) or _failed(entry, "GX returned no result for this expectation")
        for pos, entry in enumerate(entries)
    ]


def to_pandas_for_gx(frame: pl.DataFrame) -> pd.DataFrame:
    """Convert a polars frame to the pandas frame GX sees, with a 0-based ``RangeIndex``.

    The conversion keeps to the dtypes GX's pandas metrics were written for (what ``read_csv``
    gave before pandas 3):

    - strings, categoricals and enums become ``object`` columns of ``str`` with ``None`` for
      null. pandas 3 would give its ``str`` dtype, which
      ``expect_column_values_to_be_in_type_list`` does not recognise; on ``object`` GX checks
      each value's Python type instead, so ``type_list: ["str"]`` holds;
    - integers without nulls stay ``int64`` (and friends); integers with nulls become
      ``float64`` with ``NaN``, so ``1`` is compared as ``1.0``;
    - floats stay ``float64``; a polars ``NaN`` and a null are both ``NaN``, which GX counts as
      missing (the polars engine can tell them apart: a documented difference);
    - datetimes become ``datetime64`` (time zone kept) with ``NaT``; dates become
      ``datetime64[ms]`` at midnight; booleans with nulls become ``object`` with ``None``.
    """
    text = [
        name
        for name, dtype in frame.schema.items()
        if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum)
    ]
    other = [c for c in frame.columns if c not in text]
    pdf = frame.select(other).to_pandas() if other else pd.DataFrame(index=range(frame.height))
    for name in text:
        values = frame.get_column(name).cast(pl.String).to_numpy()
        pdf[name] = pd.Series(values, dtype=object, index=pdf.index)
    pdf = pdf[frame.columns]
    pdf.index = pd.RangeIndex(frame.height)
    return pdf


def unexpected_positions(raw: Sequence[Any]) -> npt.NDArray[np.int64]:
    """Turn GX's ``unexpected_index_list`` into sorted 0-based row positions.

    GX gives a list of index labels (``int``) for an unnamed index, and a list of dicts when
    index columns are named; a dict is read through its ``_sluice_pos`` or ``index`` key.
    """
    out: list[int] = []
    for item in raw:
        value = item
        if isinstance(item, dict):
            key = next((k for k in ("_sluice_pos", "index") if k in item), None)
            if key is None:
                raise ValueError(f"unexpected_index_list entry has no position: {item!r}")
            value = item[key]
        out.append(int(value))
    return np.sort(np.asarray(out, dtype=np.int64))


def _columns_needed(frame: pl.DataFrame, entries: Sequence[ExpectationEntry]) -> list[str]:
    wanted: set[str] = set()
    for entry in entries:
        kw = entry.kwargs
        if "column_index" in kw:
            return frame.columns
        if not entry.columns and entry.type not in ROW_COUNT_TYPES:
            return frame.columns
        wanted.update(entry.columns)
    return [c for c in frame.columns if c in wanted]


PATTERN_KWARGS: tuple[str, ...] = ("regex", "regex_list")


def _slow_pattern(pdf: pd.DataFrame, entry: ExpectationEntry) -> str | None:
    """Why GX must not run this entry's patterns (one exceeds the budget, or the column holds
    bytes that are not text), or ``None``.

    GX searches ``column.astype(str)``; where pandas would use Python's ``re`` for it, the same
    search runs first under the pattern budget.
    """
    from expectations.polars_engine.bounded import PatternTimeout
    from expectations.polars_engine.pyregex import check_python_budget

    column = entry.kwargs.get("column")
    if not isinstance(column, str) or column not in pdf.columns:
        return None
    patterns: list[str] = []
    for key in PATTERN_KWARGS:
        value = entry.kwargs.get(key)
        items = value if isinstance(value, list) else [value]
        patterns.extend(p for p in items if isinstance(p, str))
    if not patterns:
        return None
    try:
        values = [str(v) for v in pdf[column].dropna().astype(str).unique()]
    except UnicodeDecodeError as exc:  # bytes that are not UTF-8: GX's own astype fails alike
        return f"{column} holds bytes that are not UTF-8 text, which a pattern cannot search: {exc}"
    try:
        for pattern in patterns:
            check_python_budget(pattern, values)
    except PatternTimeout as exc:
        return str(exc)
    return None


def _expectation(entry: ExpectationEntry, pos: int) -> Any:
    from great_expectations.expectations.registry import get_expectation_impl

    impl = get_expectation_impl(entry.type)
    return impl(**entry.kwargs, meta={**entry.meta, _INDEX_TAG: pos})


@functools.cache
def _context_batch_definition() -> Any:
    """The process-wide GX batch definition (built once, under the caller's lock)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        analytics_enabled=False,
    )
    context = gx.get_context(project_config=config, mode="ephemeral")
    asset = context.data_sources.add_pandas("sluice").add_dataframe_asset("frame")
    return asset.add_batch_definition_whole_dataframe("whole")


def _validate(pdf: pd.DataFrame, built: list[Any]) -> list[Any]:
    import great_expectations as gx

    suite = gx.ExpectationSuite(name="sluice", expectations=built)
    if len(suite.expectations) != len(built):
        raise RuntimeError(f"GX kept {len(suite.expectations)} of {len(built)} expectations")
    batch = _context_batch_definition().get_batch(batch_parameters={"dataframe": pdf})
    return list(batch.validate(suite, result_format="COMPLETE").results)


def _validate_each_on_error(
    pdf: pd.DataFrame,
    built: list[Any],
    entries: Sequence[ExpectationEntry],
    outcomes: dict[int, ExpectationOutcome],
) -> list[Any]:
    """Validate the suite in one call; if GX raises, validate one expectation at a time.

    GX reports most failing metrics in ``exception_info``, but some (a ``row_condition`` naming
    a missing column, for one) escape as exceptions; then only the culprit becomes an exception
    outcome and the other expectations still run.
    """
    if not built:
        return []
    try:
        return _validate(pdf, built)
    except Exception:
        results: list[Any] = []
        for expectation in built:
            tag = expectation.meta[_INDEX_TAG]
            try:
                results.extend(_validate(pdf, [expectation]))
            except Exception as exc:
                outcomes[tag] = _failed(entries[tag], f"GX raised {type(exc).__name__}: {exc}")
        return results


@functools.cache
def _row_level(expectation_type: str) -> bool:
    """Whether GX's class for this type is a map expectation, which names failing rows."""
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )
    from great_expectations.expectations.registry import get_expectation_impl

    cls = get_expectation_impl(expectation_type)
    return issubclass(
        cls, ColumnMapExpectation | ColumnPairMapExpectation | MulticolumnMapExpectation
    )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    logger = logging.getLogger("great_expectations")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _exception_message(info: Any) -> str | None:
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "exception without a message")
    messages = [
        str(v.get("exception_message") or "exception without a message")
        for v in info.values()
        if isinstance(v, dict) and v.get("raised_exception")
    ]
    return "; ".join(dict.fromkeys(messages)) or None


def _where(entry: ExpectationEntry) -> str:
    cols = entry.columns
    on = f" on {', '.join(cols)}" if cols else ""
    return f"{entry.type}{on} (expectation {entry.index})"


def _failed(entry: ExpectationEntry, message: str) -> ExpectationOutcome:
    return ExpectationOutcome(
        entry=entry, success=False, engine="gx", exception=f"{_where(entry)}: {message}"
    )


def _outcome(entry: ExpectationEntry, result: Any) -> ExpectationOutcome:
    message = _exception_message(result.exception_info)
    if message is not None:
        return _failed(entry, message)
    res: dict[str, Any] = dict(result.result or {})
    count = res.get("unexpected_count")
    rows: npt.NDArray[np.int64] | None = None
    if "unexpected_index_list" in res:
        rows = unexpected_positions(res["unexpected_index_list"] or [])
        if count is not None and len(rows) != int(count):
            return _failed(
                entry,
                f"GX counted {count} unexpected values but listed {len(rows)} positions",
            )
    elif count and _row_level(entry.type):
        return _failed(entry, "GX counted unexpected values but listed no positions")
    return ExpectationOutcome(
        entry=entry,
        success=bool(result.success),
        engine="gx",
        unexpected_count=int(count) if count is not None else None,
        unexpected_rows=rows,
        observed_value=res.get("observed_value"),
    )
