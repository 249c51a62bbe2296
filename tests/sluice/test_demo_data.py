"""The demo trips: clean rows pass the trips suite, planted rows carry exactly their error.

The checks below read the suite file and apply each rule with plain polars expressions (an oracle
independent of the validation engines), so a change to the suite is checked against the data.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from pyod.models.iforest import IForest

from sluice import demo_data as dd
from sluice.config import ColumnSpec, load_spec
from sluice.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SPEC_FILE = REPO / "datasets" / "trips.yaml"
SUITE_FILE = REPO / "expectations" / "suites" / "trips.json"
SUITE: dict[str, Any] = json.loads(SUITE_FILE.read_text())
SCHEMA: dict[str, ColumnSpec] = load_spec(SPEC_FILE).spec.columns
# A Saturday, the Sunday the clocks spring forward in New York, and the one they fall back.
DAYS = (dt.date(2024, 3, 9), dt.date(2024, 3, 10), dt.date(2024, 11, 3))
ROWS = 20_000
SEED = 11


@dataclass(frozen=True)
class Demo:
    root: Path
    truth: pl.DataFrame
    raw: dict[dt.date, pl.DataFrame]


def read_raw(path: Path) -> pl.DataFrame:
    """A generated CSV as text, with its 0-based data row number in ``row``."""
    return (
        pl.read_csv(path, infer_schema=False)
        .with_row_index("row")
        .with_columns(pl.col("row").cast(pl.Int64))
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    root = tmp_path_factory.mktemp("demo")
    truth = dd.generate(root, DAYS, ROWS, seed=SEED)
    return Demo(root, truth, {d: read_raw(dd.raw_path(root, d)) for d in DAYS})


def parsed(raw: pl.DataFrame) -> pl.DataFrame:
    """Each column in its declared type; what does not parse is null."""
    exprs = [pl.col("row")]
    for name, spec in SCHEMA.items():
        text = pl.col(name).str.strip_chars()
        if spec.type == "int":
            exprs.append(text.cast(pl.Int64, strict=False).alias(name))
        elif spec.type == "float":
            exprs.append(text.cast(pl.Float64, strict=False).alias(name))
        elif spec.type == "datetime":
            exprs.append(pl.col(name).str.to_datetime(spec.format, strict=False).alias(name))
        else:
            assert spec.type == "string", f"no parser for {spec.type}"
            exprs.append(pl.col(name))
    return raw.select(exprs)


def failures(raw: pl.DataFrame) -> pl.DataFrame:
    """(row, reason, severity) for every row-level failure; batch-level rules are asserted.

    A cell that does not parse fails ``column|type`` only, not also ``not_null``: these are the
    primary reasons the truth names.
    """
    typed = parsed(raw)
    parts: list[pl.DataFrame] = []

    def add(mask: pl.Series, reason: str, severity: str) -> None:
        rows = typed.filter(mask).select("row")
        parts.append(rows.with_columns(reason=pl.lit(reason), severity=pl.lit(severity)))

    for c in SCHEMA:
        add(raw[c].is_not_null() & typed[c].is_null(), f"{c}|type", "error")
    for e in SUITE["expectations"]:
        kind, kw, severity = e["type"], e["kwargs"], e["meta"]["severity"]
        col = kw.get("column")
        v = typed[col] if col else None
        reason = f"{col}|{kind}"
        if kind == "expect_table_columns_to_match_set":
            assert set(raw.columns) - {"row"} == set(kw["column_set"])
        elif kind == "expect_table_row_count_to_be_between":
            assert kw.get("min_value", 0) <= raw.height <= kw.get("max_value", raw.height)
        elif kind == "expect_column_mean_to_be_between":
            assert v is not None
            mean = v.mean()
            assert isinstance(mean, float)
            assert kw["min_value"] <= mean <= kw["max_value"]
        elif kind == "expect_column_values_to_not_be_null":
            add(raw[col].is_null(), reason, severity)
        elif kind == "expect_column_values_to_match_regex":
            assert v is not None
            add(v.is_not_null() & ~v.str.contains(kw["regex"]), reason, severity)
        elif kind == "expect_column_values_to_be_in_set":
            assert v is not None
            add(v.is_not_null() & ~v.is_in(kw["value_set"]), reason, severity)
        elif kind == "expect_column_values_to_be_between":
            assert v is not None
            low = v < kw["min_value"] if "min_value" in kw else pl.repeat(False, len(v), eager=True)
            high = (
                v > kw["max_value"] if "max_value" in kw else pl.repeat(False, len(v), eager=True)
            )
            add(v.is_not_null() & (low | high), reason, severity)
        elif kind == "expect_column_values_to_be_unique":
            assert v is not None
            assert e["meta"].get("duplicates", "keep_first") == "keep_first"
            add(v.is_not_null() & ~v.is_first_distinct(), reason, severity)
        elif kind == "expect_column_pair_values_a_to_be_greater_than_b":
            a, b = typed[kw["column_A"]], typed[kw["column_B"]]
            ok = a >= b if kw.get("or_equal") else a > b
            pair = f"{kw['column_A']},{kw['column_B']}|{kind}"
            add(a.is_not_null() & b.is_not_null() & ~ok, pair, severity)
        else:
            pytest.fail(f"no oracle for expectation type {kind}: add one to this test")
    return pl.concat(parts)


def truth_of(demo: Demo, day: dt.date) -> pl.DataFrame:
    return demo.truth.filter(pl.col("partition") == day)


def share(mask: pl.Series) -> float:
    """The share of true values."""
    return float(np.mean(mask.to_numpy()))


def clean_rows(demo: Demo, day: dt.date) -> pl.DataFrame:
    planted = truth_of(demo, day)["source_row"].implode()
    return parsed(demo.raw[day]).filter(~pl.col("row").is_in(planted))


@pytest.mark.parametrize("day", DAYS)
def test_every_row_carries_exactly_its_planted_errors(demo: Demo, day: dt.date) -> None:
    found = failures(demo.raw[day])
    assert found.filter(pl.col("severity") == "warn").height == 0
    got = {
        r: set(reasons)
        for r, reasons in found.filter(pl.col("severity") != "warn")
        .group_by("row")
        .agg("reason")
        .iter_rows()
    }
    want = {
        r: set(reasons)
        for r, reasons in truth_of(demo, day)
        .filter(pl.col("kind") != "multivariate_outlier")
        .select("source_row", "expected_reasons")
        .iter_rows()
    }
    assert got == want


@pytest.mark.parametrize("day", DAYS)
def test_truth_points_at_the_row_that_carries_the_error(demo: Demo, day: dt.date) -> None:
    raw = demo.raw[day].with_columns(
        first_row=pl.struct(dd.COLUMNS).is_first_distinct(),
        first_id=pl.col("trip_id").is_first_distinct() | pl.col("trip_id").is_null(),
    )
    truth = truth_of(demo, day)
    assert truth["source_file"].unique().to_list() == [os.path.abspath(dd.raw_path(demo.root, day))]
    for row, kind, col in truth.select("source_row", "kind", "column").iter_rows():
        rec = raw.row(row, named=True)
        if kind == "exact_duplicate":
            assert not rec["first_row"]
        elif kind == "key_duplicate":
            assert not rec["first_id"]
            assert rec["first_row"]
        else:
            assert rec["first_id"]
            assert rec["first_row"]
        if kind == "missing":
            assert rec[col] is None
        elif kind in ("bad_format", "unparseable"):
            assert isinstance(rec[col], str)
            assert rec[col]
        if kind == "unparseable" and SCHEMA[col].type == "float":
            with pytest.raises(ValueError, match="could not convert"):
                float(rec[col])
        if kind == "inconsistent":
            assert rec["dropoff_at"] < rec["pickup_at"]


def test_each_kind_is_planted_at_the_target_rate(demo: Demo) -> None:
    counts = demo.truth.group_by("partition", "kind").len()
    assert counts.height == len(DAYS) * len(dd.ERROR_KINDS)
    for share in (counts["len"] / ROWS).to_list():
        assert share == pytest.approx(dd.PLANT_RATE, abs=0.0005)
    assert demo.truth.select("partition", "source_row").is_unique().all()
    assert demo.truth["source_row"].is_between(1, ROWS - 1).all()
    assert set(demo.truth["kind"]) == set(dd.ERROR_KINDS)


def test_csv_follows_the_dataset_spec(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_spec(SPEC_FILE)
    spec = loaded.spec
    assert tuple(SCHEMA) == dd.COLUMNS
    assert spec.partition.key == dd.PARTITION_KEY
    assert spec.partition.timezone == dd.TIMEZONE
    assert spec.detectors[0].name == dd.DETECTOR
    assert tuple(f.column for f in spec.detectors[0].feature_specs()) == dd.FEATURES
    monkeypatch.setenv("SLUICE_DEMO_DIR", str(demo.root))
    template = loaded.resolve(spec.source.path, key="source.path")
    for day in DAYS:
        path = dd.raw_path(demo.root, day)
        pattern = template.format_map({dd.PARTITION_KEY: day.isoformat()})
        assert sorted(Path("/").glob(pattern.lstrip("/"))) == [path]
        lines = path.read_text().splitlines()
        assert lines[0] == ",".join(dd.COLUMNS)
        assert len(lines) == ROWS + 1
        planted = truth_of(demo, day)["source_row"].implode()
        clean = demo.raw[day].filter(~pl.col("row").is_in(planted))
        stamp = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"
        for c, s in SCHEMA.items():
            form = {"float": r"^\d+\.\d{2}$", "int": r"^\d+$", "datetime": stamp}.get(s.type)
            if form:
                assert clean[c].str.contains(form).all(), c
        stored = pl.read_parquet(dd.truth_path(demo.root, day))
        assert stored.equals(truth_of(demo, day))
        assert stored.schema == pl.Schema(dd.TRUTH_SCHEMA)


@pytest.mark.parametrize("day", DAYS)
def test_clean_trips_look_like_taxi_trips(demo: Demo, day: dt.date) -> None:
    c = clean_rows(demo, day)
    d = c["trip_distance"]
    assert share(d.is_between(0.5, 5)) > 0.75
    assert 0.02 < share(d.is_between(15, 25)) < 0.08
    assert 0.6 < share(c["passenger_count"] == 1) < 0.8
    assert set(c["passenger_count"]) == {1, 2, 3, 4, 5, 6}
    assert set(c["vendor_id"]) == {1, 2}
    zones = pl.concat([c["pickup_zone"], c["dropoff_zone"]])
    assert zones.is_between(1, 263).all()
    tipped = c.filter(pl.col("tip_amount") > 0)
    assert set(tipped["payment_type"]) == {"card"}
    cards = c.filter(pl.col("payment_type") == "card")
    assert share(cards["tip_amount"] > 0) > 0.8
    minutes = (c["dropoff_at"] - c["pickup_at"]).dt.total_seconds() / 60
    assert minutes.is_between(1, dd.MAX_TRIP_MINUTES).all()
    assert (d / (minutes / 60)).is_between(2, 60, closed="none").all()
    assert (c["pickup_at"].dt.date() == day).all()
    hours = c["pickup_at"].dt.hour().value_counts().sort("pickup_at")
    per_hour = dict(hours.iter_rows())
    assert per_hour[18] > 3 * per_hour.get(4, 0)
    if day == dt.date(2024, 3, 10):
        assert 2 not in per_hour


@pytest.mark.parametrize("day", DAYS)
def test_every_timestamp_exists_once_in_local_time(demo: Demo, day: dt.date) -> None:
    typed = parsed(demo.raw[day])
    for c in ("pickup_at", "dropoff_at"):
        stamps = typed[c].drop_nulls()
        local = stamps.dt.replace_time_zone(dd.TIMEZONE, ambiguous="raise", non_existent="raise")
        assert local.dt.replace_time_zone(None).equals(stamps)


def fits_the_meter(frame: pl.DataFrame) -> pl.Series:
    """Whether distance, fare, tip and total agree with how the demo's meter prices a trip."""
    minutes = (frame["dropoff_at"] - frame["pickup_at"]).dt.total_seconds() / 60
    meter = 3.0 + 2.8 * frame["trip_distance"] + 0.35 * minutes
    airport = frame["pickup_zone"].is_in([132, 138]) | frame["dropoff_zone"].is_in([132, 138])
    jfk = frame["pickup_zone"].is_in([132]) | frame["dropoff_zone"].is_in([132])
    fare = frame["fare_amount"]
    fare_ok = pl.Series(np.where(jfk.to_numpy(), fare == 70.0, (fare / meter - 1).abs() < 0.08))
    extras = pl.Series(np.where(airport.to_numpy(), 5.75, 4.0))
    cents = ((frame["total_amount"] - fare - frame["tip_amount"] - extras) * 100).round(0)
    tip_ok = frame["tip_amount"] <= 0.3 * fare + 0.01
    return fare_ok & tip_ok & (cents == 0)


