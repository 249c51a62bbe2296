"""One column at a time: its declared name, its null tokens, its type and format, its typed values.

A type is chosen when at least ``1 - max_fail`` of the column's non-null sample values parse as it
with the parser ingest uses (:func:`sluice.ingest.column_parser`), on the learning rows and on the
hold-out rows; the values that do not parse are what the run will quarantine as ``column|type``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

import polars as pl

from sluice.config import ColumnSpec, Thousands, name_problem
from sluice.hints import guess_format
from sluice.ingest import column_parser, currency_patterns, grouped_number, typed_natively

NULL_TOKENS = frozenset(
    {
        "",
        "n/a",
        "na",
        "n.a.",
        "nan",
        "null",
        "none",
        "nil",
        "-",
        "--",
        "?",
        "missing",
        "empty",
        "#n/a",
        "undefined",
        "unknown",
    }
)
BOOL_WORDS = frozenset({"true", "false", "t", "f", "yes", "no", "y", "n"})
_DATE_LIKE = re.compile(r"\d{1,4}[-/.]\d{1,2}|\d{1,2}\s+[A-Za-z]{3}|[A-Za-z]{3}\s+\d{1,2}")
_TIME_CODES = re.compile(r"%[-_0^#]?[0-9]*(?:[HIMSpfzTcXrR]|\.f|:z)")
_LEADING_ZERO = re.compile(r"^[-+]?0\d")
_DECIMAL_COMMA = re.compile(r"^[-+]?\d+,\d+$")
FORMAT_SAMPLE = 500
# digit-group separators sluice reads (schema.<column>.thousands), and the decimal mark each
# leaves: '.' groups only with a decimal comma, ',' only with a decimal point
_GROUP_SEPARATORS: tuple[Thousands, ...] = get_args(Thousands)
# currency symbols a number's text may carry (schema.<column>.currency); longest first
CURRENCY_SYMBOLS = (
    "R$",
    "CHF",
    "$",
    "€",
    "£",
    "¥",
    "₹",
    "₩",
    "₽",
    "₺",
    "₪",
    "₱",
    "₦",
    "฿",
    "₫",
    "₴",
)


def _grouped(sep: str) -> re.Pattern[str]:
    """A number whose digits are grouped by ``sep`` as ingest reads it, either decimal mark."""
    return re.compile(grouped_number(sep, "[.,]"))


def _currency_of(values: list[str]) -> str | None:
    """The currency symbol at least half of ``values`` carry before or after their number."""
    for symbol in CURRENCY_SYMBOLS:
        s = re.escape(symbol)
        carried = re.compile(rf"^[-+]?\s*{s}\s*[-+]?[0-9.,]|[0-9.]\s*{s}$")
        if values and 2 * sum(bool(carried.search(v)) for v in values) >= len(values):
            return symbol
    return None


def _without_symbol(value: str, symbol: str | None) -> str:
    """``value`` without its currency symbol, taken as ingest takes it."""
    if symbol is None:
        return value
    before, after = currency_patterns(symbol)
    return re.sub(before, r"\1", value) if re.search(before, value) else re.sub(after, "", value)


def _number_candidates(values: list[str]) -> list[ColumnSpec]:
    """int and float readings of number text: as it is, with a decimal comma, with digit groups
    (and a currency symbol, when at least half the values carry one), most likely first.

    A value such as ``1,234`` reads as a decimal comma (1.234) or as digit groups (1234). When
    some value holds a comma that cannot be a group (``3,25``, ``0,5``, ``1234,5``) the decimal
    comma comes first; when every comma could be a group, the groups do (a decimal comma
    followed by exactly three digits in every value, none below 1, is the rarer reading)."""
    symbol = _currency_of(values)
    bare = [_without_symbol(v, symbol) for v in values]
    plain = [ColumnSpec(type="int", currency=symbol), ColumnSpec(type="float", currency=symbol)]
    comma = (
        [ColumnSpec(type="float", decimal=",", currency=symbol)]
        if any(_DECIMAL_COMMA.match(v) for v in bare)
        else []
    )
    grouped: list[ColumnSpec] = []
    for sep in _GROUP_SEPARATORS:
        shaped = [v for v in bare if sep in v and _grouped(sep).match(v)]
        if not shaped:
            continue
        after = sep == "." or any(v.rpartition(sep)[2].count(",") for v in shaped)
        decimal: Literal[".", ","] = "," if after else "."
        if decimal == sep:
            continue
        grouped.append(ColumnSpec(type="int", thousands=sep, currency=symbol))
        grouped.append(ColumnSpec(type="float", thousands=sep, decimal=decimal, currency=symbol))
    commas = _grouped(",")
    only_groups = not any(_DECIMAL_COMMA.match(v) and not commas.match(v) for v in bare)
    if only_groups:
        return plain + grouped + comma
    return plain + comma + grouped


@dataclass(frozen=True)
class Column:
    """What the profiler inferred for one source column."""

    source: str
    name: str
    spec: ColumnSpec
    parsed_share: float
    why: str
    opaque: bool = False

    @property
    def type(self) -> str:
        """The declared type."""
        return self.spec.type


def declared_name(source: str, taken: set[str], position: int) -> str:
    """A name the spec accepts for a source column: stripped; a reserved (``_``) name, one polars
    cannot carry (:func:`~sluice.config.name_problem`) or one already taken becomes
    ``column_<position>`` (the source name is then an alias)."""
    name = source.strip()
    if not name or name.startswith("_") or name_problem(name) or name in taken:
        name = f"column_{position + 1}"
    while name in taken:
        name += "_"
    return name


def null_tokens(values: pl.Series) -> list[str]:
    """The spellings in ``values`` of words meaning "no value" (``N/A``, ``empty``, ``-``, ...)."""
    distinct = values.drop_nulls().unique().to_list()
    return sorted(v for v in distinct if v.strip().lower() in NULL_TOKENS)


def _share_parsed(text: pl.Series, spec: ColumnSpec) -> float:
    present = text.drop_nulls()
    if present.len() == 0:
        return 1.0
    got = pl.DataFrame({"v": present}).select(column_parser(spec)(pl.col("v"))).to_series()
    return float(got.is_not_null().sum()) / present.len()


def _candidates(text: pl.Series) -> list[ColumnSpec]:
    """Types to try, most specific first."""
    present = text.drop_nulls()
    sample = present.unique(maintain_order=True).head(FORMAT_SAMPLE).to_list()
    out: list[ColumnSpec] = []
    lowered = {str(v).strip().lower() for v in sample}
    words = lowered & BOOL_WORDS
    # a few stray values ("maybe", "✓") do not hide a yes/no column: whether it is one is the
    # share of values that parse, checked like any other type's
    if words - {"t", "f", "y", "n"} and (lowered <= BOOL_WORDS or len(words) >= 2):
        out.append(ColumnSpec(type="bool"))
    if not any(_LEADING_ZERO.match(str(v).strip()) for v in sample):
        out += _number_candidates([str(v).strip() for v in sample])
    dated = [str(v) for v in sample if _DATE_LIKE.search(str(v))]
    if dated and len(dated) * 2 >= len(sample):
        for kind in ("date", "datetime"):
            guess, _ties = guess_format(dated, kind)
            if guess is not None:
                fmt = guess.format
                if kind == "date" and fmt is not None and _TIME_CODES.search(fmt):
                    continue
                if kind == "date" and fmt == "%Y-%m-%d":
                    fmt = None
                out.append(ColumnSpec(type=kind, format=fmt))
    return out


def _other_reading(text: pl.Series, spec: ColumnSpec) -> str:
    """A note when the digit groups chosen could also be read as a decimal mark: every value
    holding the separator holds it once, followed by three digits and nothing else."""
    sep = spec.thousands
    if sep not in (",", "."):
        return ""
    held = (
        text.drop_nulls()
        .str.strip_chars()
        .filter(text.drop_nulls().str.contains(sep, literal=True))
    )
    once = rf"^[-+]?\D*[1-9][0-9]{{0,2}}{re.escape(sep)}[0-9]{{3}}\D*$"
    if held.len() == 0 or not held.str.contains(once).all():
        return ""
    return (
        f" (each value holds one {sep!r} followed by three digits: if {sep!r} is the decimal "
        f"mark there, declare decimal: {sep!r} without thousands)"
    )


def infer_column(
    source: str, name: str, train: pl.Series, test: pl.Series, *, max_fail: float
) -> Column:
    """The declaration of one text column learnt on ``train`` and checked on ``test``."""
    tokens = null_tokens(pl.concat([train, test]))
    aliases = [source] if source != name else []
    train_v = _without(train, tokens)
    test_v = _without(test, tokens)
    token_note = f"; null tokens {tokens}" if tokens else ""
    if train_v.drop_nulls().len() == 0:
        spec = ColumnSpec(type="string", null_values=tokens, aliases=aliases)
        return Column(source, name, spec, 1.0, "no values in the sample" + token_note)
    for candidate in _candidates(train_v):
        spec = candidate.model_copy(update={"null_values": tokens, "aliases": aliases})
        learnt = _share_parsed(train_v, spec)
        held = _share_parsed(test_v, spec)
        if learnt >= 1 - max_fail and held >= 1 - max_fail:
            fmt = f" (format {spec.format})" if spec.format else ""
            fmt += " (decimal comma)" if spec.decimal == "," else ""
            fmt += f" (digits grouped by {spec.thousands!r})" if spec.thousands else ""
            fmt += _other_reading(train_v, spec)
            fmt += f" (currency {spec.currency!r})" if spec.currency else ""
            why = (
                f"{spec.type}{fmt}: {learnt:.1%} of learnt and {held:.1%} of hold-out values "
                f"parse{token_note}"
            )
            return Column(source, name, spec, min(learnt, held), why)
    spec = ColumnSpec(type="string", null_values=tokens, aliases=aliases)
    return Column(source, name, spec, 1.0, "string: no other type parses" + token_note)


def infer_typed(source: str, name: str, values: pl.Series, *, max_fail: float) -> Column:
    """The declaration of a column that arrived typed (Parquet): its own type, as ingest reads,
    unless more than ``max_fail`` of its values would not parse as that (then text)."""
    dtype = values.dtype
    aliases = [source] if source != name else []
    kind = "string"
    if dtype.is_integer():
        kind = "int"
    elif dtype.is_float():
        kind = "float"
    elif dtype == pl.Boolean:
        kind = "bool"
    elif dtype == pl.Date:
        kind = "date"
    elif isinstance(dtype, pl.Datetime):
        kind = "datetime"
    spec = ColumnSpec(type=kind, aliases=aliases)  # type: ignore[arg-type]
    why = f"{kind}: the file's own type ({dtype})"
    present = values.len() - values.null_count()
    kept = present - typed_natively(values, spec).null_count() + values.null_count()
    if kind != "string" and present and kept < (1 - max_fail) * present:
        # a UInt64 beyond Int64, infinite floats, dates beyond years 1 to 9999: as declared,
        # that many rows would be type failures on every run
        why = (
            f"string: the file's own type ({dtype}) read as {kind} would fail "
            f"{1 - kept / present:.1%} of its values"
        )
        kind = "string"
        spec = ColumnSpec(type="string", aliases=aliases)
    opaque = kind == "string" and dtype != pl.String
    if opaque:
        why += "; only its completeness is checked (its text is what ingest makes of it)"
    return Column(source, name, spec, 1.0, why, opaque=opaque)


def _without(values: pl.Series, tokens: list[str]) -> pl.Series:
    if not tokens:
        return values
    return values.set(values.is_in(tokens).fill_null(False), None)


def typed(values: pl.Series, column: Column) -> pl.Series:
    """The column's values in its declared type (tokens null, unparsed values null; a typed
    date or datetime as ingest reads it: in UTC, null beyond years 1 to 9999)."""
    if values.dtype != pl.String:
        return typed_natively(values, column.spec).alias(column.name)
    text = _without(values, column.spec.null_values)
    parsed = pl.DataFrame({"v": text}).select(column_parser(column.spec)(pl.col("v"))).to_series()
    return parsed.alias(column.name)
