"""Load a GX suite file strictly: every entry is understood or the load stops with its place.

GX's own ``ExpectationSuite`` logs and drops an expectation of unknown type; this loader refuses
it instead, naming the file, the line, the key (``expectations[3].type``), what was found and what
is allowed. Each entry is built as the GX expectation it names (GX expectations are pydantic
models that forbid unknown fields), so misspelt, missing and mistyped kwargs are caught here too.

Severity: sluice reads ``meta.severity`` (``warn``, ``error`` or ``critical``; default
``error``). GX 1.24 also has its own top-level ``severity`` field (``critical``, ``warning`` or
``info``, default ``critical``, written by GX on every entry it saves). sluice does not act on it:
it is accepted when it holds a GX value, and when it says something other than GX's default while
``meta.severity`` is absent the load stops and asks for ``meta.severity``, so an intent written in
GX's vocabulary is never silently replaced by sluice's default.

Configuration is data: a ``row_condition`` is accepted only when sluice's own grammar parses it
(:func:`~expectations.polars_engine.row_condition.condition_text`; GX's condition objects are
turned into that grammar), and is kept as pandas-syntax text that no engine evaluates as code.
Suite parameters (``{"$PARAMETER": name}``) may name only what sluice provides
(:data:`PARAMETER_NAMES`) and are substituted here, before any engine sees the entry. Patterns
that neither Python's ``re`` nor RE2 compiles, JSON schemas that fetch or run patterns, and
(given the declared columns) every column name an entry reads are checked at load.
"""

from __future__ import annotations

import bisect
import copy
import datetime as dt
import difflib
import functools
import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from expectations import gx_accepted, gx_catalog
from expectations.polars_engine.bounded import budget_seconds
from expectations.polars_engine.pyregex import pattern_error
from expectations.polars_engine.row_condition import (
    ALLOWED_SYNTAX,
    PARSERS,
    RowConditionError,
    check_syntax,
    condition_text,
)
from expectations.results import DuplicatePolicy, ExpectationEntry, Suite
from expectations.sluice_types import (
    READ_KEYS,
    SLUICE_TYPES,
    argument_names,
    first_error,
    is_sluice_type,
    parse_kwargs,
)
from sluice.core.errors import ConfigError
from sluice.core.failures import SEVERITIES, Severity
from sluice.core.files import SUITE_LIMIT, config_error, read_regular, sha256_hex
from sluice.core.values import is_json_number

UNIQUENESS_TYPES: frozenset[str] = frozenset(
    {"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"}
)
DUPLICATE_POLICIES: tuple[DuplicatePolicy, ...] = ("keep_first", "keep_none")
DEFAULT_SEVERITY: Severity = "error"
GX_SEVERITIES: tuple[str, ...] = ("critical", "warning", "info")

_SUITE_KEYS = frozenset(
    {"name", "expectation_suite_name", "expectations", "meta", "id", "notes", "suite_parameters"}
)
_LEGACY_SUITE_KEYS = frozenset({"data_asset_type", "ge_cloud_id"})
_ENTRY_KEYS = frozenset(
    {
        "type",
        "expectation_type",
        "kwargs",
        "meta",
        "id",
        "notes",
        "description",
        "severity",
        "rendered_content",
        "expectation_context",
    }
)
_NOT_KWARGS: dict[str, str] = {
    "id": "put it beside `type`, not in kwargs",
    "meta": "put it beside `type`, not in kwargs",
    "notes": "put it beside `type`, not in kwargs",
    "description": "put it beside `type`, not in kwargs",
    "severity": "set `meta.severity` (warn, error or critical)",
    "rendered_content": "remove it: it is rendering output",
    "result_format": "remove it: the runner sets result_format (GX ignores it on an expectation)",
    "catch_exceptions": "remove it: the runner always reports a failing check as an exception",
    "windows": "remove it: windows are a GX Cloud feature sluice does not run",
    "batch_id": "remove it: GX sets it when validating",
}

