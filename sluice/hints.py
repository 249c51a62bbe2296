"""What values that did not parse look like, and which declaration would have read them.

:func:`type_hint` looks at a sample of the raw text of cells that failed ``column|type`` and
says, in one line for people: a few distinct examples and, for dates and timestamps, a strftime
format that parses them (candidates from pandas' ``guess_datetime_format`` and a list of common
formats, each tried with the parser ingest itself uses), for numbers the notation they use
(a decimal comma, a thousands separator, a currency sign).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from sluice.config import ColumnSpec
from sluice.ingest import column_parser as ingest_parser

EXAMPLES = 3
SAMPLE = 200
SHOW_CHARS = 40
COMMON_DATETIME = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S%.f%z",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %I:%M %p",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d-%m-%Y %H:%M:%S",
    "%d-%b-%Y %H:%M:%S",
    "%Y%m%d%H%M%S",
    "%Y%m%dT%H%M%S",
)
COMMON_DATE = (
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%m/%d/%Y",
    "%d/%m/%Y",
    "%d.%m.%Y",
    "%d-%m-%Y",
    "%m-%d-%Y",
    "%Y%m%d",
    "%d-%b-%Y",
    "%d %b %Y",
    "%b %d, %Y",
    "%B %d, %Y",
    "%m/%d/%y",
    "%d/%m/%y",
)
NULL_WORDS = frozenset({"na", "n/a", "nan", "null", "none", "nil", "-", "--", "?", "missing"})
NUMBER_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "a ',' thousands separator (e.g. 1,234.5): declare thousands: ','",
        re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$"),
    ),
    (
        "a '.' thousands separator and a decimal comma (e.g. 1.234,5): declare thousands: '.' "
        "and decimal: ','",
        re.compile(r"^[-+]?\d{1,3}(\.\d{3})+(,\d+)?$"),
    ),
    ("a decimal comma (e.g. 3,5): declare decimal: ','", re.compile(r"^[-+]?\d*,\d+$")),
    (
        "a space as thousands separator: declare thousands: ' ' (or the no-break space the "
        "values hold)",
        re.compile(r"^[-+]?\d{1,3}([ \u00a0\u202f]\d{3})+([.,]\d+)?$"),
    ),
    (
        "a currency sign: declare currency (and thousands, if the digits are grouped)",
        re.compile(r"^[-+]?\s*[$€£¥]\s*[-+]?[\d.,]+$|^[-+]?[\d.,]+\s*[$€£¥]$"),
    ),
    ("a percent sign", re.compile(r"^[-+]?[\d.,]+\s*%$")),
    ("decimals, in a column declared int (declare it float)", re.compile(r"^[-+]?\d+\.\d+$")),
    ("an exponent, in a column declared int", re.compile(r"^[-+]?\d+(\.\d+)?[eE][-+]?\d+$")),
)


@dataclass(frozen=True)
class FormatGuess:
    """A format and how many of the sampled values it parses."""

    format: str | None
    parsed: int
    sampled: int


def _show(value: str) -> str:
    text = value if len(value) <= SHOW_CHARS else value[: SHOW_CHARS - 1] + "…"
    return repr(text)


def examples(values: Sequence[str | None], n: int = EXAMPLES) -> list[str]:
    """Up to ``n`` distinct values, most frequent first (ties in order of appearance)."""
    counts: dict[str, int] = {}
    for v in values:
        if v is not None:
            counts[v] = counts.get(v, 0) + 1
    return [v for v, _ in sorted(counts.items(), key=lambda kv: -kv[1])[:n]]


def _parse(values: pl.Series, spec: ColumnSpec) -> pl.Series | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pl.DataFrame({"v": values}).select(ingest_parser(spec)(pl.col("v"))).to_series()
    except (pl.exceptions.PolarsError, ValueError):
        return None


def _candidates(values: Sequence[str], kind: str) -> list[str | None]:
    from pandas.tseries.api import guess_datetime_format

    found: list[str | None] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for v in values[:20]:
            for dayfirst in (False, True):
                fmt = guess_datetime_format(v.strip(), dayfirst=dayfirst)
                if fmt:
                    fmt = fmt.replace(".%f", "%.f")
                    if "%f" not in fmt.replace("%.f", ""):
                        found.append(fmt)
    common = COMMON_DATETIME + COMMON_DATE if kind == "datetime" else COMMON_DATE
    out: list[str | None] = []
    for f in [*found, *common]:
        if f not in out:
            out.append(f)
    if kind == "datetime":
        out.append(None)
    return out


def guess_format(values: Sequence[str], kind: str) -> tuple[FormatGuess | None, list[str]]:
    """The format that parses most of ``values`` as ``kind`` (date or datetime), and the others
    that parse as many into other dates (day and month swapped); None when none parses any.

    A format of None means "no format": polars reads ISO 8601 by itself.
    """
    sample = [v for v in dict.fromkeys(values) if v][:SAMPLE]
    if not sample:
        return None, []
    series = pl.Series("v", sample, dtype=pl.String)
    best: FormatGuess | None = None
    best_values: pl.Series | None = None
    ties: list[str] = []
    for fmt in _candidates(sample, kind):
        got = _parse(series, ColumnSpec(type="date" if kind == "date" else "datetime", format=fmt))
        n = 0 if got is None else int(got.is_not_null().sum())
        if got is None or n == 0:
            continue
        if best is None or n > best.parsed:
            best, best_values, ties = FormatGuess(fmt, n, len(sample)), got, []
        elif (
            n == best.parsed
            and fmt is not None
            and best_values is not None
            and not got.equals(best_values)
        ):
            ties.append(fmt)
    return best, ties


def _number_shape(values: Sequence[str], spec: ColumnSpec) -> str | None:
    sample = [v.strip() for v in values if v and v.strip()]
    if not sample:
        return None
    for label, pattern in NUMBER_SHAPES:
        if spec.currency and "currency" in label:
            continue  # declared: these values fail for another reason
        hits = sum(1 for v in sample if pattern.match(v))
        if hits * 2 >= len(sample):
            return f"{hits} of {len(sample)} sampled values use {label}"
    return None


def type_hint(values: Sequence[str | None], spec: ColumnSpec) -> str:
    """One line on values that did not parse as ``spec``: examples and a likely fix."""
    texts = [v for v in values if v is not None]
    shown = ", ".join(_show(v) for v in examples(texts))
    line = f"values look like {shown}" if shown else "the values are empty"
    sample = list(dict.fromkeys(texts))[:SAMPLE]
    nulls = [v for v in examples(texts, 5) if v.strip().lower() in NULL_WORDS]
    if nulls:
        line += (
            f"; {', '.join(_show(v) for v in nulls)} "
            f"{'looks like a missing value' if len(nulls) == 1 else 'look like missing values'}"
            ": add to source.csv.null_values"
        )
    if spec.type in ("date", "datetime"):
        best, ties = guess_format(sample, spec.type)
        if best is None:
            line += f"; no common {spec.type} format parses them"
        elif best.format is None:
            line += (
                f"; without a format (ISO 8601) {best.parsed} of {best.sampled} sampled values "
                "parse: remove 'format'"
            )
        else:
            line += (
                f"; format {best.format!r} parses {best.parsed} of {best.sampled} sampled values"
            )
            if ties:
                line += f" (so does {ties[0]!r}: check which one the source means)"
    elif spec.type in ("int", "float"):
        shape = _number_shape(sample, spec)
        if shape:
            line += f"; {shape}"
    return line
