"""The report builds for any frame a run can leave: hostile column names, every declared type,
all-null, all-NaN and extreme values, and zero rows on either side.

The frames go through the functions the pipeline uses (:func:`sluice.report.build.compose` and
:func:`sluice.report.html.render`), so a failure here is a run that would lose its report.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from sluice.config import Partition
from sluice.core.failures import FAILURE_SCHEMA
from sluice.core.frame import ROW_ID, SOURCE_FILE, SOURCE_ROW
from sluice.decide import RAW
from sluice.report.build import compose
from sluice.report.history import history_dir
from sluice.report.html import render
from sluice.report.metrics import Histogram, RunOutputs, load_outputs
from sluice.write import PARQUET_NAME, write_parquet

DAY = dt.date(2024, 1, 1)
CLASHING = ["n", "count", "value", "column", "rule", "reason", "name", "metric", "len", "stage"]
CLASHING += ["rows", "share", "label", "index", "_i", "top", "first", "mean", "details"]
NAMES = st.one_of(
    st.sampled_from(CLASHING),
    st.sampled_from(
        [
            "*",
            "^a.*$",
            "^$",
            "a|b",
            "a.b",
            "with space",
            "ünï ✓ 名前",
            "",
            "x" * 300,
            "<b>&",
            "1e3",
            "null",
        ]
    ),
    st.text(min_size=0, max_size=12),
)
DTYPES: list[pl.DataType] = [
    pl.Int64(),
    pl.Int8(),
    pl.UInt64(),
    pl.Float64(),
    pl.Float32(),
    pl.Boolean(),
    pl.String(),
    pl.Date(),
    pl.Datetime("us"),
    pl.Datetime("ns"),
    pl.Datetime("us", "UTC"),
    pl.Time(),
    pl.Decimal(38, 4),
    pl.Null(),
]
FLOATS = [0.0, 1.5, -1e308, 1e308, float("nan"), float("inf"), float("-inf"), 5e-324, None]
DATES = [dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(1970, 1, 1), None]
DATETIMES = [dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59), dt.datetime(2024, 1, 1)]
VALUES: dict[str, list[Any]] = {
    "Int64": [0, 1, -(2**63), 2**63 - 1, None],
    "Int8": [0, -128, 127, None],
    "UInt64": [0, 2**64 - 1, None],
    "Float64": FLOATS,
    "Float32": [0.0, 3e38, -3e38, float("nan"), None],
    "Boolean": [True, False, None],
    "String": ["", "a", "x" * 100_000, "<script>", "ünï", "\x00", "1e308", None],
    "Date": DATES,
    "Datetime": [*DATETIMES, None],
    "Time": [dt.time(0, 0), dt.time(23, 59, 59, 999999), None],
    "Decimal": [0, 1, None],
    "Null": [None],
}
RULES = ["type", "expect_column_values_to_be_between", "expect_column_values_to_not_be_null"]


def values_of(dtype: pl.DataType) -> list[Any]:
    """The values a generated column of ``dtype`` draws from."""
    if dtype == pl.Datetime("ns"):
        return [dt.datetime(1677, 9, 22), dt.datetime(2262, 4, 11), None]
    return VALUES[str(dtype.base_type())]


@st.composite
def frames(draw: st.DrawFn) -> tuple[pl.DataFrame, list[str]]:
    """A typed frame of the declared columns, and a quarantine flag per row (as ``"q"``/``""``)."""
    names = draw(st.lists(NAMES, min_size=1, max_size=6, unique=True))
    n = draw(st.integers(0, 12))
    cols = []
    for name in names:
        dtype = draw(st.sampled_from(DTYPES))
        fill = draw(st.sampled_from(["mixed", "null", "nan", "one"]))
        pool = values_of(dtype)
        if fill == "null":
            vals: list[Any] = [None] * n
        elif fill == "nan" and dtype.is_float():
            vals = [float("nan")] * n
        elif fill == "one":
            vals = [pool[0]] * n
        else:
            vals = [draw(st.sampled_from(pool)) for _ in range(n)]
        cols.append(pl.Series("v", vals, dtype=dtype, strict=False).rename(name))
    sides = [draw(st.sampled_from(["q", ""])) for _ in range(n)]
    return pl.DataFrame(cols), sides


def outputs_of(frame: pl.DataFrame, sides: list[str], rule: str, day: dt.date = DAY) -> RunOutputs:
    """The outputs a run would leave for ``frame``: rows marked ``"q"`` quarantined, each
    failing ``rule`` on the first column (the value kept as raw text)."""
    n = frame.height
    ids = pl.Series(ROW_ID, range(1, n + 1), dtype=pl.UInt64)
    mask = pl.Series([s == "q" for s in sides], dtype=pl.Boolean)
    clean = pl.DataFrame([ids, *frame.get_columns()]).filter(mask.not_())
    q = frame.filter(mask)
    raw = pl.DataFrame({c.name: c.cast(pl.String, strict=False) for c in q.get_columns()})
    first = frame.columns[0]
    reason = f"{first}|{rule}"
    quarantine = pl.DataFrame(
        [
            ids.filter(mask),
            pl.Series(SOURCE_FILE, ["data.csv"] * q.height, dtype=pl.String),
            ids.filter(mask).cast(pl.Int64).alias(SOURCE_ROW),
            *q.get_columns(),
            raw.to_struct(RAW),
            pl.Series("_reasons", [[reason]] * q.height, dtype=pl.List(pl.String)),
        ]
    )
    failures = pl.DataFrame(
        {
            ROW_ID: quarantine[ROW_ID],
            "column": [first] * q.height,
            "rule": [rule] * q.height,
            "reason": [reason] * q.height,
            "severity": ["error"] * q.height,
            "value": raw.get_column(first) if q.height else [],
            "details": [None] * q.height,
        },
        schema=FAILURE_SCHEMA,
    )
    manifest: dict[str, Any] = {
        "dataset": "hostile",
        "run_id": "r1",
        "finished_at": "2024-01-02T00:00:00+00:00",
        "partition": {"key": "date", "kind": "day", "value": day.isoformat()},
        "status": "failed" if q.height else "passed",
        "critical": [],
        "verdict": {"status": "passed", "causes": []},
        "counts": {
            "in": n,
            "clean": clean.height,
            "quarantine": q.height,
            "warned_rows": 0,
            "quarantined_by_reason": {reason: q.height} if q.height else {},
        },
        "conservation": {"holds": True},
        "validation": {"engine": "polars", "verdicts": []},
        "detectors": [],
        "outputs": {},
        "versions": {"sluice": "test"},
    }
    part = Partition.parse(day.isoformat(), "day", "date")
    return RunOutputs(manifest, part, clean, quarantine, failures, None)


def build(outputs: RunOutputs, root: Path) -> str:
    """The report's HTML, built as the write stage builds it."""
    report = compose(outputs, reports_root=root / "reports", clean_root=root / "clean")
    return render(report)


