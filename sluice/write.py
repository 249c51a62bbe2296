"""Write: the only stage that knows where outputs go, and how they become visible.

Each output root holds one folder per partition (``<key>=<value>``). A run stages the folders of
a partition under temporary names beside their final places (``.staging-<dirname>-<id>``), each
with a marker ``.sluice-partition.json`` (dataset, partition, side, run id), then commits them
with :class:`PartitionCommit`:

0. it refuses, before staging anything, a final folder sluice did not make (no marker, or the
   marker of another dataset or partition; :func:`foreign_reason` has the rule for folders older
   versions wrote), and the caller proves conservation from the staged files' bytes
   (:func:`prove_conservation`) before the first rename;
1. with the partition's lock held (``<reports>/.locks/<dirname>.lock``, ``flock``), it writes a
   journal ``<reports>/.commit-<dirname>.json`` naming every staged, final and replaced folder;
2. it renames each final folder aside (``.replaced-<dirname>-<id>``) and the staged one into place,
   the reports folder (which holds the manifest) last: that rename is the commit point;
3. it removes the replaced folders and the journal.

A run that dies before the commit point is rolled back by the next run (the replaced folders are
renamed back); one that dies after it is completed (the replaced folders are removed).
:func:`recover` does both, and removes staging folders a dead run left.

Readers trust a partition only when every file its ``manifest.json`` names has the sha256 the
manifest gives (:func:`load_partition`); between the first rename and the commit point the
files and the manifest disagree, and a reader reads again later.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from sluice.core.errors import EXIT_INTERNAL, SluiceError
from sluice.core.errors import OutputError as OutputError  # noqa: PLC0414 (re-exported)
from sluice.core.files import Unverified, file_sha256, fsync_dir, read_verified
from sluice.core.frame import same_ids, split_in_order

PARQUET_NAME = "part-00000.parquet"
MANIFEST_NAME = "manifest.json"
STAGING_PREFIX = ".staging-"
TRASH_PREFIX = ".replaced-"
JOURNAL_PREFIX = ".commit-"
LOCK_DIR = ".locks"
MARKER_NAME = ".sluice-partition.json"
LOCK_TIMEOUT_ENV = "SLUICE_LOCK_TIMEOUT"
DEFAULT_LOCK_TIMEOUT_S = 600.0


class PartitionBusy(OutputError):
    """Another run holds the partition's lock and did not release it in time."""


class ConservationError(SluiceError):
    """The files staged for a commit do not hold every input row exactly once: nothing moves."""

    exit_code = EXIT_INTERNAL


class NotCommitted(SluiceError):
    """A partition's files are not the ones its manifest names (being replaced, or none yet)."""


def _holds_list(dtype: object) -> bool:
    """Whether ``dtype`` is, or holds, a list (variable or fixed size)."""
    if isinstance(dtype, pl.List | pl.Array):
        return True
    if isinstance(dtype, pl.Struct):
        return any(_holds_list(field.dtype) for field in dtype.fields)
    return False


