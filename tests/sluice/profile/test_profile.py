"""The profiler on generated samples whose structure is known: what it declares and suggests."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from sluice.config import ColumnSpec
from sluice.core.errors import InputError
from sluice.profile import (
    SLUICE_TYPES,
    Profile,
    label_word,
    profile,
    spec_for,
    suite_for,
    typed_frame,
)
from sluice.profile.columns import Column
from sluice.profile.read import sniff_csv
from sluice.profile.rules import FD, NORMALISED_UNIQUE, RARE, literal, pattern, shape

N = 2000
CITIES = ("birmingham", "anchorage", "montgomery", "huntsville", "mobile")


def sample_frame(seed: int = 3, n: int = N) -> pl.DataFrame:
    """Rows with a key, a typed column of each kind, a domain, a dependency and planted typos."""
    rng = np.random.default_rng(seed)
    start = dt.datetime(2024, 1, 1)
    hospital = rng.integers(0, 40, n)
    city = [CITIES[h % len(CITIES)] for h in hospital]
    for i in rng.choice(n, 10, replace=False):
        k = int(rng.integers(1, len(city[i])))
        city[i] = city[i][:k] + "x" + city[i][k + 1 :]
    pickup = [start + dt.timedelta(minutes=int(m)) for m in rng.integers(0, 60 * 24 * 30, n)]
    dropoff = [
        p + dt.timedelta(minutes=int(m))
        for p, m in zip(pickup, rng.integers(1, 90, n), strict=True)
    ]
    amount = np.round(rng.gamma(2.0, 10.0, n), 2)
    count = rng.integers(1, 7, n).astype(str).astype(object)
    count[rng.choice(n, 30, replace=False)] = "N/A"
    return pl.DataFrame(
        {
            "id": [f"A-{i:06d}" for i in range(n)],
            "hospital": [f"H{h:03d}" for h in hospital],
            "city": city,
            "kind": rng.choice(["card", "cash", "dispute"], n, p=[0.6, 0.35, 0.05]),
            "flag": rng.choice(["yes", "no"], n),
            "count": count.tolist(),
            "amount": [f"{a:.2f}" for a in amount],
            "born": [
                f"{d:02d}/{m:02d}/19{y:02d}"
                for d, m, y in zip(
                    rng.integers(13, 29, n),
                    rng.integers(1, 13, n),
                    rng.integers(30, 99, n),
                    strict=True,
                )
            ],
            "pickup_at": [p.isoformat() + "Z" for p in pickup],
            "dropoff_at": [p.isoformat() + "Z" for p in dropoff],
            "note": rng.choice(["-", "ok", "late", "-"], n),
            "phone": [f"(205) 555-{i:04d}" for i in range(n)],
        }
    )


def write_csv(frame: pl.DataFrame, path: Path) -> Path:
    """Write a sample as CSV text."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path)
    return path


@pytest.fixture(scope="module")
def prof(tmp_path_factory: pytest.TempPathFactory) -> Profile:
    """The profile of the generated sample, sluice types on."""
    path = write_csv(sample_frame(), tmp_path_factory.mktemp("sample") / "s.csv")
    return profile([path], seed=1)


def entries(prof: Profile, kind: str, column: str | None = None) -> list[dict[str, Any]]:
    """Kept suggestions of one type (on one column), as suite entries."""
    out = []
    for e in suite_for("x", prof)["expectations"]:
        if e["type"] == kind and (column is None or e["kwargs"].get("column") == column):
            out.append(e)
    return out


def test_column_types_formats_and_null_tokens(prof: Profile) -> None:
    cols = {c.name: c.spec for c in prof.columns}
    assert cols["count"].type == "int"
    assert cols["count"].null_values == ["N/A"]
    assert cols["amount"].type == "float"
    assert cols["flag"].type == "bool"
    assert (cols["born"].type, cols["born"].format) == ("date", "%d/%m/%Y")
    assert (cols["pickup_at"].type, cols["pickup_at"].format) == ("datetime", None)
    assert cols["id"].type == cols["city"].type == "string"
    assert cols["note"].null_values == ["-"]


