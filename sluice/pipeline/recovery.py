"""Finishing or undoing what dead runs left, with the partition's lock held."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
from pathlib import Path

from sluice.config import LoadedSpec, Partition
from sluice.pipeline.run import OWNER_NAME, Run, log, output_roots
from sluice.write import (
    MANIFEST_NAME,
    PartitionBusy,
    partition_lock,
    recover,
    refuse_foreign,
)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_partition(
    loaded: LoadedSpec, partition: Partition, *, keep: Path | None = None
) -> list[str]:
    """Undo or finish what dead runs of one partition left; returns what was done, in words.

    Call with the partition's lock held: finishes or rolls back a dead commit
    (:func:`sluice.write.recover`), removes work folders of dead runs on this host (all but
    ``keep``) and temporary metric history files. A work folder is made and its ``owner.json``
    written with the lock held, so one without a readable owner was left by a run that died in
    between.
    """
    roots = output_roots(loaded)
    dirname = partition.dirname
    done = recover(roots, dirname)
    work_root = roots["reports"] / ".work"
    for folder in sorted(work_root.glob(f"{dirname}-*")):
        try:
            owner = json.loads((folder / OWNER_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            owner = {"partition": dirname, "host": socket.gethostname(), "pid": 0}
        if (
            folder != keep
            and folder.is_dir()
            and isinstance(owner, dict)
            and owner.get("partition") == dirname
            and owner.get("host") == socket.gethostname()
            and not _alive(_pid(owner.get("pid")))
        ):
            shutil.rmtree(folder, ignore_errors=True)
            done.append(f"removed the work folder of a dead run ({folder})")
    with contextlib.suppress(OSError):
        work_root.rmdir()
    from sluice.report.history import history_dir  # not at the top: sluice.report is heavy

    for tmp in sorted(history_dir(roots["reports"]).glob(f".{dirname}.*.tmp")):
        tmp.unlink(missing_ok=True)
        done.append(f"removed a metric history file a dead run left ({tmp})")
    for line in done:
        log.warning("%s %s: %s", loaded.name, dirname, line)
    return done


def _pid(value: object) -> int:
    if isinstance(value, int | str):
        with contextlib.suppress(ValueError):
            return int(value)
    return 0


def recover_dead_work(loaded: LoadedSpec, *, skip: str) -> None:
    """Recover other partitions of the dataset whose work folder a dead run left, when their
    lock is free (a partition whose run is alive is left alone)."""
    partitions: set[str] = set()
    for folder in (loaded.output_root("reports") / ".work").glob("*=*-*"):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            owner = json.loads((folder / OWNER_NAME).read_text(encoding="utf-8"))
            name = owner.get("partition")
            if isinstance(name, str) and name != skip and folder.name.startswith(f"{name}-"):
                partitions.add(name)
    for name in sorted(partitions):
        key, _, value = name.partition("=")
        try:
            part = loaded.spec.partition.parse(value)
        except ValueError:
            continue
        if key != part.key or part.dirname != name:
            continue
        with (
            contextlib.suppress(PartitionBusy),
            partition_lock(loaded.output_root("reports"), name, timeout=0),
        ):
            recover_partition(loaded, part)


def recover_for_run(run: Run, roots: dict[str, Path]) -> None:
    """Recover the partition (:func:`recover_partition`, keeping this run's work folder), then
    refuse partition folders sluice did not make (:func:`sluice.write.refuse_foreign`).

    Call with the partition's lock held.
    """
    dirname = run.partition.dirname
    recover_partition(run.loaded, run.partition, keep=run.work)
    manifest = roots["reports"] / dirname / MANIFEST_NAME
    for root in roots.values():
        refuse_foreign(root / dirname, dataset=run.loaded.name, manifest=manifest)
