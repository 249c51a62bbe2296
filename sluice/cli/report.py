"""``sluice report DATASET --partition P [--open]``: rebuild (and open) the report of a past run."""

from __future__ import annotations

import argparse
import webbrowser

from sluice.core.errors import SluiceError
from sluice.report.build import rebuild_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``report`` command's arguments to its sub-parser."""
    parser.add_argument("dataset", help="dataset name (datasets/<name>.yaml) or a spec file")
    parser.add_argument(
        "--partition",
        required=True,
        help="the partition of the run, YYYY-MM-DD, YYYY-MM or YYYY-MM-DDTHH",
    )
    parser.add_argument(
        "--open", action="store_true", help="open the report in the default web browser"
    )


def _check_manifest(dataset: str, partition: str) -> None:
    """A manifest that is there but unreadable or not a sluice manifest (truncated, edited) is
    a clear error naming it, before the report is rebuilt from it."""
    from sluice.config import find_spec
    from sluice.pipeline.idempotence import load_manifest, manifest_path, unverified_output

    loaded = find_spec(dataset)
    try:
        part = loaded.spec.partition.parse(partition)
    except ValueError:
        return  # rebuild_report names the partition's problem
    path = manifest_path(loaded, part)
    got = load_manifest(path)
    if isinstance(got, str) and path.exists():
        raise SluiceError(
            f"{loaded.name} {part}: {got}; a copy of every run's manifest is kept under "
            f"{path.parent.parent / '_manifests'}"
        )
    if not isinstance(got, str):
        # the data the report is built from must be the run's (report.html is what is rebuilt)
        outputs = {k: v for k, v in (got.dump().get("outputs") or {}).items() if k != "report"}
        changed = unverified_output(outputs)
        if changed is not None:
            raise SluiceError(
                f"{loaded.name} {part}: {changed}: the files were changed or removed outside "
                "sluice since its run; `sluice run --force` screens the partition again"
            )


def main(args: argparse.Namespace) -> int:
    """Rebuild the report from the run's outputs; print where it is. Returns the exit code."""
    _check_manifest(args.dataset, str(args.partition))
    rebuilt = rebuild_report(args.dataset, str(args.partition))
    r = rebuilt.report
    print(f"report: {rebuilt.path}")
    if rebuilt.matches_manifest is True:
        print("  identical to the report the run recorded in its manifest")
    elif rebuilt.matches_manifest is False:
        print(
            "  differs from the report the run recorded (the history before this partition or "
            "sluice changed since); the recorded report.html is left as it was"
        )
    print(
        f"  {len(r.alarms)} metric alarms, {len(r.drifted)} drifted columns, "
        f"{len(r.rules)} failed rules"
    )
    for f in r.alarms:
        print(f"  alarm: {f.scope} {f.name} {f.metric} = {f.value:.6g} ({f.reference})".rstrip())
    for d in r.drifted:
        print(f"  drift: {d.column} ({d.test} {d.statistic:.3g})")
    if args.open:
        webbrowser.open(rebuilt.path.resolve().as_uri())
    return 0
