"""Sample files into one frame of text, as ingest would read them, and a seeded hold-out split."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from sluice.config import CsvOptions
from sluice.core.errors import InputError
from sluice.core.files import Limit, input_error, read_regular
from sluice.ingest import arrow_reader, arrow_to_polars, read_text_records

SAMPLE_LIMIT = Limit("SLUICE_MAX_SAMPLE_BYTES", 1 << 30)
FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
}
DELIMITERS = (",", ";", "\t", "|")
MAX_ROWS = 200_000
HOLDOUT = 0.3


@dataclass(frozen=True)
class Sample:
    """What the profiler learns from: the rows (text, or Parquet's own types), how they were read,
    and which rows are the hold-out part (a seeded share, never learnt from)."""

    frame: pl.DataFrame
    format: str
    csv: CsvOptions
    files: tuple[Path, ...]
    holdout: pl.Series
    rows_read: int

    @property
    def train(self) -> pl.DataFrame:
        """The rows suggestions are learnt from."""
        return self.frame.filter(~self.holdout)

    @property
    def test(self) -> pl.DataFrame:
        """The hold-out rows suggestions are checked on."""
        return self.frame.filter(self.holdout)


def file_format(path: Path) -> str:
    """The format of a sample file, from its name; ``InputError`` names the allowed endings."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"{path}: cannot tell the format from the name; allowed endings: "
            f"{', '.join(sorted(FORMATS))}"
        )
    return fmt


def sniff_csv(data: bytes) -> CsvOptions:
    """The delimiter (the candidate found most often, and as often, on the first lines) and the
    encoding (utf8, else cp1252 when the bytes are not UTF-8) of CSV bytes."""
    head = data[: 1 << 16]
    try:
        data.decode("utf-8")
        encoding: Literal["utf8", "cp1252"] = "utf8"
    except UnicodeDecodeError:
        encoding = "cp1252"
    lines = [ln for ln in head.decode("latin-1").splitlines()[:20] if ln.strip()]
    if len(lines) > 1 and not head.endswith((b"\n", b"\r")) and len(head) == 1 << 16:
        lines = lines[:-1]
    best, score = ",", -1
    for d in DELIMITERS:
        counts = [ln.count(d) for ln in lines]
        if not counts or counts[0] == 0:
            continue
        steady = sum(1 for c in counts if c == counts[0])
        if steady * 1000 + counts[0] > score:
            best, score = d, steady * 1000 + counts[0]
    return CsvOptions(delimiter=best, encoding=encoding)


def read_sample(
    paths: Sequence[Path], *, seed: int = 0, holdout: float = HOLDOUT, max_rows: int = MAX_ROWS
) -> Sample:
    """Read every sample file (one format for all) and split the rows, seeded, into learn and
    hold-out parts. Files are read with sluice's own readers, so what the profiler sees is what
    ingest will read; at most ``max_rows`` rows, drawn with the seed, are kept."""
    if not paths:
        raise InputError("no sample files given (--from FILE)")
    formats = {file_format(Path(p)) for p in paths}
    if len(formats) > 1:
        raise InputError(
            f"sample files of several formats ({', '.join(sorted(formats))}); allowed: one "
            "format for all files of a dataset"
        )
    fmt = formats.pop()
    frames: list[pl.DataFrame] = []
    options = CsvOptions()
    for i, p in enumerate(paths):
        path = Path(p)
        data = read_regular(path, input_error(path), SAMPLE_LIMIT)
        if fmt == "parquet":
            frames.append(_parquet(data, path))
            continue
        if fmt == "csv":
            sniffed = sniff_csv(data)
            if i == 0:
                options = sniffed
            elif sniffed != options:
                raise InputError(
                    f"{path}: read as delimiter {sniffed.delimiter!r}, encoding "
                    f"{sniffed.encoding}, but {paths[0]} as {options.delimiter!r}, "
                    f"{options.encoding}; allowed: files of one dialect"
                )
        frame, _bad = read_text_records(data, fmt, os.fspath(path), options)
        frames.append(frame)
    frame = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    if frame.height == 0:
        raise InputError(f"no rows in {', '.join(str(p) for p in paths)}: nothing to learn from")
    rows_read = frame.height
    rng = np.random.default_rng(seed)
    if frame.height > max_rows:
        keep = np.sort(rng.choice(frame.height, size=max_rows, replace=False))
        frame = frame[keep]
    mask = np.zeros(frame.height, dtype=bool)
    n_test = round(frame.height * holdout) if frame.height >= 10 else 0
    mask[rng.choice(frame.height, size=n_test, replace=False)] = True
    return Sample(
        frame=frame,
        format=fmt,
        csv=options,
        files=tuple(Path(p) for p in paths),
        holdout=pl.Series("holdout", mask),
        rows_read=rows_read,
    )


def _parquet(data: bytes, path: Path) -> pl.DataFrame:
    try:
        table = pq.read_table(arrow_reader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        first = str(exc).strip().split("\n", 1)[0] or type(exc).__name__
        raise InputError(f"{path}: not a readable Parquet file: {first}") from None
    return arrow_to_polars(table, os.fspath(path))[0]
