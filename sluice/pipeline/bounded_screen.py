"""The screen stage in bounded batches: fit on the same sample, score batch by batch.

:func:`screen_bounded` gives the facts and the work files of :func:`sluice.pipeline.stages._screen`
(``scores.parquet``, ``screen_failures.parquet``, identical rows in identical order) without
holding the partition. ``frame.parquet`` is read by row groups of ``batch_rows`` rows, projected
to ``_row_id`` and the columns a pass needs:

1. the rows to score are those without a quarantining failure in ``ingest_failures.parquet`` and
   ``validation_failures.parquet``; they are counted by streaming ``_row_id``;
2. per detector spec, the fit rows are the in-memory path's: :func:`detectors.base.sample_indices`
   over the same count, seed and ``max_fit_rows + CALIBRATION_ROWS``, so the sample gathered by
   streaming the spec's feature columns is the frame the in-memory path fits on, in the same
   order, and the fitted model, threshold and record are the same;
3. each batch is prepared and scored with the fitted model, the fit's own scores reused where
   the in-memory path reuses them, and its scores and outliers appended to the two files as row
   groups (:class:`pyarrow.parquet.ParquetWriter`), spec after spec, as the in-memory path
   concatenates them.

Every registered detector scores a row from the fitted model alone (ECOD and COPOD look values up
in tables of the fit sample; ensembles average members fitted on the sample; KNN and LOF query
their fit sample), and every threshold is set inside the fit from held-out rows of the sample
(:mod:`detectors.threshold`), so every detector, the default included, gives identical scores,
thresholds and flags on both paths.

What grows with the partition's rows: the sorted ids of rows with a quarantining failure
(8 bytes per failing row, read by column projection from the failure files, which grow with
failures, not rows). The sample is at most ``max_fit_rows + CALIBRATION_ROWS`` rows of the
feature columns (300,000 for the default detector), and the fit's reused scores as many
(16 bytes each); a spec with ``max_fit_rows: null`` asks to fit on every row, so its sample is
every scored row's features (8 bytes per feature per row): that is the one exactness-driven
growth. A reference window (``reference.partitions``) is read as the in-memory path reads it
(:func:`sluice.pipeline.reference.reference_rows`): it grows with the earlier partitions' clean
rows, not with this one.

Measured on the ``bench.bounded_stages`` partition (20 columns, default detector,
``SLUICE_MEMORY_BUDGET=4G``): 0.69 GB peak RSS at 1 M rows, 0.72 GB at 10 M (in memory: 1.06 GB
at 1 M, above 5 GB at 10 M).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from detectors.base import CALIBRATION_ROWS, sample_indices
from detectors.persist import FittedModel
from detectors.screen import SCORES_SCHEMA, KnownScores, _fit, _score_spec, build_detector
from detectors.screen import check_specs as check_detector_specs
from detectors.spec import DetectorSpec
from sluice.config import LoadedSpec
from sluice.core.errors import ConfigError
from sluice.core.failures import FAILURE_SCHEMA
from sluice.core.frame import ROW_ID
from sluice.decide import QUARANTINING
from sluice.pipeline.budget import batch_rows
from sluice.pipeline.reference import reference_rows
from sluice.pipeline.run import Run
from sluice.preflight import with_model_path
from sluice.screening import why_not_scored
from sluice.write import OutputError

FAILURE_FILES = ("ingest_failures.parquet", "validation_failures.parquet")


def iter_frames(
    path: Path,
    columns: Sequence[str] | None,
    rows: int,
    row_groups: Sequence[int] | None = None,
) -> Iterator[pl.DataFrame]:
    """The rows of a Parquet file (of ``row_groups`` only, when given) as polars frames of at
    most ``rows`` rows, in file order, holding ``columns`` only (all when None)."""
    # pre_buffer (pyarrow's default) caches every row group read so far until the reader closes
    f = pq.ParquetFile(path, pre_buffer=False)
    for batch in f.iter_batches(
        batch_size=rows,
        row_groups=None if row_groups is None else list(row_groups),
        columns=None if columns is None else list(columns),
    ):
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        yield frame


def arrow_schema(schema: pl.Schema | dict[str, pl.DataType]) -> pa.Schema:
    """The Arrow schema polars writes for a frame of ``schema``."""
    return pl.DataFrame(schema=schema).to_arrow().schema


class StreamWriter:
    """A Parquet file written as row groups (zstd level 3 with statistics, as
    :func:`sluice.write.write_parquet`), every batch cast to one Arrow schema."""

    def __init__(
        self, path: Path, schema: pa.Schema, metadata: dict[str, str] | None = None
    ) -> None:
        self.path = path
        self.schema = schema if not metadata else schema.with_metadata(metadata)
        self.rows = 0
        try:
            self._writer = pq.ParquetWriter(
                path, self.schema, compression="zstd", compression_level=3, write_statistics=True
            )
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc}") from None

    def write(self, frame: pl.DataFrame) -> None:
        """Append ``frame``'s rows as one row group (nothing for an empty frame)."""
        if frame.height == 0:
            return
        table = frame.to_arrow()
        try:
            table = table.cast(self.schema, safe=True)
            self._writer.write_table(table, row_group_size=max(1, frame.height))
        except (OSError, pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise OutputError(f"cannot write {self.path}: {exc}") from None
        self.rows += frame.height

    def close(self) -> None:
        """Finish the file (its footer)."""
        try:
            self._writer.close()
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc}") from None

    def __enter__(self) -> StreamWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def quarantined_ids(files: Sequence[Path]) -> npt.NDArray[np.uint64]:
    """The sorted, distinct ``_row_id`` of rows with a quarantining failure in ``files`` (read
    by column projection, filtered by polars' streaming engine)."""
    parts = [
        pl.scan_parquet(f)
        .filter(pl.col("severity").is_in(QUARANTINING))
        .select(pl.col(ROW_ID).cast(pl.UInt64))
        .collect(engine="streaming")
        .get_column(ROW_ID)
        .to_numpy()
        for f in files
    ]
    ids = np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)
    return np.unique(ids.astype(np.uint64, copy=False))


