"""Named, versioned baselines: what a dataset looked like in partitions someone pinned.

``sluice baseline DATASET --name NAME --start D --end D`` (or ``--model FILE``) saves one under
``<reports>/_baselines/<name>/v<N>/``: ``sample.parquet`` (a seeded sample of the verified clean
output of the partitions, with the partition of every row) and ``baseline.json`` (the
partitions with their clean files' sha256 and row counts, per-column profiles, the sample's
sha256, the seed, and for a model the model file and its sha256). Saving under the same name
again adds a version; runs compare with the newest. Acknowledgements go to
``<reports>/_baselines/<name>/acknowledgements.jsonl``, one JSON line each, appended and never
rewritten.

A spec's ``monitor.baselines`` may also name ``{model: <detector>}``: the partitions that
detector's saved model was fitted on are read afresh on every run (:func:`model_baseline`), so
a saved model serves as a baseline without a step of its own.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import shutil
import uuid
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from sluice.config import NAME_RE, Partition, PartitionKind
from sluice.core.errors import SluiceError
from sluice.core.files import Unverified, config_error, read_regular, read_verified, sha256_hex
from sluice.report.drift import REF_PARTITION
from sluice.report.history import age_span
from sluice.report.metrics import kind_of
from sluice.storage import open_output
from sluice.write import MANIFEST_NAME

BASELINES_DIR = "_baselines"
SAMPLE_NAME = "sample.parquet"
META_NAME = "baseline.json"
ACKS_NAME = "acknowledgements.jsonl"
FORMAT = "sluice-baseline/1"
SAMPLE_ROWS = 50_000
VERSION_RE = re.compile(r"^v([1-9][0-9]{0,8})$")


class BaselineError(SluiceError):
    """A baseline that cannot be saved, read or acknowledged (exit 2)."""


@dataclass(frozen=True)
class SavedBaseline:
    """One version of a named baseline (or a model's training partitions, read for this run)."""

    name: str
    version: int
    dataset: str
    kind: PartitionKind
    key: str
    partitions: list[dict[str, Any]]
    created_at: str
    source: str
    sample: pl.DataFrame
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    model: dict[str, Any] | None = None
    seed: int = 0
    left_out: list[str] = field(default_factory=list)

    @property
    def starts(self) -> list[dt.date]:
        """The partition starts the baseline holds, oldest first."""
        return sorted(
            Partition.parse(p["partition"], self.kind, self.key).start for p in self.partitions
        )

    @property
    def what(self) -> str:
        """``baseline training-2024q1 v2`` or ``the training partitions of model ...``."""
        if self.source == "model" and self.model is not None:
            trained = (
                f"the training partitions of detector {self.model.get('detector', '?')}'s saved "
                f"model {Path(str(self.model.get('path', '?'))).name}"
            )
            return (
                trained
                if self.version == 0
                else f"baseline {self.name} v{self.version} ({trained})"
            )
        return f"baseline {self.name} v{self.version}"

    def reference_text(self, partition: Partition) -> str:
        """What the reference is, which partitions, how old, in words."""
        span = age_span(self.starts, partition.start, partition.kind)
        n = len(self.partitions)
        text = f"{self.what}: {n} partition{'s' if n != 1 else ''}, {span}"
        if self.version:
            text += f" (saved {self.created_at[:10]})"
        if self.left_out:
            text += f"; left out: {', '.join(self.left_out)}"
        return text

    def meta(self) -> dict[str, Any]:
        """``baseline.json`` without the profiles (for listings and the manifest)."""
        return {
            "name": self.name,
            "version": self.version,
            "dataset": self.dataset,
            "source": self.source,
            "partitions": self.partitions,
            "created_at": self.created_at,
            "model": self.model,
            "sample_rows": self.sample.height,
            "seed": self.seed,
        }


def baselines_dir(reports_root: Path) -> Path:
    """Where a dataset's baselines live."""
    return reports_root / BASELINES_DIR


def _check_name(name: str) -> None:
    if not NAME_RE.fullmatch(name):
        raise BaselineError(
            f"baseline name {name!r} is not allowed: it must start with a letter and hold only "
            f"letters, digits, '_' or '-' (at most 64 characters)"
        )


def verified_clean_of(
    reports_root: Path,
    partition: Partition,
    expected_sha256: str | None = None,
    *,
    storage_options: Mapping[str, str] | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]] | str:
    """A committed partition's clean output read through its manifest, only if its bytes are
    the ones the manifest hashed (and ``expected_sha256`` when given); else why not, in words.

    A Delta clean table (``outputs.format: delta``) is read at the manifest's version and
    checked against its row count and checksum; its identity in place of a sha256 is
    ``uri@vVERSION``.
    """
    manifest = reports_root / partition.dirname / MANIFEST_NAME
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
        table = (doc.get("tables") or {}).get("clean")
        if table is not None:
            sha = f"{table['uri']}@v{table['version']}"
        else:
            entry = doc["outputs"]["clean"]
            path, sha = str(entry["path"]), str(entry["sha256"])
    except FileNotFoundError:
        return "not screened (no manifest)"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "its manifest names no clean output"
    if expected_sha256 is not None and sha != expected_sha256:
        return "screened again since: its clean file is not the one recorded"
    if table is not None:
        try:
            frame = open_output(doc, "clean", storage_options=storage_options).read()
        except SluiceError as exc:
            return f"clean output not verified: {exc}"
    else:
        try:
            data = read_verified(path, sha)
        except Unverified as exc:
            return f"clean output not verified: {exc}"
        frame = pl.read_parquet(io.BytesIO(data))
    return frame, {"partition": str(partition), "sha256": sha, "rows": frame.height}


