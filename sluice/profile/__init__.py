"""Profile sample files and suggest a dataset spec and a GX suite (``sluice init``).

:func:`profile` reads the samples (:mod:`~sluice.profile.read`), declares each column
(:mod:`~sluice.profile.columns`) and proposes suite entries (:mod:`~sluice.profile.rules`), each
learnt on a seeded learning part of the rows and kept only when it passes on at least
``1 - max_fail`` of the learning rows and of the hold-out rows; its evidence goes in
``meta.suggested``. :func:`spec_for` and :func:`suite_for` turn a profile into the two files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
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
# the last word of a column's name that says its numbers name things (an id, a code, a zone),
# not amounts: a detector would take a zone numbered 263 as far from one numbered 4
LABEL_WORDS = frozenset(
    {
        "id", "ids", "key", "code", "codes", "no", "num", "number", "zip", "zipcode",
        "postcode", "zone", "type", "status", "class", "category", "flag",
    }
)  # fmt: skip
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")

__all__ = [
    "MAX_FAIL",
    "SLUICE_TYPES",
    "Profile",
    "label_word",
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
    # numeric columns left out of ``features``, each with why
    not_features: tuple[tuple[str, str], ...] = ()


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
    # why each numeric column's numbers do not measure (None: they do), for ranges and features
    measures = {
        c.name: _not_measure(c, train.get_column(c.name))
        for c in columns
        if c.type in ("int", "float")
    }
    candidates += _candidates(
        train, [c for c in columns if not c.opaque], max_fail, sluice_types, measures
    )
    kept: list[Candidate] = []
    rejected: list[Candidate] = []
    for c in candidates:
        (kept if rules.keep(c, train, test, max_fail) else rejected).append(c)
    kept = _drop_redundant(kept)
    key = next(
        (c.columns for c in kept if c.type == "expect_column_values_to_be_unique"),
        next((c.columns for c in kept if c.type == "expect_compound_columns_to_be_unique"), []),
    )
    chosen = _features(measures, kept)
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
        features=tuple(c for c, why in chosen if why is None),
        max_fail=max_fail,
        seed=seed,
        not_features=tuple((c, why) for c, why in chosen if why is not None),
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
    train: pl.DataFrame,
    columns: Sequence[Column],
    max_fail: float,
    sluice_types: bool,
    measures: Mapping[str, str | None],
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
            measure = col.name in measures and measures[col.name] is None
            margin = rules.MEASURE_MARGIN if measure else rules.MARGIN
            for simple in (rules.between(col, values, margin=margin), rules.lengths(col, values)):
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
    measures: Mapping[str, str | None], kept: Sequence[Candidate]
) -> list[tuple[str, str | None]]:
    """Each numeric column and why it is no detector feature (None when it is one): a feature
    measures something (``measures``: :func:`_not_measure` of each numeric column), so it is
    not a key and not categorical (a kept domain) either."""
    keys = {c.columns[0] for c in kept if c.type == "expect_column_values_to_be_unique"}
    domains = {c.columns[0] for c in kept if c.type == "expect_column_values_to_be_in_set"}
    return [
        (
            name,
            "a key (suggested as unique)"
            if name in keys
            else "a category (its values are a known set)"
            if name in domains
            else why,
        )
        for name, why in measures.items()
    ]


def _not_measure(col: Column, values: pl.Series) -> str | None:
    """Why a numeric column's numbers do not measure something (None when they may): named as
    a label (:func:`label_word`), fewer than :data:`MIN_FEATURE_DISTINCT` values, or a
    fixed-width code (zip or phone numbers read as int)."""
    word = label_word(col.name) or label_word(col.source)
    if word is not None:
        return f"its name ends in {word!r}: numbers that name things, not amounts"
    values = values.drop_nulls()
    if values.n_unique() < MIN_FEATURE_DISTINCT:
        return f"fewer than {MIN_FEATURE_DISTINCT} distinct values"
    if col.type == "int":
        widths = values.abs().cast(pl.String).str.len_chars()
        if widths.n_unique() == 1 and int(widths[0]) >= 4:
            return f"a fixed-width code (every value {int(widths[0])} digits)"
    return None


def label_word(name: str) -> str | None:
    """The last word of a column name when it is one of :data:`LABEL_WORDS` (``PULocationID``,
    ``pickup_location_id``, ``store code``, ``ZipCode`` -> ``id``, ``id``, ``code``, ``code``),
    else None. Words are split at anything not a letter and where the case changes."""
    words = _WORDS.findall(name)
    last = words[-1].lower() if words else ""
    return last if last in LABEL_WORDS else None


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
