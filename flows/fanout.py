"""One flow run per partition: a backfill running as a deployment starts a run of the
``screen-partition/on-demand`` deployment for each partition and waits for them all.

Each partition is then its own flow run, on its own worker slot, retryable from the UI; the work
queue's concurrency limit decides how many run at once. A backfill called in-process (the CLI,
the demo, notebooks) has no deployment, and runs the partitions as subflows instead.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.context import FlowRunContext
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound

SCREEN_DEPLOYMENT = "screen-partition/on-demand"
POLL_SECONDS = 2.0


@dataclass(frozen=True)
class ChildRun:
    """The final state of one partition's flow run."""

    partition: str
    flow_run_id: UUID
    ok: bool
    message: str
    seconds: float = 0.0


def in_deployment() -> bool:
    """Whether the current flow run was started from a deployment (by a worker)."""
    ctx = FlowRunContext.get()
    return bool(ctx and ctx.flow_run and ctx.flow_run.deployment_id)


def deployment_exists(name: str = SCREEN_DEPLOYMENT) -> bool:
    """Whether the Prefect API knows a deployment of this ``flow/deployment`` name."""
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(name)
        except ObjectNotFound:
            return False
    return True


def launch(
    partitions: Mapping[str, dt.date | str],
    parameters: dict[str, Any],
    *,
    deployment: str = SCREEN_DEPLOYMENT,
    run_name: str = "{partition}",
) -> dict[str, UUID]:
    """Schedule one run of ``deployment`` per partition, now; returns their ids by partition.

    ``parameters`` are shared; each run gets its own ``partition``. The runs are linked to the
    current flow run as its subflows, so the UI shows them under the backfill.
    """
    ids: dict[str, UUID] = {}
    for name, start in partitions.items():
        value = start if isinstance(start, str) else start.isoformat()
        run = run_deployment(
            deployment,
            parameters={**parameters, "partition": value},
            flow_run_name=run_name.format(partition=name),
            timeout=0,
            as_subflow=True,
        )
        if not isinstance(run, FlowRun):  # run_deployment is awaitable only in async code
            raise TypeError("launch() is for synchronous flows")
        ids[name] = run.id
    return ids


def wait(
    ids: Mapping[str, UUID],
    *,
    poll_seconds: float = POLL_SECONDS,
    on_final: Callable[[ChildRun], None] | None = None,
) -> list[ChildRun]:
    """Wait until every run is final; returns them in the order given.

    ``on_final`` is called with each run as soon as it is seen final, so a caller can log it.
    """
    pending = dict(ids)
    final: dict[str, ChildRun] = {}
    with get_client(sync_client=True) as client:
        while pending:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(pending.values())))
            )
            by_id = {r.id: r for r in runs}
            for name, run_id in list(pending.items()):
                run = by_id.get(run_id)
                state = run.state if run else None
                if state is None or not state.is_final():
                    continue
                message = state.message or state.name or str(state.type.value)
                seconds = run.total_run_time.total_seconds() if run else 0.0
                final[name] = ChildRun(name, run_id, state.is_completed(), message, seconds)
                del pending[name]
                if on_final is not None:
                    on_final(final[name])
            if pending:
                time.sleep(poll_seconds)
    return [final[name] for name in ids]
