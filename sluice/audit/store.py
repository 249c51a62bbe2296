"""A write-once, content-addressed store of the bytes a run used, beside the manifests.

An object is a file named by the sha256 of its bytes, ``<root>/sha256/<first two hex>/<hex>``.
Storing copies the bytes to a temporary name in the same folder while hashing them, checks the
hash against the one expected, flushes the file to disk and links it into place; ``link`` fails
when the name exists, so an object is never rewritten. An object already there is read again and
must hash to its name: a store that lost or changed a byte is reported, never repaired in place.
Objects are made read-only (mode 0444). Storing bytes already there marks the object as used
now (its modification time), which is when retention counts its age from.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import fsspec

from sluice.core.errors import SluiceError
from sluice.core.files import fsync_dir, input_error, iter_regular

OBJECTS_DIR = "_objects"
"""Under a dataset's reports root: the specs, suites and saved models runs used."""
INPUTS_DIR = "_inputs"
"""Under a dataset's reports root: the archived input files (``archive_inputs: true``)."""
SHA256_RE = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


class StoreError(SluiceError):
    """An object cannot be stored or read back as the bytes it is named by."""


def _chunks_of(source: str | Path) -> Iterator[bytes]:
    text = str(source)
    if "://" not in text:
        yield from iter_regular(text, input_error(text))
        return
    try:
        with fsspec.open(text, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                yield chunk
    except OSError as exc:
        raise StoreError(f"{text}: cannot read: {exc}") from None


@dataclass(frozen=True)
class ObjectStore:
    """One content-addressed store: ``root`` holds ``sha256/ab/abcd...`` files."""

    root: Path

    def path(self, sha256: str) -> Path:
        """Where the object of this sha256 is (or would be)."""
        if not SHA256_RE.fullmatch(sha256):
            raise StoreError(f"not a sha256: {sha256!r} (allowed: 64 lowercase hex digits)")
        return self.root / "sha256" / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        """Whether an object of this sha256 is stored (its bytes are not checked)."""
        return self.path(sha256).is_file()

    def put_bytes(self, data: bytes, sha256: str | None = None) -> str:
        """Store ``data`` (whose sha256 must be ``sha256`` when given); returns its sha256."""
        return self._put([data], sha256, what="the bytes given")

    def put_file(self, source: str | Path, sha256: str) -> str:
        """Store the bytes of ``source`` (a local path or URL), which must hash to ``sha256``."""
        return self._put(_chunks_of(source), sha256, what=str(source))

    def _put(self, chunks: Iterable[bytes], sha256: str | None, *, what: str) -> str:
        if sha256 is not None and self.has(sha256):
            self.verify(sha256)
            self.touch(sha256)
            return sha256
        folder = self.root / "sha256"
        tmp = self.root / f".tmp-{uuid.uuid4().hex[:12]}"
        digest = hashlib.sha256()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tmp.open("xb") as fh:
                for chunk in chunks:
                    digest.update(chunk)
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            got = digest.hexdigest()
            if sha256 is not None and got != sha256:
                raise StoreError(
                    f"{what}: its bytes changed since the run read them (sha256 was {sha256}, "
                    f"is now {got}); nothing was stored"
                )
            final = self.path(got)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, 0o444)
            try:
                os.link(tmp, final)
            except FileExistsError:
                self.verify(got)
                self.touch(got)
            else:
                fsync_dir(final.parent)
                fsync_dir(folder)
            return got
        except OSError as exc:
            raise StoreError(
                f"cannot store {what} under {self.root}: {exc.strerror or exc}"
            ) from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def touch(self, sha256: str) -> None:
        """Mark the object as used now (its modification time): retention counts its age from
        its last use, so an object a run is about to reference is never expired."""
        with contextlib.suppress(OSError):
            os.utime(self.path(sha256))

    def verify(self, sha256: str) -> None:
        """Raise :class:`StoreError` unless the object of ``sha256`` hashes to its name."""
        path = self.path(sha256)
        digest = hashlib.sha256()
        try:
            with path.open("rb") as fh:
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
        except OSError as exc:
            raise StoreError(f"stored object {path}: cannot read it: {exc.strerror}") from None
        if digest.hexdigest() != sha256:
            raise StoreError(
                f"stored object {path} is damaged: its bytes hash to {digest.hexdigest()}, not "
                "to its name; it is left as it is (restore it from a copy of the store)"
            )

    def read(self, sha256: str) -> bytes:
        """The bytes of the object of ``sha256``, checked against its name."""
        path = self.path(sha256)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise StoreError(f"stored object {path}: cannot read it: {exc.strerror}") from None
        got = hashlib.sha256(data).hexdigest()
        if got != sha256:
            raise StoreError(
                f"stored object {path} is damaged: its bytes hash to {got}, not to its name"
            )
        return data

    def objects(self) -> list[str]:
        """The sha256 of every object stored, sorted."""
        base = self.root / "sha256"
        if not base.is_dir():
            return []
        return sorted(
            p.name for p in base.glob("??/*") if SHA256_RE.fullmatch(p.name) and p.is_file()
        )


def objects_store(reports_root: Path) -> ObjectStore:
    """The store of specs, suites and saved models of a dataset."""
    return ObjectStore(reports_root / OBJECTS_DIR)


def inputs_store(reports_root: Path) -> ObjectStore:
    """The store of a dataset's archived input files."""
    return ObjectStore(reports_root / INPUTS_DIR)
