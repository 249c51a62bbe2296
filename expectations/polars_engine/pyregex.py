"""Python ``re.search`` answers on polars strings.

GX's pandas metrics call ``Series.str.contains(regex)``, which answers like Python's ``re.search``
(pandas 3 falls back to ``re`` whenever pyarrow's RE2 would answer differently). polars uses the
Rust ``regex`` crate, whose syntax and classes differ in places: ``$`` also matches before a
trailing newline in Python, ``\\d``, ``\\w`` and ``\\s`` are defined by ``str.isdecimal``,
``str.isalnum`` and ``str.isspace`` in Python and by Unicode properties in Rust.

:func:`translate` rewrites a Python pattern into a Rust pattern with the same ``search`` answer on
every string: it parses the pattern with Python's own parser and writes literals as code points
and classes as explicit code-point ranges computed from Python itself. Patterns it cannot
rewrite faithfully (look-arounds, back-references, ``\\b``, inline flags, possessive repeats, a
``$`` followed by more pattern) return ``None``, and the caller runs Python's ``re`` on each
distinct value instead, under a time budget (:mod:`expectations.polars_engine.bounded`).
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable
from functools import cache
from typing import Any

import polars as pl

from expectations.polars_engine.bounded import PatternTimeout, budget_seconds, search_all

c: Any = importlib.import_module("re._constants")
p: Any = importlib.import_module("re._parser")

_CATEGORIES: dict[Any, tuple[str, bool]] = {
    c.CATEGORY_DIGIT: ("digit", False),
    c.CATEGORY_NOT_DIGIT: ("digit", True),
    c.CATEGORY_SPACE: ("space", False),
    c.CATEGORY_NOT_SPACE: ("space", True),
    c.CATEGORY_WORD: ("word", False),
    c.CATEGORY_NOT_WORD: ("word", True),
}
_TESTS: dict[str, Callable[[str], bool]] = {
    "digit": str.isdecimal,
    "space": str.isspace,
    "word": lambda ch: ch.isalnum() or ch == "_",
}


class _NoTranslation(Exception):
    pass


_END_ANCHOR = re.compile(r"(?<!\\)((?:\\\\)*)\\Z")


def re2_pattern(pattern: str) -> str:
    """The pattern as pandas 3 hands it to pyarrow's RE2 (Python's ``\\Z`` spelt ``\\z``)."""
    return _END_ANCHOR.sub(r"\1\\z", pattern)


def pattern_error(pattern: str) -> str | None:
    """Why GX (pandas 3) cannot use this pattern, or ``None`` when it can.

    A pattern Python's ``re`` rejects goes to pyarrow's RE2 in pandas 3, which may accept it.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        re.compile(pattern)
    except re.error:
        try:
            pc.match_substring_regex(pa.array(["x"], pa.large_string()), re2_pattern(pattern))
        except pa.ArrowInvalid as exc:
            return str(exc)
    return None


def re2_contains(expr: pl.Expr, pattern: str) -> pl.Expr:
    """pyarrow's RE2 ``match_substring_regex``, as pandas 3 runs a pattern Python rejects."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rewritten = re2_pattern(pattern)

    def run(s: pl.Series) -> pl.Series:
        found = pc.match_substring_regex(s.to_arrow().cast(pa.large_string()), rewritten)
        out = pl.from_arrow(found)
        assert isinstance(out, pl.Series)
        return out

    return expr.map_batches(run, return_dtype=pl.Boolean)


def translate(pattern: str) -> str | None:
    """A Rust-regex pattern whose ``search`` answers equal Python's, or ``None``."""
    try:
        parsed = p.parse(pattern)
    except re.error:
        return None
    if parsed.state.flags & ~(c.SRE_FLAG_UNICODE):
        return None
    try:
        return _seq(list(parsed), tail=True)
    except _NoTranslation:
        return None


