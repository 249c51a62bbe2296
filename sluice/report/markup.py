"""Numbers for people, as the report, the summary artifact and ``sluice report`` write them.

The report's markup and its escaping live in Jinja2 templates (``sluice/report/templates``);
these are the formatting functions they share with plain-text outputs.
"""

from __future__ import annotations

import math


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
