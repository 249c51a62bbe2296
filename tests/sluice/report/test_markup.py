"""Escaping in the HTML builder and the plots: data is text, never markup."""

from __future__ import annotations

import numpy as np

from sluice.report import plots
from sluice.report.markup import Safe, el, esc, fmt_num, fmt_pct, join

NASTY = "<script>alert(1)</script>\"'&"


def test_text_and_attributes_are_escaped() -> None:
    got = el("td", {"title": NASTY, "class_": "x"}, NASTY)
    assert got == (
        '<td title="&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;&amp;" class="x">'
        "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;&amp;</td>"
    )
    assert "<script>" not in join(NASTY, [NASTY, None, 3])


def test_safe_markup_passes_and_nested_lists_flatten() -> None:
    inner = el("b", None, "x")
    assert el("p", None, [inner, ["y", 1.5]], None) == "<p><b>x</b>y1.5</p>"
    assert isinstance(esc("a"), Safe)
    assert el("br") == "<br>"
    assert el("input", {"checked": True, "disabled": False}) == "<input checked>"


def test_numbers_for_people() -> None:
    assert fmt_num(1234567) == "1,234,567"
    assert fmt_num(2.0) == "2"
    assert fmt_num(0.000123) == "1.230e-04"
    assert fmt_num(None) == "–"
    assert fmt_pct(0.1234) == "12.34%"
    assert fmt_pct(0.0) == "0.00%"


def test_plot_labels_from_data_are_escaped() -> None:
    bars = plots.category_bars(
        [NASTY, "ok"],
        [plots.Series(NASTY, [3, 1], plots.CLEAN), plots.Series("q", [1, 1], plots.QUARANTINE)],
        label=NASTY,
    )
    hist = plots.histogram(
        [plots.Series(NASTY, [1, 2, 3], plots.CLEAN)],
        np.array([0.0, 1.0, 2.0, 3.0]),
        label=NASTY,
        marker=1.5,
        marker_label=NASTY,
    )
    trend = plots.trend([NASTY, "b"], [1.0, 2.0], label=NASTY, band=(0.5, 2.5), reference=[0])
    for svg in (bars, hist, trend):
        assert svg.startswith('<svg class="plot"')
        assert "<script>" not in svg
        assert "&lt;script&gt;" in svg


def test_histogram_draws_a_bar_per_nonempty_bin_and_the_threshold() -> None:
    svg = plots.histogram(
        [plots.Series("s", [5, 0, 2, 1], plots.CLEAN)],
        np.array([0.0, 1.0, 2.0, 3.0, 4.0]),
        label="scores",
        shares=False,
        log_y=True,
        marker=3.5,
        marker_label="threshold",
    )
    assert svg.count("<rect") == 3
    assert 'stroke-dasharray="4 3"' in svg
    assert "count (log scale)" in svg


def test_trend_marks_the_alarm_and_the_band() -> None:
    svg = plots.trend(["a", "b", "c"], [1.0, None, 9.0], label="t", band=(0.0, 2.0), alarm=True)
    assert svg.count("<circle") == 2
    assert plots.ALARM in svg
    assert 'class="band"' in svg
