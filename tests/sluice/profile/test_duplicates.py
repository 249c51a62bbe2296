"""Near-duplicate suggestions on generated person records whose duplicates are known: blocking on
identifier-like columns whatever their names, the threshold from random pairs, no rule where
nothing identifies an entity, and no flag on records without duplicates."""

from __future__ import annotations

import datetime as dt
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from expectations.engine import validate
from expectations.suite import suite_from_dict
from sluice.profile import profile, suite_for, typed_frame
from sluice.profile.duplicates import NEAR, THRESHOLD_FLOOR

SYLLABLES = ("ka", "lo", "mi", "ren", "tor", "va", "sel", "dun", "bri", "ash", "mo", "lin", "ette")
STREETS = ("street", "road", "avenue", "crescent", "place", "drive")
ROLES = ("record", "first", "last", "street", "town", "zip", "born", "national")


def _word(rng: np.random.Generator, parts: int) -> str:
    return "".join(str(rng.choice(SYLLABLES)) for _ in range(parts))


def _typo(rng: np.random.Generator, text: str) -> str:
    i = int(rng.integers(0, len(text)))
    return text[:i] + str(rng.choice(list("aeiouxz"))) + text[i + 1 :]


def people(
    n: int, dups: int, seed: int, names: dict[str, str]
) -> tuple[pl.DataFrame, set[tuple[int, int]]]:
    """``n`` distinct people and ``dups`` copies of some of them with a typo or a missing field
    each, shuffled; columns named by ``names`` (role -> name); the true duplicate pairs."""
    rng = np.random.default_rng(seed)
    towns = [_word(rng, 3) for _ in range(60)]
    rows: list[dict[str, Any]] = []
    for i in range(n):
        born = dt.date(1940, 1, 1) + dt.timedelta(days=int(rng.integers(0, 25_000)))
        rows.append(
            {
                "first": _word(rng, 2),
                "last": _word(rng, 3),
                "street": f"{_word(rng, 2)} {rng.choice(STREETS)}",
                "town": towns[i % len(towns)],
                "zip": str(2000 + int(rng.integers(0, n // 2))),
                "born": born.isoformat(),
                "national": str(int(rng.integers(1_000_000, 9_999_999))),
                "entity": i,
            }
        )
    for j, k in enumerate(rng.choice(n, dups, replace=False)):
        copy = dict(rows[int(k)])
        field = ("first", "last", "street", "zip", "born", "national")[j % 6]
        copy[field] = _typo(rng, str(copy[field])) if j % 4 else None
        rows.append(copy)
    order = rng.permutation(len(rows))
    shuffled = [rows[int(i)] for i in order]
    truth: set[tuple[int, int]] = set()
    seen: dict[int, list[int]] = {}
    for pos, r in enumerate(shuffled):
        seen.setdefault(int(r["entity"]), []).append(pos)
    for group in seen.values():
        truth.update(combinations(sorted(group), 2))
    frame = pl.DataFrame(
        {
            names["record"]: [f"P{i:05d}" for i in range(len(shuffled))],
            **{names[role]: [r[role] for r in shuffled] for role in ROLES[1:]},
        }
    )
    return frame, truth


PLAIN = {r: r for r in ROLES}
OPAQUE = {r: f"c{i}" for i, r in enumerate(reversed(ROLES))}


def _near(prof: Any) -> list[dict[str, Any]]:
    return [c.kwargs for c in prof.suggestions if c.type == NEAR]


def _found(prof: Any) -> set[tuple[int, int]]:
    """Pairs the suggested entries report on the sample, expanded within each group."""
    frame = typed_frame(prof)
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        while parent.get(x, x) != x:
            x = parent[x]
        return x

    for kwargs in _near(prof):
        suite = suite_from_dict({"name": "t", "expectations": [{"type": NEAR, "kwargs": kwargs}]})
        (out,) = validate(frame, suite, engine="polars")
        assert out.unexpected_rows is not None
        assert out.duplicate_of is not None
        for a, b in zip(out.unexpected_rows, out.duplicate_of, strict=True):
            parent[root(int(a))] = root(int(b))
    groups: dict[int, set[int]] = {}
    for x in list(parent):
        groups.setdefault(root(x), {root(x)}).add(x)
    return {p for g in groups.values() for p in combinations(sorted(g), 2)}


@pytest.mark.parametrize("names", [PLAIN, OPAQUE], ids=["plain", "opaque"])
def test_blocks_on_identifier_like_columns_whatever_their_names(
    names: dict[str, str], tmp_path: Path
) -> None:
    frame, _ = people(600, 200, seed=1, names=names)
    path = tmp_path / "people.csv"
    frame.write_csv(path)
    near = _near(profile([path]))
    blocked = sorted(kw["block_on"][0] for kw in near)
    assert blocked == sorted(names[r] for r in ("zip", "born", "national"))
    for kw in near:
        assert {names["first"], names["last"], names["street"]} <= set(kw["compare"])
        assert names["record"] not in kw["compare"] + kw["block_on"]
        assert THRESHOLD_FLOOR <= kw["threshold"] < 1


def test_the_suggested_entries_find_the_planted_duplicates(tmp_path: Path) -> None:
    frame, truth = people(600, 200, seed=2, names=PLAIN)
    path = tmp_path / "people.csv"
    frame.write_csv(path)
    found = _found(profile([path]))
    hit = len(found & truth)
    assert hit / len(found) >= 0.95
    assert hit / len(truth) >= 0.9


def test_without_the_national_id_the_other_identifiers_still_block(tmp_path: Path) -> None:
    frame, truth = people(600, 200, seed=4, names=PLAIN)
    path = tmp_path / "people.csv"
    frame.drop("national").write_csv(path)
    prof = profile([path])
    assert sorted(kw["block_on"][0] for kw in _near(prof)) == ["born", "zip"]
    found = _found(prof)
    assert len(found & truth) / len(found) >= 0.95


def test_distinct_people_sharing_identifiers_are_not_flagged(tmp_path: Path) -> None:
    frame, truth = people(900, 0, seed=5, names=PLAIN)
    assert not truth
    path = tmp_path / "people.csv"
    frame.write_csv(path)
    prof = profile([path])
    assert _near(prof), "zip codes shared by a few people make a block"
    assert _found(prof) == set()


def test_no_rule_without_text_to_compare_or_without_identifiers(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    numbers = pl.DataFrame(
        {"code": rng.integers(0, 300, 900).astype(str), "amount": rng.gamma(2, 10, 900)}
    )
    numbers.write_csv(tmp_path / "numbers.csv")
    assert _near(profile([tmp_path / "numbers.csv"])) == []
    frame, _ = people(600, 200, seed=7, names=PLAIN)
    frame.drop("zip", "born", "national").write_csv(tmp_path / "names.csv")
    assert _near(profile([tmp_path / "names.csv"])) == []
    counts = frame.drop("zip", "born", "national").with_columns(
        pl.Series("visits", rng.integers(1, 3000, frame.height))
    )
    counts.write_csv(tmp_path / "counts.csv")
    assert _near(profile([tmp_path / "counts.csv"])) == [], "a count of varying width is no code"


def test_the_entry_carries_its_own_evidence_outside_the_fail_share(tmp_path: Path) -> None:
    frame, _ = people(400, 200, seed=8, names=PLAIN)
    path = tmp_path / "people.csv"
    frame.write_csv(path)
    prof = profile([path])
    entries = [e for e in suite_for("people", prof)["expectations"] if e["type"] == NEAR]
    assert entries
    for e in entries:
        ev = e["meta"]["suggested"]
        assert ev["flagged_share"] > prof.max_fail, "duplicates fail more than the 5% rule allows"
        assert ev["flagged_rows"] == round(ev["flagged_share"] * ev["sample_rows"])
        quantile = next(iter(ev["random_pair_score_quantile"].values()))
        assert e["kwargs"]["threshold"] >= quantile
        assert ev["pairs_compared"] >= ev["flagged_rows"]
        assert e["meta"]["severity"] == "error"
