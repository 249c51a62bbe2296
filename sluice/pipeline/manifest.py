"""The manifest of a committed partition, and the records the stages leave, as typed models.

The write stage fills :class:`Manifest` and writes ``model_dump(mode="json")``; readers that
decide something from a manifest (``flows.idempotence``) validate it with the same model. The
JSON Schema of the manifest is committed as ``docs/manifest.schema.json``;
``python -m sluice.pipeline.manifest`` writes it again after a change to these models.

``manifest_version`` 1 is the only version: every field added since the first manifests has a
default, so a manifest written before the field existed still validates.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from sluice.audit.records import AuditRecord
from sluice.core.frame import EngineChoice
from sluice.decide import add_checksums

MANIFEST_VERSION: Final = 1
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "docs" / "manifest.schema.json"

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the bytes, hex")]
Checksum = Annotated[
    str, Field(pattern=r"^[0-9a-f]{16}$", description="sum of _row_id mod 2^64, 16 hex digits")
]
Timestamp = Annotated[
    AwareDatetime,
    PlainSerializer(lambda d: d.isoformat(), return_type=str, when_used="json"),
]
Status = Literal["passed", "warned", "failed"]
Severity = Literal["warn", "error", "critical"]


class Record(BaseModel):
    """A part of a manifest or of a stage's facts: unknown keys are refused.

    Fields named in ``omit_when_none`` are left out of the JSON when they are None, as the
    manifests written before these models did.
    """

    model_config = ConfigDict(
        extra="forbid", serialize_by_alias=True, validate_by_name=True, validate_by_alias=True
    )
    omit_when_none: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_none(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name in self.omit_when_none:
                if name in data and data[name] is None:
                    del data[name]
        return data


class PartitionRef(Record):
    """Which partition the run screened."""

    key: str = Field(description="the partition column, e.g. date")
    value: str = Field(
        description="the partition: YYYY-MM-DD for a day, YYYY-MM for a month, YYYY-MM-DDTHH "
        "for an hour"
    )
    kind: Literal["day", "month", "hour"]


class Counts(Record):
    """Rows in and out, and rows per reason."""

    rows_in: int = Field(
        validation_alias="in",
        serialization_alias="in",
        ge=0,
        description="rows read from the input files",
    )
    clean: int = Field(ge=0, description="rows written to clean")
    quarantine: int = Field(ge=0, description="rows written to quarantine")
    warned_rows: int = Field(ge=0, description="rows with at least one warning")
    quarantined_by_reason: dict[str, int] = Field(
        description="reason (column|rule) to rows it quarantined; a row may have several"
    )
    warnings_by_reason: dict[str, int] = Field(
        default_factory=dict, description="reason to rows it warned about (severity warn)"
    )


class Checksums(Record):
    """Order-independent checksums of the ``_row_id`` of each side."""

    ids_in: Checksum = Field(validation_alias="in", serialization_alias="in")
    clean: Checksum
    quarantine: Checksum
    algorithm: str = Field(description="how the checksums are computed, in words")


class ReadBack(Record):
    """What a staged output file held when read back from its hashed bytes."""

    rows: int = Field(ge=0)
    checksum: Checksum


class Conservation(Record):
    """``in == clean + quarantine`` for counts and checksums, and what the files held."""

    holds: bool = Field(description="counts and checksums of in equal clean plus quarantine")
    read_back: dict[Literal["clean", "quarantine"], ReadBack] = Field(default_factory=dict)


class InputFile(Record):
    """One source file of the partition."""

    path: str = Field(description="the file's path or URL as read")
    sha256: Sha256
    size: int = Field(ge=0, description="bytes")
    rows: int = Field(ge=0, description="records read from it")


class AliasUse(Record):
    """A file that named a declared column by one of its aliases."""

    file: str
    column: str = Field(description="the declared column")
    alias: str = Field(description="the name the file used")


class SchemaDrift(Record):
    """How the files' columns differ from the spec."""

    missing_columns: list[str] = Field(description="declared columns no file holds")
    extra_columns: list[str] = Field(description="columns of the files the spec does not declare")
    aliases: list[AliasUse] = Field(default_factory=list)
    retyped_columns: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="columns the files hold in different types: column to file to type as read",
    )


class SpecFile(Record):
    """The dataset spec the run was prepared from."""

    path: str
    sha256: Sha256


class SuiteFile(Record):
    """The GX suite the run validated with."""

    name: str
    path: str | None = Field(description="the suite file; null for a suite built in memory")
    sha256: Sha256
    entries: int = Field(ge=0, description="expectations in the suite")


class ExpectationVerdict(Record):
    """The verdict of one expectation of the suite."""

    omit_when_none = ("why",)

    index: int = Field(ge=0, description="position in the suite")
    type: str = Field(description="the GX expectation type")
    kwargs: dict[str, Any]
    severity: Severity
    success: bool
    state: Literal["passed", "failed", "could_not_run"]
    why: str | None = Field(default=None, description="why it could not run (that state only)")
    reason: str = Field(description="column|rule, the reason its failing rows carry")
    engine: str = Field(description="the engine that ran it: polars or gx")
    unexpected_count: int | None = None
    observed_value: Any = None
    exception: str | None = None
    failing_rows: int = Field(ge=0, description="rows it marked as failing")
    note: str | None = None