@pytest.mark.parametrize("day", DAYS)
def test_multivariate_outliers_break_only_the_combination(demo: Demo, day: dt.date) -> None:
    typed = parsed(demo.raw[day])
    outliers = truth_of(demo, day).filter(pl.col("kind") == "multivariate_outlier")["source_row"]
    assert outliers.len() > 0
    out = typed.filter(pl.col("row").is_in(outliers.implode()))
    clean = clean_rows(demo, day)
    assert fits_the_meter(clean).all()
    assert not fits_the_meter(out).any()
    for row in out.select(dd.FEATURES).iter_rows():
        inside = [
            clean[f].min() <= v <= clean[f].max() for f, v in zip(dd.FEATURES, row, strict=True)
        ]
        assert 1 <= sum(inside) <= 3


@pytest.mark.parametrize("day", DAYS)
def test_an_isolation_forest_finds_the_multivariate_outliers(demo: Demo, day: dt.date) -> None:
    flagged_rows = failures(demo.raw[day])["row"].implode()
    rows = parsed(demo.raw[day]).filter(~pl.col("row").is_in(flagged_rows))
    x = rows.select(dd.FEATURES).to_numpy()
    labels = IForest(contamination=0.01, random_state=7).fit(x).labels_
    flagged = set(rows.filter(pl.Series(labels == 1))["row"])
    truth = truth_of(demo, day)
    planted = set(truth.filter(pl.col("kind") == "multivariate_outlier")["source_row"])
    assert len(planted & flagged) >= 0.9 * len(planted)


