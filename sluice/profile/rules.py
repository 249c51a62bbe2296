"""Candidate suggestions and their evidence: each learnt on the learning rows, kept only when it
passes on at least ``1 - max_fail`` of the learning rows and of the hold-out rows.

Every candidate is a suite entry (type and kwargs) with a polars expression that says, row by
row, whether a row passes it the way the engine will judge it (nulls pass every rule but
``not_be_null``). The measure is kept apart from the judgement: :func:`evidence` measures a
candidate on a frame, :func:`keep` judges it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import extractOne

from sluice.profile.columns import Column

MIN_DOMAIN_COUNT = 3
MIN_DOMAIN_SHARE = 0.002
MAX_DOMAIN_TAIL = 0.01
MAX_DOMAIN = 100
MIN_ROWS_PER_VALUE = 10
TRIM = 0.001
MARGIN = 0.1
# a measurement's range (a detector feature's) is widened by its whole span: it is there for
# gross errors (a sign, a unit, a sentinel such as 99999); the tail is the detector's to judge
MEASURE_MARGIN = 1.0
MAX_SHAPES = 8
MIN_SHAPE_COUNT = 3
FD_MIN_GROUP = 3
FD_MIN_MAJORITY = 0.5
FD_MIN_COVERAGE = 0.5
FD_MAX_PER_COLUMN = 2
FD_MAX_COLUMNS = 40
FD_MAX_LIFT = 0.5
RARE_MAX_COUNT = 2
RARE_MIN_FREQUENT = 10
RARE_MAX_DISTANCE = 2
RARE_MAX_RELATIVE = 0.25
RARE_MAX_CARDINALITY = 2000
KEY_MIN_ROWS = 20
# repeats at this share of chance's or more: a mostly distinct column is not a key
KEY_CHANCE_SHARE = 0.25
# a key may lack a value on this share of learnt rows (the not-null rule judges those)
KEY_MAX_NULL_SHARE = 0.01
PRESENT = "\x00present:"
MAX_KEY_PAIRS = 2
ORDER_MAX_CHANCE = 0.9
ORDER_MIN_LIFT = 10
PAIR_MAX_COLUMNS = 40

FD = "sluice.expect_column_values_to_follow_majority_by"
RARE = "sluice.expect_column_values_to_not_be_rare_variants"
NORMALISED_UNIQUE = "sluice.expect_compound_columns_to_be_unique_after_normalising"
SLUICE_TYPES = (FD, RARE, NORMALISED_UNIQUE, "sluice.expect_rows_to_not_be_near_duplicates")


@dataclass
class Candidate:
    """A suite entry under consideration, how a row passes it, and why it was proposed."""

    type: str
    kwargs: dict[str, Any]
    passes: Callable[[pl.DataFrame], pl.Series]
    why: str
    severity: str = "error"
    meta: dict[str, Any] = field(default_factory=dict)
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        """The columns the entry reads."""
        k = self.kwargs
        out = [k["column"]] if "column" in k else []
        for key in ("column_A", "column_B"):
            if key in k:
                out.append(k[key])
        out += list(k.get("column_list", [])) + list(k.get("by", []))
        return out


def _counts(values: pl.Series) -> pl.DataFrame:
    """Each distinct non-null value (column ``v``, in order) and its ``count``, whatever the
    series' name. polars counts in no fixed order: sorted, what is learnt from values seen as
    often as each other (a pattern's alternatives) is the same for any order of the rows."""
    return values.drop_nulls().alias("v").value_counts(name="count").sort("v")


def _expr(e: pl.Expr) -> Callable[[pl.DataFrame], pl.Series]:
    return lambda f: f.select(e.fill_null(True).alias("ok")).to_series()


def evidence(c: Candidate, frame: pl.DataFrame) -> tuple[float, int]:
    """The share of ``frame``'s rows that pass ``c``, and the number of rows that fail."""
    if frame.height == 0:
        return 1.0, 0
    ok = c.passes(frame)
    fails = int((~ok).sum())
    return 1 - fails / frame.height, fails


def keep(c: Candidate, train: pl.DataFrame, test: pl.DataFrame, max_fail: float) -> bool:
    """Measure ``c`` on both parts, record the evidence on it, and say whether it is kept."""
    learnt, _ = evidence(c, train)
    held, held_fails = evidence(c, test)
    c.evidence = {
        "holdout_pass_share": round(held, 6),
        "holdout_rows": test.height,
        "holdout_failing_rows": held_fails,
        "learn_pass_share": round(learnt, 6),
        "learn_rows": train.height,
        "max_fail_share": max_fail,
        "why": c.why,
    }
    return learnt >= 1 - max_fail and held >= 1 - max_fail


def not_null(col: Column, null_share: float) -> Candidate:
    """The column has a value on (nearly) every row."""
    return Candidate(
        "expect_column_values_to_not_be_null",
        {"column": col.name},
        lambda f: f.get_column(PRESENT + col.name),
        f"{null_share:.2%} of learnt rows have no value",
    )


def _first_seen(cols: Sequence[str]) -> Callable[[pl.DataFrame], pl.Series]:
    def passes(f: pl.DataFrame) -> pl.Series:
        sel = f.select(cols)
        has_null = sel.select(pl.any_horizontal(pl.all().is_null())).to_series()
        first = sel.select(pl.struct(pl.all()).is_first_distinct()).to_series()
        return first | has_null

    return passes


def unique(cols: Sequence[str], distinct_share: float) -> Candidate:
    """A key: the first occurrence of each value stays, later ones fail."""
    kind = (
        ("expect_column_values_to_be_unique", {"column": cols[0]})
        if len(cols) == 1
        else ("expect_compound_columns_to_be_unique", {"column_list": list(cols)})
    )
    return Candidate(
        kind[0],
        kind[1],
        _first_seen(cols),
        f"{distinct_share:.2%} of learnt values are distinct",
        meta={"duplicates": "keep_first"},
    )


def keys(train: pl.DataFrame, columns: Sequence[Column]) -> list[list[str]]:
    """Unique and nearly unique columns (string, int or date) with a value on all but at most
    :data:`KEY_MAX_NULL_SHARE` of the rows (a sample that holds a few rows without their id
    still has a key), else small column pairs whose values together are; a column counting the
    rows (1, 2, 3, ...) is not a key of the data."""
    n = train.height
    if n < KEY_MIN_ROWS:
        return []
    singles: list[list[str]] = []
    usable = [c for c in columns if c.type in ("string", "int", "date")]
    cards: dict[str, int] = {}
    for c in usable:
        s = train.get_column(c.name)
        cards[c.name] = s.n_unique()
        present = s.drop_nulls()
        distinct = present.n_unique()
        if (
            s.null_count() <= KEY_MAX_NULL_SHARE * n
            and distinct >= n * 0.5
            and not _row_counter(present)
            and not _repeats_by_chance(present, distinct)
        ):
            singles.append([c.name])
    if singles:
        return singles
    pairs: list[tuple[float, list[str]]] = []
    names = [c.name for c in usable if 1 < cards[c.name] < n * 0.9][:PAIR_MAX_COLUMNS]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if cards[a] * cards[b] < n:
                continue
            distinct = train.select(pl.struct(a, b).n_unique()).item() / n
            if distinct >= 0.5:
                pairs.append((distinct, [a, b]))
    pairs.sort(key=lambda p: -p[0])
    return [p[1] for p in pairs[:MAX_KEY_PAIRS]]


def _repeats_by_chance(s: pl.Series, distinct: int) -> bool:
    """Whether an integer or date column repeats values about as often as chance would: at
    least :data:`KEY_CHANCE_SHARE` of the repeats that as many values drawn evenly from its
    range (its integers, its days) would hold, when such draws would repeat at all.

    Mostly distinct is then no sign of a key (unit counts from 1 to 20,000, birth dates), and a
    unique rule would quarantine the rows that share a value by chance. A key whose range is
    far wider than its rows (random ids) repeats only by error: those repeats are what its
    rule is for, and it stays a key; so does a numbering with a few repeats."""
    if s.dtype.is_integer():
        lo, hi = s.min(), s.max()
    elif s.dtype == pl.Date:
        days = s.cast(pl.Int32)
        lo, hi = days.min(), days.max()
    else:
        return False
    repeats = s.len() - distinct
    if repeats == 0 or not isinstance(lo, int) or not isinstance(hi, int):
        return False
    span = float(hi - lo + 1)
    n = s.len()
    # draws evenly over the span hold span * (1 - (1 - 1/span) ** n) distinct values
    chance = n + span * math.expm1(n * math.log1p(-1 / span)) if span > 1 else n - 1
    return chance >= 1 and repeats >= KEY_CHANCE_SHARE * chance


def _row_counter(s: pl.Series) -> bool:
    if not s.dtype.is_integer() or s.len() < 2:
        return False
    d = s.sort().diff().drop_nulls()
    return bool((d == 1).all())


def in_set(col: Column, values: pl.Series) -> Candidate | None:
    """A categorical domain: the values seen at least :data:`MIN_DOMAIN_COUNT` times; a column
    is categorical when that domain is small (at most :data:`MAX_DOMAIN` values, each with
    :data:`MIN_ROWS_PER_VALUE` rows on average) and closed.

    Closed: the values that recur but are each on less than :data:`MIN_DOMAIN_SHARE` of rows
    cover at most :data:`MAX_DOMAIN_TAIL` of them. A column whose rarer values keep recurring
    (zone or product ids, cities) has a long tail, and its next rows bring values the sample did
    not hold, valid ones: a domain would quarantine them. A value seen once or twice (a typo)
    stays out of the domain either way."""
    present = values.drop_nulls()
    if present.len() == 0 or col.type not in ("string", "int"):
        return None
    counts = _counts(present)
    n = present.len()
    recurring = counts.filter(pl.col("count") >= MIN_DOMAIN_COUNT)
    tail = int(recurring.filter(pl.col("count") < MIN_DOMAIN_SHARE * n).get_column("count").sum())
    if tail > MAX_DOMAIN_TAIL * n:
        return None
    domain = sorted(recurring.get_column("v").to_list())
    if not domain or len(domain) > MAX_DOMAIN or len(domain) * MIN_ROWS_PER_VALUE > n:
        return None
    return Candidate(
        "expect_column_values_to_be_in_set",
        {"column": col.name, "value_set": domain},
        _expr(pl.col(col.name).is_in(domain)),
        f"{len(domain)} values each seen at least {MIN_DOMAIN_COUNT} times; those on less than "
        f"{MIN_DOMAIN_SHARE:.1%} of rows cover {tail / n:.2%}",
    )


def between(col: Column, values: pl.Series, *, margin: float = MARGIN) -> Candidate | None:
    """A range: the learnt values' trimmed minimum and maximum (the rarest :data:`TRIM` of each
    tail left out) widened by ``margin`` of their span (:data:`MARGIN`, or
    :data:`MEASURE_MARGIN` for a measurement), kept non-negative when they are."""
    present = values.drop_nulls()
    if col.type not in ("int", "float") or present.len() < 2:
        return None
    lo_q = present.quantile(TRIM, "lower") if present.len() >= 1 / TRIM else present.min()
    hi_q = present.quantile(1 - TRIM, "higher") if present.len() >= 1 / TRIM else present.max()
    if lo_q is None or hi_q is None:
        return None
    lo_f, hi_f = float(lo_q), float(hi_q)  # type: ignore[arg-type]
    if not (math.isfinite(lo_f) and math.isfinite(hi_f)):
        return None
    wide = (hi_f - lo_f) * margin or abs(hi_f) * margin or 1.0
    lo, hi = lo_f - wide, hi_f + wide
    if lo_f >= 0:
        lo = max(lo, 0.0)
    if col.type == "int":
        lo_v: float | int = math.floor(lo)
        hi_v: float | int = math.ceil(hi)
    else:
        lo_v, hi_v = _round(lo, down=True), _round(hi, down=False)
    return Candidate(
        "expect_column_values_to_be_between",
        {"column": col.name, "min_value": lo_v, "max_value": hi_v},
        _expr(pl.col(col.name).is_between(lo_v, hi_v)),
        f"learnt values run from {lo_f:g} to {hi_f:g} (rarest {TRIM:.1%} of each tail left out);"
        f" widened by {margin:.0%} of that span"
        + (" (a measurement: the range is for gross errors)" if margin > MARGIN else ""),
    )


def _round(x: float, *, down: bool) -> float:
    if x == 0:
        return 0.0
    step = 10 ** (math.floor(math.log10(abs(x))) - 2)
    return float((math.floor if down else math.ceil)(x / step) * step)


_CLASSES: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("[0-9]", lambda ch: ch.isascii() and ch.isdigit()),
    ("[A-Z]", lambda ch: ch.isascii() and ch.isupper()),
    ("[a-z]", lambda ch: ch.isascii() and ch.islower()),
    (" ", lambda ch: ch == " "),
)


