"""Dataset specs: ``datasets/<name>.yaml`` loaded into strict pydantic models.

Relative paths in a spec are relative to the spec file's folder. Path strings may use
``${VAR}`` or ``${VAR:-default}`` to take a value from the environment.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from detectors.spec import DetectorSpec
from sluice.errors import ConfigError
from sluice.files import SPEC_LIMIT, config_error, read_regular

ColumnType = Literal["string", "int", "float", "bool", "date", "datetime"]
COLUMN_TYPES: tuple[str, ...] = ("string", "int", "float", "bool", "date", "datetime")
SourceFormat = Literal["csv", "parquet", "ndjson"]
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Strict):
    """The declared type of one column; dates and timestamps may give a strftime format."""

    type: ColumnType
    format: str | None = None

    @model_validator(mode="after")
    def _format_only_for_temporal(self) -> ColumnSpec:
        if self.format is not None and self.type not in ("date", "datetime"):
            raise ValueError(f"'format' applies to date and datetime columns, not {self.type}")
        return self


class CsvOptions(_Strict):
    """Reader options for CSV sources."""

    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quote_char: str = Field(default='"', min_length=1, max_length=1)
    encoding: Literal["utf8", "utf-8", "latin1", "cp1252"] = "utf8"
    null_values: list[str] = Field(default_factory=lambda: [""])


class SourceSpec(_Strict):
    """Where a partition's files are and how to read them."""

    path: str = Field(description="Path or glob; {<partition key>} is replaced by the partition.")
    format: SourceFormat = "csv"
    csv: CsvOptions = Field(default_factory=CsvOptions)


class PartitionSpec(_Strict):
    """How partitions are named: a day (YYYY-MM-DD) or a month (YYYY-MM)."""

    key: str = "date"
    kind: Literal["day", "month"] = "day"
    timezone: str = "UTC"
    lag: int = Field(default=1, ge=0, description="A nightly run screens the period this far back.")

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
    """Output roots. Clean and quarantine must not be the same place."""

    clean: str
    quarantine: str
    reports: str

    @model_validator(mode="after")
    def _distinct(self) -> OutputSpec:
        if len({self.clean, self.quarantine, self.reports}) < 3:
            raise ValueError("clean, quarantine and reports must be three different places")
        return self


class ValidationSpec(_Strict):
    """Which engine validates the suite."""

    engine: Literal["auto", "polars", "gx"] = "auto"


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


class DatasetSpec(_Strict):
    """One dataset: its source, schema, keys, suite, detectors and outputs."""

    name: str
    description: str = ""
    source: SourceSpec
    partition: PartitionSpec = Field(default_factory=PartitionSpec)
    schema_: dict[str, ColumnSpec | ColumnType] = Field(alias="schema", min_length=1)
    keys: list[str] = Field(default_factory=list)
    suite: str
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    detectors: list[DetectorSpec] = Field(default_factory=list)
    reference: ReferenceSpec = Field(default_factory=ReferenceSpec)
    outputs: OutputSpec

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.fullmatch(v):
            raise ValueError("must start with a letter and hold only letters, digits, '_' or '-'")
        return v

    @model_validator(mode="after")
    def _columns_known(self) -> DatasetSpec:
        cols = set(self.schema_)
        for k in self.keys:
            if k not in cols:
                raise ValueError(f"key column {k!r} is not in the schema")
        for d in self.detectors:
            for f in d.feature_specs():
                if f.column not in cols:
                    raise ValueError(f"detector {d.name!r} uses {f.column!r}, not in the schema")
        for c in cols:
            if c.startswith("_"):
                raise ValueError(f"column {c!r}: names starting with '_' are reserved for sluice")
        return self

    @property
    def columns(self) -> dict[str, ColumnSpec]:
        """The schema with bare type names expanded."""
        return {
            c: s if isinstance(s, ColumnSpec) else ColumnSpec(type=s)
            for c, s in self.schema_.items()
        }