def re2_rejects(pattern: str) -> bool:
    """Whether pyarrow's RE2 refuses the pattern (as pandas 3 would hand it over)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    # the one value comes through polars: pa.array on a Python list imports pandas (a second)
    probe = pl.Series(["x"], dtype=pl.String).to_arrow().cast(pa.large_string())
    try:
        pc.match_substring_regex(probe, re2_pattern(pattern))
    except pa.ArrowInvalid:
        return True
    return False


def pandas_contains(expr: pl.Expr, pattern: str, budget: float | None = None) -> pl.Expr:
    """``Series.str.contains`` as pandas 3 answers it, on the non-null values of ``expr``.

    Used for the rare pattern Python accepts and RE2 refuses: pandas decides from the pattern
    and the data whether to use RE2 (and raise) or Python's ``re``. sluice asks pandas for that
    decision and runs Python's ``re`` itself, under the pattern budget.
    """
    seconds = budget_seconds() if budget is None else budget
    timed_out: list[PatternTimeout] = []

    def run(s: pl.Series) -> pl.Series:
        import pandas as pd

        if timed_out:
            raise timed_out[0]
        distinct = s.drop_nulls().unique()
        if distinct.is_empty():
            return pl.repeat(False, len(s), dtype=pl.Boolean, eager=True).alias(s.name)
        values = distinct.to_list()
        array = pd.array(values, dtype="str")
        needs_python = getattr(array, "_needs_python_regex", None)
        if needs_python is None or needs_python(pattern):
            try:
                found = search_all(pattern, values, seconds)
            except PatternTimeout as exc:
                timed_out.append(exc)
                raise
            passing = [v for v, hit in zip(values, found, strict=True) if hit]
        else:
            hits = pd.Series(array).str.contains(pattern).fillna(False).astype(bool)
            passing = [v for v, hit in zip(values, hits.to_list(), strict=True) if hit]
        return s.is_in(pl.Series(passing, dtype=s.dtype).implode()).fill_null(False)

    return expr.map_batches(run, return_dtype=pl.Boolean)


def check_python_budget(pattern: str, values: list[str], budget: float | None = None) -> None:
    """Raise :class:`PatternTimeout` if pandas 3 would search ``values`` with Python's ``re``
    (its own decision, from the pattern and the data) and that search exceeds the budget.

    The GX runner calls this before GX runs a pattern, so GX never starts a search that cannot
    finish in time.
    """
    import pandas as pd

    if not values:
        return
    try:
        re.compile(pattern)
    except re.error:
        return
    array = pd.array(values, dtype="str")
    needs_python = getattr(array, "_needs_python_regex", None)
    if needs_python is None or needs_python(pattern):
        search_all(pattern, values, budget)


def bounded_search(expr: pl.Expr, pattern: str, budget: float | None = None) -> pl.Expr:
    """Python's ``re.search`` on each distinct non-null string, under the pattern budget.

    A search over the budget raises :class:`PatternTimeout` (and again at once if the same
    expression is evaluated again), so the check that uses it could not run.
    """
    seconds = budget_seconds() if budget is None else budget
    timed_out: list[PatternTimeout] = []

    def run(s: pl.Series) -> pl.Series:
        if timed_out:
            raise timed_out[0]
        distinct = s.drop_nulls().unique()
        values = distinct.to_list()
        try:
            found = search_all(pattern, values, seconds)
        except PatternTimeout as exc:
            timed_out.append(exc)
            raise
        passing = [v for v, hit in zip(values, found, strict=True) if hit]
        return s.is_in(pl.Series(passing, dtype=s.dtype).implode())

    return expr.map_batches(run, return_dtype=pl.Boolean)


def contains(expr: pl.Expr, pattern: str, considered: pl.Expr | None = None) -> pl.Expr:
    """Whether each string matches ``pattern`` anywhere, with Python's answers.

    A pattern Python rejects runs on RE2, as pandas runs it; one Python accepts and RE2 refuses
    runs as pandas would on the ``considered`` rows; one :func:`translate` rewrites runs on the
    Rust engine (linear time); any other runs Python's ``re`` under the pattern budget.
    """
    try:
        re.compile(pattern)
    except re.error:
        return re2_contains(expr, pattern)
    if re2_rejects(pattern):
        kept = expr if considered is None else pl.when(considered).then(expr)
        return pandas_contains(kept, pattern)
    rust = translate(pattern)
    if rust is not None:
        return expr.str.contains(rust)
    return bounded_search(expr, pattern)


def python_predicate(expr: pl.Expr, test: Callable[[str], bool]) -> pl.Expr:
    """Apply a Python test to each distinct non-null string once, then broadcast it."""

    def run(s: pl.Series) -> pl.Series:
        distinct = s.drop_nulls().unique()
        passing = [v for v in distinct.to_list() if test(v)]
        out = s.is_in(pl.Series(passing, dtype=s.dtype).implode())
        return out

    return expr.map_batches(run, return_dtype=pl.Boolean)


def _char(code: int) -> str:
    ch = chr(code)
    if ch.isascii() and ch.isalnum():
        return ch
    return f"\\x{{{code:x}}}"


def _seq(items: list[tuple[Any, Any]], *, tail: bool) -> str:
    out = []
    for i, (op, av) in enumerate(items):
        out.append(_node(op, av, tail=tail and i == len(items) - 1))
    return "".join(out)


def _node(op: Any, av: Any, *, tail: bool) -> str:
    if op is c.LITERAL:
        return _char(av)
    if op is c.NOT_LITERAL:
        return f"[^{_char(av)}]"
    if op is c.ANY:
        return "."
    if op is c.IN:
        return _class(av)
    if op is c.BRANCH:
        return "(?:" + "|".join(_seq(list(alt), tail=tail) for alt in av[1]) + ")"
    if op is c.SUBPATTERN:
        _group, add_flags, del_flags, sub = av
        if add_flags or del_flags:
            raise _NoTranslation
        return "(?:" + _seq(list(sub), tail=tail) + ")"
    if op in (c.MAX_REPEAT, c.MIN_REPEAT):
        lo, hi, sub = av
        body = "(?:" + _seq(list(sub), tail=False) + ")"
        bound = f"{{{lo},}}" if hi is c.MAXREPEAT else f"{{{lo},{hi}}}"
        return body + bound
    if op is c.AT:
        if av is c.AT_BEGINNING or av is c.AT_BEGINNING_STRING:
            return "\\A"
        if av is c.AT_END_STRING:
            return "\\z"
        if av is c.AT_END and tail:
            return "(?:\\n?\\z)"
    raise _NoTranslation


def _class(items: list[tuple[Any, Any]]) -> str:
    negate = False
    parts = []
    for op, av in items:
        if op is c.NEGATE:
            negate = True
        elif op is c.LITERAL:
            parts.append(_char(av))
        elif op is c.RANGE:
            parts.append(f"{_char(av[0])}-{_char(av[1])}")
        elif op is c.CATEGORY and av in _CATEGORIES:
            name, negated = _CATEGORIES[av]
            ranges = _ranges(name)
            parts.append(f"[^{ranges}]" if negated else f"[{ranges}]")
        else:
            raise _NoTranslation
    if not parts:
        raise _NoTranslation
    return "[" + ("^" if negate else "") + "".join(parts) + "]"


@cache
def _ranges(name: str) -> str:
    test = _TESTS[name]
    out = []
    start: int | None = None
    for code in range(sys.maxunicode + 2):
        inside = code <= sys.maxunicode and not 0xD800 <= code <= 0xDFFF and test(chr(code))
        if inside and start is None:
            start = code
        elif not inside and start is not None:
            end = code - 1
            out.append(_char(start) if start == end else f"{_char(start)}-{_char(end)}")
            start = None
    return "".join(out)
