"""The soft path: sluice's verdict on a frame in one call, built from the pipeline's own core.

:func:`screen` takes a polars DataFrame or a pyarrow Table and a GX suite and returns a
:class:`ScreenResult`: the clean rows, the quarantined rows with their reasons, the failures
table, every expectation's verdict, the counts and the run's verdict. :func:`validate` is the
strict twin: the clean rows, or :class:`~sluice.core.errors.ValidationFailed`. Nothing is
written and Prefect is not imported.

The pipeline's stages (``sluice.pipeline.stages`` and the write stage) call the functions this
module is built from, so one place decides what is checked (:func:`check_rows`), which rows
detectors score (:func:`rows_to_score`, :func:`why_not_scored`), how rows are split
(:func:`split_rows`), counted (:func:`count_rows`) and judged (:func:`judge_rows`). Only reading
and writing files stays in the stages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pyarrow as pa
from pydantic import TypeAdapter, ValidationError

from detectors.screen import screen as score_detectors
from detectors.spec import DetectorSpec
from expectations.engine import validate as run_suite
from expectations.failures import failures_from_outcomes
from expectations.results import Suite
from expectations.suite import UNIQUENESS_TYPES, check_columns, load_suite, suite_from_dict
from sluice.config import ColumnSpec, ColumnType, PoliciesSpec, name_problem
from sluice.core.errors import ConfigError, InputError, ValidationFailed
from sluice.core.failures import concat_failures
from sluice.core.frame import (
    ENGINE_CHOICES,
    PROVENANCE,
    RESERVED_COLUMNS,
    ROW_ID,
    SOURCE_FILE,
    SOURCE_ROW,
    EngineChoice,
    split_in_order,
)
from sluice.decide import (
    QUARANTINING,
    Split,
    drop_shadowed,
    key_duplicates,
    split,
    trace_duplicates,
)
from sluice.ingest import arrow_to_polars, polars_dtype, type_frame
from sluice.verdict import (
    Verdict,
    hinted_reasons,
    judge,
    measure,
    type_hints,
    verdict_state,
    why_not_run,
)
from sluice.write import ConservationError

__all__ = [
    "FRAME_SOURCE",
    "Checked",
    "ScreenResult",
    "check_rows",
    "count_rows",
    "critical_checks",
    "judge_rows",
    "key_check",
    "rows_to_score",
    "screen",
    "split_rows",
    "validate",
    "why_not_scored",
]

FRAME_SOURCE = "<frame>"
"""The ``_source_file`` of a frame's rows (their ``_source_row`` is their position)."""
REFERENCE_SOURCE = "<reference>"
Duplicates = Literal["keep_first", "keep_none"]
_SCHEMA = TypeAdapter(dict[str, ColumnSpec | ColumnType])


@dataclass(frozen=True)
class Checked:
    """What checking the rows gave: failures after shadowing and tracing, the verdict of every
    expectation (with ``state``, and ``why`` when it could not run), whether a critical one
    failed, and how the dataset's keys were enforced."""

    failures: pl.DataFrame
    verdicts: list[dict[str, Any]]
    critical_failed: bool
    keys: dict[str, Any]


def key_check(suite: Suite, keys: Sequence[str], duplicates: str) -> int | None:
    """The index of a suite entry that already enforces the dataset's keys, or None.

    A uniqueness entry over exactly the key columns, quarantining (severity error or
    critical), without a row condition and with the same duplicate policy does the keys check's
    job: the keys check then adds nothing, so a duplicate row carries one reason, not two.
    """
    for e in suite.entries:
        if (
            e.type in UNIQUENESS_TYPES
            and set(e.columns) == set(keys)
            and e.severity in QUARANTINING
            and not e.kwargs.get("row_condition")
            and e.duplicates == duplicates
        ):
            return e.index
    return None


