"""Combine the failures of every stage into the split: which rows are clean, which quarantined.

Pure functions on frames: no I/O. The write stage stores what these return.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from sluice.core.failures import concat_failures, make_failures
from sluice.core.frame import MALFORMED, PROVENANCE, ROW_ID, SOURCE_FILE, SOURCE_ROW
from sluice.core.text import as_text

QUARANTINING = ("error", "critical")
RAW = "_raw"
EXTRA = "_extra"
KEY_RULE = "key_duplicate"


def checksum(ids: pl.Series) -> str:
    """Order-independent checksum of row ids: their sum modulo 2**64, as 16 hex digits.

    Sums add up, so ``checksum(in) == checksum(clean) + checksum(quarantine)`` (mod 2**64)
    can be checked from a manifest alone.
    """
    total = int(ids.cast(pl.UInt64).to_numpy().sum(dtype=np.uint64)) if len(ids) else 0
    return f"{total:016x}"


def add_checksums(*sums: str) -> str:
    """Add checksums modulo 2**64."""
    return f"{sum(int(s, 16) for s in sums) % (1 << 64):016x}"


def drop_shadowed(validation: pl.DataFrame, ingest_failures: pl.DataFrame) -> pl.DataFrame:
    """Drop rule failures on cells that did not parse, and on malformed records.

    A cell that failed to parse is null in the typed frame; every rule on it would fail for that
    reason alone. Such a cell is judged by its ``column|type`` failure only.
    """
    if validation.is_empty() or ingest_failures.is_empty():
        return validation
    malformed = ingest_failures.filter(pl.col("column") == MALFORMED).select(ROW_ID)
    unparsed = (
        ingest_failures.filter(pl.col("column") != MALFORMED)
        .select(ROW_ID, pl.col("column").alias("_col"))
        .unique()
        .with_columns(pl.lit(True).alias("_hit"))
    )
    indexed = validation.with_row_index("_i")
    hits = (
        indexed.select("_i", ROW_ID, pl.col("column").str.split(",").alias("_col"))
        .explode("_col")
        .join(unparsed, on=[ROW_ID, "_col"], how="inner")
        .select("_i")
        .unique()
    )
    kept = indexed.join(hits, on="_i", how="anti").join(malformed, on=ROW_ID, how="anti")
    return kept.sort("_i").drop("_i")


@dataclass(frozen=True)
class Split:
    """Every row of the partition, on exactly one side, with the failures that put it there."""

    clean: pl.DataFrame
    quarantine: pl.DataFrame
    failures: pl.DataFrame
    critical: tuple[str, ...]


def partition_failures(
    row_ids: pl.Series, critical: Sequence[tuple[str, str, str]]
) -> pl.DataFrame:
    """Failures marking every row for each failed critical batch-level check.

    ``critical`` holds ``(column, rule, detail)`` triples, e.g. ``("_table",
    "expect_table_columns_to_match_set", "...")`` or ``("fare_amount", "missing_column", ...)``.
    """
    return concat_failures(
        make_failures(
            row_ids,
            column=column,
            rule=rule,
            severity="critical",
            details=json.dumps({"partition": detail}, separators=(",", ":")),
        )
        for column, rule, detail in critical
    )


def split(
    frame: pl.DataFrame,
    raw: pl.DataFrame,
    failures: pl.DataFrame,
    declared: Mapping[str, pl.DataType],
    critical: Sequence[tuple[str, str, str]] = (),
) -> Split:
    """Split rows into clean and quarantine.

    A row is quarantined when it has a failure of severity error or critical, or when any
    critical check failed (then every row is, each carrying the partition-level reasons).
    Clean rows keep provenance (``_row_id``, ``_source_file``, ``_source_row``: a clean row
    traces to a line of a source file) and the declared columns, typed (see
    :func:`clean_columns`). Quarantined rows keep
    provenance, the declared columns typed as in clean (null where a cell did not parse), and
    with one schema whatever the partition held (see :func:`quarantine_columns`): ``_raw``, a
    struct of every declared column's text as read; ``_extra``, a JSON object of the columns
    the spec does not declare (name to text); ``_reasons`` (sorted, unique) and ``_failures``.
    """
    all_failures = concat_failures([failures, partition_failures(frame[ROW_ID], critical)])
    bad = all_failures.filter(pl.col("severity").is_in(QUARANTINING)).get_column(ROW_ID).unique()
    reasons = (
        all_failures.sort(ROW_ID, "reason", maintain_order=True)
        .group_by(ROW_ID, maintain_order=True)
        .agg(
            pl.col("reason").unique(maintain_order=True).alias("_reasons"),
            pl.struct("reason", "column", "rule", "severity", "value", "details").alias(
                "_failures"
            ),
        )
    )
    # a mask, not an anti join: the clean side is most of the rows, and a join gathers them
    held = frame.get_column(ROW_ID).is_in(bad.implode())
    clean = _declared(frame.filter(~held), declared, PROVENANCE)
    # the raw text of the held rows: by the same mask when ``raw`` holds the frame's rows in its
    # order (as every stage gives them), else looked up by row id
    aligned = raw.height == frame.height and raw.get_column(ROW_ID).equals(frame[ROW_ID])
    text = as_text(raw.filter(held if aligned else pl.col(ROW_ID).is_in(bad.implode())))
    extra = [c for c in text.columns if c != ROW_ID and c not in declared]
    have = set(text.columns)  # once: per declared column, a wide frame's columns cost O(n)
    text = text.select(
        ROW_ID,
        pl.struct(
            (pl.col(c) if c in have else pl.lit(None, pl.String)).cast(pl.String).alias(c)
            for c in declared
        ).alias(RAW),
        (
            pl.struct(pl.col(c).cast(pl.String) for c in extra).struct.json_encode()
            if extra
            else pl.lit("{}")
        ).alias(EXTRA),
    )
    typed = _declared(frame.filter(held), declared, PROVENANCE)
    if aligned:
        typed = typed.hstack(text.drop(ROW_ID))
    else:
        typed = typed.join(text, on=ROW_ID, how="left", maintain_order="left")
    quarantine = typed.join(reasons, on=ROW_ID, how="left", maintain_order="left").select(
        *quarantine_columns(declared)
    )
    crit = tuple(sorted({f"{c}|{r}" for c, r, _ in critical}))
    return Split(clean=clean, quarantine=quarantine, failures=all_failures, critical=crit)


def clean_columns(declared: Mapping[str, pl.DataType]) -> list[str]:
    """The clean output's columns, in order: provenance, then the declared columns."""
    return [*PROVENANCE, *declared]