def test_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    days = [dt.date(2024, 11, 3), dt.date(2024, 11, 4)]
    a = dd.generate(tmp_path / "a", days, 2_000, seed=5)
    files = [dd.raw_path(tmp_path / "a", d) for d in days] + [
        dd.truth_path(tmp_path / "a", d) for d in days
    ]
    first = [f.read_bytes() for f in files]
    again = dd.generate(tmp_path / "a", days, 2_000, seed=5)
    assert again.equals(a)
    assert [f.read_bytes() for f in files] == first
    assert sorted(p.name for p in files[0].parent.iterdir()) == ["trips.csv"]

    alone = dd.generate(tmp_path / "b", days[1:], 2_000, seed=5)
    assert dd.raw_path(tmp_path / "b", days[1]).read_bytes() == first[1]
    assert alone.drop("source_file").equals(
        a.filter(pl.col("partition") == days[1]).drop("source_file")
    )

    other = dd.generate(tmp_path / "c", days, 2_000, seed=6)
    for i, day in enumerate(days):
        assert dd.raw_path(tmp_path / "c", day).read_bytes() != first[i]
    assert not other.drop("source_file").equals(a.drop("source_file"))


@pytest.mark.parametrize(
    ("rows", "seed", "key"),
    [(10, 1, "rows_per_partition"), (True, 1, "rows_per_partition"), (2.5, 1, "rows_per_partition"),
     (1_000, -1, "seed"), (1_000, "x", "seed")],
)  # fmt: skip
def test_bad_parameters_are_config_errors(tmp_path: Path, rows: Any, seed: Any, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        dd.generate(tmp_path, [dt.date(2024, 1, 1)], rows, seed)
    assert not (tmp_path / "raw").exists()


def test_no_partitions_gives_an_empty_truth(tmp_path: Path) -> None:
    truth = dd.generate(tmp_path, [], 1_000)
    assert truth.height == 0
    assert truth.schema == pl.Schema(dd.TRUTH_SCHEMA)


def hand_truth(files: list[str]) -> pl.DataFrame:
    day = dt.date(2024, 1, 1)
    rows = [
        (
            files[0],
            3,
            "missing",
            "fare_amount",
            ["fare_amount|expect_column_values_to_not_be_null"],
        ),
        (files[0], 5, "missing", "trip_id", ["trip_id|expect_column_values_to_not_be_null"]),
        (files[0], 8, "unparseable", "fare_amount", ["fare_amount|type"]),
        (files[1], 3, "multivariate_outlier", None, ["outlier|default"]),
        (files[1], 4, "multivariate_outlier", None, ["outlier|default"]),
        (files[1], 9, "inconsistent", "dropoff_at", [dd.PAIR_REASON]),
    ]
    return pl.DataFrame([(day, *r) for r in rows], schema=dd.TRUTH_SCHEMA, orient="row")


def test_evaluate_counts_catches_by_kind(tmp_path: Path) -> None:
    files = [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]
    (tmp_path / "link").symlink_to(tmp_path)
    linked = str(tmp_path / "link" / "a.csv")
    quarantine = pl.DataFrame(
        {
            "_source_file": [files[0], linked, files[0], files[1], files[1], files[1], files[0]],
            "_source_row": [3, 3, 8, 4, 9, 10, 11],
            "_reasons": [
                ["fare_amount|expect_column_values_to_not_be_null"],
                ["total_amount|expect_column_values_to_be_between"],
                ["fare_amount|expect_column_values_to_not_be_null"],
                ["outlier|default", "tip_amount|expect_column_values_to_be_between"],
                None,
                ["outlier|default"],
                [],
            ],
            "other": list(range(7)),
        },
        schema_overrides={"_source_row": pl.UInt32},
    )
    got = dd.evaluate(hand_truth(files), quarantine)
    want = pl.DataFrame(
        {
            "kind": list(dd.ERROR_KINDS),
            "planted": [0, 1, 2, 0, 0, 0, 1, 2],
            "caught": [0, 1, 1, 0, 0, 0, 1, 1],
            "caught_by_expected_rule": [0, 0, 1, 0, 0, 0, 0, 1],
            "rate": [None, 1.0, 0.5, None, None, None, 1.0, 0.5],
        },
        schema=dd.EVALUATION_SCHEMA,
    )
    assert got.equals(want)
    assert dd.false_quarantines(hand_truth(files), quarantine, n_rows=20) == 2
    with pytest.raises(ValueError, match="only 5"):
        dd.false_quarantines(hand_truth(files), quarantine, n_rows=5)
    with pytest.raises(ValueError, match="_reasons"):
        dd.evaluate(hand_truth(files), quarantine.drop("_reasons"))
    odd = hand_truth(files).with_columns(kind=pl.lit("typo"))
    with pytest.raises(ValueError, match="unknown kinds"):
        dd.evaluate(odd, quarantine)


def test_evaluate_on_a_quarantine_built_from_the_suite(demo: Demo) -> None:
    parts = []
    for day in DAYS:
        found = failures(demo.raw[day]).group_by("row").agg(pl.col("reason").alias("_reasons"))
        parts.append(
            found.select(
                pl.lit(str(dd.raw_path(demo.root, day))).alias("_source_file"),
                pl.col("row").alias("_source_row"),
                "_reasons",
            )
        )
    quarantine = pl.concat(parts)
    got = dd.evaluate(demo.truth, quarantine)
    assert got["kind"].to_list() == list(dd.ERROR_KINDS)
    planted = len(DAYS) * round(dd.PLANT_RATE * ROWS)
    assert got["planted"].to_list() == [planted] * len(dd.ERROR_KINDS)
    by_kind = {r["kind"]: r for r in got.iter_rows(named=True)}
    for kind, r in by_kind.items():
        caught = 0 if kind == "multivariate_outlier" else planted
        assert (r["caught"], r["caught_by_expected_rule"]) == (caught, caught)
    assert dd.false_quarantines(demo.truth, quarantine, len(DAYS) * ROWS) == 0


def test_reason_names_follow_the_failures_convention() -> None:
    kinds = {e["type"] for e in SUITE["expectations"]}
    for rule in (dd.UNIQUE, dd.NOT_NULL, dd.REGEX, dd.IN_SET, dd.BETWEEN, dd.PAIR):
        assert rule in kinds
    assert re.fullmatch(r"dropoff_at,pickup_at\|expect_column_pair_\w+", dd.PAIR_REASON)
