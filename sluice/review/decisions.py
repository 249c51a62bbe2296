"""A filled-in review file, read back and checked before anything moves.

Every problem is collected and reported at once, each naming the line (CSV, header excluded
from the count: line 2 is the first row) or record (Parquet, from 1), the ``_row_id`` and the
column: a decision that is not release, fix or reject; a ``_row_id`` that is not a row of the
quarantine the file was made from, or appears twice; a fix whose value does not parse as the
column's declared type (by the partition's own parser, :func:`sluice.ingest.type_frame`); a
release or reject whose values were edited (only a fix changes values); a release of a row
whose cell did not parse (it would put a null in clean: fix it instead). Rows with no decision
are left as they are.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from sluice.config import ColumnSpec
from sluice.core.errors import InputError, SluiceError
from sluice.core.files import Limit, config_error, read_regular, sha256_hex
from sluice.core.frame import MALFORMED, ROW_ID
from sluice.ingest import arrow_reader, arrow_to_polars, type_frame
from sluice.review.export import (
    COMMIT_RUN_ID,
    COMMIT_SHA256,
    DECISION,
    DECISIONS,
    FLAG_WRONG,
    NOTE,
    as_text,
)

DECISIONS_LIMIT = Limit("SLUICE_MAX_DECISIONS_BYTES", 512 << 20)
SHOWN_PROBLEMS = 25
TRUE_WORDS = ("true", "yes", "y", "1")
FALSE_WORDS = ("false", "no", "n", "0", "")


class DecisionError(SluiceError):
    """A decision file that cannot be applied: nothing was changed."""


class StaleDecisions(DecisionError):
    """A decision file made from another commit of the partition than the current one."""

    def __init__(self, path: Path, file_sha256: str, made_from: str, current: str) -> None:
        super().__init__(
            f"{path}: made from another commit of the partition (manifest sha256 "
            f"{made_from[:12]}...), but the partition's current commit is {current[:12]}...: "
            "its rows may have moved since. Make a new review file with `sluice review` and "
            "decide again; nothing was changed"
        )
        self.file_sha256 = file_sha256
        self.made_from = made_from


@dataclass(frozen=True)
class Decision:
    """One row's decision. ``values`` are the row's declared values after the decision (typed);
    ``changed`` maps each fixed column to its value before and after, as text."""

    row_id: int
    decision: str
    note: str | None
    flag_wrong: bool
    where: str
    values: dict[str, Any] = field(default_factory=dict)
    changed: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class Decisions:
    """A decision file: where it is, its sha256, the commit it was made from, its decisions."""

    path: Path
    sha256: str
    run_id: str | None
    manifest_sha256: str
    decisions: list[Decision]


def _read(path: Path, data: bytes) -> tuple[pl.DataFrame, str]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":  # pyarrow: polars' reader panics on some corrupt files
            table = pq.ParquetFile(arrow_reader(data)).read()
            table.validate(full=True)  # a corrupt file's arrays, before polars takes them
            return arrow_to_polars(table, str(path))[0], "record"
        if suffix == ".csv":
            return pl.read_csv(
                io.BytesIO(data), infer_schema=False, separator=_separator(data)
            ), "line"
    except (pl.exceptions.PolarsError, pa.ArrowException, InputError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DecisionError(f"{path}: cannot read it as {suffix[1:]}: {first}") from None
    raise DecisionError(
        f"{path}: a decision file is a review file (sluice review) in Parquet or CSV, by its "
        f"extension (.parquet, .csv); found {suffix or 'no extension'!r}"
    )


def _separator(data: bytes) -> str:
    """The CSV's field separator: a comma, or the semicolon or tab a spreadsheet saved with."""
    header = data.split(b"\n", 1)[0]
    if b"," not in header:
        for sep in (b";", b"\t"):
            if sep in header:
                return sep.decode()
    return ","


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def read_decisions(
    path: Path,
    quarantine: pl.DataFrame,
    columns: Mapping[str, ColumnSpec],
    *,
    commit: str | None = None,
) -> Decisions:
    """Read and check a decision file against the committed ``quarantine`` it must be about.

    ``commit`` is the sha256 of the partition's current manifest: a file made from another
    raises :class:`StaleDecisions` before its rows are looked at. Raises
    :class:`DecisionError` listing every problem found (row, column, what was found and what is
    allowed).
    """
    data = read_regular(path, config_error(path, "decision file"), DECISIONS_LIMIT)
    frame, unit = _read(path, data)
    need = [ROW_ID, DECISION, COMMIT_SHA256]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise DecisionError(
            f"{path}: a decision file needs the columns {', '.join(need)} (as `sluice review` "
            f"writes them); missing: {', '.join(missing)}"
        )
    if frame.height == 0:
        raise DecisionError(
            f"{path}: the file holds no rows (the quarantine was empty?); nothing to do"
        )
    first = 2 if unit == "line" else 1
    frame = frame.with_row_index("_at", offset=first)
    shas = sorted({s for s in frame.get_column(COMMIT_SHA256).cast(pl.String).to_list() if s})
    if len(shas) != 1:
        raise DecisionError(
            f"{path}: column {COMMIT_SHA256} must name one commit (the manifest the review was "
            f"made from) on every row; found {len(shas)} values {shas[:3]}"
        )
    if commit is not None and shas[0] != commit:
        raise StaleDecisions(path, sha256_hex(data), shas[0], commit)
    run_ids = (
        sorted({s for s in frame.get_column(COMMIT_RUN_ID).cast(pl.String).to_list() if s})
        if COMMIT_RUN_ID in frame.columns
        else []
    )
    problems: list[str] = []
    rows = _decided_rows(frame, unit, problems)
    known = quarantine.select(ROW_ID, *columns, "_failures")
    by_id = {int(r[ROW_ID]): r for r in known.iter_rows(named=True)}
    seen: dict[int, str] = {}
    picked: list[tuple[int, dict[str, Any], str]] = []
    for row_id, row, where in rows:
        if row_id in seen:
            problems.append(f"{where}: _row_id {row_id} has a decision already at {seen[row_id]}")
            continue
        seen[row_id] = where
        if row_id not in by_id:
            problems.append(
                f"{where}: _row_id {row_id} is not a row of the partition's quarantine at the "
                "commit the file names"
            )
            continue
        picked.append((row_id, row, where))
    decisions = _with_values(
        frame,
        picked=picked,
        known=known,
        by_id=by_id,
        columns=columns,
        path=path,
        problems=problems,
    )
    if problems:
        shown = "\n  ".join(problems[:SHOWN_PROBLEMS])
        more = len(problems) - SHOWN_PROBLEMS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise DecisionError(
            f"{path}: {len(problems)} problem(s); nothing was changed:\n  {shown}{tail}"
        )
    return Decisions(
        path=path,
        sha256=sha256_hex(data),
        run_id=run_ids[0] if len(run_ids) == 1 else None,
        manifest_sha256=shas[0],
        decisions=decisions,
    )