def passed_batches(
    path: Path,
    bad: npt.NDArray[np.uint64],
    columns: Sequence[str],
    rows: int,
    row_groups: Sequence[int] | None = None,
) -> Iterator[pl.DataFrame]:
    """``_row_id`` and ``columns`` of the rows of ``frame.parquet`` (of ``row_groups`` only,
    when given) whose id is not in ``bad``, in file order, at most ``rows`` rows read at a
    time."""
    for batch in iter_frames(path, [ROW_ID, *columns], rows, row_groups):
        keep = not_in(batch.get_column(ROW_ID).to_numpy(), bad) if len(bad) else None
        yield batch if keep is None or keep.all() else batch.filter(pl.Series(keep))


def not_in(ids: npt.NDArray[Any], bad: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
    """Which of ``ids`` are not in ``bad`` (sorted, distinct, not empty): a binary search per
    id, in time that grows with the batch, not with ``bad`` (``np.isin`` sorts both arrays on
    every call, so per batch it costs the partition's failing rows)."""
    ids = ids.astype(np.uint64, copy=False)
    at = np.searchsorted(bad, ids)
    at[at == len(bad)] = 0
    out: npt.NDArray[np.bool_] = bad[at] != ids
    return out


def _gather(
    path: Path,
    bad: npt.NDArray[np.uint64],
    columns: Sequence[str],
    rows: int,
    at: npt.NDArray[np.intp] | None,
) -> pl.DataFrame:
    """The rows to score at positions ``at`` (sorted; all when None), streamed."""
    parts: list[pl.DataFrame] = []
    start = 0
    for batch in passed_batches(path, bad, columns, rows):
        stop = start + batch.height
        if at is None:
            parts.append(batch)
        else:
            lo, hi = np.searchsorted(at, [start, stop])
            if hi > lo:
                parts.append(batch[at[lo:hi] - start])
        start = stop
    if not parts:
        schema = pl.read_parquet_schema(path)
        return pl.DataFrame(schema={c: schema[c] for c in [ROW_ID, *columns]})
    return pl.concat(parts)


def _shifted(known: KnownScores | None, start: int, stop: int) -> KnownScores | None:
    """The reused scores of rows ``start`` to ``stop``, positions relative to ``start``."""
    if known is None:
        return None
    lo, hi = np.searchsorted(known.positions, [start, stop])
    return KnownScores(known.positions[lo:hi] - start, known.features[lo:hi], known.scores[lo:hi])


class ScoreSplit(Protocol):
    """The passes over the partition, run elsewhere
    (:class:`sluice.pipeline.dask_screen.SplitScreen`)."""

    def count(self, bad: npt.NDArray[np.uint64]) -> int:
        """The rows to score: those whose id is not in ``bad``."""

    def score(
        self,
        spec: DetectorSpec,
        index: int,
        fitted: FittedModel,
        known: KnownScores | None,
        writers: tuple[StreamWriter, StreamWriter],
    ) -> int:
        """Score every row to score with ``fitted`` into ``writers`` (scores, failures), in
        order; the rows flagged."""

    def close(self) -> None:
        """Remove what the passes left."""


def screen_bounded(
    run: Run,
    reference_from: LoadedSpec | None = None,
    split: Callable[[Run, int], ScoreSplit] | None = None,
) -> dict[str, Any]:
    """:func:`sluice.pipeline.stages._screen` in bounded batches: same files, same facts
    (the counting and scoring passes run by ``split(run, batch_rows)`` when given)."""
    frame_path = run.file("frame.parquet")
    schema = pl.read_parquet_schema(frame_path)
    rows = batch_rows(len(schema))
    passes = split(run, rows) if split is not None else None
    try:
        return _screen(run, reference_from, passes, rows)
    finally:
        if passes is not None:
            passes.close()


def _screen(
    run: Run, reference_from: LoadedSpec | None, passes: ScoreSplit | None, rows: int
) -> dict[str, Any]:
    frame_path = run.file("frame.parquet")
    schema = pl.read_parquet_schema(frame_path)
    declared = list(run.loaded.spec.columns)
    present = [c for c in declared if c in schema]
    bad = quarantined_ids([run.file(f) for f in FAILURE_FILES])
    if passes is not None:
        n = passes.count(bad)
    else:
        n = sum(b.height for b in passed_batches(frame_path, bad, [], rows))
    why = why_not_scored(
        run.loaded.spec.detectors,
        critical_failed=run.facts("validate")["critical_failed"],
        missing_columns=run.facts("ingest")["missing_columns"],
    )
    failure_schema = arrow_schema(FAILURE_SCHEMA)
    if why is not None:
        with StreamWriter(run.file("screen_failures.parquet"), failure_schema):
            pass
        return {"skipped": why, "rows": n, "models": []}
    reference, used = reference_rows(reference_from or run.loaded, run.partition, present)
    specs = [with_model_path(run.loaded, i, s) for i, s in enumerate(run.loaded.spec.detectors)]
    _check(specs, {c: schema[c] for c in [ROW_ID, *present]}, reference)
    models: list[dict[str, Any]] = []
    with (
        StreamWriter(run.file("screen_failures.parquet"), failure_schema) as failures,
        StreamWriter(run.file("scores.parquet"), arrow_schema(SCORES_SCHEMA)) as scores,
    ):
        for i, spec in enumerate(specs):
            features = list(dict.fromkeys(f.column for f in spec.feature_specs()))
            on_reference = spec.fit in ("auto", "reference") and reference is not None
            on_batch = not on_reference and not (spec.fit == "model" and spec.model is not None)
            at = _sample(spec, i, n) if on_batch else np.empty(0, dtype=np.intp)
            sample = _gather(frame_path, bad, features, rows, at)
            fitted, record, known = _fit(spec, i, sample, reference)
            if known is not None and at is not None:
                known = KnownScores(at[known.positions], known.features, known.scores)
            if fitted is not None:
                if passes is not None:
                    flagged = passes.score(spec, i, fitted, known, (scores, failures))
                else:
                    flagged = _score_here(
                        spec,
                        fitted,
                        known,
                        (scores, failures),
                        frame_path=frame_path,
                        bad=bad,
                        rows=rows,
                    )
                record.update(
                    n_scored=n,
                    n_flagged=flagged,
                    expected_clean_flags=round(n * float(record["false_flag_rate"]), 2),
                )
            models.append(record)
    return {"rows": n, "models": models, "failures": failures.rows, "reference": used}


def _score_here(
    spec: DetectorSpec,
    fitted: FittedModel,
    known: KnownScores | None,
    writers: tuple[StreamWriter, StreamWriter],
    *,
    frame_path: Path,
    bad: npt.NDArray[np.uint64],
    rows: int,
) -> int:
    """Score every row to score in this process, batch by batch; the rows flagged."""
    scores, failures = writers
    features = list(dict.fromkeys(f.column for f in spec.feature_specs()))
    flagged = start = 0
    for batch in passed_batches(frame_path, bad, features, rows):
        stop = start + batch.height
        s, f, k = _score_spec(spec, fitted, batch, _shifted(known, start, stop))
        scores.write(s)
        failures.write(f)
        flagged += k
        start = stop
    return flagged


def _sample(spec: DetectorSpec, index: int, n: int) -> npt.NDArray[np.intp] | None:
    """Positions among the ``n`` rows to score of the rows the in-memory path fits on (None:
    all), as :func:`detectors.screen.fit_model_scored` draws them."""
    fit_rows = build_detector(spec, index).effective_max_fit_rows
    return sample_indices(n, None if fit_rows is None else fit_rows + CALIBRATION_ROWS, spec.seed)


def _check(
    specs: Sequence[DetectorSpec],
    schema: dict[str, pl.DataType],
    reference: pl.DataFrame | None,
) -> None:
    """The checks :func:`detectors.screen.screen` makes before fitting anything."""
    check_detector_specs(specs, schema)
    if reference is not None:
        try:
            check_detector_specs(specs, dict(reference.schema))
        except ConfigError as exc:
            raise ConfigError(
                f"reference rows: {exc.problem}", key=exc.key, found=exc.found, allowed=exc.allowed
            ) from None


__all__ = [
    "ScoreSplit",
    "StreamWriter",
    "arrow_schema",
    "iter_frames",
    "passed_batches",
    "quarantined_ids",
    "screen_bounded",
]