def test_keys_domains_ranges_and_shapes(prof: Profile) -> None:
    assert prof.keys == ("id",)
    assert entries(prof, "expect_column_values_to_be_unique", "id")[0]["meta"]["duplicates"] == (
        "keep_first"
    )
    (kind,) = entries(prof, "expect_column_values_to_be_in_set", "kind")
    assert kind["kwargs"]["value_set"] == ["card", "cash", "dispute"]
    (city,) = entries(prof, "expect_column_values_to_be_in_set", "city")
    assert city["kwargs"]["value_set"] == sorted(CITIES), "typos seen once are not in the domain"
    (amount,) = entries(prof, "expect_column_values_to_be_between", "amount")
    assert amount["kwargs"]["min_value"] == 0
    assert amount["kwargs"]["max_value"] > 50
    (ident,) = entries(prof, "expect_column_values_to_match_regex", "id")
    assert ident["kwargs"]["regex"] == "^[A-Z]-[0-9]{6}$"
    assert not entries(prof, "expect_column_values_to_not_be_null", "note")


def test_orderings_hold_and_their_reverse_is_not_suggested(prof: Profile) -> None:
    pairs = [
        (e["kwargs"]["column_A"], e["kwargs"]["column_B"])
        for e in entries(prof, "expect_column_pair_values_a_to_be_greater_than_b")
    ]
    assert ("dropoff_at", "pickup_at") in pairs
    assert ("pickup_at", "dropoff_at") not in pairs


def test_a_long_tailed_column_gets_no_domain_and_a_rare_recurring_code_is_in_one(
    tmp_path: Path,
) -> None:
    """Zone ids drawn from a long tail (the rarer ones recur, each on well under 0.2% of rows):
    the next rows bring valid ids the sample lacked, so no domain is suggested. A code that is
    rare but recurs (a dispute, 0.15% of rows) is part of its column's domain, not an error;
    a typo seen once is not."""
    n = 12_000
    rng = np.random.default_rng(5)
    weights = 1.0 / np.arange(1, 261) ** 2.0
    zone = rng.choice(np.arange(1, 261), n, p=weights / weights.sum())
    payment = rng.choice([1, 2, 3], n, p=[0.7, 0.28, 0.02]).astype(object)
    payment[rng.choice(n, 18, replace=False)] = 4
    kind = rng.choice(["card", "cash"], n).astype(object)
    kind[7] = "cahs"
    frame = pl.DataFrame(
        {"zone": zone.tolist(), "payment": payment.tolist(), "kind": kind.tolist()}
    )
    got = profile([write_csv(frame, tmp_path / "s.csv")], seed=1)
    sets = {
        e.kwargs["column"]: e.kwargs["value_set"]
        for e in got.suggestions
        if e.type == "expect_column_values_to_be_in_set"
    }
    assert "zone" not in sets, "a long-tailed id column has no closed domain"
    assert sets["payment"] == [1, 2, 3, 4]
    assert sets["kind"] == ["card", "cash"]


def test_an_ordering_that_holds_by_chance_is_not_suggested(tmp_path: Path) -> None:
    """Columns whose values are ordered anyway (a code beside one that is nearly always 1, an
    amount beside one that is nearly always 0) follow ``A >= B`` on as many rows with B
    shuffled as without: suggested, such a rule would quarantine the rows that break it for
    no reason. An ordering the rows owe to each other (a total above its part) is kept."""
    n = 4000
    rng = np.random.default_rng(7)
    fare = np.round(rng.gamma(2.0, 8.0, n), 2)
    extra = np.round(rng.choice([0.0, 0.5, 1.0], n), 2)
    tolls = np.where(rng.random(n) < 0.04, 5.76, 0.0)
    frame = pl.DataFrame(
        {
            "vendor": rng.choice([1, 2], n, p=[0.4, 0.6]),
            "rate_code": np.where(rng.random(n) < 0.97, 1, rng.choice([2, 3, 5], n)),
            "tip": np.where(rng.random(n) < 0.3, 0.0, np.round(fare * 0.2, 2)),
            "tolls": tolls,
            "fare": fare,
            "total": np.round(fare + extra + tolls + 0.3, 2),
        }
    )
    got = profile([write_csv(frame, tmp_path / "s.csv")], seed=1)
    pairs = {
        (e.kwargs["column_A"], e.kwargs["column_B"])
        for e in got.suggestions
        if e.type == "expect_column_pair_values_a_to_be_greater_than_b"
    }
    assert ("total", "fare") in pairs
    assert not pairs & {("vendor", "rate_code"), ("tip", "tolls"), ("fare", "tolls")}, pairs
    assert all(a == "total" for a, _ in pairs), pairs


