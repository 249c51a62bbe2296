"""Demo data for ``sluice demo``: taxi-like trips with planted errors, and the catch-rate judge.

:func:`generate` writes one CSV per pickup day under ``<root>/raw/pickup_date=YYYY-MM-DD/`` (the
source path of ``datasets/trips.yaml`` with ``SLUICE_DEMO_DIR=<root>``) and returns the ground
truth: one row per planted error, with the reasons (``column|rule``) that should catch it. Every
planted row carries exactly one error; every other row passes every rule of the trips suite.
:func:`evaluate` and :func:`false_quarantines` judge a quarantine against that truth.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import polars as pl

from sluice.core.errors import ConfigError
from sluice.core.failures import reason

ERROR_KINDS: tuple[str, ...] = (
    "bad_format",
    "unparseable",
    "missing",
    "exact_duplicate",
    "key_duplicate",
    "out_of_range",
    "inconsistent",
    "multivariate_outlier",
)
COLUMNS: tuple[str, ...] = (
    "trip_id",
    "vendor_id",
    "medallion",
    "pickup_at",
    "dropoff_at",
    "passenger_count",
    "trip_distance",
    "pickup_zone",
    "dropoff_zone",
    "payment_type",
    "fare_amount",
    "tip_amount",
    "total_amount",
)
NOT_NULL_COLUMNS: tuple[str, ...] = (
    "trip_id",
    "vendor_id",
    "pickup_at",
    "dropoff_at",
    "passenger_count",
    "trip_distance",
    "fare_amount",
    "total_amount",
    "payment_type",
)
FEATURES: tuple[str, ...] = ("trip_distance", "fare_amount", "tip_amount", "total_amount")
PARTITION_KEY = "pickup_date"
TIMEZONE = "America/New_York"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
DETECTOR = "default"
PLANT_RATE = 0.003
MIN_ROWS = 100
PAYMENT_TYPES: tuple[str, ...] = ("card", "cash", "no_charge", "dispute")
EXTRAS_CENTS = 400
AIRPORT_FEE_CENTS = 175
JFK_ZONE = 132
LGA_ZONE = 138
EWR_ZONE = 1
JFK_FLAT_CENTS = 7000
MAX_TRIP_MINUTES = 90

TRUTH_SCHEMA: dict[str, pl.DataType] = {
    "partition": pl.Date(),
    "source_file": pl.String(),
    "source_row": pl.Int64(),
    "kind": pl.String(),
    "column": pl.String(),
    "expected_reasons": pl.List(pl.String()),
}
EVALUATION_SCHEMA: dict[str, pl.DataType] = {
    "kind": pl.String(),
    "planted": pl.Int64(),
    "caught": pl.Int64(),
    "caught_by_expected_rule": pl.Int64(),
    "rate": pl.Float64(),
}

UNIQUE = "expect_column_values_to_be_unique"
NOT_NULL = "expect_column_values_to_not_be_null"
REGEX = "expect_column_values_to_match_regex"
IN_SET = "expect_column_values_to_be_in_set"
BETWEEN = "expect_column_values_to_be_between"
PAIR = "expect_column_pair_values_a_to_be_greater_than_b"
PAIR_REASON = reason("dropoff_at,pickup_at", PAIR)

_WEEKDAY_HOURS = (3.0, 2.0, 1.4, 1.0, 0.8, 1.0, 2.2, 3.6, 4.3, 4.4, 4.4, 4.6,
                  4.9, 5.0, 5.3, 5.3, 5.0, 5.8, 6.5, 6.2, 5.6, 5.4, 5.2, 4.2)  # fmt: skip
_WEEKEND_HOURS = (5.0, 4.4, 3.6, 2.6, 1.6, 1.0, 1.0, 1.4, 2.0, 2.8, 3.6, 4.2,
                  4.6, 4.8, 4.8, 4.8, 4.8, 5.0, 5.2, 5.2, 5.0, 5.0, 5.2, 5.4)  # fmt: skip
_HOUR_SPEED_MPH = (17.0, 18.0, 18.0, 18.0, 17.0, 16.0, 13.0, 10.0, 9.0, 9.5, 10.5, 11.0,
                   11.0, 11.0, 10.5, 10.0, 9.0, 8.5, 9.0, 10.5, 12.0, 13.0, 14.0, 15.0)  # fmt: skip
_PASSENGERS = ((1, 2, 3, 4, 5, 6), (0.70, 0.14, 0.05, 0.03, 0.05, 0.03))
_PAYMENTS = (0.72, 0.25, 0.015, 0.015)
_TIP_SHARES = ((0.15, 0.18, 0.20, 0.22, 0.25, 0.30), (0.15, 0.10, 0.35, 0.10, 0.20, 0.10))
_NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six")

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Arrays = dict[str, npt.NDArray[Any]]


def raw_path(root: Path, day: dt.date) -> Path:
    """The CSV of one pickup day under a demo root."""
    return Path(root) / "raw" / f"{PARTITION_KEY}={day.isoformat()}" / "trips.csv"


def truth_path(root: Path, day: dt.date) -> Path:
    """The ground-truth Parquet of one pickup day under a demo root."""
    return Path(root) / "truth" / f"{PARTITION_KEY}={day.isoformat()}" / "truth.parquet"


def empty_truth() -> pl.DataFrame:
    """A truth table with no rows."""
    return pl.DataFrame(schema=TRUTH_SCHEMA)


def generate(
    root: Path,
    partitions: Sequence[dt.date],
    rows_per_partition: int = 100_000,
    seed: int = 2024,
) -> pl.DataFrame:
    """Write one trips CSV per day and its truth; return the truth of all days, in the given order.

    Each day's file holds exactly ``rows_per_partition`` data rows and depends only on the day and
    ``seed``. Of each kind in :data:`ERROR_KINDS`, ``max(1, round(PLANT_RATE * rows))`` rows are
    planted, one error per row; ``source_row`` is the 0-based data row (header excluded).
    """
    if isinstance(rows_per_partition, bool) or not isinstance(rows_per_partition, int):
        raise ConfigError("not a whole number", key="rows_per_partition", found=rows_per_partition)
    if rows_per_partition < MIN_ROWS:
        raise ConfigError(
            "too few rows to plant every kind of error",
            key="rows_per_partition",
            found=rows_per_partition,
            allowed=f">= {MIN_ROWS}",
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError("not a seed", key="seed", found=seed, allowed="an integer >= 0")
    if 3 * rows_per_partition >= 900_000_000:
        raise ConfigError(
            "too many rows for 9-digit trip ids",
            key="rows_per_partition",
            found=rows_per_partition,
            allowed="< 300000000",
        )
    days = list(dict.fromkeys(dt.date(p.year, p.month, p.day) for p in partitions))
    fleet = _Fleet(seed)
    truths = []
    for day in days:
        frame, planted = _partition(day, rows_per_partition, seed, fleet)
        csv_file = raw_path(root, day)
        truth = _truth_frame(day, os.path.abspath(csv_file), planted)
        _write_atomic(csv_file, frame.write_csv(null_value="").encode())
        buffer = io.BytesIO()
        truth.write_parquet(buffer)
        _write_atomic(truth_path(root, day), buffer.getvalue())
        truths.append(truth)
    return pl.concat(truths, how="vertical") if truths else empty_truth()


def evaluate(truth: pl.DataFrame, quarantine: pl.DataFrame) -> pl.DataFrame:
    """Catch rates by kind: one row per kind of :data:`ERROR_KINDS`, in that order.

    A planted row is caught when its ``(source_file, source_row)`` is in the quarantine, and
    caught by an expected rule when its quarantine reasons include one of ``expected_reasons``.
    ``rate`` is ``caught / planted`` (null when nothing of that kind was planted).
    """
    t = _truth_keys(truth)
    unknown = sorted(set(t["kind"].drop_nulls()) - set(ERROR_KINDS))
    if unknown:
        raise ValueError(f"truth has unknown kinds {unknown}; known: {', '.join(ERROR_KINDS)}")
    q = _quarantined(quarantine)
    joined = t.join(q, on=["source_file", "source_row"], how="left")
    hit = pl.col("reasons").is_not_null()
    expected = hit & (
        pl.col("expected_reasons").list.set_intersection(pl.col("reasons")).list.len() > 0
    )
    counts = joined.group_by("kind").agg(
        pl.len().cast(pl.Int64).alias("planted"),
        hit.sum().cast(pl.Int64).alias("caught"),
        expected.sum().cast(pl.Int64).alias("caught_by_expected_rule"),
    )
    kinds = pl.DataFrame({"kind": list(ERROR_KINDS)}, schema={"kind": pl.String()})
    out = kinds.join(counts, on="kind", how="left", maintain_order="left").with_columns(
        pl.col("planted", "caught", "caught_by_expected_rule").fill_null(0)
    )
    out = out.with_columns(
        pl.when(pl.col("planted") > 0)
        .then(pl.col("caught") / pl.col("planted"))
        .otherwise(None)
        .alias("rate")
    )
    return out.select(pl.col(c).cast(d) for c, d in EVALUATION_SCHEMA.items())


def false_quarantines(truth: pl.DataFrame, quarantine: pl.DataFrame, n_rows: int) -> int:
    """Quarantined rows with no planted error (legitimate rows a rule or detector flagged).

    ``n_rows`` is the number of input rows the quarantine was drawn from; a quarantine holding
    more distinct rows than that does not belong to this input and raises ``ValueError``.
    """
    q = _quarantined(quarantine)
    if q.height > n_rows:
        raise ValueError(
            f"the quarantine holds {q.height} distinct rows but the input had only {n_rows}"
        )
    return q.join(_truth_keys(truth), on=["source_file", "source_row"], how="anti").height


def _truth_keys(truth: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in TRUTH_SCHEMA if c not in truth.columns]
    if missing:
        raise ValueError(f"truth lacks columns {missing}; it has {truth.columns}")
    t = truth.select(
        pl.col("source_file").cast(pl.String),
        pl.col("source_row").cast(pl.Int64),
        pl.col("kind").cast(pl.String),
        pl.col("expected_reasons").cast(pl.List(pl.String())),
    )
    return _normalise_files(t)


def _quarantined(quarantine: pl.DataFrame) -> pl.DataFrame:
    """One row per quarantined source row, with all its reasons."""
    needed = ("_source_file", "_source_row", "_reasons")
    missing = [c for c in needed if c not in quarantine.columns]
    if missing:
        raise ValueError(f"quarantine lacks columns {missing}; it has {quarantine.columns}")
    q = quarantine.select(
        pl.col("_source_file").cast(pl.String).alias("source_file"),
        pl.col("_source_row").cast(pl.Int64).alias("source_row"),
        pl.col("_reasons").cast(pl.List(pl.String())).alias("reasons"),
    )
    q = _normalise_files(q)
    return q.group_by("source_file", "source_row", maintain_order=True).agg(
        pl.col("reasons").list.explode(keep_nulls=False, empty_as_null=False).drop_nulls()
    )


def _normalise_files(frame: pl.DataFrame) -> pl.DataFrame:
    """Paths compared by their real location, so a symlinked or relative root still matches."""
    names = frame.get_column("source_file").drop_nulls().unique().to_list()
    mapping = {n: os.path.realpath(n) for n in names}
    return frame.with_columns(
        pl.col("source_file").replace_strict(mapping, default=pl.col("source_file"))
    )


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class _Fleet:
    """What stays the same from day to day for one seed: medallions, their vendors, zone weights."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng([seed, 0])
        codes = np.sort(rng.choice(10 * 26 * 100, size=2_000, replace=False))
        letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
        self.medallions = np.array(
            [f"{c // 2600}{letters[(c // 100) % 26]}{c % 100:02d}" for c in codes]
        )
        self.vendors = rng.choice(np.array([1, 2]), size=codes.size, p=[0.35, 0.65])
        city = np.array([z for z in range(1, 264) if z not in (JFK_ZONE, LGA_ZONE, EWR_ZONE)])
        weights = rng.lognormal(0.0, 1.2, size=city.size)
        self.city_zones = city
        self.zone_weights = weights / weights.sum()


