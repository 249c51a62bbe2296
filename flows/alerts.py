"""Alerts as Prefect events: a partition that failed a critical check or quarantined too much.

:func:`judge` decides from a run summary alone (unit-tested with hand-fed numbers);
:func:`emit` sends the events. An automation (``sluice serve`` creates it) turns the alert events
into a webhook call. Every screened partition also emits ``sluice.partition.screened``, which
downstream deployments can trigger on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect.events import emit_event

SCREENED = "sluice.partition.screened"
FAILED = "sluice.partition.failed"
QUARANTINE_RATE_HIGH = "sluice.partition.quarantine_rate_high"
ALERT_EVENTS = (FAILED, QUARANTINE_RATE_HIGH)
TOP_REASONS = 5


@dataclass(frozen=True)
class Alert:
    """One alert: the event's name, a sentence for people, and the facts for machines."""

    event: str
    message: str
    payload: dict[str, Any] = field(default_factory=dict)


def quarantine_rate(counts: dict[str, Any]) -> float:
    """The share of a partition's rows that went to quarantine (0 for an empty partition)."""
    rows = int(counts.get("in", 0))
    return int(counts.get("quarantine", 0)) / rows if rows else 0.0


def judge(summary: dict[str, Any], max_quarantine_rate: float) -> list[Alert]:
    """The alerts a run summary calls for: a failed critical check, else a high quarantine rate.

    A partition that failed a critical check is quarantined whole, so its rate says nothing more.
    """
    name = f"{summary['dataset']} {summary['partition']}"
    counts = summary["counts"]
    rate = quarantine_rate(counts)
    facts = {
        "rows": counts["in"],
        "quarantined": counts["quarantine"],
        "quarantine_rate": round(rate, 6),
        "manifest": summary["manifest"],
    }
    if summary["status"] == "failed":
        critical = list(summary.get("critical", []))
        return [
            Alert(
                FAILED,
                f"{name}: critical checks failed ({', '.join(critical)}); "
                f"all {counts['in']} rows quarantined",
                {**facts, "critical": critical},
            )
        ]
    if rate > max_quarantine_rate:
        by_reason = sorted(
            counts.get("quarantined_by_reason", {}).items(), key=lambda kv: (-kv[1], kv[0])
        )
        return [
            Alert(
                QUARANTINE_RATE_HIGH,
                f"{name}: {rate:.2%} of {counts['in']} rows quarantined, "
                f"above the {max_quarantine_rate:.2%} limit",
                {
                    **facts,
                    "max_quarantine_rate": max_quarantine_rate,
                    "top_reasons": dict(by_reason[:TOP_REASONS]),
                },
            )
        ]
    return []


def partition_resource(dataset: str, partition: str) -> dict[str, str]:
    """The event resource of one partition; its id is stable across runs."""
    return {
        "prefect.resource.id": f"sluice.partition.{dataset}.{partition}",
        "prefect.resource.name": f"{dataset} {partition}",
        "sluice.dataset": dataset,
        "sluice.partition": partition,
    }


def dataset_resource(dataset: str) -> dict[str, str]:
    """The dataset, as a related resource of every partition event."""
    return {
        "prefect.resource.id": f"sluice.dataset.{dataset}",
        "prefect.resource.role": "dataset",
        "prefect.resource.name": dataset,
    }


def emit(summary: dict[str, Any], alerts: list[Alert]) -> list[str]:
    """Emit ``sluice.partition.screened`` and one event per alert; returns the events' names.

    Inside a flow run, Prefect relates each event to the run, its flow and its deployment.
    """
    dataset, partition = summary["dataset"], summary["partition"]
    resource = partition_resource(dataset, partition)
    related = [dataset_resource(dataset)]
    counts = summary["counts"]
    screened = {
        "status": summary["status"],
        "rows": counts["in"],
        "clean": counts["clean"],
        "quarantined": counts["quarantine"],
        "quarantine_rate": round(quarantine_rate(counts), 6),
        "manifest": summary["manifest"],
    }
    emit_event(SCREENED, resource=resource, related=related, payload=screened)
    for alert in alerts:
        payload = {"message": alert.message, **alert.payload}
        emit_event(alert.event, resource=resource, related=related, payload=payload)
    return [SCREENED, *(a.event for a in alerts)]