def test_sluice_types_have_the_agreed_kwargs(prof: Profile) -> None:
    fd = [e for e in entries(prof, FD) if e["kwargs"]["column"] == "city"]
    assert {"column": "city", "by": ["hospital"], "min_group_size": 3, "min_majority": 0.5} in [
        e["kwargs"] for e in fd
    ]
    norm = entries(prof, NORMALISED_UNIQUE)
    assert {"column_list": ["phone"], "transform": "digits"} in [e["kwargs"] for e in norm]
    for e in entries(prof, RARE):
        assert set(e["kwargs"]) == {
            "column",
            "max_count",
            "min_frequent_count",
            "max_distance",
            "max_relative_distance",
        }


def test_every_entry_carries_evidence_within_the_stated_share(prof: Profile) -> None:
    suite = suite_for("x", prof)
    json.dumps(suite)
    for e in suite["expectations"][2:]:
        got = e["meta"]["suggested"]
        assert got["holdout_pass_share"] >= 1 - prof.max_fail, e
        assert got["learn_pass_share"] >= 1 - prof.max_fail, e
        assert got["holdout_rows"] == int(prof.sample.holdout.sum()) > 0
        assert e["meta"]["severity"] in ("warn", "error", "critical")
    for c in prof.rejected:
        assert min(c.evidence["holdout_pass_share"], c.evidence["learn_pass_share"]) < (
            1 - prof.max_fail
        )


def test_a_column_with_many_nulls_gets_no_not_null(tmp_path: Path) -> None:
    frame = sample_frame(n=400).with_columns(
        pl.when(pl.int_range(pl.len()) % 5 == 0).then(None).otherwise(pl.col("kind")).alias("kind")
    )
    got = profile([write_csv(frame, tmp_path / "s.csv")], seed=2)
    assert not entries(got, "expect_column_values_to_not_be_null", "kind")
    assert entries(got, "expect_column_values_to_not_be_null", "id")


def test_without_sluice_types_only_gx_types(tmp_path: Path) -> None:
    got = profile([write_csv(sample_frame(n=500), tmp_path / "s.csv")], sluice_types=False)
    types = {e["type"] for e in suite_for("x", got)["expectations"]}
    assert not types & set(SLUICE_TYPES)
    assert "expect_column_values_to_be_in_set" in types


def test_same_seed_same_suite_other_seed_other_split(tmp_path: Path) -> None:
    path = write_csv(sample_frame(n=600), tmp_path / "s.csv")
    a, b, c = profile([path], seed=5), profile([path], seed=5), profile([path], seed=6)
    assert suite_for("x", a) == suite_for("x", b)
    assert not a.sample.holdout.equals(c.sample.holdout)


def test_the_suggestions_do_not_depend_on_the_order_values_come_in() -> None:
    """Shapes and values seen as often as each other are written in one order whatever the
    order of the rows (polars counts values in no fixed order): the same sample gives the same
    suite bytes, and so the same suite hash in every manifest."""
    values = [f"{p}{i:03d}" for p in ("A", "B-", "cc", "D.", "E_", "f-") for i in range(50)]
    col = Column("c", "c", ColumnSpec(type="string"), 1.0, "")
    rng = np.random.default_rng(3)
    got = set()
    for _ in range(8):
        rows = pl.Series("c", [values[i] for i in rng.permutation(len(values))])
        one = pattern(col, rows, 0.05)
        assert one is not None
        got.add(one.kwargs["regex"])
    assert len(got) == 1, got
    assert got == {
        r"^(?:[A-Z][0-9]{3}|[A-Z]-[0-9]{3}|[A-Z]\.[0-9]{3}|[A-Z]_[0-9]{3}|[a-z]{2}[0-9]{3}"
        r"|[a-z]-[0-9]{3})$"
    }


@pytest.mark.parametrize(
    "value", ["a.b", "x|y", "(1)", "tab\there", "nul\x00", "é+€", "\U0001f600?"]
)
def test_a_learnt_pattern_matches_its_value_in_python_and_in_polars(value: str) -> None:
    regex = "^" + "".join(literal(ch) for ch in value) + "$"
    assert re.fullmatch(regex, value)
    assert pl.Series([value, value + "!"]).str.contains(regex).to_list() == [True, False]