_META = frozenset(".^$*+?{}[]\\|()")


def literal(ch: str) -> str:
    """One character as a pattern both Python's ``re`` and the polars (Rust) engine read alike:
    metacharacters escaped, control and non-printable characters as ``\\uXXXX``."""
    if ch in _META:
        return "\\" + ch
    if ch.isprintable():
        return ch
    code = ord(ch)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def shape(value: str) -> tuple[tuple[str, int], ...]:
    """A value as runs of character classes: ``T123`` -> ``(("[A-Z]", 1), ("[0-9]", 3))``; any
    other character stands for itself."""
    runs: list[list[Any]] = []
    for ch in value:
        cls = next((c for c, test in _CLASSES if test(ch)), literal(ch))
        if runs and runs[-1][0] == cls:
            runs[-1][1] += 1
        else:
            runs.append([cls, 1])
    return tuple((c, n) for c, n in runs)


def _regex(shapes: Sequence[tuple[tuple[str, int, int], ...]]) -> str:
    def part(cls: str, lo: int, hi: int) -> str:
        if lo == hi:
            return cls if lo == 1 else f"{cls}{{{lo}}}"
        return f"{cls}{{{lo},{hi}}}"

    bodies = ["".join(part(*r) for r in s) for s in shapes]
    return f"^{bodies[0]}$" if len(bodies) == 1 else "^(?:" + "|".join(bodies) + ")$"


