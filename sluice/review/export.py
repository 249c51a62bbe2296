"""The review file: a partition's quarantined rows, laid out for people to decide on.

One row per quarantined row: provenance, the declared columns typed as in the quarantine, each
column's raw text as read (``_raw.<column>``), the undeclared columns (``_extra``), the reasons,
every failure with its details (``_failures``, JSON), the detectors' explanation
(``_explanation``), the decision columns people fill in (``decision``: release, fix or reject;
``note``; ``flag_wrong``) and the identity of the commit the file was made from
(``_commit_run_id``, ``_commit_manifest_sha256``), on every row so that a CSV carries it too.
Parquet keeps the types; CSV writes every value as text the partition's own parser reads back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from sluice.config import ColumnSpec
from sluice.core.errors import SluiceError
from sluice.core.frame import PROVENANCE, ROW_ID

DECISION = "decision"
NOTE = "note"
FLAG_WRONG = "flag_wrong"
COMMIT_RUN_ID = "_commit_run_id"
COMMIT_SHA256 = "_commit_manifest_sha256"
RAW_PREFIX = "_raw."
EXPLANATION = "_explanation"
DECISIONS = ("release", "fix", "reject")
FORMATS = (".parquet", ".csv")
ISO_DATETIME = "%Y-%m-%d %H:%M:%S%.f"


def review_frame(
    quarantine: pl.DataFrame,
    columns: Mapping[str, ColumnSpec],
    *,
    run_id: str,
    manifest_sha256: str,
) -> pl.DataFrame:
    """The review rows of a committed quarantine (its Parquet file as a frame), in its order."""
    raw = quarantine.get_column("_raw").struct.unnest() if quarantine.height else None
    raw_cols = [
        (
            raw.get_column(c) if raw is not None and c in raw.columns else pl.Series(c, [None] * 0)
        ).cast(pl.String)
        for c in columns
    ]
    failures = quarantine.get_column("_failures").to_list()
    return pl.DataFrame(
        [
            *(quarantine.get_column(c) for c in PROVENANCE),
            *(quarantine.get_column(c) for c in columns),
            *(s.alias(f"{RAW_PREFIX}{c}") for s, c in zip(raw_cols, columns, strict=True)),
            quarantine.get_column("_extra"),
            quarantine.get_column("_reasons").list.join("; ").alias("_reasons"),
            pl.Series("_failures", [_failures_json(f) for f in failures], pl.String),
            pl.Series(EXPLANATION, [_explanation(f) for f in failures], pl.String),
            pl.Series(DECISION, [None] * quarantine.height, pl.String),
            pl.Series(NOTE, [None] * quarantine.height, pl.String),
            pl.Series(FLAG_WRONG, [None] * quarantine.height, pl.Boolean),
            pl.Series(COMMIT_RUN_ID, [run_id] * quarantine.height, pl.String),
            pl.Series(COMMIT_SHA256, [manifest_sha256] * quarantine.height, pl.String),
        ]
    )


def _failures_json(failures: list[dict[str, Any]] | None) -> str:
    out = []
    for f in failures or []:
        item = {k: f.get(k) for k in ("reason", "severity", "value")}
        details = f.get("details")
        try:
            item["details"] = json.loads(details) if details else None
        except ValueError:
            item["details"] = details
        out.append(item)
    return json.dumps(out, sort_keys=True, separators=(",", ":"))


def _explanation(failures: list[dict[str, Any]] | None) -> str | None:
    """The detectors' words for a flagged row: score, threshold, the features that weighed."""
    parts = []
    for f in failures or []:
        if f.get("column") != "outlier":
            continue
        try:
            d = json.loads(f.get("details") or "{}")
        except ValueError:
            d = {}
        tops = ", ".join(
            f"{t.get('column')} ({t.get('contribution')})" for t in d.get("top_features") or []
        )
        parts.append(
            f"{f.get('rule')}: score {d.get('score')} above threshold {d.get('threshold')}"
            + (f"; most weight: {tops}" if tops else "")
        )
    return " | ".join(parts) if parts else None


def as_text(frame: pl.DataFrame, columns: Mapping[str, ColumnSpec]) -> pl.DataFrame:
    """``frame`` with its declared columns as the text their column's parser reads back."""
    exprs = []
    for name, spec in columns.items():
        if name not in frame.columns:
            continue
        col = pl.col(name)
        if spec.type == "datetime" and spec.format and "z" in spec.format:
            text = col.dt.replace_time_zone("UTC").dt.strftime(spec.format)
            exprs.append(text.alias(name))
        elif spec.type == "datetime":
            exprs.append(col.dt.strftime(spec.format or ISO_DATETIME).alias(name))
        elif spec.type == "date":
            exprs.append(col.dt.strftime(spec.format or "%Y-%m-%d").alias(name))
        else:
            exprs.append(col.cast(pl.String).alias(name))
    return frame.with_columns(exprs)


def write_review(frame: pl.DataFrame, path: Path, columns: Mapping[str, ColumnSpec]) -> Path:
    """Write the review rows to ``path``: Parquet or CSV, by its extension."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise SluiceError(
            f"{path}: a review file is Parquet or CSV, by its extension "
            f"({', '.join(FORMATS)}); found {suffix or 'no extension'!r}"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        if suffix == ".parquet":
            frame.write_parquet(tmp)
        else:
            as_text(frame, columns).with_columns(pl.col(ROW_ID).cast(pl.String)).write_csv(tmp)
        tmp.replace(path)
    except OSError as exc:
        raise SluiceError(f"cannot write the review file {path}: {exc.strerror}") from None
    return path
