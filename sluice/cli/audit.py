"""``sluice replay``, ``sluice audit`` and ``sluice retention``: the commands of docs/audit.md.

Exit codes: ``replay`` 0 when the replayed clean, quarantine, failures and scores files are
byte-identical to the recorded ones, 1 when anything differs, 2 when the run cannot be replayed
(an input gone and not archived, changed without ``--allow-changed-inputs``, the spec or suite
not kept); ``audit`` 0 when the row is found, 2 when not; ``retention`` 0 when everything
expired was deleted (or listed), 1 when ``--apply`` had to leave something (a busy partition).
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from sluice.core.errors import EXIT_FAILED, EXIT_OK, SluiceError

MAX_ROW_ID = (1 << 64) - 1


def _row_id(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_ROW_ID:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a _row_id (allowed: a whole number from 0 to {MAX_ROW_ID})"
        )
    return value


def _record(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a record number (allowed: 0 or more; 0 is the first record "
            "after the header)"
        )
    return value


def _instant(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date or time (allowed: YYYY-MM-DD or an ISO 8601 time)"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def add_replay_arguments(p: argparse.ArgumentParser) -> None:
    """The ``sluice replay`` options."""
    p.add_argument("manifest", type=Path, help="a manifest.json, or a kept copy in _manifests/")
    p.add_argument(
        "--out",
        type=Path,
        help="scratch folder for the replayed outputs, kept (empty or new; default: a "
        "temporary folder, removed afterwards)",
    )
    p.add_argument(
        "--allow-changed-inputs",
        action="store_true",
        help="replay an input whose bytes changed since the run (no archived copy) and show "
        "how the outputs differ; without it such a replay is refused (exit 2)",
    )


def add_audit_arguments(p: argparse.ArgumentParser) -> None:
    """The ``sluice audit`` options."""
    p.add_argument("dataset", help="dataset name (datasets/<name>.yaml) or a spec file")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--row-id", type=_row_id, help="the row's _row_id")
    which.add_argument(
        "--source-file", help="the row's source file, as the manifest's inputs[].path records it"
    )
    p.add_argument("--source-row", type=_record, help="with --source-file: 0-based record number")


def add_retention_arguments(p: argparse.ArgumentParser) -> None:
    """The ``sluice retention`` options."""
    p.add_argument("dataset", help="dataset name (datasets/<name>.yaml) or a spec file")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--dry-run", action="store_true", help="list what has expired; delete nothing"
    )
    mode.add_argument("--apply", action="store_true", help="delete what has expired, and log it")
    p.add_argument(
        "--as-of",
        type=_instant,
        help="with --dry-run: judge ages as of this date instead of now (to plan ahead)",
    )


def _size(n: int | None) -> str:
    return "" if n is None else f"{n} rows"


def replay_main(args: argparse.Namespace) -> int:
    """Replay a manifest's run and print the comparison; 0 identical, 1 different."""
    from sluice.pipeline.replay import replay

    result = replay(args.manifest, out=args.out, allow_changed_inputs=args.allow_changed_inputs)
    args.document = result.as_dict()
    verdict = "identical" if result.identical else "DIFFERENT"
    print(f"replay of {result.dataset} {result.partition} (run {result.run_id}): {verdict}")
    for u in result.inputs:
        print(f"  input {u.path}: from the {u.source}, sha256 {u.sha256}")
    for t in result.tables:
        if t.identical:
            print(f"  {t.table:<10}  identical (sha256 {t.recorded_sha256})")
            continue
        print(
            f"  {t.table:<10}  DIFFERENT: {t.only_recorded} rows only in the recorded run, "
            f"{t.only_replayed} only in the replay, {t.changed} changed"
            + (f", {t.changed_reasons} with other reasons" if t.changed_reasons else "")
            + f" ({_size(t.rows_recorded) or '?'} recorded, {_size(t.rows_replayed) or '?'} "
            "replayed)"
        )
        for kind, ids in t.sample.items():
            if ids:
                print(f"      {kind.replace('_', ' ')}: {ids}")
        for c in t.columns_only_recorded:
            print(f"      column only in the recorded run: {c}")
        for c in t.columns_only_replayed:
            print(f"      column only in the replay: {c}")
        if t.note:
            print(f"      {t.note}")
    for v in result.versions:
        print(f"  version {v['name']}: {v['recorded']} recorded, {v['now']} now")
    if result.reference is not None:
        print("  the reference window differs from the recorded one (see --json)")
    for note in result.notes:
        print(f"  note: {note}")
    if result.scratch:
        print(f"  replayed outputs: {result.scratch}")
    return EXIT_OK if result.identical else EXIT_FAILED