def check_rows(
    frame: pl.DataFrame,
    parse_failures: pl.DataFrame,
    suite: Suite,
    *,
    engine: EngineChoice = "auto",
    keys: Sequence[str] = (),
    duplicates: str = "keep_first",
) -> Checked:
    """Run the suite and the keys check on a typed frame.

    ``frame`` holds the provenance columns then the data columns (declared ones typed), as
    ingest gives it; ``parse_failures`` the failures of reading it (``column|type``,
    ``_row|malformed``): rule failures on a cell that did not parse, and on a malformed record,
    are dropped (the cell is judged by its parse failure alone), and every ``duplicate_of`` gets
    the first occurrence's source file and row.
    """
    data = frame.drop(SOURCE_FILE, SOURCE_ROW)
    result = failures_from_outcomes(data, run_suite(data.drop(ROW_ID), suite, engine))
    for v in result.verdicts:
        v.setdefault("state", verdict_state(v))
        if v["state"] == "could_not_run":
            v.setdefault("why", why_not_run(v))
    keys = list(keys)
    by_suite = key_check(suite, keys, duplicates) if keys else None
    key_failures = key_duplicates(frame, keys, duplicates) if keys and by_suite is None else None
    found = concat_failures([result.failures, *([] if key_failures is None else [key_failures])])
    failures = trace_duplicates(drop_shadowed(found, parse_failures), frame)
    enforced = (
        "none" if not keys else f"suite entry {by_suite}" if by_suite is not None else "keys check"
    )
    return Checked(
        failures=failures,
        verdicts=result.verdicts,
        critical_failed=result.critical_failed,
        keys={
            "columns": keys,
            "duplicates": duplicates,
            "enforced_by": enforced,
            "duplicate_rows": 0 if key_failures is None else key_failures.height,
        },
    )


def rows_to_score(
    frame: pl.DataFrame, failures: pl.DataFrame, columns: Sequence[str]
) -> pl.DataFrame:
    """The rows detectors score: ``_row_id`` and the declared ``columns`` of every row without a
    quarantining failure (severity error or critical) among ``failures``, in order."""
    bad = failures.filter(pl.col("severity").is_in(QUARANTINING)).get_column(ROW_ID)
    declared = [c for c in columns if c in frame.columns]
    # a mask, not an anti join: most rows are kept, and a join gathers them
    return frame.select(ROW_ID, *declared).filter(~pl.col(ROW_ID).is_in(bad.implode()))


def why_not_scored(
    specs: Sequence[DetectorSpec], *, critical_failed: bool, missing_columns: Sequence[str]
) -> str | None:
    """Why the detectors do not run (no detectors, or a critical check failed), else None."""
    if not specs:
        return "no detectors declared"
    if critical_failed or missing_columns:
        return "a critical check failed"
    return None


def critical_checks(
    missing_columns: Sequence[str], verdicts: Sequence[Mapping[str, Any]]
) -> list[tuple[str, str, str]]:
    """The critical checks that failed, as ``(column, rule, detail)``: every declared column
    missing from the source, and every critical expectation that did not pass."""
    checks = [
        (c, "missing_column", f"declared column {c!r} is not in the source")
        for c in missing_columns
    ]
    for v in verdicts:
        state = verdict_state(v)
        if v["severity"] == "critical" and state != "passed":
            column, rule = v["reason"].split("|", 1)
            observed = v.get("observed_value")
            if state == "could_not_run":
                detail = f"could not run: {v.get('why') or v.get('exception') or rule}"
            else:
                detail = f"observed {observed!r}" if observed is not None else rule
            checks.append((column, rule, detail))
    return checks


