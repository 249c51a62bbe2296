"""OpenLineage events for a run (optional, off by default).

With ``SLUICE_OPENLINEAGE_URL`` set (the base URL of an OpenLineage HTTP endpoint; the path is
``SLUICE_OPENLINEAGE_ENDPOINT``, default ``api/v1/lineage``), each run of a partition emits a
START event when ingest begins and a COMPLETE event when its commit is done, and each release
of reviewed rows a START and COMPLETE of its own job. A run whose outcome is a failure sends FAIL
instead, with the ``errorMessage`` run facet: one that stops with an error before its commit
(:func:`run_stopped`, called by every orchestrator: in process, backfill workers, Prefect flow
runs) or one committed with the verdict ``failed`` (:func:`run_completed`). The stages emit the
rest, so runs in-process and under Prefect alike do.

A COMPLETE event names the input files (``file`` namespace, absolute path; the URL's scheme and
host for remote files), each with the ``dataQualityAssertions`` facet (every expectation of the
suite over the partition, each detector and the keys check, with its verdict) and the
``dataQualityMetrics`` input facet (rows, bytes); the clean and quarantine outputs carry
``outputStatistics`` (rows, bytes) and ``dataQualityMetrics`` (rows and each declared column's
null count). Events use the ``openlineage-python`` client (``pip install 'sluice[lineage]'``).
An event that cannot be sent is logged and never fails the run.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import polars as pl

from sluice.config import Partition
from sluice.core.errors import SluiceError
from sluice.core.versions import version

URL_ENV = "SLUICE_OPENLINEAGE_URL"
ENDPOINT_ENV = "SLUICE_OPENLINEAGE_ENDPOINT"
NAMESPACE_ENV = "SLUICE_OPENLINEAGE_NAMESPACE"
DEFAULT_NAMESPACE = "sluice"
PRODUCER = "https://github.com/sluice-data/sluice"
RUN_NAMESPACE = uuid.UUID("6f1c1f4e-5b0a-4d1e-9a57-1d0c8f5e2a11")
log = logging.getLogger("sluice.lineage")


def span(partition: Partition) -> tuple[dt.date, dt.date]:
    """A partition's nominal time: its start and the start of the next one (a day, a month or
    an hour)."""
    start = partition.start
    if partition.kind != "month":
        return start, partition.next().start
    nxt = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, nxt


def enabled() -> bool:
    """Whether events are to be sent (``SLUICE_OPENLINEAGE_URL`` is set)."""
    return bool(os.environ.get(URL_ENV, "").strip())


def run_uuid(dataset: str, run_id: str) -> str:
    """The OpenLineage run id of a sluice run: a UUID derived from the dataset and run id, so
    the START and COMPLETE events of one run agree wherever they are sent from."""
    return str(uuid.uuid5(RUN_NAMESPACE, f"{dataset}/{run_id}"))


def dataset_ref(path: str) -> tuple[str, str]:
    """OpenLineage's (namespace, name) of a file: ``file`` and its absolute path locally, the
    scheme and host of a URL, and its path."""
    parts = urlsplit(path)
    if parts.scheme and parts.scheme != "file" and "://" in path:
        return f"{parts.scheme}://{parts.netloc}", parts.path or "/"
    local = parts.path if parts.scheme == "file" else path
    return "file", os.path.abspath(local)


class LineageUnavailable(SluiceError):
    """Lineage is on, but the OpenLineage client is not installed."""


@dataclass(frozen=True)
class _Client:
    """The parts of ``openlineage-python`` sluice uses (imported only when lineage is on)."""

    events: Any
    facets: Any
    http: Any
    OpenLineageClient: Any


def _client() -> _Client:
    try:
        import openlineage.client.event_v2 as events
        import openlineage.client.facet_v2 as facets
        from openlineage.client import OpenLineageClient
        from openlineage.client.transport import http
    except ImportError:
        raise LineageUnavailable(
            f"{URL_ENV} is set, but the OpenLineage client is not installed: "
            "pip install 'sluice[lineage]'"
        ) from None
    return _Client(events, facets, http, OpenLineageClient)


def _emit(event: Any) -> None:
    ol = _client()
    config = ol.http.HttpConfig(
        url=os.environ[URL_ENV].strip(),
        endpoint=os.environ.get(ENDPOINT_ENV, "").strip() or "api/v1/lineage",
        timeout=5.0,
        retry={"total": 1, "connect": 1, "read": 1, "backoff_factor": 0.1},
    )
    ol.OpenLineageClient(transport=ol.http.HttpTransport(config)).emit(event)


def send(event_type: str, job: str, run: str, **parts: Any) -> None:
    """Build and send one run event; log, never raise, when it cannot be sent."""
    if not enabled():
        return
    try:
        _emit(_event(event_type, job, run, **parts))
    except Exception as exc:  # lineage is an observer: it never fails the run
        log.warning(
            "OpenLineage %s event of %s not sent: %s: %s", event_type, job, type(exc).__name__, exc
        )


def _event(
    event_type: str,
    job: str,
    run: str,
    *,
    inputs: Sequence[Any] = (),
    outputs: Sequence[Any] = (),
    nominal: tuple[dt.date, dt.date] | None = None,
    error: str | None = None,
) -> Any:
    ol = _client()
    ev, fc = ol.events, ol.facets

    facets: dict[str, Any] = {
        "processing_engine": fc.processing_engine_run.ProcessingEngineRunFacet(
            version=version(),
            name="sluice",
            openlineageAdapterVersion=version("openlineage-python"),
        )
    }
    if nominal is not None:
        facets["nominalTime"] = fc.nominal_time_run.NominalTimeRunFacet(
            nominalStartTime=f"{nominal[0].isoformat()}T00:00:00Z",
            nominalEndTime=f"{nominal[1].isoformat()}T00:00:00Z",
        )
    if error is not None:
        facets["errorMessage"] = fc.error_message_run.ErrorMessageRunFacet(
            message=error, programmingLanguage="python"
        )
    namespace = os.environ.get(NAMESPACE_ENV, "").strip() or DEFAULT_NAMESPACE
    return ev.RunEvent(
        eventType=getattr(ev.RunState, event_type),
        eventTime=dt.datetime.now(dt.UTC).isoformat(),
        run=ev.Run(runId=run, facets=facets),
        job=ev.Job(
            namespace=namespace,
            name=job,
            facets={
                "jobType": fc.job_type_job.JobTypeJobFacet(
                    processingType="BATCH", integration="SLUICE", jobType="TASK"
                )
            },
        ),
        inputs=list(inputs),
        outputs=list(outputs),
        producer=PRODUCER,
    )


def _assertions(manifest: Mapping[str, Any]) -> list[Any]:
    dqa = _client().facets.data_quality_assertions_dataset

    out = []
    for v in manifest["validation"]["verdicts"]:
        column = str(v["reason"]).split("|", 1)[0]
        out.append(
            dqa.Assertion(
                assertion=str(v["type"]),
                success=v.get("state") == "passed",
                column=None if column == "_table" else column,
                severity=str(v["severity"]),
                name=str(v["reason"]),
                actual=None if v.get("failing_rows") is None else str(v["failing_rows"]),
            )
        )
    keys = manifest["validation"].get("keys") or {}
    if keys.get("columns") and keys.get("enforced_by") == "keys check":
        out.append(
            dqa.Assertion(
                assertion="key_duplicate",
                success=not keys.get("duplicate_rows"),
                column=",".join(keys["columns"]),
                severity="error",
                name=f"{','.join(keys['columns'])}|key_duplicate",
                actual=str(keys.get("duplicate_rows", 0)),
            )
        )
    flagged = {
        **manifest["counts"]["quarantined_by_reason"],
        **manifest["counts"].get("warnings_by_reason", {}),
    }
    for d in manifest.get("detectors") or []:
        if d.get("skipped"):
            continue
        reason = f"outlier|{d['name']}"
        out.append(
            dqa.Assertion(
                assertion=f"outlier|{d['detector']}",
                success=not flagged.get(reason),
                column=",".join(str(f.get("name", f)) for f in d.get("features", [])) or None,
                severity=str(d["severity"]),
                name=reason,
                actual=str(flagged.get(reason, 0)),
            )
        )
    return out


def _null_counts(frame: pl.LazyFrame, columns: Sequence[str]) -> tuple[int, dict[str, int]]:
    present = [c for c in columns if c in frame.collect_schema().names()]
    counts = frame.select(pl.len().alias("__rows"), *(pl.col(c).null_count() for c in present))
    row = counts.collect().row(0, named=True)
    return int(row.pop("__rows")), {k: int(v) for k, v in row.items()}


@dataclass(frozen=True)
class _Output:
    """One side's output as lineage names it: where, its rows' null counts, bytes and files."""

    namespace: str
    name: str
    rows: int
    nulls: dict[str, int]
    size: int | None
    files: int | None


def _output(
    manifest: Mapping[str, Any],
    side: str,
    columns: Sequence[str],
    storage_options: Mapping[str, str] | None,
) -> _Output:
    table = (manifest.get("tables") or {}).get(side)
    if table is not None:
        from sluice.storage import open_output

        frame = open_output(manifest, side, storage_options=storage_options).read()
        ns, name = dataset_ref(str(table["uri"]))
        rows, nulls = _null_counts(frame.lazy(), columns)
        return _Output(ns, name, rows, nulls, None, None)
    entry = manifest["outputs"][side]
    ns, name = dataset_ref(os.path.dirname(entry["path"]))
    rows, nulls = _null_counts(pl.scan_parquet(entry["path"]), columns)
    return _Output(ns, name, rows, nulls, int(entry["bytes"]), 1)


def completed_parts(
    manifest: Mapping[str, Any],
    columns: Sequence[str],
    storage_options: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The inputs and outputs of a committed run's COMPLETE (or FAIL) event, from its manifest:
    Parquet outputs by their folder, Delta outputs by their table's URI."""
    ol = _client()
    fc = ol.facets
    data_quality_assertions_dataset = fc.data_quality_assertions_dataset
    data_quality_metrics_dataset = fc.data_quality_metrics_dataset
    dqm_in = fc.data_quality_metrics_input_dataset
    out_stats = fc.output_statistics_output_dataset

    assertions = data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
        assertions=_assertions(manifest)
    )
    inputs = []
    for f in manifest["inputs"]:
        ns, name = dataset_ref(f["path"])
        inputs.append(
            ol.events.InputDataset(
                namespace=ns,
                name=name,
                inputFacets={
                    "dataQualityAssertions": assertions,
                    "dataQualityMetrics": dqm_in.DataQualityMetricsInputDatasetFacet(
                        columnMetrics={}, rowCount=f["rows"], bytes=f["size"], fileCount=1
                    ),
                },
            )
        )
    outputs = []
    for side in ("clean", "quarantine"):
        out = _output(manifest, side, columns, storage_options)
        metrics = data_quality_metrics_dataset.DataQualityMetricsDatasetFacet(
            columnMetrics={
                c: data_quality_metrics_dataset.ColumnMetrics(nullCount=n, count=float(out.rows))
                for c, n in out.nulls.items()
            },
            rowCount=out.rows,
            bytes=out.size,
            fileCount=out.files,
        )
        outputs.append(
            ol.events.OutputDataset(
                namespace=out.namespace,
                name=out.name,
                facets={"dataQualityMetrics": metrics},
                outputFacets={
                    "outputStatistics": out_stats.OutputStatisticsOutputDatasetFacet(
                        rowCount=out.rows, size=out.size, fileCount=out.files
                    )
                },
            )
        )
    return {"inputs": inputs, "outputs": outputs}


