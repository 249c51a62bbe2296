"""``datetime.strptime`` answers computed by polars for the common strftime formats.

GX's ``expect_column_values_to_match_strftime_format`` asks, per value, whether
``datetime.strptime(value, format)`` succeeds. Python answers in two steps (``_strptime``):

1. the format becomes a regular expression (each directive's pattern from ``_strptime.TimeRE``,
   regex characters escaped, every run of whitespace turned into ``\\s+``, case ignored); the
   value must match it from its first character (``re.match``, leftmost-first alternatives), and
   the match must end at the value's end ("unconverted data remains" otherwise);
2. the matched fields must make a real datetime: year 1 to 9999 (``%y`` maps 00-68 to 2000-2068
   and 69-99 to 1969-1999; no year means 1900, so 29 February without a year fails), a day that
   exists in its month, seconds below 60 (the pattern admits 60 and 61).

:func:`compile_format` builds both steps as polars expressions for formats made only of
``%Y %y %m %d %H %M %S %f %%``, ASCII literals and whitespace. The patterns are taken from the
running Python's ``TimeRE``, with ``\\d`` and ``\\s`` narrowed to their ASCII members, which is
exact for ASCII values; values holding any other character (a full-width digit, a no-break
space) are left to Python. A format with any other directive (names of months or days, ``%z``,
``%j``, ``%p``, ...), a repeated directive or a non-ASCII literal is not compiled at all: the
caller asks Python for every distinct value, as before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

COMPILED = frozenset("YymdHMSf")
# Python's \s on str patterns: every character whose str.isspace() is true; these are the ASCII ones
_ASCII_SPACE = "[\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f ]"
_ASCII_ONLY = r"^[\x00-\x7f]*$"
_WHOLE = "_sluice_whole"
_TEXT = "_sluice_text"


WIDTHS = {"Y": 4, "y": 2, "m": 2, "d": 2, "H": 2, "M": 2, "S": 2}


@dataclass(frozen=True)
class CompiledFormat:
    """One strftime format as regular expressions.

    ``pattern`` is Python's own, with every directive captured. ``padded`` (absent when the format
    has ``%f``) admits only the values whose every field has its padded width (``2024-01-05``, not
    ``2024-1-5``) and whose every run of whitespace is one space: those fields sit at fixed
    offsets (``fields``), so they are sliced, not captured. It keeps, of each directive's
    alternatives, the leading ones of the padded width: when it matches, Python's leftmost-first
    match takes the same alternatives, so both read the same fields.
    """

    pattern: str
    directives: frozenset[str]
    padded: str | None
    fields: tuple[tuple[str, int, int], ...]


@functools.cache
def _directive_pattern(directive: str) -> str:
    """Python's pattern for a numeric directive (not locale-dependent), ``\\d`` made ASCII."""
    from _strptime import TimeRE  # type: ignore[import-not-found]

    return str(TimeRE()[directive]).replace("\\d", "[0-9]")


def _alternatives(pattern: str) -> list[str]:
    """The top-level alternatives inside a directive's ``(?P<x>...)`` group."""
    body = pattern[pattern.index(">") + 1 : -1]
    out, depth, current = [], 0, ""
    for ch in body:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "|" and depth == 0:
            out.append(current)
            current = ""
        else:
            current += ch
    return [*out, current]


def _width(alternative: str) -> int | None:
    """Characters one alternative matches, or ``None`` when it can vary."""
    if any(ch in alternative for ch in "{*+?("):
        return None
    width, in_class = 0, False
    for ch in alternative:
        if ch == "[":
            in_class = True
        elif ch == "]":
            in_class = False
            width += 1
        elif not in_class:
            width += 1
    return width


def _padded(directive: str) -> str | None:
    """The leading alternatives of the directive's padded width, as one group."""
    keep = []
    for alternative in _alternatives(_directive_pattern(directive)):
        if _width(alternative) != WIDTHS[directive]:
            break
        keep.append(alternative)
    return "(?:" + "|".join(keep) + ")" if keep else None


def compile_format(fmt: str) -> CompiledFormat | None:
    """The polars (Rust ``regex``) form of ``fmt``, or ``None`` when only Python can judge it."""
    if not fmt.isascii():
        return None
    parts: list[str] = []
    padded: list[str] | None = []
    fields: list[tuple[str, int, int]] = []
    offset = 0
    seen: set[str] = set()
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%":
            if i + 1 >= len(fmt):
                return None
            directive = fmt[i + 1]
            i += 2
            if directive == "%":
                parts.append("%")
                padded = None if padded is None else [*padded, "%"]
                offset += 1
                continue
            if directive not in COMPILED or directive in seen:
                return None
            seen.add(directive)
            parts.append(_directive_pattern(directive))
            strict = _padded(directive) if directive in WIDTHS else None
            if padded is not None and strict is not None:
                padded.append(strict)
                fields.append((directive, offset, WIDTHS[directive]))
                offset += WIDTHS[directive]
            else:
                padded = None
            continue
        if ch.isspace():
            while i < len(fmt) and fmt[i].isspace():
                i += 1
            parts.append(_ASCII_SPACE + "+")
            padded = None if padded is None else [*padded, " "]
            offset += 1
            continue
        parts.append(pl.escape_regex(ch))
        padded = None if padded is None else [*padded, pl.escape_regex(ch)]
        offset += 1
        i += 1
    if "Y" in seen and "y" in seen:
        return None
    return CompiledFormat(
        pattern=f"(?i)^(?P<{_WHOLE}>{''.join(parts)})",
        directives=frozenset(seen),
        padded=None if padded is None else f"(?i)^{''.join(padded)}$",
        fields=tuple(fields),
    )