def split_rows(
    frame: pl.DataFrame,
    raw: pl.DataFrame,
    failures: pl.DataFrame,
    declared: Mapping[str, pl.DataType],
    critical: Sequence[tuple[str, str, str]] = (),
) -> Split:
    """Split rows into clean and quarantine (:func:`sluice.decide.split`) and prove that every
    row of ``frame`` is on exactly one side, in order; :class:`ConservationError` if not."""
    result = split(frame, raw, failures, declared, critical)
    ids_in = frame.get_column(ROW_ID)
    clean, held = result.clean.get_column(ROW_ID), result.quarantine.get_column(ROW_ID)
    if not split_in_order(ids_in, clean, held):
        distinct = pl.concat([clean, held]).n_unique()
        raise ConservationError(
            f"the split does not hold every row exactly once: {len(ids_in)} rows in, "
            f"{result.clean.height} clean and {result.quarantine.height} quarantined, "
            f"{distinct} distinct"
        )
    return result


def count_rows(
    failures: pl.DataFrame, n_in: int, n_clean: int, n_quarantine: int
) -> dict[str, Any]:
    """The counts of a split: rows in, clean, quarantined and warned, and rows by reason."""
    quarantining = failures.filter(pl.col("severity").is_in(QUARANTINING))
    by_reason = (
        quarantining.group_by("reason").agg(pl.col(ROW_ID).n_unique().alias("rows")).sort("reason")
    )
    warned = failures.filter(pl.col("severity") == "warn")
    by_warning = (
        warned.group_by("reason").agg(pl.col(ROW_ID).n_unique().alias("rows")).sort("reason")
    )
    return {
        "in": n_in,
        "clean": n_clean,
        "quarantine": n_quarantine,
        "warned_rows": warned[ROW_ID].n_unique(),
        "quarantined_by_reason": dict(by_reason.iter_rows()),
        "warnings_by_reason": dict(by_warning.iter_rows()),
    }


def judge_rows(
    failures: pl.DataFrame,
    counts: Mapping[str, Any],
    critical: Sequence[str],
    *,
    verdicts: Sequence[Mapping[str, Any]],
    policies: PoliciesSpec,
    columns: Mapping[str, ColumnSpec],
    detectors: Sequence[Mapping[str, Any]] = (),
    screened_rows: int = 0,
) -> Verdict:
    """Measure a split and judge it against ``policies`` (:mod:`sluice.verdict`); the causes of
    ``column|type`` reasons say what the values look like (``columns`` are their declarations).
    ``detectors``: each detector's record; one skipped while ``screened_rows`` rows passed
    validation is a check that could not run."""
    critical_names = set(critical)
    measured = measure(
        failures,
        rows_in=counts["in"],
        quarantined=counts["quarantine"],
        critical=critical,
        verdicts=[v for v in verdicts if v.get("reason") not in critical_names],
        detectors=detectors,
        screened_rows=screened_rows,
    )
    verdict = judge(measured, policies)
    wanted = hinted_reasons(verdict, measured)
    if wanted:
        hints = type_hints(failures, columns, wanted)
        verdict = judge(replace(measured, hints=hints), policies)
    return verdict


@dataclass(frozen=True)
class ScreenResult:
    """sluice's verdict on a frame: the same fields a run of the pipeline writes.

    ``clean``: provenance (``_row_id``: the row's position in the input, or the input's own
    ``_row_id``; ``_source_file`` is ``"<frame>"``, ``_source_row`` the position) and the
    declared columns, typed, as the pipeline's clean files. ``quarantine``: provenance, the
    declared columns typed (null where a cell did not parse),
    ``_raw`` (each declared column's text as given), ``_extra`` (undeclared columns, JSON),
    ``_reasons`` and ``_failures``, as the pipeline's quarantine files. ``failures``: one row per
    (row, reason), warnings included (``sluice.core.failures.FAILURE_SCHEMA``). ``verdicts``: one
    per expectation, in suite order, with ``state`` (passed, failed, could_not_run) and ``why``.
    ``counts``: ``in``, ``clean``, ``quarantine``, ``warned_rows``, ``quarantined_by_reason``,
    ``warnings_by_reason``. ``verdict``: passed, warned or failed and every cause.
    ``detectors``: each detector's record (fit, threshold, rows flagged), as in the manifest.
    """

    clean: pl.DataFrame
    quarantine: pl.DataFrame
    failures: pl.DataFrame
    verdicts: list[dict[str, Any]]
    counts: dict[str, Any]
    verdict: Verdict
    detectors: list[dict[str, Any]] = field(default_factory=list)
    critical: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        """``passed``, ``warned`` or ``failed``."""
        return self.verdict.status

    def summary(self) -> str:
        """One line a person reads: the status, the counts and the rows held by reason."""
        c = self.counts
        held = ", ".join(f"{r} {n:,}" for r, n in c["quarantined_by_reason"].items())
        text = f"{self.status}: {c['in']:,} rows in, {c['clean']:,} clean, "
        text += f"{c['quarantine']:,} quarantined"
        return text + (f" ({held})" if held else "")