def pick(frame: pl.DataFrame, columns: Sequence[str]) -> pl.DataFrame:
    """Columns of a frame by name, never read as patterns (``*`` or ``^a.*$`` are names here)."""
    return (
        pl.DataFrame([frame.get_column(c) for c in columns], schema=None)
        if columns
        else frame.clear().select([])
    )


def data_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame without sluice's own columns (``_row_id``, provenance)."""
    return pick(frame, [c for c in frame.columns if not c.startswith("_")])


def _profile(values: pl.Series) -> dict[str, Any]:
    # Series methods run as expressions on col(name): a column named "*" would expand
    values = values.rename("v")
    kind = kind_of(values.dtype)
    out: dict[str, Any] = {
        "dtype": str(values.dtype),
        "kind": kind,
        "rows": len(values),
        "null_rate": values.null_count() / len(values) if len(values) else 0.0,
        "distinct": values.n_unique(),
    }
    if kind == "numeric":
        f = values.cast(pl.Float64).drop_nulls()
        f = f.filter(f.is_finite())
        if len(f):
            out.update(
                mean=f.mean(),
                sd=f.std(),
                min=f.min(),
                p05=f.quantile(0.05),
                p50=f.quantile(0.5),
                p95=f.quantile(0.95),
                max=f.max(),
            )
    elif kind in ("string", "boolean"):
        top = values.cast(pl.String).drop_nulls().value_counts(sort=True, name="n").head(10)
        out["top"] = [[str(v), int(n)] for v, n in top.iter_rows()]
    return out


def build_sample(
    frames: Sequence[tuple[str, pl.DataFrame]], rows: int, seed: int
) -> tuple[pl.DataFrame, dict[str, dict[str, Any]]]:
    """A seeded sample of every partition's rows (an equal share each, with the partition in
    ``_partition``) and per-column profiles over all of them."""
    per = max(rows // max(len(frames), 1), 1)
    parts: list[pl.DataFrame] = []
    for label, frame in frames:
        data = data_columns(frame)
        if data.height > per:
            data = data.sample(per, seed=seed)
        parts.append(data.with_columns(pl.lit(label).alias(REF_PARTITION)))
    sample = pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()
    whole = pl.concat([data_columns(f) for _, f in frames], how="diagonal_relaxed")
    profiles = {c: _profile(whole[c]) for c in whole.columns}
    return sample, profiles


def _next_version(folder: Path) -> int:
    got = [int(m.group(1)) for p in folder.glob("v*") if (m := VERSION_RE.fullmatch(p.name))]
    return max(got, default=0) + 1


def save_baseline(
    reports_root: Path,
    *,
    dataset: str,
    name: str,
    partitions: Sequence[Partition],
    source: str = "range",
    model: Mapping[str, Any] | None = None,
    expected: Mapping[str, str] | None = None,
    rows: int = SAMPLE_ROWS,
    seed: int = 0,
    storage_options: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
) -> tuple[SavedBaseline, list[str]]:
    """Save a new version of baseline ``name`` from the verified clean output of
    ``partitions``; return it and the partitions left out (with why).

    ``expected`` maps a partition to the clean sha256 it must still have (a model's record).
    Raises :class:`BaselineError` when no partition can be used.
    """
    _check_name(name)
    frames: list[tuple[str, pl.DataFrame]] = []
    used: list[dict[str, Any]] = []
    missing: list[str] = []
    for part in partitions:
        got = verified_clean_of(
            reports_root,
            part,
            (expected or {}).get(str(part)),
            storage_options=storage_options,
        )
        if isinstance(got, str):
            missing.append(f"{part} ({got})")
            continue
        if got[0].height == 0:
            missing.append(f"{part} (no clean rows)")
            continue
        frames.append((str(part), got[0]))
        used.append(got[1])
    if not frames:
        first, last = (str(partitions[0]), str(partitions[-1])) if partitions else ("", "")
        raise BaselineError(
            f"no partition of {dataset} from {first} to {last} has verified clean output to "
            f"make baseline {name!r} from ({'; '.join(missing[:5]) or 'none given'}); screen "
            "them first (sluice run / sluice backfill)"
        )
    sample, profiles = build_sample(frames, rows, seed)
    folder = baselines_dir(reports_root) / name
    folder.mkdir(parents=True, exist_ok=True)
    created = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0).isoformat()
    kind = partitions[0].kind
    key = partitions[0].key
    for _ in range(20):
        version = _next_version(folder)
        tmp = folder / f".v{version}.{uuid.uuid4().hex[:12]}.tmp"
        tmp.mkdir()
        try:
            buf = io.BytesIO()
            sample.write_parquet(buf, compression="zstd", statistics=False)
            data = buf.getvalue()
            (tmp / SAMPLE_NAME).write_bytes(data)
            meta = {
                "format": FORMAT,
                "name": name,
                "version": version,
                "dataset": dataset,
                "partition_kind": kind,
                "partition_key": key,
                "source": source,
                "model": dict(model) if model else None,
                "partitions": used,
                "left_out": missing,
                "created_at": created,
                "seed": seed,
                "sample_rows": sample.height,
                "sample_sha256": sha256_hex(data),
                "profiles": profiles,
            }
            (tmp / META_NAME).write_text(
                json.dumps(meta, indent=1, sort_keys=True, default=str), encoding="utf-8"
            )
            try:
                os.rename(tmp, folder / f"v{version}")
            except OSError:
                continue  # another save took this version first
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        saved = SavedBaseline(
            name, version, dataset, kind, key, used, created, source, sample, profiles,
            dict(model) if model else None, seed,
        )  # fmt: skip
        return saved, missing
    raise BaselineError(f"could not save baseline {name!r}: its versions keep changing")


