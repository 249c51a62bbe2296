"""A partition's files read in pieces of a bounded number of records, never whole.

A CSV or NDJSON file is cut at record boundaries into pieces of about ``rows`` records each,
found by one streaming scan in fixed-size blocks (numpy) that also computes the file's sha256 and
checks its bytes against the encoding: NDJSON at every ``\\n``; CSV at a line end (``\\n``,
``\\r\\n`` or a lone ``\\r``) outside quotes, quotes counted by parity (an escaped ``""`` keeps
it), so quoted newlines, a byte order mark, blank lines and a last record without a line end stay
where they are. A Parquet file is read in record batches of at most ``rows`` rows
(``ParquetFile.iter_batches``). A local file is read by ``seek``/``read``, an object-store file
(fsspec) by byte ranges.

Each piece is read by ingest's own readers (:mod:`sluice.ingest.text`), a CSV piece with the file's
header prepended, and typed by :func:`sluice.ingest.file.typed_records` from its first record's
position, so its rows get the row ids, ``_source_row``, raw text and failures the whole file's
reading gives them. What ingest decides per file is decided once, before any row is read (the
first pass, :func:`plan_partition`): the header and its aliases, an NDJSON file's keys (a pass
over its pieces), the types of a Parquet file's columns, the columns of the partition, which
undeclared columns are retyped, missing and extra columns, reserved and pattern names; and the
choice between the CSV fast path (pyarrow) and the exact path (the standard library): the exact
path reads every piece of a file whose bytes are not valid in its encoding or that holds a record
with another number of fields (delimiters outside quotes, counted by the scan) than its header,
as it reads such a file whole. Should pyarrow still refuse a piece of another file, the exact path
reads the rest of that file: on text pyarrow reads, both give the same rows
(tests/sluice/test_ingest_pieces.py proves both on the robustness corpus and generated text).

Read as one piece, and so held whole as today: a CSV file whose quoting the parity count cannot
follow (a quote inside an unquoted field, text after a closing quote: the standard library's
reading of those depends on where the field starts), a CSV dialect whose quote or delimiter is
not one byte in the file's encoding, and an encoding in which a newline byte can sit inside a
character (UTF-16 or UTF-32: none of the encodings a spec may name today is one).

Memory: the scan holds one block (8 MiB) and a few arrays of positions in it; a piece holds its
bytes and its rows read, typed and as text. Nothing here grows with the number of rows but the
list of piece offsets (three Python integers per piece).
"""

from __future__ import annotations

import codecs
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

import fsspec
import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from sluice.config import CsvOptions, LoadedSpec, Partition
from sluice.core.errors import InputError
from sluice.core.files import input_error, open_regular
from sluice.core.frame import ROW_ID
from sluice.core.text import as_text
from sluice.ingest.arrow import arrow_to_polars
from sluice.ingest.file import Records, typed_records
from sluice.ingest.sources import SourceFile, refuse_shared_ids
from sluice.ingest.text import (
    BadRecord,
    NdjsonKeys,
    _codec,
    _csv_exact,
    _csv_fast,
    _read_csv,
    _read_ndjson,
    duplicate_names,
    ndjson_batches,
    no_json_objects,
    refuse_wide_encoding,
)

BLOCK = 1 << 23
"""Bytes the scan reads at a time."""
_NEWLINE_SAFE = ("utf8", "latin1", "cp1252")
"""Encodings in which a newline byte is always a newline (ASCII-compatible)."""
_BOM = b"\xef\xbb\xbf"
_LF, _CR = 10, 13
_EMPTY: npt.NDArray[np.intp] = np.zeros(0, dtype=np.intp)


@dataclass(frozen=True)
class FileScan:
    """What the scan of one text file found.

    ``pieces`` are byte ranges ``[start, end)`` covering the file, cut at record boundaries; for
    CSV the first holds the header, which ends at ``header_end`` (the others are read after
    ``data[:header_end]``). ``lines[i]`` is the number of line ends before piece ``i``, and
    ``header_lines`` before ``header_end``. ``valid`` says whether every byte is valid in the
    encoding; ``whole`` that the file is one piece because its quoting cannot be followed;
    ``ragged`` that a CSV record has another number of fields than the header.
    """

    path: str
    sha256: str
    size: int
    pieces: tuple[tuple[int, int], ...]
    lines: tuple[int, ...]
    header_end: int
    header_lines: int
    valid: bool
    whole: bool
    ragged: bool = False