def earlier_runs(frame: pl.DataFrame, sides: list[str], rule: str, root: Path) -> None:
    """Commit the same frame as the three same-weekday partitions before :data:`DAY`: clean
    data for the drift tests and metrics for the history."""
    for weeks in (3, 2, 1):
        day = DAY - dt.timedelta(weeks=weeks)
        outputs = outputs_of(frame, sides, rule, day)
        folder = root / "clean" / f"date={day.isoformat()}"
        folder.mkdir(parents=True)
        outputs.clean.write_parquet(folder / PARQUET_NAME)
        report = compose(outputs, reports_root=root / "reports", clean_root=root / "clean")
        history_dir(root / "reports").mkdir(parents=True, exist_ok=True)
        report.metrics.write_parquet(history_dir(root / "reports") / f"date={day}.parquet")


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=frames(), rule=st.sampled_from(RULES), history=st.sampled_from([None, "same", "other"]))
@example(case=(pl.DataFrame({"n": [1, 2, 3]}), ["", "", "q"]), rule="type", history=None)
@example(
    case=(pl.DataFrame({"t": [dt.time(1, 2), dt.time(3, 4), None]}), ["", "q", ""]),
    rule="type",
    history="same",
)
def test_report_builds_for_any_frame(
    case: tuple[pl.DataFrame, list[str]], rule: str, history: str | None, tmp_path: Path
) -> None:
    """Every generated run gets a report, with or without a history and earlier clean data
    (the same frame, or the same columns with the rows reversed and every other one null)."""
    frame, sides = case
    root = tmp_path / uuid.uuid4().hex
    if history == "same":
        earlier_runs(frame, sides, rule, root)
    elif history == "other":
        keep = pl.Series([i % 2 == 0 for i in range(frame.height)], dtype=pl.Boolean)
        other = pl.DataFrame(
            [c.zip_with(keep, pl.Series([None] * len(c), dtype=c.dtype)) for c in frame.reverse()]
        )
        earlier_runs(other, sides[::-1], rule, root)
    text = build(outputs_of(frame, sides, rule), root)
    assert text.startswith("<!DOCTYPE html>") or text.startswith("<!doctype html>")
    assert "</html>" in text


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=frames(), rule=st.sampled_from(RULES))
def test_the_frames_a_run_holds_are_the_files_it_wrote(
    case: tuple[pl.DataFrame, list[str]], rule: str, tmp_path: Path
) -> None:
    """The write stage hands the report the frames it has just written (``held``) instead of
    reading the files again: for any frame, those frames equal what polars reads back from the
    files sluice writes, and the report built on them is the report built on the files byte for
    byte (the one ``sluice report`` rebuilds). Columns no part of the report reads are left out
    of the held quarantine as of the read one."""
    frame, sides = case
    outputs = outputs_of(frame, sides, rule)
    root = tmp_path / uuid.uuid4().hex
    folder = root / "reports" / f"date={DAY}"
    folder.mkdir(parents=True)
    quarantine = outputs.quarantine.with_columns(
        pl.Series("_extra", ["{}"] * outputs.quarantine.height, dtype=pl.String)
    )
    scores = pl.DataFrame(
        {
            ROW_ID: outputs.clean[ROW_ID],
            "detector": ["outliers"] * outputs.clean.height,
            "score": [float(i % 7) for i in range(outputs.clean.height)],
        },
        schema={ROW_ID: pl.UInt64(), "detector": pl.String(), "score": pl.Float64()},
    )
    files = {"clean": root / "clean.parquet", "quarantine": root / "quarantine.parquet"}
    write_parquet(outputs.clean, files["clean"])
    write_parquet(quarantine, files["quarantine"])
    write_parquet(outputs.failures, folder / "failures.parquet")
    write_parquet(scores, folder / "scores.parquet")
    manifest = {**outputs.manifest, "outputs": {k: {"path": str(p)} for k, p in files.items()}}
    held = {
        "clean": outputs.clean,
        "quarantine": quarantine,
        "failures": outputs.failures,
        "scores": scores,
    }
    read = load_outputs(manifest, folder)
    kept = load_outputs(manifest, folder, held=held)
    for name in ("clean", "quarantine", "failures"):
        assert_frame_equal(getattr(kept, name), getattr(read, name))
    assert kept.scores is not None
    assert read.scores is not None
    assert_frame_equal(kept.scores, read.scores)
    assert "_extra" not in kept.quarantine.columns
    assert build(kept, root) == build(read, root)


