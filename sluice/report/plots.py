"""Plots as inline SVG: no script, no network, readable when printed.

Each function takes numbers already measured and returns a :class:`Plot`: the geometry of one
``<svg class="plot">`` element as shapes with their attributes, computed here; the template macro
``svg`` in ``templates/macros.html.j2`` writes it, escaping every label and attribute value.
Hovering a bar or point shows its value (an SVG ``<title>``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from sluice.report.markup import fmt_num

CLEAN = "#2b6cb0"
QUARANTINE = "#dd6b20"
ALARM = "#c53030"
BAND = "#e2e8f0"
INK = "#2d3748"
GRID = "#cbd5e0"
FONT = 11


@dataclass(frozen=True)
class Series:
    """Counts per bin (or per category) of one group, drawn in one colour."""

    name: str
    counts: Sequence[float]
    color: str


Tag = Literal["line", "rect", "text", "polyline", "circle"]
Attrs = dict[str, str | int | float]


@dataclass(frozen=True)
class Shape:
    """One SVG element: its tag, attributes in the order written, a hover title and text."""

    tag: Tag
    attrs: Attrs
    title: str | None = None
    text: str = ""


@dataclass(frozen=True)
class Plot:
    """One inline SVG plot: its size, its accessible label and its shapes, drawn in order."""

    width: int
    height: int
    label: str
    shapes: list[Shape] = field(default_factory=list)


def el(tag: Tag, attrs: Attrs, title: str | None = None) -> Shape:
    """A shape with an optional hover title."""
    return Shape(tag, attrs, title)


def _svg(width: int, height: int, label: str, *children: Shape | list[Shape]) -> Plot:
    shapes: list[Shape] = []
    for c in children:
        shapes.extend(c if isinstance(c, list) else [c])
    return Plot(width, height, label, shapes)


def _text(x: float, y: float, text: str, anchor: str = "start", **extra: str) -> Shape:
    attrs: Attrs = {
        "x": f"{x:.1f}",
        "y": f"{y:.1f}",
        "font-size": FONT,
        "fill": INK,
        "text-anchor": anchor,
    }
    attrs.update(extra)
    return Shape("text", attrs, None, text)


def _legend(series: Sequence[Series], x: float, y: float) -> list[Shape]:
    parts = []
    for s in series:
        parts.append(el("rect", {"x": x, "y": y - 9, "width": 10, "height": 10, "fill": s.color}))
        parts.append(_text(x + 14, y, s.name))
        x += 24 + 7 * len(s.name)
    return parts


def histogram(
    series: Sequence[Series],
    edges: npt.NDArray[np.float64],
    *,
    label: str,
    x_format: Callable[[float], str] = fmt_num,
    shares: bool = True,
    log_y: bool = False,
    marker: float | None = None,
    marker_label: str = "",
    open_ends: bool = False,
    width: int = 360,
    height: int = 170,
) -> Plot:
    """Bars per bin for the first series, outlined steps for the others.

    With ``shares`` every series is scaled to its own total, so groups of very different sizes
    compare by shape. ``open_ends`` marks the first and last bins as holding everything beyond.
    """
    left, right, top, bottom = 44, 10, 18, 30
    pw, ph = width - left - right, height - top - bottom
    nb = len(edges) - 1
    values = []
    for s in series:
        c = np.asarray(s.counts, dtype=np.float64)
        total = c.sum()
        values.append(c / total if shares and total > 0 else c)
    ymax = max((float(v.max()) for v in values if v.size), default=0.0) or 1.0

    def ypos(v: float) -> float:
        if log_y:
            return top + ph * (1 - math.log10(1 + v) / math.log10(1 + ymax))
        return top + ph * (1 - v / ymax)

    bw = pw / max(nb, 1)
    parts: list[Shape] = [
        el("line", {"x1": left, "y1": top + ph, "x2": left + pw, "y2": top + ph, "stroke": GRID}),
        _text(left - 4, top + 8, f"{ymax:.0%}" if shares else fmt_num(ymax), "end"),
        _text(left - 4, top + ph, "0", "end"),
    ]
    for si, (s, v) in enumerate(zip(series, values, strict=True)):
        if si == 0:
            for i in range(nb):
                if v[i] <= 0:
                    continue
                y = ypos(float(v[i]))
                tip = f"{s.name}: {x_format(edges[i])} to {x_format(edges[i + 1])}: " + (
                    f"{v[i]:.2%}" if shares else fmt_num(float(v[i]))
                )
                parts.append(
                    el(
                        "rect",
                        {
                            "x": f"{left + i * bw + 0.5:.1f}",
                            "y": f"{y:.1f}",
                            "width": f"{max(bw - 1, 0.5):.1f}",
                            "height": f"{top + ph - y:.1f}",
                            "fill": s.color,
                            "fill-opacity": "0.75",
                        },
                        tip,
                    ),
                )
        else:
            pts = []
            for i in range(nb):
                y = ypos(float(v[i]))
                pts.append(f"{left + i * bw:.1f},{y:.1f} {left + (i + 1) * bw:.1f},{y:.1f}")
            parts.append(
                el(
                    "polyline",
                    {"points": " ".join(pts), "fill": "none", "stroke": s.color, "stroke-width": 2},
                    s.name,
                ),
            )
    lo_label = ("≤ " if open_ends else "") + x_format(float(edges[0]))
    hi_label = ("≥ " if open_ends else "") + x_format(float(edges[-1]))
    parts.append(_text(left, height - 14, lo_label))
    parts.append(_text(left + pw, height - 14, hi_label, "end"))
    if marker is not None and nb:
        span = float(edges[-1] - edges[0]) or 1.0
        mx = left + pw * min(max((marker - float(edges[0])) / span, 0.0), 1.0)
        parts.append(
            el(
                "line",
                {
                    "x1": f"{mx:.1f}",
                    "y1": top - 4,
                    "x2": f"{mx:.1f}",
                    "y2": top + ph,
                    "stroke": ALARM,
                    "stroke-width": 2,
                    "stroke-dasharray": "4 3",
                },
                f"{marker_label} {x_format(marker)}",
            )
        )
        anchor = "end" if mx > left + pw * 0.7 else "start"
        parts.append(
            _text(mx + (-4 if anchor == "end" else 4), top + 6, marker_label, anchor, fill=ALARM)
        )
    if len(series) > 1:
        parts.extend(_legend(series, left, height - 2))
    elif log_y:
        parts.append(_text(left, height - 2, "count (log scale)"))
    return _svg(width, height, label, *parts)


def category_bars(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    label: str,
    width: int = 360,
) -> Plot:
    """Horizontal bars: the share of each category in each series (each scaled to its total)."""
    row = 8 * len(series) + 6
    left, top = 132, 6
    height = top + row * len(labels) + 22
    pw = width - left - 50
    shares = []
    for s in series:
        c = np.asarray(s.counts, dtype=np.float64)
        shares.append(c / c.sum() if c.sum() > 0 else c)
    smax = max((float(v.max()) for v in shares if v.size), default=0.0) or 1.0
    parts: list[Shape] = []
    for i, name in enumerate(labels):
        y = top + i * row
        short = name if len(name) <= 16 else name[:15] + "…"
        parts.append(_text(left - 6, y + row / 2 + 3, short, "end"))
        for j, (s, v) in enumerate(zip(series, shares, strict=True)):
            w = pw * float(v[i]) / smax
            parts.append(
                el(
                    "rect",
                    {
                        "x": left,
                        "y": f"{y + j * 8:.1f}",
                        "width": f"{max(w, 0.5 if v[i] > 0 else 0):.1f}",
                        "height": 7,
                        "fill": s.color,
                    },
                    f"{s.name}: {name}: {float(v[i]):.2%}",
                )
            )
        parts.append(_text(left + pw + 4, y + 10, f"{float(shares[0][i]):.1%}"))
    parts.extend(_legend(series, left, height - 4))
    return _svg(width, height, label, *parts)


def bars(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    label: str,
    value_format: Callable[[float], str] = fmt_num,
    color: str = QUARANTINE,
    width: int = 360,
) -> Plot:
    """One horizontal bar per label."""
    row, left, top = 18, 120, 4
    height = top + row * len(labels) + 4
    pw = width - left - 60
    vmax = max((abs(v) for v in values), default=0.0) or 1.0
    parts: list[Shape] = []
    for i, (name, v) in enumerate(zip(labels, values, strict=True)):
        y = top + i * row
        parts.append(_text(left - 6, y + 12, name if len(name) <= 18 else name[:17] + "…", "end"))
        parts.append(
            el(
                "rect",
                {
                    "x": left,
                    "y": y + 3,
                    "width": f"{max(pw * abs(v) / vmax, 0.5):.1f}",
                    "height": 12,
                    "fill": color,
                },
                f"{name}: {value_format(v)}",
            )
        )
        parts.append(_text(left + pw * abs(v) / vmax + 4, y + 12, value_format(v)))
    return _svg(width, height, label, *parts)


def trend(
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    label: str,
    band: tuple[float, float] | None = None,
    reference: Sequence[int] = (),
    alarm: bool = False,
    value_format: Callable[[float], str] = fmt_num,
    width: int = 300,
    height: int = 110,
) -> Plot:
    """Values over runs, oldest first; the last is this run, red when it raised an alarm.

    ``band`` is the range this run's value was expected in, shaded at the last point;
    ``reference`` are the indices of the runs it was judged against, drawn as rings.
    """
    left, right, top, bottom = 50, 14, 10, 22
    pw, ph = width - left - right, height - top - bottom
    known = [v for v in values if v is not None and math.isfinite(v)]
    lo = min([*known, *(band or ())], default=0.0)
    hi = max([*known, *(band or ())], default=1.0)
    if hi == lo:
        lo, hi = lo - (abs(lo) * 0.1 or 1.0), hi + (abs(hi) * 0.1 or 1.0)
    n = len(values)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (pw * i / (n - 1) if n > 1 else pw / 2)
        return x, top + ph * (1 - (v - lo) / (hi - lo))

    parts: list[Shape] = [
        el("line", {"x1": left, "y1": top + ph, "x2": left + pw, "y2": top + ph, "stroke": GRID})
    ]
    if band is not None:
        x_last = xy(n - 1, lo)[0]
        y1, y0 = xy(0, band[1])[1], xy(0, band[0])[1]
        tip = f"expected {value_format(band[0])} to {value_format(band[1])}"
        parts.append(
            el(
                "rect",
                {
                    "class": "band",
                    "x": f"{x_last - 8:.1f}",
                    "y": f"{y1:.1f}",
                    "width": 16,
                    "height": f"{max(y0 - y1, 1):.1f}",
                    "fill": BAND,
                    "stroke": GRID,
                },
                tip,
            ),
        )
    parts.append(_text(left - 4, top + 8, value_format(hi), "end"))
    parts.append(_text(left - 4, top + ph, value_format(lo), "end"))
    pts = [xy(i, v) for i, v in enumerate(values) if v is not None and math.isfinite(v)]
    if len(pts) > 1:
        parts.append(
            el(
                "polyline",
                {
                    "points": " ".join(f"{x:.1f},{y:.1f}" for x, y in pts),
                    "fill": "none",
                    "stroke": GRID,
                    "stroke-width": 1.5,
                },
            )
        )
    refs = set(reference)
    for i, v in enumerate(values):
        if v is None or not math.isfinite(v):
            continue
        x, y = xy(i, v)
        if i == n - 1:
            attrs: Attrs = {"r": 4.5, "fill": ALARM if alarm else INK}
        elif i in refs:
            attrs = {"r": 3.5, "fill": "#fff", "stroke": CLEAN, "stroke-width": 2}
        else:
            attrs = {"r": 2, "fill": CLEAN}
        parts.append(
            el(
                "circle",
                {"cx": f"{x:.1f}", "cy": f"{y:.1f}", **attrs},
                f"{labels[i]}: {value_format(v)}",
            )
        )
    if labels:
        parts.append(_text(left, height - 6, labels[0]))
        parts.append(_text(left + pw, height - 6, labels[-1], "end"))
    return _svg(width, height, label, *parts)
