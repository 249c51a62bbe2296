"""Typed flow parameters, so the Prefect UI renders a form and the API refuses bad values.

The dataset is a choice among the specs that load in the datasets folder (``$SLUICE_DATASETS``,
else ``./datasets``) when this module is imported (so when a deployment is deployed): the form
shows a drop-down and the server refuses any other name. A spec that does not load is left out
and logged with its error. A flow called in-process also takes the path of a spec file, which
the CLI and tests use.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, WithJsonSchema

from sluice.config import NAME_RE, default_datasets_dir, load_spec
from sluice.core.errors import ConfigError

log = logging.getLogger("sluice.datasets")


def dataset_names(directory: Path | None = None) -> list[str]:
    """The names of the dataset specs that load in a folder (the datasets folder by default).

    Sorted; a file whose name is not a dataset name is ignored, and a spec that does not load
    is left out with a warning that gives its error.
    """
    base = directory or default_datasets_dir()
    names: list[str] = []
    for path in sorted(base.glob("*.yaml")):
        if not NAME_RE.fullmatch(path.stem):
            continue
        if not path.is_file():
            log.warning("dataset %s is not offered: %s is not a regular file", path.stem, path)
            continue
        try:
            load_spec(path)
        except ConfigError as exc:
            log.warning("dataset %s is not offered: %s", path.stem, exc)
            continue
        names.append(path.stem)
    return names


def dataset_schema(names: list[str]) -> dict[str, Any]:
    """The JSON schema of the dataset parameter: a choice when datasets are known."""
    return {"type": "string", "enum": names} if names else {"type": "string"}


DATASETS = dataset_names()

DatasetName = Annotated[str, WithJsonSchema(dataset_schema(DATASETS))]
QuarantineRate = Annotated[float, Field(ge=0.0, le=1.0)]

HOUR_PATTERN = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}(:00(:00)?)?$"
PartitionValue = dt.date | Annotated[str, Field(pattern=HOUR_PATTERN)]
"""A partition parameter: a date (a day, or any day of a month), or an hour ``YYYY-MM-DDTHH``
as text (the form offers a date picker and a text field)."""


def flow_value(value: dt.date | str) -> dt.date | str:
    """A partition value as a flow parameter: an hour (a ``datetime``) as its text, which the
    flow's :data:`PartitionValue` keeps as it is; a day stays a date."""
    return value.strftime("%Y-%m-%dT%H") if isinstance(value, dt.datetime) else value