@pytest.mark.parametrize(
    ("name", "dtype", "values"),
    [
        ("n", pl.Int64(), [1, 2, 3, 4]),
        ("count", pl.String(), ["a", "b", "a", "c"]),
        ("value", pl.Float64(), [1.0, 2.0, 3.0, 4.0]),
        ("t", pl.Time(), [dt.time(1), dt.time(2), dt.time(3), dt.time(4)]),
        ("d", pl.Date(), [dt.date(1, 1, 1), dt.date(9999, 12, 31), None, dt.date(2024, 1, 1)]),
        ("x", pl.Float64(), [-1e308, 1e308, math.nan, None]),
    ],
)
def test_pinned_regressions_profile_their_column(
    name: str, dtype: pl.DataType, values: list[Any], tmp_path: Path
) -> None:
    """Column names the report's own frames use and types it once could not profile."""
    frame = pl.DataFrame([pl.Series(name, values, dtype=dtype)])
    outputs = outputs_of(frame, ["", "", "", "q"], "expect_column_values_to_be_between")
    report = compose(outputs, reports_root=tmp_path / "r", clean_root=tmp_path / "c")
    assert [c.name for c in report.columns] == [name]
    assert report.columns[0].clean_rows == 3
    assert f'id="col-{name}"' in render(report) or f">{name}<" in render(report)


