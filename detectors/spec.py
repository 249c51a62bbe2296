"""How a dataset declares its outlier detectors (parsed from the dataset YAML)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FeatureKind = Literal["numeric", "categorical", "timestamp", "boolean"]
CategoricalEncoding = Literal["frequency", "onehot"]
FitMode = Literal["auto", "batch", "reference", "model"]
OutlierSeverity = Literal["warn", "error"]
DEFAULT_SEVERITY: OutlierSeverity = "warn"


class FeatureSpec(BaseModel):
    """One input column of a detector and how it becomes numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    column: str = Field(description="A column of the schema.")
    kind: FeatureKind = Field(
        default="numeric", description="How the column becomes numbers for the detector."
    )
    encoding: CategoricalEncoding | None = Field(
        default=None, description="Categorical only: frequency (default) or onehot."
    )

    @model_validator(mode="after")
    def _encoding_for_categorical(self) -> FeatureSpec:
        if self.encoding is not None and self.kind != "categorical":
            raise ValueError(f"'encoding' applies to categorical features, not {self.kind}")
        return self


class DetectorSpec(BaseModel):
    """A detector to run on the rows that passed validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        default="default",
        description="The spec's name, unique in the dataset: outliers get the rule "
        "`outlier|<name>`.",
    )
    detector: str | None = Field(
        default=None, description="The registered detector to run; defaults to `name`."
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="The detector's parameters, checked against its own before data moves: "
        "names and values (detectors/params.py).",
    )
    features: list[FeatureSpec | str] = Field(
        min_length=1, description="Input columns: a column name (numeric), or a mapping."
    )
    seed: int = Field(default=0, description="Random seed, recorded in the manifest.")
    severity: OutlierSeverity = Field(
        default=DEFAULT_SEVERITY,
        description=(
            "warn (default): a flagged row stays clean and the outlier is noted in the failures; "
            "error: a flagged row is quarantined."
        ),
    )
    fit: FitMode = Field(
        default="auto",
        description=(
            "Fit on the batch, on the reference rows passed in, or load a saved model; "
            "auto uses the reference when there is one, else the batch."
        ),
    )
    model: str | None = Field(default=None, description="Saved model file, for fit: model.")
    model_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="The saved model file's sha256; the file is refused unless it matches.",
    )

    @model_validator(mode="after")
    def _model_with_fit_model(self) -> DetectorSpec:
        given = self.model is not None and self.model_sha256 is not None
        if (self.fit == "model") != given or (self.model is None) != (self.model_sha256 is None):
            raise ValueError(
                "give 'model' (a saved model file) and 'model_sha256' exactly when fit is 'model'"
            )
        return self

    @property
    def detector_name(self) -> str:
        """The registered detector this spec runs."""
        return self.detector or self.name

    def feature_specs(self) -> list[FeatureSpec]:
        """The features with plain column names expanded to numeric features."""
        return [f if isinstance(f, FeatureSpec) else FeatureSpec(column=f) for f in self.features]
