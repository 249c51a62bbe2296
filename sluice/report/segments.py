"""Segment bias: categories whose rows a detector flags far more often than the rest.

A detector that flags most rows of one category (airport flat fares, a rare payment type) does
not find errors: it finds the category. Removing those rows biases every figure computed on
that category from the clean data. For each detector that ran and each categorical column (text,
integer or boolean with at most ``max_categories`` values among the screened rows), each value
with at least ``min_rows`` screened rows is tested: is its flag count above what the overall flag
share would give? The test is the binomial upper tail ``P(X >= flagged | rows, overall share)``,
Bonferroni-corrected over every (detector, column, value) tested; a segment is reported when that
corrected p-value is under ``alpha``, its share is at least ``min_ratio`` times the overall share
and it has at least ``min_flagged`` flagged rows.

Everything is read from the run's outputs (``scores.parquet`` for the screened rows, the
failures ``outlier|<detector>`` for the flags, clean and quarantined values), so a rebuilt report
finds the same segments.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import polars as pl

from sluice.core.frame import ROW_ID
from sluice.core.spill import part_count
from sluice.report.metrics import OUTLIER_COLUMN, RunOutputs, _parse_raw
from sluice.report.streaming import HashBuckets, split_by_bucket

NULL_LABEL = "(null)"
GROUP_CELLS = 8_000_000
"""Cells of text an in-memory count holds at once (columns x rows; measured about 23 bytes a
cell: +140 MB for 6 columns x 1M rows)."""


@dataclass(frozen=True)
class SegmentPolicy:
    """When a segment's flag share counts as biased."""

    max_categories: int = 50
    min_rows: int = 30
    min_flagged: int = 5
    min_ratio: float = 5.0
    alpha: float = 0.001


