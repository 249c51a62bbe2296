"""Dataset specs: ``datasets/<name>.yaml`` loaded into strict pydantic models.

Relative paths in a spec are relative to the spec file's folder. Path strings may use
``${VAR}`` or ``${VAR:-default}`` to take a value from the environment.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from detectors.spec import DetectorSpec
from sluice.core.dask_address import dask_address, is_loopback
from sluice.core.errors import ConfigError
from sluice.core.files import SPEC_LIMIT, config_error, read_regular, sha256_hex
from sluice.core.frame import RESERVED_COLUMNS

ColumnType = Literal["string", "int", "float", "bool", "date", "datetime"]
COLUMN_TYPES: tuple[str, ...] = ("string", "int", "float", "bool", "date", "datetime")
SourceFormat = Literal["csv", "parquet", "ndjson"]
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
POLICY_COLUMNS = ("_row", "_table", "outlier")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def is_pattern_name(name: str) -> bool:
    """Whether polars reads a column name as a wildcard or a regular expression (``*``,
    ``^...$``) wherever a name is expected, so that no expression can name that column."""
    return name == "*" or (len(name) > 1 and name.startswith("^") and name.endswith("$"))


def name_problem(name: str) -> str | None:
    """Why a column cannot go by ``name`` through polars and Arrow, or None when it can: a
    pattern (:func:`is_pattern_name`), or a name holding a NUL byte, which Arrow's C interface
    (the one polars and pyarrow hand frames over) ends the name at, or refuses."""
    if is_pattern_name(name):
        return "polars reads this name as a pattern, not a column name"
    if "\x00" in name:
        return "the name holds a NUL byte, which ends a name where polars and Arrow exchange frames"
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# digit-group separators a number column's text may hold
Thousands = Literal[",", ".", "'", " ", "\u00a0", "\u202f"]


class ColumnSpec(_Strict):
    """One declared column: its type, a strftime format for dates and timestamps, the column's
    own null tokens and the other names the column has had in source files."""

    type: ColumnType = Field(
        description="The column's type; cells that do not parse are quarantined (a date or "
        "datetime must lie in years 1 to 9999, as Python and GX hold them)."
    )
    format: str | None = Field(
        default=None,
        description="strftime format of a date or datetime column; without it a date is "
        "YYYY-MM-DD and a datetime is read as ISO-8601 (offsets converted to UTC).",
    )
    decimal: Literal[".", ","] = Field(
        default=".",
        description="Decimal separator of a float column's text (a CSV field, an NDJSON value, "
        "a Parquet string): '.' or ','. With ',' a value reads 3,25 (or 3); one holding a '.' "
        "does not parse, an NDJSON number such as 3.5 included, unless 'thousands' is '.' and "
        "it groups digits (1.234,5); no value is read as another number.",
    )
    thousands: Thousands | None = Field(
        default=None,
        description="Digit-group separator of an int or float column's text: ',', '.', \"'\", "
        "' ' or a no-break space (U+00A0, U+202F). A value holding it reads only when its "
        "digits before the decimal mark are grouped by threes (1,234,567 and 1,234.5 read; "
        "1,23 and 12,34,567 do not); a value without it reads as before. It differs from "
        "'decimal'; '.' on a float column needs decimal ',', and a CSV or Parquet source (an "
        "NDJSON number such as 1.234 is not grouped).",
    )
    currency: str | None = Field(
        default=None,
        description="A currency symbol an int or float column's text may carry before the "
        "number (after its sign, if any: -$5, $-5) or after it (5 €), with or without a space; "
        "a value without it reads as before. One to three characters, none a digit, a sign, a "
        "space, '.', ',' or a parenthesis.",
    )
    null_values: list[str] = Field(
        default_factory=list,
        description="Values of this column read as null (matched on the text as read).",
    )
    aliases: list[str] = Field(
        default_factory=list,
        description="Other names of this column in source files; the first present is used. "
        "Any source name may be one (an empty name, as pandas writes its index, or one starting "
        "with '_'), except the names sluice writes (`_row_id`, `_source_file`, ...).",
    )

    @model_validator(mode="after")
    def _format_only_for_temporal(self) -> ColumnSpec:
        if self.format is not None and self.type not in ("date", "datetime"):
            raise ValueError(f"'format' applies to date and datetime columns, not {self.type}")
        if self.decimal != "." and self.type != "float":
            raise ValueError(f"'decimal' applies to float columns, not {self.type}")
        for key, value in (("thousands", self.thousands), ("currency", self.currency)):
            if value is not None and self.type not in ("int", "float"):
                raise ValueError(f"'{key}' applies to int and float columns, not {self.type}")
        if self.thousands == "." and self.type == "float" and self.decimal != ",":
            raise ValueError(
                "thousands '.' on a float column needs decimal ',' (with '.' as the decimal "
                "mark, 1.234 could be read as two numbers)"
            )
        if self.thousands is not None and self.type == "float" and self.thousands == self.decimal:
            raise ValueError(
                f"'thousands' and 'decimal' are both {self.thousands!r}: a value could be read "
                "as two numbers; the digit-group separator differs from the decimal mark"
            )
        return self

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str | None) -> str | None:
        if v is not None and (
            not 1 <= len(v) <= 3 or any(c.isdigit() or c.isspace() or c in "+-.,()" for c in v)
        ):
            raise ValueError(
                f"currency {v!r}: one to three characters, none a digit, a sign, a space, '.', "
                "',' or a parenthesis (such as $, €, R$ or CHF)"
            )
        return v

    @field_validator("format")
    @classmethod
    def _format(cls, v: str | None) -> str | None:
        return v if v is None else check_time_format(v)

    @field_validator("aliases")
    @classmethod
    def _aliases(cls, v: list[str]) -> list[str]:
        for name in v:
            # a source column may be named anything (pandas writes its index as ""); the
            # names sluice writes itself are refused in any source, so no alias can take them
            if name in RESERVED_COLUMNS:
                raise ValueError(
                    f"alias {name!r}: reserved, a name sluice writes in its outputs, which no "
                    "source column may have; rename the column in the source"
                )
        dupes = sorted({a for a in v if v.count(a) > 1})
        if dupes:
            raise ValueError(f"aliases appear twice: {', '.join(dupes)}")
        return v


_DIRECTIVE_RE = re.compile(r"%([-_0^#]?[0-9]*)(:{0,3}z|\.[369]?f|[369]f|[A-Za-z%+])")
_KNOWN_DIRECTIVES = frozenset("YCyqmbBhdeaAwuUWGgVjDxFvHkIlPpMSRTXrsfz+%nt")


def check_time_format(fmt: str) -> str:
    """Refuse a strftime format with a directive sluice would drop or cannot honour.

    ``%Z`` (a zone name) is refused: polars ignores the name, and abbreviations such as EST or
    IST stand for several offsets. ``%z`` (an offset such as ``-05:00``) is honoured.
    """
    rest = _DIRECTIVE_RE.sub("", fmt)
    for m in _DIRECTIVE_RE.finditer(fmt):
        letter = m.group(2)
        if letter == "Z":
            raise ValueError(
                f"format {fmt!r}: %Z (a time zone name) is not supported: polars would drop the "
                "name, and abbreviations such as EST or IST are ambiguous; use %z for an "
                "offset such as -05:00, or leave 'format' out to read ISO-8601 with offsets"
            )
        if letter[-1] not in _KNOWN_DIRECTIVES and letter[-1] != "z":
            raise ValueError(
                f"format {fmt!r}: unknown directive %{letter}; allowed: strftime directives "
                "such as %Y %m %d %H %M %S %.f %z %b %p"
            )
    if "%" in rest:
        raise ValueError(f"format {fmt!r}: a '%' not followed by a directive")
    return fmt


class CsvOptions(_Strict):
    """Reader options for CSV sources."""

    delimiter: str = Field(
        default=",",
        min_length=1,
        max_length=1,
        description="Field separator: one ASCII character, not NUL, CR or LF.",
    )
    quote_char: str = Field(
        default='"',
        min_length=1,
        max_length=1,
        description="Quote character of quoted fields: one ASCII character, not NUL, CR or LF, "
        "other than the delimiter.",
    )
    encoding: Literal["utf8", "utf-8", "latin1", "cp1252"] = Field(
        default="utf8", description="Text encoding of the files."
    )
    null_values: list[str] = Field(
        default_factory=lambda: [""],
        description="Field values read as null in every column, quoted or not.",
    )

    @field_validator("delimiter", "quote_char")
    @classmethod
    def _one_byte(cls, v: str) -> str:
        # the CSV readers split on one byte (pyarrow refuses NUL); CR and LF end records
        if not v.isascii() or v in "\x00\r\n":
            raise ValueError(
                f"{v!r} is not one ASCII character other than NUL, CR or LF (e.g. ',', ';', "
                "'\\t', '|')"
            )
        return v

    @model_validator(mode="after")
    def _distinct(self) -> CsvOptions:
        if self.delimiter == self.quote_char:
            raise ValueError(
                f"delimiter and quote_char are both {self.delimiter!r}: no field could be told "
                "from a quoted one"
            )
        return self


MAX_FILES = 10_000


class SourceSpec(_Strict):
    """Where a partition's files are and how to read them."""

    path: str = Field(
        description=(
            "Path or glob, relative to the spec's folder, or a URL (`s3://`, `gs://`, "
            "`abfs://`, `https://`; each needs its extra installed); `{<partition key>}` or "
            "`{<partition key>:<strftime format>}` is replaced by the partition; `${VAR}` and "
            "`${VAR:-default}` take environment variables. A `*` makes it a glob (only the "
            "path's own text is a pattern, not the folders the spec lies in)."
        )
    )
    format: SourceFormat = Field(default="csv", description="File format of the source.")
    max_files: int = Field(
        default=MAX_FILES,
        ge=1,
        le=1_000_000,
        description="A partition whose path matches more files than this is refused before "
        "any is read (exit 2); for a feed that drops many files a day, hourly partitions.",
    )
    csv: CsvOptions = Field(
        default_factory=CsvOptions, description="Reader options for CSV sources."
    )