def failed_verdict(manifest: Mapping[str, Any]) -> str | None:
    """Why a committed run failed (its verdict is ``failed``), in words; None otherwise."""
    if manifest.get("status") != "failed":
        return None
    name = f"{manifest['dataset']} {manifest['partition']['value']}"
    critical = list(manifest.get("critical") or [])
    if critical:
        return (
            f"{name}: critical checks failed ({', '.join(critical)}); the partition is quarantined"
        )
    causes = (manifest.get("verdict") or {}).get("causes") or []
    errors = [str(c.get("message")) for c in causes if c.get("level") == "error"]
    return f"{name}: failed: {'; '.join(errors) or 'the verdict is failed'}"


def run_started(dataset: str, run_id: str, partition: Partition, job: str = "screen") -> None:
    """Send the START event of a run (when lineage is on)."""
    send("START", f"{dataset}.{job}", run_uuid(dataset, run_id), nominal=span(partition))


def run_completed(
    manifest: Mapping[str, Any],
    columns: Sequence[str],
    partition: Partition,
    job: str = "screen",
    *,
    storage_options: Mapping[str, str] | None = None,
) -> None:
    """Send the event of a committed run, from its manifest (when lineage is on): COMPLETE,
    or FAIL with the ``errorMessage`` run facet when its verdict is ``failed`` (the outputs
    are committed all the same, so the event names them)."""
    if not enabled():
        return
    dataset, run_id = str(manifest["dataset"]), str(manifest["run_id"])
    error = failed_verdict(manifest)
    kind = "COMPLETE" if error is None else "FAIL"
    try:
        parts = completed_parts(manifest, columns, storage_options)
    except Exception as exc:  # lineage is an observer: it never fails the run
        log.warning("OpenLineage %s event of %s not built: %s", kind, dataset, exc)
        parts = {}
    send(
        kind,
        f"{dataset}.{job}",
        run_uuid(dataset, run_id),
        nominal=span(partition),
        error=error,
        **parts,
    )


def run_failed(
    dataset: str, run_id: str, partition: Partition, error: str, job: str = "screen"
) -> None:
    """Send the FAIL event of a run that stopped with an error (when lineage is on)."""
    send(
        "FAIL", f"{dataset}.{job}", run_uuid(dataset, run_id), nominal=span(partition), error=error
    )


def run_stopped(
    dataset: str, run_id: str, partition: Partition, exc: BaseException, job: str = "screen"
) -> None:
    """Send the FAIL event of a run that stopped with ``exc`` before its commit."""
    run_failed(dataset, run_id, partition, f"{type(exc).__name__}: {exc}", job)
