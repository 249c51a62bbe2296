"""A small HTML and SVG builder that escapes every string it is given.

Text and attribute values are escaped unless they are :class:`Safe` (markup built here). Data
from a partition can therefore only reach the page as text: a cell holding ``<script>`` is shown,
never run.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping


class Safe(str):
    """Markup that is already escaped; never build one from data."""

    __slots__ = ()


def esc(value: object) -> Safe:
    """Escape any value as text (quotes included)."""
    if isinstance(value, Safe):
        return value
    return Safe(html.escape("" if value is None else str(value), quote=True))


def _children(children: Iterable[object]) -> Iterable[str]:
    for c in children:
        if c is None:
            continue
        if isinstance(c, str | int | float):
            yield esc(c)
        else:
            yield from _children(c)  # type: ignore[arg-type]


def _attrs(attrs: Mapping[str, object] | None) -> str:
    if not attrs:
        return ""
    parts = []
    for k, v in attrs.items():
        if v is None or v is False:
            continue
        name = k.rstrip("_").replace("_", "-")
        parts.append(f" {name}" if v is True else f' {name}="{esc(v)}"')
    return "".join(parts)


VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "col"})


def el(tag: str, attrs: Mapping[str, object] | None = None, *children: object) -> Safe:
    """One element; ``attrs`` keys ending in ``_`` lose it (``class_``), ``_`` becomes ``-``."""
    if tag in VOID:
        return Safe(f"<{tag}{_attrs(attrs)}>")
    return Safe(f"<{tag}{_attrs(attrs)}>{''.join(_children(children))}</{tag}>")


def join(*children: object) -> Safe:
    """Several children as one piece of markup."""
    return Safe("".join(_children(children)))


def fmt_num(value: float | int | None, digits: int = 4) -> str:
    """A number for people: thousands separators for integers, ``digits`` significant digits."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if value == int(value) and abs(value) < 1e15:
        return f"{int(value):,}"
    text = f"{value:,.{digits}g}" if abs(value) >= 1e-3 else f"{value:.{digits - 1}e}"
    return text


def fmt_pct(value: float | None, digits: int = 2) -> str:
    """A share as a percentage."""
    if value is None or math.isnan(value):
        return "–"
    if value != 0 and abs(value) < 10 ** (-digits - 2):
        return f"{value * 100:.1e}%"
    return f"{value * 100:.{digits}f}%"