def pattern(col: Column, values: pl.Series, max_fail: float) -> Candidate | None:
    """String shapes: each value generalised to runs of character classes with their lengths;
    the dominant shapes (each seen :data:`MIN_SHAPE_COUNT` times, at most :data:`MAX_SHAPES`)
    become one anchored pattern when they cover nearly every learnt value. When exact lengths
    vary too much, shapes with the same runs merge into length ranges."""
    if col.type != "string":
        return None
    counts = _counts(values)
    n = int(counts.get_column("count").sum())
    if n == 0:
        return None
    exact: dict[tuple[tuple[str, int], ...], int] = {}
    for v, k in counts.iter_rows():
        s = shape(str(v))
        exact[s] = exact.get(s, 0) + int(k)
    for level in ("exact", "ranges"):
        if level == "exact":
            groups = {s: (k, [(c, m, m) for c, m in s]) for s, k in exact.items()}
        else:
            merged: dict[tuple[str, ...], tuple[int, list[tuple[str, int, int]]]] = {}
            for s, k in exact.items():
                key = tuple(c for c, _ in s)
                old_k, runs = merged.get(key, (0, [(c, m, m) for c, m in s]))
                runs = [
                    (c, min(lo, m), max(hi, m)) for (c, lo, hi), (_, m) in zip(runs, s, strict=True)
                ]
                merged[key] = (old_k + k, runs)
            groups = {k2: v for k2, v in merged.items()}  # type: ignore[misc]
        ranked = sorted(groups.values(), key=lambda g: -g[0])
        chosen = [g for g in ranked[:MAX_SHAPES] if g[0] >= MIN_SHAPE_COUNT]
        covered = sum(g[0] for g in chosen)
        if chosen and covered >= (1 - max_fail) * n and len(ranked) > 0:
            regex = _regex([tuple(g[1]) for g in chosen])
            if len(regex) > 400:
                return None
            return Candidate(
                "expect_column_values_to_match_regex",
                {"column": col.name, "regex": regex},
                _expr(pl.col(col.name).str.contains(regex)),
                f"{len(chosen)} dominant shape(s) ({level} lengths) cover {covered / n:.2%} "
                "of learnt values",
            )
    return None


