"""A Dask cluster to run on: where it is, connecting to it, and checking its workers.

The address comes from ``--dask``, else ``SLUICE_DASK_ADDRESS``, else the dataset spec's
``execution.dask`` (:func:`resolve_address`); without one, sluice runs in one machine's processes.
:func:`connect` returns a ``distributed.Client`` only after the scheduler has answered within
a few seconds and every worker runs the same sluice (version, code and main dependencies) as
this process (:func:`check_workers`). :func:`check_shared_storage` proves that every worker
sees the files a run reads and the work folders it writes, on the same storage as this process.
Anything wrong is a :class:`ClusterError` (exit code 2) naming the worker and what it lacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from sluice.config import LoadedSpec, is_remote
from sluice.core.dask_address import ADDRESS_FORM, dask_address
from sluice.core.errors import ConfigError, SluiceError
from sluice.core.files import file_sha256, write_in_shared_folder
from sluice.core.versions import versions

ADDRESS_ENV = "SLUICE_DASK_ADDRESS"
CONNECT_SECONDS = 5.0
CODE_PACKAGES = ("sluice", "expectations", "detectors")
INSTALL_HINT = "pip install 'sluice[dask]'"


class ClusterError(SluiceError):
    """The Dask cluster cannot be used: no scheduler answers, a worker runs other code or does
    not see the run's files, or every worker is gone."""


@dataclass(frozen=True)
class Address:
    """A scheduler address and where it was set (the option, the variable or the spec)."""

    address: str
    source: str


def resolve_address(option: str | None, loaded: LoadedSpec | None = None) -> Address | None:
    """The cluster to run on: ``option`` (``--dask``), else ``SLUICE_DASK_ADDRESS``, else the
    spec's ``execution.dask``; None when none is set (an empty value counts as unset)."""
    if option is not None and option.strip():
        try:
            return Address(dask_address(option), "--dask")
        except ValueError as exc:
            raise ConfigError(
                "not a Dask scheduler address", key="--dask", found=option, allowed=ADDRESS_FORM
            ) from exc
    text = os.environ.get(ADDRESS_ENV, "").strip()
    if text:
        try:
            return Address(dask_address(text), ADDRESS_ENV)
        except ValueError:
            raise ConfigError(
                "not a Dask scheduler address",
                file="environment",
                key=ADDRESS_ENV,
                found=text,
                allowed=ADDRESS_FORM,
            ) from None
    if loaded is not None and loaded.spec.execution.dask:
        line = loaded.lines.get("execution.dask")
        where = f"{loaded.path}:{line}" if line else str(loaded.path)
        return Address(loaded.spec.execution.dask, f"execution.dask in {where}")
    return None


@contextlib.contextmanager
def quiet_distributed() -> Iterator[None]:
    """Keep dask.distributed's own log records (tracebacks of lost connections, reconnect
    attempts) off this process's console; sluice reports what they mean in its own words."""
    _distributed()  # its loggers exist once it is imported
    names = ["distributed"] + [
        n for n in logging.root.manager.loggerDict if n.startswith("distributed.")
    ]
    levels = {n: logging.getLogger(n).level for n in names}
    for name in names:  # each: dask's config sets levels on some of them
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _distributed() -> Any:
    try:
        return import_module("distributed")
    except ImportError:
        raise ClusterError(
            f"a Dask address is set, but dask.distributed is not installed here ({INSTALL_HINT})"
        ) from None


async def _handshake(address: str, seconds: float) -> str:
    comm_connect: Any = _distributed().comm.connect
    comm = await asyncio.wait_for(comm_connect(address, timeout=seconds), seconds)
    try:
        await asyncio.wait_for(comm.write({"op": "identity"}), seconds)
        answer = await asyncio.wait_for(comm.read(), seconds)
    finally:
        comm.abort()
    return str(answer.get("type", "")) if isinstance(answer, dict) else ""


