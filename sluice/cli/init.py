"""``sluice init NAME --from FILE ...``: profile sample files, write a spec and a suite.

Writes ``DIR/datasets/NAME.yaml`` and ``DIR/expectations/suites/NAME.json`` (``--out DIR``, by
default the current folder) that ``sluice run`` accepts unedited, after loading both back with
the same loaders ``sluice run`` uses. Existing files are kept unless ``--force``. Files in
hive-style folders (``key=YYYY-MM-DD/``, ``key=YYYY-MM/`` or ``key=YYYY-MM-DDTHH/``) give the
source template, the partition key and kind (day, month or hour), and so do dated folders
(``YYYY/MM/DD/`` or ``YYYY/MM/DD/HH/``); otherwise the source is the sample file itself (or
its folder's files of the same ending). Prints each column's declaration and each suggestion
with its evidence.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from sluice.core.errors import EXIT_OK, SluiceError

HIVE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.+)$")
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
NEAR = "sluice.expect_rows_to_not_be_near_duplicates"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``init`` command's arguments on ``parser``."""
    parser.add_argument("name", help="the dataset's name (datasets/NAME.yaml)")
    parser.add_argument(
        "--from",
        dest="files",
        type=Path,
        action="append",
        required=True,
        metavar="FILE",
        help="a sample file (CSV, Parquet or NDJSON); give several to learn from several",
    )
    parser.add_argument("--out", type=Path, default=Path("."), help="project folder (default: .)")
    parser.add_argument("--force", action="store_true", help="overwrite existing spec and suite")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and hold-out split")
    parser.add_argument(
        "--max-fail-share",
        type=_share,
        default=None,
        help="suggest nothing that fails more than this share of sample rows (default 0.05)",
    )
    parser.add_argument(
        "--sluice-types",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="suggest sluice.* expectation types (default: when this sluice's engine runs them)",
    )


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share from 0 to below 1")
    return value


def engine_runs_sluice_types() -> bool:
    """Whether the installed polars engine compiles every ``sluice.*`` type init suggests."""
    from expectations.polars_engine import SUPPORTED_TYPES
    from sluice.profile import SLUICE_TYPES

    return all(t in SUPPORTED_TYPES for t in SLUICE_TYPES[:3])


def source_and_partition(files: list[Path], spec_dir: Path) -> tuple[str, dict[str, Any], str]:
    """The source path template, the partition block and a sentence saying how they were found."""
    # absolute as given, links not followed: a hive folder of links into a store is the layout
    resolved = [Path(os.path.abspath(f)) for f in files]
    suffixes = {f.suffix.lower() for f in resolved}
    found = [_hive(f) for f in resolved]
    if all(h is not None for h in found):
        keys = {(h[0], h[1], h[3]) for h in found if h is not None}
        if len(keys) == 1:
            key, kind, template = keys.pop()
            pattern = template + ("/*" + suffixes.pop() if len(suffixes) == 1 else "/*")
            why = f"hive folders {key}=... hold {kind}s: partition key {key!r}"
            return _rel(pattern, spec_dir), {"key": key, "kind": kind}, why
    dated = {_dated(f) for f in resolved}
    if len(resolved) > 1 and None not in dated and len(dated) == 1:
        kind, prefix, codes = next(d for d in dated if d is not None)
        ending = "*" + suffixes.pop() if len(suffixes) == 1 else "*"
        pattern = f"{prefix}/{{date:{codes}}}/{ending}"
        why = f"folders {codes.replace('%', '')} hold {kind}s: partition key 'date'"
        return _rel(pattern, spec_dir), {"key": "date", "kind": kind}, why
    if len(resolved) == 1:
        why = "one file, no hive folder: every partition reads this file"
        return _rel(str(resolved[0]), spec_dir), {"key": "date", "kind": "day"}, why
    parents = {f.parent for f in resolved}
    if len(parents) == 1 and len(suffixes) == 1:
        why = "files of one folder, no hive folder: every partition reads them all"
        pattern = str(parents.pop() / ("*" + suffixes.pop()))
        return _rel(pattern, spec_dir), {"key": "date", "kind": "day"}, why
    raise SluiceError(
        "sample files in several folders without hive-style partition folders "
        f"(key=YYYY-MM-DD/); found {', '.join(str(f) for f in files)}; allowed: one file, "
        "files of one folder, files in key=value folders of one key, or files in YYYY/MM/DD or "
        "YYYY/MM/DD/HH folders under one folder"
    )


def _hive(path: Path) -> tuple[str, str, str, str] | None:
    """(key, kind, value, folder template up to the hive folder) of the nearest hive folder."""
    parts = list(path.parent.parts)
    for i in range(len(parts) - 1, -1, -1):
        m = HIVE.match(parts[i])
        if not m:
            continue
        value = m.group(2)
        kind = (
            "day"
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)
            else "month"
            if re.fullmatch(r"\d{4}-\d{2}", value)
            else "hour"
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}", value)
            else None
        )
        if kind is None:
            return None
        key = m.group(1)
        rest = parts[i + 1 :]
        template = str(Path(*parts[:i], f"{key}={{{key}}}", *rest))
        return key, kind, value, template
    return None