PARAMETER_NAMES: tuple[str, ...] = ("partition_start", "partition_end")
"""Suite parameters sluice provides: the partition's first day and the first day after it."""
COLUMN_SET_TYPES: frozenset[str] = frozenset(
    {
        "expect_column_to_exist",
        "expect_table_columns_to_match_ordered_list",
        "expect_table_columns_to_match_set",
    }
)
"""Types whose purpose is to assert the column set: their names are not checked at load."""
REGEX_KWARGS: tuple[str, ...] = ("regex", "regex_list")
_UNSAFE_SCHEMA_KEYS = frozenset({"pattern", "patternProperties"})
_REF_KEYS = frozenset({"$ref", "$dynamicRef", "$recursiveRef"})
QUANTILE_TYPE = "expect_column_quantile_values_to_be_between"
NOT_KWARGS = _NOT_KWARGS
"""Keys that are never arguments of an expectation, and what to do with each instead."""

Path_ = tuple[str | int, ...]
LineOf = Callable[[Path_], int | None]


def partition_parameters(start: dt.date, end: dt.date) -> dict[str, str]:
    """The suite parameters of a partition from ``start`` to ``end`` (exclusive), ISO dates."""
    return {"partition_start": start.isoformat(), "partition_end": end.isoformat()}


def load_suite(
    path: str | Path,
    *,
    columns: Collection[str] | None = None,
    parameters: Mapping[str, str] | None = None,
) -> Suite:
    """Read a GX 1.x suite JSON file and return every entry of it, or raise ``ConfigError``.

    ``columns`` is the declared schema's column names: every column an entry reads must be one
    of them. ``parameters`` holds the values of :data:`PARAMETER_NAMES` (see
    :func:`partition_parameters`); without them a ``$PARAMETER`` is an error.
    """
    p, raw, data, line_of = _read(path)
    return _build(
        data,
        path=p,
        sha256=sha256_hex(raw),
        line_of=line_of,
        columns=columns,
        parameters=parameters,
    )


def check_names(path: str | Path) -> None:
    """Refuse a suite file that is not JSON, or names an unknown type or argument, without GX.

    The quick part of :func:`load_suite`, which still has to run: the types and arguments are
    checked against the committed catalog of the installed GX (:mod:`expectations.gx_catalog`).
    """
    p, _, data, line_of = _read(path)
    items = data.get("expectations") if isinstance(data, dict) else None
    if isinstance(items, list):
        _precheck(_Builder(p, line_of), items)


def _read(path: str | Path) -> tuple[Path, bytes, Any, LineOf]:
    """The file's path, bytes, parsed JSON and line finder; ConfigError if it is not JSON."""
    p = Path(path)
    raw = read_regular(p, config_error(p, "suite file"), SUITE_LIMIT)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"the suite file is not UTF-8 text (byte {exc.start})", file=p, allowed="UTF-8 JSON"
        ) from exc
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                duplicates.append(key)
            out[key] = value
        return out

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"the suite file is not valid JSON: {exc.msg} (column {exc.colno})",
            file=p,
            line=exc.lineno,
            allowed="a GX suite as JSON",
        ) from exc
    except RecursionError:
        raise ConfigError(
            "the suite file nests too deeply to read", file=p, allowed="a GX suite as JSON"
        ) from None
    places = _locate(text)
    if duplicates:
        where, pos = places.dup_keys[0] if places.dup_keys else ((duplicates[0],), None)
        raise ConfigError(
            "a key appears twice in one JSON object (JSON keeps only the last)",
            file=p,
            line=_line(text, pos) if pos is not None else None,
            key=_key_text(where),
            found=where[-1],
            allowed="each key once per object",
        )
    return p, raw, data, lambda key: _nearest_line(text, places.positions, key)


def suite_from_dict(
    data: Mapping[str, Any],
    path: str | Path | None = None,
    *,
    columns: Collection[str] | None = None,
    parameters: Mapping[str, str] | None = None,
) -> Suite:
    """Build a suite from already-parsed JSON, with the same checks as :func:`load_suite`.

    Lines are not known; the sha256 is that of the canonical JSON (sorted keys, no spaces).
    """
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return _build(
        copy.deepcopy(data),
        path=Path(path) if path is not None else None,
        sha256=sha256_hex(canonical.encode()),
        line_of=lambda key: None,
        columns=columns,
        parameters=parameters,
    )


def entry_columns(entry: ExpectationEntry) -> list[tuple[str, str]]:
    """``(kwargs key, column name)`` for every column ``entry`` reads, its condition's too.

    Entries whose purpose is to assert the column set (:data:`COLUMN_SET_TYPES`) give none.
    """
    return _named_columns(entry.type, entry.kwargs)


