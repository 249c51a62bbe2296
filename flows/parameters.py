"""Typed flow parameters, so the Prefect UI renders a form and the API refuses bad values.

The dataset is a choice among the specs in ``datasets/`` when this module is imported (so when
a deployment is deployed): the form shows a drop-down and the server refuses any other name. A
flow called in-process also takes the path of a spec file, which the CLI and tests use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, WithJsonSchema

from sluice.config import NAME_RE, default_datasets_dir

EngineChoice = Literal["auto", "polars", "gx"]


def dataset_names(directory: Path | None = None) -> list[str]:
    """The names of the dataset specs in a folder (``datasets/`` by default), sorted."""
    base = directory or default_datasets_dir()
    return sorted(p.stem for p in base.glob("*.yaml") if NAME_RE.fullmatch(p.stem))


def dataset_schema(names: list[str]) -> dict[str, Any]:
    """The JSON schema of the dataset parameter: a choice when datasets are known."""
    return {"type": "string", "enum": names} if names else {"type": "string"}


DATASETS = dataset_names()

DatasetName = Annotated[str, WithJsonSchema(dataset_schema(DATASETS))]
QuarantineRate = Annotated[float, Field(ge=0.0, le=1.0)]
