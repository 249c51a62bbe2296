"""Profile sample files and suggest a dataset spec and a GX suite (``sluice init``).

:func:`profile` reads the samples (:mod:`~sluice.profile.read`), declares each column
(:mod:`~sluice.profile.columns`) and proposes suite entries (:mod:`~sluice.profile.rules`), each
learnt on a seeded learning part of the rows and kept only when it passes on at least
``1 - max_fail`` of the learning rows and of the hold-out rows; its evidence goes in
``meta.suggested``. :func:`spec_for` and :func:`suite_for` turn a profile into the two files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from sluice.profile import duplicates, rules
from sluice.profile.columns import Column, declared_name, infer_column, infer_typed, typed
from sluice.profile.read import Sample, read_sample
from sluice.profile.rules import SLUICE_TYPES, Candidate

MAX_FAIL = 0.05
MIN_FEATURE_DISTINCT = 10
DETECTOR = {"name": "default", "detector": "knn", "params": {"false_flag_rate": 0.001}}

__all__ = [
    "MAX_FAIL",
    "SLUICE_TYPES",
    "Profile",
    "profile",
    "spec_for",
    "suite_for",
    "typed_frame",
]


@dataclass(frozen=True)
class Profile:
    """What was inferred: the columns, the kept suggestions, the keys and the detector features."""

    sample: Sample
    columns: tuple[Column, ...]
    suggestions: tuple[Candidate, ...]
    rejected: tuple[Candidate, ...]
    keys: tuple[str, ...]
    features: tuple[str, ...]
    max_fail: float
    seed: int


def profile(
    paths: Sequence[Path],
    *,
    seed: int = 0,
    max_fail: float = MAX_FAIL,
    sluice_types: bool = True,
) -> Profile:
    """Profile the sample files and return the suggestions that hold on the hold-out rows."""
    sample = read_sample(paths, seed=seed)
    train_text, test_text = sample.train, sample.test
    columns: list[Column] = []
    taken: set[str] = set()
    for i, source in enumerate(sample.frame.columns):
        name = declared_name(source, taken, i)
        taken.add(name)
        if sample.frame.get_column(source).dtype == pl.String:
            col = infer_column(
                source,
                name,
                train_text.get_column(source),
                test_text.get_column(source),
                max_fail=max_fail,
            )
        else:
            col = infer_typed(source, name, sample.frame.get_column(source), max_fail=max_fail)
        columns.append(col)
    train = _typed(train_text, columns)
    test = _typed(test_text, columns)
    candidates = [
        rules.not_null(c, _missing(train, c))
        for c in columns
        if c.opaque and _missing(train, c) < 1
    ]
    candidates += _candidates(train, [c for c in columns if not c.opaque], max_fail, sluice_types)
    kept: list[Candidate] = []
    rejected: list[Candidate] = []
    for c in candidates:
        (kept if rules.keep(c, train, test, max_fail) else rejected).append(c)
    kept = _drop_redundant(kept)
    key = next(
        (c.columns for c in kept if c.type == "expect_column_values_to_be_unique"),
        next((c.columns for c in kept if c.type == "expect_compound_columns_to_be_unique"), []),
    )
    if sluice_types:
        kept += duplicates.near_duplicates(
            _typed(sample.frame, columns), columns, _unique_columns(kept), seed
        )
    return Profile(
        sample=sample,
        columns=tuple(columns),
        suggestions=tuple(kept),
        rejected=tuple(rejected),
        keys=tuple(key),
        features=tuple(_features(train, columns, kept)),
        max_fail=max_fail,
        seed=seed,
    )


def _unique_columns(kept: Sequence[Candidate]) -> list[str]:
    """Columns a kept single-column uniqueness suggestion names: row keys."""
    return [c.columns[0] for c in kept if c.type == "expect_column_values_to_be_unique"]


def typed_frame(prof: Profile) -> pl.DataFrame:
    """Every sample row (in file order) in the declared types, as the suggestions judge them."""
    return _typed(prof.sample.frame, prof.columns)


def _typed(text: pl.DataFrame, columns: Sequence[Column]) -> pl.DataFrame:
    """The typed columns, and for each a ``PRESENT`` flag: it had a value (parsed or not), which
    is what ``not_be_null`` judges (a value that does not parse fails as ``type`` only)."""
    typed_cols = [typed(text.get_column(c.source), c) for c in columns]
    present = [
        _present(text.get_column(c.source), c).alias(rules.PRESENT + c.name) for c in columns
    ]
    return pl.DataFrame([*typed_cols, *present])


def _candidates(
    train: pl.DataFrame, columns: Sequence[Column], max_fail: float, sluice_types: bool
) -> list[Candidate]:
    out: list[Candidate] = []
    n = max(1, train.height)
    key_sets = rules.keys(train, columns)
    for cols in key_sets:
        distinct = train.select(pl.struct(cols).n_unique()).item() / n
        out.append(rules.unique(cols, distinct))
    for col in columns:
        values = train.get_column(col.name)
        nulls = _missing(train, col)
        if nulls < 1:
            out.append(rules.not_null(col, nulls))
        if [col.name] in key_sets:
            for maker in (rules.pattern,):
                got = maker(col, values, max_fail)
                if got is not None:
                    out.append(got)
            if sluice_types and col.type == "string":
                got = rules.normalised_unique(col.name, col, values)
                if got is not None:
                    out.append(got)
            continue
        domain = rules.in_set(col, values)
        if domain is not None:
            out.append(domain)
        else:
            for simple in (rules.between(col, values), rules.lengths(col, values)):
                if simple is not None:
                    out.append(simple)
            shaped = rules.pattern(col, values, max_fail)
            if shaped is not None:
                out.append(shaped)
            if sluice_types:
                rare = rules.rare_variants(col, values)
                if rare is not None:
                    out.append(rare)
    out += rules.orderings(train, columns, max_fail)
    if sluice_types:
        out += rules.dependencies(train, columns, max_fail)
    return out


def _present(values: pl.Series, col: Column) -> pl.Series:
    if values.dtype != pl.String:
        return values.is_not_null()
    return ~values.is_in(col.spec.null_values).fill_null(True)


def _missing(train: pl.DataFrame, col: Column) -> float:
    """The share of learnt rows without a value in ``col``."""
    present = train.get_column(rules.PRESENT + col.name)
    return 1 - float(present.mean() or 0) if present.len() else 0.0  # type: ignore[arg-type]


def _drop_redundant(kept: list[Candidate]) -> list[Candidate]:
    """A length bound says nothing a kept pattern on the same column does not."""
    patterned = {c.kwargs["column"] for c in kept if c.type.endswith("match_regex")}
    return [
        c
        for c in kept
        if not (c.type == "expect_column_value_lengths_to_be_between" and c.columns[0] in patterned)
    ]


def _features(
    train: pl.DataFrame, columns: Sequence[Column], kept: Sequence[Candidate]
) -> list[str]:
    """Numeric columns that measure something: not keys, not categorical, not fixed-width codes
    (zip or phone numbers read as int), with at least :data:`MIN_FEATURE_DISTINCT` values."""
    skip = {
        c.columns[0]
        for c in kept
        if c.type in ("expect_column_values_to_be_in_set", "expect_column_values_to_be_unique")
    }
    out = []
    for col in columns:
        if col.type not in ("int", "float") or col.name in skip:
            continue
        values = train.get_column(col.name).drop_nulls()
        if values.n_unique() < MIN_FEATURE_DISTINCT:
            continue
        if col.type == "int":
            widths = values.abs().cast(pl.String).str.len_chars()
            if widths.n_unique() == 1 and int(widths[0]) >= 4:
                continue
        out.append(col.name)
    return out


def suite_for(name: str, prof: Profile) -> dict[str, Any]:
    """The GX suite: the table's columns and a row count (critical), then every kept suggestion
    with ``meta.severity`` and ``meta.suggested`` (its evidence)."""
    names = [c.name for c in prof.columns]
    table = {"why": "the sample's columns", "holdout_pass_share": 1.0}
    entries: list[dict[str, Any]] = [
        {
            "type": "expect_table_columns_to_match_set",
            "kwargs": {"column_set": names, "exact_match": True},
            "meta": {"severity": "critical", "suggested": table},
        },
        {
            "type": "expect_table_row_count_to_be_between",
            "kwargs": {"min_value": 1},
            "meta": {"severity": "critical", "suggested": {"why": "a partition has rows"}},
        },
    ]
    for c in prof.suggestions:
        meta: dict[str, Any] = {"severity": c.severity, **c.meta, "suggested": c.evidence}
        entries.append({"type": c.type, "kwargs": c.kwargs, "meta": meta})
    return {
        "name": name,
        "expectations": entries,
        "meta": {
            "suggested_by": "sluice init",
            "seed": prof.seed,
            "max_fail_share": prof.max_fail,
            "sample_rows": prof.sample.frame.height,
            "holdout_rows": int(prof.sample.holdout.sum()),
            "files": [str(p) for p in prof.sample.files],
        },
    }


def spec_for(
    name: str,
    prof: Profile,
    *,
    source_path: str,
    partition: dict[str, Any],
    outputs: dict[str, str],
    suite: str,
) -> dict[str, Any]:
    """The dataset spec: source, partition, the declared columns, keys, suite, detector."""
    source: dict[str, Any] = {"path": source_path, "format": prof.sample.format}
    if prof.sample.format == "csv":
        csv = prof.sample.csv
        source["csv"] = {"delimiter": csv.delimiter, "encoding": csv.encoding}
    schema: dict[str, Any] = {}
    for c in prof.columns:
        entry: dict[str, Any] = {"type": c.type}
        if c.spec.format:
            entry["format"] = c.spec.format
        if c.spec.decimal != ".":
            entry["decimal"] = c.spec.decimal
        if c.spec.thousands:
            entry["thousands"] = c.spec.thousands
        if c.spec.currency:
            entry["currency"] = c.spec.currency
        if c.spec.null_values:
            entry["null_values"] = list(c.spec.null_values)
        if c.spec.aliases:
            entry["aliases"] = list(c.spec.aliases)
        schema[c.name] = entry if len(entry) > 1 else c.type
    spec: dict[str, Any] = {
        "name": name,
        "description": f"Suggested by sluice init from {len(prof.sample.files)} sample file(s).",
        "source": source,
        "partition": partition,
        "schema": schema,
    }
    if prof.keys:
        spec["keys"] = list(prof.keys)
    spec["suite"] = suite
    if prof.features:
        spec["detectors"] = [
            {**DETECTOR, "seed": prof.seed, "severity": "error", "features": list(prof.features)}
        ]
    spec["outputs"] = outputs
    return spec