@pytest.mark.parametrize(
    "values",
    [
        # the 0.1% and 99.9% quantiles are -1e308 and 1e308: their difference overflows
        [(-1) ** i * 1e308 * (1 - i * 1e-9) for i in range(200)],
        [*(float(i) for i in range(196)), math.inf, -math.inf, math.inf, -math.inf],
        [1.7976931348623157e308, -1.7976931348623157e308, *(5e-324 * i for i in range(198))],
    ],
    ids=["extremes", "infinities", "largest-and-subnormals"],
)
def test_a_histogram_over_the_whole_float_range(values: list[float], tmp_path: Path) -> None:
    """A float column whose values span more than the largest float (or hold infinities) still
    gets its histogram: finite edges, never decreasing, every clean value counted in a bin."""
    frame = pl.DataFrame([pl.Series("x", values, dtype=pl.Float64)])
    sides = ["q" if i == 0 else "" for i in range(len(values))]
    report = compose(
        outputs_of(frame, sides, "type"), reports_root=tmp_path / "r", clean_root=tmp_path / "c"
    )
    (column,) = report.columns
    hist = column.distribution
    assert isinstance(hist, Histogram)
    assert np.isfinite(hist.edges).all()
    assert (np.diff(hist.edges) >= 0).all()
    assert hist.clean.sum() == len(values) - 1
    assert render(report).rstrip().endswith("</html>")


def test_hundreds_of_columns_with_clashing_and_odd_names(tmp_path: Path) -> None:
    """Three hundred columns, among them every name the report's frames use, with history."""
    names = [*CLASHING, "*", "^a.*$", "a.b", "with space", "ünï ✓", "_partition", "y" * 500]
    names += [f"c{i}" for i in range(300 - len(names))]
    dtypes = [DTYPES[i % len(DTYPES)] for i in range(len(names))]
    frame = pl.DataFrame(
        [
            pl.Series("v", (values_of(t) * 8)[:8], dtype=t, strict=False).rename(name)
            for name, t in zip(names, dtypes, strict=True)
        ]
    )
    sides = ["", "q", "", "", "q", "", "", ""]
    earlier_runs(frame, sides, "type", tmp_path)
    report = compose(
        outputs_of(frame, sides, "type"),
        reports_root=tmp_path / "reports",
        clean_root=tmp_path / "clean",
    )
    assert [c.name for c in report.columns] == names
    assert len([d for d in report.drift if d.kind != "skipped"]) > 0
    assert render(report).rstrip().endswith("</html>")


def test_time_and_year_one_axes_are_labelled(tmp_path: Path) -> None:
    """A time-of-day column is plotted in seconds since midnight and a year-1 to year-9999
    column with clamped dates, not skipped."""
    times = [dt.time(h, 30) for h in range(24)]
    days = [dt.datetime(1, 1, 1) + dt.timedelta(days=400 * i) for i in range(24)]
    days[-1] = dt.datetime(9999, 12, 31, 23, 59, 59)
    frame = pl.DataFrame({"t": times, "d": days})
    report = compose(
        outputs_of(frame, [""] * 24, "type"),
        reports_root=tmp_path / "r",
        clean_root=tmp_path / "c",
    )
    t, d = report.columns
    assert t.distribution is not None
    assert d.distribution is not None
    assert t.kind == d.kind == "temporal"
    text = render(report)
    assert "00:30" in text
    assert "23:30" in text
    assert "9999-12-31" in text or "9999-" in text