def check_columns(suite: Suite, columns: Collection[str], source: str) -> None:
    """Raise ``ConfigError`` for the first column an entry reads that ``columns`` lacks.

    ``source`` says where ``columns`` come from (a data file, a dataset spec).
    """
    for entry in suite.entries:
        for key, name in entry_columns(entry):
            if name not in columns:
                raise _missing_column(
                    suite.path or "<suite>",
                    entry.line,
                    f"expectations[{entry.index}].kwargs.{key}",
                    name,
                    columns,
                    source,
                )


def registered_types() -> list[str]:
    """Every expectation type GX has registered, sorted."""
    from great_expectations.expectations.registry import (
        list_registered_expectation_implementations,
    )

    return sorted(list_registered_expectation_implementations())


class _Builder:
    def __init__(
        self,
        path: Path | None,
        line_of: LineOf,
        columns: Collection[str] | None = None,
        parameters: Mapping[str, str] | None = None,
    ) -> None:
        self.path = path
        self.line_of = line_of
        self.columns = columns
        self.parameters = parameters

    def error(
        self, problem: str, key: Path_, *, found: object = None, allowed: str | None = None
    ) -> ConfigError:
        return ConfigError(
            problem,
            file=self.path if self.path is not None else "<suite>",
            line=self.line_of(key),
            key=_key_text(key) or None,
            found=found,
            allowed=allowed,
        )


def _build(
    data: Any,
    *,
    path: Path | None,
    sha256: str,
    line_of: LineOf,
    columns: Collection[str] | None = None,
    parameters: Mapping[str, str] | None = None,
) -> Suite:
    budget_seconds()
    b = _Builder(path, line_of, columns, parameters)
    if not isinstance(data, dict):
        raise b.error(
            "a suite is a JSON object", (), found=type(data).__name__, allowed="an object"
        )
    for key in data:
        if key not in _SUITE_KEYS | _LEGACY_SUITE_KEYS:
            raise b.error(
                "unknown suite key",
                (key,),
                found=key,
                allowed=", ".join(sorted(_SUITE_KEYS)),
            )
    name_key = "name" if "name" in data else "expectation_suite_name"
    name = data.get(name_key)
    if not isinstance(name, str) or not name:
        raise b.error(
            "the suite needs a name", (name_key,), found=name, allowed="a non-empty string"
        )
    if data.get("suite_parameters"):
        raise b.error(
            "suite parameters are not supported",
            ("suite_parameters",),
            found=sorted(data["suite_parameters"]),
            allowed="literal values in each expectation's kwargs",
        )
    meta = data.get("meta") or {}
    if not isinstance(meta, dict):
        raise b.error("meta must be an object", ("meta",), found=meta, allowed="an object")
    if "expectations" not in data:
        raise b.error("the suite has no expectations list", (), allowed="an `expectations` list")
    items = data["expectations"]
    if not isinstance(items, list):
        raise b.error(
            "expectations must be a list",
            ("expectations",),
            found=type(items).__name__,
            allowed="a JSON array of expectation objects",
        )
    _precheck(b, items)
    entries = tuple(_entry(b, i, item) for i, item in enumerate(items))
    if len(entries) != len(items):
        raise b.error(
            f"{len(items)} expectations in the file but {len(entries)} built",
            ("expectations",),
        )
    return Suite(name=name, path=path, sha256=sha256, entries=entries, meta=dict(meta))