def _days_in_month(year: pl.Expr, month: pl.Expr) -> pl.Expr:
    leap = ((year % 4) == 0) & (((year % 100) != 0) | ((year % 400) == 0))
    base = pl.when(month == 2).then(28).when(month.is_in([4, 6, 9, 11])).then(30).otherwise(31)
    return base + ((month == 2) & leap).cast(pl.Int64)


def _valid(compiled: CompiledFormat, field: Callable[[str], pl.Expr]) -> pl.Expr:
    """The checks Python makes once the value matched: a real date, seconds below 60."""
    d = compiled.directives
    if "Y" in d:
        year = field("Y")
    elif "y" in d:
        short = field("y")
        year = pl.when(short <= 68).then(short + 2000).otherwise(short + 1900)
    else:
        year = pl.lit(1900, dtype=pl.Int64)
    month = field("m") if "m" in d else pl.lit(1, dtype=pl.Int64)
    day = field("d") if "d" in d else pl.lit(1, dtype=pl.Int64)
    ok = (year >= 1) & (day <= _days_in_month(year, month))
    if "S" in d:
        ok = ok & (field("S") <= 59)
    return ok


def _captured(text: pl.Series, compiled: CompiledFormat) -> pl.Series:
    """Python's pattern with its fields captured: any value, slower."""
    groups = (
        text.str.extract_groups(compiled.pattern).struct.unnest().with_columns(text.alias(_TEXT))
    )

    def field(name: str) -> pl.Expr:
        return pl.col(name).str.strip_chars(" ").cast(pl.Int64, strict=False)

    whole = pl.col(_WHOLE).str.len_bytes() == pl.col(_TEXT).str.len_bytes()
    return groups.select((whole & _valid(compiled, field)).fill_null(False)).to_series()


def _padded_checks(compiled: CompiledFormat) -> tuple[pl.Expr, pl.Expr]:
    """Whether each value has the padded form, and whether its sliced fields make a datetime."""
    assert compiled.padded is not None
    offsets = {name: (at, width) for name, at, width in compiled.fields}

    def field(name: str) -> pl.Expr:
        at, width = offsets[name]
        return pl.col(_TEXT).str.slice(at, width).cast(pl.Int64, strict=False)

    padded = pl.col(_TEXT).str.contains(compiled.padded).fill_null(False)
    return padded, _valid(compiled, field)


def _ask_python(
    answer: pl.Series, text: pl.Series, asked: pl.Series, python: Callable[[str], bool]
) -> pl.Series:
    """``answer`` with the ``asked`` values decided by ``python``, once per distinct value."""
    if asked.any():
        values = text.filter(asked)
        passing = [v for v in values.unique().to_list() if python(v)]
        known = pl.Series(passing, dtype=pl.String).implode()
        answer = answer.scatter(asked.arg_true(), values.is_in(known))
    return answer.set(text.is_null(), None).alias(text.name)


def _judge(text: pl.Series, compiled: CompiledFormat, python: Callable[[str], bool]) -> pl.Series:
    if compiled.padded is None:
        answer = _captured(text, compiled)
    else:
        padded, valid = _padded_checks(compiled)
        quick = pl.DataFrame({_TEXT: text}).select(padded.alias("padded"), valid.alias("ok"))
        answer = quick["ok"].fill_null(False)
        rest = ~quick["padded"]
        if rest.any():
            answer = answer.scatter(rest.arg_true(), _captured(text.filter(rest), compiled))
    other = text.is_not_null() & ~text.str.contains(_ASCII_ONLY)
    return _ask_python(answer, text, other, python)


def parses(text: pl.Expr, compiled: CompiledFormat, python: Callable[[str], bool]) -> pl.Expr:
    """Whether ``datetime.strptime`` accepts each value (null for nulls).

    ASCII values are decided by the compiled format, once per batch; the others by ``python``,
    once per distinct value.
    """
    return text.map_batches(lambda s: _judge(s, compiled, python), return_dtype=pl.Boolean)


ISO_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%dT%H:%M:%S",
)


@functools.cache
def _iso() -> list[CompiledFormat]:
    return [c for c in map(compile_format, ISO_FORMATS) if c is not None]


def _surely(text: pl.Series, python: Callable[[str], bool]) -> pl.Series:
    checks = [padded & valid for padded, valid in map(_padded_checks, _iso())]
    known = pl.DataFrame({_TEXT: text}).select(pl.any_horizontal(checks).fill_null(False))
    answer = known.to_series()
    return _ask_python(answer, text, text.is_not_null() & ~answer, python)


def iso_or_python(text: pl.Expr, python: Callable[[str], bool]) -> pl.Expr:
    """True for real ISO-8601 dates and timestamps (``2024-01-05``, ``2024-01-05T10:30:00``:
    padded fields, a day that exists, seconds below 60), which every permissive date parser
    accepts; ``python`` decides the other values, once per distinct value (null for nulls)."""
    return text.map_batches(lambda s: _surely(s, python), return_dtype=pl.Boolean)