def lengths(col: Column, values: pl.Series) -> Candidate | None:
    """Length bounds of a string column: the learnt lengths, the longest widened by half."""
    present = values.drop_nulls()
    if col.type != "string" or present.len() == 0:
        return None
    lens = present.str.len_chars()
    most = int(lens.max())  # type: ignore[arg-type]
    lo, hi = int(lens.min()), math.ceil(most * 1.5)  # type: ignore[arg-type]
    return Candidate(
        "expect_column_value_lengths_to_be_between",
        {"column": col.name, "min_value": lo, "max_value": hi},
        _expr(pl.col(col.name).str.len_chars().is_between(lo, hi)),
        f"learnt lengths {lo} to {most}; the longest widened by half",
    )


def orderings(train: pl.DataFrame, columns: Sequence[Column], max_fail: float) -> list[Candidate]:
    """Pairs of numeric, of date or of datetime columns where A > B (or A >= B) on nearly every
    learnt row that has both. An ordering the columns' values would show by chance is left out:
    the same comparison is made with B shuffled (seeded), and the ordering is kept only when
    the shuffled rows break it at least :data:`ORDER_MIN_LIFT` times as often as the learnt rows
    do and still hold it on less than :data:`ORDER_MAX_CHANCE` of rows; nor when the learnt
    ranges do not overlap, which says nothing about the rows.

    ``A >= B`` between columns whose values are mostly equal or mostly ordered anyway (a code
    column beside another that is nearly always 1, an amount beside one that is nearly always
    0) holds on about as many shuffled rows as learnt ones: a rule the data follows by chance
    would quarantine the rows that break it for no reason."""
    groups = {
        "number": [c.name for c in columns if c.type in ("int", "float")][:PAIR_MAX_COLUMNS],
        "date": [c.name for c in columns if c.type == "date"][:PAIR_MAX_COLUMNS],
        "datetime": [c.name for c in columns if c.type == "datetime"][:PAIR_MAX_COLUMNS],
    }
    out: list[Candidate] = []
    for names in groups.values():
        for a in names:
            for b in names:
                if a == b:
                    continue
                both = train.select(a, b).drop_nulls()
                if both.height < KEY_MIN_ROWS:
                    continue
                a_s, b_s = both.get_column(a), both.get_column(b)
                if a_s.min() > b_s.max() or a_s.max() < b_s.min():  # type: ignore[operator]
                    continue
                gt = float((a_s > b_s).mean())  # type: ignore[arg-type]
                ge = float((a_s >= b_s).mean())  # type: ignore[arg-type]
                if gt >= 1 - max_fail:
                    strict = True
                elif ge >= 1 - max_fail and gt < ge:
                    strict = False
                else:
                    continue
                if not strict and ge == 1.0 and gt == 0.0:
                    continue
                share = gt if strict else ge
                shuffled = b_s.shuffle(seed=0)
                held = (a_s > shuffled) if strict else (a_s >= shuffled)
                by_chance = float(held.mean())  # type: ignore[arg-type]
                if by_chance >= ORDER_MAX_CHANCE or 1 - by_chance < ORDER_MIN_LIFT * (1 - share):
                    continue
                out.append(
                    Candidate(
                        "expect_column_pair_values_a_to_be_greater_than_b",
                        {"column_A": a, "column_B": b, "or_equal": not strict},
                        _expr(pl.col(a) > pl.col(b) if strict else pl.col(a) >= pl.col(b)),
                        f"{a} {'>' if strict else '>='} {b} on {share:.2%} of learnt rows "
                        f"with both; on {by_chance:.2%} with {b} shuffled",
                    )
                )
    return out


