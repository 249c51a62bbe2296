"""Drift: does a column's distribution in this partition differ from recent partitions?

The reference for a column is the clean rows of up to ``reference_partitions`` earlier partitions
(a week, for a daily dataset, so every weekday weighs the same), leaving out partitions where that
column had itself drifted, so one bad day does not become the yardstick. The test is chosen by the
column's type and the sample sizes:

- numeric columns (more than ``categories`` distinct values): with small samples the two-sample
  Kolmogorov-Smirnov test, drift when ``p < alpha / columns tested`` and ``D >= min_ks``; with
  large samples, where every difference is significant, the population stability index (PSI) on
  the reference's deciles, drift when ``PSI >= psi_drift``. The Wasserstein distance in units of
  the reference's standard deviation is reported alongside.
- categorical columns (strings, booleans, integers with few values): the reference's top
  ``categories`` values plus ``(other)``; chi-square test of homogeneity with Cramér's V for small
  samples, PSI for large ones.
- dates and times move with the partition by construction and are not tested; identifier-like
  strings (more than half the values distinct) neither.

With a pinned baseline (``monitor.baseline``) the reference is the clean rows of the baseline's
partitions instead, however old, none left out. Every result says which partitions its reference
held and how long before this partition they were (``2018-05 to 2018-07, 18 to 20 months
before this partition``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from sluice.config import Partition
from sluice.report.bounded import Mode, sample_rows
from sluice.report.history import Baseline, age_span
from sluice.report.metrics import (
    HIST_BINS,
    Categories,
    FloatArray,
    Histogram,
    bin_counts,
    counts_by_value,
    hist_edges,
    kind_of,
)
from sluice.storage import CleanSource, open_output
from sluice.write import MANIFEST_NAME, PARQUET_NAME, NotCommitted

Test = Literal["ks", "psi", "chi2", ""]
PSI_EPS = 1e-4
REF_PARTITION = "_partition"


@dataclass(frozen=True)
class DriftPolicy:
    """Which reference, which test, and when a difference is drift."""

    reference_partitions: int = 7
    min_reference_partitions: int = 2
    rows_per_partition: int = 20_000
    large: int = 5_000
    alpha: float = 0.01
    min_ks: float = 0.1
    min_cramers_v: float = 0.1
    psi_drift: float = 0.2
    psi_bins: int = 10
    categories: int = 20
    seed: int = 0

    @property
    def current_rows(self) -> int:
        """Rows of this partition a bounded report tests for drift: a seeded sample by row group
        as large as the most the reference can hold (every row of a smaller partition)."""
        return self.rows_per_partition * max(self.reference_partitions, 1)


@dataclass(frozen=True)
class DriftResult:
    """The drift verdict for one column."""

    column: str
    kind: Literal["numeric", "categorical", "skipped"]
    test: Test
    statistic: float | None
    p_value: float | None
    wasserstein: float | None
    n_current: int
    n_reference: int
    reference: list[str]
    drifted: bool
    note: str = ""
    distribution: Histogram | Categories | None = None
    span: str = ""
    pinned: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Plain values for the manifest and artifacts."""
        return {
            "column": self.column,
            "kind": self.kind,
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "wasserstein": self.wasserstein,
            "n_current": self.n_current,
            "n_reference": self.n_reference,
            "reference": self.reference,
            "drifted": self.drifted,
            "note": self.note,
            "reference_span": self.span,
            "pinned_baseline": self.pinned,
        }

    @property
    def reference_text(self) -> str:
        """``reference: 3 partitions of the pinned baseline ..., 2018-05 to 2018-07, 18 to 20
        months before this partition`` for findings."""
        what = "partitions of the pinned baseline" if self.pinned else "earlier partitions"
        return f"reference: {len(self.reference)} {what}, {self.span}"