def quarantine_columns(declared: Mapping[str, pl.DataType]) -> list[str]:
    """The quarantine's columns, in order: the same for every partition of a dataset."""
    return [*PROVENANCE, *declared, RAW, EXTRA, "_reasons", "_failures"]


def _declared(
    frame: pl.DataFrame, declared: Mapping[str, pl.DataType], first: Sequence[str] = (ROW_ID,)
) -> pl.DataFrame:
    """``first`` (``_row_id``, or all provenance) and the declared columns in their declared
    types; absent ones all null."""
    have = set(frame.columns)
    return frame.select(
        *first,
        *((pl.col(c) if c in have else pl.lit(None)).cast(t).alias(c) for c, t in declared.items()),
    )


def key_duplicates(
    frame: pl.DataFrame, keys: Sequence[str], policy: str = "keep_first"
) -> pl.DataFrame:
    """Failures ``<keys>|key_duplicate`` for rows that share the value of the dataset's keys.

    ``frame`` holds ``_row_id``, the provenance columns and the key columns, in source order.
    ``keep_first`` fails every occurrence after the first, ``keep_none`` every occurrence; the
    details name the first occurrence (``duplicate_of``: its ``_row_id``, ``duplicate_of_file``
    and ``duplicate_of_row``: its source file and 0-based record number) and the group's size.
    A row with a null in a key column has no key to compare and is left to the suite.
    """
    keys = list(keys)
    if not keys or any(k not in frame.columns for k in keys):
        return concat_failures([])
    rows = frame.select(ROW_ID, SOURCE_FILE, SOURCE_ROW, *keys).filter(
        pl.all_horizontal(pl.col(k).is_not_null() for k in keys) & pl.struct(keys).is_duplicated()
    )
    if rows.is_empty():
        return concat_failures([])
    groups = rows.with_columns(
        pl.len().over(keys).alias("group_size"),
        pl.col(ROW_ID).first().over(keys).alias("duplicate_of"),
        pl.col(SOURCE_FILE).first().over(keys).alias("duplicate_of_file"),
        pl.col(SOURCE_ROW).first().over(keys).alias("duplicate_of_row"),
        pl.lit(keys, dtype=pl.List(pl.String)).alias("keys"),
    )
    if policy == "keep_first":
        groups = groups.filter(pl.col(ROW_ID) != pl.col("duplicate_of"))
    details = groups.select(
        pl.struct(
            "duplicate_of", "duplicate_of_file", "duplicate_of_row", "group_size", "keys"
        ).struct.json_encode()
    ).to_series()
    if len(keys) == 1:
        values = groups.get_column(keys[0]).cast(pl.String)
    else:
        values = groups.select(
            pl.struct([pl.col(k).cast(pl.String) for k in keys]).struct.json_encode()
        ).to_series()
    return make_failures(
        groups.get_column(ROW_ID),
        column=",".join(keys),
        rule=KEY_RULE,
        severity="error",
        values=values,
        details=details,
    )


def trace_duplicates(failures: pl.DataFrame, frame: pl.DataFrame) -> pl.DataFrame:
    """Add the source file and row of ``duplicate_of`` to every failure's details that name one.

    ``frame`` holds ``_row_id`` and the provenance columns of every row of the partition.
    Details that already name the file are left as they are.
    """
    if failures.is_empty():
        return failures
    hit = (
        pl.col("details").str.contains('"duplicate_of":', literal=True)
        & ~pl.col("details").str.contains('"duplicate_of_file":', literal=True)
    ).fill_null(False)
    marked = failures.with_row_index("_i").filter(hit)
    if marked.is_empty():
        return failures
    firsts = frame.select(
        pl.col(ROW_ID).alias("_dup"),
        pl.col(SOURCE_FILE).alias("duplicate_of_file"),
        pl.col(SOURCE_ROW).alias("duplicate_of_row"),
    )
    joined = (
        marked.with_columns(
            pl.col("details")
            .str.json_path_match("$.duplicate_of")
            .cast(pl.UInt64, strict=False)
            .alias("_dup")
        )
        .join(firsts, on="_dup", how="inner")
        .with_columns(
            pl.concat_str(
                pl.col("details").str.strip_suffix("}"),
                pl.lit(","),
                pl.struct("duplicate_of_file", "duplicate_of_row")
                .struct.json_encode()
                .str.strip_prefix("{"),
            ).alias("details")
        )
    )
    out = failures.with_row_index("_i").update(joined.select("_i", "details"), on="_i")
    return out.drop("_i")