def _hour_weights(day: dt.date) -> Floats:
    """Pickup weights per local hour.

    An hour gets none when a trip starting in it could start, end, or be mis-keyed to end before
    it starts, in local time that a clock change skips or repeats.
    """
    base: Floats = np.array(_WEEKEND_HOURS if day.weekday() >= 5 else _WEEKDAY_HOURS)
    tz = ZoneInfo(TIMEZONE)
    start = dt.datetime.combine(day, dt.time())
    unsafe = set()
    for h in range(-24, 48):
        t = start + dt.timedelta(hours=h, minutes=30)
        if t.replace(tzinfo=tz, fold=0).utcoffset() != t.replace(tzinfo=tz, fold=1).utcoffset():
            unsafe.add(h)
    reach = -(-MAX_TRIP_MINUTES // 60) + 1
    for h in range(24):
        if any(h + k in unsafe for k in range(-reach, reach + 1)):
            base[h] = 0.0
    weights: Floats = base / base.sum()
    return weights


def _truncated(draw: Callable[[int], Floats], n: int, lo: float, hi: float) -> Floats:
    out = draw(n)
    bad = (out < lo) | (out > hi)
    while bad.any():
        out[bad] = draw(int(bad.sum()))
        bad = (out < lo) | (out > hi)
    return out


def _clean(day: dt.date, n: int, rng: np.random.Generator, fleet: _Fleet) -> Arrays:
    """Clean trips of one day, sorted by pickup; money and miles in hundredths."""
    hours = rng.choice(24, size=n, p=_hour_weights(day))
    pickup = np.sort(hours * 3600 + rng.integers(0, 3600, size=n))
    hour = pickup // 3600
    airport = rng.random(n) < 0.08
    port = np.where(rng.random(n) < 0.6, JFK_ZONE, LGA_ZONE)
    city = _truncated(lambda k: rng.lognormal(np.log(1.6), 0.7, k), n, 0.3, 12.0)
    jfk = _truncated(lambda k: rng.normal(18.0, 1.6, k), n, 15.0, 22.0)
    lga = _truncated(lambda k: rng.normal(9.5, 1.0, k), n, 7.0, 12.0)
    miles = np.where(airport, np.where(port == JFK_ZONE, jfk, lga), city)
    speed = np.array(_HOUR_SPEED_MPH)[hour] * rng.lognormal(0.0, 0.15, n)
    speed *= 1.0 + 0.35 * np.log1p(miles / 3.0)
    duration = np.clip(miles / speed * 3600 + rng.uniform(30, 150, n), 60, MAX_TRIP_MINUTES * 60)
    dist = np.round(miles * 100).astype(np.int64)
    meter = (300 + 2.8 * dist + 35 * duration / 60) * rng.normal(1.0, 0.015, n)
    flat = airport & (port == JFK_ZONE)
    fare = np.where(flat, JFK_FLAT_CENTS, np.round(meter)).astype(np.int64)
    payment = rng.choice(4, size=n, p=_PAYMENTS)
    shares = rng.choice(np.array(_TIP_SHARES[0]), size=n, p=_TIP_SHARES[1])
    tipped = (payment == 0) & (rng.random(n) >= 0.12)
    tip = np.where(tipped, np.round(fare * shares), 0).astype(np.int64)
    extras = np.where(airport, EXTRAS_CENTS + AIRPORT_FEE_CENTS, EXTRAS_CENTS).astype(np.int64)
    city_a = rng.choice(fleet.city_zones, size=n, p=fleet.zone_weights)
    city_b = rng.choice(fleet.city_zones, size=n, p=fleet.zone_weights)
    to_port = rng.random(n) < 0.5
    pu_zone = np.where(airport & ~to_port, port, city_a)
    do_zone = np.where(airport & to_port, port, city_b)
    car = rng.integers(0, fleet.medallions.size, size=n)
    start = 100_000_000 + (day.toordinal() % 1000) * 800_000
    trip_no = start + np.cumsum(rng.integers(1, 4, size=n))
    return {
        "trip_no": 100_000_000 + (trip_no - 100_000_000) % 900_000_000,
        "vendor": fleet.vendors[car].astype(np.int64),
        "medallion": fleet.medallions[car],
        "pickup": pickup.astype(np.int64),
        "dropoff": (pickup + np.round(duration)).astype(np.int64),
        "passengers": rng.choice(np.array(_PASSENGERS[0]), size=n, p=_PASSENGERS[1]),
        "dist": dist,
        "pu_zone": pu_zone.astype(np.int64),
        "do_zone": do_zone.astype(np.int64),
        "payment": np.array(PAYMENT_TYPES)[payment],
        "fare": fare,
        "tip": tip,
        "extras": extras,
        "total": fare + tip + extras,
        "airport": airport,
    }


_Planted = list[tuple[int, str, str | None, list[str]]]


def _partition(day: dt.date, n: int, seed: int, fleet: _Fleet) -> tuple[pl.DataFrame, _Planted]:
    """One day's rows as CSV text columns, and what was planted where."""
    rng = np.random.default_rng([seed, day.toordinal()])
    t = _clean(day, n, rng, fleet)
    m = max(1, round(PLANT_RATE * n))
    free = np.ones(n, dtype=bool)
    free[0] = False
    pool = np.flatnonzero(free & ~t["airport"])
    outliers = np.sort(rng.choice(pool, size=min(m, pool.size), replace=False))
    free[outliers] = False
    others = rng.choice(np.flatnonzero(free), size=7 * m, replace=False)
    free[others] = False
    rows = {
        k: np.sort(others[i * m : (i + 1) * m])
        for i, k in enumerate(x for x in ERROR_KINDS if x != "multivariate_outlier")
    }
    rows["multivariate_outlier"] = outliers
    sources = _duplicate_sources(rng, rows["exact_duplicate"], rows["key_duplicate"], free)
    planted: _Planted = []

    for j in rows["key_duplicate"]:
        t["trip_no"][j] = t["trip_no"][sources[int(j)]]
        planted.append((int(j), "key_duplicate", "trip_id", [reason("trip_id", UNIQUE)]))
    for j in rows["inconsistent"]:
        t["dropoff"][j] = 2 * t["pickup"][j] - t["dropoff"][j]
        planted.append((int(j), "inconsistent", "dropoff_at", [PAIR_REASON]))
    planted += _plant_outliers(rng, t, rows["multivariate_outlier"])
    planted += _plant_out_of_range(rng, t, rows["out_of_range"])

    text = _as_text(day, t)
    edits: dict[str, dict[int, str | None]] = {c: {} for c in COLUMNS}
    planted += _plant_bad_format(rng, text, rows["bad_format"], edits)
    planted += _plant_unparseable(rng, text, rows["unparseable"], edits)
    for j in rows["missing"]:
        col = str(rng.choice(NOT_NULL_COLUMNS))
        edits[col][int(j)] = None
        planted.append((int(j), "missing", col, [reason(col, NOT_NULL)]))
    for j in rows["exact_duplicate"]:
        for c in COLUMNS:
            edits[c][int(j)] = text[c][sources[int(j)]]
        planted.append((int(j), "exact_duplicate", None, [reason("trip_id", UNIQUE)]))

    columns = []
    for c in COLUMNS:
        s = text[c]
        if edits[c]:
            idx = list(edits[c])
            s = s.scatter(idx, pl.Series([edits[c][i] for i in idx], dtype=pl.String))
        columns.append(s.alias(c))
    planted.sort(key=lambda p: p[0])
    return pl.DataFrame(columns), planted


def _duplicate_sources(
    rng: np.random.Generator, exact: Ints, key: Ints, free: npt.NDArray[np.bool_]
) -> dict[int, int]:
    """For each duplicate row, a distinct earlier clean row to copy."""
    clean = np.flatnonzero(free)
    clean = np.concatenate([[0], clean]) if clean.size == 0 or clean[0] != 0 else clean
    used: set[int] = set()
    out: dict[int, int] = {}
    for j in np.sort(np.concatenate([exact, key])):
        before = int(np.searchsorted(clean, j))
        pick = int(clean[rng.integers(0, before)])
        for _ in range(20):
            if pick not in used:
                break
            pick = int(clean[rng.integers(0, before)])
        used.add(pick)
        out[int(j)] = pick
    return out


def _plant_out_of_range(
    rng: np.random.Generator,
    t: Arrays,
    rows: Ints,
) -> _Planted:
    choices = ("fare_amount", "passenger_count", "trip_distance", "pickup_zone", "dropoff_zone",
               "vendor_id")  # fmt: skip
    out: _Planted = []
    for j in rows:
        col = str(rng.choice(choices, p=[0.25, 0.25, 0.2, 0.1, 0.1, 0.1]))
        rule = BETWEEN
        if col == "fare_amount":
            t["fare"][j] = -t["fare"][j]
        elif col == "passenger_count":
            t["passengers"][j] = rng.choice([0, 9])
        elif col == "trip_distance":
            t["dist"][j] = rng.integers(150, 400) * 100 + rng.integers(0, 100)
        elif col in ("pickup_zone", "dropoff_zone"):
            t["pu_zone" if col == "pickup_zone" else "do_zone"][j] = rng.choice([0, 266, 300, 999])
        else:
            t["vendor"][j] = rng.choice([3, 4])
            rule = IN_SET
        out.append((int(j), "out_of_range", col, [reason(col, rule)]))
    return out


def _plant_outliers(rng: np.random.Generator, t: Arrays, rows: Ints) -> _Planted:
    """Card trips whose values each pass their rules but whose distance, fare, tip and total clash.

    Four shapes, each pairing two or three values from just above the day's clean range (clean
    fares stop near 75 dollars, tips near 21, totals near 97, distances at 22 miles) with ordinary
    values they never go with: a trip of under a mile with a 90-140 dollar fare; a city trip whose
    fare was keyed ten times over; a 22-30 mile trip with a 4-8 dollar fare and a 25-40 dollar tip;
    the same long cheap trip with a 110-150 dollar total. The first three keep total = fare + tip +
    extras. Each value alone is no further out than a long airport run; on one column a detector
    would have to flag those too.
    """
    out: _Planted = []
    for j in rows:
        shape = int(rng.integers(0, 4))
        t["payment"][j] = "card"
        if shape == 1 and not 9000 <= t["fare"][j] * 10 <= 14000:
            shape = 0
        if shape == 0:
            t["dist"][j] = rng.integers(30, 100)
            t["fare"][j] = rng.integers(9000, 14000)
        elif shape == 1:
            t["fare"][j] *= 10
        else:
            t["dist"][j] = rng.integers(2200, 3000)
            t["fare"][j] = rng.integers(400, 800)
        share = rng.uniform(0.15, 0.25)
        t["tip"][j] = rng.integers(2500, 4000) if shape == 2 else round(t["fare"][j] * share)
        t["total"][j] = t["fare"][j] + t["tip"][j] + t["extras"][j]
        if shape == 3:
            t["total"][j] = rng.integers(11000, 15000)
        out.append((int(j), "multivariate_outlier", None, [reason("outlier", DETECTOR)]))
    return out


def _plant_bad_format(
    rng: np.random.Generator,
    text: dict[str, pl.Series],
    rows: Ints,
    edits: dict[str, dict[int, str | None]],
) -> _Planted:
    out: _Planted = []
    for j in rows:
        col = str(rng.choice(("trip_id", "medallion", "payment_type"), p=[0.4, 0.4, 0.2]))
        v = str(text[col][int(j)])
        k = int(rng.integers(0, 5))
        if col == "trip_id":
            bad = ("t" + v[1:], "TR" + v[1:], "T-" + v[1:], v + "A", "T0" + v[1:])[k]
            rule = REGEX
        elif col == "medallion":
            bad = (v[0] + v[1].lower() + v[2:], v[:3], v + v[-1], v[1] + v[0] + v[2:],
                   v[0] + "-" + v[1:])[k]  # fmt: skip
            rule = REGEX
        else:
            bad = v.upper() if k % 2 else v.replace("_", " ").title()
            rule = IN_SET
        edits[col][int(j)] = bad
        out.append((int(j), "bad_format", col, [reason(col, rule)]))
    return out


def _plant_unparseable(
    rng: np.random.Generator,
    text: dict[str, pl.Series],
    rows: Ints,
    edits: dict[str, dict[int, str | None]],
) -> _Planted:
    choices = ("fare_amount", "tip_amount", "total_amount", "trip_distance", "passenger_count",
               "vendor_id", "pickup_at", "dropoff_at", "pickup_zone", "dropoff_zone")  # fmt: skip
    weights = [0.2, 0.1, 0.1, 0.1, 0.15, 0.05, 0.1, 0.1, 0.05, 0.05]
    out: _Planted = []
    for j in rows:
        col = str(rng.choice(choices, p=weights))
        v = str(text[col][int(j)])
        k = int(rng.integers(0, 3))
        if col in ("fare_amount", "tip_amount", "total_amount"):
            bad = (v[:-1] + "O", "$" + v, v.replace(".", ".."))[k]
        elif col == "trip_distance":
            bad = (v[:-1] + "O", v + "mi", v.replace(".", ".."))[k]
        elif col == "passenger_count":
            bad = _NUMBER_WORDS[int(v)]
        elif col == "vendor_id":
            bad = ("CMT", "VTS")[int(v) - 1]
        elif col in ("pickup_zone", "dropoff_zone"):
            bad = ("NV", "Unknown", v + "A")[k]
        else:
            bad = (f"{v[:4]}-13-45 99:00:00", v.replace("-", "/"), f"{v[:11]}25{v[13:]}")[k]
        edits[col][int(j)] = bad
        out.append((int(j), "unparseable", col, [reason(col, "type")]))
    return out


def _money(cents: Ints) -> pl.Series:
    """Hundredths as text with two decimals: 1250 -> ``12.50``, -75 -> ``-0.75``."""
    a = pl.col("v").abs()
    return (
        pl.DataFrame({"v": cents})
        .select(
            pl.concat_str(
                pl.when(pl.col("v") < 0).then(pl.lit("-")).otherwise(pl.lit("")),
                (a // 100).cast(pl.String),
                pl.lit("."),
                (a % 100).cast(pl.String).str.zfill(2),
            )
        )
        .to_series()
    )


def _as_text(day: dt.date, t: Arrays) -> dict[str, pl.Series]:
    midnight = np.datetime64(day.isoformat(), "s")

    def stamp(seconds: Ints) -> pl.Series:
        stamps = (midnight + seconds.astype("timedelta64[s]")).astype("datetime64[ms]")
        return pl.Series(stamps).dt.strftime(TIMESTAMP_FORMAT)

    def ints(values: Ints) -> pl.Series:
        return pl.Series(values.astype(np.int64)).cast(pl.String)

    return {
        "trip_id": "T" + ints(t["trip_no"]),
        "vendor_id": ints(t["vendor"]),
        "medallion": pl.Series(t["medallion"].astype(str), dtype=pl.String),
        "pickup_at": stamp(t["pickup"]),
        "dropoff_at": stamp(t["dropoff"]),
        "passenger_count": ints(t["passengers"]),
        "trip_distance": _money(t["dist"]),
        "pickup_zone": ints(t["pu_zone"]),
        "dropoff_zone": ints(t["do_zone"]),
        "payment_type": pl.Series(t["payment"].astype(str), dtype=pl.String),
        "fare_amount": _money(t["fare"]),
        "tip_amount": _money(t["tip"]),
        "total_amount": _money(t["total"]),
    }


def _truth_frame(day: dt.date, source_file: str, planted: _Planted) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "partition": [day] * len(planted),
            "source_file": [source_file] * len(planted),
            "source_row": [p[0] for p in planted],
            "kind": [p[1] for p in planted],
            "column": [p[2] for p in planted],
            "expected_reasons": [p[3] for p in planted],
        },
        schema=TRUTH_SCHEMA,
    )