def _dated(path: Path) -> tuple[str, str, str] | None:
    """(kind, folder above, strftime codes) of a file in ``YYYY/MM/DD/`` or ``YYYY/MM/DD/HH/``
    folders, the deepest such layout; None when its folders are not a date (or an hour)."""
    parts = path.parent.parts
    for size, kind, codes in ((4, "hour", "%Y/%m/%d/%H"), (3, "day", "%Y/%m/%d")):
        if len(parts) <= size:
            continue
        tail = parts[-size:]
        if not all(re.fullmatch(r"\d{4}" if i == 0 else r"\d{2}", p) for i, p in enumerate(tail)):
            continue
        n = [int(p) for p in tail]
        try:
            dt.datetime(n[0], n[1], n[2], n[3] if size == 4 else 0)
        except ValueError:
            continue
        return kind, str(Path(*parts[:-size])), codes
    return None


def _rel(path: str, spec_dir: Path) -> str:
    rel = os.path.relpath(path, spec_dir)
    return rel if not rel.startswith("../" * 4) else path


def main(args: argparse.Namespace) -> int:
    """Run ``sluice init`` from parsed arguments; return the exit code."""
    from expectations.suite import load_suite
    from sluice.config import load_spec
    from sluice.profile import MAX_FAIL, profile, spec_for, suite_for

    name = str(args.name)
    if not NAME.fullmatch(name):
        raise SluiceError(f"dataset name {name!r} is not allowed; allowed: {NAME.pattern}")
    out = Path(os.path.abspath(args.out))
    spec_path = out / "datasets" / f"{name}.yaml"
    suite_path = out / "expectations" / "suites" / f"{name}.json"
    existing = [p for p in (spec_path, suite_path) if p.exists() or p.is_symlink()]
    if existing and not args.force:
        raise SluiceError(
            f"{', '.join(map(str, existing))} exist(s); sluice init does not overwrite "
            "(pass --force to replace them)"
        )
    sluice_types = args.sluice_types
    if sluice_types is None:
        sluice_types = engine_runs_sluice_types()
    max_fail = MAX_FAIL if args.max_fail_share is None else args.max_fail_share
    files = [Path(f) for f in args.files]
    source, partition, where = source_and_partition(files, spec_path.parent)
    prof = profile(files, seed=args.seed, max_fail=max_fail, sluice_types=sluice_types)
    var = os.path.relpath(out / "var" / name, spec_path.parent)
    outputs = {side: f"{var}/{side}" for side in ("clean", "quarantine", "reports")}
    suite_rel = os.path.relpath(suite_path, spec_path.parent)
    spec = spec_for(
        name, prof, source_path=source, partition=partition, outputs=outputs, suite=suite_rel
    )
    suite = suite_for(name, prof)
    _write(suite_path, json.dumps(suite, indent=2, ensure_ascii=False) + "\n")
    header = (
        f"# Suggested by `sluice init {name}` (seed {prof.seed}, at most {max_fail:.0%} of "
        "sample rows failing any suggestion).\n# Review it: every suite entry carries its "
        "evidence in meta.suggested.\n"
    )
    _write(spec_path, header + yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    try:
        loaded = load_spec(spec_path)
        load_suite(suite_path, columns=list(loaded.spec.schema_))
    except SluiceError:
        spec_path.unlink(missing_ok=True)
        suite_path.unlink(missing_ok=True)
        raise
    _report(prof, where, spec_path, suite_path, sluice_types)
    return EXIT_OK


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise SluiceError(
            f"cannot write {path}: {exc.strerror or exc}; allowed: --out a folder you can write"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _report(prof: Any, where: str, spec_path: Path, suite_path: Path, sluice_types: bool) -> None:
    s = prof.sample
    print(
        f"learnt from {s.frame.height} of {s.rows_read} rows in {len(s.files)} file(s); "
        f"{int(s.holdout.sum())} held out to check each suggestion (seed {prof.seed})"
    )
    print(f"source: {where}")
    print("columns:")
    for c in prof.columns:
        print(f"  {c.name}: {c.why}")
    print(f"suggestions kept (each fails at most {prof.max_fail:.0%} of learnt and hold-out rows):")
    near = [c for c in prof.suggestions if c.type == NEAR]
    for c in prof.suggestions:
        if c.type == NEAR:
            continue
        held = c.evidence["holdout_pass_share"]
        print(f"  {c.type} {_short(c.kwargs)}: {held:.2%} of hold-out rows pass ({c.why})")
    if near:
        print("near duplicates (expected to fail, so judged by their own evidence):")
    for c in near:
        e = c.evidence
        print(
            f"  {c.type} {_short(c.kwargs)}: flags {e['flagged_rows']} of {e['sample_rows']} "
            f"sample rows, {e['pairs_compared']} pairs compared ({c.why})"
        )
    print(f"left out (failed too many rows): {len(prof.rejected)}")
    for c in prof.rejected:
        held = c.evidence["holdout_pass_share"]
        print(f"  {c.type} {_short(c.kwargs)}: {held:.2%} of hold-out rows pass")
    if prof.keys:
        print(f"keys: {', '.join(prof.keys)}")
    if prof.features:
        print(f"detector features (knn): {', '.join(prof.features)}")
    if prof.not_features:
        print(
            "numeric columns left out of the detector's features (to screen one, add it to "
            "features; {column: NAME, kind: categorical} takes its values as labels):"
        )
    for column, why in prof.not_features:
        print(f"  {column}: {why}")
    if not sluice_types:
        print("sluice.* types not suggested (--sluice-types to suggest them)")
    print(f"wrote {spec_path}")
    print(f"wrote {suite_path}")


def _short(kwargs: dict[str, Any]) -> str:
    text = json.dumps(kwargs, ensure_ascii=False, default=str)
    return text if len(text) <= 100 else text[:97] + "..."