def screen(
    frame: pl.DataFrame | pa.Table,
    suite: str | Path | Suite | Mapping[str, Any],
    *,
    schema: Mapping[str, ColumnSpec | str | Mapping[str, Any]] | None = None,
    detectors: Sequence[DetectorSpec | Mapping[str, Any]] | None = None,
    reference: pl.DataFrame | pa.Table | None = None,
    keys: Sequence[str] | None = None,
    engine: EngineChoice = "auto",
    duplicates: Duplicates = "keep_first",
    policies: PoliciesSpec | Mapping[str, Any] | None = None,
) -> ScreenResult:
    """Screen a frame as ``sluice run`` screens a partition, and return every row's fate.

    ``suite`` is a GX suite file, a loaded :class:`~expectations.results.Suite` or the suite as
    a dict. ``schema`` maps columns to sluice types (``"float"``) or column specs
    (``{"type": "datetime", "format": "%d/%m/%Y"}``), as a dataset spec's ``schema:``; given,
    cells are parsed as ingest parses a file and a cell that does not parse quarantines its row
    (``column|type``), and a declared column the frame lacks quarantines every row; absent,
    the frame's own types are used. ``detectors`` are detector specs as in a dataset spec,
    ``reference`` the rows they learn from (as the pipeline's earlier clean partitions; without
    it, the frame itself). ``keys`` and ``duplicates`` are the dataset's keys and duplicate
    policy, ``policies`` its ``policies:`` (defaults when absent). Nothing is written.

    >>> import polars as pl, sluice
    >>> trips = pl.DataFrame({"id": ["a", "b", "b", "c"], "fare": ["9.5", "x", "7", "-3"]})
    >>> suite = {"name": "trips", "expectations": [
    ...     {"type": "expect_column_values_to_be_between",
    ...      "kwargs": {"column": "fare", "min_value": 0}}]}
    >>> result = sluice.screen(trips, suite, schema={"id": "string", "fare": "float"},
    ...                        keys=["id"])
    >>> result.status, result.counts["in"], result.counts["clean"], result.counts["quarantine"]
    ('failed', 4, 1, 3)
    >>> result.clean.rows()
    [(0, '<frame>', 0, 'a', 9.5)]
    >>> for row in result.quarantine.select("_source_row", "_reasons").rows():
    ...     print(row)
    (1, ['fare|type'])
    (2, ['id|key_duplicate'])
    (3, ['fare|expect_column_values_to_be_between'])
    >>> [v["state"] for v in result.verdicts]
    ['failed']
    """
    read, ids = _input(frame, "frame")
    learn = None if reference is None else _input(reference, "reference")
    if schema is None:
        _unreserved(read)
    declared = _schema(schema) if schema is not None else None
    typed = type_frame(read, declared or {}, ids, FRAME_SOURCE)
    present = typed.read.columns
    columns = declared if declared is not None else _own_specs(typed.read)
    names = list(declared) if declared is not None else present
    missing = [c for c in names if c not in present]
    order = [
        *PROVENANCE,
        *[c for c in names if c in present],
        *[c for c in present if c not in names],
    ]
    rows = typed.frame.select(order)
    loaded = _suite(suite, names)
    key_list = _keys(keys, names)
    if duplicates not in ("keep_first", "keep_none"):
        raise ConfigError(
            "unknown duplicate policy",
            key="duplicates",
            found=duplicates,
            allowed="keep_first, keep_none",
        )
    if engine not in ENGINE_CHOICES:
        raise ConfigError(
            "unknown validation engine",
            key="engine",
            found=engine,
            allowed=", ".join(ENGINE_CHOICES),
        )
    specs = _detectors(detectors or (), names)
    rules = _policies(policies)
    checked = check_rows(
        rows, typed.failures, loaded, engine=engine, keys=key_list, duplicates=duplicates
    )
    earlier = concat_failures([typed.failures, checked.failures])
    why = why_not_scored(specs, critical_failed=checked.critical_failed, missing_columns=missing)
    models: list[dict[str, Any]] = []
    scored = concat_failures([])
    screened_rows = 0
    if why is None:
        passed = rows_to_score(rows, earlier, names)
        screened_rows = passed.height
        ref = None if learn is None else _reference(*learn, declared, names)
        got = score_detectors(passed, specs, reference=ref)
        scored, models = got.failures, got.models
    dtypes = (
        {c: polars_dtype(s) for c, s in declared.items()}
        if declared is not None
        else dict(typed.read.schema)
    )
    critical = critical_checks(missing, checked.verdicts)
    result = split_rows(rows, typed.raw, concat_failures([earlier, scored]), dtypes, critical)
    counts = count_rows(result.failures, rows.height, result.clean.height, result.quarantine.height)
    verdict = judge_rows(
        result.failures,
        counts,
        result.critical,
        verdicts=checked.verdicts,
        policies=rules,
        columns=columns,
        detectors=models,
        screened_rows=screened_rows,
    )
    return ScreenResult(
        clean=result.clean,
        quarantine=result.quarantine,
        failures=result.failures,
        verdicts=checked.verdicts,
        counts=counts,
        verdict=verdict,
        detectors=models,
        critical=result.critical,
    )