@dataclass(frozen=True)
class SegmentBias:
    """One category a detector flags far more often than the rest of the screened rows."""

    detector: str
    severity: str
    column: str
    value: str
    rows: int
    flagged: int
    share: float
    overall: float
    ratio: float
    p_value: float

    @property
    def text(self) -> str:
        """One line for people: ``rate_code_id = 3: 91% of rows flagged, 20x the overall 4.5%``."""
        return (
            f"{self.column} = {self.value}: {self.share:.0%} of rows flagged by {self.detector}, "
            f"{self.ratio:.0f}x the overall {self.overall:.2%}"
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain values for the manifest and artifacts."""
        return {**asdict(self), "text": self.text}


def _categorical(dtype: pl.DataType) -> bool:
    return dtype in (pl.String, pl.Categorical, pl.Boolean) or dtype.is_integer()


SCREENED = pl.Schema({ROW_ID: pl.UInt64(), "detector": pl.String()})


def _quarantined_values(outputs: RunOutputs, columns: list[str]) -> Iterator[pl.DataFrame]:
    """``_row_id`` and each column (in its declared type) of the quarantined rows, batch by
    batch."""
    for q in outputs.quarantine_frames([ROW_ID, *columns]):
        if q.is_empty() or ROW_ID not in q.columns:
            continue
        parsed = [
            # renamed first: series methods run as expressions on the series' name ("*")
            _parse_raw(q[c].rename("value"), outputs.columns[c], outputs.formats.get(c))
            .cast(outputs.columns[c])
            .alias(c)
            if c in q.columns
            else pl.repeat(None, q.height, dtype=outputs.columns[c], eager=True).alias(c)
            for c in columns
        ]
        yield pl.DataFrame([q[ROW_ID].cast(pl.UInt64), *parsed])


def _bucket_count(outputs: RunOutputs) -> int:
    """Buckets of about ``batch_rows`` rows of the clean rows and scores together: as many as
    the partition needs (a :class:`HashBuckets` spill keeps at most 64 files open)."""
    if outputs.spill_dir is None or (outputs.scores_file is None and outputs.clean_file is None):
        return 1
    return part_count(outputs.clean_rows + outputs.score_rows, outputs.batch_rows)


def _ids_by_bucket(ids: pl.Series, count: int) -> dict[int, pl.Series]:
    """Unique ids by their hash bucket."""
    frame = ids.cast(pl.UInt64).unique().alias(ROW_ID).to_frame()
    return {b: f.get_column(ROW_ID) for b, f in split_by_bucket(frame, ROW_ID, count).items()}


NO_IDS = pl.Series(ROW_ID, [], dtype=pl.UInt64)


Counts = dict[str | None, list[int]]


def segment_bias(
    outputs: RunOutputs,
    policy: SegmentPolicy | None = None,
    *,
    distinct: Mapping[str, int] | None = None,
) -> list[SegmentBias]:
    """Segments each detector flagged far above its overall share, most biased first.

    Counted from the scores and the clean rows split into hash buckets of ``_row_id``
    (:class:`sluice.report.streaming.HashBuckets`): a bounded report spills them under the
    run's work folder and holds one bucket at a time, an in-memory one holds one bucket.
    ``distinct``: the clean rows' distinct non-null values per column, when the report has
    counted them (its column profiles), so that no column is read again to find them."""
    pol = policy or SegmentPolicy()
    if not outputs.has_scores or "detector" not in outputs.score_columns:
        return []
    columns = [c for c, t in outputs.columns.items() if _categorical(t)]
    if not columns:
        return []
    count = _bucket_count(outputs)
    scores = HashBuckets(SCREENED, ROW_ID, count, outputs.spill_dir, outputs.batch_rows)
    try:
        for batch in outputs.score_batches([ROW_ID, "detector"]):
            scores.add(batch)
        return _segments(outputs, pol, columns, count, scores, distinct=distinct or {})
    finally:
        scores.close()


def _segments(
    outputs: RunOutputs,
    pol: SegmentPolicy,
    columns: list[str],
    count: int,
    scores: HashBuckets,
    *,
    distinct: Mapping[str, int],
) -> list[SegmentBias]:
    severity = {
        m["name"]: str(m.get("severity", "error")) for m in outputs.manifest.get("detectors", [])
    }
    flagged_parts: dict[str, list[pl.Series]] = {}
    for f in outputs.failure_frames([ROW_ID, "column", "rule"]):
        outliers = f.filter(pl.col("column") == OUTLIER_COLUMN)
        for (d,), part in outliers.partition_by("rule", as_dict=True).items():
            flagged_parts.setdefault(str(d), []).append(part.get_column(ROW_ID))
    flagged = {d: _ids_by_bucket(pl.concat(parts), count) for d, parts in flagged_parts.items()}
    del flagged_parts
    quarantined_ids = [
        q.get_column(ROW_ID) for q in outputs.quarantine_frames([ROW_ID]) if ROW_ID in q.columns
    ]
    quarantined = _ids_by_bucket(pl.concat(quarantined_ids), count) if quarantined_ids else None
    del quarantined_ids
    totals: dict[str, list[int]] = {}
    # held in memory (one bucket), each detector's screened ids are kept for _count
    screened_ids: dict[tuple[int, str], pl.Series] | None = {} if count == 1 else None
    for b, bucket in enumerate(scores.buckets()):
        for detector, ids in _screened_ids(bucket).items():
            if screened_ids is not None:
                screened_ids[(b, detector)] = ids
            hit = ids.is_in(flagged.get(detector, {}).get(b, NO_IDS).implode())
            outside = ids.len() - (
                int(ids.is_in(quarantined.get(b, NO_IDS).implode()).sum())
                if quarantined is not None
                else 0
            )
            got = totals.setdefault(detector, [0, 0, 0])
            got[0] += ids.len()
            got[1] += int(hit.sum())
            got[2] += outside
    screened = {d: k / n for d, (n, k, _) in sorted(totals.items()) if n and k not in (0, n)}
    if not screened:
        return []
    # when every detector screened every clean row, a column with too many values among the
    # clean rows has too many among each detector's screened rows: it is passed over before it
    # is read (a unique key costs one row group, not a hash of every row)
    all_clean_screened = all(totals[d][2] == outputs.clean_rows for d in screened)
    # held as one bucket, the clean rows come first: a detector that screened every clean row
    # screened all of them, and only the quarantined rows after them need looking up
    clean_first = {
        d: outputs.clean_rows for d in screened if count == 1 and totals[d][2] == outputs.clean_rows
    }

    def too_many(column: str) -> bool:
        # null counts as a value: a known count decides unless it is right at the limit
        known = distinct.get(column)
        if known is not None and known != pol.max_categories:
            return known > pol.max_categories
        return outputs.clean_has_more_values_than(column, pol.max_categories)

    kept = [c for c in columns if not (all_clean_screened and too_many(c))]
    if not kept:
        return []
    # spilled, every column goes to the buckets in one pass over the clean file; held in
    # memory, columns go together while their text stays within GROUP_CELLS cells beside the
    # clean rows (one pass per group: per column, a 6-column partition of 1M rows took 3x longer)
    rows = outputs.clean_rows + outputs.quarantine_rows
    width = len(kept) if count > 1 else max(1, GROUP_CELLS // max(1, rows))
    groups = [kept[i : i + width] for i in range(0, len(kept), width)]
    counts: dict[tuple[str, str], Counts | None] = {}
    # per bucket: the screened ids of each detector and whether the rows' ids are distinct,
    # the same for every group of columns (in memory, several groups read one bucket)
    known: dict[tuple[Any, ...], Any] = {}
    for group in groups:
        # each column in its own type (an integer counts faster than its text): values are
        # written out as text once counted
        schema = pl.Schema({ROW_ID: pl.UInt64(), **{c: outputs.columns[c] for c in group}})
        clean = HashBuckets(schema, ROW_ID, count, outputs.spill_dir, outputs.batch_rows)
        try:
            for frame in outputs.clean_frames([ROW_ID, *group]):
                clean.add(frame)
            # quarantined rows after every clean row: a row id's first row is its clean one
            for frame in _quarantined_values(outputs, group):
                clean.add(frame)
            counts |= _count(
                outputs,
                group,
                count=count,
                scores=scores,
                clean=clean,
                screened=screened,
                flagged=flagged,
                pol=pol,
                known=known if len(groups) > 1 else None,
                screened_ids=screened_ids,
                clean_first=clean_first,
            )
        finally:
            clean.close()
    candidates: list[tuple[str, str, str, int, int, float]] = []
    for (detector, column), by in counts.items():
        if by is None or not 2 <= len(by) <= pol.max_categories:
            continue
        merged: dict[str, list[int]] = {}
        for value, (rows, hits) in by.items():
            got = merged.setdefault(NULL_LABEL if value is None else value, [0, 0])
            got[0] += rows
            got[1] += hits
        for value, (rows, hits) in merged.items():
            if rows >= pol.min_rows:
                candidates.append((detector, column, value, rows, hits, screened[detector]))
    return _judge(candidates, severity, pol)


def _count(
    outputs: RunOutputs,
    columns: list[str],
    *,
    count: int,
    scores: HashBuckets,
    clean: HashBuckets,
    screened: dict[str, float],
    flagged: dict[str, dict[int, pl.Series]],
    pol: SegmentPolicy,
    known: dict[tuple[Any, ...], Any] | None,
    screened_ids: Mapping[tuple[int, str], pl.Series] | None = None,
    clean_first: Mapping[str, int] | None = None,
) -> dict[tuple[str, str], Counts | None]:
    """Screened rows and flagged rows per value, per detector and column, bucket by bucket
    (a pair with more than ``max_categories`` values is dropped: ``None``). ``clean`` holds the
    clean rows, then the quarantined rows, of ``columns``. ``known``, when given, keeps what
    each bucket's rows and screened ids give for the next group of columns (in memory only:
    a spilled run has one group). ``screened_ids``: each detector's screened ids per bucket,
    when the caller kept them (else they are taken from ``scores`` again). ``clean_first``:
    for a detector that screened every clean row, how many rows lead the one bucket (the clean
    ones)."""
    counts: dict[tuple[str, str], Counts | None] = {(d, c): {} for c in columns for d in screened}
    memo: dict[tuple[Any, ...], Any] = {} if known is None else known
    for b, (s, c) in enumerate(zip(scores.buckets(), clean.buckets(), strict=True)):
        distinct = memo.get(("distinct", b))
        if distinct is None:
            distinct = _distinct_ids(c)
            if known is not None:
                known[("distinct", b)] = distinct
        values = c if distinct else c.unique(ROW_ID, keep="first", maintain_order=True)
        by_detector: dict[str, pl.Series] | None = None
        for detector in screened:
            plan = memo.get(("screened", b, detector))
            if plan is None:
                if screened_ids is not None:
                    ids = screened_ids.get((b, detector), NO_IDS)
                else:
                    by_detector = _screened_ids(s) if by_detector is None else by_detector
                    ids = by_detector.get(detector, NO_IDS)
                plan = _screened_rows(
                    values.get_column(ROW_ID),
                    ids,
                    flagged.get(detector, {}).get(b),
                    screened_first=(clean_first or {}).get(detector, 0) if distinct else 0,
                )
                if known is not None:
                    known[("screened", b, detector)] = plan
            mask, flags, absent, absent_hits = plan
            chosen = values.filter(mask).with_columns(flags)
            for column in columns:
                held = counts[(detector, column)]
                if held is None:
                    continue
                # by position: a column called "*" or "^a.*$" is not a pattern
                by = (
                    chosen.group_by(pl.nth(chosen.columns.index(column)))
                    .agg(pl.len().alias("rows"), pl.col("_flagged").sum().alias("flagged"))
                    .with_columns(pl.nth(0).cast(pl.String))
                )
                rows_by = [(value, int(rows), int(hits)) for value, rows, hits in by.iter_rows()]
                if absent:
                    rows_by.append((None, absent, absent_hits))
                for value, rows, hits in rows_by:
                    got = held.setdefault(value, [0, 0])
                    got[0] += rows
                    got[1] += hits
                if len(held) > pol.max_categories:
                    counts[(detector, column)] = None
    return counts


def _screened_ids(scores: pl.DataFrame) -> dict[str, pl.Series]:
    """Each detector's distinct screened ids in a bucket of scores. A bucket of one detector's
    scores (the usual case) is not split by detector: that would copy every row."""
    names = scores.get_column("detector")
    first = names[0] if names.len() else None
    if first is not None and (names == first).all(ignore_nulls=False) is True:
        parts = {str(first): scores.get_column(ROW_ID)}
    else:
        parts = {
            str(detector): part.get_column(ROW_ID)
            for (detector,), part in scores.partition_by("detector", as_dict=True).items()
        }
    return {d: ids if ids.n_unique() == ids.len() else ids.unique() for d, ids in parts.items()}


def _screened_rows(
    row_ids: pl.Series, ids: pl.Series, hit: pl.Series | None, screened_first: int = 0
) -> tuple[pl.Series, pl.Series, int, int]:
    """Which of the rows (``row_ids``: clean, then quarantined) a detector screened (``ids``:
    its distinct screened ids), whether each of those it flagged (``hit``: the flagged ids),
    and the screened ids among no rows with how many of them it flagged (every screened id is
    among the rows; one that is not counts under null, as a left join of the ids would).

    ``screened_first``: the first rows are known to be screened (every clean row was). Only
    the rows after them are looked up, among the screened ids that are theirs (a set of the
    quarantined rows, not of every screened id: at 10M rows, 0.2 against 0.8 CPU s); the known
    rows are checked by their ids' count and sum, and looked up as the rest when those
    differ."""
    flagged_ids = (NO_IDS if hit is None else hit).implode()
    mask = _known_screened(row_ids, ids, screened_first) if screened_first else None
    if mask is None:
        mask = row_ids.is_in(ids.implode())
    flags = row_ids.filter(mask).is_in(flagged_ids).alias("_flagged")
    absent, absent_hits = ids.len() - flags.len(), 0
    if absent:
        absent_hits = int(ids.is_in(flagged_ids).sum()) - int(flags.sum())
    return mask, flags, absent, absent_hits


def _known_screened(row_ids: pl.Series, ids: pl.Series, first: int) -> pl.Series | None:
    """:func:`_screened_rows`' mask when the first ``first`` rows are screened: those, and the
    rows after them whose id is screened. None when the screened ids are not those rows' (their
    count or their sum, modulo 2**64, differs)."""
    rest = row_ids.slice(first)
    theirs = ids.filter(ids.is_in(rest.implode()))
    mask = pl.concat(
        [
            pl.repeat(True, min(first, row_ids.len()), dtype=pl.Boolean, eager=True),
            rest.is_in(theirs.implode()),
        ]
    )
    chosen = row_ids.filter(mask)
    if chosen.len() != ids.len() or _sum64(chosen) != _sum64(ids):
        return None
    return mask


def _sum64(ids: pl.Series) -> int:
    """The sum of 64-bit ids modulo 2**64."""
    return int(ids.cast(pl.UInt64).to_numpy().sum(dtype=np.uint64))


def _distinct_ids(frame: pl.DataFrame) -> bool:
    """Whether no ``_row_id`` of ``frame`` repeats (a hash of one column: cheaper than keeping
    the first row of each id, which moves every column)."""
    return bool(frame.get_column(ROW_ID).n_unique() == frame.height)


def _judge(
    candidates: list[tuple[str, str, str, int, int, float]],
    severity: dict[str, str],
    pol: SegmentPolicy,
) -> list[SegmentBias]:
    tested = len(candidates)
    out: list[SegmentBias] = []
    for detector, column, value, rows, hits, overall in candidates:
        share = hits / rows
        if hits < pol.min_flagged or share < pol.min_ratio * overall:
            continue
        # P(X >= hits) for X ~ Binomial(rows, overall) by scipy.special (cephes), without
        # scipy.stats' half-second import; scipy.stats.binom.sf (boost) agrees to 1e-9 relative
        from scipy.special import bdtrc

        p = min(1.0, float(bdtrc(hits - 1, rows, overall)) * tested)
        if p < pol.alpha:
            out.append(
                SegmentBias(
                    detector,
                    severity.get(detector, "error"),
                    column,
                    value,
                    rows,
                    hits,
                    share,
                    overall,
                    share / overall,
                    p,
                )
            )
    return sorted(out, key=lambda s: (-s.ratio, -s.flagged, s.detector, s.column, s.value))
