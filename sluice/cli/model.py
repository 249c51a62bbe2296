"""``sluice model``: fit one of a dataset's detectors on screened partitions and save it.

The model learns only from the verified clean output of committed partitions in the date range
(a clean file is read only if its sha256 is the one its manifest gives), so no quarantined row
teaches it. The file records where it came from (dataset, spec sha256, partitions and clean-file
sha256s); ``fit: model`` runs copy that into every manifest that uses it. The command prints the
file's sha256 and the lines to put in the dataset spec.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
from pathlib import Path
from typing import Any

from sluice.core.errors import ConfigError, SluiceError


def add_arguments(p: argparse.ArgumentParser, date: Any) -> None:
    """The ``sluice model`` options (``date`` parses YYYY-MM-DD or YYYY-MM)."""
    p.add_argument("dataset", help="dataset name (datasets/<name>.yaml) or a spec file")
    p.add_argument("--start", required=True, type=date, help="first partition to learn from")
    p.add_argument("--end", type=date, help="last partition to learn from (default: --start)")
    p.add_argument(
        "--detector", help="which of the spec's detectors (its name); needed if it has several"
    )
    p.add_argument(
        "--out",
        help="model file to write (default: models/<dataset>-<detector>-<end>.sluice-model "
        "beside the spec)",
    )


def _pick(detectors: list[Any], name: str | None, spec_path: Path) -> tuple[int, Any]:
    names = [d.name for d in detectors]
    if not detectors:
        raise ConfigError("the dataset declares no detectors", file=spec_path, key="detectors")
    if name is None:
        if len(detectors) > 1:
            raise SluiceError(
                f"the dataset has {len(detectors)} detectors; choose one with --detector "
                f"({', '.join(names)})"
            )
        return 0, detectors[0]
    if name not in names:
        raise SluiceError(f"no detector named {name!r} in {spec_path} (it has: {', '.join(names)})")
    return names.index(name), detectors[names.index(name)]


def main(args: argparse.Namespace) -> int:
    """Fit, save and print the model's sha256 and spec lines; exit 0 (errors raise)."""
    import polars as pl

    from detectors.persist import save_model
    from detectors.screen import fit_model
    from flows.idempotence import manifest_path
    from sluice.config import find_spec, partition_range
    from sluice.pipeline import verified_clean

    loaded = find_spec(args.dataset)
    index, spec = _pick(loaded.spec.detectors, args.detector, loaded.path)
    end: dt.date = args.end or args.start
    try:
        parts = partition_range(loaded.spec.partition, args.start, end)
    except ValueError as exc:
        raise SluiceError(str(exc)) from None
    columns = [f.column for f in spec.feature_specs()]
    frames: list[pl.DataFrame] = []
    used: list[dict[str, Any]] = []
    missing: list[str] = []
    for part in parts:
        got = verified_clean(
            manifest_path(loaded, part), columns, storage_options=loaded.storage_options()
        )
        if got is None:
            missing.append(str(part))
            continue
        frames.append(got[0])
        used.append({"partition": str(part), **got[1]})
    if not frames:
        raise SluiceError(
            f"no screened partition of {loaded.name} from {parts[0]} to {parts[-1]} has verified "
            "clean output to learn from; screen them first (sluice run / sluice backfill)"
        )
    # A spec already on fit: model is fitted anew from its detector, parameters and features.
    training = spec.model_copy(update={"fit": "auto", "model": None, "model_sha256": None})
    model = fit_model(pl.concat(frames, how="vertical_relaxed"), training, index=index)
    rows = sum(u["rows"] for u in used)
    model = dataclasses.replace(
        model,
        provenance={
            "dataset": loaded.name,
            "spec": str(loaded.path),
            "spec_sha256": loaded.sha256,
            "detector": spec.name,
            "fitted_on": used,
            "clean_rows": rows,
        },
    )
    out = (
        Path(args.out)
        if args.out
        else loaded.path.parent / "models" / f"{loaded.name}-{spec.name}-{parts[-1]}.sluice-model"
    )
    sha = save_model(model, out)
    print(
        f"saved {out}: {spec.detector_name} fitted on {model.detector.n_fit_:,} of {rows:,} clean "
        f"rows from {len(used)} partition(s) ({used[-1]['partition']} last), "
        f"threshold {model.detector.threshold_:.6g}"
    )
    if missing:
        print(f"not screened or not verified, left out: {', '.join(missing)}")
    print(f"sha256 {sha}")
    print(f"\nto use it, set in {loaded.path} under detectors[{index}] (name: {spec.name}):")
    print("    fit: model")
    print(f"    model: {_relative(out, loaded.path.parent)}")
    print(f"    model_sha256: {sha}")
    return 0


def _relative(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), base.resolve())
    except ValueError:  # another drive
        return str(path.resolve())