def validate(
    frame: pl.DataFrame | pa.Table,
    suite: str | Path | Suite | Mapping[str, Any],
    **options: Any,
) -> pl.DataFrame:
    """The strict twin of :func:`screen`: the clean rows when no row is quarantined and the
    verdict is not ``failed``; else :class:`~sluice.core.errors.ValidationFailed`, carrying the
    :class:`ScreenResult` (``.result``) and saying how many rows each reason held.

    Takes the same arguments as :func:`screen`.

    >>> import polars as pl, sluice
    >>> suite = {"name": "s", "expectations": [
    ...     {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x"}}]}
    >>> sluice.validate(pl.DataFrame({"x": [1, 2]}), suite).rows()
    [(0, '<frame>', 0, 1), (1, '<frame>', 1, 2)]
    >>> try:
    ...     sluice.validate(pl.DataFrame({"x": [1, None]}), suite)
    ... except sluice.ValidationFailed as exc:
    ...     print(str(exc).split("; ")[0])
    ...     print(exc.result.status, exc.result.quarantine["_source_row"].to_list())
    1 of 2 rows quarantined (x|expect_column_values_to_not_be_null 1)
    warned [1]
    """
    result = screen(frame, suite, **options)
    if result.counts["quarantine"] or result.status == "failed":
        raise ValidationFailed(_failed_message(result), result)
    return result.clean


def _failed_message(result: ScreenResult) -> str:
    c = result.counts
    held = ", ".join(f"{r} {n:,}" for r, n in c["quarantined_by_reason"].items())
    text = f"{c['quarantine']:,} of {c['in']:,} rows quarantined" + (f" ({held})" if held else "")
    causes = "; ".join(cause.message for cause in result.verdict.causes)
    return f"{text}; verdict {result.status}" + (f": {causes}" if causes else "")


