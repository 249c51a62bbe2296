from __future__ import annotations

import json
import random

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.core.failures import concat_failures, make_failures
from sluice.decide import add_checksums, checksum, drop_shadowed, split
from sluice.pipeline import run_partition
from tests.conftest import SpecFactory

DECLARED: dict[str, pl.DataType] = {"a": pl.Int64(), "b": pl.String()}


def _frame(n: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    ids = pl.Series("_row_id", [1000 + i for i in range(n)], dtype=pl.UInt64)
    frame = pl.DataFrame(
        {
            "_row_id": ids,
            "_source_file": ["f.csv"] * n,
            "_source_row": list(range(n)),
            "a": list(range(n)),
            "b": [f"x{i}" for i in range(n)],
        }
    )
    raw = frame.select("_row_id", pl.col("a").cast(pl.String), "b")
    return frame, raw


def test_split_routes_by_severity_and_keeps_reasons() -> None:
    frame, raw = _frame(4)
    ids = frame["_row_id"]
    failures = concat_failures(
        [
            make_failures([ids[0]], column="a", rule="r1", severity="error", values=["0"]),
            make_failures([ids[0], ids[1]], column="b", rule="r2", severity="warn"),
            make_failures([ids[2]], column="outlier", rule="iforest", severity="error"),
        ]
    )
    result = split(frame, raw, failures, DECLARED)
    assert result.clean["_row_id"].to_list() == [ids[1], ids[3]]
    assert result.clean.columns == ["_row_id", "_source_file", "_source_row", "a", "b"]
    assert result.clean.select("_source_file", "_source_row").rows() == [("f.csv", 1), ("f.csv", 3)]
    q = result.quarantine
    assert q["_row_id"].to_list() == [ids[0], ids[2]]
    assert q["_reasons"].to_list() == [["a|r1", "b|r2"], ["outlier|iforest"]]
    assert q["_source_row"].to_list() == [0, 2]
    assert q.schema["a"] == pl.Int64  # typed as in clean
    assert q["a"].to_list() == [0, 2]
    assert q.unnest("_raw", separator=".")["_raw.a"].to_list() == ["0", "2"]
    assert q["_extra"].to_list() == ["{}", "{}"]
    assert result.critical == ()


def test_critical_quarantines_everything_with_reason() -> None:
    frame, raw = _frame(3)
    result = split(
        frame, raw, concat_failures([]), DECLARED, [("_table", "expect_table_row_count", "x")]
    )
    assert result.clean.height == 0
    assert result.clean.schema == pl.Schema(
        {"_row_id": pl.UInt64(), "_source_file": pl.String(), "_source_row": pl.Int64(), **DECLARED}
    )
    assert result.quarantine["_reasons"].to_list() == [["_table|expect_table_row_count"]] * 3
    assert result.critical == ("_table|expect_table_row_count",)


def test_shadowed_rule_failures_on_unparsed_cells_are_dropped() -> None:
    ingest_failures = concat_failures(
        [
            make_failures([1], column="a", rule="type", severity="error"),
            make_failures([2], column="_row", rule="malformed", severity="error"),
        ]
    )
    validation = concat_failures(
        [
            make_failures([1, 3], column="a", rule="not_null", severity="error"),
            make_failures([1], column="b", rule="not_null", severity="error"),
            make_failures([1, 3], column="a,b", rule="pair", severity="error"),
            make_failures([2], column="b", rule="not_null", severity="error"),
        ]
    )
    kept = drop_shadowed(validation, ingest_failures)
    assert sorted(zip(kept["_row_id"], kept["reason"], strict=True)) == [
        (1, "b|not_null"),
        (3, "a,b|pair"),
        (3, "a|not_null"),
    ]


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 60),
    flags=st.lists(st.sampled_from(["none", "warn", "error", "critical"]), max_size=60),
)
def test_conservation_property(n: int, flags: list[str]) -> None:
    frame, raw = _frame(n)
    ids = frame["_row_id"].to_list()
    parts = [
        make_failures([i], column="a", rule="r", severity=s)  # type: ignore[arg-type]
        for i, s in zip(ids, flags, strict=False)
        if s != "none"
    ]
    result = split(frame, raw, concat_failures(parts), DECLARED)
    clean, quarantine = set(result.clean["_row_id"]), set(result.quarantine["_row_id"])
    assert clean.isdisjoint(quarantine)
    assert clean | quarantine == set(ids)
    assert all(len(r) > 0 for r in result.quarantine["_reasons"])
    assert checksum(frame["_row_id"]) == add_checksums(
        checksum(result.clean["_row_id"]), checksum(result.quarantine["_row_id"])
    )


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(0, 40),
    marks=st.lists(
        st.tuples(
            st.integers(0, 39),
            st.sampled_from(["r1", "r2", "r3"]),
            st.sampled_from(["warn", "error", "critical"]),
        ),
        max_size=80,
    ),
    order=st.randoms(use_true_random=False),
)
def test_quarantine_rows_hold_their_failures_by_reason_whatever_the_raw_order(
    n: int, marks: list[tuple[int, str, str]], order: random.Random
) -> None:
    # the raw text is taken by the frame's mask when raw holds the frame's rows in order, and
    # looked up by row id otherwise: both give each held row its own text and failures
    frame, raw = _frame(n)
    ids = frame["_row_id"].to_list()
    marks = [(ids[i], r, sev) for i, r, sev in marks if i < n]
    failures = concat_failures(
        [
            make_failures([i], column="a", rule=r, severity=sev, values=[f"{k}"])  # type: ignore[arg-type]
            for k, (i, r, sev) in enumerate(marks)
        ]
    )
    shuffled = raw.sample(fraction=1.0, shuffle=True, seed=order.randint(0, 99))
    results = [
        split(frame, raw, failures, DECLARED),
        split(frame, shuffled, failures, DECLARED),
    ]
    held = sorted({i for i, _, sev in marks if sev != "warn"})
    text = dict(zip(raw["_row_id"], raw["a"], strict=True))
    for result in results:
        q = result.quarantine
        assert q["_row_id"].to_list() == held
        assert [r["a"] for r in q["_raw"].to_list()] == [text[i] for i in held]
        for row, reasons, got in zip(held, q["_reasons"], q["_failures"], strict=True):
            mine = [(r, f"{k}") for k, (i, r, _) in enumerate(marks) if i == row]
            assert reasons.to_list() == sorted({f"a|{r}" for r, _ in mine})
            want = sorted(mine, key=lambda m: m[0])  # stable: one reason's failures in order
            assert [(f["reason"], f["value"]) for f in got] == [(f"a|{r}", v) for r, v in want]


