"""Text into the declared types: one parser per column type, ISO-8601 with offsets to UTC."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import polars as pl

from sluice.config import ColumnSpec
from sluice.core.errors import InputError
from sluice.core.text import UNITS_PER_DAY, column_text

TRUE_TEXT = ("true", "t", "yes", "y", "1")


FALSE_TEXT = ("false", "f", "no", "n", "0")


def _text(expr: pl.Expr) -> pl.Expr:
    return expr.str.strip_chars()


Parser = Callable[[pl.Expr], pl.Expr]


def column_parser(spec: ColumnSpec) -> Parser:
    """How text becomes the declared type; a value that does not parse becomes null."""
    t = spec.type
    if t == "string":
        return lambda e: e
    number = _number_text(spec)
    if t == "int":
        return lambda e: number(e).cast(pl.Int64, strict=False)
    if t == "float" and spec.decimal == ",":
        return lambda e: (
            pl.when(number(e).str.contains(".", literal=True))
            .then(None)
            .otherwise(number(e).str.replace(",", ".", literal=True))
            .cast(pl.Float64, strict=False)
        )
    if t == "float":
        return lambda e: number(e).cast(pl.Float64, strict=False)
    if t == "bool":
        return lambda e: (
            pl.when(_text(e).str.to_lowercase().is_in(TRUE_TEXT))
            .then(True)
            .when(_text(e).str.to_lowercase().is_in(FALSE_TEXT))
            .then(False)
            .otherwise(None)
        )
    if t == "date":
        fmt = spec.format or "%Y-%m-%d"
        return lambda e: _within_years(e.str.strptime(pl.Date, fmt, strict=False), pl.Date())
    fmt_dt = spec.format
    us = pl.Datetime("us")
    if fmt_dt is None:
        return lambda e: _within_years(_iso_datetime(e), us)
    if _OFFSET_DIRECTIVE.search(fmt_dt):
        return lambda e: _within_years(
            e.str.to_datetime(
                fmt_dt, time_unit="us", time_zone="UTC", strict=False
            ).dt.replace_time_zone(None),
            us,
        )
    return lambda e: _within_years(e.str.strptime(us, fmt_dt, strict=False), us)


def _plain_number(spec: ColumnSpec) -> bool:
    """Whether a number column's text is read as it is (no currency symbol, no digit groups,
    '.' as the decimal mark)."""
    return spec.decimal == "." and spec.thousands is None and spec.currency is None


def grouped_number(sep: str, mark: str) -> str:
    """The regex of a number whose digits before the decimal mark (``mark``, a regex) are
    grouped by threes with ``sep``, after a first group of one to three digits, the first not 0
    (``0,123`` is no grouped number)."""
    return rf"^[+-]?[1-9][0-9]{{0,2}}(?:{re.escape(sep)}[0-9]{{3}})+(?:{mark}[0-9]*)?$"


def currency_patterns(symbol: str) -> tuple[str, str]:
    """The regexes of a currency symbol before a number (after its sign, kept as group 1) and
    after it."""
    s = re.escape(symbol)
    return rf"^([+-]?)\s*{s}\s*", rf"\s*{s}$"


def _number_text(spec: ColumnSpec) -> Parser:
    """A number column's text, stripped, without its currency symbol and digit-group
    separators (``schema.<column>.currency``, ``.thousands``); null when a value holding the
    separator is not a :func:`grouped_number`, or holds the symbol twice (and so keeps one)."""
    symbol = currency_patterns(spec.currency) if spec.currency else None
    sep = spec.thousands

    def text(e: pl.Expr) -> pl.Expr:
        t = _text(e)
        if symbol is not None:
            before, after = symbol
            t = (
                pl.when(t.str.contains(before))
                .then(t.str.replace(before, "${1}"))
                .otherwise(t.str.replace(after, ""))
            )
        if sep is not None:
            t = (
                pl.when(~t.str.contains(sep, literal=True))
                .then(t)
                .when(t.str.contains(grouped_number(sep, re.escape(spec.decimal))))
                .then(t.str.replace_all(sep, "", literal=True))
                .otherwise(None)
            )
        return t

    return text


_OFFSET_DIRECTIVE = re.compile(r"%[-_0^#]?[0-9]*:{0,3}z")


_ISO_OFFSET = r"(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$"


_ISO_SPACED_OFFSET = r"^(\S+ \S+) ([Zz]|[+-]\d)"


_ISO_NO_SECONDS = r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2})($|[Zz+-])"


def _iso_datetime(e: pl.Expr) -> pl.Expr:
    """ISO-8601 text, parsed value by value: a date alone (midnight), ``T`` or a space before
    the time, seconds and fractional seconds optional (``.`` or ``,``; kept to the
    microsecond), and an offset (``Z``, ``+01``, ``-0500``, ``-05:00``) converted to UTC. The
    value is naive: UTC when the text gave an offset, else the wall time as written.

    polars' own reading without a format takes its pattern from a column's first value, which
    would make one value's reading depend on another's; here every value is read alone.
    """
    return e.map_batches(_iso_series, return_dtype=pl.Datetime("us"))


def _iso_series(s: pl.Series) -> pl.Series:
    """:func:`_iso_datetime` on a series.

    Values are routed by their shape, so that no parse runs on values it cannot take (polars
    is several times slower on a value it refuses): ``YYYY-MM-DD HH:MM:SS`` and a date alone
    by one fixed format each; every other value, and any those refused, brought to
    ``YYYY-MM-DD HH:MM:SS[.f][offset]`` and parsed with or without an offset.
    """
    text = s.str.strip_chars()
    text = _where(
        text,
        text.str.slice(10, 1).is_in(["T", "t"]),
        lambda t: (
            pl.select(pl.concat_str(t.str.slice(0, 10), pl.lit(" "), t.str.slice(11)))
            .to_series()
            .alias(t.name)
        ),
    )
    size = text.str.len_bytes()
    out = pl.repeat(None, len(s), dtype=pl.Datetime("us"), eager=True).alias(s.name)
    out = _where(out, size == 19, lambda _: _strptime(text.filter(size == 19), "%Y-%m-%d %H:%M:%S"))
    out = _where(out, size == 10, lambda _: _strptime(text.filter(size == 10), "%Y-%m-%d"))
    left = out.is_null() & text.is_not_null()
    if not left.any():
        return out
    t = text.filter(left)
    t = _where(t, t.str.contains(",", literal=True), lambda x: x.str.replace_all(",", "."))
    t = _where(
        t,
        t.str.slice(11).str.contains(" ", literal=True),
        lambda x: x.str.replace(_ISO_SPACED_OFFSET, "${1}${2}"),
    )
    t = _where(
        t, t.str.slice(16, 1) != ":", lambda x: x.str.replace(_ISO_NO_SECONDS, "${1}:00${2}")
    )
    aware = t.str.contains(_ISO_OFFSET)
    got = pl.repeat(None, len(t), dtype=pl.Datetime("us"), eager=True).alias(s.name)
    got = _where(got, ~aware, lambda _: _strptime(t.filter(~aware), "%Y-%m-%d %H:%M:%S%.f"))
    got = _where(got, aware, lambda _: _strptime(t.filter(aware), "%Y-%m-%d %H:%M:%S%.f%#z"))
    return out.scatter(left.arg_true(), got)


def _where(
    values: pl.Series, mask: pl.Series, change: Callable[[pl.Series], pl.Series]
) -> pl.Series:
    """``values`` with the entries where ``mask`` holds replaced by ``change`` of them."""
    mask = mask.fill_null(False)
    if not mask.any():
        return values
    return values.scatter(mask.arg_true(), change(values.filter(mask)))


def _strptime(text: pl.Series, fmt: str) -> pl.Series:
    """Text in one fixed format as naive datetimes; an offset (``%#z``) converted to UTC."""
    if "%#z" not in fmt:
        return text.str.strptime(pl.Datetime("us"), fmt, strict=False)
    aware = text.str.to_datetime(fmt, time_unit="us", time_zone="UTC", strict=False)
    return aware.dt.replace_time_zone(None)


_TARGET: dict[str, pl.DataType] = {
    "string": pl.String(),
    "int": pl.Int64(),
    "float": pl.Float64(),
    "bool": pl.Boolean(),
    "date": pl.Date(),
    "datetime": pl.Datetime("us"),
}


# The dates and datetimes a typed frame holds: years 1 to 9999, those of Python's datetime (and
# so of GX, the report and every reader in Python). polars reads "0000-01-01" under "%Y-%m-%d",
# and a Parquet timestamp can be any 64-bit count; a value beyond those years is a type failure.
FIRST_DAY, LAST_DAY = -719_162, 2_932_896  # 0001-01-01 and 9999-12-31, in days from 1970-01-01
YEARS = "from 0001-01-01 to 9999-12-31"


def in_years(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Whether each value of ``expr``, a Date or Datetime of ``dtype``, lies in years 1 to 9999
    (read from its count of days or units, which polars never renders: a value beyond its own
    calendar would panic)."""
    if dtype == pl.Date:
        lo, hi = FIRST_DAY, LAST_DAY
    else:
        per = UNITS_PER_DAY[getattr(dtype, "time_unit", None) or "us"]
        lo, hi = max(FIRST_DAY * per, -(2**63)), min((LAST_DAY + 1) * per - 1, 2**63 - 1)
    return expr.to_physical().is_between(lo, hi)


def _within_years(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    return pl.when(in_years(expr, dtype)).then(expr)


def outside_years(values: pl.Series) -> int:
    """How many values of a Date or Datetime column lie beyond years 1 to 9999 (0 for a column
    of any other type)."""
    dtype = values.dtype
    if not (dtype == pl.Date or isinstance(dtype, pl.Datetime)):
        return 0
    inside = values.to_frame().select(in_years(pl.nth(0), dtype).sum()).item()
    return values.len() - values.null_count() - int(inside)


def typed_natively(values: pl.Series, spec: ColumnSpec) -> pl.Series:
    """A column read in a type of its own (Parquet) as ingest types it for ``spec``, a value
    that would be a type failure null (a UInt64 beyond Int64, an infinite float, a date beyond
    years 1 to 9999; a datetime in UTC without a time zone). A text column, or one declared
    ``string``, as it is."""
    dtype = values.dtype
    if dtype == pl.String or spec.type == "string" or not _native(dtype, spec):
        return values
    name = values.name
    return values.to_frame("v").select(_typed("v", dtype, spec)).to_series().alias(name)


def polars_dtype(spec: ColumnSpec) -> pl.DataType:
    """The polars type a declared column has in the typed frame."""
    return _TARGET[spec.type]


def _native(dtype: pl.DataType, spec: ColumnSpec | None) -> bool:
    """Whether a column's own type converts to its declared type without going through text."""
    if spec is None or dtype == pl.String:
        return True
    if dtype.is_nested() or dtype in (pl.Binary, pl.Object):
        return False
    if spec.type == "string" and (dtype == pl.Date or isinstance(dtype, pl.Datetime)):
        return False  # as its text (sluice.core.text), which holds any date polars reads
    target = _TARGET[spec.type]
    return (
        dtype == target
        or spec.type == "string"
        or (spec.type in ("int", "float") and dtype.is_numeric())
        or (spec.type == "datetime" and dtype in (pl.Date, pl.Datetime))
    )


def _typed(name: str, dtype: pl.DataType, spec: ColumnSpec, *, first: bool = False) -> pl.Expr:
    """The typed value of a column; a cell that does not parse becomes null.

    ``first``: text declared a number is cast as it is, without first stripping blanks (a
    blank is rare, the strip a pass over every value): the cells this leaves null are parsed
    again by the column's parser (:func:`_again`)."""
    col = pl.col(name)
    target = _TARGET[spec.type]
    if spec.type in ("date", "datetime") and (dtype == pl.Date or isinstance(dtype, pl.Datetime)):
        # out of years 1 to 9999 before any conversion (one beyond polars' calendar would panic)
        col = _within_years(col, dtype)
    if dtype == pl.String and first and spec.type in ("int", "float") and _plain_number(spec):
        value = col.cast(target, strict=False)
    elif dtype == pl.String:
        value = column_parser(spec)(col)
    elif dtype == target:
        value = col
    elif spec.type == "string":
        value = col.cast(pl.String)
    elif spec.type in ("int", "float") and dtype.is_numeric():
        value = col.cast(target, strict=False)
        if spec.type == "int" and (dtype.is_float() or dtype.is_decimal()):
            value = pl.when(col == col.round(0)).then(value).otherwise(None)
    elif spec.type == "datetime" and isinstance(dtype, pl.Datetime) and dtype.time_zone:
        value = col.dt.convert_time_zone("UTC").dt.replace_time_zone(None).cast(target)
    elif spec.type == "datetime" and dtype in (pl.Date, pl.Datetime):
        value = col.cast(target)
    else:
        value = column_parser(spec)(col.cast(pl.String, strict=False))
    if spec.type == "float":
        value = pl.when(value.is_finite()).then(value).otherwise(None)
    elif spec.type in ("date", "datetime"):  # a time zone's offset can cross year 1 or 9999
        value = _within_years(value, target)
    return value.alias(name)


def _parse(
    read: pl.DataFrame, declared: Mapping[str, ColumnSpec], path: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Typed columns, and masks of the declared cells that are not null but did not parse.

    Columns whose own type does not convert to the declared one go through their text (bytes
    only when they are UTF-8). Should polars still refuse a conversion, every column is parsed
    from its text instead.
    """

    def as_text(c: str) -> pl.Expr | pl.Series:
        if read[c].dtype == pl.Binary:
            return pl.col(c).map_elements(_utf8_or_none, return_dtype=pl.String)
        return column_text(read[c])

    def native() -> pl.DataFrame:
        return read.with_columns(
            as_text(c) for c in read.columns if not _native(read[c].dtype, declared.get(c))
        )

    def everything() -> pl.DataFrame:
        return read.with_columns(as_text(c) for c in read.columns if read[c].dtype != pl.String)

    for attempt in (native, everything):
        frame = attempt()
        try:
            # lazily, so that a value both tested and kept (a parse checked against years 1 to
            # 9999, a float against infinity) is computed once: polars shares repeated
            # expressions in a lazy query only (a 1M-row CSV's typing, 0.61 -> 0.39 CPU s)
            parsed = (
                frame.lazy()
                .select(
                    _typed(c, frame[c].dtype, declared[c], first=True)
                    if c in declared
                    else pl.col(c)
                    for c in frame.columns
                )
                .collect()
            )
        except pl.exceptions.PolarsError:
            continue
        parsed = _again(frame, parsed, declared)
        masks = pl.DataFrame(
            [
                (read[c].is_not_null() & parsed[c].is_null()).alias(c)
                for c in read.columns
                if c in declared
            ]
        )
        return parsed, masks
    raise InputError(f"{path}: cannot convert the columns to their declared types")


def _again(
    frame: pl.DataFrame, parsed: pl.DataFrame, declared: Mapping[str, ColumnSpec]
) -> pl.DataFrame:
    """``parsed`` with the text cells its first reading left null parsed again by their
    column's parser (see :func:`_typed`)."""
    have = set(frame.columns)
    for c, spec in declared.items():
        if (
            c not in have
            or frame[c].dtype != pl.String
            or spec.type not in ("int", "float")
            or not _plain_number(spec)  # parsed by its parser at first (see _typed)
        ):
            continue
        missed = frame[c].is_not_null() & parsed[c].is_null()
        if not missed.any():
            continue
        at = missed.arg_true()
        again = frame.select(pl.col(c).gather(at)).select(_typed(c, pl.String(), spec)).to_series()
        parsed = parsed.with_columns(parsed[c].scatter(at, again))
    return parsed


def _utf8_or_none(value: bytes) -> str | None:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None