def audit_main(args: argparse.Namespace) -> int:
    """Answer where a row is and why; 0 when found (errors raise)."""
    from sluice.audit.lookup import audit_row, row_id_of
    from sluice.config import find_spec

    loaded = find_spec(args.dataset)
    reports = loaded.output_root("reports")
    if args.source_file is not None:
        if args.source_row is None:
            raise SluiceError("--source-file needs --source-row (the 0-based record number)")
        row_id = row_id_of(reports, args.source_file, args.source_row)
    else:
        if args.source_row is not None:
            raise SluiceError("--source-row goes with --source-file, not with --row-id")
        row_id = args.row_id
    found = audit_row(reports, loaded.name, row_id, storage_options=loaded.storage_options())
    args.document = found.as_dict()
    _print_audit(args.document)
    return EXIT_OK


def _print_audit(doc: dict[str, Any]) -> None:
    src, run = doc["source"], doc["run"]
    print(
        f"{doc['dataset']} row {doc['row_id']}: {doc['where'].upper()} in partition "
        f"{doc['partition']}"
    )
    print(f"  source: {src['file']} record {src['row']} (file sha256 {src['sha256']})")
    print(f"  now in: {doc['file']}")
    print(f"  decided by run {run['run_id']} ({run['status']}, {run['finished_at']})")
    print(f"  manifest: {run['manifest']}")
    if not doc["failures"]:
        print("  failed no rule")
    for f in doc["failures"]:
        print(f"  {f['severity']:<8} {f['reason']}: value {f['value']!r}")
    for what in ("suite", "spec"):
        conf = doc[what]
        print(f"  {what}: sha256 {conf['sha256']} (stored: {conf['stored'] or 'not kept'})")
    for e in doc["earlier_runs"]:
        print(f"  earlier run {e['run_id']} ({e['status']}, {e['finished_at']})")
    for d in doc["decisions"]:
        print(f"  decision: {d}")


def retention_main(args: argparse.Namespace) -> int:
    """List (``--dry-run``) or delete (``--apply``) what has expired and is not held."""
    from sluice.audit.retention import apply, log_path, plan
    from sluice.config import find_spec

    if args.as_of is not None and not args.dry_run:
        raise SluiceError("--as-of goes with --dry-run only: --apply judges ages as of now")
    loaded = find_spec(args.dataset)
    planned = plan(loaded, args.as_of)
    doc = planned.as_dict()
    verb = "would delete" if args.dry_run else "deletes"
    print(f"retention of {loaded.name} as of {planned.as_of:%Y-%m-%d %H:%M} UTC: {verb}")
    for item in planned.expired:
        print(f"  {item.kind:<15} {item.path} (expired {item.expires:%Y-%m-%d}; {item.reason})")
    if not planned.expired:
        print("  nothing")
    for item in planned.held:
        print(f"  held {item.kind:<10} {item.path} ({item.held_by})")
    code = EXIT_OK
    if args.apply:
        done = apply(loaded, planned)
        doc["deleted"] = [i.as_dict() for i in done.deleted]
        doc["skipped"] = [{**i.as_dict(), "why": why} for i, why in done.skipped]
        for item, why in done.skipped:
            print(f"  left {item.path}: {why}")
        print(
            f"deleted {len(done.deleted)}, left {len(done.skipped)}; log: "
            f"{log_path(loaded.output_root('reports'))}"
        )
        code = EXIT_FAILED if done.skipped else EXIT_OK
    args.document = doc
    return code
