"""A run of one partition: what it reads, its work folder, and the facts its stages leave."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from expectations.results import Suite
from sluice.config import LoadedSpec, Partition
from sluice.core.frame import EngineChoice
from sluice.preflight import preflight
from sluice.write import (
    write_json,
)

STAGES = ("ingest", "validate", "screen", "write")
Side = Literal["clean", "quarantine", "reports"]
SIDES: tuple[Side, ...] = ("clean", "quarantine", "reports")
OWNER_NAME = "owner.json"
log = logging.getLogger("sluice")


@dataclass(frozen=True)
class Run:
    """One run of one partition: what it reads and where its work folder is."""

    loaded: LoadedSpec
    suite: Suite
    partition: Partition
    run_id: str
    work: Path
    engine: EngineChoice

    @classmethod
    def prepare(
        cls,
        dataset: str,
        partition: str | dt.date,
        *,
        engine: EngineChoice | None = None,
        run_id: str | None = None,
        check_detectors: bool = True,
    ) -> Run:
        """Load and check every piece of configuration before any data moves."""
        checked = preflight(dataset, partition, check_detectors_too=check_detectors)
        loaded, suite, part = checked.loaded, checked.suite, checked.partition
        rid = run_id or f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        work = loaded.output_root("reports") / ".work" / f"{part.dirname}-{rid}"
        return cls(loaded, suite, part, rid, work, engine or loaded.spec.validation.engine)

    @classmethod
    def resume(cls, spec_path: str, partition: str, run_id: str, engine: EngineChoice) -> Run:
        """Rebuild a prepared run from the plain values an orchestrator passes between tasks.

        The run was checked when it was prepared; the detectors are not checked again.
        """
        return cls.prepare(
            spec_path, partition, engine=engine, run_id=run_id, check_detectors=False
        )

    def discard(self) -> None:
        """Remove the work folder, and its parent when no other run uses it."""
        shutil.rmtree(self.work, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.work.parent.rmdir()

    def file(self, name: str) -> Path:
        """A file in the work folder."""
        return self.work / name

    def record(self, stage: str, seconds: float, **facts: Any) -> None:
        """Keep a stage's timing and facts for the manifest."""
        path = self.file(f"{stage}.json")
        write_json({"seconds": round(seconds, 4), **facts}, path)

    def facts(self, stage: str) -> dict[str, Any]:
        """What a finished stage recorded."""
        data: dict[str, Any] = json.loads(self.file(f"{stage}.json").read_text())
        return data


def timed(fn: Callable[[Run], dict[str, Any]], stage: str) -> Callable[[Run], None]:
    """``fn`` as a stage: it runs ``fn`` and records its facts and seconds under ``stage``."""

    def wrapper(run: Run) -> None:
        t0 = time.perf_counter()
        facts = fn(run)
        run.record(stage, time.perf_counter() - t0, **facts)

    wrapper.__name__ = f"stage_{stage}"
    wrapper.__doc__ = fn.__doc__
    return wrapper


def output_roots(loaded: LoadedSpec) -> dict[str, Path]:
    """The output roots of a dataset, the reports root (which holds the manifest) last."""
    return {side: loaded.output_root(side) for side in SIDES}
