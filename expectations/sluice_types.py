"""sluice's own expectation types: what each is called, what it takes and which columns it blames.

GX's vocabulary cannot say "the minority value of each group is wrong", "a rare spelling of a
frequent value is wrong", "unique once normalised" or "a near copy of an earlier row". These types
say it, in GX's JSON shape, under a ``sluice.`` prefix so no one mistakes them for GX's. Only the
polars engine runs them (expectations/polars_engine/sluice_rules.py); the GX runner refuses them.

Each type's kwargs are a pydantic model that forbids unknown fields and coerces nothing, so a
misspelt or mistyped argument stops the suite load with its key, like GX's own entries do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sluice.core.errors import ConfigError

if TYPE_CHECKING:
    from expectations.results import ExpectationEntry

PREFIX = "sluice."

Transform = Literal[
    "digits", "casefold", "strip_punctuation", "collapse_whitespace", "sorted_tokens"
]
TRANSFORMS: tuple[str, ...] = (
    "digits",
    "casefold",
    "strip_punctuation",
    "collapse_whitespace",
    "sorted_tokens",
)
Similarity = Literal["jaro_winkler", "indel"]


class _Kwargs(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    row_condition: str | None = None
    condition_parser: str | None = None
    mostly: float = Field(1.0, ge=0.0, le=1.0)


class MajorityBy(_Kwargs):
    """``sluice.expect_column_values_to_follow_majority_by``: ``by`` determines ``column``."""

    column: str
    by: list[str] = Field(min_length=1)
    min_group_size: int = Field(3, ge=2)
    min_majority: float = Field(0.5, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _column_not_in_by(self) -> MajorityBy:
        if self.column in self.by:
            raise ValueError(f"column {self.column!r} is also in by: a column determines itself")
        return self


class RareVariants(_Kwargs):
    """``sluice.expect_column_values_to_not_be_rare_variants``."""

    column: str
    max_count: int = Field(2, ge=1)
    min_frequent_count: int = Field(10, ge=2)
    max_distance: int = Field(2, ge=1, le=16)
    max_relative_distance: float = Field(0.25, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _frequent_above_rare(self) -> RareVariants:
        if self.min_frequent_count <= self.max_count:
            raise ValueError(
                f"min_frequent_count ({self.min_frequent_count}) must exceed max_count "
                f"({self.max_count})"
            )
        return self


class UniqueAfterNormalising(_Kwargs):
    """``sluice.expect_compound_columns_to_be_unique_after_normalising``."""

    column_list: list[str] = Field(min_length=1)
    transform: Transform | list[Transform]

    @property
    def steps(self) -> list[str]:
        """The transforms, in the order they apply."""
        return [self.transform] if isinstance(self.transform, str) else list(self.transform)

    @model_validator(mode="after")
    def _some_step(self) -> UniqueAfterNormalising:
        if not self.steps:
            raise ValueError("transform lists no step")
        return self


class NearDuplicates(_Kwargs):
    """``sluice.expect_rows_to_not_be_near_duplicates``."""

    block_on: list[str] = Field(min_length=1)
    compare: list[str] = Field(min_length=1)
    threshold: float = Field(0.9, gt=0.0, le=1.0)
    max_block_size: int = Field(1000, ge=2, le=100_000)
    similarity: Similarity = "jaro_winkler"
    min_columns: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _compare_not_blocked(self) -> NearDuplicates:
        both = sorted(set(self.block_on) & set(self.compare))
        if both:
            raise ValueError(f"{both} are in both block_on and compare: blocked columns are equal")
        if self.min_columns is not None and self.min_columns > len(self.compare):
            raise ValueError(
                f"min_columns ({self.min_columns}) exceeds the {len(self.compare)} compare columns"
            )
        return self


MODELS: dict[str, type[_Kwargs]] = {
    "sluice.expect_column_values_to_follow_majority_by": MajorityBy,
    "sluice.expect_column_values_to_not_be_rare_variants": RareVariants,
    "sluice.expect_compound_columns_to_be_unique_after_normalising": UniqueAfterNormalising,
    "sluice.expect_rows_to_not_be_near_duplicates": NearDuplicates,
}
"""Every sluice type and the model of its kwargs."""

SLUICE_TYPES: tuple[str, ...] = tuple(sorted(MODELS))

BLAMED_KEYS: dict[str, tuple[str, ...]] = {
    "sluice.expect_column_values_to_follow_majority_by": ("column",),
    "sluice.expect_column_values_to_not_be_rare_variants": ("column",),
    "sluice.expect_compound_columns_to_be_unique_after_normalising": ("column_list",),
    "sluice.expect_rows_to_not_be_near_duplicates": ("compare",),
}
"""The kwargs naming the columns a failure blames (the cells a reader should look at)."""

READ_KEYS: dict[str, tuple[str, ...]] = {
    "sluice.expect_column_values_to_follow_majority_by": ("column", "by"),
    "sluice.expect_column_values_to_not_be_rare_variants": ("column",),
    "sluice.expect_compound_columns_to_be_unique_after_normalising": ("column_list",),
    "sluice.expect_rows_to_not_be_near_duplicates": ("block_on", "compare"),
}
"""The kwargs naming every column a type reads."""


def is_sluice_type(type_name: str) -> bool:
    """Whether a type name is in sluice's namespace (known or not)."""
    return type_name.startswith(PREFIX)


def argument_names(type_name: str) -> list[str]:
    """The kwargs a sluice type accepts, sorted."""
    return sorted(MODELS[type_name].model_fields)


def parse_kwargs(type_name: str, kwargs: Mapping[str, Any]) -> _Kwargs:
    """The kwargs of a sluice type as its model; raises pydantic's ``ValidationError``."""
    return MODELS[type_name].model_validate(dict(kwargs))


def columns_of(type_name: str, kwargs: Mapping[str, Any], keys: tuple[str, ...]) -> list[str]:
    """The column names ``kwargs`` gives under ``keys`` (a string or a list of strings each)."""
    out: list[str] = []
    for key in keys:
        value = kwargs.get(key)
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list):
            out.extend(v for v in value if isinstance(v, str))
    return out


def first_error(exc: ValidationError) -> tuple[str | None, str, Any]:
    """The first problem pydantic found: (kwarg or None, message, the input it rejected)."""
    err = exc.errors()[0]
    loc = err.get("loc", ())
    key = str(loc[0]) if loc else None
    message = str(err.get("msg", "invalid"))
    message = message.removeprefix("Value error, ")
    return key, message, err.get("input")


def refuse_sluice_types(
    entries: Sequence[ExpectationEntry], path: Path | str | None = None
) -> None:
    """Raise ``ConfigError`` for the first ``sluice.`` entry: GX does not know sluice's types."""
    for entry in entries:
        if is_sluice_type(entry.type):
            raise ConfigError(
                f"{entry.type} is one of sluice's own types: the polars engine runs it, GX cannot",
                file=path if path is not None else "<suite>",
                line=entry.line,
                key=f"expectations[{entry.index}].type",
                found=entry.type,
                allowed="engine polars or auto for this suite, or an entry of a GX type",
            )