def probe_scheduler(address: Address, seconds: float = CONNECT_SECONDS) -> None:
    """Raise :class:`ClusterError` unless a Dask scheduler answers at ``address`` within
    ``seconds`` (Dask's own connect timeout does not bound the handshake: a server that is not
    a scheduler would hold it forever)."""
    _distributed()
    try:
        kind = asyncio.run(asyncio.wait_for(_handshake(address.address, seconds), seconds))
    except TimeoutError:
        raise ClusterError(
            f"no Dask scheduler answers at {address.address} (from {address.source}) within "
            f"{seconds:g} s; start one (dask scheduler) or fix the address"
        ) from None
    except Exception as exc:
        raise ClusterError(
            f"no Dask scheduler answers at {address.address} (from {address.source}): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
        ) from None
    if kind != "Scheduler":
        raise ClusterError(
            f"{address.address} (from {address.source}) answers, but not as a Dask scheduler "
            f"(it says it is {kind or 'nothing known'})"
        )


def connect(address: Address, seconds: float = CONNECT_SECONDS) -> Any:
    """A client of the scheduler at ``address``, after :func:`probe_scheduler` and
    :func:`check_workers`; the caller closes it."""
    probe_scheduler(address, seconds)
    distributed = _distributed()
    try:
        client: Any = distributed.Client(address.address, timeout=seconds, set_as_default=False)
    except Exception as exc:
        raise ClusterError(
            f"cannot connect to the Dask scheduler at {address.address} (from "
            f"{address.source}): {exc}"
        ) from None
    try:
        check_workers(client, address)
    except BaseException:
        client.close()
        raise
    return client


