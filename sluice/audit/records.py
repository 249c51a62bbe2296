"""What a manifest records of the bytes kept for an audit, and what audit readers take from it.

:class:`AuditRecord` is the manifest's ``audit`` section (:class:`sluice.pipeline.manifest.
Manifest`): each stored object by role, with its path relative to the dataset's reports root, so
a copied or moved reports root still resolves. :class:`ManifestFacts` is the part of a manifest
``sluice audit`` and ``sluice retention`` read; it ignores the rest, so they read manifests of
every version.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the bytes, hex")]


class StoredObject(BaseModel):
    """One object of the content-addressed store."""

    model_config = ConfigDict(extra="forbid")

    sha256: Sha256
    size: int = Field(ge=0, description="bytes")
    path: str = Field(description="the object, relative to the dataset's reports root")


class AuditRecord(BaseModel):
    """The bytes a run used, kept write-once beside its manifest (``docs/audit.md``)."""

    model_config = ConfigDict(extra="forbid")

    spec: StoredObject = Field(description="the dataset spec's exact bytes")
    suite: StoredObject | None = Field(
        description="the suite file's exact bytes (null for a suite built in memory)"
    )
    models: dict[str, StoredObject] = Field(
        default_factory=dict, description="detector name to the saved model file it loaded"
    )
    inputs_archived: bool = Field(description="whether the spec asked for archive_inputs")
    inputs: dict[str, StoredObject] = Field(
        default_factory=dict, description="input path (as in inputs[].path) to its archived copy"
    )

    def objects(self) -> list[StoredObject]:
        """Every object this record references."""
        found = [self.spec, *self.models.values(), *self.inputs.values()]
        return found + ([self.suite] if self.suite is not None else [])


class PartitionFacts(BaseModel):
    """The partition a manifest is of."""

    model_config = ConfigDict(extra="ignore")

    key: str
    value: str


class InputFacts(BaseModel):
    """One input file as a manifest names it."""

    model_config = ConfigDict(extra="ignore")

    path: str
    sha256: Sha256
    rows: int = Field(ge=0)


class OutputFacts(BaseModel):
    """One output file as a manifest names it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    path: str
    sha256: Sha256


class ConfigFacts(BaseModel):
    """The spec or suite file a manifest names."""

    model_config = ConfigDict(extra="ignore")

    path: str | None = None
    sha256: Sha256
    name: str | None = None


class ManifestFacts(BaseModel):
    """What audit and retention read from a manifest (any version; other keys are ignored)."""

    model_config = ConfigDict(extra="ignore")

    run_id: str
    dataset: str
    partition: PartitionFacts
    status: str
    finished_at: dt.datetime
    inputs: list[InputFacts]
    spec: ConfigFacts
    suite: ConfigFacts
    outputs: dict[str, OutputFacts]
    versions: dict[str, str] = Field(default_factory=dict)
    detectors: list[dict[str, Any]] = Field(default_factory=list)
    audit: AuditRecord | None = None

    @property
    def dirname(self) -> str:
        """The partition's folder name, ``<key>=<value>``."""
        return f"{self.partition.key}={self.partition.value}"
