"""``sluice baseline``: save, list and acknowledge the named baselines a dataset is monitored
against (:mod:`sluice.report.baseline`).

- ``sluice baseline DATASET --name NAME --start D [--end D]`` saves a new version of baseline
  NAME from the verified clean output of the committed partitions in the range;
  ``--model FILE`` instead takes the partitions a saved detector model was fitted on (and checks
  each clean file is still the one the model learnt from).
- ``sluice baseline list DATASET`` shows every baseline: versions, partitions, acknowledgements.
- ``sluice baseline acknowledge DATASET --name NAME --by WHO --reason TEXT`` records that WHO
  knows of the drift the latest run found against NAME (or ``--columns``), so it stops alarming
  until another column drifts; re-pin by saving the baseline again.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from sluice.core.errors import ConfigError, SluiceError

ACTIONS = ("list", "acknowledge")


def add_arguments(p: argparse.ArgumentParser, date: Any) -> None:
    """The ``sluice baseline`` options (``date`` parses YYYY-MM-DD or YYYY-MM)."""
    p.add_argument(
        "words",
        nargs="+",
        metavar="[list|acknowledge] DATASET",
        help="DATASET to save a baseline of; `list DATASET` or `acknowledge DATASET`",
    )
    p.add_argument("--name", help="the baseline's name (letters, digits, '_' or '-')")
    p.add_argument("--start", type=date, help="first partition of the baseline")
    p.add_argument("--end", type=date, help="last partition of the baseline (default: --start)")
    p.add_argument("--model", help="a saved model file: its training partitions are the baseline")
    p.add_argument("--rows", type=int, default=None, help="rows in the baseline's sample")
    p.add_argument("--by", help="acknowledge: who acknowledges")
    p.add_argument("--reason", help="acknowledge: why the drift is expected")
    p.add_argument(
        "--columns", help="acknowledge: comma-separated columns (default: those that drifted)"
    )


def _words(words: list[str]) -> tuple[str, str]:
    if words[0] in ACTIONS:
        if len(words) != 2:
            raise SluiceError(f"usage: sluice baseline {words[0]} DATASET (got {words[1:]})")
        return words[0], words[1]
    if len(words) != 1:
        raise SluiceError(
            f"usage: sluice baseline DATASET --name NAME --start D [--end D]; "
            f"or sluice baseline {{{','.join(ACTIONS)}}} DATASET (got {' '.join(words)!r})"
        )
    return "save", words[0]


def main(args: argparse.Namespace) -> int:
    """Save, list or acknowledge; exit 0 (errors raise, exit 2)."""
    from sluice.config import find_spec

    action, dataset = _words(list(args.words))
    loaded = find_spec(dataset)
    if action == "list":
        return _list(loaded)
    if not args.name:
        raise SluiceError(f"sluice baseline {'' if action == 'save' else action + ' '}needs --name")
    if action == "acknowledge":
        return _acknowledge(loaded, args)
    return _save(loaded, args)


def _save(loaded: Any, args: argparse.Namespace) -> int:
    from sluice.config import partition_range
    from sluice.report.baseline import (
        SAMPLE_ROWS,
        model_partitions,
        model_provenance,
        save_baseline,
    )

    reports = loaded.output_root("reports")
    spec = loaded.spec
    rows = args.rows if args.rows is not None else SAMPLE_ROWS
    if rows < 100:
        raise SluiceError(f"--rows must be at least 100 (got {rows})")
    model: dict[str, Any] | None = None
    expected: dict[str, str] | None = None
    if args.model:
        if args.start or args.end:
            raise SluiceError("give --model or --start/--end, not both")
        path = Path(args.model)
        from sluice.core.files import file_sha256

        try:
            sha = file_sha256(path)
        except SluiceError:
            raise
        except OSError as exc:
            raise SluiceError(f"cannot read model file {path}: {exc.strerror}") from None
        prov = model_provenance(path, sha)
        if prov.get("dataset") not in (None, loaded.name):
            raise SluiceError(
                f"model {path} was fitted on dataset {prov.get('dataset')!r}, not {loaded.name!r}"
            )
        parts, expected = model_partitions(prov, spec.partition.kind, spec.partition.key)
        if not parts:
            raise SluiceError(f"model {path} records no partition of {spec.partition.kind}s")
        model = {"path": str(path.resolve()), "sha256": sha, "detector": prov.get("detector")}
        source = "model"
    else:
        if args.start is None:
            raise SluiceError("sluice baseline needs --start (and --end) or --model")
        try:
            parts = partition_range(spec.partition, args.start, args.end or args.start)
        except ValueError as exc:
            raise SluiceError(str(exc)) from None
        source = "range"
    saved, left = save_baseline(
        reports,
        dataset=loaded.name,
        name=args.name,
        partitions=parts,
        source=source,
        model=model,
        expected=expected,
        rows=rows,
        storage_options=loaded.storage_options(),
    )
    what = f"training partitions of {Path(args.model).name}" if args.model else "partitions"
    print(
        f"saved baseline {saved.name} v{saved.version} of {loaded.name}: {saved.sample.height:,} "
        f"sampled rows from {len(saved.partitions)} {what} "
        f"({saved.partitions[0]['partition']} to {saved.partitions[-1]['partition']})"
    )
    for p in saved.partitions:
        print(f"  {p['partition']}  {p['rows']:>10,} clean rows  sha256 {p['sha256']}")
    if left:
        print("left out: " + "; ".join(left))
    listed = [b for b in spec.monitor.baselines if b == saved.name]
    if not listed:
        print(f"\nto monitor against it, add to {loaded.path}:")
        print(f"    monitor:\n      baselines: [{saved.name}]")
    return 0


def _list(loaded: Any) -> int:
    from sluice.report.baseline import acknowledgements, list_baselines, versions

    reports = loaded.output_root("reports")
    found = list_baselines(reports)
    if not found:
        print(f"no saved baselines for {loaded.name} (under {reports / '_baselines'})")
    for b in found:
        parts = [p["partition"] for p in b.partitions]
        vs = versions(reports, b.name)
        print(
            f"{b.name}  v{b.version} (versions: {', '.join(f'v{v}' for v in vs)})  "
            f"saved {b.created_at}  {len(parts)} partitions {parts[0]} to {parts[-1]}"
            + (f"  from model {Path(str(b.model['path'])).name}" if b.model else "")
        )
        for a in acknowledgements(reports, b.name):
            print(
                f"  acknowledged v{a.get('version')} {a.get('at')} by {a.get('by')}: "
                f"{a.get('reason')} (columns: {', '.join(a.get('columns') or []) or '-'}"
                f"{', classifier' if a.get('classifier') else ''}; at {a.get('partition')})"
            )
    monitored = [
        b if isinstance(b, str) else f"model {b.model}" for b in loaded.spec.monitor.baselines
    ]
    print(f"monitored by the spec: {', '.join(monitored) or 'none'}")
    return 0


def _acknowledge(loaded: Any, args: argparse.Namespace) -> int:
    from sluice.report.baseline import acknowledge
    from sluice.report.history import load_history
    from sluice.report.monitor import last_drifted

    if not args.by or not args.reason:
        raise SluiceError("sluice baseline acknowledge needs --by WHO and --reason TEXT")
    reports = loaded.output_root("reports")
    last, drifted, classifier = last_drifted(load_history(reports), args.name)
    if args.columns is not None:
        columns = [c.strip() for c in args.columns.split(",") if c.strip()]
        unknown = [c for c in columns if c not in loaded.spec.schema_]
        if unknown:
            raise ConfigError(
                "not a column of the dataset",
                key="--columns",
                found=", ".join(unknown),
                allowed=", ".join(loaded.spec.schema_),
            )
    else:
        columns = drifted
    if not columns and not classifier:
        where = f"in its latest run ({last})" if last else "in any run yet"
        raise SluiceError(
            f"nothing to acknowledge: no column drifted against baseline {args.name!r} {where}; "
            "name them with --columns"
        )
    from sluice.config import ModelBaseline
    from sluice.report.monitor import model_baseline_name

    models = {
        model_baseline_name(b.model)
        for b in loaded.spec.monitor.baselines
        if isinstance(b, ModelBaseline)
    }
    record = acknowledge(
        reports,
        args.name,
        version=0 if args.name in models else None,
        by=args.by,
        reason=args.reason,
        columns=columns,
        classifier=classifier,
        partition=last,
        now=dt.datetime.now(dt.UTC),
    )
    print(
        f"acknowledged baseline {record['baseline']} v{record['version']} by {record['by']} at "
        f"{record['at']}: {', '.join(record['columns']) or '(no column)'}"
        f"{' and the classifier test' if record['classifier'] else ''}; later runs alarm again "
        "only when another column drifts"
    )
    return 0