def versions(reports_root: Path, name: str) -> list[int]:
    """The saved versions of baseline ``name``, oldest first."""
    folder = baselines_dir(reports_root) / name
    return sorted(int(m.group(1)) for p in folder.glob("v*") if (m := VERSION_RE.fullmatch(p.name)))


def _read_meta(folder: Path) -> dict[str, Any]:
    raw = read_regular(folder / META_NAME, config_error(folder / META_NAME, "baseline"))
    meta = json.loads(raw)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BaselineError(
            f"{folder / META_NAME}: not a baseline of format {FORMAT} "
            f"(found {meta.get('format') if isinstance(meta, dict) else type(meta).__name__})"
        )
    return meta


def load_baseline(
    reports_root: Path, name: str, version: int | None = None, *, with_sample: bool = True
) -> SavedBaseline | None:
    """The newest (or given) version of baseline ``name``, or None when there is none.

    The sample is read only if its sha256 is the one ``baseline.json`` records; a baseline that
    does not verify raises :class:`BaselineError`.
    """
    _check_name(name)
    got = versions(reports_root, name)
    if not got:
        return None
    v = got[-1] if version is None else version
    if v not in got:
        raise BaselineError(f"baseline {name!r} has no version {v} (it has: {got})")
    folder = baselines_dir(reports_root) / name / f"v{v}"
    try:
        meta = _read_meta(folder)
        sample = pl.DataFrame()
        if with_sample:
            data = read_verified(folder / SAMPLE_NAME, str(meta["sample_sha256"]))
            sample = pl.read_parquet(io.BytesIO(data))
    except Unverified as exc:
        raise BaselineError(f"baseline {name!r} v{v} does not verify: {exc}") from None
    except (OSError, ValueError, KeyError) as exc:
        raise BaselineError(f"baseline {name!r} v{v} cannot be read: {exc}") from None
    kind = meta.get("partition_kind")
    if kind not in ("day", "month", "hour"):
        raise BaselineError(f"baseline {name!r} v{v}: unknown partition kind {kind!r}")
    return SavedBaseline(
        name=name,
        version=v,
        dataset=str(meta["dataset"]),
        kind=kind,
        key=str(meta["partition_key"]),
        partitions=list(meta["partitions"]),
        created_at=str(meta["created_at"]),
        source=str(meta["source"]),
        sample=sample,
        profiles=dict(meta.get("profiles") or {}),
        model=meta.get("model"),
        seed=int(meta.get("seed", 0)),
    )


def list_baselines(reports_root: Path) -> list[SavedBaseline]:
    """The newest version of every saved baseline (without samples), by name."""
    out = []
    for folder in sorted(baselines_dir(reports_root).glob("*")):
        if (
            folder.is_dir()
            and NAME_RE.fullmatch(folder.name)
            and versions(reports_root, folder.name)
        ):
            got = load_baseline(reports_root, folder.name, with_sample=False)
            if got is not None:
                out.append(got)
    return out


