"""The stages before the write: ingest, validate, screen.

Each reads its inputs from, and leaves its results in, the run's work folder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from detectors.screen import screen
from sluice.config import LoadedSpec
from sluice.core.failures import concat_failures
from sluice.core.files import make_folder
from sluice.ingest import ingest
from sluice.lineage import run_started
from sluice.pipeline.handoff import get, put
from sluice.pipeline.recovery import recover_for_run
from sluice.pipeline.reference import reference_rows
from sluice.pipeline.run import OWNER_NAME, Run, output_roots, run_owner, timed
from sluice.preflight import with_model_path
from sluice.screening import check_rows, rows_to_score, why_not_scored
from sluice.write import (
    partition_lock,
    write_json,
)


def _ingest(
    run: Run,
    inputs: Mapping[str, bytes] | None = None,
    *,
    bounded: Callable[[Run], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Read the partition's files; keep typed rows, raw text and parse failures.

    ``inputs`` (a replay's) are the files to read, path as recorded to bytes, instead of those
    the spec's source path lists. ``bounded`` ingests a bounded run's partition instead of
    :func:`sluice.pipeline.bounded_ingest.ingest_bounded` (a Dask run's split ingest).
    """
    run_started(run.loaded.name, run.run_id, run.partition)
    roots = output_roots(run.loaded)
    owner = {**run_owner(), "partition": run.partition.dirname}
    with partition_lock(roots["reports"], run.partition.dirname):
        recover_for_run(run, roots)
        make_folder(run.work)  # another partition's run may remove an empty .work meanwhile
        write_json(owner, run.file(OWNER_NAME))
    if inputs is None and run.bounded:
        if bounded is not None:
            return bounded(run)
        from sluice.pipeline.bounded_ingest import ingest_bounded

        return ingest_bounded(run)
    got = ingest(run.loaded, run.partition, None if inputs is None else list(inputs), inputs)
    put(run, "frame.parquet", got.frame)
    put(run, "raw.parquet", got.raw)
    put(run, "ingest_failures.parquet", got.failures)
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
    """Run the suite and the keys check; keep the per-row failures and every verdict."""
    if run.bounded:
        from sluice.pipeline.bounded_validate import validate_bounded

        return validate_bounded(run)
    spec = run.loaded.spec
    checked = check_rows(
        get(run, "frame.parquet"),
        get(run, "ingest_failures.parquet"),
        run.suite,
        engine=run.engine,
        keys=spec.keys,
        duplicates=spec.duplicates,
    )
    put(run, "validation_failures.parquet", checked.failures)
    return {
        "engine": run.engine,
        "verdicts": checked.verdicts,
        "critical_failed": checked.critical_failed,
        "failures": checked.failures.height,
        "keys": checked.keys,
    }


def _screen(run: Run, reference_from: LoadedSpec | None = None) -> dict[str, Any]:
    """Score the rows that passed validation with the dataset's detectors.

    ``reference_from`` (a replay's) is the spec whose committed partitions the reference
    window is read from, when not the run's own.
    """
    if run.bounded:
        from sluice.pipeline.bounded_screen import screen_bounded

        return screen_bounded(run, reference_from)
    frame = get(run, "frame.parquet")
    earlier = concat_failures(
        get(run, f) for f in ("ingest_failures.parquet", "validation_failures.parquet")
    )
    declared = list(run.loaded.spec.columns)
    passed = rows_to_score(frame, earlier, declared)
    why = why_not_scored(
        run.loaded.spec.detectors,
        critical_failed=run.facts("validate")["critical_failed"],
        missing_columns=run.facts("ingest")["missing_columns"],
    )
    if why is not None:
        put(run, "screen_failures.parquet", concat_failures([]))
        return {"skipped": why, "rows": passed.height, "models": []}
    have = set(frame.columns)
    present = [c for c in declared if c in have]
    reference, used = reference_rows(reference_from or run.loaded, run.partition, present)
    specs = [with_model_path(run.loaded, i, s) for i, s in enumerate(run.loaded.spec.detectors)]
    result = screen(passed, specs, reference=reference)
    put(run, "screen_failures.parquet", result.failures)
    put(run, "scores.parquet", result.scores)
    return {
        "rows": passed.height,
        "models": result.models,
        "failures": result.failures.height,
        "reference": used,
    }


stage_ingest = timed(_ingest, "ingest")


stage_validate = timed(_validate, "validate")


stage_screen = timed(_screen, "screen")
