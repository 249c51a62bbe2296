"""Alerts as Prefect events: a partition whose run failed or warned, or quarantined too much.

:func:`judge` decides from a run summary alone (unit-tested with hand-fed numbers);
:func:`emit` sends the events. An automation (``sluice serve`` creates it) turns the alert events
into a webhook call. A run that alarms against a named baseline (``monitor.baselines``) raises
``sluice.partition.baseline_drift`` (:func:`baseline_alerts`). Every screened partition also
emits ``sluice.partition.screened``, which downstream deployments can trigger on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect.events import emit_event

SCREENED = "sluice.partition.screened"
FAILED = "sluice.partition.failed"
WARNED = "sluice.partition.warned"
QUARANTINE_RATE_HIGH = "sluice.partition.quarantine_rate_high"
BASELINE_DRIFT = "sluice.partition.baseline_drift"
ALERT_EVENTS = (FAILED, WARNED, QUARANTINE_RATE_HIGH, BASELINE_DRIFT)
TOP_CAUSES = 5
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


def _causes(summary: dict[str, Any], level: str) -> list[str]:
    return [str(c["message"]) for c in summary.get("causes", []) if c.get("level") == level]


def judge(summary: dict[str, Any], max_quarantine_rate: float) -> list[Alert]:
    """The alerts a run summary calls for.

    A failed run raises ``sluice.partition.failed`` naming its causes (a failed critical check
    quarantines the partition whole, so its rate says nothing more); a warned run raises
    ``sluice.partition.warned``; a quarantine rate above ``max_quarantine_rate`` (the spec's
    ``policies.alerts.max_quarantine_rate`` unless the flow overrides it) raises
    ``sluice.partition.quarantine_rate_high`` unless the run failed.
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
    status = summary["status"]
    if status == "failed":
        critical = list(summary.get("critical", []))
        errors = _causes(summary, "error")
        if critical:
            what = (
                f"critical checks failed ({', '.join(critical)}); "
                f"all {counts['in']} rows quarantined"
            )
        else:
            what = "failed: " + "; ".join(errors[:TOP_CAUSES] or ["(no cause recorded)"])
        return [Alert(FAILED, f"{name}: {what}", {**facts, "critical": critical, "causes": errors})]
    out: list[Alert] = []
    if status == "warned":
        warnings = _causes(summary, "warn")
        out.append(
            Alert(
                WARNED,
                f"{name}: warned: " + "; ".join(warnings[:TOP_CAUSES] or ["(no cause recorded)"]),
                {**facts, "causes": warnings},
            )
        )
    if rate > max_quarantine_rate:
        by_reason = sorted(
            counts.get("quarantined_by_reason", {}).items(), key=lambda kv: (-kv[1], kv[0])
        )
        out.append(
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
        )
    return out


def baseline_alerts(summary: dict[str, Any], manifest: dict[str, Any]) -> list[Alert]:
    """``sluice.partition.baseline_drift`` for every named baseline the run alarms against
    (its drift share or classifier test crossed the spec's threshold, or it could not be
    compared with); an acknowledged drift raises none. Read from the manifest's findings."""
    name = f"{summary['dataset']} {summary['partition']}"
    out = []
    for b in (manifest.get("findings") or {}).get("baselines") or []:
        if b.get("status") not in ("alarm", "unavailable"):
            continue
        causes = [str(c) for c in b.get("causes") or []]
        out.append(
            Alert(
                BASELINE_DRIFT,
                f"{name}: drift against {b.get('what')}: " + "; ".join(causes),
                {
                    "baseline": b.get("baseline"),
                    "version": b.get("version"),
                    "status": b.get("status"),
                    "drift_share": b.get("drift_share"),
                    "drift_share_threshold": b.get("drift_share_threshold"),
                    "classifier_auc": b.get("classifier_auc"),
                    "drifted": b.get("drifted"),
                    "reference": b.get("reference"),
                    "causes": causes,
                    "manifest": summary["manifest"],
                },
            )
        )
    return out


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
        "causes": [str(c.get("message")) for c in summary.get("causes", [])],
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
