"""Measure one run from its outputs: counts by stage and rule, column profiles, detector scores.

Everything here reads the files a run leaves (clean and quarantine Parquet, ``failures.parquet``,
``scores.parquet``, the manifest), so a report can be rebuilt long after the run; the write
stage hands over the frames it has just written as those files instead (:func:`load_outputs`'s
``held``). The numbers end up in the report and, as one long table per run, in the metric
history (:func:`metrics_frame`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow.parquet as pq

from expectations.exact import ExactSum
from sluice.config import Partition
from sluice.core.frame import MALFORMED, PROVENANCE, ROW_ID, SOURCE_FILE, SOURCE_ROW
from sluice.core.spill import part_count
from sluice.decide import RAW
from sluice.report.bounded import column_values, parquet_rows, sample_rows
from sluice.report.streaming import (
    DISTINCT_LIMIT,
    Batches,
    DistinctCount,
    FloatBatches,
    TopCounts,
    ValueTable,
    numpy_quantiles,
    order_statistics,
    quantile_ranks,
    weighted_statistics,
    weighted_sum,
)
from sluice.storage import open_output

Kind = Literal["numeric", "temporal", "boolean", "string"]
Stage = Literal["ingest", "validate", "screen", "partition"]
STAGES: tuple[Stage, ...] = ("ingest", "validate", "screen", "partition")
OUTLIER_COLUMN = "outlier"
QUARANTINING = ("error", "critical")
CATEGORY_LIMIT = 20
HIST_BINS = 30
SCORE_BINS = 40
EXAMPLES = 5
VALUE = "value"
METRICS_SCHEMA: dict[str, pl.DataType] = {
    "dataset": pl.String(),
    "partition": pl.String(),
    "partition_start": pl.Date(),
    "weekday": pl.Int8(),
    "run_id": pl.String(),
    "finished_at": pl.String(),
    "scope": pl.String(),
    "name": pl.String(),
    "metric": pl.String(),
    "value": pl.Float64(),
    "denominator": pl.Int64(),
}

FloatArray = npt.NDArray[np.float64]
BATCH_ROWS = 1 << 18


def parquet_batches(path: Path, name: str, dtype: pl.DataType, rows: int) -> Batches:
    """One column of a Parquet file as batches of ``rows`` rows, typed ``dtype``."""

    def run() -> Iterator[pl.Series]:
        parquet = pq.ParquetFile(path, pre_buffer=False)
        for batch in parquet.iter_batches(batch_size=max(1, rows), columns=[name]):
            got = pl.Series(VALUE, batch.column(0))
            yield got if got.dtype == dtype else got.cast(dtype)

    return run


@dataclass(frozen=True)
class RunOutputs:
    """The files one run left, loaded.

    With ``clean_file`` (a bounded run's report) the clean rows stay in that Parquet file and
    ``clean`` holds only their schema; with ``scores_file`` the scores stay on disk and
    ``scores`` is None; with ``quarantine_file`` and ``failures_file`` the quarantined rows and
    the failures stay on disk and ``quarantine`` and ``failures`` hold only their schema. Read
    them through :meth:`clean_batches`, :meth:`clean_frames`, :meth:`clean_sample`,
    :meth:`score_batches`, :meth:`quarantine_frames` and :meth:`failure_frames`, ``batch_rows``
    rows at a time; what must spill goes under ``spill_dir``."""

    manifest: dict[str, Any]
    partition: Partition
    clean: pl.DataFrame
    quarantine: pl.DataFrame
    failures: pl.DataFrame
    scores: pl.DataFrame | None
    formats: Mapping[str, str] = field(default_factory=dict)
    clean_file: Path | None = None
    scores_file: Path | None = None
    spill_dir: Path | None = None
    batch_rows: int = BATCH_ROWS
    quarantine_file: Path | None = None
    failures_file: Path | None = None

    def quarantine_frames(
        self, names: Sequence[str] | None = None, rows: int | None = None
    ) -> Iterator[pl.DataFrame]:
        """The quarantined rows (the columns ``names`` that they have, all when None) in
        batches of ``rows`` rows (``batch_rows`` when None) from ``quarantine_file``, or the
        loaded frame as one."""
        yield from _frames(self.quarantine, self.quarantine_file, names, rows or self.batch_rows)

    def failure_frames(self, names: Sequence[str] | None = None) -> Iterator[pl.DataFrame]:
        """The failures (the columns ``names``, all when None) in batches of ``batch_rows``
        rows from ``failures_file``, or the loaded frame as one."""
        yield from _frames(self.failures, self.failures_file, names, self.batch_rows)

    @property
    def quarantine_rows(self) -> int:
        """Rows in the quarantine."""
        if self.quarantine_file is None:
            return self.quarantine.height
        return parquet_rows(self.quarantine_file)

    @property
    def columns(self) -> dict[str, pl.DataType]:
        """Declared columns and their types (the clean data's schema without provenance: clean
        files written before provenance was kept hold ``_row_id`` only)."""
        return {c: t for c, t in self.clean.schema.items() if c not in PROVENANCE}

    @property
    def clean_rows(self) -> int:
        """Rows in the clean data."""
        if self.clean_file is None:
            return self.clean.height
        return parquet_rows(self.clean_file)

    def clean_column(self, name: str) -> pl.Series:
        """One column of the clean rows, read alone from ``clean_file`` when there is one."""
        if self.clean_file is None:
            return self.clean.get_column(name)
        return column_values(self.clean_file, list(self.clean.columns).index(name))

    def clean_batches(self, name: str) -> Batches:
        """A column of the clean rows as batches: ``clean_file`` read by ``iter_batches`` of
        ``batch_rows`` rows (typed as the schema says), or the in-memory column as one batch."""
        dtype = self.clean.get_column(name).dtype  # not .schema: all columns' (per column)
        if self.clean_file is None:
            column = self.clean.get_column(name)
            return lambda: iter([column])
        return parquet_batches(self.clean_file, name, dtype, self.batch_rows)

    def clean_sample(self, names: Sequence[str], n: int, seed: int) -> pl.DataFrame:
        """The clean rows' columns ``names``: all of them in memory, or from ``clean_file`` a
        seeded sample of ``n`` rows drawn by row group (:func:`sluice.report.bounded.sample_rows`,
        every row when the file holds at most ``n``)."""
        if self.clean_file is None:
            return self.clean_frame(names)
        have = list(self.clean.columns)
        return sample_rows(self.clean_file, [have.index(c) for c in names], n, seed, "row_groups")

    def score_batches(self, columns: Sequence[str]) -> Iterator[pl.DataFrame]:
        """``scores`` (the columns ``columns``) in batches: from ``scores_file`` when the
        scores were left on disk, else the loaded frame as one batch."""
        if self.scores_file is not None:
            parquet = pq.ParquetFile(self.scores_file, pre_buffer=False)
            for batch in parquet.iter_batches(batch_size=self.batch_rows, columns=list(columns)):
                yield pl.DataFrame(pl.from_arrow(batch))
        elif self.scores is not None:
            yield self.scores.select(columns)

    @property
    def has_scores(self) -> bool:
        """Whether the run left scores (in memory or in ``scores_file``)."""
        return self.scores is not None or self.scores_file is not None

    @property
    def score_rows(self) -> int:
        """Rows of the scores (from the footer of ``scores_file``)."""
        if self.scores_file is not None:
            return parquet_rows(self.scores_file)
        return self.scores.height if self.scores is not None else 0

    @property
    def score_columns(self) -> list[str]:
        """The columns of the scores."""
        if self.scores_file is not None:
            return list(pq.read_schema(self.scores_file).names)
        return list(self.scores.columns) if self.scores is not None else []

    def clean_frame(self, names: Sequence[str]) -> pl.DataFrame:
        """The clean rows' columns ``names`` (projected from ``clean_file`` when there is one)."""
        if self.clean_file is None:
            at = {c: i for i, c in enumerate(self.clean.columns)}
            return self.clean.select(pl.nth([at[c] for c in names]))
        at = {c: i for i, c in enumerate(self.clean.columns)}
        return pl.scan_parquet(self.clean_file).select(pl.nth([at[c] for c in names])).collect()

    def clean_frames(self, names: Sequence[str]) -> Iterator[pl.DataFrame]:
        """The clean rows' columns ``names`` in batches of ``batch_rows`` rows from
        ``clean_file``, or the in-memory columns as one frame."""
        yield from _frames(self.clean, self.clean_file, names, self.batch_rows)

    def clean_has_more_values_than(self, name: str, limit: int) -> bool:
        """Whether the clean rows' column ``name`` holds more than ``limit`` distinct values
        (null counts as one), exactly, reading a clean file by row group and stopping as soon
        as the answer is yes: a unique key column costs one row group, not a hash of every row."""
        if self.clean_file is None:
            # renamed: series methods run as expressions on the series' name ("*")
            column = self.clean.get_column(name).rename(VALUE)
            held = column.head(0)
            for start in range(0, column.len(), 65_536):
                held = pl.concat([held, column.slice(start, 65_536)]).unique()
                if held.len() > limit:
                    return True
            return False
        index = list(self.clean.columns).index(name)
        seen: set[Any] = set()
        parquet = pq.ParquetFile(self.clean_file, pre_buffer=False)
        for batch in parquet.iter_batches(
            batch_size=65_536, columns=[parquet.schema_arrow.names[index]]
        ):
            seen.update(pl.Series(VALUE, batch.column(0)).unique().to_list())
            if len(seen) > limit:
                return True
        return False

    @property
    def rows_in(self) -> int:
        """Rows read from the source."""
        return int(self.manifest["counts"]["in"])


def _frames(
    loaded: pl.DataFrame, path: Path | None, names: Sequence[str] | None, rows: int
) -> Iterator[pl.DataFrame]:
    """``loaded`` (projected on ``names``) as one frame, or ``path`` read by ``iter_batches``
    of ``rows`` rows, typed as ``loaded``'s schema says. Columns are picked by position: a
    column called ``*`` or ``^a.*$`` is not a pattern."""
    have = list(loaded.columns)
    if names is None:
        positions = list(range(len(have)))
    else:
        positions = [have.index(c) for c in dict.fromkeys(names) if c in have]
    # in memory: the rows; from a file, ``loaded`` holds the schema only
    projected = loaded.select(pl.nth(positions))
    if path is None:
        yield projected
        return
    parquet = pq.ParquetFile(path, pre_buffer=False)
    on_disk = parquet.schema_arrow.names
    columns = [on_disk[i] for i in positions]
    got = False
    for batch in parquet.iter_batches(batch_size=max(1, rows), columns=columns):
        frame = pl.DataFrame(pl.from_arrow(batch))
        got = True
        if frame.schema != projected.schema:
            frame = pl.DataFrame(
                [
                    _conform(s, n, d)
                    for s, (n, d) in zip(
                        frame.iter_columns(), projected.schema.items(), strict=True
                    )
                ]
            )
        yield frame
    if not got:
        yield projected


def _conform(series: pl.Series, name: str, dtype: pl.DataType) -> pl.Series:
    """``series`` named ``name`` and typed ``dtype``, a struct's fields matched by position:
    names read back over Arrow's C interface may differ from those written (it ends a name at
    a NUL byte)."""
    if isinstance(dtype, pl.Struct) and isinstance(series.dtype, pl.Struct):
        fields = [f.name for f in dtype.fields]
        if len(fields) == len(series.dtype.fields):
            series = series.struct.rename_fields(fields)
    series = series.alias(name)
    return series if series.dtype == dtype else series.cast(dtype)


UNREAD = ("_failures", "_extra")
"""Quarantine columns no part of the report reads (the failures come from ``failures.parquet``):
a quarantine read whole leaves them on disk, the heaviest of its columns (a list of structs)."""


def load_outputs(
    manifest: dict[str, Any],
    folder: Path,
    formats: Mapping[str, str] | None = None,
    *,
    storage_options: Mapping[str, str] | None = None,
    bounded: bool = False,
    spill_dir: Path | None = None,
    batch_rows: int | None = None,
    held: Mapping[str, pl.DataFrame] | None = None,
) -> RunOutputs:
    """Load a run's outputs; ``folder`` holds its ``failures.parquet`` (and ``scores.parquet``).

    Clean and quarantine rows are read as the manifest names them (sluice.storage): a Delta
    table at the manifest's version, or a Parquet file (read as it is, for a rebuilt report).
    ``bounded``: a clean Parquet file and the scores are left on disk and read in batches
    (``clean_file``, ``scores_file``), ``batch_rows`` rows at a time (:data:`BATCH_ROWS` when
    None); what must spill goes under ``spill_dir``.

    ``held``: frames the caller still holds that are what it has just written as Parquet files
    (``clean``, ``quarantine``, ``failures``, ``scores``; the run's write stage), taken in place
    of reading those files again: polars reads a file it wrote back as the same frame
    (tests/sluice/report/test_hostile_frames.py). Ignored for a bounded load, and for a side
    written to a Delta table (read at its version)."""
    outs = manifest["outputs"]
    part = manifest["partition"]
    scores_path = folder / "scores.parquet"
    tables = manifest.get("tables") or {}
    given = {} if bounded or held is None else dict(held)

    def side(name: str, unread: Sequence[str] = ()) -> pl.DataFrame:
        if name in given and name not in tables:
            # by position: a column called "*" or "^a.*$" is not a pattern
            frame = given[name]
            return frame.select(pl.nth([i for i, c in enumerate(frame.columns) if c not in unread]))
        if name in tables:
            return open_output(manifest, name, storage_options=storage_options).read()
        path = outs[name]["path"]
        # by position: a column called "*" or "^a.*$" is not a pattern
        kept = [i for i, c in enumerate(pl.read_parquet_schema(path)) if c not in unread]
        return pl.read_parquet(path, columns=kept)

    clean_file = Path(outs["clean"]["path"]) if bounded and "clean" not in tables else None
    clean = (
        pl.DataFrame(schema=pl.read_parquet_schema(clean_file))
        if clean_file is not None
        else side("clean")
    )
    quarantine_file = (
        Path(outs["quarantine"]["path"]) if bounded and "quarantine" not in tables else None
    )
    quarantine = (
        pl.DataFrame(schema=pl.read_parquet_schema(quarantine_file))
        if quarantine_file is not None
        else side("quarantine", UNREAD)
    )
    failures_file = folder / "failures.parquet" if bounded else None
    failures = (
        pl.DataFrame(schema=pl.read_parquet_schema(failures_file))
        if failures_file is not None
        else given.get("failures")
    )
    if failures is None:
        failures = pl.read_parquet(folder / "failures.parquet")
    scores_file = scores_path if bounded and scores_path.exists() else None
    scores = None
    if scores_path.exists() and scores_file is None:
        scores = given.get("scores")
        if scores is None:
            scores = pl.read_parquet(scores_path)
    return RunOutputs(
        manifest=manifest,
        partition=Partition.parse(part["value"], part["kind"], part["key"]),
        clean=clean,
        quarantine=quarantine,
        failures=failures,
        scores=scores,
        formats=dict(formats or {}),
        clean_file=clean_file,
        scores_file=scores_file,
        spill_dir=spill_dir,
        batch_rows=max(1, batch_rows) if batch_rows is not None else BATCH_ROWS,
        quarantine_file=quarantine_file,
        failures_file=failures_file,
    )


def kind_of(dtype: pl.DataType) -> Kind:
    """How a column is profiled and tested for drift."""
    if dtype.is_numeric():
        return "numeric"
    if dtype.is_temporal():
        return "temporal"
    if dtype == pl.Boolean:
        return "boolean"
    return "string"


def stage_of(column: str, rule: str, severity: str) -> Stage:
    """Which stage a failure comes from."""
    if severity == "critical":
        return "partition"
    if column == MALFORMED or rule == "type":
        return "ingest"
    if column == OUTLIER_COLUMN:
        return "screen"
    return "validate"


def _stage_expr() -> pl.Expr:
    return (
        pl.when(pl.col("severity") == "critical")
        .then(pl.lit("partition"))
        .when((pl.col("column") == MALFORMED) | (pl.col("rule") == "type"))
        .then(pl.lit("ingest"))
        .when(pl.col("column") == OUTLIER_COLUMN)
        .then(pl.lit("screen"))
        .otherwise(pl.lit("validate"))
    )


@dataclass(frozen=True)
class Example:
    """One failing row: where it came from, the value that failed and why."""

    source_file: str | None
    source_row: int | None
    value: str | None
    details: str | None
    reasons: list[str]
    raw: dict[str, str | None]


@dataclass(frozen=True)
class RuleSummary:
    """One reason (``column|rule``) and the rows it marked."""

    reason: str
    column: str
    rule: str
    stage: Stage
    severity: str
    rows: int
    share: float
    verdict: dict[str, Any] | None
    examples: list[Example]


KEYS = ("reason", "column", "rule", "severity")


@dataclass(frozen=True)
class FailureIds:
    """The failures reduced to distinct ``(reason key, _row_id)`` pairs: ``keys`` numbers each
    distinct ``(reason, column, rule, severity)`` (``code``), ``pairs`` holds ``code`` and
    ``_row_id`` once each. 12 bytes per distinct failing pair, read in batches."""

    keys: pl.DataFrame
    pairs: pl.DataFrame

    def rows_by(self, *by: str, where: pl.Expr | None = None) -> pl.DataFrame:
        """Distinct row ids per value of the key columns ``by`` (``rows``), among the keys
        ``where`` selects."""
        keys = self.keys if where is None else self.keys.filter(where)
        # the pairs are mapped to a small group number, not joined with the keys' text: the
        # join copied every key's strings once per pair (about 130 bytes a pair)
        groups = keys.select(*by).unique(maintain_order=True).with_row_index("_group")
        of_code = keys.join(groups, on=list(by), how="inner", nulls_equal=True)
        mapped = self.pairs.select(
            pl.col("code")
            .replace_strict(of_code["code"], of_code["_group"], default=None)
            .alias("_group"),
            pl.col(ROW_ID),
        ).drop_nulls("_group")
        if len(of_code) == len(groups):
            # one code per group: the pairs are distinct, so a group's rows are its pairs
            counts = mapped.group_by("_group").agg(pl.len().cast(pl.UInt32).alias("rows"))
        else:
            counts = mapped.group_by("_group").agg(
                pl.col(ROW_ID).n_unique().cast(pl.UInt32).alias("rows")
            )
        return groups.join(counts, on="_group", how="inner").select(*by, "rows")


def failure_ids(outputs: RunOutputs) -> FailureIds:
    """:class:`FailureIds` of a run's failures, read batch by batch."""
    codes: dict[tuple[Any, ...], int] = {}
    parts: list[pl.DataFrame] = []
    for f in outputs.failure_frames([*KEYS, ROW_ID]):
        # grouped by key, each key's distinct ids: joining the rows with the key table copied
        # every failure's key text (3x the time and memory for 8M failures)
        grouped = f.group_by(KEYS, maintain_order=True).agg(pl.col(ROW_ID).cast(pl.UInt64).unique())
        for key in grouped.select(KEYS).iter_rows():
            codes.setdefault(key, len(codes))
        got = grouped.join(_key_table(codes), on=list(KEYS), how="left", nulls_equal=True)
        parts.append(got.select("code", ROW_ID).explode(ROW_ID))
    if not parts:
        pairs = pl.DataFrame(schema={"code": pl.UInt32, ROW_ID: pl.UInt64})
    else:  # each part's pairs are distinct; several parts may share some
        pairs = parts[0] if len(parts) == 1 else pl.concat(parts).unique()
    return FailureIds(_key_table(codes), pairs)


def _key_table(codes: Mapping[tuple[Any, ...], int]) -> pl.DataFrame:
    schema = {k: pl.String for k in KEYS}
    keys = pl.DataFrame([k for k in codes], schema=schema, orient="row")
    return keys.with_columns(pl.Series("code", list(codes.values()), dtype=pl.UInt32))


def stage_counts(outputs: RunOutputs, ids: FailureIds | None = None) -> dict[str, int]:
    """Quarantined rows per stage (a row failing in two stages counts in both)."""
    ids = ids or failure_ids(outputs)
    staged = FailureIds(ids.keys.with_columns(_stage_expr().alias("stage")), ids.pairs)
    got = staged.rows_by("stage", where=pl.col("severity").is_in(QUARANTINING))
    counts = dict(got.iter_rows())
    return {s: int(counts.get(s, 0)) for s in STAGES}


def quarantine_text(quarantine: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """``_row_id`` and the raw text of each declared column of the quarantined rows.

    The text is in the ``_raw`` struct; quarantine files written before it existed held the
    text in the columns themselves.
    """
    ids = quarantine.get_column(ROW_ID)
    if RAW in quarantine.columns:
        raw = quarantine.get_column(RAW).struct.unnest()
        return pl.DataFrame([ids, *(raw.get_column(c) for c in columns if c in raw.columns)])
    return pl.DataFrame(
        [ids, *(quarantine.get_column(c) for c in columns if c in quarantine.columns)]
    )


EXAMPLE_ORDER = ("reason", SOURCE_ROW, ROW_ID, "value", "details")
WIDE_ROWS = 8192
"""Rows per batch when the quarantine is read with its raw text."""


def _examples(outputs: RunOutputs, examples: int) -> pl.DataFrame:
    """The first ``examples`` failures of each reason in :data:`EXAMPLE_ORDER` (by the
    quarantined row's source row; failures of rows not quarantined last), with their
    quarantined row's provenance, reasons and raw text: the failures and the quarantine read
    in batches, holding the quarantined rows' ids and source rows and the examples kept."""
    columns = list(outputs.columns)
    qcols = [c for c in outputs.quarantine.columns if c != ROW_ID]
    has_source = SOURCE_ROW in qcols
    sources = [
        q.select(ROW_ID, SOURCE_ROW) if has_source else q.select(ROW_ID)
        for q in outputs.quarantine_frames([ROW_ID, SOURCE_ROW])
    ]
    source = pl.concat(sources)
    if not has_source:
        source = source.with_columns(pl.lit(None, dtype=pl.Int64).alias(SOURCE_ROW))
    del sources
    top: pl.DataFrame | None = None
    for f in outputs.failure_frames(["reason", ROW_ID, "value", "details"]):
        got = f.join(source, on=ROW_ID, how="left")
        both = got if top is None else pl.concat([top, got], how="vertical_relaxed")
        top = (
            both.sort(list(EXAMPLE_ORDER), nulls_last=True, maintain_order=True)
            .group_by("reason", maintain_order=True)
            .head(examples)
        )
    del source
    assert top is not None
    wanted = top.get_column(ROW_ID).unique().implode()
    lookups = []
    # a quarantined row's provenance, reasons and raw text: a few KB a row, so small batches
    for batch in outputs.quarantine_frames(
        [ROW_ID, SOURCE_FILE, "_reasons", RAW, *columns], WIDE_ROWS
    ):
        q = batch.filter(pl.col(ROW_ID).is_in(wanted))
        text = quarantine_text(q, columns)
        raw_cols = [c for c in text.columns if c != ROW_ID]
        slots = {c: f"_raw_{i}" for i, c in enumerate(raw_cols)}
        lookups.append(
            q.select(ROW_ID, SOURCE_FILE, "_reasons").join(
                text.rename(slots), on=ROW_ID, how="left", maintain_order="left"
            )
        )
    lookup = pl.concat(lookups, how="diagonal_relaxed")
    return top.join(lookup, on=ROW_ID, how="left", maintain_order="left")


def rule_summaries(
    outputs: RunOutputs, examples: int = EXAMPLES, ids: FailureIds | None = None
) -> list[RuleSummary]:
    """Every reason that marked rows, most rows first, with example rows and raw values."""
    ids = ids or failure_ids(outputs)
    if ids.pairs.is_empty():
        return []
    n_in = max(outputs.rows_in, 1)
    verdicts = {v["reason"]: v for v in outputs.manifest.get("validation", {}).get("verdicts", [])}
    per = ids.rows_by(*KEYS).sort(["rows", "reason"], descending=[True, False])
    picked = _examples(outputs, examples)
    text = quarantine_text(outputs.quarantine.head(0), list(outputs.columns))
    raw_cols = [c for c in text.columns if c != ROW_ID]
    # Positional names, so a column called like a failures column (value, reason) is no clash.
    slots = {c: f"_raw_{i}" for i, c in enumerate(raw_cols)}
    by_reason: dict[str, list[Example]] = {}
    for row in picked.iter_rows(named=True):
        src = row.get(SOURCE_FILE)
        by_reason.setdefault(row["reason"], []).append(
            Example(
                source_file=Path(src).name if src else None,
                source_row=row.get(SOURCE_ROW),
                value=row["value"],
                details=row["details"],
                reasons=list(row.get("_reasons") or []),
                raw={c: row.get(slots[c]) for c in raw_cols} if src else {},
            )
        )
    out = []
    for r in per.iter_rows(named=True):
        out.append(
            RuleSummary(
                reason=r["reason"],
                column=r["column"],
                rule=r["rule"],
                stage=stage_of(r["column"], r["rule"], r["severity"]),
                severity=r["severity"],
                rows=int(r["rows"]),
                share=r["rows"] / n_in,
                verdict=verdicts.get(r["reason"]),
                examples=by_reason.get(r["reason"], []),
            )
        )
    return out


@dataclass(frozen=True)
class Histogram:
    """Counts per bin of clean and quarantined values on shared edges (ends are open)."""

    edges: FloatArray
    clean: FloatArray
    quarantine: FloatArray
    temporal: bool = False
    lengths: bool = False


@dataclass(frozen=True)
class Categories:
    """Counts per category of clean and quarantined values (the rest summed as ``(other)``)."""

    labels: list[str]
    clean: FloatArray
    quarantine: FloatArray


@dataclass(frozen=True)
class ColumnProfile:
    """What one column looks like in this run."""

    name: str
    dtype: str
    kind: Kind
    rows: int
    missing: int
    unparsed: int
    clean_rows: int
    distinct: int
    minimum: Any
    maximum: Any
    mean: float | None
    std: float | None
    p01: float | None
    p50: float | None
    p99: float | None
    distribution: Histogram | Categories | None

    @property
    def null_rate(self) -> float:
        """Share of rows with no value in the source."""
        return self.missing / self.rows if self.rows else 0.0

    @property
    def identifier_like(self) -> bool:
        """Nearly every clean value distinct (ids, keys)."""
        return (
            self.kind == "string" and self.distinct > 50 and self.distinct > 0.5 * self.clean_rows
        )


def _as_float(s: pl.Series) -> pl.Series:
    """Numbers to plot: seconds since the epoch for dates and datetimes, seconds since
    midnight for times of day, seconds for durations."""
    if s.dtype == pl.Time or isinstance(s.dtype, pl.Duration):
        return s.to_physical().cast(pl.Float64) / (1e9 if s.dtype == pl.Time else _per_second(s))
    if s.dtype.is_temporal():
        return s.dt.epoch("s").cast(pl.Float64)
    if s.dtype == pl.Boolean:
        return s.cast(pl.Float64)
    return s.cast(pl.Float64)


def _per_second(s: pl.Series) -> float:
    unit = getattr(s.dtype, "time_unit", None) or "us"
    return {"ns": 1e9, "us": 1e6, "ms": 1e3}[unit]


def _parse_raw(raw: pl.Series, dtype: pl.DataType, fmt: str | None) -> pl.Series:
    """Quarantined raw text as the declared type; what does not parse becomes null."""
    text = raw.cast(pl.String).str.strip_chars()
    if dtype == pl.Boolean:
        low = text.str.to_lowercase()
        return (
            pl.select(
                pl.when(low.is_in(["true", "t", "yes", "y", "1"]))
                .then(True)
                .when(low.is_in(["false", "f", "no", "n", "0"]))
                .then(False)
                .otherwise(None)
            )
            .to_series()
            .alias(raw.name)
        )
    if dtype.is_temporal():
        return text.str.strptime(dtype, fmt, strict=False)  # type: ignore[arg-type]
    if dtype.is_numeric():
        return text.cast(dtype, strict=False)
    return text


_LARGEST = float(np.finfo(np.float64).max)


def equal_width_edges(lo: float, hi: float, bins: int) -> FloatArray:
    """``bins + 1`` equal-width edges from ``lo`` to ``hi``, finite and never decreasing for any
    ``lo <= hi``: infinite ends are taken at the largest float (the end bins hold what lies
    beyond), and a span wider than the largest float (``-1e308`` to ``1e308``, where
    ``numpy.linspace`` gives NaN) is divided in halves, exactly (halving and doubling a float
    this large loses nothing)."""
    lo, hi = min(max(lo, -_LARGEST), _LARGEST), min(max(hi, -_LARGEST), _LARGEST)
    # numpy.linspace may overflow computing its last edge, which it then sets to ``hi``
    with np.errstate(over="ignore"):
        if np.isfinite(hi - lo):
            return np.linspace(lo, hi, bins + 1)
        edges: FloatArray = np.linspace(lo / 2, hi / 2, bins + 1) * 2
    return edges


def hist_edges(values: FloatArray, bins: int) -> FloatArray:
    """Equal-width bin edges over the 0.1 to 99.9 percentiles (the end bins hold the rest)."""
    if values.size == 0:
        return np.linspace(0.0, 1.0, bins + 1)
    lo, hi = (float(x) for x in np.quantile(values, [0.001, 0.999]))
    if not hi > lo:  # also NaN: a quantile between two equal infinities
        lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return equal_width_edges(lo, hi, bins)


def bin_counts(values: FloatArray, edges: FloatArray) -> FloatArray:
    """Counts per bin; values beyond the ends count in the end bins."""
    if values.size == 0:
        return np.zeros(len(edges) - 1)
    clipped = np.clip(values, edges[0], edges[-1])
    counts, _ = np.histogram(clipped, bins=edges)
    return counts.astype(np.float64)


def _once(values: FloatArray) -> FloatBatches:
    """Float batches that are the one array ``values``, as often as read."""
    return lambda: iter([values])


def _float_batches(batches: Batches, as_float: bool = True) -> FloatBatches:
    """The NaN-free float values of a column's batches (nulls left out)."""

    def run() -> Iterator[FloatArray]:
        for batch in batches():
            v = (_as_float(batch) if as_float else batch).drop_nulls().to_numpy()
            v = np.asarray(v, dtype=np.float64)
            yield v[~np.isnan(v)]

    return run


def _merged(values: list[Any], dtype: pl.DataType, smallest: bool) -> Any:
    if len(values) == 1:
        return values[0]
    merged = pl.Series(VALUE, values, dtype=dtype)
    return merged.min() if smallest else merged.max()


def _value_counts(values: pl.Series) -> pl.DataFrame:
    """``values.value_counts(name="n")`` in no particular order; text, integers and booleans
    by a group-by, which polars runs in about half the time (floats as ``value_counts`` does,
    whose grouping of ``-0.0`` and NaN it keeps)."""
    if values.dtype.is_float():
        return values.value_counts(name="n")
    return values.to_frame().lazy().group_by(pl.nth(0)).agg(pl.len().alias("n")).collect()


def _add_lengths(lengths: dict[int, int], categories: Mapping[Any, int], kind: str) -> None:
    """Add the lengths (in characters) of a text column's values counted in ``categories``."""
    if kind != "string":
        return
    for value, n in categories.items():
        lengths[len(value)] = lengths.get(len(value), 0) + n


def _add_counts(held: dict[Any, int], counts: pl.DataFrame) -> None:
    for value, n in counts.iter_rows():
        held[value] = held.get(value, 0) + int(n)


def _counts_frame(held: Mapping[Any, int], dtype: pl.DataType) -> pl.DataFrame:
    frame = pl.DataFrame(
        {VALUE: pl.Series(VALUE, list(held), dtype=dtype), "n": list(held.values())},
        schema={VALUE: dtype, "n": pl.UInt32},
    )
    return frame.sort(["n", VALUE], descending=[True, False], nulls_last=True)


class _Spread:
    """The sample standard deviation around a known mean: the squares of ``x - mean`` (each
    rounded as a double) summed exactly (:class:`ExactSum`), over ``n - 1``; 0.0 for one value.
    The mean is the exact sum rounded once, so both are the same for any split of the rows."""

    def __init__(self, total: ExactSum) -> None:
        self.total = total
        self.mean = total.mean()
        self.squares = ExactSum()

    def add(self, values: FloatArray) -> None:
        """Add one batch's values (NaN included)."""
        if self.mean is None or self.total.count < 2:
            return
        with np.errstate(invalid="ignore", over="ignore"):
            d = values - self.mean
            self.squares = self.squares.merge(ExactSum.of(d * d))

    def add_counted(self, values: FloatArray, weights: npt.NDArray[np.int64]) -> None:
        """Add distinct values each taken ``weights`` times (no NaN)."""
        if self.mean is None or self.total.count < 2:
            return
        with np.errstate(invalid="ignore", over="ignore"):
            d = values - self.mean
            self.squares = self.squares.merge(weighted_sum(d * d, weights))

    @property
    def std(self) -> float | None:
        """The standard deviation (None for no values)."""
        if self.mean is None:
            return None
        if self.total.count < 2:
            return 0.0
        return float(np.sqrt(self.squares.sum() / (self.total.count - 1)))


def hist_edges_of(
    n: int, statistic: Mapping[int, float], bins: int, *, nan: bool = False
) -> FloatArray:
    """:func:`hist_edges` of a column of ``n`` values from its order statistics (the ranks of
    :data:`EDGE_QUANTILES` and ``0`` and ``n - 1``)."""
    if n == 0:
        return np.linspace(0.0, 1.0, bins + 1)
    lo, hi = numpy_quantiles(n, EDGE_QUANTILES, statistic, nan=nan)
    if not nan and not hi > lo:  # also NaN: a quantile between two equal infinities
        lo, hi = statistic[0], statistic[n - 1]
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return equal_width_edges(lo, hi, bins)


EDGE_QUANTILES = (0.001, 0.999)
PROFILE_QUANTILES = (0.01, 0.5, 0.99)


def _needed_ranks(n: int, quantiles: Sequence[float]) -> list[int]:
    return sorted({0, n - 1, *quantile_ranks(n, quantiles)}) if n else []


def profile_column(
    name: str,
    dtype: pl.DataType,
    clean: pl.Series,
    quarantine_raw: pl.Series | None,
    *,
    rows: int,
    unparsed: int,
    fmt: str | None = None,
    quarantine_typed: pl.Series | None = None,
) -> ColumnProfile:
    """Profile one column: missing values over every row; statistics over clean rows.

    Quarantined values come typed (``quarantine_typed``, as the quarantine file holds them:
    null for a cell that was missing or did not parse) or, from older files, as raw text.
    """
    return profile_batches(
        name,
        dtype,
        lambda: iter([clean]),
        quarantine_raw,
        rows=rows,
        unparsed=unparsed,
        fmt=fmt,
        quarantine_typed=quarantine_typed,
    )


def profile_batches(
    name: str,
    dtype: pl.DataType,
    clean: Batches,
    quarantine_raw: pl.Series | None,
    *,
    rows: int,
    unparsed: int,
    fmt: str | None = None,
    quarantine_typed: pl.Series | None = None,
    spill_dir: Path | None = None,
    quarantine: Batches | None = None,
    quarantine_is_raw: bool = False,
    expected_rows: int = 0,
) -> ColumnProfile:
    """:func:`profile_column` of a clean column read in batches (:mod:`sluice.report.streaming`):
    the same numbers for any split, holding one batch and the mergeable states. Distinct values
    past :data:`DISTINCT_LIMIT` spill to hash buckets under ``spill_dir`` when it is given.
    ``quarantine``: the quarantined column in batches (raw text when ``quarantine_is_raw``),
    in place of ``quarantine_raw`` or ``quarantine_typed``. ``expected_rows`` (the clean rows, when
    known) sets how many hash buckets distinct values spill to, so each holds a bounded number."""
    kind = kind_of(dtype)
    # Series methods run as expressions on the series' name: "*" or "^a.*$" would expand.
    raw = quarantine_raw is not None and quarantine_typed is None
    given = quarantine_typed if quarantine_typed is not None else quarantine_raw
    if quarantine is None:
        quarantine = (lambda: iter([given])) if given is not None else (lambda: iter(()))
    else:
        raw = quarantine_is_raw

    def q_values() -> Iterator[pl.Series]:
        for batch in quarantine():
            got = batch.rename(VALUE)
            yield (_parse_raw(got, dtype, fmt) if raw else got).drop_nulls()

    q_nulls = sum(int(batch.null_count()) for batch in quarantine())
    q_missing = q_nulls if raw else max(q_nulls - unparsed, 0)

    def batches() -> Iterator[pl.Series]:
        for batch in clean():
            yield batch.rename(VALUE)

    clean_rows = nulls = 0
    lows: list[Any] = []
    highs: list[Any] = []
    distinct_count = DistinctCount(
        dtype,
        limit=DISTINCT_LIMIT,
        spill_dir=spill_dir,
        parts=part_count(expected_rows, DISTINCT_LIMIT),
    )
    categories: dict[Any, int] | None = {} if kind != "temporal" else None
    lengths: dict[int, int] = {}
    total = ExactSum()
    nans = 0
    first = TopCounts()
    fed = summed = numeric_batches = 0
    one: tuple[FloatArray, FloatArray] | None = None
    table = ValueTable()
    try:
        for batch in batches():
            clean_rows += len(batch)
            nulls += int(batch.null_count())
            values = batch.drop_nulls()
            if values.is_empty():
                continue
            lows.append(values.min())
            highs.append(values.max())
            in_batch = distinct_count.add(values)
            # a text column's lengths come from its category counts while it has them
            measured = False
            vc: pl.DataFrame | None = None
            if categories is not None:
                if in_batch > CATEGORY_LIMIT:
                    _add_lengths(lengths, categories, kind)
                    categories = None
                else:
                    vc = _value_counts(values)
                    _add_counts(categories, vc.with_columns(pl.col(VALUE).cast(pl.String)))
                    measured = True
                    if len(categories) > 2 * CATEGORY_LIMIT + 2:
                        _add_lengths(lengths, categories, kind)
                        categories = None
            if kind == "string" and not measured:
                _add_counts(lengths, _value_counts(values.str.len_chars()))
            elif kind in ("numeric", "temporal"):
                f = np.asarray(_as_float(values).to_numpy(), dtype=np.float64)
                nan = np.isnan(f)
                nans += int(nan.sum())
                kept = f[~nan] if nans else f
                # a column read as one batch keeps its floats for the passes after the loop
                one = (f, kept) if numeric_batches == 0 else None
                if vc is not None:  # counted as categories: the table takes those counts
                    table.add_counts(_as_float(vc.get_column(VALUE)), vc["n"], distinct=in_batch)
                else:
                    table.add(kept, distinct=in_batch)
                # the radix pass is for a column the table could not count: fed from the
                # first batch on, or left to order_statistics to make
                if table.table is None and fed == numeric_batches:
                    first.add(kept)
                    fed += 1
                # so is the exact sum: a counted column's comes from its table
                if kind == "numeric" and table.table is None and summed == numeric_batches:
                    total = total.merge(ExactSum.of(f))
                    summed += 1
                numeric_batches += 1
        distinct = distinct_count.count()
        if categories is not None:
            _add_lengths(lengths, categories, kind)
    finally:
        distinct_count.close()
    n_values = clean_rows - nulls
    floats, with_nan = _float_batches(batches), floats_with_nan(batches)
    if one is not None:
        # converted once: the radix passes, sums and bins read the same arrays again
        floats, with_nan = _once(one[1]), _once(one[0])
    mean = std = p01 = p50 = p99 = None
    statistic: dict[int, float] = {}
    counted = table.arrays() if not nans else None
    if kind == "numeric" and counted is not None:
        total = weighted_sum(*counted)
    elif kind == "numeric" and summed != numeric_batches:
        total = ExactSum()
        for v in with_nan():
            total = total.merge(ExactSum.of(v))
    if kind in ("numeric", "temporal") and n_values and not nans:
        wanted = PROFILE_QUANTILES if kind == "numeric" else ()
        ranks = _needed_ranks(n_values, (*wanted, *EDGE_QUANTILES))
        statistic = (
            weighted_statistics(*counted, ranks)
            if counted is not None
            else order_statistics(floats, ranks, first if fed == numeric_batches else None)
        )
    categorical = kind in ("string", "boolean") or (
        kind == "numeric" and distinct <= CATEGORY_LIMIT
    )
    edges = (
        hist_edges_of(n_values, statistic, HIST_BINS, nan=bool(nans))
        if n_values and not categorical
        else None
    )
    spread = _Spread(total) if kind == "numeric" and n_values else None
    counts = np.zeros(HIST_BINS)
    if counted is not None:
        if spread is not None:
            spread.add_counted(*counted)
        if edges is not None and counted[0].size:
            clipped = np.clip(counted[0], edges[0], edges[-1])
            counts = np.histogram(clipped, bins=edges, weights=counted[1].astype(np.float64))[0]
    elif edges is not None or (spread is not None and total.count > 1):
        for v in with_nan():
            if spread is not None:
                spread.add(v)
            if edges is not None:
                counts = counts + bin_counts(v, edges)
    if spread is not None:
        mean, std = spread.mean, spread.std
        p01, p50, p99 = numpy_quantiles(n_values, PROFILE_QUANTILES, statistic, nan=bool(nans))
    dist: Histogram | Categories | None = None
    if kind == "string" and distinct > CATEGORY_LIMIT:
        q_lengths: dict[int, int] = {}
        for q in q_values():
            _add_counts(q_lengths, q.cast(pl.String).str.len_chars().value_counts(name="n"))
        both = dict(lengths)
        for length, n in q_lengths.items():
            both[length] = both.get(length, 0) + int(n)
        keys = np.array(sorted(both), dtype=np.float64)
        weights = np.array([both[k] for k in sorted(both)], dtype=np.int64)
        bounds = (
            np.arange(keys.min() - 0.5, keys.max() + 1.5) if keys.size else np.array([0.0, 1.0])
        )
        if len(bounds) > 2 * HIST_BINS + 1:
            n_both = int(weights.sum())
            bounds = hist_edges_of(
                n_both,
                weighted_statistics(keys, weights, _needed_ranks(n_both, EDGE_QUANTILES)),
                HIST_BINS,
            )
        dist = Histogram(
            bounds, _weighted_bins(lengths, bounds), _weighted_bins(q_lengths, bounds), lengths=True
        )
    elif categorical:
        assert categories is not None
        dist = _categories(_counts_frame(categories, pl.String()), n_values, q_values)
    elif edges is not None:
        q_counts = np.zeros(len(edges) - 1)
        for q in q_values():
            if not q.is_empty():
                q_counts = q_counts + bin_counts(_as_float(q).to_numpy(), edges)
        dist = Histogram(edges, counts, q_counts, temporal=kind == "temporal")
    return ColumnProfile(
        name=name,
        dtype=str(dtype.base_type()),
        kind=kind,
        rows=rows,
        missing=nulls + q_missing,
        unparsed=unparsed,
        clean_rows=clean_rows,
        distinct=distinct,
        minimum=_merged(lows, dtype, True) if lows else None,
        maximum=_merged(highs, dtype, False) if highs else None,
        mean=mean,
        std=std,
        p01=p01,
        p50=p50,
        p99=p99,
        distribution=dist,
    )


def floats_with_nan(batches: Batches) -> FloatBatches:
    """The float values of a column's batches, NaN included (nulls left out)."""

    def run() -> Iterator[FloatArray]:
        for batch in batches():
            yield np.asarray(_as_float(batch.drop_nulls()).to_numpy(), dtype=np.float64)

    return run


def _weighted_bins(counts: Mapping[int, int], edges: FloatArray) -> FloatArray:
    """:func:`bin_counts` of a column given as value counts."""
    if not counts:
        return np.zeros(len(edges) - 1)
    values = np.array(list(counts), dtype=np.float64)
    weights = np.array(list(counts.values()), dtype=np.float64)
    got, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges, weights=weights)
    return got.astype(np.float64)


def counts_by_value(values: pl.Series) -> pl.DataFrame:
    """Rows per value, most frequent first, ties by value (so the order is deterministic).

    The columns are the series' name and ``n``: rename a series called ``n`` first.
    """
    return values.value_counts(name="n").sort(
        ["n", values.name], descending=[True, False], nulls_last=True
    )


def _categories(c: pl.DataFrame, clean_len: int, quarantine: Batches) -> Categories:
    """Categories from the clean values' counts (``counts_by_value`` of them as text) and the
    quarantined values (batch by batch, their counts merged)."""
    parts = [
        q.cast(pl.String).rename(VALUE).value_counts(name="n").cast({"n": pl.Int64})
        for q in quarantine()
    ]
    merged = (
        pl.concat(parts).group_by(VALUE).agg(pl.col("n").sum())
        if parts
        else pl.DataFrame(schema={VALUE: pl.String, "n": pl.Int64})
    )
    # the four most frequent (ties by value), without sorting every value: an id column has one
    # per row
    top = merged.top_k(4, by=["n", VALUE], reverse=[False, True]).sort(
        ["n", VALUE], descending=[True, False], nulls_last=True
    )
    q_len = int(merged.get_column("n").sum())
    labels = c[VALUE].head(8).to_list()
    for v in top[VALUE].to_list():
        if v not in labels:
            labels.append(v)
    cmap = dict(c.iter_rows())  # at most the category limit's values
    # the quarantine's counts are looked up for the labels only
    wanted = pl.Series(labels, dtype=pl.String).implode()
    qmap = dict(merged.filter(pl.col(VALUE).is_in(wanted)).iter_rows())
    cc = [float(cmap.get(v, 0)) for v in labels]
    qc = [float(qmap.get(v, 0)) for v in labels]
    rest_c = float(clean_len) - sum(cc)
    rest_q = float(q_len) - sum(qc)
    if rest_c > 0 or rest_q > 0:
        labels.append("(other)")
        cc.append(rest_c)
        qc.append(rest_q)
    return Categories([str(v) for v in labels], np.array(cc), np.array(qc))


def profiles(outputs: RunOutputs, ids: FailureIds | None = None) -> list[ColumnProfile]:
    """A profile of every declared column (a clean file read column by column, in batches);
    ``ids``: the run's :func:`failure_ids`, when the caller has them."""
    ids = ids or failure_ids(outputs)
    unparsed = dict(ids.rows_by("column", where=pl.col("rule") == "type").iter_rows())
    q = outputs.quarantine
    held = set(q.columns)
    typed = RAW in held
    rows = outputs.clean_rows

    def side(column: str) -> Batches:
        if outputs.quarantine_file is None and column in held:
            # in memory: the column itself (a projection per column of a frame of thousands
            # of columns costs time in proportion to them)
            values = q.get_column(column)
            return lambda: iter([values])
        return lambda: (f.get_column(column) for f in outputs.quarantine_frames([column]))

    return [
        profile_batches(
            c,
            t,
            outputs.clean_batches(c),
            None,
            rows=outputs.rows_in,
            unparsed=int(unparsed.get(c, 0)),
            fmt=outputs.formats.get(c),
            spill_dir=outputs.spill_dir,
            quarantine=side(c) if c in q.columns else None,
            quarantine_is_raw=not typed,
            expected_rows=rows,
        )
        for c, t in outputs.columns.items()
    ]


@dataclass(frozen=True)
class FeatureShare:
    """How often a feature drove a flag."""

    column: str
    top1: int
    top3: int
    mean_contribution: float


@dataclass(frozen=True)
class DetectorStats:
    """One detector's scores over the rows it screened."""

    name: str
    scored: int
    flagged: int
    threshold: float | None
    p50: float | None
    p90: float | None
    p99: float | None
    histogram: Histogram | None
    features: list[FeatureShare]

    @property
    def flagged_rate(self) -> float:
        """Share of screened rows flagged."""
        return self.flagged / self.scored if self.scored else 0.0


_TOP = pl.List(pl.Struct({"column": pl.String(), "contribution": pl.Float64()}))


def _feature_shares(outputs: RunOutputs, detector: str) -> list[FeatureShare]:
    """How often each feature was a flagged row's top feature (``top1``) or among its top three
    (``top3``), and its mean contribution (summed exactly), from the failures in batches."""
    held: dict[str, list[Any]] = {}
    for batch in outputs.failure_frames(["column", "rule", "details"]):
        f = batch.filter((pl.col("column") == OUTLIER_COLUMN) & (pl.col("rule") == detector))
        if f.is_empty():
            continue
        tops = (
            f.select(
                pl.col("details")
                .str.json_decode(pl.Struct({"top_features": _TOP}))
                .struct.field("top_features")
                .alias("top")
            )
            .with_row_index("_i")
            .explode("top")
            .drop_nulls("top")
            .unnest("top")
            .with_columns((pl.col("_i").cum_count().over("_i") == 1).alias("first"))
        )
        for (column,), part in tops.partition_by("column", as_dict=True).items():
            got = held.setdefault(str(column), [0, 0, ExactSum()])
            got[0] += int(part.get_column("first").sum())
            got[1] += part.height
            got[2] = got[2].merge(ExactSum.of(part.get_column("contribution").drop_nulls()))
    shares = [
        FeatureShare(column, top1, top3, _mean_or_nan(total))
        for column, (top1, top3, total) in held.items()
    ]
    return sorted(shares, key=lambda s: (-s.top1, -s.top3, s.column))


def _mean_or_nan(total: ExactSum) -> float:
    mean = total.mean()
    return float("nan") if mean is None else mean


def _detector_scores(outputs: RunOutputs, name: str) -> FloatBatches:
    """One detector's scores without nulls and NaN, batch by batch."""

    def run() -> Iterator[FloatArray]:
        for batch in outputs.score_batches(["detector", "score"]):
            got = batch.filter(pl.col("detector") == name).get_column("score")
            yield np.asarray(got.drop_nulls().drop_nans().to_numpy(), dtype=np.float64)

    return run


SCORE_QUANTILES = (0.5, 0.9, 0.99)


def detector_stats(outputs: RunOutputs) -> list[DetectorStats]:
    """Score distribution, threshold, flags and driving features of each detector that ran:
    exact quantiles and counts streamed from the scores (:mod:`sluice.report.streaming`)."""
    out = []
    has_detector = outputs.has_scores and "detector" in outputs.score_columns
    for model in outputs.manifest.get("detectors", []):
        name = model["name"]
        threshold = model.get("threshold")
        scores = _detector_scores(outputs, name) if has_detector else None
        n = sum(v.size for v in scores()) if scores is not None else 0
        hist = None
        p50 = p90 = p99 = None
        if scores is not None and n:
            statistic = order_statistics(scores, _needed_ranks(n, SCORE_QUANTILES))
            p50, p90, p99 = numpy_quantiles(n, SCORE_QUANTILES, statistic)
            lo, hi = statistic[0], statistic[n - 1]
            if threshold is not None:
                hi = max(hi, float(threshold))
            if hi <= lo:
                hi = lo + 1.0
            edges = equal_width_edges(lo, hi, SCORE_BINS)
            counts = np.zeros(SCORE_BINS)
            for v in scores():
                counts = counts + bin_counts(v, edges)
            hist = Histogram(edges, counts, np.zeros(SCORE_BINS))
        out.append(
            DetectorStats(
                name=name,
                scored=int(model.get("n_scored") or n),
                flagged=int(model.get("n_flagged") or 0),
                threshold=float(threshold) if threshold is not None else None,
                p50=p50,
                p90=p90,
                p99=p99,
                histogram=hist,
                features=_feature_shares(outputs, name),
            )
        )
    return out


EPOCH = dt.datetime(1970, 1, 1)


def _value(v: Any) -> float | None:
    """A metric's value as a number: a datetime as seconds since 1970 (naive ones read as UTC,
    exact from year 1 to 9999), a date as its ordinal, a time of day as seconds since midnight."""
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        naive = v.astimezone(dt.UTC).replace(tzinfo=None) if v.tzinfo else v
        return (naive - EPOCH).total_seconds()
    if isinstance(v, dt.date):
        return float(v.toordinal())
    if isinstance(v, dt.time):
        return v.hour * 3600.0 + v.minute * 60.0 + v.second + v.microsecond / 1e6
    if isinstance(v, dt.timedelta):
        return v.total_seconds()
    if isinstance(v, bool | int | float):
        return float(v)
    return None


def metrics_frame(
    outputs: RunOutputs,
    cols: list[ColumnProfile],
    detectors: list[DetectorStats],
    extra: Sequence[tuple[str, str, str, float | None, int]] = (),
    ids: FailureIds | None = None,
) -> pl.DataFrame:
    """This run's metrics as a long table: one row per (scope, name, metric).

    Scopes: ``run`` (name empty), ``column`` (a declared column), ``rule`` (a reason
    ``column|rule``), ``detector``. ``denominator`` is the row count a rate is over.
    """
    m = outputs.manifest
    counts = m["counts"]
    n_in = int(counts["in"])
    rows: list[tuple[str, str, str, float | None, int]] = [
        ("run", "", "rows_in", float(n_in), n_in),
        ("run", "", "rows_clean", float(counts["clean"]), n_in),
        ("run", "", "rows_quarantined", float(counts["quarantine"]), n_in),
        ("run", "", "quarantine_rate", counts["quarantine"] / n_in if n_in else 0.0, n_in),
        ("run", "", "warned_rate", counts.get("warned_rows", 0) / n_in if n_in else 0.0, n_in),
        ("run", "", "failed", 1.0 if m.get("status") == "failed" else 0.0, n_in),
    ]
    ids = ids or failure_ids(outputs)
    for stage, n in stage_counts(outputs, ids).items():
        rows.append(("stage", stage, "rate", n / n_in if n_in else 0.0, n_in))
    for c in cols:
        rows += [
            ("column", c.name, "null_rate", c.null_rate, c.rows),
            ("column", c.name, "unparsed_rate", c.unparsed / c.rows if c.rows else 0.0, c.rows),
            ("column", c.name, "distinct", float(c.distinct), c.clean_rows),
            ("column", c.name, "min", _value(c.minimum), c.clean_rows),
            ("column", c.name, "max", _value(c.maximum), c.clean_rows),
        ]
        if c.kind == "numeric":
            rows += [
                ("column", c.name, "mean", c.mean, c.clean_rows),
                ("column", c.name, "std", c.std, c.clean_rows),
                ("column", c.name, "p01", c.p01, c.clean_rows),
                ("column", c.name, "p50", c.p50, c.clean_rows),
                ("column", c.name, "p99", c.p99, c.clean_rows),
            ]
    per_reason = ids.rows_by("reason").sort("reason")
    for reason, n in per_reason.iter_rows():
        rows.append(("rule", reason, "rate", n / n_in if n_in else 0.0, n_in))
        rows.append(("rule", reason, "rows", float(n), n_in))
    for d in detectors:
        rows += [
            ("detector", d.name, "flagged_rate", d.flagged_rate, d.scored),
            ("detector", d.name, "threshold", d.threshold, d.scored),
            ("detector", d.name, "score_p50", d.p50, d.scored),
            ("detector", d.name, "score_p90", d.p90, d.scored),
            ("detector", d.name, "score_p99", d.p99, d.scored),
        ]
    rows += list(extra)
    part = outputs.partition
    base = {
        "dataset": m["dataset"],
        "partition": str(part),
        "partition_start": part.day,
        "weekday": part.day.weekday(),
        "run_id": m.get("run_id", ""),
        "finished_at": m.get("finished_at", ""),
    }
    return pl.DataFrame(
        [
            {**base, "scope": s, "name": n, "metric": k, "value": v, "denominator": d}
            for s, n, k, v, d in rows
        ],
        schema=METRICS_SCHEMA,
    )


def details_dict(details: str | None) -> dict[str, Any]:
    """A failure's details as a dict (empty when there are none or they are not JSON)."""
    if not details:
        return {}
    try:
        got = json.loads(details)
    except ValueError:
        return {}
    return got if isinstance(got, dict) else {}
