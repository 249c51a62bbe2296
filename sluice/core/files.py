"""Bounded file reads: every spec, suite, saved model and local source is a regular file.

A path is opened once, following symbolic links, without blocking (``O_NONBLOCK``: opening a
FIFO for reading would otherwise wait for a writer forever) and judged by ``fstat`` of what was
opened, so a link swapped after a check cannot slip a FIFO, a device (``/dev/zero`` reads
forever), a socket or a directory in. Specs and suites are also bounded in size; the limits are
set by environment variables (bytes).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import fsspec

from sluice.core.errors import ConfigError, InputError, SluiceError

_CHUNK = 1 << 20
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


@dataclass(frozen=True)
class Limit:
    """A size limit in bytes, settable by the environment variable ``env``."""

    env: str
    default: int

    def value(self) -> int:
        """The limit in force: ``env`` when set (a positive integer of bytes), else the default."""
        text = os.environ.get(self.env, "").strip()
        if not text:
            return self.default
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            value = 0
        if value <= 0:
            raise ConfigError(
                "not a size in bytes",
                file=f"${self.env}",
                found=text,
                allowed="a positive whole number of bytes",
            )
        return value


SPEC_LIMIT = Limit("SLUICE_MAX_SPEC_BYTES", 1 << 20)
SUITE_LIMIT = Limit("SLUICE_MAX_SUITE_BYTES", 64 << 20)

MakeError = Callable[[str, str | None, str | None], SluiceError]


def kind(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words ("a FIFO (named pipe)", "a directory", ...)."""
    return next((name for test, name in _KINDS if test(mode)), f"a special file (mode {mode:o})")


@contextmanager
def open_regular(path: str | Path, make_error: MakeError) -> Iterator[tuple[BinaryIO, int]]:
    """Open ``path`` for reading if, after following links, it is a regular file.

    Yields the open file (blocking again) and its size. ``make_error(problem, found, allowed)``
    builds the error raised for anything else or for a file that cannot be opened.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise make_error(
            f"cannot read it: {exc.strerror or exc}", None, "a readable file"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise make_error("not a regular file", kind(info.st_mode), "a regular file")
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh, info.st_size


def read_regular(path: str | Path, make_error: MakeError, limit: Limit | None = None) -> bytes:
    """The bytes of a regular file, refusing anything else and files beyond ``limit``."""
    bound = limit.value() if limit is not None else None
    with open_regular(path, make_error) as (fh, size):
        if bound is None:
            try:
                return fh.read()
            except OSError as exc:
                raise make_error(f"cannot read it: {exc.strerror or exc}", None, None) from None
        too_big = make_error(
            f"the file is larger than the limit of {bound} bytes (set {limit.env} to change it)"
            if limit is not None
            else "too large",
            f"{size} bytes",
            f"at most {bound} bytes",
        )
        if size > bound:
            raise too_big
        try:
            data = fh.read(bound + 1)
        except OSError as exc:
            raise make_error(f"cannot read it: {exc.strerror or exc}", None, None) from None
        if len(data) > bound:
            raise too_big
        return data


def iter_regular(path: str | Path, make_error: MakeError) -> Iterator[bytes]:
    """The bytes of a regular file in chunks of 1 MiB (for hashing large files)."""
    with open_regular(path, make_error) as (fh, _):
        while chunk := fh.read(_CHUNK):
            yield chunk


def config_error(path: str | Path, what: str, key: str | None = None) -> MakeError:
    """An error factory for a configuration file (``what``: "dataset spec", "suite file", ...)."""

    def make(problem: str, found: str | None, allowed: str | None) -> SluiceError:
        return ConfigError(f"{what}: {problem}", file=path, key=key, found=found, allowed=allowed)

    return make


def input_error(path: str | Path) -> MakeError:
    """An error factory for a data file: ``InputError`` naming the path."""

    def make(problem: str, found: str | None, allowed: str | None) -> SluiceError:
        text = f"{path}: {problem}"
        if found is not None:
            text += f"; found {found}"
        if allowed is not None:
            text += f"; allowed: {allowed}"
        return InputError(text)

    return make


def sha256_hex(data: bytes) -> str:
    """The sha256 of ``data`` as lowercase hex: the one hash every manifest and model uses."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file, read in chunks: a local regular file, or a remote URL via fsspec.

    A local path that is not a regular file raises :class:`InputError`.
    """
    digest = hashlib.sha256()
    text = str(path)
    if "://" not in text:
        for chunk in iter_regular(text, input_error(text)):
            digest.update(chunk)
        return digest.hexdigest()
    with fsspec.open(text, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class Unverified(Exception):
    """A file that cannot be read (``changed`` False), or whose bytes are not the ones a manifest
    hashed (``changed`` True); ``why`` says which, for a message."""

    def __init__(self, path: str | Path, why: str, *, changed: bool) -> None:
        super().__init__(f"{path}: {why}")
        self.path = str(path)
        self.why = why
        self.changed = changed


def read_verified(path: str | Path, sha256: str) -> bytes:
    """The bytes of ``path``, read once, returned only if their sha256 is ``sha256``.

    Parse what this returns (``pl.read_parquet(io.BytesIO(data))``), never the path again: the
    file may be replaced between a check and a second read. Raises :class:`Unverified`.
    """
    try:
        with open_regular(path, input_error(path)) as (fh, _):
            data = fh.read()
    except SluiceError as exc:
        raise Unverified(path, str(exc).removeprefix(f"{path}: "), changed=False) from None
    except OSError as exc:
        raise Unverified(path, exc.strerror or str(exc), changed=False) from None
    if sha256_hex(data) != sha256:
        raise Unverified(path, "sha256 differs", changed=True)
    return data


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a file created, renamed or removed in it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


MAKE_FOLDER_ATTEMPTS = 5


def make_folder(path: Path) -> None:
    """``path.mkdir(parents=True, exist_ok=True)``, tried again when a parent is removed between
    its making and ``path``'s: a shared parent (the reports root's ``.work``) is removed by any
    other run that finds it empty (its own cleanup, or recovering its partition)."""
    for left in range(MAKE_FOLDER_ATTEMPTS, 0, -1):
        try:
            path.mkdir(parents=True, exist_ok=True)
            return
        except FileNotFoundError:
            if left == 1:
                raise


def write_in_shared_folder(path: Path, text: str) -> None:
    """``path.write_text(text)`` after :func:`make_folder` of its folder, both tried again when
    the folder is removed between the two (another run removing an empty ``.work``)."""
    for left in range(MAKE_FOLDER_ATTEMPTS, 0, -1):
        make_folder(path.parent)
        try:
            path.write_text(text, encoding="utf-8")
            return
        except FileNotFoundError:
            if left == 1:
                raise