def acknowledge(
    reports_root: Path,
    name: str,
    *,
    by: str,
    reason: str,
    columns: Sequence[str],
    classifier: bool,
    partition: str | None,
    now: dt.datetime | None = None,
    version: int | None = None,
) -> dict[str, Any]:
    """Record, append-only, that ``by`` knows of the drift of ``columns`` (and of the
    classifier test when ``classifier``) against the newest version of baseline ``name`` (or
    ``version``: 0 for a model's training partitions, which are not saved)."""
    _check_name(name)
    got = versions(reports_root, name) if version is None else [version]
    if not got:
        raise BaselineError(f"no baseline named {name!r} under {baselines_dir(reports_root)}")
    (baselines_dir(reports_root) / name).mkdir(parents=True, exist_ok=True)
    if not by.strip() or not reason.strip():
        raise BaselineError("an acknowledgement needs who (--by) and why (--reason), not blank")
    record = {
        "baseline": name,
        "version": got[-1],
        "by": by.strip(),
        "reason": reason.strip(),
        "at": (now or dt.datetime.now(dt.UTC)).replace(microsecond=0).isoformat(),
        "partition": partition,
        "columns": sorted(set(columns)),
        "classifier": classifier,
    }
    path = baselines_dir(reports_root) / name / ACKS_NAME
    line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return record


def acknowledgements(reports_root: Path, name: str) -> list[dict[str, Any]]:
    """Every acknowledgement of baseline ``name``, oldest first (lines that do not parse are
    skipped: the file is append-only and a torn last line is possible)."""
    path = baselines_dir(reports_root) / name / ACKS_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def model_provenance(path: Path, sha256: str | None) -> dict[str, Any]:
    """A saved model's recorded provenance (``fitted_on``: partitions and clean sha256s), read
    only if the file's sha256 is ``sha256``."""
    try:
        raw = read_verified(path, sha256 or "")
    except Unverified as exc:
        raise BaselineError(f"saved model {path}: {exc}; expected sha256 {sha256}") from None
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            meta = json.loads(zf.read("meta.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise BaselineError(f"{path} is not a saved sluice model: {exc}") from None
    prov = meta.get("provenance") if isinstance(meta, dict) else None
    if not isinstance(prov, dict) or not isinstance(prov.get("fitted_on"), list):
        raise BaselineError(f"saved model {path} records no training partitions (fitted_on)")
    return prov


def model_partitions(
    prov: Mapping[str, Any], kind: PartitionKind, key: str
) -> tuple[list[Partition], dict[str, str]]:
    """The partitions a model was fitted on and the clean sha256 each had then."""
    parts: list[Partition] = []
    expected: dict[str, str] = {}
    for entry in prov["fitted_on"]:
        try:
            p = Partition.parse(str(entry["partition"]), kind, key)
        except (KeyError, TypeError, ValueError):
            continue
        parts.append(p)
        if entry.get("sha256"):
            expected[str(p)] = str(entry["sha256"])
        elif entry.get("table") and entry.get("table_version") is not None:
            expected[str(p)] = f"{entry['table']}@v{entry['table_version']}"
    return parts, expected


def model_baseline(
    reports_root: Path,
    *,
    dataset: str,
    detector: str,
    path: Path,
    sha256: str | None,
    kind: PartitionKind,
    key: str,
    rows: int = SAMPLE_ROWS,
    storage_options: Mapping[str, str] | None = None,
) -> SavedBaseline:
    """The partitions detector ``detector``'s saved model was fitted on, as a baseline for this
    run: their clean output read through the manifests, only where it is still the file the
    model learnt from."""
    prov = model_provenance(path, sha256)
    parts, expected = model_partitions(prov, kind, key)
    frames: list[tuple[str, pl.DataFrame]] = []
    used: list[dict[str, Any]] = []
    left: list[str] = []
    for part in parts:
        got = verified_clean_of(
            reports_root, part, expected.get(str(part)), storage_options=storage_options
        )
        if isinstance(got, str):
            left.append(f"{part} ({got})")
            continue
        frames.append((str(part), got[0]))
        used.append(got[1])
    if not frames:
        raise BaselineError(
            f"none of the {len(parts)} partitions detector {detector}'s model was fitted on has "
            f"its clean output as the model saw it ({'; '.join(left[:3]) or 'none recorded'})"
        )
    sample, profiles = build_sample(frames, rows, 0)
    model = {"detector": detector, "path": str(path), "sha256": sha256}
    return SavedBaseline(
        f"model-{detector}", 0, dataset, kind, key, used, "", "model", sample, profiles, model,
        0, left,
    )  # fmt: skip


__all__ = [
    "BaselineError",
    "SavedBaseline",
    "acknowledge",
    "acknowledgements",
    "baselines_dir",
    "list_baselines",
    "load_baseline",
    "model_baseline",
    "save_baseline",
    "verified_clean_of",
]
