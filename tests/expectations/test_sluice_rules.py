"""sluice's own types on the polars engine: semantics against plain-Python oracles (hypothesis)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rapidfuzz import utils
from rapidfuzz.distance import JaroWinkler

from expectations.failures import failures_from_outcomes
from expectations.polars_engine import run_polars
from expectations.results import ExpectationEntry, ExpectationOutcome

FD = "sluice.expect_column_values_to_follow_majority_by"
RARE = "sluice.expect_column_values_to_not_be_rare_variants"
NORM = "sluice.expect_compound_columns_to_be_unique_after_normalising"
NEAR = "sluice.expect_rows_to_not_be_near_duplicates"
SETTINGS = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


def entry(name: str, index: int = 0, /, **kwargs: Any) -> ExpectationEntry:
    return ExpectationEntry(index=index, type=name, kwargs=kwargs, meta={}, severity="error")


def one(frame: pl.DataFrame, name: str, /, **kwargs: Any) -> ExpectationOutcome:
    (out,) = run_polars(frame, [entry(name, **kwargs)])
    assert out.exception is None, out.exception
    return out


def details(outcome: ExpectationOutcome) -> list[dict[str, Any]]:
    assert outcome.row_details is not None
    return outcome.row_details.to_dicts()


def rows(outcome: ExpectationOutcome) -> list[int]:
    assert outcome.unexpected_rows is not None
    return [int(r) for r in outcome.unexpected_rows]


# ---- functional dependency with a majority vote ------------------------------------------------


def fd_oracle(xs: list[Any], ys: list[Any], min_size: int, min_majority: float) -> dict[int, Any]:
    groups: dict[Any, list[int]] = {}
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if x is not None and y is not None:
            groups.setdefault(x, []).append(i)
    out: dict[int, Any] = {}
    for members in groups.values():
        counts = Counter(ys[i] for i in members).most_common()
        top = counts[0][1]
        tie = len(counts) > 1 and counts[1][1] == top
        if len(members) >= min_size and not tie and top > min_majority * len(members):
            out.update({i: counts[0][0] for i in members if ys[i] != counts[0][0]})
    return out


fd_cases = st.integers(1, 40).flatmap(
    lambda n: st.tuples(
        st.lists(st.one_of(st.none(), st.integers(0, 4)), min_size=n, max_size=n),
        st.lists(st.one_of(st.none(), st.sampled_from("abc")), min_size=n, max_size=n),
        st.integers(2, 5),
        st.sampled_from([0.0, 0.5, 0.6, 0.75]),
    )
)


@SETTINGS
@given(case=fd_cases)
@example(case=([1, 1, 1, 1], ["a", "a", "b", "b"], 2, 0.0))  # a tie: nothing fails
def test_majority_fails_exactly_the_minority_of_ruled_groups(
    case: tuple[list[int | None], list[str | None], int, float],
) -> None:
    xs, ys, min_size, min_majority = case
    frame = pl.DataFrame({"x": xs, "y": ys}, schema={"x": pl.Int64, "y": pl.String})
    kwargs = {"column": "y", "by": ["x"], "min_group_size": min_size, "min_majority": min_majority}
    out = one(frame, FD, **kwargs)
    expected = fd_oracle(xs, ys, min_size, min_majority)
    assert rows(out) == sorted(expected)
    assert [d["majority"] for d in details(out)] == [expected[i] for i in sorted(expected)]
    assert out.success == (not expected)
    repaired = list(ys)
    for i, d in zip(rows(out), details(out), strict=True):
        repaired[i] = d["majority"]
    again = one(frame.with_columns(pl.Series("y", repaired, dtype=pl.String)), FD, **kwargs)
    assert rows(again) == []


def test_majority_details_name_the_value_group_and_share() -> None:
    frame = pl.DataFrame(
        {"zip": ["1"] * 4 + ["2"] * 2, "state": ["AL", "AL", "AL", "AK", "CA", "CX"]}
    )
    out = one(frame, FD, column="state", by=["zip"])
    assert rows(out) == [3]
    assert details(out) == [
        {
            "majority": "AL",
            "group_size": 4,
            "majority_count": 3,
            "majority_share": 0.75,
            "by": ["zip"],
        },
    ]
    assert out.observed_value == {"groups": 2, "groups_judged": 1, "minority_rows": 1}


def test_majority_by_several_columns_and_float_nan_is_missing() -> None:
    frame = pl.DataFrame(
        {
            "a": [1, 1, 1, 1, 1, 2, 2, 2],
            "b": ["x", "x", "x", "x", "y", "x", "x", "x"],
            "v": [1.0, 1.0, float("nan"), 2.0, 2.0, 3.0, 3.0, 3.0],
        }
    )
    out = one(frame, FD, column="v", by=["a", "b"])
    assert rows(out) == [3]


# ---- rare variants -----------------------------------------------------------------------------


def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def rare_oracle(values: list[str | None], kw: dict[str, Any]) -> dict[int, str]:
    counts = Counter(v for v in values if v is not None)
    frequent = sorted(
        (v for v, c in counts.items() if c >= kw["min_frequent_count"]),
        key=lambda v: (-counts[v], v),
    )
    match: dict[str, str] = {}
    for v, c in counts.items():
        if c > kw["max_count"]:
            continue
        best: tuple[int, str] | None = None
        for f in frequent:
            d = levenshtein(v, f)
            near = d <= kw["max_distance"] and d <= kw["max_relative_distance"] * max(
                len(v), len(f)
            )
            if near and (best is None or d < best[0]):
                best = (d, f)
        if best is not None:
            match[v] = best[1]
    return {i: match[v] for i, v in enumerate(values) if v in match}


rare_cases = st.tuples(
    st.lists(st.one_of(st.none(), st.text("abx", min_size=0, max_size=5)), min_size=1, max_size=60),
    st.integers(1, 3),
    st.integers(0, 4),
    st.integers(1, 3),
    st.sampled_from([0.2, 0.34, 0.5, 1.0]),
)


@SETTINGS
@given(case=rare_cases)
def test_rare_variants_fail_exactly_as_the_oracle_says(
    case: tuple[list[str | None], int, int, int, float],
) -> None:
    values, max_count, extra, max_distance, relative = case
    kw = {
        "column": "c",
        "max_count": max_count,
        "min_frequent_count": max_count + 1 + extra,
        "max_distance": max_distance,
        "max_relative_distance": relative,
    }
    frame = pl.DataFrame({"c": values}, schema={"c": pl.String})
    out = one(frame, RARE, **kw)
    expected = rare_oracle(values, kw)
    assert rows(out) == sorted(expected)
    assert [d["frequent_value"] for d in details(out)] == [expected[i] for i in sorted(expected)]


def test_rare_variant_names_the_frequent_spelling_and_skips_short_codes() -> None:
    cities = ["birmingham"] * 12 + ["birminghxm", "dothan", "AL"] + ["AK"] * 12
    out = one(pl.DataFrame({"city": cities}), RARE, column="city")
    assert rows(out) == [12]
    assert details(out)[0]["frequent_value"] == "birmingham"
    assert details(out)[0]["distance"] == 1


# ---- uniqueness after normalising --------------------------------------------------------------

PY_STEPS: dict[str, Callable[[str], str]] = {
    "digits": lambda s: re.sub(r"\D", "", s),
    "casefold": str.lower,
    "strip_punctuation": lambda s: "".join(c for c in s if c not in "!\"#%&'()*,-./:;?@[\\]_{}"),
    "collapse_whitespace": lambda s: " ".join(s.split()),
    "sorted_tokens": lambda s: " ".join(sorted(s.split())),
}

norm_cases = st.tuples(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.text("aB1 -.(", max_size=6)),
            st.one_of(st.none(), st.text("xY 2", max_size=3)),
        ),
        min_size=1,
        max_size=40,
    ),
    st.lists(st.sampled_from(sorted(PY_STEPS)), min_size=1, max_size=3),
    st.booleans(),
)


@SETTINGS
@given(case=norm_cases)
def test_exactly_the_rows_whose_normalised_key_was_seen_before_fail(
    case: tuple[list[tuple[str | None, str | None]], list[str], bool],
) -> None:
    pairs, steps, compound = case
    frame = pl.DataFrame(
        {"a": [p[0] for p in pairs], "b": [p[1] for p in pairs]},
        schema={"a": pl.String, "b": pl.String},
    )
    cols = ["a", "b"] if compound else ["a"]
    out = one(frame, NORM, column_list=cols, transform=steps)
    first: dict[tuple[str, ...], int] = {}
    expected: dict[int, int] = {}
    for i, pair in enumerate(pairs):
        parts = []
        for raw in pair[: len(cols)]:
            if raw is None:
                break
            value = raw
            for step in steps:
                value = PY_STEPS[step](value)
            if not value:
                break
            parts.append(value)
        if len(parts) < len(cols):
            continue
        key = tuple(parts)
        if key in first:
            expected[i] = first[key]
        else:
            first[key] = i
    assert rows(out) == sorted(expected)
    assert out.duplicate_of is not None
    assert out.duplicate_of.tolist() == [expected[i] for i in sorted(expected)]


def test_phone_digits_duplicates_point_to_the_first_row_id() -> None:
    frame = pl.DataFrame(
        {
            "_row_id": pl.Series([7, 8, 9, 10], dtype=pl.UInt64),
            "phone": ["(555) 123-4567", "555.123.4567", "n/a", "-"],
        }
    )
    (out,) = run_polars(
        frame.drop("_row_id"), [entry(NORM, column_list=["phone"], transform="digits")]
    )
    assert rows(out) == [1]
    failures = failures_from_outcomes(frame, [out]).failures
    assert failures.get_column("_row_id").to_list() == [8]
    assert failures.get_column("column").to_list() == ["phone"]
    details = failures.get_column("details").str.json_decode().to_list()
    assert details[0]["duplicate_of"] == 7
    assert details[0]["normalised"] == "5551234567"


# ---- near duplicates ---------------------------------------------------------------------------


def jw(a: str | None, b: str | None) -> float | None:
    if a is None or b is None:
        return None
    return float(
        JaroWinkler.normalized_similarity(utils.default_process(a), utils.default_process(b))
    )


near_cases = st.tuples(
    st.lists(
        st.tuples(
            st.sampled_from(["p", "q", None]),
            st.one_of(st.none(), st.sampled_from(["ann", "anne", "bob", "bobby", "ann smith"])),
            st.one_of(st.none(), st.sampled_from(["1 high st", "1 high street", "9 low rd"])),
        ),
        min_size=1,
        max_size=25,
    ),
    st.sampled_from([0.7, 0.85, 0.95, 1.0]),
    st.integers(2, 30),
    st.sampled_from([None, 1, 2]),
)


@SETTINGS
@given(case=near_cases)
def test_near_duplicates_match_pairwise_oracle(
    case: tuple[list[tuple[str | None, str | None, str | None]], float, int, int | None],
) -> None:
    records, threshold, max_block, min_given = case
    min_columns = 1 if min_given is None else min_given
    frame = pl.DataFrame(
        {k: [r[i] for r in records] for i, k in enumerate(("blk", "name", "addr"))},
        schema={"blk": pl.String, "name": pl.String, "addr": pl.String},
    )
    out = one(
        frame,
        NEAR,
        block_on=["blk"],
        compare=["name", "addr"],
        threshold=threshold,
        max_block_size=max_block,
        min_columns=min_given,
    )
    sizes = Counter(r[0] for r in records if r[0] is not None)
    expected: dict[int, int] = {}
    for j, rj in enumerate(records):
        if rj[0] is None or sizes[rj[0]] > max_block:
            continue
        best: tuple[float, int] | None = None
        for i in range(j):
            ri = records[i]
            if ri[0] != rj[0]:
                continue
            sims = [s for s in (jw(ri[1], rj[1]), jw(ri[2], rj[2])) if s is not None]
            score = sum(sims) / len(sims) if len(sims) >= min_columns else 0.0
            if score >= threshold and (best is None or score > best[0] + 1e-12):
                best = (score, i)
        if best is not None:
            expected[j] = best[1]
    assert rows(out) == sorted(expected)
    assert out.duplicate_of is not None
    assert out.duplicate_of.tolist() == [expected[j] for j in sorted(expected)]
    skipped = [b for b, n in sizes.items() if n > max_block]
    assert out.observed_value["blocks_skipped"] == len(skipped)
    assert out.observed_value["rows_in_skipped_blocks"] == sum(sizes[b] for b in skipped)


def test_a_block_above_the_limit_is_skipped_and_counted() -> None:
    frame = pl.DataFrame({"blk": ["a"] * 5 + ["b"] * 2, "name": ["ann"] * 7})
    out = one(frame, NEAR, block_on=["blk"], compare=["name"], max_block_size=4)
    assert rows(out) == [6]
    assert out.observed_value["blocks_skipped"] == 1
    assert out.observed_value["rows_in_skipped_blocks"] == 5


def test_near_duplicate_failure_names_every_compare_column() -> None:
    frame = pl.DataFrame(
        {
            "_row_id": pl.Series([1, 2, 3], dtype=pl.UInt64),
            "postcode": ["2000", "2000", "2000"],
            "given": ["john", "jon", "mary"],
            "surname": ["smith", "smith", "jones"],
        }
    )
    kwargs = {"block_on": ["postcode"], "compare": ["given", "surname"], "threshold": 0.9}
    (out,) = run_polars(frame.drop("_row_id"), [entry(NEAR, **kwargs)])
    failures = failures_from_outcomes(frame, [out]).failures
    assert failures.get_column("column").to_list() == ["given,surname"]
    assert failures.get_column("_row_id").to_list() == [2]
    assert failures.get_column("details").str.json_decode().to_list()[0]["duplicate_of"] == 1


# ---- every type under a row_condition ----------------------------------------------------------

CONDITIONED: list[tuple[str, dict[str, Any]]] = [
    (FD, {"column": "v", "by": ["k"], "min_group_size": 2}),
    (RARE, {"column": "v", "max_count": 1, "min_frequent_count": 2}),
    (NORM, {"column_list": ["v"], "transform": ["casefold", "strip_punctuation"]}),
    (NEAR, {"block_on": ["k"], "compare": ["v"], "threshold": 0.8}),
]

cond_frames = st.lists(
    st.tuples(
        st.sampled_from(["g", "h"]),
        st.integers(0, 2),
        st.one_of(st.none(), st.sampled_from(["abc", "abd", "ABC!", "xyz", "abcd"])),
    ),
    min_size=1,
    max_size=30,
)


@SETTINGS
@given(records=cond_frames)
def test_row_condition_equals_running_on_the_kept_rows(
    records: list[tuple[str, int, str | None]],
) -> None:
    frame = pl.DataFrame(
        {"g": [r[0] for r in records], "k": [r[1] for r in records], "v": [r[2] for r in records]},
        schema={"g": pl.String, "k": pl.Int64, "v": pl.String},
    )
    kept = np.flatnonzero(frame.get_column("g").to_numpy() == "g")
    for name, kwargs in CONDITIONED:
        conditioned = one(frame, name, row_condition='g == "g"', **kwargs)
        plain = one(frame.filter(pl.col("g") == "g"), name, **kwargs)
        assert rows(conditioned) == [int(kept[r]) for r in rows(plain)], name
        assert details(conditioned) == details(plain), name
        assert conditioned.success == plain.success, name


def test_mostly_lets_a_few_minority_rows_pass_the_verdict() -> None:
    frame = pl.DataFrame({"k": [1] * 10, "v": ["a"] * 9 + ["b"]})
    assert not one(frame, FD, column="v", by=["k"]).success
    lenient = one(frame, FD, column="v", by=["k"], mostly=0.9)
    assert lenient.success
    assert rows(lenient) == [9]


def test_a_conditional_failure_names_the_condition_columns_after_the_checked_ones() -> None:
    frame = pl.DataFrame(
        {
            "_row_id": pl.Series([1, 2, 3, 4], dtype=pl.UInt64),
            "marital_status": ["single", "married", "single", "single"],
            "exemption": ["none", "spouse", "spouse", "none"],
            "k": [1, 1, 1, 1],
        }
    )
    gx_entry = entry(
        "expect_column_values_to_be_in_set",
        0,
        column="exemption",
        value_set=["none"],
        row_condition='marital_status == "single"',
    )
    fd_entry = entry(
        FD, 1, column="exemption", by=["k"], row_condition='marital_status == "single"'
    )
    outcomes = run_polars(frame.drop("_row_id"), [gx_entry, fd_entry])
    failures = failures_from_outcomes(frame, outcomes).failures
    assert failures.select("_row_id", "column").rows() == [
        (3, "exemption,marital_status"),
        (3, "exemption,marital_status"),
    ]
    plain = entry("expect_column_values_to_be_in_set", column="exemption", value_set=["none"])
    assert plain.failure_column == "exemption"
    assert entry(NEAR, block_on=["k"], compare=["b", "a"]).failure_column == "b,a"