def _input(value: object, what: str) -> tuple[pl.DataFrame, pl.Series]:
    """A frame (polars, or pyarrow converted as ingest converts Parquet) and its row ids: its
    own ``_row_id`` when it has one (unique, non-negative integers), else positions. A
    ``reference`` read from the pipeline's clean files comes with their provenance columns:
    detectors learn from its data columns only, so those are dropped."""
    if isinstance(value, pa.Table):
        frame = arrow_to_polars(value, what)[0]
    elif isinstance(value, pl.DataFrame):
        frame = value
    else:
        hint = (
            "; collect it first (.collect())"
            if isinstance(value, pl.LazyFrame)
            else "; convert it first (polars.from_pandas)"
            if type(value).__module__.startswith("pandas")
            else ""
        )
        kind = f"{type(value).__module__}.{type(value).__qualname__}"
        raise TypeError(f"{what} must be a polars DataFrame or a pyarrow Table, not {kind}{hint}")
    if what == "reference":
        frame = frame.drop(SOURCE_FILE, SOURCE_ROW, strict=False)
    clash = [c for c in frame.columns if c in RESERVED_COLUMNS and c != ROW_ID]
    if clash:
        hint = (
            " (a clean output of sluice keeps its provenance: drop _source_file and _source_row"
            " to screen it again)"
            if clash[0] in (SOURCE_FILE, SOURCE_ROW)
            else ""
        )
        raise InputError(
            f"{what}: has a column named {clash[0]!r}, a name sluice reserves for its own "
            f"columns ({', '.join(RESERVED_COLUMNS)}); rename or drop it{hint}"
        )
    if ROW_ID not in frame.columns:
        return frame, pl.Series(ROW_ID, range(frame.height), dtype=pl.UInt64)
    own = frame.get_column(ROW_ID)
    ok = own.dtype.is_integer() and own.null_count() == 0 and own.n_unique() == len(own)
    if not ok or (len(own) and own.min() < 0):  # type: ignore[operator]
        raise InputError(
            f"{what}: its {ROW_ID} column must hold distinct non-negative integers to be used "
            f"as row ids; found {own.dtype} with {own.null_count()} nulls and "
            f"{len(own) - own.n_unique()} repeats (drop it to number rows by position)"
        )
    return frame.drop(ROW_ID), own.cast(pl.UInt64)


