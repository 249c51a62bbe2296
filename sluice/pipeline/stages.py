"""The stages before the write: ingest, validate, screen.

Each reads its inputs from, and leaves its results in, the run's work folder.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import polars as pl

from detectors.screen import screen
from expectations.engine import validate
from expectations.failures import failures_from_outcomes
from expectations.suite import UNIQUENESS_TYPES
from sluice.core.failures import concat_failures
from sluice.core.frame import ROW_ID
from sluice.decide import (
    drop_shadowed,
    key_duplicates,
    trace_duplicates,
)
from sluice.ingest import ingest
from sluice.pipeline.recovery import recover_for_run
from sluice.pipeline.reference import reference_rows
from sluice.pipeline.run import OWNER_NAME, Run, output_roots, timed
from sluice.preflight import with_model_path
from sluice.verdict import (
    verdict_state,
    why_not_run,
)
from sluice.write import (
    partition_lock,
    write_json,
    write_parquet,
)


def _ingest(run: Run) -> dict[str, Any]:
    """Read the partition's files; keep typed rows, raw text and parse failures."""
    roots = output_roots(run.loaded)
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "partition": run.partition.dirname}
    with partition_lock(roots["reports"], run.partition.dirname):
        recover_for_run(run, roots)
        run.work.mkdir(parents=True, exist_ok=True)
        write_json(owner, run.file(OWNER_NAME))
    got = ingest(run.loaded, run.partition)
    write_parquet(got.frame, run.file("frame.parquet"))
    write_parquet(got.raw, run.file("raw.parquet"))
    write_parquet(got.failures, run.file("ingest_failures.parquet"))
    return {
        "rows": got.frame.height,
        "inputs": [f.as_dict() for f in got.files],
        "missing_columns": list(got.missing_columns),
        "extra_columns": list(got.extra_columns),
        "aliases": got.aliases_used,
        "retyped_columns": got.retyped_columns,
        "failures": got.failures.height,
    }


def _validate(run: Run) -> dict[str, Any]:
    """Run the suite; keep the per-row failures and the verdict of every expectation."""
    frame = pl.read_parquet(run.file("frame.parquet"))
    data = frame.drop("_source_file", "_source_row")
    outcomes = validate(data.drop(ROW_ID), run.suite, run.engine)
    result = failures_from_outcomes(data, outcomes)
    for v in result.verdicts:
        v.setdefault("state", verdict_state(v))
        if v["state"] == "could_not_run":
            v.setdefault("why", why_not_run(v))
    keys, by_suite = _key_check(run)
    key_failures = (
        key_duplicates(frame, keys, run.loaded.spec.duplicates)
        if keys and by_suite is None
        else None
    )
    found = concat_failures([result.failures, *([] if key_failures is None else [key_failures])])
    ingest_failures = pl.read_parquet(run.file("ingest_failures.parquet"))
    failures = trace_duplicates(drop_shadowed(found, ingest_failures), frame)
    write_parquet(failures, run.file("validation_failures.parquet"))
    return {
        "engine": run.engine,
        "verdicts": result.verdicts,
        "critical_failed": result.critical_failed,
        "failures": failures.height,
        "keys": {
            "columns": keys,
            "duplicates": run.loaded.spec.duplicates,
            "enforced_by": (
                "none"
                if not keys
                else f"suite entry {by_suite}"
                if by_suite is not None
                else "keys check"
            ),
            "duplicate_rows": 0 if key_failures is None else key_failures.height,
        },
    }


def _key_check(run: Run) -> tuple[list[str], int | None]:
    """The dataset's key columns, and the index of a suite entry that already enforces them.

    A uniqueness entry over exactly the key columns, quarantining (severity error or
    critical), without a row condition and with the spec's duplicate policy does the same job:
    the keys check then adds nothing, so a duplicate row carries one reason, not two.
    """
    keys = list(run.loaded.spec.keys)
    for e in run.suite.entries:
        if (
            e.type in UNIQUENESS_TYPES
            and set(e.columns) == set(keys)
            and e.severity in ("error", "critical")
            and not e.kwargs.get("row_condition")
            and e.duplicates == run.loaded.spec.duplicates
        ):
            return keys, e.index
    return keys, None


def _screen(run: Run) -> dict[str, Any]:
    """Score the rows that passed validation with the dataset's detectors."""
    frame = pl.read_parquet(run.file("frame.parquet"))
    earlier = concat_failures(
        pl.read_parquet(run.file(f))
        for f in ("ingest_failures.parquet", "validation_failures.parquet")
    )
    bad = earlier.filter(pl.col("severity").is_in(["error", "critical"])).select(ROW_ID).unique()
    declared = [c for c in run.loaded.spec.columns if c in frame.columns]
    passed = frame.join(bad, on=ROW_ID, how="anti", maintain_order="left").select(ROW_ID, *declared)
    vfacts = run.facts("validate")
    ifacts = run.facts("ingest")
    if vfacts["critical_failed"] or ifacts["missing_columns"] or not run.loaded.spec.detectors:
        why = "a critical check failed" if run.loaded.spec.detectors else "no detectors declared"
        write_parquet(concat_failures([]), run.file("screen_failures.parquet"))
        return {"skipped": why, "rows": passed.height, "models": []}
    reference, used = reference_rows(run.loaded, run.partition, declared)
    specs = [with_model_path(run.loaded, i, s) for i, s in enumerate(run.loaded.spec.detectors)]
    result = screen(passed, specs, reference=reference)
    write_parquet(result.failures, run.file("screen_failures.parquet"))
    write_parquet(result.scores, run.file("scores.parquet"))
    return {
        "rows": passed.height,
        "models": result.models,
        "failures": result.failures.height,
        "reference": used,
    }


stage_ingest = timed(_ingest, "ingest")


stage_validate = timed(_validate, "validate")


stage_screen = timed(_screen, "screen")