def _decided_rows(
    frame: pl.DataFrame, unit: str, problems: list[str]
) -> list[tuple[int, dict[str, Any], str]]:
    out: list[tuple[int, dict[str, Any], str]] = []
    for row in frame.iter_rows(named=True):
        where = f"{unit} {row['_at']}"
        decision = _text(row.get(DECISION))
        if decision is None:
            continue
        raw_id = _text(row.get(ROW_ID))
        try:
            row_id = int(raw_id) if raw_id is not None else -1
        except ValueError:
            row_id = -1
        if not 0 <= row_id < 1 << 64:
            problems.append(f"{where}: _row_id must be a row id of the review; found {raw_id!r}")
            continue
        where = f"{where} (_row_id {row_id})"
        if decision.lower() not in DECISIONS:
            problems.append(
                f"{where}: column {DECISION}: {decision!r} is not a decision; allowed: "
                f"{', '.join(DECISIONS)} (or empty to leave the row undecided)"
            )
            continue
        flag = _text(row.get(FLAG_WRONG))
        if (flag or "").lower() not in (*TRUE_WORDS, *FALSE_WORDS):
            problems.append(
                f"{where}: column {FLAG_WRONG}: {flag!r} is not true or false (or empty)"
            )
            continue
        wanted = {**row, DECISION: decision.lower(), FLAG_WRONG: (flag or "").lower() in TRUE_WORDS}
        out.append((row_id, wanted, where))
    return out


