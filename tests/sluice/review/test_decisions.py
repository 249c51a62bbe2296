"""Decision files: the review file round-trips; each bad decision is named by row and column."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from sluice.config import ColumnSpec
from sluice.core.failures import concat_failures, make_failures
from sluice.decide import split
from sluice.ingest import polars_dtype
from sluice.review import DecisionError, StaleDecisions, read_decisions, review_frame, write_review
from tests.robustness.corpus import corrupt

COLUMNS = {
    "id": ColumnSpec(type="string"),
    "x": ColumnSpec(type="float"),
    "code": ColumnSpec(type="int"),
    "at": ColumnSpec(type="datetime", format="%d/%m/%Y %H:%M"),
    "day": ColumnSpec(type="date"),
    "ok": ColumnSpec(type="bool"),
}
SHA = "a" * 64


def _quarantine() -> pl.DataFrame:
    """Three quarantined rows: a bad code (1), an x that did not parse (2), an outlier (3)."""
    ids = pl.Series("_row_id", [1, 2, 3, 4], pl.UInt64)
    frame = pl.DataFrame(
        {
            "_row_id": ids,
            "_source_file": ["f.csv"] * 4,
            "_source_row": [0, 1, 2, 3],
            "id": ["a", "b", "c", "d"],
            "x": [0.1 + 0.2, None, 123.456789012345, 1.0],
            "code": [7, 1, 1, 1],
            "at": [dt.datetime(2024, 3, 4, 10, 30)] * 4,
            "day": [dt.date(2024, 3, 4)] * 4,
            "ok": [True, False, None, True],
        }
    )
    raw = frame.select(
        "_row_id", *(pl.col(c).cast(pl.String) for c in COLUMNS if c != "x"), x=pl.lit("1")
    )
    failures = concat_failures(
        [
            make_failures([1], column="code", rule="in_set", severity="error", values=["7"]),
            make_failures([2], column="x", rule="type", severity="error", values=["abc"]),
            make_failures(
                [3],
                column="outlier",
                rule="default",
                severity="error",
                details=json.dumps(
                    {"score": 9.5, "threshold": 2.0, "top_features": [{"column": "x"}]}
                ),
            ),
            make_failures([4], column="code", rule="in_set", severity="error", values=["1"]),
        ]
    )
    declared = {c: polars_dtype(s) for c, s in COLUMNS.items()}
    return split(frame, raw, failures, declared).quarantine


@pytest.fixture
def review(tmp_path: Path) -> Callable[..., Path]:
    """Write the review file (CSV or Parquet), apply ``edit`` to it, return its path."""

    def make(edit: Callable[[pl.DataFrame], pl.DataFrame], suffix: str = ".csv") -> Path:
        q = _quarantine()
        path = write_review(
            review_frame(q, COLUMNS, run_id="run-1", manifest_sha256=SHA),
            tmp_path / f"review{suffix}",
            COLUMNS,
        )
        frame = pl.read_csv(path, infer_schema=False) if suffix == ".csv" else pl.read_parquet(path)
        edited = edit(frame)
        if suffix == ".csv":
            edited.write_csv(path)
        else:
            edited.write_parquet(path)
        return path

    return make


def _decide(**by_id: str) -> Callable[[pl.DataFrame], pl.DataFrame]:
    def edit(frame: pl.DataFrame) -> pl.DataFrame:
        ids = frame["_row_id"].cast(pl.String).to_list()
        return frame.with_columns(
            pl.Series("decision", [by_id.get(f"r{i}") for i in ids], pl.String)
        )

    return edit


def test_review_file_carries_reasons_explanation_and_identity(
    review: Callable[..., Path],
) -> None:
    frame = pl.read_csv(review(lambda f: f), infer_schema=False)
    assert frame["_commit_manifest_sha256"].to_list() == [SHA] * 4
    assert frame["_commit_run_id"].unique().to_list() == ["run-1"]
    row3 = frame.filter(pl.col("_row_id") == "3").to_dicts()[0]
    assert "default: score 9.5 above threshold 2.0" in row3["_explanation"]
    assert json.loads(row3["_failures"])[0]["details"]["score"] == 9.5
    row2 = frame.filter(pl.col("_row_id") == "2").to_dicts()[0]
    assert row2["_reasons"] == "x|type"
    assert row2["x"] is None


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_unedited_values_round_trip_and_fixes_are_typed(
    review: Callable[..., Path], suffix: str
) -> None:
    def edit(frame: pl.DataFrame) -> pl.DataFrame:
        frame = _decide(r1="fix", r3="release", r4="reject")(frame)
        code = frame["code"].cast(pl.String)
        fixed = pl.Series("code", ["1", *code.to_list()[1:]]).cast(frame.schema["code"])
        return frame.with_columns(fixed)

    got = read_decisions(review(edit, suffix), _quarantine(), COLUMNS, commit=SHA)
    by = {d.row_id: d for d in got.decisions}
    assert set(by) == {1, 3, 4}
    assert by[1].changed == {"code": ("7", "1")}
    assert by[1].values["code"] == 1
    assert by[3].changed == {}, "an unedited row reads back as exactly its values"
    assert by[3].values["x"] == 123.456789012345
    assert by[3].values["at"] == dt.datetime(2024, 3, 4, 10, 30)
    assert got.manifest_sha256 == SHA
    assert got.run_id == "run-1"


@pytest.mark.parametrize("separator", [";", "\t"])
def test_a_csv_a_spreadsheet_saved_with_another_separator_reads(
    review: Callable[..., Path], separator: str
) -> None:
    path = review(_decide(r1="fix", r4="reject"))
    frame = pl.read_csv(path, infer_schema=False)
    frame.with_columns(pl.lit("2").alias("code")).write_csv(path, separator=separator)
    with pytest.raises(DecisionError, match="decision reject keeps the row's values") as info:
        read_decisions(path, _quarantine(), COLUMNS, commit=SHA)
    assert "_row_id 1" not in str(info.value), "the fix of row 1 is read as a fix"


def _problem(path: Path) -> str:
    with pytest.raises(DecisionError) as info:
        read_decisions(path, _quarantine(), COLUMNS, commit=SHA)
    return str(info.value)


CASES: list[tuple[str, Callable[[pl.DataFrame], pl.DataFrame], list[str]]] = [
    (
        "unknown decision",
        _decide(r1="approve"),
        ["line 2 (_row_id 1)", "'approve' is not a decision", "release, fix, reject"],
    ),
    (
        "unknown row",
        lambda f: _decide(r1="reject")(f).with_columns(
            pl.when(pl.col("_row_id") == "1")
            .then(pl.lit("999"))
            .otherwise(pl.col("_row_id"))
            .alias("_row_id")
        ),
        ["_row_id 999 is not a row of the partition's quarantine"],
    ),
    (
        "not a row id",
        lambda f: _decide(r1="reject")(f).with_columns(
            pl.when(pl.col("_row_id") == "1")
            .then(pl.lit("-4"))
            .otherwise(pl.col("_row_id"))
            .alias("_row_id")
        ),
        ["line 2: _row_id must be a row id", "'-4'"],
    ),
    (
        "duplicate",
        lambda f: pl.concat([_decide(r1="reject")(f), _decide(r1="release")(f).head(1)]),
        ["line 6 (_row_id 1): _row_id 1 has a decision already at line 2"],
    ),
    (
        "type-invalid fix",
        lambda f: _decide(r1="fix")(f).with_columns(
            pl.when(pl.col("_row_id") == "1")
            .then(pl.lit("seven"))
            .otherwise(pl.col("code"))
            .alias("code")
        ),
        ["line 2 (_row_id 1): column code: 'seven' is not a valid int"],
    ),
    (
        "bad datetime fix",
        lambda f: _decide(r1="fix")(f).with_columns(pl.lit("2024-13-45 99:00").alias("at")),
        ["column at: '2024-13-45 99:00' is not a valid datetime (%d/%m/%Y %H:%M)"],
    ),
    (
        "release with edits",
        lambda f: _decide(r4="release")(f).with_columns(pl.lit("2").alias("code")),
        ["line 5 (_row_id 4): decision release keeps the row's values", "code", "use fix"],
    ),
    (
        "release of an unparsed cell",
        _decide(r2="release"),
        ["line 3 (_row_id 2): decision release: the row's x did not parse"],
    ),
    (
        "fix leaving an unparsed cell",
        _decide(r2="fix"),
        ["decision fix: column(s) x did not parse and were not given a corrected value"],
    ),
    (
        "bad flag_wrong",
        lambda f: _decide(r1="reject")(f).with_columns(pl.lit("maybe").alias("flag_wrong")),
        ["column flag_wrong: 'maybe' is not true or false"],
    ),
    (
        "missing column",
        lambda f: _decide(r1="reject")(f).drop("_commit_manifest_sha256"),
        ["needs the columns _row_id, decision, _commit_manifest_sha256", "missing"],
    ),
    (
        "no rows",
        lambda f: f.head(0),
        ["the file holds no rows", "nothing to do"],
    ),
    (
        "two commits",
        lambda f: _decide(r1="reject")(f).with_columns(
            pl.when(pl.col("_row_id") == "1")
            .then(pl.lit("b" * 64))
            .otherwise(pl.col("_commit_manifest_sha256"))
            .alias("_commit_manifest_sha256")
        ),
        ["must name one commit", "found 2 values"],
    ),
]


@pytest.mark.parametrize(("edit", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_decisions_are_named_by_row_and_column(
    review: Callable[..., Path],
    edit: Callable[[pl.DataFrame], pl.DataFrame],
    expected: list[str],
) -> None:
    message = _problem(review(edit))
    for text in expected:
        assert text in message, message
    assert "Traceback" not in message


def test_every_problem_is_reported_at_once(review: Callable[..., Path]) -> None:
    message = _problem(review(_decide(r1="approve", r2="release", r3="maybe")))
    assert "3 problem(s)" in message
    assert "nothing was changed" in message


def test_a_file_made_from_another_commit_is_stale(review: Callable[..., Path]) -> None:
    path = review(_decide(r1="reject"))
    with pytest.raises(StaleDecisions, match="another commit"):
        read_decisions(path, _quarantine(), COLUMNS, commit="c" * 64)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("review.xlsx", b"PK\x03\x04", "Parquet or CSV"),
        ("review.parquet", b"not parquet at all", "cannot read it as parquet"),
        ("review.csv", b"", "cannot read it as csv"),
    ],
)
def test_unreadable_files_are_refused_cleanly(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DecisionError, match=expected):
        read_decisions(path, _quarantine(), COLUMNS, commit=SHA)


@pytest.mark.parametrize(
    ("seed", "flips"),
    [
        (92, 4),  # polars' Parquet reader panicked (a traceback, or an aborted process)
        (48, 4),  # pyarrow reads text that is not UTF-8; polars panicked taking its values
        (335, 4),
        *[(seed, 16) for seed in range(8)],
    ],
)
def test_a_corrupt_parquet_decision_file_is_refused_not_a_crash(
    tmp_path: Path, seed: int, flips: int
) -> None:
    path = write_review(
        review_frame(_quarantine(), COLUMNS, run_id="run-1", manifest_sha256=SHA),
        tmp_path / "review.parquet",
        COLUMNS,
    )
    path.write_bytes(corrupt(path.read_bytes(), seed, flips))
    outcome = "read"
    try:
        read_decisions(path, _quarantine(), COLUMNS, commit=SHA)
    except (DecisionError, StaleDecisions) as exc:
        outcome = str(exc)
    assert outcome == "read" or str(path) in outcome