@contextmanager
def open_source(path: str) -> Iterator[IO[bytes]]:
    """A source file open for reading bytes: a local path must be a regular file; a URL is
    opened through fsspec (read by byte ranges)."""
    if "://" not in path:
        with open_regular(path, input_error(path)) as (fh, _):
            yield fh
        return
    try:
        remote = fsspec.open(path, "rb").open()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    try:
        yield remote
    finally:
        remote.close()


def read_range(fh: IO[bytes], start: int, end: int) -> bytes:
    """The bytes ``[start, end)`` of an open file."""
    try:
        fh.seek(start)
        data = fh.read(end - start)
    except OSError as exc:
        raise InputError(f"{getattr(fh, 'name', 'source')}: cannot read: {exc}") from None
    return data


def _one_byte(char: str, codec: str) -> int | None:
    try:
        encoded = char.encode(codec)
    except UnicodeEncodeError:
        return None
    return encoded[0] if len(encoded) == 1 and encoded[0] not in (_LF, _CR) else None


class _Scanner:
    """The state of one file's scan, fed block by block (see :func:`scan_text`)."""

    def __init__(self, fmt: str, opts: CsvOptions, rows: int) -> None:
        self.csv = fmt == "csv"
        codec = _codec(opts) if self.csv else "utf8"
        self.quote = _one_byte(opts.quote_char, codec) if self.csv else None
        self.delim = _one_byte(opts.delimiter, codec) if self.csv else None
        self.follows = self.csv and (
            codec in _NEWLINE_SAFE and self.quote is not None and self.delim is not None
        )
        self.decoder = codecs.getincrementaldecoder(codec)() if codec != "latin1" else None
        self.rows = max(1, rows)
        self.valid = True
        self.parity = 0
        self.terms = 0
        self.pos = 0
        self.last = _LF
        self.bom = False
        self.content = False
        self.count = 0
        self.header_end: int | None = None if self.csv else 0
        self.header_lines = 0
        self.seg_fields = 0
        self.seg_len = 0
        self.width: int | None = None
        self.ragged = False
        self.cuts: list[int] = [0]
        self.lines: list[int] = [0]
        self._odd: npt.NDArray[np.uint8] | None = None
        self._quote: npt.NDArray[np.uint8] | None = None

    def decode(self, chunk: bytes) -> None:
        if self.decoder is None or not self.valid:
            return
        try:
            self.decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError:
            self.valid = False

    def feed(self, work: bytes, lookahead: int) -> None:
        """Scan ``work``, the bytes from ``self.pos``; ``lookahead`` is the byte after it (-1 at
        the end of the file)."""
        arr = np.frombuffer(work, np.uint8)
        n = arr.size
        is_quote = arr == self.quote if self.quote is not None else None
        quotes = _EMPTY if is_quote is None else np.flatnonzero(is_quote)
        self._odd = self._quote = None
        if is_quote is not None and quotes.size:
            self._quote = is_quote.view(np.uint8)
            self._odd = np.bitwise_xor.accumulate(self._quote)
        ends = np.flatnonzero(arr == _LF)
        if self.csv:
            cr = np.flatnonzero(arr == _CR)
            if cr.size:
                after = np.where(cr + 1 < n, arr[np.minimum(cr + 1, n - 1)], lookahead)
                ends = np.union1d(ends, cr[after != _LF])
        bounds = ends[self._outside(ends)] + 1
        if self.follows:
            self.follows = self._regular(arr, quotes, lookahead)
        check = self.follows and not self.ragged
        if check:
            counts, blank = self._fields(arr, quotes, bounds)
        rest = bounds if self.header_end is not None else self._header(arr, bounds, ends)
        if check:
            self._ragged(counts, blank, bounds.size - rest.size, lookahead < 0)
        self._cut(rest, ends)
        self.terms += ends.size
        self.parity = (self.parity + quotes.size) & 1
        if n:
            self.last = int(arr[-1])
        self.pos += n

    def _outside(self, at: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
        """Whether each position ``at`` of the block being fed is outside quotes: an even
        number of quotes before it in the file (``_odd`` counts the quote at a position too)."""
        if self._odd is None or self._quote is None:
            return np.full(at.size, self.parity == 0)
        odd: npt.NDArray[np.uint8] = self._odd[at] ^ self._quote[at]
        outside: npt.NDArray[np.bool_] = ((self.parity + odd) & 1) == 0
        return outside

    def _regular(
        self, arr: npt.NDArray[np.uint8], quotes: npt.NDArray[np.intp], ahead: int
    ) -> bool:
        """Whether every quote in ``arr`` opens a field or closes one, as parity assumes."""
        if not quotes.size:
            return True
        n = arr.size
        assert self.delim is not None
        assert self.quote is not None
        before = (self.parity + np.arange(quotes.size)) & 1
        opens, closes = quotes[before == 0], quotes[before == 1]
        prev = np.where(opens > 0, arr[np.maximum(opens - 1, 0)], self.last)
        start = (self.pos + opens) == (len(_BOM) if self.bom else 0)
        ok_open = np.isin(prev, [self.delim, self.quote, _LF, _CR]) | start
        nxt = np.where(closes + 1 < n, arr[np.minimum(closes + 1, n - 1)], ahead)
        ok_close = np.isin(nxt, [self.delim, self.quote, _LF, _CR, -1])
        return bool(ok_open.all() and ok_close.all())

    def _fields(
        self, arr: npt.NDArray[np.uint8], quotes: npt.NDArray[np.intp], bounds: npt.NDArray[np.intp]
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
        """For each record ending at ``bounds``: its delimiters outside quotes, and whether it is
        blank (a line end alone, which both CSV readers pass over)."""
        delims = np.flatnonzero(arr == self.delim)
        delims = delims[self._outside(delims)]
        before = np.searchsorted(delims, bounds)
        counts = np.diff(before, prepend=0)
        length = bounds - np.concatenate([[-self.seg_len], bounds[:-1]])
        if counts.size:
            counts[0] += self.seg_fields
        prev = np.where(bounds >= 2, arr[np.maximum(bounds - 2, 0)], self.last)
        crlf = (length == 2) & (prev == _CR) & (arr[np.maximum(bounds - 1, 0)] == _LF)
        if bounds.size:
            self.seg_fields, self.seg_len = (
                delims.size - int(before[-1]),
                arr.size - int(bounds[-1]),
            )
        else:
            self.seg_fields, self.seg_len = self.seg_fields + delims.size, self.seg_len + arr.size
        return counts, (length == 1) | crlf

    def _ragged(
        self, counts: npt.NDArray[np.intp], blank: npt.NDArray[np.bool_], header: int, end: bool
    ) -> None:
        """Note a record whose number of fields is not the header's (the records ending at the
        boundaries from index ``header`` on, and at the ``end`` of the file the last one)."""
        if self.width is None and self.header_end is not None and header > 0:
            self.width = int(counts[header - 1])
        if self.width is None:
            return
        if bool((~blank[header:] & (counts[header:] != self.width)).any()):
            self.ragged = True
        if end and self.seg_len and self.seg_fields != self.width:
            self.ragged = True

    def _header(
        self, arr: npt.NDArray[np.uint8], bounds: npt.NDArray[np.intp], ends: npt.NDArray[np.intp]
    ) -> npt.NDArray[np.intp]:
        """Find the end of the header (the first record that is not blank); the boundaries
        after it."""
        filled = np.flatnonzero((arr != _LF) & (arr != _CR))
        if self.bom and self.pos < len(_BOM):
            filled = filled[self.pos + filled >= len(_BOM)]
        if not bounds.size:
            self.content = self.content or bool(filled.size)
            return bounds
        starts = np.concatenate([[0], bounds[:-1]])
        has = (np.searchsorted(filled, bounds) - np.searchsorted(filled, starts)) > 0
        has[0] |= self.content
        hit = np.flatnonzero(has)
        if not hit.size:
            self.content = bool(filled.size) and bool(filled[-1] >= bounds[-1])
            return bounds[:0]
        end = int(bounds[hit[0]])
        self.header_end = self.pos + end
        self.header_lines = self.terms + int(np.searchsorted(ends, end))
        return bounds[hit[0] + 1 :]

    def _cut(self, bounds: npt.NDArray[np.intp], ends: npt.NDArray[np.intp]) -> None:
        if self.header_end is None or not bounds.size:
            return
        for i in range(self.rows - self.count - 1, bounds.size, self.rows):
            b = int(bounds[i])
            self.cuts.append(self.pos + b)
            self.lines.append(self.terms + int(np.searchsorted(ends, b)))
        self.count = (self.count + bounds.size) % self.rows

    def result(self, path: str, sha: str, size: int) -> FileScan:
        header_end = size if self.header_end is None else self.header_end
        whole = self.csv and not self.follows
        cuts, lines = self.cuts, self.lines
        if whole or header_end >= size:
            cuts, lines = [0], [0]
        if len(cuts) > 1 and cuts[-1] >= size:
            cuts, lines = cuts[:-1], lines[:-1]
        pieces = tuple(zip(cuts, [*cuts[1:], size], strict=True))
        return FileScan(
            path=path,
            sha256=sha,
            size=size,
            pieces=pieces,
            lines=tuple(lines),
            header_end=size if whole else header_end,
            header_lines=self.header_lines,
            valid=self.valid,
            ragged=self.ragged,
            whole=whole,
        )


def scan_text(path: str, fmt: str, opts: CsvOptions, rows: int, block: int = BLOCK) -> FileScan:
    """Scan a CSV or NDJSON file in blocks of ``block`` bytes: its sha256, whether its bytes are
    valid in its encoding, and pieces of about ``rows`` records each (see the module)."""
    scanner = _Scanner(fmt, opts, rows)
    digest = hashlib.sha256()
    size = 0
    carry = b""
    with open_source(path) as fh:
        while True:
            try:
                chunk = fh.read(block)
                while not size and len(chunk) < len(_BOM) and (more := fh.read(block)):
                    chunk += more
            except OSError as exc:
                raise InputError(f"{path}: cannot read: {exc}") from None
            if not size:
                refuse_wide_encoding(chunk, path, fmt)
                scanner.bom = chunk.startswith(_BOM)
            digest.update(chunk)
            size += len(chunk)
            scanner.decode(chunk)
            buf = carry + chunk
            if chunk:
                carry = buf[-1:]
                scanner.feed(buf[:-1], buf[-1])
                continue
            scanner.feed(buf, -1)
            break
    return scanner.result(path, digest.hexdigest(), size)


def _file_sha256(path: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open_source(path) as fh:
        while chunk := fh.read(BLOCK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


@dataclass
class PlannedFile:
    """One file of a partition as the first pass found it."""

    path: str
    sha256: str
    size: int
    scan: FileScan | None
    keys: tuple[str, ...] = ()
    types: tuple[tuple[str, str], ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()
    empty: Records | None = None
    rows: int = 0

    def source(self) -> SourceFile:
        """The file as the manifest records it (``rows`` once it was read)."""
        return SourceFile(self.path, self.sha256, self.size, self.rows, self.aliases, self.types)


@dataclass
class Plan:
    """The first pass over a partition: its files, and the layout every piece is brought to.

    ``frame_schema`` and ``raw_schema`` are those of ingest's frame and raw text for the whole
    partition; ``retyped``, ``missing`` and ``extra`` its columns as :class:`Ingested` has them.
    """

    files: list[PlannedFile]
    frame_schema: pl.Schema
    raw_schema: pl.Schema
    retyped: dict[str, dict[str, str]]
    missing: tuple[str, ...]
    extra: tuple[str, ...]
    rows: int
    where: str


@dataclass(frozen=True)
class Piece:
    """One piece read: the index of its file, and its frame, raw text and failures in the
    partition's layout."""

    file: int
    frame: pl.DataFrame
    raw: pl.DataFrame
    failures: pl.DataFrame


def plan_partition(
    loaded: LoadedSpec,
    partition: Partition,
    paths: Sequence[str],
    rows: int,
    plan_files: Callable[[Sequence[str]], list[PlannedFile]] | None = None,
) -> Plan:
    """The first pass over a partition's files: scan each, read its header (CSV), keys
    (NDJSON) or schema (Parquet), and lay out the partition's columns as ingest would.
    ``plan_files`` plans the files instead of this process (as ``_plan_file`` does each).

    Raises the :class:`InputError` ingest raises for a header, keys or schema it refuses.
    """
    from sluice.ingest import _layout, _retyped, _undeclared_as_text, combine

    spec = loaded.spec
    if plan_files is None:
        files = [_plan_file(path, loaded, rows) for path in paths]
    else:
        files = plan_files(paths)
    sources = [f.source() for f in files]
    retyped = _retyped(sources)
    frames, raws = [], []
    for f in files:
        assert f.empty is not None
        frames.append(_undeclared_as_text(f.empty.frame, f.empty.raw, retyped, loaded))
        raws.append(as_text(f.empty.raw))
    frame, raw = combine(frames, raws, f"{loaded.name} {partition.dirname}", paths)
    missing, extra, order = _layout(frame.columns, list(spec.columns))
    raw_order = [ROW_ID, *[c for c in order if c in raw.columns and c != ROW_ID]]
    return Plan(
        files=files,
        frame_schema=frame.select(order).schema,
        raw_schema=raw.select(raw_order).schema,
        retyped=retyped,
        missing=missing,
        extra=extra,
        rows=rows,
        where=f"{loaded.name} {partition.dirname}",
    )


def _plan_file(path: str, loaded: LoadedSpec, rows: int) -> PlannedFile:
    spec = loaded.spec
    fmt = spec.source.format
    opts = spec.source.csv
    if fmt == "parquet":
        sha, size = _file_sha256(path)
        with open_source(path) as fh:
            schema = _parquet_file(fh, path).schema_arrow
        read = arrow_to_polars(schema.empty_table(), path)[0]
        planned = PlannedFile(path, sha, size, None)
    else:
        scan = scan_text(path, fmt, opts, rows, block=BLOCK)
        planned = PlannedFile(path, scan.sha256, scan.size, scan)
        with open_source(path) as fh:
            if fmt == "csv":
                head = read_range(fh, 0, scan.header_end)
                read = _read_csv(head, opts, path)[0].clear()
            else:
                planned.keys = _ndjson_keys(fh, scan, path)
                read = pl.DataFrame({k: pl.Series(k, [], dtype=pl.String) for k in planned.keys})
    planned.empty = typed_records(read, [], planned.sha256, path, loaded)
    planned.types = planned.empty.types
    planned.aliases = planned.empty.aliases
    return planned


def _ndjson_keys(fh: IO[bytes], scan: FileScan, path: str) -> tuple[str, ...]:
    """An NDJSON file's keys in the order they first appear; the error ingest gives when no
    line holds a JSON object."""
    found = NdjsonKeys()
    for i, (start, end) in enumerate(scan.pieces):
        for _ in ndjson_batches(
            read_range(fh, start, end), path, found, at_start=i == 0, first_line=scan.lines[i] + 1
        ):
            pass
    if not found.keys:
        raise no_json_objects(path, found.first_bad)
    return tuple(found.keys)


def _parquet_file(fh: IO[bytes], path: str) -> pq.ParquetFile:
    try:
        source = pq.ParquetFile(fh)
        names = source.schema_arrow.names
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _not_parquet(path, exc) from None
    dupes = duplicate_names(names)
    if dupes:
        raise InputError(f"{path}: duplicate column names: {dupes}")
    return source


def _not_parquet(path: str, exc: BaseException) -> InputError:
    first = str(exc).strip().split("\n", 1)[0] or type(exc).__name__
    return InputError(f"{path}: not a readable Parquet file: {first}")


def read_pieces(loaded: LoadedSpec, plan: Plan) -> Iterator[Piece]:
    """Every piece of every file of ``plan``, in file order then record order, in the
    partition's layout. A file's ``rows`` are set once it was read; then the partition's row
    ids are checked to be distinct (two files with identical bytes are refused, as by ingest).
    """
    for index, planned in enumerate(plan.files):
        start = 0
        for read, bad in _records(loaded, planned, plan.rows):
            got = typed_records(read, bad, planned.sha256, planned.path, loaded, start=start)
            start += read.height
            yield Piece(index, *_conform(got, plan, loaded))
        planned.rows = start
    _check_distinct(plan)


def _records(
    loaded: LoadedSpec, planned: PlannedFile, rows: int
) -> Iterator[tuple[pl.DataFrame, list[BadRecord]]]:
    spec = loaded.spec
    fmt = spec.source.format
    path = planned.path
    with open_source(path) as fh:
        if fmt == "parquet":
            yield from _parquet_pieces(fh, path, rows)
            return
        scan = planned.scan
        assert scan is not None
        head = read_range(fh, 0, scan.header_end) if fmt == "csv" else b""
        exact = not scan.valid or scan.ragged
        for i, (start, end) in enumerate(scan.pieces):
            data = read_range(fh, start, end)
            if fmt == "ndjson":
                yield _read_ndjson(
                    data,
                    path,
                    keys=planned.keys,
                    at_start=i == 0,
                    first_line=scan.lines[i] + 1,
                )
                continue
            data = data if i == 0 else head + data
            shift = 0 if i == 0 else scan.lines[i] - scan.header_lines
            fast = None if exact else _csv_fast(data, spec.source.csv, path)
            if fast is not None:
                yield fast, []
                continue
            exact = True
            try:
                yield _csv_exact(data, spec.source.csv, path)
            except InputError as exc:
                raise _shifted(exc, path, shift) from None


def _shifted(exc: InputError, path: str, shift: int) -> InputError:
    """``exc`` with the line it names (``path:<line>:``) moved by ``shift`` lines."""
    text = str(exc)
    prefix = re.match(re.escape(path) + r":(\d+)", text)
    if not shift or prefix is None:
        return exc
    line = int(prefix.group(1)) + shift
    rest = re.sub(r"\(line \d+", lambda _: f"(line {line}", text[prefix.end() :], count=1)
    return InputError(f"{path}:{line}{rest}")


def _parquet_pieces(
    fh: IO[bytes], path: str, rows: int
) -> Iterator[tuple[pl.DataFrame, list[BadRecord]]]:
    """A Parquet file in batches of at most ``rows`` rows, row group by row group.

    pyarrow's ``iter_batches`` yields nothing, silently, for a row group whose column chunk is
    shorter than its metadata says (where ``read`` raises): every row group's rows read are
    counted against its metadata, and a short one is read whole for pyarrow's own error.
    """
    source = _parquet_file(fh, path)
    seen = False
    for frame in row_group_frames(source, path, range(source.num_row_groups), rows):
        seen = True
        yield frame, []
    if not seen:
        yield arrow_to_polars(source.schema_arrow.empty_table(), path)[0], []


def row_group_frames(
    source: pq.ParquetFile, path: str, groups: Iterable[int], rows: int
) -> Iterator[pl.DataFrame]:
    """The row groups ``groups`` of an open Parquet file in frames of at most ``rows`` rows,
    each group's rows counted against its metadata (a short one is read whole for pyarrow's
    own error); anything unreadable is an :class:`InputError` naming the file."""
    schema = source.schema_arrow
    for group in groups:
        try:
            expected = source.metadata.row_group(group).num_rows
            got = 0
            for batch in source.iter_batches(
                batch_size=max(1, rows), row_groups=[group], use_threads=False
            ):
                got += batch.num_rows
                yield arrow_to_polars(pa.Table.from_batches([batch], schema=schema), path)[0]
            if got != expected:
                source.read_row_group(group)
                raise InputError(
                    f"{path}: not a readable Parquet file: row group {group} holds {got} rows, "
                    f"its metadata says {expected}"
                )
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise _not_parquet(path, exc) from None


def _conform(
    got: Records, plan: Plan, loaded: LoadedSpec
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """A piece's frame and raw text with the partition's columns, in its order and types."""
    from sluice.ingest import _undeclared_as_text

    frame = _undeclared_as_text(got.frame, got.raw, plan.retyped, loaded)
    return _shape(frame, plan.frame_schema), _shape(as_text(got.raw), plan.raw_schema), got.failures


def _shape(frame: pl.DataFrame, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    have = frame.schema
    exprs = [
        (pl.col(c) if have[c] == t else pl.col(c).cast(t)) if c in have else pl.lit(None, t)
        for c, t in schema.items()
    ]
    return frame.select(e.alias(c) for e, c in zip(exprs, schema, strict=True))


def _check_distinct(plan: Plan) -> None:
    """Ingest's check that no two rows share a row id (:func:`refuse_shared_ids`)."""
    refuse_shared_ids([(f.path, f.sha256, f.rows) for f in plan.files], plan.where)


__all__ = [
    "BLOCK",
    "FileScan",
    "Piece",
    "Plan",
    "PlannedFile",
    "open_source",
    "plan_partition",
    "read_pieces",
    "read_range",
    "scan_text",
]