def _with_values(
    frame: pl.DataFrame,
    *,
    picked: list[tuple[int, dict[str, Any], str]],
    known: pl.DataFrame,
    by_id: Mapping[int, dict[str, Any]],
    columns: Mapping[str, ColumnSpec],
    path: Path,
    problems: list[str],
) -> list[Decision]:
    """Each picked row's values: the file's, parsed as declared, checked against the decision."""
    if not picked:
        return []
    present = [c for c in columns if c in frame.columns]
    at = pl.Series("_at", [int(r["_at"]) for _, r, _ in picked], pl.UInt32)
    chosen = frame.join(at.to_frame(), on="_at", how="semi", maintain_order="left")
    text = _as_text_of_file(chosen.select(present), columns)
    ids = pl.Series(ROW_ID, [rid for rid, _, _ in picked], pl.UInt64)
    typed = type_frame(text, {c: columns[c] for c in present}, ids, str(path))
    bad_cells = {
        (int(r[ROW_ID]), r["column"]): r["value"] for r in typed.failures.iter_rows(named=True)
    }
    new_rows = typed.frame.iter_rows(named=True)
    wanted = known.filter(pl.col(ROW_ID).is_in(ids.implode())).select(ROW_ID, *columns)
    old_text = {int(r[ROW_ID]): r for r in as_text(wanted, columns).iter_rows(named=True)}
    new_text = text.with_columns(pl.Series(ROW_ID, ids)).iter_rows(named=True)
    out: list[Decision] = []
    for (rid, row, where), new, new_t in zip(picked, new_rows, new_text, strict=True):
        old = by_id[rid]
        decision = row[DECISION]
        values = {c: (new[c] if c in present else old[c]) for c in columns}
        changed: dict[str, tuple[str | None, str | None]] = {}
        for c in present:
            if (rid, c) in bad_cells:
                problems.append(
                    f"{where}: column {c}: {bad_cells[(rid, c)]!r} is not a valid "
                    f"{columns[c].type}" + (f" ({columns[c].format})" if columns[c].format else "")
                )
                continue
            if new[c] != old[c]:
                changed[c] = (old_text[rid][c], new_t[c])
        unparsed = _unparsed(old.get("_failures"))
        if decision != "fix" and changed:
            names = ", ".join(sorted(changed))
            problems.append(
                f"{where}: decision {decision} keeps the row's values, but column(s) {names} "
                "were changed; use fix to change values"
            )
        elif decision == "release" and unparsed:
            problems.append(
                f"{where}: decision release: the row's {', '.join(unparsed)} did not parse, so "
                "release would put a null in clean; use fix with the corrected value"
            )
        elif decision == "fix":
            still = [c for c in unparsed if c != MALFORMED and c not in changed]
            if MALFORMED in unparsed and not changed:
                problems.append(
                    f"{where}: decision fix: the record was malformed, so every value must be "
                    "given; no column was changed"
                )
            elif still:
                problems.append(
                    f"{where}: decision fix: column(s) {', '.join(still)} did not parse and "
                    "were not given a corrected value"
                )
        out.append(
            Decision(
                row_id=rid,
                decision=decision,
                note=_text(row.get(NOTE)),
                flag_wrong=bool(row[FLAG_WRONG]),
                where=where,
                values=values,
                changed=changed,
            )
        )
    return out


def _as_text_of_file(frame: pl.DataFrame, columns: Mapping[str, ColumnSpec]) -> pl.DataFrame:
    """The file's declared columns as text: CSV cells as they are, Parquet values rendered."""
    typed = {c for c in frame.columns if frame.schema[c] != pl.String}
    rendered = as_text(frame.select(sorted(typed)), {c: columns[c] for c in typed})
    return frame.with_columns(rendered.get_columns()) if typed else frame


def _unparsed(failures: list[dict[str, Any]] | None) -> list[str]:
    """The columns of a quarantined row whose cell did not parse (``_row`` when malformed)."""
    out = []
    for f in failures or []:
        column = str(f.get("column"))
        if f.get("rule") == "type" or column == MALFORMED:
            out.append(column)
    return sorted(set(out))