def _entry(b: _Builder, i: int, item: Any) -> ExpectationEntry:
    at: Path_ = ("expectations", i)
    if not isinstance(item, dict):
        raise b.error(
            "an expectation is a JSON object",
            at,
            found=type(item).__name__,
            allowed='{"type": ..., "kwargs": {...}, "meta": {...}}',
        )
    for key in item:
        if key not in _ENTRY_KEYS:
            raise b.error(
                "unknown expectation key",
                (*at, key),
                found=key,
                allowed=", ".join(sorted(_ENTRY_KEYS)),
            )
    type_name = _type_name(b, at, item)
    sluice_type = is_sluice_type(type_name)
    if not sluice_type and type_name not in (gx_catalog.arguments() or {}):
        _impl(b, at, type_name)  # an unknown type is refused before its arguments are read
    kwargs = item.get("kwargs", {})
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise b.error(
            "kwargs must be an object", (*at, "kwargs"), found=kwargs, allowed="a JSON object"
        )
    kwargs = _substitute(b, (*at, "kwargs"), kwargs)
    _check_condition(b, at, kwargs)
    if sluice_type:
        _check_sluice_kwargs(b, at, type_name, kwargs)
    elif not gx_accepted.accepted(type_name, kwargs):
        _check_kwargs(b, at, type_name, _impl(b, at, type_name), kwargs)
        gx_accepted.remember(type_name, kwargs)
    _check_patterns(b, at, type_name, kwargs)
    _check_listed_once(b, at, kwargs)
    if type_name == QUANTILE_TYPE:
        _check_quantile_ranges(b, (*at, "kwargs", "quantile_ranges"), kwargs.get("quantile_ranges"))
    if b.columns is not None:
        for key, name in _named_columns(type_name, kwargs):
            if name not in b.columns:
                raise _missing_column(
                    b.path or "<suite>",
                    b.line_of((*at, "kwargs", key.split(".")[0])),
                    _key_text((*at, "kwargs")) + "." + key,
                    name,
                    b.columns,
                    "the declared schema",
                )
    meta = item.get("meta") or {}
    if not isinstance(meta, dict):
        raise b.error("meta must be an object", (*at, "meta"), found=meta, allowed="an object")
    severity = _severity(b, at, item, meta)
    duplicates = _duplicates(b, at, type_name, meta)
    return ExpectationEntry(
        index=i,
        type=type_name,
        kwargs=dict(kwargs),
        meta=dict(meta),
        severity=severity,
        line=b.line_of(at),
        duplicates=duplicates,
    )


def _type_name(b: _Builder, at: Path_, item: dict[str, Any]) -> str:
    new, old = item.get("type"), item.get("expectation_type")
    if new is not None and old is not None and new != old:
        raise b.error(
            "`type` and the older `expectation_type` disagree",
            (*at, "expectation_type"),
            found=old,
            allowed=f"the same value as type ({new!r}), or only one of the two",
        )
    key = "type" if new is not None else "expectation_type"
    value = new if new is not None else old
    if value is None:
        raise b.error(
            "the expectation has no type", at, allowed="a `type` key naming a GX expectation"
        )
    if not isinstance(value, str):
        raise b.error(
            "the expectation type must be a string",
            (*at, key),
            found=value,
            allowed="a GX expectation name",
        )
    return value


def _impl(b: _Builder, at: Path_, type_name: str) -> type[Any]:
    from great_expectations.exceptions.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import get_expectation_impl

    try:
        return cast(type[Any], get_expectation_impl(type_name))
    except ExpectationNotFoundError:
        raise _unknown_type(b, at, type_name, registered_types()) from None


def _unknown_type(b: _Builder, at: Path_, type_name: str, names: list[str]) -> ConfigError:
    close = difflib.get_close_matches(type_name, names, n=3, cutoff=0.6)
    allowed = (
        "did you mean " + " or ".join(repr(c) for c in close) + "?"
        if close
        else f"one of GX's {len(names)} registered expectation types, e.g. {names[0]!r}"
    )
    return b.error("unknown expectation type", (*at, "type"), found=type_name, allowed=allowed)