class KeysCheck(Record):
    """The dataset's key columns and how their uniqueness was checked."""

    columns: list[str] = Field(default_factory=list)
    duplicates: str | None = Field(default=None, description="the spec's duplicate policy")
    enforced_by: str = Field(
        default="none", description="'none', 'keys check' or 'suite entry <index>'"
    )
    duplicate_rows: int = Field(default=0, ge=0, description="rows the keys check marked")


class Validation(Record):
    """What the validate stage found."""

    engine: EngineChoice = Field(description="the engine asked for")
    verdicts: list[ExpectationVerdict]
    keys: KeysCheck = Field(default_factory=KeysCheck)


class DetectorRecord(Record):
    """One detector of the spec: what it is, how it was fitted, its threshold.

    The fields named here are in every record; the rest depend on the detector and on how it
    was fitted (``threshold_method``, ``feature_preparation``, ``model_path``, ...).
    """

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="the detector spec's name (reasons say outlier|<name>)")
    detector: str = Field(description="the registry name, e.g. iforest")
    class_path: str = Field(
        validation_alias="class",
        serialization_alias="class",
        description="the implementing class, by import path",
    )
    params: dict[str, Any]
    features: list[dict[str, Any]]
    seed: int | None = None
    severity: Severity
    false_flag_rate: float | None = None
    fit_mode: str | None = Field(default=None, description="batch, reference or model")
    skipped: bool = False
    threshold: float | None = None


class ReferencePartition(Record):
    """An earlier partition whose clean rows a detector learned from: its clean file's sha256,
    or (Delta outputs) its clean table and version."""

    omit_when_none = ("sha256", "table", "table_version")

    partition: str
    sha256: Sha256 | None = None
    table: str | None = None
    table_version: int | None = Field(default=None, ge=0)
    rows: int = Field(ge=0)


class ScreenSummary(Record):
    """What the screen stage did."""

    omit_when_none = ("skipped", "reference")

    skipped: str | None = Field(default=None, description="why no detector ran, when none did")
    rows: int = Field(ge=0, description="rows screened (those that passed validation)")
    seconds: float = Field(ge=0)
    reference: list[ReferencePartition] | None = None


class Cause(Record):
    """One reason a run is not ``passed``."""

    level: Literal["warn", "error"]
    kind: str = Field(description="critical, check, could_not_run, rule, stage, run or report")
    name: str
    message: str
    share: float | None = None
    threshold: float | None = None
    policy: str | None = None


class Verdict(Record):
    """The run's status, its causes and the policies it was judged by."""

    status: Status
    causes: list[Cause]
    policies: dict[str, Any] = Field(
        default_factory=dict, description="the spec's policies section, as judged with"
    )


class OutputFile(Record):
    """A file the run wrote: readers trust it only if its bytes have this sha256."""

    omit_when_none = ("rows",)

    path: str
    sha256: Sha256
    size: int = Field(validation_alias="bytes", serialization_alias="bytes", ge=0)
    rows: int | None = Field(default=None, ge=0)


class TableVersion(Record):
    """A partition of a table the run wrote: readers read the table at this version only."""

    format: Literal["delta"] = "delta"
    uri: str = Field(description="the table's location (a local path or an object-store URI)")
    version: int = Field(ge=0, description="the table version the run's commit made")
    partition_column: str
    partition_value: str
    rows: int = Field(ge=0)
    checksum: Checksum


class Timings(Record):
    """Seconds spent in each stage."""

    omit_when_none = ("report",)

    ingest: float = Field(ge=0)
    validate_s: float = Field(validation_alias="validate", serialization_alias="validate", ge=0)
    screen: float = Field(ge=0)
    write: float = Field(ge=0)
    report: float | None = Field(default=None, ge=0)


class Findings(Record):
    """What the report found (sluice.report), or why it could not be built."""

    omit_when_none = (
        "quarantined_by_stage",
        "alarms",
        "drift",
        "judged_metrics",
        "learning_metrics",
        "drift_tested",
        "drift_skipped",
        "segment_bias",
        "report_error",
        "baselines",
        "change_points",
    )

    quarantined_by_stage: dict[str, int] | None = None
    alarms: list[dict[str, Any]] | None = None
    drift: list[dict[str, Any]] | None = None
    judged_metrics: int | None = None
    learning_metrics: int | None = None
    drift_tested: list[str] | None = None
    drift_skipped: dict[str, str] | None = None
    segment_bias: list[dict[str, Any]] | None = None
    report_error: str | None = Field(default=None, description="why report.html was not built")
    baselines: list[dict[str, Any]] | None = Field(
        default=None, description="this partition against each named baseline of monitor.baselines"
    )
    change_points: list[dict[str, Any]] | None = Field(
        default=None, description="level shifts found in the metric history"
    )