def psi(current: Sequence[float], reference: Sequence[float]) -> float:
    """Population stability index of two count vectors over the same bins."""
    c = np.asarray(current, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    c = np.maximum(c / max(c.sum(), 1.0), PSI_EPS)
    r = np.maximum(r / max(r.sum(), 1.0), PSI_EPS)
    return float(np.sum((c - r) * np.log(c / r)))


def finite(values: FloatArray) -> FloatArray:
    """The finite values of a sample: NaN and ±inf have no place on a distribution's axis."""
    kept: FloatArray = values[np.isfinite(values)]
    return kept


def wasserstein(u: FloatArray, v: FloatArray) -> float | None:
    """The 1-Wasserstein (earth mover's) distance of two samples (the area between their CDFs,
    :func:`scipy.stats.wasserstein_distance`) over their finite values; ``None`` when either
    has none."""
    u, v = finite(u), finite(v)
    if u.size == 0 or v.size == 0:
        return None
    # scipy's computation (scipy.stats.wasserstein_distance), written out: scipy.stats costs
    # about half a second to import, and a large sample needs nothing else from it
    both = np.sort(np.concatenate((u, v)), kind="mergesort")
    u_cdf = np.sort(u).searchsorted(both[:-1], "right") / u.size
    v_cdf = np.sort(v).searchsorted(both[:-1], "right") / v.size
    return float(np.vecdot(np.abs(u_cdf - v_cdf), np.diff(both)))


def numeric_drift(
    current: FloatArray, reference: FloatArray, n_tests: int, policy: DriftPolicy = DriftPolicy()
) -> tuple[Test, float | None, float | None, bool, float | None]:
    """``(test, statistic, p_value, drifted, wasserstein_in_sd)`` for two numeric samples.

    NaN and ±inf are left out, as nulls are; with no finite value on either side nothing is
    tested: ``("", None, None, False, None)``.
    """
    current, reference = finite(current), finite(reference)
    if current.size == 0 or reference.size == 0:
        return "", None, None, False, None
    sd = float(np.std(reference))
    w = wasserstein(current, reference)
    w = w / sd if w is not None and sd > 0 else None
    if min(current.size, reference.size) < policy.large:
        from scipy import stats

        res = stats.ks_2samp(current, reference)
        d, p = float(res.statistic), float(res.pvalue)
        return "ks", d, p, p < policy.alpha / max(n_tests, 1) and d >= policy.min_ks, w
    inner = np.unique(np.quantile(reference, np.linspace(0, 1, policy.psi_bins + 1)[1:-1]))
    cb = np.bincount(np.searchsorted(inner, current, side="right"), minlength=inner.size + 1)
    rb = np.bincount(np.searchsorted(inner, reference, side="right"), minlength=inner.size + 1)
    value = psi(cb.tolist(), rb.tolist())
    return "psi", value, None, value >= policy.psi_drift, w


def _category_counts(
    current: pl.Series, reference: pl.Series, top: int
) -> tuple[list[str], FloatArray, FloatArray]:
    rc = counts_by_value(reference)
    labels = [str(v) for v in rc[reference.name].head(top).to_list()]
    cmap = dict(current.value_counts(name="n").iter_rows())
    rmap = dict(rc.iter_rows())
    c = [float(cmap.get(v, 0)) for v in labels]
    r = [float(rmap.get(v, 0)) for v in labels]
    c.append(len(current) - sum(c))
    r.append(len(reference) - sum(r))
    return [*labels, "(other)"], np.array(c), np.array(r)


def categorical_drift(
    current: pl.Series, reference: pl.Series, n_tests: int, policy: DriftPolicy = DriftPolicy()
) -> tuple[Test, float, float | None, bool, Categories]:
    """``(test, statistic, p_value, drifted, counts)`` for two categorical samples.

    Small samples: the chi-square test of homogeneity (:func:`scipy.stats.chi2_contingency`, with
    Yates' correction on a 2x2 table) for the p-value and Cramér's V
    (:func:`scipy.stats.contingency.association`, uncorrected) for the effect size.
    """
    labels, c, r = _category_counts(
        current.cast(pl.String).rename("v"),
        reference.cast(pl.String).rename("v"),
        policy.categories,
    )
    counts = Categories(labels, c, r)
    if min(len(current), len(reference)) < policy.large:
        keep = (c + r) > 0
        table = np.vstack([c[keep], r[keep]])
        if table.shape[1] < 2:
            return "chi2", 0.0, 1.0, False, counts
        from scipy import stats

        p = stats.chi2_contingency(table).pvalue
        # association() takes integer counts only (a float table is a ValueError)
        counts_table = np.rint(table).astype(np.int64)
        v = float(stats.contingency.association(counts_table, method="cramer"))
        drifted = float(p) < policy.alpha / max(n_tests, 1) and v >= policy.min_cramers_v
        return "chi2", v, float(p), drifted, counts
    value = psi(c.tolist(), r.tolist())
    return "psi", value, None, value >= policy.psi_drift, counts


Source = Path | CleanSource
"""Where an earlier partition's clean rows are: a Parquet file, or a table version."""


def _folders(clean_root: Path, partition: Partition) -> list[tuple[Partition, Path]]:
    found = []
    for f in clean_root.glob(f"{partition.key}=*/{PARQUET_NAME}"):
        if f.parent.name.startswith("."):
            continue
        try:
            p = Partition.parse(f.parent.name.split("=", 1)[1], partition.kind, partition.key)
        except ValueError:
            continue
        found.append((p, f))
    return found


def table_partitions(
    reports_root: Path, partition: Partition, storage_options: Mapping[str, str] | None = None
) -> list[tuple[Partition, Source]]:
    """Every committed partition whose manifest names a clean table version (Delta outputs),
    read at that version (sluice.storage)."""
    found: list[tuple[Partition, Source]] = []
    for m in reports_root.glob(f"{partition.key}=*/{MANIFEST_NAME}"):
        try:
            p = Partition.parse(m.parent.name.split("=", 1)[1], partition.kind, partition.key)
            doc = json.loads(m.read_text(encoding="utf-8"))
            if "clean" not in (doc.get("tables") or {}):
                continue
            found.append((p, open_output(doc, "clean", storage_options=storage_options)))
        except (OSError, ValueError, KeyError, TypeError, NotCommitted):
            continue
    return found


def earlier_partitions(
    clean_root: Path,
    partition: Partition,
    limit: int,
    *,
    candidates: Sequence[tuple[Partition, Source]] | None = None,
) -> list[tuple[Partition, Source]]:
    """Up to ``limit`` partitions before this one with clean data, most recent last (from
    ``candidates`` when given, else the Parquet folders under ``clean_root``)."""
    pool = _folders(clean_root, partition) if candidates is None else candidates
    found = [(p, f) for p, f in pool if p.start < partition.start]
    found.sort(key=lambda pf: pf[0].start)
    return found[-limit:]


def baseline_partitions(
    clean_root: Path,
    partition: Partition,
    baseline: Baseline,
    *,
    candidates: Sequence[tuple[Partition, Source]] | None = None,
) -> list[tuple[Partition, Source]]:
    """The pinned baseline's partitions with clean data (this one left out), oldest first."""
    pool = _folders(clean_root, partition) if candidates is None else candidates
    found = [(p, f) for p, f in pool if p.start in baseline and p != partition]
    return sorted(found, key=lambda pf: pf[0].start)


def reference_files(
    clean_root: Path,
    partition: Partition,
    policy: DriftPolicy,
    baseline: Baseline | None,
    *,
    candidates: Sequence[tuple[Partition, Source]] | None = None,
) -> tuple[list[tuple[Partition, Source]], DriftPolicy]:
    """The clean files drift is tested against, and the policy to test them with.

    Rolling: up to twice ``reference_partitions`` earlier partitions (drifted ones are left out
    later). Pinned: every partition of the baseline, sampled so the reference stays the size of a
    rolling one. ``candidates`` replaces the Parquet folders under ``clean_root`` (Delta
    outputs: :func:`table_partitions`).
    """
    if baseline is None:
        files = earlier_partitions(
            clean_root, partition, 2 * policy.reference_partitions, candidates=candidates
        )
        return files, policy
    files = baseline_partitions(clean_root, partition, baseline, candidates=candidates)
    n = max(len(files), 1)
    budget = policy.rows_per_partition * policy.reference_partitions
    rows = max(min(policy.rows_per_partition, budget // n), 1)
    return files, replace(policy, reference_partitions=n, rows_per_partition=rows)


def source_schema(source: Source) -> list[str]:
    """The column names of an earlier partition's clean rows."""
    return list(pl.read_parquet_schema(source)) if isinstance(source, Path) else source.schema()


def load_reference(
    files: Sequence[tuple[Partition, Source]],
    columns: Sequence[str],
    policy: DriftPolicy,
    *,
    schemas: Sequence[Sequence[str]] | None = None,
    names: Mapping[str, str] | None = None,
    mode: Mode = "exact",
) -> pl.DataFrame:
    """Clean rows of earlier partitions (a seeded sample of each), with their partition.

    Columns are picked by their position in each file (``schemas``: each file's column names, read
    when not given), since polars reads a projected name such as ``*`` or ``^a.*$`` as a pattern;
    ``names`` renames them (for example to positional slots). A Parquet file is read one row group
    at a time (:func:`sluice.report.bounded.sample_rows`; ``mode`` ``row_groups`` reads only a
    seeded choice of them, for bounded runs).
    """
    parts = []
    for i, (p, f) in enumerate(files):
        if not columns:
            break
        have = list(schemas[i]) if schemas is not None else source_schema(f)
        if isinstance(f, Path):
            idx = [have.index(c) for c in columns]
            frame = sample_rows(f, idx, policy.rows_per_partition, policy.seed, mode)
        else:
            got = f.read()
            frame = got.select(pl.nth([list(got.columns).index(c) for c in columns]))
        if names:
            frame = frame.rename(dict(zip(frame.columns, [names[c] for c in columns], strict=True)))
        if frame.height > policy.rows_per_partition:
            frame = frame.sample(policy.rows_per_partition, seed=policy.seed)
        if frame.height:
            parts.append(frame.with_columns(pl.lit(str(p)).alias(REF_PARTITION)))
    if not parts:
        return pl.DataFrame(schema={REF_PARTITION: pl.String})
    return pl.concat(parts, how="vertical_relaxed")


def _is_categorical(values: pl.Series, reference: pl.Series, policy: DriftPolicy) -> bool:
    kind = kind_of(values.dtype)
    if kind in ("string", "boolean"):
        return True
    return kind == "numeric" and reference.n_unique() <= policy.categories


Current = pl.DataFrame | Callable[[str], pl.Series]
"""This partition's columns: a frame, or a function reading one column by name (a bounded
report reads them one at a time)."""


def detect_drift(
    current: Current,
    reference: pl.DataFrame,
    columns: Sequence[str],
    *,
    drifted_before: Mapping[str, set[str]] | None = None,
    policy: DriftPolicy = DriftPolicy(),
    partition: Partition | None = None,
    pinned: bool = False,
) -> list[DriftResult]:
    """Test every column of ``current`` against ``reference`` (from :func:`load_reference`).

    ``drifted_before`` maps a column to the partitions where it drifted; they are left out of its
    reference. With ``partition`` (this run's) each result words how old its reference is;
    ``pinned`` says the reference is a pinned baseline.
    """
    results = _detect_drift(current, reference, columns, drifted_before or {}, policy)
    return [
        replace(r, span=_span(r.reference, partition) if r.reference else "", pinned=pinned)
        for r in results
    ]


def _span(parts: Sequence[str], partition: Partition | None) -> str:
    if partition is None:
        return f"{parts[0]} to {parts[-1]}"
    days = [Partition.parse(p, partition.kind, partition.key).start for p in parts]
    return age_span(days, partition.start, partition.kind)


def _detect_drift(
    current: Current,
    reference: pl.DataFrame,
    columns: Sequence[str],
    flagged: Mapping[str, set[str]],
    policy: DriftPolicy,
) -> list[DriftResult]:
    column = current.get_column if isinstance(current, pl.DataFrame) else current
    plans: list[tuple[str, pl.Series, list[str]]] = []
    out: dict[str, DriftResult] = {}
    for col in columns:
        cur = column(col).drop_nulls()
        kind = kind_of(cur.dtype)
        if kind == "temporal":
            out[col] = DriftResult(
                col, "skipped", "", None, None, None, len(cur), 0, [], False,
                "dates and times move with the partition",
            )  # fmt: skip
            continue
        parts = (
            [
                p
                for p in dict.fromkeys(reference[REF_PARTITION].to_list())
                if p not in flagged.get(col, set())
            ][-policy.reference_partitions :]
            if reference.height
            else []
        )
        if len(parts) < policy.min_reference_partitions:
            out[col] = DriftResult(
                col, "skipped", "", None, None, None, len(cur), 0, parts, False,
                f"{len(parts)} earlier partitions to compare with; needs "
                f"{policy.min_reference_partitions}",
            )  # fmt: skip
            continue
        ref = reference.filter(pl.col(REF_PARTITION).is_in(parts))[col].drop_nulls()
        if kind == "string" and ref.n_unique() > 50 and ref.n_unique() > 0.5 * len(ref):
            out[col] = DriftResult(
                col, "skipped", "", None, None, None, len(cur), len(ref), parts, False,
                "identifier-like: most values are distinct",
            )  # fmt: skip
            continue
        if cur.is_empty() or ref.is_empty():
            out[col] = DriftResult(
                col, "skipped", "", None, None, None, len(cur), len(ref), parts, False,
                "no values to compare",
            )  # fmt: skip
            continue
        plans.append((col, ref, parts))
    n_tests = len(plans)
    stat: float | None
    for col, ref, parts in plans:
        cur = column(col).drop_nulls()
        if _is_categorical(cur, ref, policy):
            test, stat, p, drifted, counts = categorical_drift(cur, ref, n_tests, policy)
            out[col] = DriftResult(
                col, "categorical", test, stat, p, None, len(cur), len(ref), parts, drifted,
                distribution=counts,
            )  # fmt: skip
            continue
        c = cur.cast(pl.Float64).to_numpy()
        r = ref.cast(pl.Float64).to_numpy()
        test, stat, p, drifted, w = numeric_drift(c, r, n_tests, policy)
        if not test:
            out[col] = DriftResult(
                col, "skipped", "", None, None, None, len(cur), len(ref), parts, False,
                "not enough data: no finite values to compare",
            )  # fmt: skip
            continue
        edges = hist_edges(np.concatenate([c, r]), HIST_BINS)
        out[col] = DriftResult(
            col, "numeric", test, stat, p, w, len(cur), len(ref), parts, drifted,
            distribution=Histogram(edges, bin_counts(c, edges), bin_counts(r, edges)),
        )  # fmt: skip
    return [out[c] for c in columns if c in out]
