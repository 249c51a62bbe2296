"""A run of one partition: what it reads, its work folder, and the facts its stages leave.

A :class:`Run` holds the loaded spec and suite; an orchestrator passes its :class:`RunRef`
between tasks, and each task rebuilds the run with :meth:`Run.resume`, which refuses to go on
when the spec or the suite file is no longer the one the run was prepared from. Each stage
records its facts (:class:`IngestFacts`, :class:`ValidateFacts`, :class:`ScreenFacts`) as JSON
in the work folder, checked against their model on the way in and on the way out.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from expectations.results import Suite
from sluice.config import LoadedSpec, Partition
from sluice.core.errors import InputError, SluiceError
from sluice.core.files import file_sha256
from sluice.core.frame import EngineChoice
from sluice.core.memory import note_stage
from sluice.pipeline.budget import forced_bounded, use_bounded
from sluice.pipeline.manifest import (
    AliasUse,
    DetectorRecord,
    ExpectationVerdict,
    InputFile,
    KeysCheck,
    Record,
    ReferencePartition,
    Sha256,
)
from sluice.preflight import preflight
from sluice.write import (
    write_json,
)

STAGES = ("ingest", "validate", "screen", "write")
Side = Literal["clean", "quarantine", "reports"]
SIDES: tuple[Side, ...] = ("clean", "quarantine", "reports")
OWNER_NAME = "owner.json"
BOUNDED_NAME = "bounded.json"
log = logging.getLogger("sluice")


class ConfigChanged(SluiceError):
    """The dataset spec or the suite file changed while a run was under way.

    The run stops before it writes anything: a manifest must name the files that were used.
    """


class RunRef(BaseModel):
    """What an orchestrator passes between the tasks of one run, and all it passes.

    The sha256 of the spec and of the suite are those the run was prepared from: a task that
    finds either file changed refuses to go on (:meth:`Run.resume`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec_path: str = Field(description="the dataset spec file")
    spec_sha256: Sha256
    suite_path: str = Field(description="the suite file")
    suite_sha256: Sha256
    partition: str = Field(description="the partition: YYYY-MM-DD or YYYY-MM")
    run_id: str
    engine: EngineChoice
    work: str = Field(description="the run's work folder")


class StageFacts(Record):
    """What every stage records: how long it took."""

    seconds: float = Field(ge=0)


class IngestFacts(StageFacts):
    """What ingest found in the partition's files."""

    rows: int = Field(ge=0)
    inputs: list[InputFile]
    missing_columns: list[str]
    extra_columns: list[str]
    aliases: list[AliasUse] = Field(default_factory=list)
    retyped_columns: dict[str, dict[str, str]] = Field(default_factory=dict)
    failures: int = Field(ge=0, description="parse failures")


class ValidateFacts(StageFacts):
    """What the suite and the keys check found."""

    engine: EngineChoice
    verdicts: list[ExpectationVerdict]
    critical_failed: bool
    failures: int = Field(ge=0)
    keys: KeysCheck = Field(default_factory=KeysCheck)


class ScreenFacts(StageFacts):
    """What the detectors did, or why none ran."""

    omit_when_none = ("skipped", "failures", "reference")

    rows: int = Field(ge=0, description="rows screened")
    models: list[DetectorRecord]
    skipped: str | None = None
    failures: int | None = Field(default=None, ge=0)
    reference: list[ReferencePartition] | None = None


FACTS: dict[str, type[StageFacts]] = {
    "ingest": IngestFacts,
    "validate": ValidateFacts,
    "screen": ScreenFacts,
}
F = TypeVar("F", bound=StageFacts)


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
        checked = preflight(dataset, partition, check_detectors_too=check_detectors, engine=engine)
        loaded, suite, part = checked.loaded, checked.suite, checked.partition
        rid = run_id or f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        work = loaded.output_root("reports") / ".work" / f"{part.dirname}-{rid}"
        return cls(loaded, suite, part, rid, work, engine or loaded.spec.validation.engine)

    @property
    def ref(self) -> RunRef:
        """The reference an orchestrator passes between tasks to rebuild this run."""
        return RunRef(
            spec_path=str(self.loaded.path),
            spec_sha256=self.loaded.sha256,
            suite_path=str(self.loaded.suite_path),
            suite_sha256=self.suite.sha256,
            partition=str(self.partition),
            run_id=self.run_id,
            engine=self.engine,
            work=str(self.work),
        )

    @classmethod
    def resume(cls, ref: RunRef) -> Run:
        """Rebuild a prepared run from its reference.

        Raises :class:`ConfigChanged` when the spec or the suite file no longer has the sha256
        the run was prepared with. The run was checked when it was prepared; the detectors are
        not checked again.
        """
        unchanged(ref)
        run = cls.prepare(
            ref.spec_path,
            ref.partition,
            engine=ref.engine,
            run_id=ref.run_id,
            check_detectors=False,
        )
        unchanged(ref, run)
        if str(run.work) != ref.work:
            raise SluiceError(
                f"run {ref.run_id}: its work folder is {run.work}, but the run was prepared "
                f"with {ref.work}"
            )
        return run

    def check_unchanged(self) -> None:
        """Raise :class:`ConfigChanged` when the spec or suite file changed since preparing."""
        unchanged(self.ref)

    def discard(self) -> None:
        """Remove the work folder, and its parent when no other run uses it."""
        shutil.rmtree(self.work, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.work.parent.rmdir()

    def file(self, name: str) -> Path:
        """A file in the work folder."""
        return self.work / name

    @property
    def bounded(self) -> bool:
        """Whether this run works in bounded batches (:func:`sluice.pipeline.budget.use_bounded`).

        ``SLUICE_BOUNDED`` decides when set. Otherwise the partition's size against the memory
        budget decides, once, at the first stage that asks once the work folder exists, and the
        answer is kept there: the budget follows the memory available, which changes while a run
        goes on, and every stage of one run takes the same path.
        """
        forced = forced_bounded()
        if forced is not None:
            return forced
        marker = self.file(BOUNDED_NAME)
        try:
            return bool(json.loads(marker.read_bytes())["bounded"])
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SluiceError(f"run {self.run_id}: {marker} cannot be read ({exc})") from None
        decided = use_bounded(self.loaded, self.partition)
        if self.work.is_dir():
            write_json({"bounded": decided}, marker)
        return decided

    def record(self, stage: str, seconds: float, **facts: Any) -> None:
        """Keep a stage's timing and facts for the manifest, checked against its model."""
        model = FACTS[stage].model_validate({"seconds": round(seconds, 4), **facts})
        write_json(model.model_dump(mode="json"), self.file(f"{stage}.json"))

    def stage_facts(self, stage: str, model: type[F]) -> F:
        """What a finished stage recorded, as its model."""
        return model.model_validate_json(self.file(f"{stage}.json").read_bytes())

    def ingest_facts(self) -> IngestFacts:
        """What ingest recorded."""
        return self.stage_facts("ingest", IngestFacts)

    def validate_facts(self) -> ValidateFacts:
        """What validate recorded."""
        return self.stage_facts("validate", ValidateFacts)

    def screen_facts(self) -> ScreenFacts:
        """What screen recorded."""
        return self.stage_facts("screen", ScreenFacts)

    def facts(self, stage: str) -> dict[str, Any]:
        """What a finished stage recorded, as JSON types (checked against its model)."""
        data: dict[str, Any] = self.stage_facts(stage, FACTS[stage]).model_dump(mode="json")
        return data


OWNER: ContextVar[dict[str, Any] | None] = ContextVar("sluice_run_owner", default=None)
"""Who owns the work folders runs make in this context (:func:`run_owner`); unset: this process."""


def run_owner() -> dict[str, Any]:
    """The owner a new work folder records: this host and process, unless :data:`OWNER` says
    otherwise (a Dask task records the client that will commit or discard the folder, so that
    recovery leaves it alone while that process lives)."""
    return dict(OWNER.get() or {"host": socket.gethostname(), "pid": os.getpid()})


def unchanged(ref: RunRef, run: Run | None = None) -> None:
    """Raise :class:`ConfigChanged` unless the spec and suite are those ``ref`` was made from.

    Without ``run`` the files are hashed as they are on disk; with it, the spec and suite the
    run loaded are compared.
    """
    files = (
        ("dataset spec", ref.spec_path, ref.spec_sha256, run.loaded.sha256 if run else None),
        ("suite", ref.suite_path, ref.suite_sha256, run.suite.sha256 if run else None),
    )
    for what, path, was, loaded in files:
        try:
            now = loaded or file_sha256(path)
        except (OSError, InputError) as exc:
            raise ConfigChanged(
                f"{what} {path} cannot be read since run {ref.run_id} was prepared ({exc}); "
                "the run stops before writing anything"
            ) from None
        if now != was:
            raise ConfigChanged(
                f"{what} {path} changed since run {ref.run_id} was prepared: sha256 was {was}, "
                f"is now {now}; the run stops before writing anything (screen the partition "
                "again to use the new file)"
            )


def timed(fn: Callable[[Run], dict[str, Any]], stage: str) -> Callable[[Run], None]:
    """``fn`` as a stage: it runs ``fn`` and records its facts and seconds under ``stage``."""

    def wrapper(run: Run) -> None:
        t0 = time.perf_counter()
        facts = fn(run)
        seconds = time.perf_counter() - t0
        run.record(stage, seconds, **facts)
        note_stage(run.run_id, stage, seconds)

    wrapper.__name__ = f"stage_{stage}"
    wrapper.__doc__ = fn.__doc__
    return wrapper


def output_roots(loaded: LoadedSpec) -> dict[str, Path]:
    """The output folders a commit renames, the reports root (which holds the manifest) last:
    all three for Parquet outputs, the reports root alone for Delta tables (sluice.storage)."""
    sides = ("reports",) if loaded.delta else SIDES
    return {side: loaded.output_root(side) for side in sides}
