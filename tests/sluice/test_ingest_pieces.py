"""Reading a partition in pieces gives what reading its files whole gives.

Every comparison runs the whole-file ingest (:func:`sluice.ingest.ingest`) and the piece path
(:func:`sluice.ingest.pieces.plan_partition` then :func:`~sluice.ingest.pieces.read_pieces`) on
the same files, with pieces of a few records and scan blocks of a few bytes, so that record
boundaries, quoted newlines and multi-byte characters fall across pieces and blocks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.config import CsvOptions, LoadedSpec, Partition, load_spec
from sluice.core.errors import InputError
from sluice.core.text import as_text
from sluice.ingest import Ingested, ingest, list_source_files, pieces
from sluice.ingest.pieces import Plan, plan_partition, read_pieces, scan_text
from sluice.ingest.text import _csv_exact, _csv_fast, wide_encoding
from tests.robustness.corpus import CASES, HEADER, Case, good, not_utf8_parquet, parquet
from tests.robustness.support import write_dataset

DAY = "2024-01-01"


@dataclass(frozen=True)
class Read:
    """What the piece path gave: its plan, and the pieces put together."""

    plan: Plan
    frame: pl.DataFrame
    raw: pl.DataFrame
    failures: pl.DataFrame


def _pieces(loaded: LoadedSpec, partition: Partition, rows: int) -> Read:
    plan = plan_partition(loaded, partition, list_source_files(loaded, partition), rows)
    got = list(read_pieces(loaded, plan))
    assert all(p.frame.height <= max(rows, 1) * 2 for p in got if len(got) > 1)
    return Read(
        plan,
        pl.concat([p.frame for p in got]),
        pl.concat([p.raw for p in got]),
        pl.concat([p.failures for p in got]),
    )


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns, nulls_last=True)


def assert_same(want: Ingested, got: Read) -> None:
    """The piece path's frame, raw text, failures (as a set), columns and files equal ingest's
    (whose raw values are as read: their text is what the piece path keeps)."""
    assert got.frame.schema == want.frame.schema
    assert got.frame.equals(want.frame)
    text = as_text(want.raw)
    assert got.raw.schema == text.schema
    assert got.raw.equals(text)
    assert _sorted(got.failures).equals(_sorted(want.failures))
    assert got.plan.missing == want.missing_columns
    assert got.plan.extra == want.extra_columns
    assert got.plan.retyped == want.retyped_columns
    sources = [f.source() for f in got.plan.files]
    assert [s.as_dict() for s in sources] == [s.as_dict() for s in want.files]
    assert [(s.aliases, s.types) for s in sources] == [(s.aliases, s.types) for s in want.files]


def compare(
    root: Path,
    files: Mapping[str, bytes] | bytes,
    fmt: str,
    rows: tuple[int, ...] = (1, 2, 7),
    schema: Mapping[str, Any] | None = None,
) -> str:
    """Ingest ``files`` whole and in pieces of each of ``rows`` records; both give the same rows,
    or both the same error. Returns the error, or ``""``."""
    spec = write_dataset(root, {DAY: files}, fmt=fmt, schema=schema)
    loaded = load_spec(spec)
    partition = loaded.spec.partition.parse(DAY)
    try:
        want = ingest(loaded, partition)
    except InputError as exc:
        error = str(exc)
    else:
        for n in rows:
            assert_same(want, _pieces(loaded, partition, n))
        return ""
    for n in rows:
        with pytest.raises(InputError) as got:
            _pieces(loaded, partition, n)
        assert str(got.value) == error
    return error


@pytest.fixture(params=[3, 64], ids=["block3", "block64"])
def small_blocks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """The scan reads a few bytes at a time."""
    monkeypatch.setattr(pieces, "BLOCK", request.param)
    block: int = request.param
    return block


TEXT_CASES = [c for c in CASES if c.fmt in ("csv", "ndjson")]


@pytest.mark.parametrize("case", [c for c in CASES], ids=lambda c: c.name)
def test_corpus_whole_and_in_pieces_agree(case: Case, tmp_path: Path) -> None:
    compare(tmp_path, case.content, case.fmt, schema=case.schema)


@pytest.mark.parametrize("case", TEXT_CASES[::5], ids=lambda c: c.name)
def test_corpus_with_tiny_scan_blocks(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pieces, "BLOCK", 5)
    compare(tmp_path, case.content, case.fmt, rows=(2,), schema=case.schema)


def _csv(*lines: str, end: str = "\n", header: str = HEADER) -> bytes:
    return (end.join([header, *lines]) + end).encode()


def _quoted(i: int) -> str:
    return f'r{i},1.5,{i},2024-01-01 10:00:00,"two\nlines ""q"" {i}\r\nand, more"'


HOSTILE_CSV: dict[str, bytes] = {
    "quoted_newlines": _csv(*[_quoted(i) if i % 2 else good(i) for i in range(12)]),
    "crlf_bom": b"\xef\xbb\xbf" + _csv(*[good(i) for i in range(9)], end="\r\n"),
    "bom_blank_line_header": b"\xef\xbb\xbf\n" + _csv(*[good(i) for i in range(5)]),
    "bom_quoted_header": b'\xef\xbb\xbf"id","amount",count,when,kind\n' + _csv(good(1))[32:],
    "lone_cr": _csv(*[good(i) for i in range(9)], end="\r"),
    "ragged_late": _csv(*[good(i) for i in range(10)], "r10,2", good(11), "r12,1,2,3,4,5,6"),
    "ragged_first": _csv("r0,2", *[good(i) for i in range(1, 10)]),
    "bad_bytes_late": _csv(*[good(i) for i in range(9)]) + b"r9,1,1,2024-01-01 10:00:00,\xff\n",
    "blank_lines": b"\n\r\n" + _csv(good(0), "", "", good(1), "\r", good(2), "", end="\n"),
    "header_only": HEADER.encode(),
    "header_only_newline": (HEADER + "\n").encode(),
    "one_record": _csv(good(0)),
    "no_trailing_newline": _csv(*[good(i) for i in range(8)])[:-1],
    "unclosed_quote_late": _csv(*[good(i) for i in range(9)], 'r9,1,1,x,"open\n', good(10)),
    "quote_in_field": _csv(good(0), 'r1,1,1,2024-01-01 10:00:00,a"b', good(2), '"r3",1,1,x,"c\nd"'),
    "text_after_quote": _csv(good(0), 'r1,1,1,x,"ab"c', *[good(i) for i in range(2, 8)]),
    "duplicates_across": _csv(*[good(i % 3) for i in range(10)]),
    "all_null_column": _csv(*[f"r{i},,,," for i in range(9)]),
    "unicode": _csv(*[f"r{i},1,1,2024-01-01 10:00:00,é€😀{i}" for i in range(9)]),
    "empty": b"",
    "only_blank_lines": b"\n\n\r\n",
    "nul_bytes": _csv(good(0), "r1,1,1,2024-01-01 10:00:00,a\x00b", good(2)),
    "extra_column": _csv(*[f"{good(i)},x{i}" for i in range(6)], header=HEADER + ",more"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_CSV))
def test_hostile_csv(name: str, tmp_path: Path, small_blocks: int) -> None:
    compare(tmp_path, HOSTILE_CSV[name], "csv")


def test_unclosed_quote_error_names_the_whole_files_line(tmp_path: Path) -> None:
    error = compare(tmp_path, HOSTILE_CSV["unclosed_quote_late"], "csv", rows=(2,))
    assert error.endswith(
        "data.csv:11: a quoted field opened on this record is never closed "
        "(it would swallow every line after it)"
    )


def test_csv_pieces_are_cut_at_record_boundaries_only(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_bytes(HOSTILE_CSV["quoted_newlines"])
    scan = scan_text(str(path), "csv", CsvOptions(), rows=2, block=7)
    assert not scan.whole
    assert len(scan.pieces) == 6
    data = path.read_bytes()
    head = data[: scan.header_end]
    for start, end in scan.pieces[1:]:
        read, bad = _csv_exact(head + data[start:end], CsvOptions(), str(path))
        assert read.height == 2
        assert not bad


def test_irregular_quoting_is_read_as_one_piece(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_bytes(HOSTILE_CSV["quote_in_field"])
    scan = scan_text(str(path), "csv", CsvOptions(), rows=1, block=4)
    assert scan.whole
    assert scan.pieces == ((0, path.stat().st_size),)


def test_scan_hashes_and_checks_the_encoding(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "b.csv"
    path.write_bytes(HOSTILE_CSV["bad_bytes_late"])
    scan = scan_text(str(path), "csv", CsvOptions(), rows=3, block=5)
    assert scan.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not scan.valid
    path.write_bytes(HOSTILE_CSV["unicode"])
    assert scan_text(str(path), "csv", CsvOptions(), rows=3, block=5).valid


def _ndjson(*lines: str, end: str = "\n") -> bytes:
    return (end.join(lines) + end).encode()


def _obj(i: int, **more: Any) -> str:
    return json.dumps({"id": f"r{i}", "amount": i + 0.5, "count": i, **more})


HOSTILE_NDJSON: dict[str, bytes] = {
    "late_keys": _ndjson(*[_obj(i) for i in range(8)], _obj(8, late=1, kind="z"), _obj(9, when=3)),
    "bom_start_and_middle": b"\xef\xbb\xbf"
    + _ndjson(_obj(0), _obj(1))
    + b"\xef\xbb\xbf"
    + _ndjson(_obj(2), _obj(3)),
    "bad_lines_piece": _ndjson(_obj(0), "not json", "[1]", '{"a":1,"a":2}', _obj(4)),
    "bad_utf8": _ndjson(_obj(0), _obj(1)) + b'{"id": "\xff"}\n' + _ndjson(_obj(3)),
    "blank_and_crlf": _ndjson(_obj(0), "", "  ", _obj(1), "", _obj(2), end="\r\n"),
    "no_trailing_newline": _ndjson(*[_obj(i) for i in range(5)])[:-1],
    "no_objects": _ndjson("1", "[2]", "x"),
    "one_record": _ndjson(_obj(0)),
    "u2028": _ndjson(*[json.dumps({"id": f"r{i}\u2028x", "kind": "\u2029"}) for i in range(6)]),
    "nested": _ndjson(*[json.dumps({"id": f"r{i}", "kind": {"a": [i, None]}}) for i in range(5)]),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_NDJSON))
def test_hostile_ndjson(name: str, tmp_path: Path, small_blocks: int) -> None:
    compare(tmp_path, HOSTILE_NDJSON[name], "ndjson")


def _row_groups(tables: list[pa.Table]) -> bytes:
    import io

    buf = io.BytesIO()
    with pq.ParquetWriter(buf, tables[0].schema) as writer:
        for t in tables:
            writer.write_table(t)
    return buf.getvalue()


def _group(first: int, n: int, kind: list[str | None] | None = None) -> pa.Table:
    return pa.table(
        {
            "id": pa.array([f"r{i}" for i in range(first, first + n)]),
            "amount": pa.array([i + 0.5 for i in range(n)]),
            "count": pa.array(list(range(n)), pa.int32()),
            "kind": pa.array(kind if kind is not None else ["a"] * n, pa.string()),
        }
    )


HOSTILE_PARQUET: dict[str, bytes] = {
    "three_row_groups": _row_groups([_group(0, 5), _group(5, 1, [None]), _group(6, 7)]),
    "no_rows": _row_groups([_group(0, 0)]),
    "one_row": parquet(pl.DataFrame({"id": ["r0"], "count": [1]})),
    "not_utf8_in_a_later_row_group": not_utf8_parquet(12, row=9, row_group_size=5),
    "not_utf8_undeclared": not_utf8_parquet(12, row=9, row_group_size=5, column="note"),
    "not_utf8_in_a_list": not_utf8_parquet(
        12, row=9, row_group_size=5, column="note", nested="list"
    ),
    "not_utf8_in_a_struct": not_utf8_parquet(
        12, row=9, row_group_size=5, column="note", nested="struct"
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_PARQUET))
def test_parquet_by_row_groups(name: str, tmp_path: Path) -> None:
    compare(tmp_path, HOSTILE_PARQUET[name], "parquet", rows=(1, 3, 100))


def test_several_files_columns_and_identical_bytes(tmp_path: Path) -> None:
    files = {
        "a.csv": _csv(*[good(i) for i in range(5)]),
        "b.csv": _csv(*[f"r{i},1,x{i}" for i in range(4)], header="id,amount,more"),
        "c.csv": _csv(header="kind,other"),
    }
    compare(tmp_path / "mixed", files, "csv")
    same = _csv(*[good(i) for i in range(3)])
    error = compare(tmp_path / "same", {"a.csv": same, "b.csv": same}, "csv")
    assert "two source files have identical bytes" in error


def test_several_parquet_files_retyped(tmp_path: Path) -> None:
    a = pa.table({"id": ["r0", "r1"], "x": pa.array([1, 2], pa.int32())})
    b = pa.table({"id": ["r2"], "x": pa.array(["three"])})
    c = pa.table({"id": ["r3"], "x": pa.array([None], pa.null())})
    files = {
        "a.parquet": _row_groups([a]),
        "b.parquet": _row_groups([b, b]),
        "c.parquet": _row_groups([c]),
    }
    compare(tmp_path, files, "parquet")


def test_fast_and_exact_paths_agree_where_the_fast_path_reads() -> None:
    """A file that falls back to the exact path part way reads its first pieces fast: on every
    text the fast path takes, both give the same rows."""
    checked = 0
    for data in [*HOSTILE_CSV.values(), *(c.data for c in CASES if c.fmt == "csv")]:
        if wide_encoding(data) is not None:
            continue  # refused whole before either path reads it (UTF-16 or UTF-32 text)
        try:
            fast = _csv_fast(data, CsvOptions(), "x.csv")
        except InputError:
            continue
        if fast is None:
            continue
        exact, bad = _csv_exact(data, CsvOptions(), "x.csv")
        assert not bad
        assert fast.equals(exact)
        checked += 1
    assert checked > 20


CELLS = st.sampled_from(["a", "", " ", '"', '""', ",", "\n", "\r\n", "\r", "é", "\xff", "NA", "1"])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.lists(st.lists(CELLS, min_size=1, max_size=6).map("".join), max_size=12),
    head=st.sampled_from(["", "\ufeff", "\ufeff\n", "\n\r\n", '\ufeff"i\nd"']),
    rows=st.integers(1, 4),
    block=st.integers(1, 9),
)
def test_generated_csv_text(
    body: list[str], head: str, rows: int, block: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data = (head + "id,kind\n" + "\n".join(body)).encode("utf-8", "surrogateescape")
    data = data.replace("\xff".encode(), b"\xff")
    root = tmp_path_factory.mktemp("gen")
    saved = pieces.BLOCK
    pieces.BLOCK = block
    try:
        compare(root, data, "csv", rows=(rows,), schema={"id": "string", "kind": "string"})
    finally:
        pieces.BLOCK = saved


def test_object_store_files_are_scanned_and_read_by_byte_ranges(tmp_path: Path) -> None:
    import fsspec

    data = HOSTILE_CSV["quoted_newlines"]
    local = tmp_path / "a.csv"
    local.write_bytes(data)
    with fsspec.open("memory://bucket/a.csv", "wb") as fh:
        fh.write(data)
    remote = scan_text("memory://bucket/a.csv", "csv", CsvOptions(), rows=3, block=16)
    here = scan_text(str(local), "csv", CsvOptions(), rows=3, block=16)
    assert (remote.sha256, remote.pieces, remote.lines) == (here.sha256, here.pieces, here.lines)
    with pieces.open_source("memory://bucket/a.csv") as fh:
        parts = [pieces.read_range(fh, start, end) for start, end in remote.pieces]
    assert b"".join(parts) == data
    assert len(parts) == 4


LINES = st.sampled_from(
    [
        '{"id": "a"}',
        '{"kind": 1, "id": null}',
        '{"x": [1]}',
        "",
        " ",
        "\r",
        "nope",
        "[]",
        "\ufeff{}",
    ]
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(st.lists(LINES, min_size=1, max_size=2).map("".join), max_size=10),
    bad=st.booleans(),
    rows=st.integers(1, 4),
    block=st.integers(1, 9),
)
def test_generated_ndjson_text(
    lines: list[str], bad: bool, rows: int, block: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data = "\n".join(lines).encode() + (b'\n{"id": "\xff"}' if bad else b"")
    saved = pieces.BLOCK
    pieces.BLOCK = block
    try:
        compare(tmp_path_factory.mktemp("gen"), data, "ndjson", rows=(rows,))
    finally:
        pieces.BLOCK = saved


@pytest.mark.parametrize(
    ("name", "ragged"),
    [
        ("ragged_late", True),
        ("ragged_first", True),
        ("quoted_newlines", False),
        ("blank_lines", False),
        ("crlf_bom", False),
        ("lone_cr", False),
        ("no_trailing_newline", False),
    ],
)
def test_ragged_files_take_the_exact_path_for_every_piece(
    name: str, ragged: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(HOSTILE_CSV[name])
    assert scan_text(str(path), "csv", CsvOptions(), rows=2, block=4).ragged is ragged
    calls: list[int] = []

    def fast(data: bytes, opts: CsvOptions, where: str) -> pl.DataFrame | None:
        calls.append(len(data))
        return _csv_fast(data, opts, where)

    monkeypatch.setattr(pieces, "_csv_fast", fast)
    monkeypatch.setattr(pieces, "BLOCK", 4)
    compare(tmp_path, HOSTILE_CSV[name], "csv", rows=(2,))
    assert (not calls) is ragged


_FIELD = st.text(alphabet=["a", "ü", '"', "'", ",", ";", "\n", "\r", " "], max_size=6)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.lists(_FIELD, min_size=3, max_size=3), min_size=1, max_size=12),
    dialect=st.tuples(st.sampled_from([(",", '"'), (";", "'")]), st.sampled_from(["\n", "\r\n"])),
    block=st.integers(min_value=1, max_value=40),
    wide=st.booleans(),
)
def test_scan_cuts_every_record_where_it_ends(
    rows: list[list[str]],
    dialect: tuple[tuple[str, str], str],
    block: int,
    wide: bool,
    tmp_path: Path,
) -> None:
    (delim, quote), end = dialect

    def field(text: str) -> str:
        if any(c in text for c in (delim, quote, "\n", "\r")) or not text:
            return quote + text.replace(quote, quote * 2) + quote
        return text

    records = [delim.join(["a", "b", "c"])] + [delim.join(field(f) for f in r) for r in rows]
    if wide:
        records[-1] += delim + "x"
    data = "".join(r + end for r in records).encode()
    ends, at = [], 0
    for r in records:
        at += len((r + end).encode())
        ends.append(at)
    path = tmp_path / "g.csv"
    path.write_bytes(data)
    opts = CsvOptions(delimiter=delim, quote_char=quote)
    scan = scan_text(str(path), "csv", opts, rows=1, block=block)
    assert not scan.whole
    assert scan.header_end == ends[0]
    assert [end for _, end in scan.pieces] == ends[1:]
    assert scan.ragged is (wide and len(rows) > 0)