class Partition:
    """A partition value: a day or a month. ``format(p)`` gives its canonical text."""

    __slots__ = ("key", "kind", "start")

    def __init__(self, start: dt.date, kind: Literal["day", "month"], key: str = "date") -> None:
        self.start = start if kind == "day" else start.replace(day=1)
        self.kind = kind
        self.key = key

    @classmethod
    def parse(cls, value: str | dt.date, kind: Literal["day", "month"], key: str) -> Partition:
        """Parse ``YYYY-MM-DD`` (day) or ``YYYY-MM`` (month)."""
        if isinstance(value, dt.date):
            return cls(value, kind, key)
        text = str(value).strip()
        try:
            if kind == "day":
                return cls(dt.date.fromisoformat(text), kind, key)
            if re.fullmatch(r"\d{4}-\d{2}", text):
                return cls(dt.date.fromisoformat(text + "-01"), kind, key)
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                return cls(dt.date.fromisoformat(text), kind, key)
        except ValueError:
            pass
        form = "YYYY-MM-DD" if kind == "day" else "YYYY-MM"
        raise ValueError(f"partition {text!r} is not a {kind} of the form {form}")

    def __str__(self) -> str:
        return self.start.isoformat() if self.kind == "day" else self.start.strftime("%Y-%m")

    def __repr__(self) -> str:
        return f"Partition({self.key}={self})"

    def __format__(self, spec: str) -> str:
        return self.start.strftime(spec) if spec else str(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Partition) and (self.start, self.kind) == (other.start, other.kind)

    def __hash__(self) -> int:
        return hash((self.start, self.kind))

    def next(self) -> Partition:
        """The following partition."""
        if self.kind == "day":
            return Partition(self.start + dt.timedelta(days=1), "day", self.key)
        y, m = divmod(self.start.month, 12)
        return Partition(dt.date(self.start.year + y, m + 1, 1), "month", self.key)

    @property
    def dirname(self) -> str:
        """The hive-style folder name of this partition, e.g. ``date=2024-01-31``."""
        return f"{self.key}={self}"


def partition_range(
    spec: PartitionSpec, start: str | dt.date, end: str | dt.date
) -> list[Partition]:
    """All partitions from ``start`` to ``end``, both included."""
    first, last = spec.parse(start), spec.parse(end)
    if last.start < first.start:
        raise ValueError(f"end {last} is before start {first}")
    out = [first]
    while out[-1].start < last.start:
        out.append(out[-1].next())
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


class LoadedSpec:
    """A validated spec together with the file it came from and its hash."""

    def __init__(self, spec: DatasetSpec, path: Path, sha256: str) -> None:
        self.spec = spec
        self.path = path
        self.sha256 = sha256

    @property
    def name(self) -> str:
        """The dataset's name."""
        return self.spec.name

    def resolve(self, text: str, *, key: str) -> str:
        """A path of the spec, environment expanded, made absolute from the spec's folder."""
        try:
            expanded = expand_env(text)
        except ValueError as exc:
            raise ConfigError(str(exc), file=self.path, key=key, found=text) from None
        if "://" in expanded:
            return expanded
        p = Path(expanded)
        return str(p if p.is_absolute() else (self.path.parent / p).resolve())

    @property
    def suite_path(self) -> Path:
        """The suite file."""
        return Path(self.resolve(self.spec.suite, key="suite"))

    def output_root(self, which: Literal["clean", "quarantine", "reports"]) -> Path:
        """One of the three output roots."""
        value = self.resolve(getattr(self.spec.outputs, which), key=f"outputs.{which}")
        if "://" in value:
            raise ConfigError(
                "outputs must be local paths for now (atomic rename)",
                file=self.path,
                key=f"outputs.{which}",
                found=value,
            )
        return Path(value)


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
    return LoadedSpec(spec, p.resolve(), hashlib.sha256(raw).hexdigest())


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
