"""Prefect flow: apply a review's decisions to a partition (``sluice release`` from the UI).

The flow only calls :func:`sluice.pipeline.release.release_partition`; its typed parameters
(dataset, partition, decision file, who decided) render as a form in the UI, and it publishes a
markdown artifact summarising the release.
"""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import Field

from flows.parameters import DatasetName, PartitionValue
from sluice.pipeline.release import release_partition
from sluice.report.artifacts import artifact_key

DecisionFile = Annotated[
    str,
    Field(
        min_length=1,
        pattern=r"(?i)\.(csv|parquet)$",
        description="the filled-in review file (sluice review), .csv or .parquet",
    ),
]
Reviewer = Annotated[str, Field(min_length=1, pattern=r"\S", description="who decided")]


def release_markdown(summary: dict[str, Any], manifest: dict[str, Any] | None) -> str:
    """The artifact's text: what the release moved, what stayed, and where its records are."""
    head = f"# {summary['dataset']} {summary['partition']}: release"
    if summary["applied_already"]:
        return f"{head}\n\nThese decisions are applied already (commit `{summary['run_id']}`)."
    c = summary["counts"]
    lines = [
        head,
        "",
        "| outcome | rows |",
        "|---|---:|",
        f"| released (held wrongly) | {summary['released']} |",
        f"| fixed and released | {summary['fixed']} |",
        f"| fixed, still failing | {summary['still_failing']} |",
        f"| rejected | {summary['rejected']} |",
        "",
        f"Now {c['clean']} clean and {c['quarantine']} quarantined of {c['in']} rows "
        f"(conservation {'holds' if summary['conservation'] else 'DOES NOT HOLD'}); "
        f"status {summary['status']}.",
    ]
    overturned = ((manifest or {}).get("release") or {}).get("overturned_flags") or {}
    if overturned:
        lines += ["", "| detector | flags overturned |", "|---|---:|"]
        lines += [f"| {d} | {n} |" for d, n in sorted(overturned.items())]
    lines += ["", f"- manifest: `{summary['manifest']}`", f"- audit log: `{summary['audit_log']}`"]
    return "\n".join(lines) + "\n"


@flow(name="release-partition")
def release_decisions(
    dataset: DatasetName,
    partition: PartitionValue,
    decisions: DecisionFile,
    by: Reviewer,
) -> dict[str, Any]:
    """Apply a decision file to a committed partition as a new commit.

    Args:
        dataset: The dataset: one of the specs in datasets/.
        partition: The partition the review file was made from.
        decisions: The filled-in review file, on the worker's file system.
        by: Who took the decisions (kept in the audit log and on released rows).
    """
    import json
    from pathlib import Path

    summary = release_partition(dataset, partition, Path(decisions), by)
    manifest = json.loads(Path(summary["manifest"]).read_text(encoding="utf-8"))
    create_markdown_artifact(
        release_markdown(summary, manifest),
        key=artifact_key(summary["dataset"], "release"),
        description=f"release of {summary['dataset']} {summary['partition']}",
    )
    get_run_logger().info(
        "%s %s: released %s, fixed %s, still failing %s, rejected %s",
        summary["dataset"],
        summary["partition"],
        summary["released"],
        summary["fixed"],
        summary["still_failing"],
        summary["rejected"],
    )
    return summary