def _majority_passes(x: str, y: str) -> Callable[[pl.DataFrame], pl.Series]:
    def passes(f: pl.DataFrame) -> pl.Series:
        sub = f.select(pl.col(x).alias("x"), pl.col(y).alias("y")).with_row_index("i")
        has = sub.filter(pl.col("x").is_not_null() & pl.col("y").is_not_null())
        counts = has.group_by("x", "y").agg(pl.len().alias("k"))
        totals = counts.group_by("x").agg(
            pl.col("k").sum().alias("total"), pl.col("k").max().alias("top")
        )
        judged = counts.join(totals, on="x").with_columns(
            (
                (pl.col("total") < FD_MIN_GROUP)
                | (pl.col("top") <= FD_MIN_MAJORITY * pl.col("total"))
                | (pl.col("k") == pl.col("top"))
            ).alias("ok")
        )
        joined = has.join(judged.select("x", "y", "ok"), on=["x", "y"], how="left")
        bad = joined.filter(~pl.col("ok")).get_column("i")
        return ~pl.Series(range(f.height)).is_in(bad.implode())

    return passes


def _off_mode(train: pl.DataFrame, y: str) -> int:
    """Rows whose ``y`` differs from the column's most common value (nulls left out)."""
    counts = _counts(train.get_column(y))
    total = int(counts.get_column("count").sum())
    return total - int(counts.get_column("count").max() or 0)  # type: ignore[arg-type]


