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
distinct value instead.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Callable
from functools import cache
from typing import Any

import polars as pl

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


def check_pattern(pattern: object) -> str:
    """The pattern, if Python can compile it; otherwise the error GX would report."""
    if not isinstance(pattern, str):
        raise TypeError(f"a regex is a string, found {pattern!r}")
    re.compile(pattern)
    return pattern


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


def contains(expr: pl.Expr, pattern: str) -> pl.Expr:
    """Whether each string matches ``pattern`` anywhere, with Python's answers."""
    rust = translate(pattern)
    if rust is not None:
        return expr.str.contains(rust)
    compiled = re.compile(pattern)
    return python_predicate(expr, lambda v: compiled.search(v) is not None)


def python_predicate(expr: pl.Expr, test: Callable[[str], bool]) -> pl.Expr:
    """Apply a Python test to each distinct non-null string once, then broadcast it."""

    def run(s: pl.Series) -> pl.Series:
        distinct = s.drop_nulls().unique()
        passing = [v for v in distinct.to_list() if test(v)]
        out = s.is_in(pl.Series(passing, dtype=s.dtype))
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