def test_shapes_and_delimiters() -> None:
    assert shape("T12a-") == (("[A-Z]", 1), ("[0-9]", 2), ("[a-z]", 1), ("-", 1))
    assert sniff_csv(b"a;b;c\n1;2,5;3\n4;5;6\n").delimiter == ";"
    assert sniff_csv(b"a\tb\n1\t2\n").delimiter == "\t"
    assert sniff_csv("a,b\ncaf\xe9,1\n".encode("latin-1")).encoding == "cp1252"


def test_reserved_and_spaced_names_are_declared_with_aliases(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {" given": ["a", "b"] * 20, "_x": ["1", "2"] * 20, "*": ["c"] * 40, "n\x00b": ["d"] * 40}
    )
    got = profile([write_csv(frame, tmp_path / "s.csv")])
    names = {c.name: c.spec.aliases for c in got.columns}
    assert names == {
        "given": [" given"],
        "column_2": ["_x"],
        "column_3": ["*"],
        "column_4": ["n\x00b"],
    }


def test_nested_parquet_columns_get_only_completeness(tmp_path: Path) -> None:
    n = 120
    frame = pl.DataFrame(
        {"id": list(range(n)), "tags": [[1, 2]] * n, "s": [{"a": 1}] * n, "k": ["a", "b"] * 60}
    )
    frame.write_parquet(tmp_path / "s.parquet")
    got = profile([tmp_path / "s.parquet"])
    by_column: dict[str, set[str]] = {}
    for e in suite_for("x", got)["expectations"][2:]:
        by_column.setdefault(e["kwargs"].get("column", ""), set()).add(e["type"])
    assert by_column["tags"] == by_column["s"] == {"expect_column_values_to_not_be_null"}
    assert "expect_column_values_to_be_in_set" in by_column["k"]