def dependencies(
    train: pl.DataFrame, columns: Sequence[Column], max_fail: float
) -> list[Candidate]:
    """Approximate functional dependencies X -> Y between single columns.

    Candidates X have between 2 and n/:data:`FD_MIN_GROUP` distinct values (groups of
    :data:`FD_MIN_GROUP` rows on average) among the :data:`FD_MAX_COLUMNS` columns of lowest
    cardinality; for each ordered pair one polars ``group_by([X, Y])`` counts the rows that differ
    from their group's majority (cost: one hash aggregation of n rows per pair, k^2 pairs). A
    dependency is kept when the rows in groups of :data:`FD_MIN_GROUP` or more cover at least
    :data:`FD_MIN_COVERAGE` of rows and the minority rows are at most ``max_fail`` of them and at
    most :data:`FD_MAX_LIFT` of the rows off Y's most common value (X must explain Y), and no
    group holds a second Y value :data:`FD_MIN_GROUP` times or more (a recurring second value is
    a many-to-many relation, not a slip: one zip shared by two hospitals); for
    each Y the :data:`FD_MAX_PER_COLUMN` determinants with the fewest groups are kept.
    """
    n = train.height
    if n < KEY_MIN_ROWS:
        return []
    cards = {
        c.name: train.get_column(c.name).n_unique()
        for c in columns
        if c.type in ("string", "int", "date", "bool")
    }
    ys = [c for c, k in cards.items() if k > 1]
    xs = sorted((c for c in ys if cards[c] * FD_MIN_GROUP <= n), key=lambda c: cards[c])
    xs = xs[:FD_MAX_COLUMNS]
    found: dict[str, list[tuple[int, float, str]]] = {}
    for x in xs:
        for y in ys:
            if x == y or cards[y] >= n * 0.5:
                continue
            pairs = (
                train.select(pl.col(x).alias("x"), pl.col(y).alias("y"))
                .drop_nulls()
                .group_by("x", "y")
                .agg(pl.len().alias("k"))
                .group_by("x")
                .agg(
                    pl.col("k").sum().alias("total"),
                    pl.col("k").max().alias("top"),
                    pl.col("k").sort(descending=True).slice(1, 1).first().alias("second"),
                )
                .filter(pl.col("total") >= FD_MIN_GROUP)
            )
            if int((pairs.get_column("second").fill_null(0) >= FD_MIN_GROUP).sum()) > 0:
                continue
            covered = int(pairs.get_column("total").sum())
            if covered < FD_MIN_COVERAGE * n:
                continue
            minority = int((pairs.get_column("total") - pairs.get_column("top")).sum())
            if minority > max_fail * n or minority > FD_MAX_LIFT * _off_mode(train, y):
                continue
            found.setdefault(y, []).append((cards[x], minority / n, x))
    out: list[Candidate] = []
    for y, dets in found.items():
        for _card, share, x in sorted(dets)[:FD_MAX_PER_COLUMN]:
            out.append(
                Candidate(
                    FD,
                    {
                        "column": y,
                        "by": [x],
                        "min_group_size": FD_MIN_GROUP,
                        "min_majority": FD_MIN_MAJORITY,
                    },
                    _majority_passes(x, y),
                    f"{x} -> {y}: {share:.2%} of learnt rows differ from their {x} group's "
                    "majority",
                )
            )
    return out


