"""How a dataset declares its outlier detectors (parsed from the dataset YAML)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FeatureKind = Literal["numeric", "categorical", "timestamp", "boolean"]


class FeatureSpec(BaseModel):
    """One input column of a detector and how it becomes numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str
    kind: FeatureKind = "numeric"


class DetectorSpec(BaseModel):
    """A detector to run on the rows that passed validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "default"
    params: dict[str, Any] = Field(default_factory=dict)
    features: list[FeatureSpec | str] = Field(min_length=1)
    seed: int = 0

    def feature_specs(self) -> list[FeatureSpec]:
        """The features with plain column names expanded to numeric features."""
        return [f if isinstance(f, FeatureSpec) else FeatureSpec(column=f) for f in self.features]