def test_a_recurring_second_value_is_no_dependency(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    x = rng.integers(0, 30, 900)
    y = [f"v{v}" for v in x]
    z = [f"v{v}" if v != 7 or i % 2 else "other" for i, v in enumerate(x)]
    y[5] = "typo"
    frame = pl.DataFrame({"x": [f"k{v}" for v in x], "y": y, "z": z})
    got = profile([write_csv(frame, tmp_path / "s.csv")], seed=3)
    fds = {(e["kwargs"]["column"], e["kwargs"]["by"][0]) for e in entries(got, FD)}
    assert ("y", "x") in fds
    assert ("z", "x") not in fds


def test_parquet_dates_as_ingest_reads_them(tmp_path: Path) -> None:
    """Timestamps with and without a time zone are compared as ingest types them (in UTC, no
    zone), and dates and datetimes beyond years 1 to 9999 (any 64-bit count a Parquet file can
    hold, far beyond what polars can write out) count as values that do not parse."""
    n = 400
    at = pl.Series("at", [1_704_067_200_000_000 + i * 60_000_000 for i in range(n)])
    at[3], at[4], at[5] = -62_167_219_200_000_000, 2**63 - 1, -(2**63) + 1  # year 0, far beyond
    day = pl.Series("day", [19_723 + i % 30 for i in range(n)], dtype=pl.Int32)
    day[6] = 2**31 - 1
    frame = pl.DataFrame(
        {
            "id": list(range(n)),
            "at": at.cast(pl.Datetime("us")),
            # an hour later than "at", written in Tokyo time: later in UTC too
            "later": (at + 3_600_000_000)
            .cast(pl.Datetime("us", "UTC"))
            .dt.convert_time_zone("Asia/Tokyo"),
            "day": day.cast(pl.Date),
        }
    )
    frame.write_parquet(tmp_path / "s.parquet")
    got = profile([tmp_path / "s.parquet"])
    kinds = {c.name: c.spec.type for c in got.columns}
    assert kinds == {"id": "int", "at": "datetime", "later": "datetime", "day": "date"}
    typed = typed_frame(got)
    assert typed["at"].null_count() == typed["later"].null_count() == 3
    assert typed["day"].null_count() == 1
    assert typed["later"].dtype == pl.Datetime("us")
    assert ((typed["later"] - typed["at"]).drop_nulls() == dt.timedelta(hours=1)).all()
    order = [
        e.kwargs
        for e in got.suggestions
        if e.type == "expect_column_pair_values_a_to_be_greater_than_b"
    ]
    assert {"column_A": "later", "column_B": "at"} in [
        {k: v for k, v in o.items() if k.startswith("column_")} for o in order
    ]


def test_a_yes_no_column_with_stray_values_is_still_bool(tmp_path: Path) -> None:
    """A few values that are no yes/no word ("maybe", a check mark) make them type failures of
    a bool column, not a text column without a type check; words among other text, and
    numbers that include 0 and 1, keep their own types."""
    n = 2000
    rng = np.random.default_rng(1)
    flag = [str(v) for v in rng.choice(["true", "false"], n)]
    flag[5], flag[700], flag[1400] = "maybe", "\u2713", "TRUE"
    words = ["yes", "no", "perhaps", "later", "soon", "never", "always", "often"]
    frame = pl.DataFrame(
        {
            "flag": flag,
            "answer": [str(v) for v in rng.choice(words, n)],
            "count": [str(v) for v in rng.integers(0, 20, n)],
        }
    )
    frame.write_csv(tmp_path / "s.csv")
    kinds = {c.name: c.spec.type for c in profile([tmp_path / "s.csv"]).columns}
    assert kinds == {"flag": "bool", "answer": "string", "count": "int"}


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-32"])
def test_a_utf16_sample_is_refused_not_profiled_byte_by_byte(tmp_path: Path, codec: str) -> None:
    """Read byte by byte, a UTF-16 file gave columns of NULs and a suite that learnt them."""
    (tmp_path / "s.csv").write_bytes(sample_frame(n=200).write_csv().encode(codec))
    with pytest.raises(InputError, match=r"s\.csv: the file is UTF-(16|32) text; .*iconv -f"):
        profile([tmp_path / "s.csv"])


def _spec(got: Profile) -> dict[str, Any]:
    """The spec ``sluice init`` writes for a profile of ``raw/*.csv``."""
    return spec_for(
        "s",
        got,
        source_path="raw/*.csv",
        partition={"key": "date", "kind": "day"},
        outputs={},
        suite="s.json",
    )


def test_a_decimal_comma_column_is_declared_float_with_its_separator(tmp_path: Path) -> None:
    """A semicolon file of 3,25-style numbers: the column is a float read with a decimal comma
    (not text, which no range or detector would check), and the spec says so."""
    rng = np.random.default_rng(2)
    amounts = [f"{v:.2f}".replace(".", ",") for v in rng.normal(50, 5, 600)]
    amounts[:3] = ["12", "7", "-3,5"]
    text = "id;amount\n" + "".join(f"r{i};{a}\n" for i, a in enumerate(amounts))
    (tmp_path / "s.csv").write_text(text)
    got = profile([tmp_path / "s.csv"])
    amount = next(c for c in got.columns if c.name == "amount")
    assert (amount.spec.type, amount.spec.decimal) == ("float", ",")
    assert typed_frame(got)["amount"].head(3).to_list() == [12.0, 7.0, -3.5]
    spec = _spec(got)
    assert spec["schema"]["amount"] == {"type": "float", "decimal": ","}


@pytest.mark.parametrize(
    ("values", "declared", "first"),
    [
        # a comma that can only group digits: groups, and no decimal comma
        (["1,234", "12,500", "250", "3,000,000"], {"type": "int", "thousands": ","}, 1234),
        (
            ["$1,234.56", "$12.50", "-$3.00", "$250"],
            {"type": "float", "thousands": ",", "currency": "$"},
            1234.56,
        ),
        (
            ["1.234,56 €", "12,50 €", "-1.000,00 €", "250 €"],
            {"type": "float", "decimal": ",", "thousands": ".", "currency": "€"},
            1234.56,
        ),
        (["1 234,56", "12,5", "999"], {"type": "float", "decimal": ",", "thousands": " "}, 1234.56),
        (
            ["CHF 1'234.50", "CHF 12.00", "CHF 999.95"],
            {"type": "float", "thousands": "'", "currency": "CHF"},
            1234.5,
        ),
        # a comma that cannot group (3,25, 0,5): a decimal comma, as before
        (["3,25", "1,234", "0,5"], {"type": "float", "decimal": ","}, 3.25),
        (["1,234", "12,34", "5"], {"type": "float", "decimal": ","}, 1.234),
        (["a1,234", "x"], "string", "a1,234"),
    ],
)
def test_digit_groups_and_currency_symbols_are_declared_with_the_number(
    tmp_path: Path, values: list[str], declared: Any, first: Any
) -> None:
    """Amounts written 1,234.56, $1,234.56, 1.234,56 € or CHF 1'234.50 are numbers (ranges
    and detectors check them), declared with the separator and symbol ingest then reads."""
    rows = [values[i % len(values)] for i in range(300)]
    text = "id;amount\n" + "".join(f'r{i};"{v}"\n' for i, v in enumerate(rows))
    (tmp_path / "s.csv").write_text(text, encoding="utf-8")
    got = profile([tmp_path / "s.csv"])
    spec = _spec(got)
    assert spec["schema"]["amount"] == declared
    assert typed_frame(got)["amount"][0] == first


def test_a_comma_read_as_digit_groups_says_it_could_be_a_decimal_comma(tmp_path: Path) -> None:
    rows = [["1,250", "2,500", "3,125"][i % 3] for i in range(300)]
    (tmp_path / "s.csv").write_text("id;w\n" + "".join(f"r{i};{v}\n" for i, v in enumerate(rows)))
    got = profile([tmp_path / "s.csv"])
    w = next(c for c in got.columns if c.name == "w")
    assert (w.spec.type, w.spec.thousands) == ("int", ",")
    assert "if ',' is the decimal mark there, declare decimal: ','" in w.why


def test_a_column_that_repeats_values_by_chance_is_no_key(tmp_path: Path) -> None:
    """Unit counts drawn from 1 to 20,000 and birth dates over 80 years are 97 to 99% distinct
    in 800 rows, about as distinct as chance makes them: no unique rule, which would
    quarantine the rows sharing a value. A numbering with a few repeated numbers and random
    ten-digit ids with one repeated stay keys: those repeats are not chance."""
    rng = np.random.default_rng(8)
    n = 800
    numbering = np.arange(1, n + 1)
    numbering[[10, 20, 30]] = numbering[[11, 21, 31]]
    wide = rng.integers(10**9, 10**10, n)
    wide[5] = wide[6]
    born = [dt.date(1940, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 29_200, n)]
    frame = pl.DataFrame(
        {
            "units": rng.integers(1, 20_001, n),
            "born": [d.isoformat() for d in born],
            "numbering": numbering,
            "wide": wide,
        }
    )
    assert frame["units"].n_unique() < n
    assert frame["born"].n_unique() < n
    got = profile([write_csv(frame, tmp_path / "s.csv")], seed=1)
    unique = {e["kwargs"]["column"] for e in entries(got, "expect_column_values_to_be_unique")}
    assert unique == {"numbering", "wide"}


def test_a_typed_column_is_judged_as_ingest_will_type_it(tmp_path: Path) -> None:
    """A Parquet UInt64 a third of whose values lie beyond Int64 would fail that many rows as
    ``int`` on every run: it is declared text. One that fits is ``int``; a float column's few
    infinities, type failures as ingest reads them, are null in what the suggestions judge."""
    n = 400
    frame = pl.DataFrame(
        {
            "wide": pl.Series([i * 2**55 for i in range(n)], dtype=pl.UInt64),
            "narrow": pl.Series(range(n), dtype=pl.UInt64),
            "x": [float("inf") if i % 100 == 0 else float(i) for i in range(n)],
        }
    )
    frame.write_parquet(tmp_path / "s.parquet")
    got = profile([tmp_path / "s.parquet"])
    cols = {c.name: c for c in got.columns}
    assert {k: c.spec.type for k, c in cols.items()} == {
        "wide": "string",
        "narrow": "int",
        "x": "float",
    }
    assert cols["wide"].opaque
    assert "read as int would fail 36.0% of its values" in cols["wide"].why
    typed = typed_frame(got)
    assert typed["x"].null_count() == 4
    assert typed["narrow"].dtype == pl.Int64


@pytest.mark.parametrize(
    ("name", "word"),
    [
        ("PULocationID", "id"),
        ("pickup_location_id", "id"),
        ("store code", "code"),
        ("ZipCode", "code"),
        ("zip5", "zip"),
        ("invoice-no", "no"),
        ("pickup_zone", "zone"),
        ("fare_amount", None),
        ("valid", None),
        ("paid", None),
        ("userid", None),
        ("number_of_rooms", None),
        ("", None),
    ],
)
def test_a_label_word_is_the_last_word_of_the_name(name: str, word: str | None) -> None:
    assert label_word(name) == word


def test_numbers_named_as_labels_are_no_detector_features(tmp_path: Path) -> None:
    """Zone ids spread over 1 to 265 look like a measurement by their values (hundreds of
    distinct integers, no fixed width); their names say they label. They are left out of the
    detector's features, as the keys, domains and fixed-width codes are, each with why."""
    rng = np.random.default_rng(5)
    n = 1500
    frame = pl.DataFrame(
        {
            "trip": np.arange(n),
            "PULocationID": rng.integers(1, 266, n),
            "dropoff_location_id": rng.integers(1, 266, n),
            "store code": rng.integers(100, 999, n),
            "zip": rng.integers(10_000, 99_999, n),
            "passengers": rng.integers(1, 4, n),
            "distance": np.round(rng.gamma(2.0, 2.0, n), 2),
            "fare": np.round(rng.gamma(3.0, 5.0, n), 2),
            "minutes": rng.integers(1, 120, n),
        }
    )
    got = profile([write_csv(frame, tmp_path / "s.csv")], seed=1)
    assert got.features == ("distance", "fare", "minutes")
    why = dict(got.not_features)
    assert set(why) == set(frame.columns) - set(got.features)
    assert why["trip"].startswith("a key")
    assert why["PULocationID"].startswith("its name ends in 'id'")
    assert why["dropoff_location_id"].startswith("its name ends in 'id'")
    assert why["store code"].startswith("its name ends in 'code'")
    assert why["zip"].startswith("its name ends in 'zip'")
    assert why["passengers"].startswith("a category")
    assert _spec(got)["detectors"][0]["features"] == ["distance", "fare", "minutes"]


def test_a_measurement_range_leaves_its_tail_to_the_detector(tmp_path: Path) -> None:
    """A fare's learnt range is for gross errors: its trimmed span is added on each side, so
    the legitimate tail of the next partitions (fares half as high again as the sample's
    trimmed top) passes and a fare keyed ten times over or negative does not. A column of a
    few values (a surcharge of 0, 0.5 or 1) and a zone id keep the narrow margin."""
    rng = np.random.default_rng(9)
    n = 4000
    fare = np.round(rng.gamma(2.0, 8.0, n), 2)
    frame = pl.DataFrame(
        {
            "fare": fare,
            "surcharge": rng.choice([0.0, 0.5, 1.0], n),
            "pickup_zone": rng.integers(1, 266, n),
        }
    )
    got = profile([write_csv(frame, tmp_path / "s.csv")], seed=1)
    ranges = {
        e["kwargs"]["column"]: (e["kwargs"]["min_value"], e["kwargs"]["max_value"])
        for e in entries(got, "expect_column_values_to_be_between")
    }
    top = float(np.quantile(fare, 0.999))
    lo, hi = ranges["fare"]
    assert lo == 0
    assert 1.5 * top <= hi < 10 * float(fare.max())
    assert ranges["surcharge"][1] <= 1.1
    assert ranges["pickup_zone"][1] <= 265 * 1.1 + 1


def test_a_key_missing_on_a_few_rows_is_still_a_key(tmp_path: Path) -> None:
    """A large sample of a dirty feed holds some rows without their id: the id is still the
    key (its not-null rule judges those rows); a column missing on more rows is not."""
    n = 5000
    rng = np.random.default_rng(12)
    ids: list[str | None] = [f"T{i:08d}" for i in rng.permutation(10 * n)[:n]]
    sparse: list[str | None] = [f"S{i:08d}" for i in range(n)]
    for i in range(0, n, 250):  # 0.4% of rows
        ids[i] = None
    for i in range(0, n, 20):  # 5% of rows
        sparse[i] = None
    frame = pl.DataFrame({"trip": ids, "other": sparse, "v": rng.normal(size=n)})
    got = profile([write_csv(frame, tmp_path / "s.csv")], seed=1)
    assert got.keys == ("trip",)
    unique = {e["kwargs"]["column"] for e in entries(got, "expect_column_values_to_be_unique")}
    assert unique == {"trip"}
    assert entries(got, "expect_column_values_to_not_be_null", "trip")