class PreviousCommit(Record):
    """The commit of the partition a release replaced: its manifest, kept in the audit folder."""

    run_id: str
    sha256: Sha256 = Field(description="sha256 of the previous manifest.json's bytes")
    path: str = Field(description="where the previous manifest is kept (never replaced)")


class ReleaseRecord(Record):
    """What a release commit (``sluice release``) changed, and on whose decision."""

    by: str = Field(description="who took the decisions")
    at: Timestamp
    decisions_path: str = Field(description="the decision file as given")
    decisions_sha256: Sha256
    suite_sha256: Sha256 = Field(description="the suite fixed rows were checked against")
    released: list[int] = Field(description="_row_id of rows released as held wrongly")
    fixed: list[int] = Field(description="_row_id of fixed rows that passed and moved to clean")
    still_failing: list[int] = Field(description="_row_id of fixed rows that still fail")
    rejected: list[int] = Field(description="_row_id of rows whose quarantine was confirmed")
    overturned_flags: dict[str, int] = Field(
        default_factory=dict,
        description="detector spec name to the rows it flagged that this release moved to clean",
    )
    audit_log: str = Field(description="the append-only audit log of the partition")


class Manifest(Record):
    """The record of one committed partition: what was read, checked, written, and the verdict.

    Written last, as the commit point; ``docs/design.md`` ("The manifest") says how to read it.
    """

    omit_when_none = ("audit", "previous", "release", "tables", "orchestrator")

    manifest_version: Literal[1] = MANIFEST_VERSION
    run_id: str
    dataset: str
    partition: PartitionRef
    status: Status
    critical: list[str] = Field(description="the critical reasons that failed the partition")
    verdict: Verdict
    started_at: Timestamp
    finished_at: Timestamp
    counts: Counts
    checksums: Checksums
    conservation: Conservation
    inputs: list[InputFile]
    schema_drift: SchemaDrift = Field(validation_alias="schema", serialization_alias="schema")
    spec: SpecFile
    suite: SuiteFile
    validation: Validation
    detectors: list[DetectorRecord]
    screen: ScreenSummary
    reasons: list[str] = Field(default_factory=list, description="every reason present")
    versions: dict[str, str] = Field(description="Python's and the main libraries' versions")
    outputs: dict[str, OutputFile] = Field(
        description="clean, quarantine and failures always; scores, metrics and report when made"
    )
    timings_s: Timings
    findings: Findings = Field(default_factory=Findings)
    audit: AuditRecord | None = Field(
        default=None,
        description="the stored bytes of the spec, suite, saved models and archived inputs "
        "(docs/audit.md); absent in manifests written before they were kept",
    )
    previous: PreviousCommit | None = Field(
        default=None, description="the commit this one replaced, for a release commit"
    )
    release: ReleaseRecord | None = Field(
        default=None, description="what a release commit changed (sluice release)"
    )
    tables: dict[str, TableVersion] | None = Field(
        default=None,
        description="outputs.format delta: clean, quarantine and failures as table versions "
        "(they are then not in outputs)",
    )
    orchestrator: Literal["in-process", "prefect", "dask"] | None = Field(
        default=None,
        description="what ran the stages: sluice in one process (and its workers), Prefect "
        "flows, or a Dask cluster (the stages before the write; the write ran in sluice's "
        "process); absent in manifests written before it was recorded",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        if self.status != self.verdict.status:
            raise ValueError(f"status {self.status!r} but verdict.status {self.verdict.status!r}")
        missing = sorted(
            {"clean", "quarantine", "failures"} - set(self.outputs) - set(self.tables or {})
        )
        if missing:
            raise ValueError(f"outputs lacks {', '.join(missing)}")
        c, s = self.counts, self.checksums
        holds = c.rows_in == c.clean + c.quarantine and s.ids_in == add_checksums(
            s.clean, s.quarantine
        )
        if self.conservation.holds != holds:
            raise ValueError(
                f"conservation.holds is {self.conservation.holds} but the counts and checksums "
                f"say {holds}"
            )
        return self

    def dump(self) -> dict[str, Any]:
        """The manifest as JSON types, in the shape ``manifest.json`` holds."""
        data: dict[str, Any] = self.model_dump(mode="json")
        return data


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema of ``manifest.json`` (what ``docs/manifest.schema.json`` holds)."""
    schema = Manifest.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def schema_text() -> str:
    """The committed form of :func:`manifest_schema`: sorted keys, two-space indent."""
    return json.dumps(manifest_schema(), indent=2, sort_keys=True) + "\n"


def now() -> dt.datetime:
    """The current instant, in UTC (what ``started_at`` and ``finished_at`` hold)."""
    return dt.datetime.now(dt.UTC)


def main(argv: list[str] | None = None) -> int:
    """Write the manifest's JSON Schema to ``docs/manifest.schema.json`` (or the path given)."""
    parser = argparse.ArgumentParser(
        prog="python -m sluice.pipeline.manifest",
        description="Write the JSON Schema of manifest.json.",
    )
    parser.add_argument("target", nargs="?", type=Path, default=SCHEMA_PATH, help="where to write")
    target = parser.parse_args(argv).target
    target.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