def write_parquet(
    frame: pl.DataFrame, path: Path, metadata: Mapping[str, str] | None = None
) -> None:
    """Write a Parquet file deterministically: same frame, same bytes.

    A frame with a list column (a quarantine's ``_reasons`` and ``_failures``) is written as one
    row group: polars sizes the pages of each row group of a list column by the bytes of the
    whole column, so its cost grows with row groups times rows (docs/traps.md).
    """
    lists = any(_holds_list(dtype) for dtype in frame.schema.values())
    try:
        frame.write_parquet(
            path,
            compression="zstd",
            compression_level=3,
            statistics=True,
            row_group_size=max(1, frame.height) if lists else None,
            metadata=dict(metadata) if metadata else None,
        )
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise OutputError(f"cannot write {path}: {_why(exc)}") from None


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _remove(path: Path) -> None:
    """Remove a folder, or a file or symbolic link (never following it); ignore errors."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def foreign_reason(
    final: Path, *, dataset: str | None = None, manifest: Path | None = None
) -> str | None:
    """Why an existing partition folder is not one sluice made (None when it is, or is absent).

    sluice made it when it holds :data:`MARKER_NAME` naming this partition (and ``dataset``,
    when given). A folder without a marker, as older versions wrote them, counts as sluice's
    when ``manifest`` (the partition's ``manifest.json``, of this dataset and partition) names
    every file in it with its sha256, and it holds nothing else (the manifest itself aside).
    """
    if final.is_symlink():
        return "it is a symbolic link"
    if not final.exists():
        return None
    if not final.is_dir():
        return "it is not a folder"
    try:
        doc = json.loads((final / MARKER_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return _legacy_reason(final, dataset, manifest)
    except (OSError, ValueError) as exc:
        return f"its {MARKER_NAME} cannot be read ({_why(exc)})"
    if not isinstance(doc, dict) or doc.get("made_by") != "sluice":
        return f"its {MARKER_NAME} is not sluice's"
    if doc.get("partition") != final.name:
        return f"its {MARKER_NAME} names partition {doc.get('partition')!r}"
    if dataset is not None and doc.get("dataset") not in (None, dataset):
        return f"it holds dataset {doc.get('dataset')!r}, not {dataset!r}"
    return None


def _legacy_reason(final: Path, dataset: str | None, manifest: Path | None) -> str | None:
    no = f"it holds no {MARKER_NAME}"
    if manifest is None:
        return no
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
        partition = f"{doc['partition']['key']}={doc['partition']['value']}"
        named = {
            os.path.realpath(e["path"]): e["sha256"]
            for e in doc["outputs"].values()
            if isinstance(e, dict)
        }
    except (OSError, ValueError, KeyError, TypeError):
        return f"{no} and no readable manifest {manifest} names its files"
    if partition != final.name or (dataset is not None and doc.get("dataset") != dataset):
        return f"{no} and {manifest} is of another dataset or partition"
    for entry in sorted(final.iterdir()):
        real = os.path.realpath(entry)
        if entry.is_symlink() or not entry.is_file():
            return f"{no} and holds {entry.name}, which is not a plain file"
        if entry.name == MANIFEST_NAME and entry.parent == manifest.parent:
            continue
        if real not in named:
            return f"{no} and holds {entry.name}, which {manifest} does not name"
        if file_sha256(entry) != named[real]:
            return f"{no} and {entry.name} is not the file {manifest} names (sha256 differs)"
    return None


def refuse_foreign(
    final: Path, *, dataset: str | None = None, manifest: Path | None = None
) -> None:
    """Raise :class:`OutputError` when ``final`` exists and sluice did not make it."""
    why = foreign_reason(final, dataset=dataset, manifest=manifest)
    if why is not None:
        raise OutputError(
            f"{final}: refusing to replace a folder sluice did not make ({why}); sluice "
            f"replaces only partition folders it wrote (they hold {MARKER_NAME}). Move it "
            "away or point the output root elsewhere; nothing was changed"
        )


class PartitionWriter:
    """Stage a partition's files under one root, then swap them into place.

    Use as a context manager: on error the staging folder is removed and the previous outputs
    stay as they were.
    """

    def __init__(
        self,
        root: Path,
        dirname: str,
        *,
        dataset: str | None = None,
        side: str | None = None,
        run_id: str | None = None,
        manifest: Path | None = None,
    ) -> None:
        self.root = root
        self.dirname = dirname
        self.final = root / dirname
        token = uuid.uuid4().hex[:12]
        self.staging = root / f"{STAGING_PREFIX}{dirname}-{token}"
        self.trash = root / f"{TRASH_PREFIX}{dirname}-{token}"
        self.dataset = dataset
        self.manifest = manifest
        self.marker = {
            "made_by": "sluice",
            "dataset": dataset,
            "partition": dirname,
            "side": side,
            "run_id": run_id,
        }

    def __enter__(self) -> PartitionWriter:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.staging.mkdir()
        except OSError as exc:
            raise OutputError(f"cannot write under {self.root}: {exc.strerror}") from None
        marker = self.staging / MARKER_NAME
        try:
            marker.write_text(json.dumps(self.marker, sort_keys=True) + "\n", encoding="utf-8")
        except OSError as exc:
            shutil.rmtree(self.staging, ignore_errors=True)
            raise OutputError(f"cannot write {marker}: {_why(exc)}") from None
        return self

    def check_owned(self) -> None:
        """Raise :class:`OutputError` when the final folder exists and sluice did not make it."""
        refuse_foreign(self.final, dataset=self.dataset, manifest=self.manifest)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            shutil.rmtree(self.staging, ignore_errors=True)

    def path(self, name: str) -> Path:
        """Where to stage a file of this partition."""
        return self.staging / name

    def sync(self) -> None:
        """Flush the staged files to disk."""
        try:
            for f in self.staging.iterdir():
                with f.open("rb") as fh:
                    os.fsync(fh.fileno())
            fsync_dir(self.staging)
        except OSError as exc:
            raise OutputError(f"cannot flush {self.staging}: {exc.strerror}") from None

    def swap(self) -> bool:
        """Rename the final folder aside (to ``trash``) and the staged one into place.

        Returns whether there was a final folder to replace; it stays in ``trash``.
        """
        self.check_owned()
        try:
            had_old = self.final.exists() or self.final.is_symlink()
            if had_old:
                self.final.rename(self.trash)
            try:
                self.staging.rename(self.final)
            except OSError:
                if had_old:
                    self.trash.rename(self.final)
                raise
            fsync_dir(self.root)
        except OSError as exc:
            raise OutputError(f"cannot move outputs into {self.final}: {exc.strerror}") from None
        return had_old

    def commit(self) -> Path:
        """Move the staged folder into place, replacing what was there."""
        self.sync()
        if self.swap():
            _remove(self.trash)
        return self.final


def lock_timeout() -> float:
    """How long a run waits for a partition's lock: ``$SLUICE_LOCK_TIMEOUT`` seconds or 600."""
    text = os.environ.get(LOCK_TIMEOUT_ENV, "")
    try:
        return max(0.0, float(text)) if text.strip() else DEFAULT_LOCK_TIMEOUT_S
    except ValueError:
        raise OutputError(
            f"{LOCK_TIMEOUT_ENV} must be a number of seconds; found {text!r}"
        ) from None


@contextlib.contextmanager
def partition_lock(root: Path, dirname: str, *, timeout: float | None = None) -> Iterator[Path]:
    """Hold the lock of one partition (``flock`` on ``<root>/.locks/<dirname>.lock``).

    Waits up to ``timeout`` seconds (default :func:`lock_timeout`), then raises
    :class:`PartitionBusy`. The operating system releases the lock when the process dies.
    """
    wait = lock_timeout() if timeout is None else timeout
    path = root / LOCK_DIR / f"{dirname}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise OutputError(f"cannot write under {root}: {exc.strerror}") from None
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise PartitionBusy(
                        f"{dirname}: another run is writing this partition (it holds {path}); "
                        f"waited {wait:g} s. Run again when it has finished, or set "
                        f"{LOCK_TIMEOUT_ENV} to wait longer"
                    ) from None
                time.sleep(0.05)
        yield path
    finally:
        os.close(fd)


def journal_path(root: Path, dirname: str) -> Path:
    """Where the commit journal of a partition is while its folders are being swapped."""
    return root / f"{JOURNAL_PREFIX}{dirname}.json"


class PartitionCommit:
    """Stage one partition's folders under several roots and make them visible as one.

    ``roots`` maps a side (``clean``, ``quarantine``, ``reports``) to its root; the last side
    holds the manifest and its swap is the commit point. Call with the partition's lock held
    (:func:`partition_lock`). :meth:`swap` may move some sides into place early (the report reads
    the new clean and quarantine data from their final places); :meth:`commit` moves the rest.
    An error before the commit point puts every replaced folder back.
    """

    def __init__(
        self, roots: Mapping[str, Path], dirname: str, run_id: str, *, dataset: str | None = None
    ) -> None:
        self.sides = list(roots)
        self.roots = dict(roots)
        self.dirname = dirname
        self.run_id = run_id
        manifest = roots[self.sides[-1]] / dirname / MANIFEST_NAME
        self.writers = {
            side: PartitionWriter(
                root, dirname, dataset=dataset, side=side, run_id=run_id, manifest=manifest
            )
            for side, root in roots.items()
        }
        self.journal = journal_path(roots[self.sides[-1]], dirname)
        self.swapped: dict[str, bool] = {}
        self.committed = False

    def __enter__(self) -> PartitionCommit:
        for w in self.writers.values():
            w.check_owned()
        entered: list[PartitionWriter] = []
        try:
            for w in self.writers.values():
                entered.append(w.__enter__())
        except BaseException:
            for w in entered:
                shutil.rmtree(w.staging, ignore_errors=True)
            raise
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self.committed:
            self.roll_back()

    def writer(self, side: str) -> PartitionWriter:
        """The staged folder of one side."""
        return self.writers[side]

    def _write_journal(self) -> None:
        entries = [
            {
                "side": side,
                "root": str(w.root),
                "staging": str(w.staging),
                "final": str(w.final),
                "trash": str(w.trash),
                "had_old": w.final.exists() or w.final.is_symlink(),
            }
            for side, w in self.writers.items()
        ]
        doc = {"run_id": self.run_id, "dirname": self.dirname, "sides": entries}
        tmp = self.journal.with_name(f"{self.journal.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=2)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.rename(self.journal)
            fsync_dir(self.journal.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write {self.journal}: {_why(exc)}") from None

    def swap(self, *sides: str) -> None:
        """Move these sides into place (the journal is written before the first move)."""
        if not self.swapped:
            self._write_journal()
        for side in sides:
            if side not in self.swapped:
                self.writers[side].sync()
                self.swapped[side] = self.writers[side].swap()

    def commit(self) -> dict[str, Path]:
        """Move every remaining side into place, the manifest's last; then tidy up."""
        self.swap(*self.sides)
        self.committed = True
        for side, had_old in self.swapped.items():
            if had_old:
                _remove(self.writers[side].trash)
        with contextlib.suppress(OSError):
            self.journal.unlink()
            fsync_dir(self.journal.parent)
        return {side: w.final for side, w in self.writers.items()}

    def roll_back(self) -> None:
        """Put back what was replaced and remove what was staged, as :func:`recover` would.

        Should that fail too, the journal stays and the next run of the partition recovers.
        """
        if not self.journal.exists():
            for w in self.writers.values():
                shutil.rmtree(w.staging, ignore_errors=True)
            return
        with contextlib.suppress(OutputError):
            recover(self.roots, self.dirname)


def _leftover(name: str, dirname: str) -> bool:
    prefixes = f"(?:{re.escape(STAGING_PREFIX)}|{re.escape(TRASH_PREFIX)})"
    pattern = rf"{prefixes}{re.escape(dirname)}-[0-9a-f]{{12}}"
    tmp = rf"{re.escape(JOURNAL_PREFIX + dirname)}\.json\.[0-9a-f]{{12}}\.tmp"
    return re.fullmatch(pattern, name) is not None or re.fullmatch(tmp, name) is not None


def _made_by_run(folder: Path, run_id: object) -> bool:
    """Whether ``folder`` is the staged folder of run ``run_id`` (a folder with no marker was
    staged by an older version, which wrote none)."""
    if folder.is_symlink():
        return False
    try:
        doc = json.loads((folder / MARKER_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return True
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("run_id") in (None, run_id)


def recover(roots: Mapping[str, Path], dirname: str) -> list[str]:
    """Finish or undo the commit a dead run left for one partition; remove its leftovers.

    Call with the partition's lock held. With a journal: when the manifest's folder was moved
    into place (its staged folder is gone) the commit is completed, otherwise every replaced
    folder is put back. Then staging, replaced and temporary journal files of this partition
    are removed from every root. Returns what was done, in words.
    """
    done: list[str] = []
    sides = list(roots)
    journal = journal_path(roots[sides[-1]], dirname)
    all_roots = {Path(r) for r in roots.values()}
    try:
        doc = json.loads(journal.read_text(encoding="utf-8"))
    except FileNotFoundError:
        doc = None
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot read the commit journal {journal}: {_why(exc)}") from None
    if doc is not None:
        entries = doc["sides"]
        all_roots |= {Path(e["root"]) for e in entries}
        committed = not Path(entries[-1]["staging"]).exists()
        try:
            if not committed:
                for e in reversed(entries):
                    final, trash = Path(e["final"]), Path(e["trash"])
                    run_made_final = _made_by_run(final, doc.get("run_id"))
                    if trash.exists() or trash.is_symlink():
                        if final.exists() and run_made_final:
                            shutil.rmtree(final)
                        trash.rename(final)
                    elif (
                        not e["had_old"]
                        and run_made_final
                        and final.exists()
                        and not Path(e["staging"]).exists()
                    ):
                        shutil.rmtree(final)
            journal.unlink()
            fsync_dir(journal.parent)
        except OSError as exc:
            raise OutputError(f"cannot recover {dirname} from {journal}: {_why(exc)}") from None
        what = "completed" if committed else "rolled back"
        done.append(f"{what} the commit of run {doc.get('run_id')} ({journal})")
    for root in sorted(all_roots):
        if not root.is_dir():
            continue
        for entry in sorted(root.iterdir()):
            if _leftover(entry.name, dirname):
                _remove(entry)
                done.append(f"removed {entry}")
    return done


def recover_pending(journal_root: Path, *, skip: str | None = None) -> list[str]:
    """Recover every partition under ``journal_root`` whose commit a dead run left unfinished.

    Partitions whose lock another run holds are left alone (that run is alive).
    """
    done: list[str] = []
    if not journal_root.is_dir():
        return done
    for journal in sorted(journal_root.glob(f"{JOURNAL_PREFIX}*.json")):
        dirname = journal.name[len(JOURNAL_PREFIX) : -len(".json")]
        if dirname == skip:
            continue
        try:
            doc = json.loads(journal.read_text(encoding="utf-8"))
            roots = {e["side"]: Path(e["root"]) for e in doc["sides"]}
        except (OSError, ValueError, KeyError, TypeError):
            continue
        try:
            with partition_lock(journal_root, dirname, timeout=0):
                done += recover(roots, dirname)
        except PartitionBusy:
            continue
    return done


def read_back_ids(path: Path, sha256: str, column: str) -> pl.Series:
    """The ``column`` of a Parquet file, parsed from the very bytes whose hash is ``sha256``.

    Raises :class:`ConservationError` when the file cannot be read or is not those bytes.
    """
    try:
        data = read_verified(path, sha256)
    except Unverified as exc:
        if exc.changed:
            raise ConservationError(
                f"{path} changed after it was written (sha256 differs)"
            ) from None
        raise ConservationError(f"cannot read back {path}: {exc.why}") from None
    try:
        return pl.read_parquet(io.BytesIO(data), columns=[column])[column]
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise ConservationError(f"cannot read back {path}: {_why(exc)}") from None


def prove_conservation(
    files: Mapping[str, tuple[Path, str]],
    ids_in: pl.Series,
    column: str,
    expected: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Check from the files themselves that every input id is in exactly one of them.

    ``files`` maps a side (``clean``, ``quarantine``) to its staged file and the sha256 the
    manifest will give. Each file's ``column`` is read back from the hashed bytes; together the
    files must hold each id of ``ids_in`` once and nothing else, and agree with ``expected``
    (``{side: {rows, checksum}}``, what the manifest will say). Returns what was read,
    ``{side: {rows, checksum}}``; raises :class:`ConservationError` naming every difference.
    """
    read = {side: read_back_ids(path, sha, column) for side, (path, sha) in files.items()}
    names = ", ".join(str(path) for path, _ in files.values())
    return check_conservation(read, ids_in, column, expected, names=names)


def check_conservation(
    read: Mapping[str, pl.Series],
    ids_in: pl.Series,
    column: str,
    expected: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    names: str,
) -> dict[str, dict[str, Any]]:
    """Check that the ids read back from each side (``read``) hold every input id exactly once
    and agree with ``expected``; ``names`` says where they were read, for the error. Returns
    ``{side: {rows, checksum}}``; raises :class:`ConservationError` naming every difference."""
    from sluice.decide import add_checksums, checksum  # detectors -> write: import late

    back: dict[str, dict[str, Any]] = {
        side: {"rows": len(ids), "checksum": checksum(ids)} for side, ids in read.items()
    }
    both = pl.concat(list(read.values())) if read else pl.Series(column, [], pl.UInt64)
    sums_differ = add_checksums(*(str(v["checksum"]) for v in back.values())) != checksum(ids_in)
    problems = (
        _differences(both, ids_in, back, sums_differ=sums_differ)
        if sums_differ or not (_in_order(read, ids_in) or same_ids(both, ids_in))
        else []
    )
    return conserved(back, expected, problems, names)


def _in_order(read: Mapping[str, pl.Series], ids_in: pl.Series) -> bool:
    """Whether two sides hold ``ids_in`` cut in two, each in the input's order: as a split
    writes them, proven without sorting (any other order is left to :func:`same_ids`)."""
    sides = list(read.values())
    return len(sides) == 2 and split_in_order(ids_in, sides[0], sides[1])


def _differences(
    both: pl.Series,
    ids_in: pl.Series,
    back: Mapping[str, Mapping[str, Any]],
    *,
    sums_differ: bool,
) -> list[str]:
    """How the ids the files hold (``both``) differ from ``ids_in``, each way they do."""
    problems: list[str] = []
    if len(both) != len(ids_in):
        held = " + ".join(f"{v['rows']} {k}" for k, v in back.items())
        problems.append(f"{len(ids_in)} rows came in, the files hold {held}")
    if sums_differ:
        problems.append("the checksums of the files' ids do not add up to the input's")
    twice = len(both) - both.n_unique()
    if twice:
        problems.append(f"{twice} row ids are written twice (in both files, or twice in one)")
    lost = int((~ids_in.is_in(both.cast(ids_in.dtype, strict=False).implode())).sum())
    if lost:
        problems.append(f"{lost} input rows are in no file")
    extra = int((~both.is_in(ids_in.cast(both.dtype, strict=False).implode())).sum())
    if extra:
        problems.append(f"{extra} rows in the files did not come in")
    return problems or ["the files' ids are not the input's, each once"]


def conserved(
    back: dict[str, dict[str, Any]],
    expected: Mapping[str, Mapping[str, Any]] | None,
    problems: list[str],
    names: str,
) -> dict[str, dict[str, Any]]:
    """``back`` (``{side: {rows, checksum}}`` read from the staged files) when it agrees with
    ``expected`` and no ``problems`` were found; otherwise a :class:`ConservationError` naming
    every difference and where the files are (``names``)."""
    problems = list(problems)
    for side, want in (expected or {}).items():
        got = back.get(side)
        if got is not None and (got["rows"], got["checksum"]) != (want["rows"], want["checksum"]):
            problems.append(
                f"the {side} file holds {got['rows']} rows (checksum {got['checksum']}), "
                f"the manifest would say {want['rows']} ({want['checksum']})"
            )
    if problems:
        raise ConservationError(
            f"conservation does not hold in the files staged for the commit ({names}): "
            f"{'; '.join(problems)}. Nothing was committed and the previous outputs are "
            "untouched; this is a bug or a failing disk: please report it"
        )
    return back


@dataclass(frozen=True)
class Committed:
    """A partition as its manifest names it: Parquet outputs as frames, other outputs as bytes."""

    manifest: dict[str, Any]
    frames: dict[str, pl.DataFrame]
    files: dict[str, bytes]


def load_partition(
    manifest_path: Path, *, storage_options: Mapping[str, str] | None = None
) -> Committed:
    """Read a partition the way readers should: only files whose sha256 the manifest gives,
    and Delta tables (``tables``) at the version it gives, holding the rows it counted.

    Each file is read once, hashed, and parsed from the same bytes, so what is returned is what
    was checked. Raises :class:`NotCommitted` when the manifest is missing or a file is missing or
    differs (a run is replacing the partition, or died while doing so): read again later.
    """
    try:
        manifest = json.loads(manifest_path.read_bytes())
        outputs = manifest["outputs"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NotCommitted(f"{manifest_path}: no committed manifest ({_why(exc)})") from None
    frames: dict[str, pl.DataFrame] = {}
    files: dict[str, bytes] = {}
    for name, entry in sorted(outputs.items()):
        path = Path(entry["path"])
        try:
            data = read_verified(path, entry["sha256"])
        except Unverified as exc:
            if not exc.changed:
                raise NotCommitted(f"{path}: named by {manifest_path} but {exc.why}") from None
            raise NotCommitted(
                f"{path}: not the file {manifest_path} names (sha256 differs); the partition is "
                "being replaced or a run died while replacing it: read again later"
            ) from None
        if path.suffix == ".parquet":
            frames[name] = pl.read_parquet(io.BytesIO(data))
        else:
            files[name] = data
    if manifest.get("tables"):
        from sluice.storage import open_output  # storage -> write: import late

        for name in sorted(manifest["tables"]):
            frames[name] = open_output(manifest, name, storage_options=storage_options).read()
    return Committed(manifest, frames, files)


def describe(path: Path, rows: int | None = None) -> dict[str, Any]:
    """A manifest entry for an output file."""
    out: dict[str, Any] = {
        "path": str(path),
        "sha256": file_sha256(path),
        "bytes": path.stat().st_size,
    }
    if rows is not None:
        out["rows"] = rows
    return out


def write_json(obj: Any, path: Path) -> None:
    """Write JSON with sorted keys and a trailing newline."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {_why(exc)}") from None
