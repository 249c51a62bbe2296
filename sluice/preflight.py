"""Check a run's whole configuration before any data moves, and before Prefect is imported.

:func:`preflight` checks, cheapest first, the dataset spec, the partition value, the source's
storage protocol, the output roots, the suite's expectation types and argument names (from a
committed catalog, without GX), the detectors, and then the whole suite with GX. ``Run.prepare``
(and so every flow) calls it, and the CLI calls it before it imports Prefect, so a typo is
answered in seconds. Nothing here imports Prefect or opens a connection: a remote source is
checked only for the package its protocol needs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import fsspec
import fsspec.core
from fsspec.registry import known_implementations

from detectors.spec import DetectorSpec
from expectations.results import Suite
from expectations.sluice_types import refuse_sluice_types
from expectations.suite import check_names, load_suite, partition_parameters
from sluice.config import TABLE_SIDES, LoadedSpec, Partition, find_spec
from sluice.core.errors import ConfigError
from sluice.core.frame import EngineChoice

PROTOCOL_EXTRAS: dict[str, tuple[str, str]] = {
    "s3": ("s3", "s3fs"),
    "s3a": ("s3", "s3fs"),
    "gs": ("gcs", "gcsfs"),
    "gcs": ("gcs", "gcsfs"),
    "az": ("azure", "adlfs"),
    "abfs": ("azure", "adlfs"),
    "abfss": ("azure", "adlfs"),
    "adl": ("azure", "adlfs"),
    "http": ("http", "aiohttp"),
    "https": ("http", "aiohttp"),
}
"""Storage protocols sluice has an extra for: protocol -> (extra, the package it installs)."""

LOCAL_PROTOCOLS = frozenset({"file", "local"})


class MissingDependency(ConfigError):
    """The configuration needs an optional package that is not installed (exit code 2)."""


@dataclass(frozen=True)
class Checked:
    """What preflight loaded: the spec, its suite and the partition value parsed."""

    loaded: LoadedSpec
    suite: Suite
    partition: Partition


def protocols(url: str) -> list[str]:
    """The storage protocols of a path or URL, outermost first (``[]`` for a local path).

    Chained URLs (``simplecache::s3://bucket/key``) name one protocol per link.
    """
    found: list[str] = []
    for link in url.split("::"):
        protocol, _ = fsspec.core.split_protocol(link)
        if protocol is not None and protocol not in LOCAL_PROTOCOLS:
            found.append(protocol)
    return found


def install_hint(protocol: str, missing: str | None) -> tuple[str, str]:
    """The package a protocol needs and how to install it (the sluice extra when there is one)."""
    if protocol in PROTOCOL_EXTRAS:
        extra, package = PROTOCOL_EXTRAS[protocol]
        return package, f"pip install 'sluice[{extra}]'"
    package = missing or "the package that provides it"
    return package, f"pip install {missing}" if missing else "see fsspec's list of protocols"


def check_protocols(url: str, *, file: object, key: str) -> None:
    """Refuse a path whose storage protocol is unknown or needs a package not installed.

    Only imports the filesystem's class; no filesystem is made and nothing is contacted.
    """
    for protocol in protocols(url):
        try:
            fsspec.get_filesystem_class(protocol)
        except ImportError as exc:
            package, how = install_hint(protocol, exc.name)
            raise MissingDependency(
                f"reading {protocol}:// paths needs {package}, which is not installed ({how})",
                file=str(file),
                key=key,
                found=url,
            ) from None
        except ValueError:
            raise ConfigError(
                f"unknown storage protocol {protocol!r}",
                file=str(file),
                key=key,
                found=url,
                allowed="a local path, or one of "
                + ", ".join(sorted({*known_implementations, *PROTOCOL_EXTRAS})),
            ) from None


def check_source(loaded: LoadedSpec) -> None:
    """Refuse a source path that cannot be read with what is installed."""
    path = loaded.resolve(loaded.spec.source.path, key="source.path")
    check_protocols(path, file=loaded.path, key="source.path")


DELTA_PROTOCOLS = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "azure"})
"""Object-store schemes delta-rs writes Delta tables to."""


def check_outputs(loaded: LoadedSpec) -> None:
    """Resolve the output roots (each refuses what it cannot be); with ``outputs.format: delta``
    refuse a table URI whose scheme delta-rs cannot write."""
    if not loaded.delta:
        for side in ("clean", "quarantine", "reports"):
            loaded.output_root(side)
        return
    loaded.output_root("reports")
    loaded.storage_options()
    for side in TABLE_SIDES:
        uri = loaded.table_uri(side)
        for protocol in protocols(uri):
            if protocol not in DELTA_PROTOCOLS:
                raise ConfigError(
                    f"outputs.format delta cannot write a table to {protocol}://",
                    file=str(loaded.path),
                    key=f"outputs.{side}",
                    found=uri,
                    allowed="a local path or one of "
                    + ", ".join(f"{p}://" for p in sorted(DELTA_PROTOCOLS)),
                )


def check_detectors(loaded: LoadedSpec) -> None:
    """Refuse detectors that cannot run on the spec's schema, naming the spec file."""
    from detectors.screen import check_specs
    from sluice.ingest import polars_dtype

    schema = {c: polars_dtype(s) for c, s in loaded.spec.columns.items()}
    specs = [with_model_path(loaded, i, d) for i, d in enumerate(loaded.spec.detectors)]
    try:
        check_specs(specs, schema)
    except ConfigError as exc:
        raise ConfigError(
            exc.problem, file=loaded.path, key=exc.key, found=exc.found, allowed=exc.allowed
        ) from None


def with_model_path(loaded: LoadedSpec, index: int, spec: DetectorSpec) -> DetectorSpec:
    """The spec with its saved model's path made absolute from the spec file's folder."""
    if spec.model is None:
        return spec
    return spec.model_copy(
        update={"model": loaded.resolve(spec.model, key=f"detectors[{index}].model")}
    )


def preflight(
    dataset: str,
    partition: str | dt.date,
    *,
    check_detectors_too: bool = True,
    engine: EngineChoice | None = None,
) -> Checked:
    """Load and check every piece of a run's configuration; each problem is a ConfigError.

    ``engine`` is the run's choice when it overrides the spec's ``validation.engine``: a suite
    using sluice's own types cannot run on GX, and is refused here, before any data moves.
    """
    loaded = find_spec(dataset)
    try:
        part = loaded.spec.partition.parse(partition)
    except ValueError as exc:
        raise ConfigError(
            str(exc), file=loaded.path, key="partition", found=str(partition)
        ) from None
    check_source(loaded)
    check_outputs(loaded)
    check_names(loaded.suite_path)
    if check_detectors_too:
        check_detectors(loaded)
    suite = load_suite(
        loaded.suite_path,
        columns=list(loaded.spec.columns),
        parameters=partition_parameters(part.start, part.next().start),
    )
    if (engine or loaded.spec.validation.engine) == "gx":
        refuse_sluice_types(suite.entries, suite.path)
    return Checked(loaded, suite, part)