@functools.cache
def code_fingerprint() -> str:
    """The sha256 of the code a worker runs (the Python files of sluice, expectations and
    detectors, by path relative to their package), so that two installs of one version with
    different code are told apart."""
    digest = hashlib.sha256()
    for name in CODE_PACKAGES:
        root = Path(import_module(name).__file__ or "").parent
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if "__pycache__" in rel:
                continue
            digest.update(f"{name}/{rel}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


def worker_identity() -> dict[str, Any]:
    """On a worker: its host, process, versions and code fingerprint."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "versions": versions(),
        "code": code_fingerprint(),
    }


def each_worker(client: Any, fn: Any, *args: Any) -> dict[str, Any]:
    """``fn(*args)`` on every worker, one at a time: its result, or the exception it raised.

    (``client.run(..., on_error="return")`` itself fails with an AssertionError when a worker's
    traceback cannot be rebuilt here, as when the worker cannot import sluice.)
    """
    found: dict[str, Any] = {}
    for worker in sorted(client.nthreads()):
        try:
            found[worker] = client.run(fn, *args, workers=[worker])[worker]
        except Exception as exc:
            found[worker] = exc
    return found


def check_workers(client: Any, address: Address) -> dict[str, dict[str, Any]]:
    """Every worker's :func:`worker_identity`, after checking it matches this process's.

    Raises :class:`ClusterError` naming each worker that cannot import sluice, or runs another
    version of sluice, Python or a main dependency, or other sluice code; and when the cluster
    has no worker.
    """
    found = each_worker(client, worker_identity)
    if not found:
        raise ClusterError(
            f"the Dask cluster at {address.address} (from {address.source}) has no workers; "
            "start some (dask worker ADDRESS) and run again"
        )
    mine = worker_identity()
    problems: list[str] = []
    for worker, got in sorted(found.items()):
        if not isinstance(got, dict):
            text = f"{type(got).__name__}: {got}".rstrip(": ")
            if "ModuleNotFound" in text or "No module named" in text:
                problems.append(f"worker {worker} cannot import sluice ({text}); install it there")
            else:
                problems.append(
                    f"worker {worker} cannot run sluice's check ({text}); is the same sluice "
                    "installed there?"
                )
            continue
        theirs = got.get("versions", {})
        for name, version in mine["versions"].items():
            if theirs.get(name) != version:
                problems.append(
                    f"worker {worker} has {name} {theirs.get(name, 'not installed')}, this "
                    f"process {version}"
                )
        if got.get("code") != mine["code"] and theirs.get("sluice") == mine["versions"]["sluice"]:
            problems.append(
                f"worker {worker} runs sluice {theirs.get('sluice')} with other code than this "
                f"process (code sha256 {str(got.get('code'))[:12]}, here {mine['code'][:12]})"
            )
    if problems:
        raise ClusterError(
            f"the Dask cluster at {address.address} cannot screen for this sluice: "
            + "; ".join(problems)
            + ". Every worker needs the same sluice and dependencies as the client"
        )
    return {w: g for w, g in found.items() if isinstance(g, dict)}


def storage_facts(spec_path: str, probe: str, work_root: str) -> dict[str, Any]:
    """On a worker: what it sees of a run's files (the spec's sha256, the source folder, the
    probe file the client wrote, whether it can write the work folders)."""
    facts: dict[str, Any] = {"host": socket.gethostname()}
    try:
        facts["spec_sha256"] = file_sha256(spec_path)
    except Exception as exc:
        facts["spec_error"] = str(exc)
    try:
        facts["probe"] = Path(probe).read_text(encoding="utf-8")
    except OSError as exc:
        facts["probe_error"] = exc.strerror or str(exc)
    mine = Path(work_root) / f".probe-{uuid.uuid4().hex}"
    try:
        mine.write_text("sluice", encoding="utf-8")
        mine.unlink()
    except OSError as exc:
        facts["write_error"] = exc.strerror or str(exc)
    return facts


def source_facts(spec_path: str) -> dict[str, Any]:
    """On a worker: the spec as it loads there (resolved source folder, output roots), and
    whether the source folder is there."""
    from sluice.config import load_spec

    loaded = load_spec(spec_path)
    prefix = loaded.source_prefix()
    facts: dict[str, Any] = {
        "source": str(prefix),
        "reports": str(loaded.output_root("reports")),
    }
    if not is_remote(str(prefix)):
        facts["source_seen"] = Path(prefix).is_dir()
    return facts


def check_shared_storage(client: Any, loaded: LoadedSpec) -> None:
    """Raise :class:`ClusterError` unless every worker reads the spec this process loaded,
    resolves its source and reports root to the same places, sees the source folder (when it
    is a local or ``file://`` path) and reads and writes this process's work folders (a probe
    file written here must be read there)."""
    work_root = loaded.output_root("reports") / ".work"
    token = uuid.uuid4().hex
    probe = work_root / f".probe-{token}"
    try:  # another run may remove an empty .work between its making and the probe's writing
        write_in_shared_folder(probe, token)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise ClusterError(
            f"cannot write a probe file in the work folder {work_root}: {why}"
        ) from None
    try:
        seen = each_worker(client, storage_facts, str(loaded.path), str(probe), str(work_root))
        sources = each_worker(client, source_facts, str(loaded.path))
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    problems: list[str] = []
    prefix = str(loaded.source_prefix())
    for worker, facts in sorted(seen.items()):
        if not isinstance(facts, dict):
            problems.append(f"worker {worker}: {facts}")
            continue
        host = f"worker {worker} (host {facts.get('host')})"
        if "spec_error" in facts:
            problems.append(f"{host} cannot read the spec {loaded.path}: {facts['spec_error']}")
        elif facts.get("spec_sha256") != loaded.sha256:
            problems.append(f"{host} reads another spec at {loaded.path} (sha256 differs)")
        if facts.get("probe") != token:
            why = facts.get("probe_error", "it holds other content")
            problems.append(
                f"{host} does not see this machine's work folder {work_root} ({why}): the "
                "reports root must be on storage every worker shares"
            )
        if "write_error" in facts:
            problems.append(
                f"{host} cannot write the work folder {work_root}: {facts['write_error']}"
            )
        where = sources.get(worker)
        if not isinstance(where, dict):
            if "spec_error" not in facts:
                problems.append(f"{host} cannot load the spec {loaded.path}: {where}")
            continue
        if where.get("source") != prefix:
            problems.append(
                f"{host} resolves source.path to {where.get('source')}, this machine to {prefix} "
                "(an environment variable in the path differs?)"
            )
        elif where.get("source_seen") is False:
            problems.append(
                f"{host} cannot read the source folder {prefix}: a local or file:// source must "
                "be on storage every worker shares"
            )
        if where.get("reports") != str(loaded.output_root("reports")):
            problems.append(
                f"{host} resolves outputs.reports to {where.get('reports')}, this machine to "
                f"{loaded.output_root('reports')}"
            )
    if problems:
        raise ClusterError(
            f"{loaded.name}: the Dask workers cannot run this dataset: " + "; ".join(problems)
        )