def _schema(schema: Mapping[str, Any]) -> dict[str, ColumnSpec]:
    if not isinstance(schema, Mapping):
        raise ConfigError(
            "a schema maps column names to types", key="schema", found=type(schema).__name__
        )
    try:
        parsed = _SCHEMA.validate_python(dict(schema))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"] if not (isinstance(x, str) and "[" in x))
        found = err.get("input")
        raise ConfigError(
            err["msg"],
            key=f"schema.{loc}",
            found=None if isinstance(found, dict | list) else found,
            allowed=f"a type ({', '.join(('string', 'int', 'float', 'bool', 'date', 'datetime'))}) "
            "or a mapping with type, format, null_values, aliases",
        ) from None
    if not parsed:
        raise ConfigError("the schema declares no column", key="schema", found="{}")
    for name in parsed:
        if not isinstance(name, str) or name.startswith("_") or name_problem(name):
            raise ConfigError(
                "not a column name sluice can declare",
                key=f"schema.{name}",
                found=name,
                allowed="a name not starting with '_' (reserved), not a polars pattern and "
                "without a NUL byte",
            )
    return {c: s if isinstance(s, ColumnSpec) else ColumnSpec(type=s) for c, s in parsed.items()}


def _unreserved(frame: pl.DataFrame) -> None:
    """Refuse, for a frame screened with its own columns as the declared ones, a column name
    starting with ``_`` (those are sluice's: ``_raw``, ``_extra`` in the quarantine), and a
    column of Python objects or 128-bit integers."""
    taken = [c for c in frame.columns if c.startswith("_")]
    if taken:
        raise InputError(
            f"frame: column {taken[0]!r}: names starting with '_' are reserved for sluice's own "
            "columns; rename it, or pass schema= declaring the columns to check (undeclared "
            "columns are kept as text in the quarantine's _extra)"
        )
    for c, dtype in frame.schema.items():
        if isinstance(dtype, pl.Object | pl.Int128 | pl.UInt128):
            raise InputError(
                f"frame: column {c!r} is {dtype}, a type sluice does not screen as it is (it has "
                "no Arrow or Parquet form, and the checks do not take it); cast it (to Int64, "
                "Float64 or String), or pass schema= declaring the columns to check, which are "
                "then parsed as declared (undeclared columns are kept in the quarantine's _extra)"
            )


def _own_specs(frame: pl.DataFrame) -> dict[str, ColumnSpec]:
    """Column specs for a frame screened with its own types (for the verdict's hints only)."""
    kinds: dict[str, ColumnType] = {}
    for c, t in frame.schema.items():
        kinds[c] = (
            "int"
            if t.is_integer()
            else "float"
            if t.is_float()
            else "bool"
            if t == pl.Boolean
            else "date"
            if t == pl.Date
            else "datetime"
            if isinstance(t, pl.Datetime)
            else "string"
        )
    return {c: ColumnSpec(type=k) for c, k in kinds.items()}


def _suite(suite: object, columns: Sequence[str]) -> Suite:
    if isinstance(suite, Suite):
        check_columns(suite, columns, "the frame")
        return suite
    if isinstance(suite, str | Path):
        return load_suite(suite, columns=columns)
    if isinstance(suite, Mapping):
        return suite_from_dict(suite, columns=columns)
    raise TypeError(
        "suite must be a path to a GX suite JSON file, a loaded expectations.results.Suite or "
        f"the suite as a dict, not {type(suite).__module__}.{type(suite).__qualname__}"
    )


def _keys(keys: Sequence[str] | None, columns: Sequence[str]) -> list[str]:
    if keys is None:
        return []
    if isinstance(keys, str):
        keys = [keys]
    unknown = [k for k in keys if k not in columns]
    if unknown:
        raise ConfigError(
            "a key column is not a column of the frame",
            key="keys",
            found=unknown[0],
            allowed=", ".join(columns),
        )
    return list(keys)


def _detectors(
    detectors: Sequence[DetectorSpec | Mapping[str, Any]], columns: Sequence[str]
) -> list[DetectorSpec]:
    specs: list[DetectorSpec] = []
    for i, d in enumerate(detectors):
        try:
            spec = d if isinstance(d, DetectorSpec) else DetectorSpec.model_validate(d)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            raise ConfigError(
                err["msg"], key=f"detectors[{i}]" + (f".{loc}" if loc else "")
            ) from None
        for f in spec.feature_specs():
            if f.column not in columns:
                raise ConfigError(
                    f"detector {spec.name!r} uses a column the frame does not have",
                    key=f"detectors[{i}].features",
                    found=f.column,
                    allowed=", ".join(columns),
                )
        specs.append(spec)
    return specs


def _policies(policies: PoliciesSpec | Mapping[str, Any] | None) -> PoliciesSpec:
    if policies is None:
        return PoliciesSpec()
    if isinstance(policies, PoliciesSpec):
        return policies
    try:
        return PoliciesSpec.model_validate(policies)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise ConfigError(err["msg"], key=f"policies.{loc}", found=err.get("input")) from None


def _reference(
    read: pl.DataFrame,
    ids: pl.Series,
    declared: Mapping[str, ColumnSpec] | None,
    columns: Sequence[str],
) -> pl.DataFrame:
    """The rows detectors learn from, typed as the frame; rows with a cell that does not parse
    are left out (a quarantined row never teaches a detector)."""
    typed = type_frame(read, declared or {}, ids, REFERENCE_SOURCE)
    bad = typed.failures.select(ROW_ID).unique()
    kept = typed.frame.join(bad, on=ROW_ID, how="anti", maintain_order="left")
    return kept.select(ROW_ID, *[c for c in columns if c in kept.columns])
