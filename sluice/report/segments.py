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

from dataclasses import asdict, dataclass
from typing import Any

import polars as pl
from scipy.stats import binom

from sluice.core.frame import ROW_ID
from sluice.report.metrics import OUTLIER_COLUMN, RunOutputs, _parse_raw

NULL_LABEL = "(null)"


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


def _values(outputs: RunOutputs, column: str) -> pl.DataFrame:
    """``_row_id`` and one column as text, for clean and quarantined rows alike (the clean rows
    read one column at a time: a bounded report holds no more)."""
    got = outputs.clean_frame([ROW_ID, column])
    clean = pl.DataFrame([got.get_column(ROW_ID), got.get_column(column).cast(pl.String)])
    q = outputs.quarantine
    if q.is_empty() or ROW_ID not in q.columns:
        return clean
    parsed = (
        _parse_raw(q[column], outputs.columns[column], outputs.formats.get(column))
        .cast(pl.String)
        .alias(column)
        if column in q.columns
        else pl.Series(column, [None] * q.height, dtype=pl.String)
    )
    quarantined = pl.DataFrame([q[ROW_ID], parsed])
    return pl.concat([clean, quarantined], how="vertical_relaxed").unique(ROW_ID, keep="first")


def segment_bias(outputs: RunOutputs, policy: SegmentPolicy | None = None) -> list[SegmentBias]:
    """Segments each detector flagged far above its overall share, most biased first."""
    pol = policy or SegmentPolicy()
    scores = outputs.scores
    if scores is None or scores.is_empty() or "detector" not in scores.columns:
        return []
    columns = [c for c, t in outputs.columns.items() if _categorical(t)]
    if not columns:
        return []
    severity = {
        m["name"]: str(m.get("severity", "error")) for m in outputs.manifest.get("detectors", [])
    }
    screened: dict[str, tuple[pl.DataFrame, float]] = {}
    for detector in sorted(set(scores["detector"].to_list())):
        flagged = (
            outputs.failures.filter(
                (pl.col("column") == OUTLIER_COLUMN) & (pl.col("rule") == detector)
            )
            .select(ROW_ID)
            .unique()
            .with_columns(pl.lit(True).alias("_flagged"))
        )
        ids = (
            scores.filter(pl.col("detector") == detector)
            .select(ROW_ID)
            .unique()
            .join(flagged, on=ROW_ID, how="left")
            .with_columns(pl.col("_flagged").fill_null(False))
        )
        n, k = ids.height, int(ids["_flagged"].sum())
        if n and k not in (0, n):
            screened[detector] = (ids, k / n)
    candidates: list[tuple[str, str, str, int, int, float]] = []
    # when every detector screened every clean row, a column with too many values among the
    # clean rows has too many among each detector's screened rows: it is passed over before it
    # is read whole (a unique key costs one row group, not a hash of every row)
    quarantined = (
        outputs.quarantine.select(ROW_ID) if ROW_ID in outputs.quarantine.columns else None
    )
    all_clean_screened = all(
        (ids.height if quarantined is None else ids.join(quarantined, on=ROW_ID, how="anti").height)
        == outputs.clean_rows
        for ids, _ in screened.values()
    )
    for column in columns if screened else []:
        if all_clean_screened and outputs.clean_has_more_values_than(column, pol.max_categories):
            continue
        values = _values(outputs, column)
        for detector, (ids, overall) in screened.items():
            joined = ids.join(values, on=ROW_ID, how="left")
            col = joined[column]
            if not 2 <= col.n_unique() <= pol.max_categories:
                continue
            by = (
                joined.group_by(pl.col(column).fill_null(NULL_LABEL))
                .agg(pl.len().alias("rows"), pl.col("_flagged").sum().alias("flagged"))
                .filter(pl.col("rows") >= pol.min_rows)
            )
            for value, count, hits in by.iter_rows():
                candidates.append((detector, column, str(value), int(count), int(hits), overall))
    tested = len(candidates)
    out: list[SegmentBias] = []
    for detector, column, value, rows, hits, overall in candidates:
        share = hits / rows
        if hits < pol.min_flagged or share < pol.min_ratio * overall:
            continue
        p = min(1.0, float(binom.sf(hits - 1, rows, overall)) * tested)
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