def rare_variants(col: Column, values: pl.Series) -> Candidate | None:
    """Rare misspellings of frequent values in a medium-cardinality text column: frequent values
    (seen :data:`RARE_MIN_FREQUENT` times) cover most rows, and some values seen at most
    :data:`RARE_MAX_COUNT` times are within :data:`RARE_MAX_DISTANCE` edits of one (measured with
    rapidfuzz's Levenshtein distance)."""
    present = values.drop_nulls()
    if col.type != "string" or present.len() == 0:
        return None
    counts = _counts(present)
    if counts.height < 3 or counts.height > RARE_MAX_CARDINALITY:
        return None
    frequent = counts.filter(pl.col("count") >= RARE_MIN_FREQUENT)
    if frequent.height == 0 or int(frequent.get_column("count").sum()) < present.len() * 0.5:
        return None
    kwargs = {
        "column": col.name,
        "max_count": RARE_MAX_COUNT,
        "min_frequent_count": RARE_MIN_FREQUENT,
        "max_distance": RARE_MAX_DISTANCE,
        "max_relative_distance": RARE_MAX_RELATIVE,
    }
    return Candidate(
        RARE,
        kwargs,
        lambda f: _not_rare(f.get_column(col.name)),
        f"{frequent.height} frequent values cover "
        f"{int(frequent.get_column('count').sum()) / present.len():.1%} of learnt rows",
    )


def _not_rare(values: pl.Series) -> pl.Series:
    """Rows that the rare-variant rule passes, judged within ``values`` themselves."""
    counts = _counts(values)
    frequent = counts.filter(pl.col("count") >= RARE_MIN_FREQUENT).get_column("v").to_list()
    rare = counts.filter(pl.col("count") <= RARE_MAX_COUNT).get_column("v").to_list()
    flagged = []
    for v in rare:
        text = str(v)
        limit = min(RARE_MAX_DISTANCE, int(RARE_MAX_RELATIVE * len(text)))
        if limit < 1:
            continue
        hit = extractOne(
            text,
            [str(f) for f in frequent],
            scorer=Levenshtein.distance,
            score_cutoff=limit,
        )
        if hit is not None:
            flagged.append(v)
    return ~values.is_in(flagged).fill_null(False)


def normalised_unique(key: str, col: Column, values: pl.Series) -> Candidate | None:
    """Uniqueness after normalising a nearly unique text key: digits only when the values are
    mostly digits (phone numbers, codes), else casefold, collapse whitespace, strip punctuation."""
    present = values.drop_nulls()
    if col.type != "string" or present.len() == 0:
        return None
    text = "".join(present.head(500).to_list())
    digits = sum(ch.isdigit() for ch in text) / max(1, len(text))
    transform: str | list[str] = (
        "digits" if digits >= 0.6 else ["casefold", "collapse_whitespace", "strip_punctuation"]
    )

    def norm(e: pl.Expr) -> pl.Expr:
        if transform == "digits":
            return e.str.replace_all(r"[^0-9]", "")
        return (
            e.str.to_lowercase()
            .str.replace_all(r"[^\w\s]", "")
            .str.replace_all(r"\s+", " ")
            .str.strip_chars()
        )

    def passes(f: pl.DataFrame) -> pl.Series:
        normed = f.select(norm(pl.col(key)).alias("v")).to_series()
        return normed.is_first_distinct() | normed.is_null()

    return Candidate(
        NORMALISED_UNIQUE,
        {"column_list": [key], "transform": transform},
        passes,
        f"{key} stays nearly unique after {transform}",
    )