def _unknown_argument(
    b: _Builder, at: Path_, type_name: str, key: str, allowed_names: list[str]
) -> ConfigError:
    close = difflib.get_close_matches(key, allowed_names, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return b.error(
        f"unknown argument of {type_name}",
        (*at, "kwargs", key),
        found=key,
        allowed=", ".join(allowed_names) + hint,
    )


def _precheck(b: _Builder, items: list[Any]) -> None:
    """Refuse an unknown type or argument name from the committed catalog, before GX loads.

    Only what the catalog of the installed GX knows is judged here; everything else, and every
    value, is left to the entry-by-entry checks with GX.
    """
    from expectations.gx_catalog import arguments

    catalog = arguments()
    if catalog is None:
        return
    for i, item in enumerate(items):
        if not isinstance(item, dict) or set(item) - _ENTRY_KEYS:
            continue
        at: Path_ = ("expectations", i)
        type_name = item.get("type", item.get("expectation_type"))
        if not isinstance(type_name, str):
            continue
        if is_sluice_type(type_name):
            _check_sluice_names(b, at, type_name, item.get("kwargs"))
            continue
        if type_name not in catalog:
            raise _unknown_type(b, at, type_name, sorted(catalog))
        kwargs = item.get("kwargs")
        if not isinstance(kwargs, dict):
            continue
        allowed_names = list(catalog[type_name])
        for key in kwargs:
            if key not in _NOT_KWARGS and key not in allowed_names:
                raise _unknown_argument(b, at, type_name, key, allowed_names)


def _check_sluice_names(b: _Builder, at: Path_, type_name: str, kwargs: object) -> None:
    """Refuse an unknown sluice type, or an argument a sluice type does not take."""
    if type_name not in SLUICE_TYPES:
        close = difflib.get_close_matches(type_name, SLUICE_TYPES, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise b.error(
            "unknown sluice expectation type",
            (*at, "type"),
            found=type_name,
            allowed=hint + "one of " + ", ".join(SLUICE_TYPES),
        )
    if not isinstance(kwargs, dict):
        return
    allowed_names = argument_names(type_name)
    _check_names(b, at, type_name, kwargs, allowed_names)


def _check_names(
    b: _Builder, at: Path_, type_name: str, kwargs: dict[str, Any], allowed_names: Sequence[str]
) -> None:
    """Refuse a kwarg that is an entry-level key (``meta``, ...) or not an argument of the type."""
    for key in kwargs:
        if key in _NOT_KWARGS:
            raise b.error(
                f"`{key}` is not an argument of the check",
                (*at, "kwargs", key),
                found=key,
                allowed=_NOT_KWARGS[key],
            )
        if key not in allowed_names:
            raise _unknown_argument(b, at, type_name, key, list(allowed_names))


def _check_sluice_kwargs(b: _Builder, at: Path_, type_name: str, kwargs: dict[str, Any]) -> None:
    """Check a sluice type's kwargs against its model (expectations/sluice_types.py)."""
    from pydantic import ValidationError

    _check_sluice_names(b, at, type_name, kwargs)
    try:
        parse_kwargs(type_name, kwargs)
    except ValidationError as exc:
        key, message, found = first_error(exc)
        if key is not None and key not in kwargs:
            raise b.error(
                f"{type_name} needs the argument `{key}`",
                (*at, "kwargs"),
                found=sorted(kwargs),
                allowed=f"kwargs with `{key}`",
            ) from None
        raise b.error(
            f"{type_name}: {message}",
            (*at, "kwargs", key) if key is not None else (*at, "kwargs"),
            found=found,
            allowed="arguments " + ", ".join(argument_names(type_name)),
        ) from None


def _check_kwargs(
    b: _Builder, at: Path_, type_name: str, impl: type[Any], kwargs: dict[str, Any]
) -> None:
    from great_expectations.expectations.expectation import Expectation

    base = set(Expectation.__fields__)
    fields = cast(dict[str, Any], impl.__fields__)
    allowed_names = sorted(n for n in fields if n not in base and n not in _NOT_KWARGS)
    _check_names(b, at, type_name, kwargs, allowed_names)
    try:
        impl(**kwargs)
    except Exception as exc:
        raise _kwargs_error(b, at, type_name, kwargs, exc) from None


def _substitute(b: _Builder, key: Path_, value: Any) -> Any:
    """``value`` with every ``{"$PARAMETER": name}`` replaced by sluice's value for ``name``."""
    if isinstance(value, list):
        return [_substitute(b, (*key, i), v) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if "$PARAMETER" not in value:
        return {k: _substitute(b, (*key, k), v) for k, v in value.items()}
    allowed = ", ".join(f'{{"$PARAMETER": "{n}"}}' for n in PARAMETER_NAMES)
    name = value["$PARAMETER"]
    if set(value) != {"$PARAMETER"} or name not in PARAMETER_NAMES:
        raise b.error(
            "a suite parameter names one value sluice provides (no expressions)",
            key,
            found=value,
            allowed=allowed,
        )
    if b.parameters is None or name not in b.parameters:
        raise b.error(
            f"the suite parameter {name!r} has no value here: it is known only when a dataset "
            "partition is screened (sluice run)",
            key,
            found=value,
            allowed="a literal value",
        )
    return b.parameters[name]


def _check_condition(b: _Builder, at: Path_, kwargs: dict[str, Any]) -> None:
    """Turn ``row_condition`` into text sluice's grammar accepts, or refuse the entry."""
    parser = kwargs.get("condition_parser")
    if "row_condition" not in kwargs or kwargs["row_condition"] in (None, ""):
        if parser is not None and parser not in PARSERS:
            raise b.error(
                "unknown condition_parser",
                (*at, "kwargs", "condition_parser"),
                found=parser,
                allowed=", ".join(PARSERS),
            )
        return
    if parser is not None and parser not in PARSERS:
        raise b.error(
            "sluice parses every row_condition itself, in pandas syntax",
            (*at, "kwargs", "condition_parser"),
            found=parser,
            allowed=f"{', '.join(PARSERS)} or no condition_parser",
        )
    try:
        text = condition_text(kwargs["row_condition"], parser)
    except RowConditionError as exc:
        raise b.error(
            f"the row_condition is outside sluice's grammar: {exc}",
            (*at, "kwargs", "row_condition"),
            found=kwargs["row_condition"],
            allowed=ALLOWED_SYNTAX,
        ) from None
    kwargs["row_condition"] = text
    kwargs["condition_parser"] = "pandas"


def _check_patterns(b: _Builder, at: Path_, type_name: str, kwargs: dict[str, Any]) -> None:
    for key in REGEX_KWARGS:
        value = kwargs.get(key)
        patterns = value if isinstance(value, list) else [value]
        for i, pattern in enumerate(patterns):
            if not isinstance(pattern, str):
                continue
            problem = pattern_error(pattern)
            if problem is not None:
                where: Path_ = (*at, "kwargs", key) + ((i,) if isinstance(value, list) else ())
                raise b.error(
                    f"neither Python's re nor RE2 compiles this pattern ({problem})",
                    where,
                    found=pattern,
                    allowed="a regular expression",
                )
    if type_name == "expect_column_values_to_match_json_schema":
        _check_json_schema(b, (*at, "kwargs", "json_schema"), kwargs.get("json_schema"))


def _check_listed_once(b: _Builder, at: Path_, kwargs: dict[str, Any]) -> None:
    """Refuse a ``column_list`` naming a column twice: GX takes it, and then compares the column
    with itself (every row of ``expect_select_column_values_to_be_unique_within_record`` fails)
    or counts it twice (a sum)."""
    listed = kwargs.get("column_list")
    if not isinstance(listed, list):
        return
    seen: set[str] = set()
    for i, name in enumerate(listed):
        if not isinstance(name, str):
            continue
        if name in seen:
            raise b.error(
                f"column {name!r} is listed twice",
                (*at, "kwargs", "column_list", i),
                found=listed,
                allowed="each column once",
            )
        seen.add(name)


def _check_quantile_ranges(b: _Builder, key: Path_, ranges: Any) -> None:
    """Refuse ``quantile_ranges`` that no engine can check: GX accepts quantiles beyond 0 to 1,
    ranges that are not pairs and lists of different lengths, and then raises on every batch
    (its model means to refuse unordered pairs and different lengths, but does not)."""
    allowed = (
        '{"quantiles": [q, ...], "value_ranges": [[min, max], ...]}: one [min, max] per '
        "quantile, each quantile from 0 to 1, min and max numbers (or null: unbounded), min <= max"
    )
    if not isinstance(ranges, dict) or not {"quantiles", "value_ranges"} <= set(ranges):
        raise b.error(
            "quantile_ranges needs quantiles and value_ranges", key, found=ranges, allowed=allowed
        )
    quantiles, value_ranges = ranges["quantiles"], ranges["value_ranges"]
    if not isinstance(quantiles, list) or not quantiles:
        raise b.error(
            "quantile_ranges.quantiles must be a list of at least one quantile",
            (*key, "quantiles"),
            found=quantiles,
            allowed=allowed,
        )
    for i, q in enumerate(quantiles):
        if not (is_json_number(q) and 0 <= q <= 1):
            raise b.error(
                "a quantile is a number from 0 to 1",
                (*key, "quantiles", i),
                found=q,
                allowed=allowed,
            )
    if not isinstance(value_ranges, list) or len(value_ranges) != len(quantiles):
        raise b.error(
            f"quantile_ranges.value_ranges must hold one [min, max] for each of the "
            f"{len(quantiles)} quantile(s)",
            (*key, "value_ranges"),
            found=value_ranges,
            allowed=allowed,
        )
    for i, pair in enumerate(value_ranges):
        bounds = pair if isinstance(pair, list) and len(pair) == 2 else None
        if bounds is None or not all(v is None or is_json_number(v) for v in bounds):
            raise b.error(
                "a value range is [min, max], each a number or null",
                (*key, "value_ranges", i),
                found=pair,
                allowed=allowed,
            )
        if bounds[0] is not None and bounds[1] is not None and bounds[0] > bounds[1]:
            raise b.error(
                "a value range's min is above its max",
                (*key, "value_ranges", i),
                found=pair,
                allowed=allowed,
            )


def _check_json_schema(b: _Builder, key: Path_, schema: Any) -> None:
    """Refuse JSON-schema keywords that fetch documents or run unbounded patterns."""
    if isinstance(schema, list):
        for i, item in enumerate(schema):
            _check_json_schema(b, (*key, i), item)
        return
    if not isinstance(schema, dict):
        return
    for k, v in schema.items():
        if k in _UNSAFE_SCHEMA_KEYS:
            raise b.error(
                "JSON-schema patterns run Python's re without a time bound",
                (*key, k),
                found=v,
                allowed="expect_column_values_to_match_regex on the field instead",
            )
        if k in _REF_KEYS and not (isinstance(v, str) and v.startswith("#")):
            raise b.error(
                "a JSON-schema reference outside the schema would be fetched",
                (*key, k),
                found=v,
                allowed="references inside the schema (#/...)",
            )
        _check_json_schema(b, (*key, k), v)


def _named_columns(type_name: str, kwargs: Mapping[str, Any]) -> list[tuple[str, str]]:
    if type_name in COLUMN_SET_TYPES:
        return []
    out: list[tuple[str, str]] = []
    for key in ("column", "column_A", "column_B"):
        if isinstance(kwargs.get(key), str):
            out.append((key, kwargs[key]))
    list_keys = ("column_list", *(k for k in READ_KEYS.get(type_name, ()) if k != "column"))
    for list_key in dict.fromkeys(list_keys):
        listed = kwargs.get(list_key)
        if isinstance(listed, list):
            out.extend((f"{list_key}[{i}]", c) for i, c in enumerate(listed) if isinstance(c, str))
    condition = kwargs.get("row_condition")
    if isinstance(condition, str) and condition:
        try:
            names = check_syntax(condition)
        except RowConditionError:
            names = set()
        out.extend(("row_condition", n) for n in sorted(names))
    return out


def _missing_column(  # noqa: PLR0917
    file: Path | str,
    line: int | None,
    key: str,
    name: str,
    columns: Collection[str],
    source: str,
) -> ConfigError:
    close = difflib.get_close_matches(name, list(columns), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ConfigError(
        f"no column {name!r} in {source}",
        file=file,
        line=line,
        key=key,
        found=name,
        allowed=hint + "one of " + ", ".join(sorted(columns)),
    )


def _kwargs_error(
    b: _Builder, at: Path_, type_name: str, kwargs: dict[str, Any], exc: Exception
) -> ConfigError:
    errors = getattr(exc, "errors", None)
    details: list[dict[str, Any]] = errors() if callable(errors) else []
    if not details:
        return b.error(
            f"GX rejects the arguments of {type_name}: {exc}", (*at, "kwargs"), found=kwargs
        )
    loc = tuple(details[0].get("loc", ()))
    field = str(loc[0]) if loc and loc[0] != "__root__" else None
    msgs = list(dict.fromkeys(str(d.get("msg")) for d in details if tuple(d.get("loc", ())) == loc))
    if field is None:
        return b.error(
            f"GX rejects the arguments of {type_name}: {'; '.join(msgs)}",
            (*at, "kwargs"),
            found=kwargs,
        )
    if field not in kwargs:
        return b.error(
            f"{type_name} needs the argument `{field}`",
            (*at, "kwargs"),
            found=sorted(kwargs),
            allowed=f"kwargs with `{field}`",
        )
    return b.error(
        f"GX rejects this value for {type_name}",
        (*at, "kwargs", field),
        found=kwargs[field],
        allowed=" or ".join(msgs),
    )


def _severity(b: _Builder, at: Path_, item: dict[str, Any], meta: dict[str, Any]) -> Severity:
    gx_severity = item.get("severity")
    if gx_severity is not None and gx_severity not in GX_SEVERITIES:
        raise b.error(
            "GX's own severity field holds a value GX does not know",
            (*at, "severity"),
            found=gx_severity,
            allowed=f"{', '.join(GX_SEVERITIES)} (sluice reads meta.severity: "
            f"{', '.join(SEVERITIES)})",
        )
    if "severity" not in meta:
        if gx_severity not in (None, "critical"):
            raise b.error(
                "GX severity is set but sluice reads meta.severity, which is missing",
                (*at, "severity"),
                found=gx_severity,
                allowed=f"meta.severity set to one of {', '.join(SEVERITIES)}",
            )
        return DEFAULT_SEVERITY
    value = meta["severity"]
    if value not in SEVERITIES:
        raise b.error(
            "unknown severity",
            (*at, "meta", "severity"),
            found=value,
            allowed=", ".join(SEVERITIES),
        )
    return cast(Severity, value)


def _duplicates(b: _Builder, at: Path_, type_name: str, meta: dict[str, Any]) -> DuplicatePolicy:
    if "duplicates" not in meta:
        return "keep_first"
    value = meta["duplicates"]
    if type_name not in UNIQUENESS_TYPES:
        raise b.error(
            "meta.duplicates applies only to uniqueness expectations",
            (*at, "meta", "duplicates"),
            found=type_name,
            allowed=", ".join(sorted(UNIQUENESS_TYPES)),
        )
    if value not in DUPLICATE_POLICIES:
        raise b.error(
            "unknown duplicate policy",
            (*at, "meta", "duplicates"),
            found=value,
            allowed=", ".join(DUPLICATE_POLICIES),
        )
    return cast(DuplicatePolicy, value)


def _key_text(key: Path_) -> str:
    out = ""
    for part in key:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _skip(s: str, i: int) -> int:
    m = _WS.match(s, i)
    return m.end() if m else i


class _Places:
    def __init__(self) -> None:
        self.positions: dict[Path_, int] = {}
        self.dup_keys: list[tuple[Path_, int]] = []


def _locate(text: str) -> _Places:
    """Character offsets of every key and array element of a JSON text (empty if it fails)."""
    places = _Places()
    try:
        _scan(text, 0, (), places)
    except (ValueError, IndexError, RecursionError):
        return _Places()
    return places


def _scan(s: str, i: int, path: Path_, places: _Places) -> int:
    i = _skip(s, i)
    places.positions.setdefault(path, i)
    if s[i] == "{":
        i = _skip(s, i + 1)
        if s[i] == "}":
            return i + 1
        while True:
            i = _skip(s, i)
            key, j = _DECODER.raw_decode(s, i)
            member = (*path, key)
            if member in places.positions:
                places.dup_keys.append(((*path, key), i))
            places.positions[member] = i
            j = _skip(s, j)
            if s[j] != ":":
                raise ValueError("expected ':'")
            i = _skip(s, _scan(s, j + 1, member, places))
            if s[i] == ",":
                i += 1
            elif s[i] == "}":
                return i + 1
            else:
                raise ValueError("expected ',' or '}'")
    if s[i] == "[":
        i = _skip(s, i + 1)
        if s[i] == "]":
            return i + 1
        n = 0
        while True:
            i = _skip(s, _scan(s, i, (*path, n), places))
            n += 1
            if s[i] == ",":
                i += 1
            elif s[i] == "]":
                return i + 1
            else:
                raise ValueError("expected ',' or ']'")
    return _DECODER.raw_decode(s, i)[1]


def _line(text: str, pos: int) -> int:
    """The 1-based line of ``text`` that offset ``pos`` lies on (line starts found once per
    text: counting from the start for every entry grew as the square of a suite's size)."""
    return bisect.bisect_right(_line_starts(text), pos)


@functools.lru_cache(maxsize=4)
def _line_starts(text: str) -> list[int]:
    return [0] + [m.end() for m in re.finditer("\n", text)]


def _nearest_line(text: str, positions: dict[Path_, int], key: Path_) -> int | None:
    for n in range(len(key), -1, -1):
        pos = positions.get(key[:n])
        if pos is not None:
            return _line(text, pos)
    return None