PartitionKind = Literal["day", "month", "hour"]
HOUR_FORM = "YYYY-MM-DDTHH"
_FORMS: dict[str, str] = {"day": "YYYY-MM-DD", "month": "YYYY-MM", "hour": HOUR_FORM}
_HOUR_RE = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{2})(?::00(?::00)?)?")


class PartitionSpec(_Strict):
    """How partitions are named: a day (YYYY-MM-DD), a month (YYYY-MM) or an hour
    (YYYY-MM-DDTHH)."""

    key: str = Field(
        default="date",
        description="Name of the partition placeholder and of the hive-style output folders "
        "(`<key>=<value>`); an identifier.",
    )
    kind: PartitionKind = Field(
        default="day",
        description="A partition is a day (YYYY-MM-DD), a month (YYYY-MM) or an hour "
        "(YYYY-MM-DDTHH, the canonical form; YYYY-MM-DD HH and YYYY-MM-DDTHH:00 are read too). "
        "Hours are wall-clock hours of the time zone (docs/design.md, hourly partitions).",
    )
    timezone: str = Field(
        default="UTC",
        description="IANA time zone of the schedule's local day (or hour), and of hourly "
        "partition values.",
    )
    lag: int = Field(
        default=1,
        ge=0,
        le=10_000,
        description="A scheduled run screens the period this far back (days, months or hours, "
        "as the partitions).",
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ValueError, KeyError, OSError):
            raise ValueError(
                f"{v!r} is not an IANA time zone (e.g. UTC, Europe/Paris, America/New_York)"
            ) from None
        return v

    @field_validator("key")
    @classmethod
    def _identifier(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            raise ValueError("must be an identifier (letters, digits, underscore)")
        return v

    def parse(self, value: str | dt.date) -> Partition:
        """Parse a partition value; raises ValueError naming the expected form."""
        return Partition.parse(value, self.kind, self.key)


class OutputSpec(_Strict):
    """Output roots: none equal to, inside or containing another or the source's fixed prefix
    (checked on the resolved paths when the spec is loaded). With ``format: delta`` the clean,
    quarantine and failures roots are Delta tables, on local paths or object-store URIs;
    reports stay a local folder (docs/storage.md)."""

    clean: str = Field(description="Root of the clean rows (one folder per partition).")
    quarantine: str = Field(description="Root of the quarantined rows and their reasons.")
    reports: str = Field(description="Root of manifests, reports, failures and metric history.")
    format: Literal["parquet", "delta"] = Field(
        default="parquet",
        description="parquet: one Parquet file per partition folder, swapped in by rename. "
        "delta: clean, quarantine and failures are Delta tables partitioned by the partition "
        "key, on local paths or s3:// (gs://, az://) URIs; the manifest names their versions.",
    )
    failures: str | None = Field(
        default=None,
        description="format delta: the failures table (default: the quarantine root with "
        "_failures appended).",
    )
    storage_options: dict[str, str] = Field(
        default_factory=dict,
        description="format delta: object-store settings passed to delta-rs (for example "
        "AWS_ENDPOINT_URL, AWS_REGION); ${VAR} is expanded. Keep secrets in the environment, "
        "which delta-rs also reads.",
    )

    @model_validator(mode="after")
    def _delta_keys(self) -> OutputSpec:
        if self.format != "delta":
            used = [k for k in ("failures", "storage_options") if getattr(self, k)]
            if used:
                raise ValueError(
                    f"outputs.{used[0]} applies only to outputs.format: delta (format is "
                    f"{self.format!r}); remove it or set format: delta"
                )
        return self


class ValidationSpec(_Strict):
    """Which engine validates the suite."""

    engine: Literal["auto", "polars", "gx"] = Field(
        default="auto",
        description="auto: the polars engine for every expectation it compiles, GX for the "
        "rest; polars: refuse an expectation it cannot compile; gx: GX for all.",
    )


class ReferenceSpec(_Strict):
    """Where detectors learn what normal looks like."""

    partitions: int = Field(
        default=0,
        ge=0,
        le=400,
        description=(
            "Fit detectors with fit auto or reference on the clean rows of up to this many "
            "earlier committed partitions; 0 fits them on the batch itself."
        ),
    )


class BaselineRange(_Strict):
    """A closed range of partitions, either end open when left out."""

    start: str | dt.date | None = Field(
        default=None, description="The first baseline partition (YYYY-MM-DD or YYYY-MM)."
    )
    end: str | dt.date | None = Field(
        default=None, description="The last baseline partition (YYYY-MM-DD or YYYY-MM)."
    )

    @model_validator(mode="after")
    def _bounded(self) -> BaselineRange:
        if self.start is None and self.end is None:
            raise ValueError("a baseline range needs start, end or both")
        return self


class ModelBaseline(_Strict):
    """The partitions a detector's saved model (``fit: model``) was fitted on, as a baseline."""

    model: str = Field(description="The name of a detector of this spec that has fit: model.")


class MonitorSpec(_Strict):
    """What anomalies and drift are judged against."""

    baseline: BaselineRange | list[str | dt.date] | None = Field(
        default=None,
        description="Pin the reference: {start, end} or a list of partitions whose metric "
        "history and clean rows set the anomaly bands and the drift reference; without it "
        "each run is judged against a rolling window of recent partitions.",
    )

    baselines: list[str | ModelBaseline] = Field(
        default_factory=list,
        description="Named baselines every run is compared with (saved by `sluice baseline`, "
        "or {model: <detector name>} for the partitions the detector's saved model was fitted "
        "on): per-column drift, the drift share and a classifier two-sample test, alarming on "
        "every run until re-pinned or acknowledged.",
    )
    bands_from: str | None = Field(
        default=None,
        description="One of `baselines` (a saved baseline's name) whose partitions also set the "
        "anomaly bands and the drift reference, as `baseline` does; not with `baseline`.",
    )
    drift_share: float = Field(
        default=0.3,
        gt=0.0,
        le=1.0,
        description="Alarm when at least this share of the columns tested against a named "
        "baseline drifted.",
    )
    classifier_auc: float | None = Field(
        default=0.7,
        gt=0.5,
        le=1.0,
        description="Alarm when a classifier tells this partition's clean rows from the "
        "baseline's sample with at least this held-out ROC AUC (0.5: indistinguishable); "
        "null switches the classifier test off.",
    )

    @field_validator("baselines")
    @classmethod
    def _distinct(cls, v: list[str | ModelBaseline]) -> list[str | ModelBaseline]:
        seen: set[str] = set()
        for b in v:
            name = b if isinstance(b, str) else f"model:{b.model}"
            if isinstance(b, str) and not NAME_RE.fullmatch(b):
                raise ValueError(
                    f"baseline name {b!r} must start with a letter and hold only letters, "
                    "digits, '_' or '-'"
                )
            if name in seen:
                raise ValueError(f"baseline {name!r} is listed twice")
            seen.add(name)
        return v

    @model_validator(mode="after")
    def _bands_named(self) -> MonitorSpec:
        if self.bands_from is None:
            return self
        if self.baseline is not None:
            raise ValueError("bands_from and baseline both pin the reference: keep one")
        if self.bands_from not in [b for b in self.baselines if isinstance(b, str)]:
            raise ValueError(
                f"bands_from {self.bands_from!r} is not one of the saved baselines listed "
                "in baselines"
            )
        return self

    @field_validator("baseline")
    @classmethod
    def _not_empty(
        cls, v: BaselineRange | list[str | dt.date] | None
    ) -> BaselineRange | list[str | dt.date] | None:
        if isinstance(v, list) and not v:
            raise ValueError("an empty baseline list pins nothing; leave baseline out instead")
        return v

    def parsed(self, kind: PartitionKind, key: str) -> list[dt.date]:
        """Every baseline bound or partition as a partition start; ValueError when one is not
        a partition of ``kind``."""
        b = self.baseline
        raw = b if isinstance(b, list) else [] if b is None else [b.start, b.end]
        return [Partition.parse(v, kind, key).start for v in raw if v is not None]


DURATION_RE = re.compile(r"^([1-9][0-9]{0,4})\s*(d|w|m|y)$")
_UNIT_DAYS = {"d": 1.0, "w": 7.0, "m": 30.4375, "y": 365.25}


def check_duration(text: str) -> str:
    """Refuse a retention period that is not ``<n>d``, ``<n>w``, ``<n>m`` or ``<n>y``."""
    if not DURATION_RE.fullmatch(text.strip()):
        raise ValueError(
            f"{text!r} is not a period; write a whole number and a unit: d (days), w (weeks), "
            "m (calendar months) or y (calendar years), e.g. 7y or 90d"
        )
    return text.strip()


def duration_days(text: str) -> float:
    """A period's length in days, months and years at their mean length (for comparisons)."""
    m = DURATION_RE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not a period")
    return int(m.group(1)) * _UNIT_DAYS[m.group(2)]


class LegalHold(_Strict):
    """A partition, or a range of them, that retention must keep whatever its age."""

    partitions: str = Field(
        description="A partition (YYYY-MM-DD or YYYY-MM) or a closed range `START..END`."
    )
    reason: str = Field(min_length=1, description="Why it is held (a case, a ticket): logged.")

    @field_validator("partitions", mode="before")
    @classmethod
    def _text(cls, v: object) -> object:
        return v.isoformat() if isinstance(v, dt.date) else v


class RetentionSpec(_Strict):
    """How long `sluice retention` keeps each kind of output: periods such as `7y`, `18m`, `2w`,
    `90d` (calendar months and years); a period left out is forever (docs/audit.md)."""

    outputs: str | None = Field(
        default=None,
        description="Clean, quarantine and reports folders of a partition, from its last run.",
    )
    history: str | None = Field(
        default=None, description="A partition's metric history file, from its last run."
    )
    manifests: str | None = Field(
        default=None,
        description="Kept copies of earlier runs' manifests (`_manifests/`), from their run; "
        "at least as long as outputs.",
    )
    objects: str | None = Field(
        default=None,
        description="Stored specs, suites and saved models no kept manifest references, from "
        "their last use.",
    )
    archived_inputs: str | None = Field(
        default=None,
        description="Archived input files no kept manifest references, from when they were stored.",
    )
    holds: list[LegalHold] = Field(
        default_factory=list, description="Legal holds: partitions kept whatever their age."
    )

    @field_validator("outputs", "history", "manifests", "objects", "archived_inputs")
    @classmethod
    def _period(cls, v: str | None) -> str | None:
        return None if v is None else check_duration(v)

    @model_validator(mode="after")
    def _manifests_outlive_outputs(self) -> RetentionSpec:
        if self.outputs is not None and (
            self.manifests is not None
            and duration_days(self.manifests) < duration_days(self.outputs)
        ):
            raise ValueError(
                f"manifests ({self.manifests}) must be kept at least as long as outputs "
                f"({self.outputs}): a partition's files are read only through its manifest"
            )
        return self


class ExecutionSpec(_Strict):
    """Where a backfill's partitions are prepared: in this process and its worker processes
    (the default), or as tasks on a Dask cluster (docs/production.md)."""

    dask: str | None = Field(
        default=None,
        description="Address of a Dask scheduler on this machine (`tcp://127.0.0.1:8786`; tcp, "
        "tls, ws or wss) that prepares a backfill's partitions. A remote cluster is named with "
        "`--dask` or SLUICE_DASK_ADDRESS, which take precedence: a Dask client unpickles what "
        "its scheduler sends, so a spec file does not choose a remote one.",
    )

    @field_validator("dask")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is None:
            return None
        address = dask_address(v)
        if not is_loopback(address):
            raise ValueError(
                f"{v!r} is not on this machine: a Dask client unpickles what its scheduler "
                "sends, so configuration names only a local one (localhost, 127.0.0.1, ::1); "
                "name a remote cluster with --dask or SLUICE_DASK_ADDRESS"
            )
        return address


class Threshold(_Strict):
    """Shares of rows (0 to 1) above which a run warns or fails.

    Both levels must be written; ``null`` switches one off, so none is off by omission.
    """

    warn: float | None = Field(
        ge=0.0,
        le=1.0,
        description="Share of rows above which the run is warned; null switches it off.",
    )
    error: float | None = Field(
        ge=0.0,
        le=1.0,
        description="Share of rows above which the run fails; null switches it off.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        if self.warn is not None and self.error is not None and self.warn > self.error:
            raise ValueError(f"warn ({self.warn}) must not be above error ({self.error})")
        return self


class StagePolicies(_Strict):
    """Thresholds on the share of rows each stage quarantines."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    ingest: Threshold = Field(
        default_factory=lambda: Threshold(warn=0.01, error=0.5),
        description="Rows that did not parse: type, malformed or encoding failures.",
    )
    validate_: Threshold = Field(
        default_factory=lambda: Threshold(warn=0.05, error=0.5),
        alias="validate",
        description="Rows a suite rule or the dataset's keys quarantined.",
    )
    screen: Threshold = Field(
        default_factory=lambda: Threshold(warn=0.05, error=0.5),
        description="Rows a detector with severity error quarantined.",
    )

    def of(self, stage: str) -> Threshold:
        """The threshold of ``ingest``, ``validate`` or ``screen``."""
        return {"ingest": self.ingest, "validate": self.validate_, "screen": self.screen}[stage]


class AlertPolicy(_Strict):
    """When a run raises a ``sluice.partition.quarantine_rate_high`` event."""

    max_quarantine_rate: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Share of rows quarantined above which the alert event is raised "
        "(the backfill flow's parameter overrides it for one run).",
    )


class PoliciesSpec(_Strict):
    """How a run is judged: passed, warned or failed (docs/design.md, "Severities and verdicts").

    Every share is of the rows that came in. ``per_rule`` applies to each reason
    (``column|rule``); ``rules`` gives a reason its own threshold instead.
    """

    quarantine: Threshold = Field(default_factory=lambda: Threshold(warn=0.05, error=0.5))
    stages: StagePolicies = Field(default_factory=StagePolicies)
    per_rule: Threshold = Field(default_factory=lambda: Threshold(warn=None, error=0.5))
    rules: dict[str, Threshold] = Field(default_factory=dict)
    could_not_run: Literal["warn", "error"] = Field(
        default="warn",
        description="What an expectation that could not run, or a detector that did not screen "
        "the rows that passed validation (fewer rows than it needs to fit on), does to the run.",
    )
    alerts: AlertPolicy = Field(default_factory=AlertPolicy)

    @field_validator("rules")
    @classmethod
    def _reasons(cls, v: dict[str, Threshold]) -> dict[str, Threshold]:
        for name in v:
            column, _, rule = name.partition("|")
            if not column or not rule:
                raise ValueError(f"rules are keyed by reason 'column|rule', not {name!r}")
        return v

    def rule(self, reason: str) -> Threshold:
        """The threshold of one reason: its own when ``rules`` names it, else ``per_rule``."""
        return self.rules.get(reason, self.per_rule)


class DatasetSpec(_Strict):
    """One dataset: its source, schema, keys, suite, detectors, policies and outputs."""

    name: str = Field(
        description="The dataset's name: a letter, then up to 63 letters, digits, '_' or '-'."
    )
    description: str = Field(default="", description="Free text for people.")
    source: SourceSpec
    partition: PartitionSpec = Field(default_factory=PartitionSpec)
    schema_: dict[str, ColumnSpec | ColumnType] = Field(
        alias="schema",
        min_length=1,
        json_schema_extra={"key": "column"},
        description="The declared columns, in order: a type name, or a mapping with type, "
        "format, null_values and aliases. Names starting with '_' are reserved; a source "
        "column named so, with no name, as polars reads a pattern (`*`, `^...$`) or holding a "
        "NUL byte is declared under another name with the source name in its aliases.",
    )
    keys: list[str] = Field(
        default_factory=list,
        description="Key columns (each must be in the schema), enforced as a uniqueness check.",
    )
    duplicates: Literal["keep_first", "keep_none"] = Field(
        default="keep_first",
        description=(
            "Rows sharing a key: keep_first keeps the first by source order and quarantines "
            "the later ones; keep_none quarantines every one of them."
        ),
    )
    suite: str = Field(description="The GX suite (JSON), relative to the spec's folder.")
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    detectors: list[DetectorSpec] = Field(
        default_factory=list, description="Outlier detectors run on the rows that passed."
    )
    reference: ReferenceSpec = Field(default_factory=ReferenceSpec)
    monitor: MonitorSpec = Field(default_factory=MonitorSpec)
    policies: PoliciesSpec = Field(default_factory=PoliciesSpec)
    outputs: OutputSpec
    archive_inputs: bool = Field(
        default=False,
        description="Keep each run's input files, content-addressed and deduplicated, under "
        "`<reports>/_inputs/`, so `sluice replay` works after the source is gone.",
    )
    retention: RetentionSpec = Field(default_factory=RetentionSpec)
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.fullmatch(v):
            raise ValueError("must start with a letter and hold only letters, digits, '_' or '-'")
        return v

    @field_validator("monitor")
    @classmethod
    def _baseline_fits(cls, v: MonitorSpec, info: ValidationInfo) -> MonitorSpec:
        part = info.data.get("partition")
        if not isinstance(part, PartitionSpec):
            return v
        try:
            days = v.parsed(part.kind, part.key)
        except ValueError as exc:
            raise ValueError(f"baseline: {exc}") from None
        b = v.baseline
        if isinstance(b, BaselineRange) and len(days) == 2 and days[0] > days[1]:
            raise ValueError(f"baseline starts at {b.start} after its end {b.end}")
        return v

    @field_validator("retention")
    @classmethod
    def _holds_parse(cls, v: RetentionSpec, info: ValidationInfo) -> RetentionSpec:
        part = info.data.get("partition")
        if not isinstance(part, PartitionSpec):
            return v
        for hold in v.holds:
            try:
                ends = [
                    Partition.parse(x.strip(), part.kind, part.key)
                    for x in hold.partitions.split("..")
                ]
            except ValueError as exc:
                raise ValueError(f"holds: {hold.partitions!r}: {exc}") from None
            if len(ends) > 2 or (len(ends) == 2 and ends[0].start > ends[1].start):
                raise ValueError(
                    f"holds: {hold.partitions!r} is not a partition or a range START..END "
                    "with START not after END"
                )
        return v

    @model_validator(mode="after")
    def _columns_known(self) -> DatasetSpec:
        cols = set(self.schema_)
        if self.source.format == "ndjson":
            for name, col in self.columns.items():
                if col.thousands == ".":
                    raise ValueError(
                        f"schema.{name}.thousands '.' with an NDJSON source: a JSON number "
                        "such as 1.234 would be read as 1234; NDJSON numbers carry no digit "
                        "groups (use ',' or a space for text values that do)"
                    )
        for i, k in enumerate(self.keys):
            if k not in cols:
                raise ValueError(f"key column {k!r} is not in the schema")
            if k in self.keys[:i]:
                raise ValueError(f"key column {k!r} is listed twice")
        for d in self.detectors:
            for f in d.feature_specs():
                if f.column not in cols:
                    raise ValueError(f"detector {d.name!r} uses {f.column!r}, not in the schema")
        for r in self.policies.rules:
            named = r.split("|", 1)[0].split(",")
            unknown = [c for c in named if c not in cols and c not in POLICY_COLUMNS]
            if unknown:
                raise ValueError(
                    f"policies.rules names {r!r}: {unknown[0]!r} is not a column of the schema "
                    f"(nor one of {', '.join(POLICY_COLUMNS)})"
                )
        for c in cols:
            if c.startswith("_"):
                raise ValueError(f"column {c!r}: names starting with '_' are reserved for sluice")
            problem = name_problem(c)
            if problem is not None:
                raise ValueError(
                    f"column {c!r}: {problem}; declare the column under another name with "
                    f"aliases: [{c!r}]"
                )
        models = {d.name: d for d in self.detectors}
        for b in self.monitor.baselines:
            if isinstance(b, str):
                continue
            det = models.get(b.model)
            if det is None or det.fit != "model" or det.model is None:
                raise ValueError(
                    f"monitor.baselines names model {b.model!r}: needs a detector of that name "
                    f"with fit: model and a model file (detectors with one: "
                    f"{', '.join(n for n, d in models.items() if d.fit == 'model') or 'none'})"
                )
        return self

    @property
    def columns(self) -> dict[str, ColumnSpec]:
        """The schema with bare type names expanded."""
        return {
            c: s if isinstance(s, ColumnSpec) else ColumnSpec(type=s)
            for c, s in self.schema_.items()
        }

    @field_validator("schema_")
    @classmethod
    def _aliases_distinct(
        cls, v: dict[str, ColumnSpec | ColumnType]
    ) -> dict[str, ColumnSpec | ColumnType]:
        owner: dict[str, str] = {}
        for column, spec in v.items():
            for alias in spec.aliases if isinstance(spec, ColumnSpec) else []:
                other = alias if alias in v else owner.get(alias)
                if other is not None:
                    raise ValueError(
                        f"alias {alias!r} of column {column!r} already names column {other!r}; "
                        "an alias must be a source name no other declared column or alias uses"
                    )
                owner[alias] = column
        return v


class BeyondCalendar(ValueError):
    """A well-formed partition value too near the end of Python's calendar."""


_SPAN: dict[str, tuple[dt.date, dt.date]] = {
    "day": (dt.date(1, 1, 1), dt.date(9999, 12, 30)),
    "month": (dt.date(1, 1, 1), dt.date(9999, 11, 1)),
    # an hour's UTC instants lie up to 14 hours either side of its wall clock
    "hour": (dt.datetime(1, 1, 2), dt.datetime(9999, 12, 30, 23)),
}


class Partition:
    """A partition value: a day, a month or an hour. ``format(p)`` gives its canonical text.

    ``start`` is the first day (a ``datetime.date``) of a day or month partition, and the
    first instant (a naive ``datetime.datetime``, the wall-clock hour in the dataset's
    partition time zone) of an hour partition; ``day`` is the calendar day in every case.
    """

    __slots__ = ("key", "kind", "start")

    def __init__(self, start: dt.date, kind: PartitionKind, key: str = "date") -> None:
        if kind == "hour":
            if not isinstance(start, dt.datetime):
                raise ValueError(f"partition {start} is a day, not an hour ({HOUR_FORM})")
            self.start: dt.date = start.replace(minute=0, second=0, microsecond=0, tzinfo=None)
        elif isinstance(start, dt.datetime):
            raise ValueError(
                f"partition {start.isoformat()} is an hour; this dataset's partitions are "
                f"{kind}s ({_FORMS[kind]})"
            )
        else:
            self.start = start if kind == "day" else start.replace(day=1)
        self.kind = kind
        self.key = key

    @classmethod
    def parse(cls, value: str | dt.date, kind: PartitionKind, key: str) -> Partition:
        """Parse ``YYYY-MM-DD`` (day), ``YYYY-MM`` (month) or ``YYYY-MM-DDTHH`` (hour; also
        ``YYYY-MM-DD HH`` and ``YYYY-MM-DDTHH:00``); a partition too near the end of Python's
        calendar to be screened (:data:`_SPAN`) is :class:`BeyondCalendar`."""
        part = cls._parse(value, kind, key)
        first, last = _SPAN[kind]
        if not first <= part.start <= last:
            text = partition_text(part.start, kind)
            raise BeyondCalendar(
                f"partition {text} is beyond the {kind}s sluice can screen, "
                f"{partition_text(first, kind)} to {partition_text(last, kind)}: a partition's "
                "end (the next one), and an hour's instants in any time zone, must be dates "
                "Python holds (years 1 to 9999)"
            )
        return part

    @classmethod
    def _parse(cls, value: str | dt.date, kind: PartitionKind, key: str) -> Partition:
        if isinstance(value, dt.date):
            if (
                kind == "hour"
                and isinstance(value, dt.datetime)
                and value.time() != dt.time(value.hour)
            ):
                raise ValueError(
                    f"partition {value.isoformat()} is not the start of an hour ({HOUR_FORM})"
                )
            return cls(value, kind, key)
        text = str(value).strip()
        try:
            if kind == "hour":
                m = _HOUR_RE.fullmatch(text)
                if m is not None:
                    day = dt.date.fromisoformat(m.group(1))
                    return cls(dt.datetime.combine(day, dt.time(int(m.group(2)))), kind, key)
            elif kind == "day":
                return cls(dt.date.fromisoformat(text), kind, key)
            else:
                if re.fullmatch(r"\d{4}-\d{2}", text):
                    return cls(dt.date.fromisoformat(text + "-01"), kind, key)
                if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                    return cls(dt.date.fromisoformat(text), kind, key)
        except ValueError:
            pass
        article = "an" if kind == "hour" else "a"
        raise ValueError(f"partition {text!r} is not {article} {kind} of the form {_FORMS[kind]}")

    @property
    def day(self) -> dt.date:
        """The calendar day the partition starts on."""
        start = self.start
        return start.date() if isinstance(start, dt.datetime) else start

    def __str__(self) -> str:
        return partition_text(self.start, self.kind)

    def __repr__(self) -> str:
        return f"Partition({self.key}={self})"

    def __format__(self, spec: str) -> str:
        return self.start.strftime(spec) if spec else str(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Partition) and (self.start, self.kind) == (other.start, other.kind)

    def __hash__(self) -> int:
        return hash((self.start, self.kind))

    def next(self) -> Partition:
        """The following partition (for hours, the next wall-clock hour)."""
        if self.kind != "month":
            step = dt.timedelta(hours=1) if self.kind == "hour" else dt.timedelta(days=1)
            return Partition(self.start + step, self.kind, self.key)
        y, m = divmod(self.start.month, 12)
        return Partition(dt.date(self.start.year + y, m + 1, 1), "month", self.key)

    @property
    def dirname(self) -> str:
        """The hive-style folder name of this partition, e.g. ``date=2024-01-31``."""
        return f"{self.key}={self}"


def partition_text(start: dt.date, kind: str) -> str:
    """The canonical text of a partition starting at ``start``: ``2024-01-31`` (day),
    ``2024-01`` (month), ``2024-01-31T05`` (hour)."""
    if kind == "hour":
        return start.strftime("%Y-%m-%dT%H")
    return start.isoformat() if kind == "day" else start.strftime("%Y-%m")


def value_text(value: str | dt.date) -> str:
    """A partition value as a user writes it: ``YYYY-MM-DDTHH`` for an hour (a ``datetime``),
    ``YYYY-MM-DD`` for a date, text as it is."""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%dT%H")
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def wall_clock_exists(start: dt.date, timezone: str) -> bool:
    """Whether a naive wall-clock time exists in a time zone (the hour skipped when clocks go
    forward does not); a plain date always exists."""
    if not isinstance(start, dt.datetime):
        return True
    zone = ZoneInfo(timezone)
    there = start.replace(tzinfo=zone)
    back = there.astimezone(dt.UTC).astimezone(zone).replace(tzinfo=None)
    return back == start


MAX_RANGE = 100_000
"""Partitions one range may hold (a backfill, a model's or a baseline's): 273 years of days,
11 years of hours."""


def _periods(first: Partition, last: Partition) -> int:
    """The partitions from ``first`` to ``last``, both included, counted without listing them
    (hours as on a clock without daylight saving)."""
    a, b = first.start, last.start
    if first.kind == "month":
        return (b.year - a.year) * 12 + b.month - a.month + 1
    if isinstance(a, dt.datetime) and isinstance(b, dt.datetime):
        return int((b - a).total_seconds() // 3600) + 1
    return (b - a).days + 1


def partition_range(
    spec: PartitionSpec, start: str | dt.date, end: str | dt.date
) -> list[Partition]:
    """All partitions from ``start`` to ``end``, both included. Hours are wall-clock hours in
    the spec's time zone: the hour skipped when clocks go forward is left out, and the hour
    repeated when they go back is one partition."""
    first, last = spec.parse(start), spec.parse(end)
    if last.start < first.start:
        raise ValueError(f"end {last} is before start {first}")
    count = _periods(first, last)
    if count > MAX_RANGE:
        raise ValueError(
            f"{first}..{last} holds {count:,} {spec.kind}s, more than the {MAX_RANGE:,} one "
            "range may hold (a mistyped year makes a range of centuries): narrow it, or split "
            "it into several"
        )
    out = [first]
    while out[-1].start < last.start:
        out.append(out[-1].next())
    if spec.kind == "hour":
        out = [p for p in out if wall_clock_exists(p.start, spec.timezone)]
        if not out:
            raise ValueError(
                f"{first}..{last} holds no hour of time zone {spec.timezone} (clocks skip it)"
            )
    return out


def expand_env(text: str) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}``; an unset variable without default is an error."""

    def sub(m: re.Match[str]) -> str:
        val = os.environ.get(m.group(1))
        if val is None or val == "":
            if m.group(2) is None:
                raise ValueError(f"environment variable {m.group(1)} is not set")
            return m.group(2)
        return val

    return _ENV_RE.sub(sub, text)


DATE_CODES = "aAbBdjmUwWyYGuV%"
HOUR_CODES = "HIp"
_TEMPLATE_TOKEN = re.compile(
    r"(?P<env>\$\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\})"
    r"|(?P<open>\{\{)|(?P<close>\}\})"
    r"|\{(?P<field>[^{}]*)\}"
    r"|(?P<stray>[{}])"
    r"|(?P<text>[^${}]+|\$)"
)
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Placeholder:
    """``{key}`` (the partition's canonical text) or ``{key:FORMAT}`` (strftime codes)."""

    format: str | None


@dataclass(frozen=True)
class PathTemplate:
    """A parsed ``source.path``: literal text (environment expanded) and partition placeholders.

    Parsed by sluice, never by ``str.format``: a placeholder is ``{<key>}`` or
    ``{<key>:<format>}`` whose format holds only literal text and the strftime codes of a date
    (``%Y``, ``%m``, ``%d``, ...); ``{{`` and ``}}`` are literal braces.
    """

    text: str
    parts: tuple[str | Placeholder, ...]

    @classmethod
    def parse(cls, text: str, key: str, kind: PartitionKind = "day") -> PathTemplate:
        """Parse a template; ValueError names the placeholder and what is allowed. The codes
        of an hour (``%H``, ``%I``, ``%p``) are allowed only when ``kind`` is hour."""
        parts: list[str | Placeholder] = []
        for m in _TEMPLATE_TOKEN.finditer(text):
            if m.group("env") is not None:
                parts.append(expand_env(m.group("env")))
            elif m.group("open") is not None:
                parts.append("{")
            elif m.group("close") is not None:
                parts.append("}")
            elif m.group("field") is not None:
                parts.append(_placeholder(m.group("field"), key, kind))
            elif m.group("stray") is not None:
                raise ValueError(
                    f"a lone {m.group('stray')!r} at character {m.start() + 1} (write "
                    f"{m.group('stray') * 2!r} for a literal brace)"
                )
            else:
                parts.append(m.group("text"))
        merged: list[str | Placeholder] = []
        for part in parts:
            if isinstance(part, str) and merged and isinstance(merged[-1], str):
                merged[-1] += part
            else:
                merged.append(part)
        return cls(text, tuple(merged))

    def render(self, partition: Partition) -> str:
        """The template with each placeholder replaced by the partition's text."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            elif part.format is None:
                out.append(str(partition))
            else:
                out.append(partition.start.strftime(part.format))
        return "".join(out)

    @property
    def fixed_prefix(self) -> str:
        """The folder every match lies under: the text before the first placeholder or glob
        character, up to its last ``/`` (the whole path when there is neither)."""
        head = self.parts[0] if self.parts and isinstance(self.parts[0], str) else ""
        cut = _GLOB_CHARS.search(head)
        if cut is None and len(self.parts) <= 1:
            return head
        head = head[: cut.start()] if cut is not None else head
        return head[: head.rfind("/") + 1] if "/" in head else ""


def _placeholder(field: str, key: str, kind: PartitionKind = "day") -> Placeholder:
    name, colon, fmt = field.partition(":")
    codes = DATE_CODES + HOUR_CODES if kind == "hour" else DATE_CODES
    what = "an hour" if kind == "hour" else "a date"
    allowed = f"{{{key}}} or {{{key}:<strftime codes of {what}: %{', %'.join(codes)}>}}"
    if name != key:
        raise ValueError(f"placeholder {{{field}}} is not the partition key; allowed: {allowed}")
    if not colon:
        return Placeholder(None)
    if not fmt:
        raise ValueError(f"placeholder {{{field}}} has an empty format; allowed: {allowed}")
    if "%" not in fmt:
        raise ValueError(f"placeholder {{{field}}} holds no strftime code; allowed: {allowed}")
    for m in re.finditer(r"%(.?)", fmt):
        if m.group(1) == "" or m.group(1) not in codes:
            hint = (
                " (the hour codes need partition.kind: hour)"
                if m.group(1) and m.group(1) in HOUR_CODES
                else ""
            )
            raise ValueError(
                f"placeholder {{{field}}}: {m.group(0)!r} is not a strftime code of {what}"
                f"{hint}; allowed: {allowed}"
            )
    return Placeholder(fmt)


def is_remote(text: str) -> bool:
    """Whether a path is a URL of a remote file system (``s3://``, ``gs://``, ...)."""
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", text)
    return scheme is not None and scheme.group(1).lower() not in ("file", "local")


def _local(text: str) -> str:
    return re.sub(r"^(?:file|local)://", "", text, flags=re.IGNORECASE)


def resolve_root(path: str | Path, base: Path) -> Path:
    """A local path made absolute from ``base``, normalised, with every symbolic link resolved.

    For a path that does not exist yet, its longest existing ancestor is resolved and the rest
    appended (``os.path.realpath``), so two spellings of one place give one path.
    """
    p = Path(_local(str(path)))
    return Path(os.path.realpath(p if p.is_absolute() else base / p))


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _overlap(a: Path, b: Path) -> str | None:
    """How ``a`` overlaps ``b``: by path, or by identity on disk for folders that exist (a bind
    mount is one folder under two paths)."""
    if a == b or _same(a, b):
        return "is the same folder as"
    if b in a.parents or any(_same(p, b) for p in a.parents):
        return "is inside"
    if a in b.parents or any(_same(p, a) for p in b.parents):
        return "contains"
    return None


OutputSide = Literal["clean", "quarantine", "reports"]
OUTPUT_SIDES: tuple[OutputSide, ...] = ("clean", "quarantine", "reports")
TableSide = Literal["clean", "quarantine", "failures"]
TABLE_SIDES: tuple[TableSide, ...] = ("clean", "quarantine", "failures")
PATH_KEYS = ("source.path", "outputs.clean", "outputs.quarantine", "outputs.reports")


class LoadedSpec:
    """A validated spec together with the file it came from and its hash."""

    def __init__(
        self, spec: DatasetSpec, path: Path, sha256: str, lines: dict[str, int | None] | None = None
    ) -> None:
        self.spec = spec
        self.path = path
        self.sha256 = sha256
        self.lines = dict(lines or {})
        self._template: PathTemplate | None = None
        self._roots: dict[str, Path] = {}

    @property
    def name(self) -> str:
        """The dataset's name."""
        return self.spec.name

    def _error(
        self, problem: str, key: str, found: object = None, allowed: str | None = None
    ) -> ConfigError:
        return ConfigError(
            problem, file=self.path, line=self.lines.get(key), key=key, found=found, allowed=allowed
        )

    def resolve(self, text: str, *, key: str) -> str:
        """A path of the spec, environment expanded, made absolute from the spec's folder."""
        try:
            expanded = expand_env(text)
        except ValueError as exc:
            raise self._error(str(exc), key, found=text) from None
        if "://" in expanded:
            return expanded
        p = Path(expanded)
        return str(p if p.is_absolute() else (self.path.parent / p).resolve())

    @property
    def suite_path(self) -> Path:
        """The suite file."""
        return Path(self.resolve(self.spec.suite, key="suite"))

    @property
    def source_template(self) -> PathTemplate:
        """``source.path`` parsed (placeholders checked, environment expanded)."""
        if self._template is None:
            try:
                part = self.spec.partition
                self._template = PathTemplate.parse(self.spec.source.path, part.key, part.kind)
            except ValueError as exc:
                raise self._error(str(exc), "source.path", found=self.spec.source.path) from None
        return self._template

    def source_pattern(self, partition: Partition) -> str:
        """The glob of one partition's files: the template filled, made absolute."""
        text = self.source_template.render(partition)
        if "://" in text:
            return text
        p = Path(text)
        return str(p if p.is_absolute() else (self.path.parent / p).resolve())

    def source_glob(self, partition: Partition) -> str | None:
        """:meth:`source_pattern` as it is matched: ``None`` when the filled template holds
        no ``*`` (it names one file, whatever its path holds), else the glob with the folders
        the spec's own folder lies in escaped (``glob.escape``), so that a project under
        ``data [x]/`` or ``a*b/`` has its path matched as written; only the template's own
        text is a pattern."""
        text = self.source_template.render(partition)
        if "*" not in text:
            return None
        resolved = self.source_pattern(partition)
        if "://" in text or Path(text).is_absolute():
            return resolved
        here = self.path.parent.resolve()
        for folder in (here, *here.parents):
            head = str(folder)
            if resolved.startswith(head.rstrip(os.sep) + os.sep):
                return glob.escape(head) + resolved[len(head) :]
        return resolved

    def source_prefix(self) -> str | Path:
        """The folder every source file lies under: resolved when local, the URL text when
        remote (see :attr:`PathTemplate.fixed_prefix`)."""
        prefix = self.source_template.fixed_prefix
        if is_remote(prefix):
            return prefix
        return resolve_root(prefix or ".", self.path.parent)

    @property
    def delta(self) -> bool:
        """Whether clean, quarantine and failures are Delta tables (``outputs.format: delta``)."""
        return self.spec.outputs.format == "delta"

    def output_root(self, which: OutputSide) -> Path:
        """One of the three output roots, resolved (absolute, normalised, links followed)."""
        if which not in self._roots:
            key = f"outputs.{which}"
            value = self.resolve(getattr(self.spec.outputs, which), key=key)
            if is_remote(value):
                why = (
                    "outputs.reports must be a local path (it holds the manifest, committed by "
                    "an atomic rename)"
                    if self.delta
                    else "outputs must be local paths with outputs.format parquet (a partition's "
                    "folders are swapped in by atomic rename)"
                )
                raise self._error(
                    why,
                    key,
                    found=value,
                    allowed="a local folder; for clean and quarantine on an object store, "
                    "set outputs.format: delta",
                )
            self._roots[which] = resolve_root(value, self.path.parent)
        return self._roots[which]

    def table_uri(self, which: TableSide) -> str:
        """Where a Delta table of ``outputs.format: delta`` is: a resolved local path, or the
        object-store URI as written (environment expanded)."""
        if which == "failures" and self.spec.outputs.failures is None:
            return self.table_uri("quarantine").rstrip("/") + "_failures"
        key = f"outputs.{which}"
        value = self.resolve(str(getattr(self.spec.outputs, which)), key=key)
        if is_remote(value):
            return value
        return str(resolve_root(value, self.path.parent))

    def storage_options(self) -> dict[str, str]:
        """``outputs.storage_options`` with ``${VAR}`` expanded."""
        out: dict[str, str] = {}
        for name, text in self.spec.outputs.storage_options.items():
            try:
                out[name] = expand_env(text)
            except ValueError as exc:
                key = f"outputs.storage_options.{name}"
                raise self._error(str(exc), key, found=text) from None
        return out

    def _roots_to_check(self) -> dict[str, Path]:
        if not self.delta:
            return {f"outputs.{side}": self.output_root(side) for side in OUTPUT_SIDES}
        if self.spec.outputs.failures is not None:
            self.resolve(self.spec.outputs.failures, key="outputs.failures")
        roots = {"outputs.reports": self.output_root("reports")}
        for side in TABLE_SIDES:
            uri = self.table_uri(side)
            if not is_remote(uri):
                roots[f"outputs.{side}"] = Path(uri)
        uris = {side: self.table_uri(side).rstrip("/") + "/" for side in TABLE_SIDES}
        named = list(uris.items())
        for i, (a, ua) in enumerate(named):
            for b, ub in named[i + 1 :]:
                if ua.startswith(ub) or ub.startswith(ua):
                    raise self._error(
                        f"the {a} and {b} tables overlap ({ua} and {ub}): each table must be "
                        "its own location",
                        f"outputs.{a}",
                        found=ua,
                    )
        return roots

    def check_paths(self) -> None:
        """Refuse, before any data moves, a source template sluice cannot parse and output roots
        that are equal, nested, or overlap the source's fixed prefix (on resolved paths)."""
        roots = self._roots_to_check()
        prefix = self.source_prefix()
        for key, root in roots.items():
            how = _overlap(root, prefix) if isinstance(prefix, Path) else None
            if how is not None:
                raise self._error(
                    f"{root} {how} {prefix}, the folder the source files are read from "
                    f"(source.path{self._at('source.path')}): outputs must never touch the source",
                    key,
                    found=self._found(key),
                )
        named = list(roots.items())
        for i, (key_a, a) in enumerate(named):
            for key_b, b in named[i + 1 :]:
                how = _overlap(a, b)
                if how is not None:
                    raise self._error(
                        f"{a} {how} {b} ({key_b}{self._at(key_b)}): each output root must be "
                        "its own folder, none inside another",
                        key_a,
                        found=self._found(key_a),
                    )

    def _found(self, key: str) -> object:
        value = getattr(self.spec.outputs, key.split(".")[1])
        return self.table_uri("failures") if value is None else value

    def _at(self, key: str) -> str:
        line = self.lines.get(key)
        return f" at line {line}" if line is not None else ""


def _node_line(root: yaml.Node | None, loc: tuple[str | int, ...]) -> int | None:
    """The 1-based line of the deepest key or item of ``loc`` found in a composed YAML tree."""
    node, line = root, (root.start_mark.line + 1 if root is not None else None)
    for part in loc:
        nxt: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == str(part):
                    nxt, line = v, k.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            nxt = node.value[part]
            line = nxt.start_mark.line + 1
        if nxt is None:
            break
        node = nxt
    return line


def _allowed_for(err: Any) -> str | None:
    ctx = err.get("ctx") or {}
    if "expected" in ctx:
        return str(ctx["expected"])
    if err["type"] == "extra_forbidden":
        return None
    return None


def _allowed_keys(model: type[BaseModel], loc: tuple[str | int, ...]) -> str | None:
    """The keys a mapping at ``loc`` allows, for unknown-key messages."""
    cur: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(cur, type) and issubclass(cur, BaseModel)):
            return None
        fields = {(f.alias or n): f for n, f in cur.model_fields.items()}
        if part not in fields:
            return None
        ann = fields[part].annotation
        cur = _model_in(ann)
    if isinstance(cur, type) and issubclass(cur, BaseModel):
        return ", ".join(sorted((f.alias or n) for n, f in cur.model_fields.items()))
    return None


def _model_in(ann: Any) -> Any:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def load_spec(path: str | Path) -> LoadedSpec:
    """Load and validate a dataset spec; each problem is a ConfigError with file and line."""
    p = Path(path)
    raw = read_regular(p, config_error(p, "dataset spec"), SPEC_LIMIT)
    text = raw.decode("utf-8", errors="replace")
    try:
        data = yaml.safe_load(text)
        tree = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            f"not valid YAML: {getattr(exc, 'problem', exc)}", file=p, line=line
        ) from None
    if not isinstance(data, dict):
        raise ConfigError("a dataset spec is a mapping", file=p, found=type(data).__name__)
    try:
        spec = DatasetSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and "[" in x))
        key = ".".join(str(x) for x in loc) or None
        line = _node_line(tree, loc)
        if err["type"] == "extra_forbidden":
            raise ConfigError(
                "unknown key",
                file=p,
                line=line,
                key=key,
                found=str(loc[-1]),
                allowed=_allowed_keys(DatasetSpec, loc),
            ) from None
        found = err.get("input") if err["type"] != "missing" else None
        if isinstance(found, dict | list):
            found = None
        raise ConfigError(
            err["msg"], file=p, line=line, key=key, found=found, allowed=_allowed_for(err)
        ) from None
    lines = {k: _node_line(tree, tuple(k.split("."))) for k in (*PATH_KEYS, "execution.dask")}
    loaded = LoadedSpec(spec, p.resolve(), sha256_hex(raw), lines)
    loaded.check_paths()
    return loaded


def find_spec(dataset: str, datasets_dir: Path | None = None) -> LoadedSpec:
    """Load ``datasets/<dataset>.yaml`` (or a path to a spec file)."""
    if dataset.endswith((".yaml", ".yml")):
        return load_spec(dataset)
    if not NAME_RE.fullmatch(dataset):
        raise ConfigError(
            "not a dataset name", key="dataset", found=dataset, allowed=NAME_RE.pattern
        )
    base = datasets_dir or default_datasets_dir()
    candidate = base / f"{dataset}.yaml"
    if not candidate.exists():
        known = sorted(q.stem for q in base.glob("*.yaml"))
        raise ConfigError(
            "no such dataset", file=candidate, found=dataset, allowed=", ".join(known) or "(none)"
        )
    return load_spec(candidate)


def default_datasets_dir() -> Path:
    """``$SLUICE_DATASETS``, else ``./datasets``, else the project's own ``datasets/``."""
    env = os.environ.get("SLUICE_DATASETS")
    if env:
        return Path(env)
    here = Path.cwd() / "datasets"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parent.parent / "datasets"
