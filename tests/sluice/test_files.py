"""Bounded reads: only regular files, within their size limits, never a blocking open."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from detectors.persist import check_model_file, load_model
from detectors.spec import DetectorSpec
from expectations.suite import load_suite
from sluice.config import load_spec
from sluice.core import files
from sluice.core.errors import ConfigError, InputError, SluiceError
from sluice.core.files import (
    MAKE_FOLDER_ATTEMPTS,
    SPEC_LIMIT,
    SUITE_LIMIT,
    Limit,
    input_error,
    make_folder,
    read_regular,
    write_in_shared_folder,
)
from sluice.ingest import ingest
from tests.conftest import SpecFactory

Special = Callable[[Path], Path]


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def dev_zero(path: Path) -> Path:
    path.symlink_to("/dev/zero")
    return path


def directory(path: Path) -> Path:
    path.mkdir()
    return path


def link_to_fifo(path: Path) -> Path:
    target = fifo(path.with_name(path.name + ".pipe"))
    path.symlink_to(target)
    return path


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Special]:
    opened: list[socket.socket] = []

    def make(path: Path) -> Path:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        opened.append(sock)
        return path

    yield make
    for sock in opened:
        sock.close()


KINDS: dict[str, tuple[Special, str]] = {
    "fifo": (fifo, "a FIFO"),
    "link_to_fifo": (link_to_fifo, "a FIFO"),
    "dev_zero": (dev_zero, "a character device"),
    "directory": (directory, "a directory"),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_spec_suite_and_model_must_be_regular_files(kind: str, tmp_path: Path) -> None:
    make, found = KINDS[kind]
    spec, suite, model = (make(tmp_path / name) for name in ("s.yaml", "s.json", "m.model"))
    for load, path in ((load_spec, spec), (load_suite, suite)):
        with pytest.raises(ConfigError, match="not a regular file") as info:
            load(path)
        assert str(path) in str(info.value)
        assert found in str(info.value)
    with pytest.raises(ConfigError, match=f"saved model: not a regular file.*{found}"):
        check_model_file(model, "0" * 64, key="model_sha256")
    detector = DetectorSpec.model_validate(
        {"name": "m", "detector": "iforest", "features": ["x"], "fit": "model", "model": str(model)}
        | {"model_sha256": "0" * 64}
    )
    with pytest.raises(ConfigError, match=f"saved model: not a regular file.*{found}"):
        load_model(model, detector, expected_sha256="0" * 64)


@pytest.mark.timeout(30)
def test_a_socket_is_refused(tmp_path: Path, unix_socket: Special) -> None:
    path = unix_socket(tmp_path / "s.yaml")
    with pytest.raises(ConfigError, match=r"s\.yaml: dataset spec: cannot read it"):
        load_spec(path)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_source_file_must_be_regular(
    kind: str, make_dataset: SpecFactory, tmp_path: Path
) -> None:
    loaded = load_spec(make_dataset({"2024-01-01": "id\nr1\n"}))
    source = KINDS[kind][0](tmp_path / "special.csv")
    found = KINDS[kind][1]
    with pytest.raises(InputError, match=f"special.csv: not a regular file; found {found}"):
        ingest(loaded, loaded.spec.partition.parse("2024-01-01"), [str(source)])


@pytest.mark.parametrize(("limit", "env"), [(SPEC_LIMIT, "s.yaml"), (SUITE_LIMIT, "s.json")])
def test_size_limits_are_stated_and_settable(
    limit: Limit, env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / env
    path.write_bytes(b" " * 101)
    load = load_spec if env.endswith("yaml") else load_suite
    monkeypatch.setenv(limit.env, "100")
    with pytest.raises(ConfigError, match=f"larger than the limit of 100 bytes.*{limit.env}"):
        load(path)
    monkeypatch.setenv(limit.env, "ten")
    with pytest.raises(ConfigError, match=r"SLUICE_MAX_.*not a size in bytes; found 'ten'"):
        load(path)
    monkeypatch.delenv(limit.env)
    assert limit.value() == limit.default >= 1 << 20


def test_regular_files_of_any_size_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    data = os.urandom(3 << 20)
    path.write_bytes(data)
    link = tmp_path / "link.csv"
    link.symlink_to(path)
    assert read_regular(link, input_error(link)) == data


def test_a_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(SluiceError, match=r"nope\.csv: cannot read it: No such file"):
        read_regular(tmp_path / "nope.csv", input_error(tmp_path / "nope.csv"))


def _removed_right_after(
    monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, folder: Path, times: int
) -> list[int]:
    """``owner.name`` (a function that makes a folder) with ``folder`` removed right after it is
    made, the first ``times`` times: what another run's cleanup of an empty ``.work`` does."""
    real = getattr(owner, name)
    removed: list[int] = []

    def racing(path: str | Path, *args: Any) -> None:
        real(path, *args)
        if Path(path) == folder and len(removed) < times:
            removed.append(1)
            os.rmdir(folder)

    monkeypatch.setattr(owner, name, racing)
    return removed


def _parent_removed_after_making(
    monkeypatch: pytest.MonkeyPatch, parent: Path, times: int
) -> list[int]:
    """``os.mkdir`` as pathlib calls it, racing as :func:`_removed_right_after` says."""
    return _removed_right_after(monkeypatch, os, "mkdir", parent, times)


def test_a_work_folder_is_made_though_its_parent_is_removed_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = tmp_path / ".work"
    target = parent / "date=2024-01-01-run"
    removed = _parent_removed_after_making(monkeypatch, parent, times=1)
    with pytest.raises(FileNotFoundError):  # what a bare mkdir does in that race
        target.mkdir(parents=True, exist_ok=True)
    removed.clear()
    make_folder(target)
    assert target.is_dir()
    assert removed == [1]


def test_a_parent_removed_every_time_still_fails_after_the_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = tmp_path / ".work"
    removed = _parent_removed_after_making(monkeypatch, parent, times=MAKE_FOLDER_ATTEMPTS)
    with pytest.raises(FileNotFoundError):
        make_folder(parent / "date=2024-01-01-run")
    assert len(removed) == MAKE_FOLDER_ATTEMPTS


def _folder_removed_after_making(
    monkeypatch: pytest.MonkeyPatch, folder: Path, times: int
) -> list[int]:
    """``make_folder`` as ``write_in_shared_folder`` calls it, racing as
    :func:`_removed_right_after` says: between the folder's making and a file's writing in it."""
    return _removed_right_after(monkeypatch, files, "make_folder", folder, times)


def test_a_file_is_written_though_its_folder_is_removed_after_its_making(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / ".work"
    removed = _folder_removed_after_making(monkeypatch, folder, times=1)
    files.make_folder(folder)
    with pytest.raises(FileNotFoundError):  # what making the folder and then writing does
        (folder / ".probe").write_text("x", encoding="utf-8")
    removed.clear()
    write_in_shared_folder(folder / ".probe", "token")
    assert (folder / ".probe").read_text(encoding="utf-8") == "token"
    assert removed == [1]


def test_a_folder_removed_every_time_still_fails_the_write_after_the_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / ".work"
    removed = _folder_removed_after_making(monkeypatch, folder, times=MAKE_FOLDER_ATTEMPTS)
    with pytest.raises(FileNotFoundError):
        write_in_shared_folder(folder / ".probe", "token")
    assert len(removed) == MAKE_FOLDER_ATTEMPTS
