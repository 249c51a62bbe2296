"""Numbers for people, and the plots as the templates write them: data is text, never markup."""

from __future__ import annotations

import numpy as np

from sluice.report import plots
from sluice.report.html import esc, svg
from sluice.report.markup import fmt_num, fmt_pct

NASTY = "<script>alert(1)</script>\"'&"


def test_esc_escapes_text_and_quotes() -> None:
    assert esc(NASTY) == "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&#39;&amp;"
    assert esc(None) == ""
    assert esc(3) == "3"


def test_numbers_for_people() -> None:
    assert fmt_num(1234567) == "1,234,567"
    assert fmt_num(2.0) == "2"
    assert fmt_num(0.000123) == "1.230e-04"
    assert fmt_num(None) == "–"
    assert fmt_num(float("nan")) == "NaN"
    assert fmt_num(float("-inf")) == "−∞"
    assert fmt_pct(0.1234) == "12.34%"
    assert fmt_pct(0.0) == "0.00%"
    assert fmt_pct(1e-7) == "1.0e-05%"


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
    for plot in (bars, hist, trend):
        text = svg(plot)
        assert text.startswith('<svg class="plot" xmlns="http://www.w3.org/2000/svg"')
        assert "<script>" not in text
        assert 'aria-label="&lt;script&gt;alert(1)&lt;/script&gt;&#34;&#39;&amp;"' in text
        assert text.count("&lt;script&gt;") >= 2


def test_histogram_draws_a_bar_per_nonempty_bin_and_the_threshold() -> None:
    plot = plots.histogram(
        [plots.Series("s", [5, 0, 2, 1], plots.CLEAN)],
        np.array([0.0, 1.0, 2.0, 3.0, 4.0]),
        label="scores",
        shares=False,
        log_y=True,
        marker=3.5,
        marker_label="threshold",
    )
    assert [s.tag for s in plot.shapes].count("rect") == 3
    text = svg(plot)
    assert text.count("<rect") == 3
    assert 'stroke-dasharray="4 3"' in text
    assert "count (log scale)" in text
    assert "<title>threshold 3.5</title>" in text


def test_trend_marks_the_alarm_and_the_band() -> None:
    plot = plots.trend(["a", "b", "c"], [1.0, None, 9.0], label="t", band=(0.0, 2.0), alarm=True)
    text = svg(plot)
    assert text.count("<circle") == 2
    assert f'fill="{plots.ALARM}"' in text
    assert 'class="band"' in text
    assert "<title>c: 9</title>" in text


def test_svg_numbers_keep_one_decimal() -> None:
    plot = plots.bars(["a", "b"], [1.0, 3.0], label="b", width=200)
    rects = [s for s in plot.shapes if s.tag == "rect"]
    assert [r.attrs["width"] for r in rects] == ["6.7", "20.0"]  # plot width 200 - 120 - 60
    assert 'width="20.0"' in svg(plot)