def test_quarantine_keeps_typed_values_raw_text_and_extra_columns_as_json() -> None:
    frame, raw = _frame(3)
    frame = frame.with_columns(pl.Series("a", [0, None, 2]), pl.Series("tip", ["1", None, "x"]))
    raw = raw.with_columns(pl.Series("a", ["0", "zero", "2"]), pl.Series("tip", ["1", None, "x"]))
    ids = frame["_row_id"]
    failures = make_failures([ids[1]], column="a", rule="type", severity="error", values=["zero"])
    q = split(frame, raw, failures, DECLARED).quarantine
    assert q.columns == [
        "_row_id", "_source_file", "_source_row", "a", "b", "_raw", "_extra", "_reasons",
        "_failures",
    ]  # fmt: skip
    assert q["a"].to_list() == [None]
    assert q["_raw"].to_list() == [{"a": "zero", "b": "x1"}]
    assert [json.loads(e) for e in q["_extra"]] == [{"tip": None}]


def test_quarantine_of_partitions_with_different_columns_reads_with_one_glob(
    make_dataset: SpecFactory,
) -> None:
    header = "id,amount,count,when,kind"
    spec = make_dataset(
        {
            "2024-01-01": f"{header},bonus\na,500,1,2024-01-01 10:00:00,a,7\nb,1,2,x,b,8\n",
            "2024-01-02": f"{header},tip,note\nc,900,3,2024-01-02 10:00:00,a,1,hi\nd,2,z,,a,2,\n",
            "2024-01-03": "when,id\n2024-01-03 10:00:00,e\n",
            "2024-01-04": f"{header}\nf,5,1,2024-01-04 10:00:00,a\n",
        }
    )
    for day in ("2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"):
        run_partition(str(spec), day)
    root = spec.parent / "out" / "quarantine"
    assert pl.read_parquet(root / "date=2024-01-04" / "part-00000.parquet").height == 0
    q = pl.scan_parquet(root / "*" / "*.parquet").sort("_source_file", "_source_row").collect()
    assert q.schema["amount"] == pl.Float64
    assert q.schema["when"] == pl.Datetime("us")
    assert q["id"].to_list() == ["a", "b", "c", "d", "e"]
    assert q["amount"].to_list() == [500.0, 1.0, 900.0, 2.0, None]
    assert q["amount"].max() == 900.0  # numbers, not text ("900" < "1000" as text)
    assert q.unnest("_raw", separator=".")["_raw.when"].to_list() == [
        "2024-01-01 10:00:00", "x", "2024-01-02 10:00:00", None, "2024-01-03 10:00:00"
    ]  # fmt: skip
    assert [json.loads(e) for e in q["_extra"]] == [
        {"bonus": "7"}, {"bonus": "8"}, {"tip": "1", "note": "hi"}, {"tip": "2", "note": None}, {}
    ]  # fmt: skip
    assert {r for rs in q["_reasons"] for r in rs} >= {"when|type", "count|type"}
