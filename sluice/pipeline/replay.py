"""``sluice replay``: run a past partition again from what its manifest names, and compare.

The replay reads the manifest (the partition's current one, or a kept copy under
``_manifests/``), takes the spec and the suite from the dataset's store of objects (or from
their recorded paths when their bytes are still the ones recorded), each input from the archive
or from its recorded path, checked by sha256, and the saved models from the store. It runs
ingest, validate, screen and write into a scratch folder, never into the dataset's outputs, then
compares the clean, quarantine, failures and scores files with the recorded ones: by sha256
first, then, where they differ, row by row (:class:`TableDiff`), with the library versions
that differ. ``docs/audit.md`` describes it.
"""

from __future__ import annotations

import datetime as dt
import io
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml
from pydantic import ValidationError

from expectations.suite import check_names, load_suite, partition_parameters
from sluice.audit.keep import read_manifest_bytes
from sluice.audit.store import StoreError, inputs_store, objects_store
from sluice.config import DatasetSpec, LoadedSpec, Partition
from sluice.core.errors import ConfigError, SluiceError
from sluice.core.files import Unverified, read_verified, sha256_hex
from sluice.core.frame import ROW_ID, SOURCE_FILE, SOURCE_ROW, row_ids
from sluice.core.versions import versions
from sluice.ingest.sources import _read_bytes
from sluice.pipeline.commit import stage_write
from sluice.pipeline.manifest import Manifest
from sluice.pipeline.run import Run, timed
from sluice.pipeline.stages import _ingest, _screen, stage_validate

TABLES = ("clean", "quarantine", "failures", "scores")
SAMPLE = 20
"""How many row ids a diff lists per kind of difference (the counts are always complete)."""


class CannotReplay(SluiceError):
    """What the manifest names cannot be found as it was (exit code 2)."""


@dataclass(frozen=True)
class InputUsed:
    """Where a replay read one input from."""

    path: str
    sha256: str
    source: str
    found_sha256: str | None = None


@dataclass
class TableDiff:
    """How one replayed output file compares with the recorded one."""

    table: str
    identical: bool
    recorded_sha256: str | None
    replayed_sha256: str | None
    rows_recorded: int | None = None
    rows_replayed: int | None = None
    only_recorded: int = 0
    only_replayed: int = 0
    changed: int = 0
    changed_reasons: int = 0
    columns_only_recorded: list[str] = field(default_factory=list)
    columns_only_replayed: list[str] = field(default_factory=list)
    sample: dict[str, list[Any]] = field(default_factory=dict)
    note: str | None = None


@dataclass
class ReplayResult:
    """What a replay found: the comparison of each table and of the versions."""

    manifest: str
    dataset: str
    partition: str
    run_id: str
    scratch: str | None
    identical: bool
    inputs: list[InputUsed]
    tables: list[TableDiff]
    versions: list[dict[str, str | None]]
    reference: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON types (what ``--json`` prints)."""
        return asdict(self)


def reports_root_of(manifest: Path) -> Path:
    """The dataset's reports root, for a partition's manifest or a kept copy of one."""
    parent = manifest.resolve().parent
    if parent.parent.name == "_manifests":
        return parent.parent.parent
    return parent.parent


def read_manifest(path: Path) -> Manifest:
    """The manifest at ``path``, validated, or :class:`CannotReplay` saying why not."""
    try:
        return Manifest.model_validate_json(read_manifest_bytes(path))
    except SluiceError as exc:
        raise CannotReplay(f"cannot read the manifest: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "(top)"
        raise CannotReplay(f"{path}: not a sluice manifest: {where}: {err['msg']}") from None


def _config_bytes(
    root: Path, what: str, sha256: str, stored: str | None, path: str | None
) -> bytes:
    """The recorded bytes of the spec or suite: from the store, else the recorded path."""
    if stored is not None:
        try:
            return objects_store(root).read(sha256)
        except StoreError:
            pass
    if path is not None:
        try:
            return read_verified(path, sha256)
        except Unverified:
            pass
    raise CannotReplay(
        f"the {what} of this run (sha256 {sha256}) is neither in the store "
        f"({objects_store(root).path(sha256)}) nor at {path} with those bytes; runs keep it "
        "since sluice stores it with every manifest"
    )


def _inputs(
    manifest: Manifest, root: Path, *, allow_changed: bool
) -> tuple[dict[str, bytes], list[InputUsed]]:
    archived = manifest.audit.inputs if manifest.audit is not None else {}
    data: dict[str, bytes] = {}
    used: list[InputUsed] = []
    for f in manifest.inputs:
        if f.path in archived:
            try:
                data[f.path] = inputs_store(root).read(f.sha256)
                used.append(InputUsed(f.path, f.sha256, "archive"))
                continue
            except StoreError:
                pass
        try:
            found = _read_bytes(f.path)
        except SluiceError:
            raise CannotReplay(
                f"cannot replay: input {f.path} (sha256 {f.sha256}) is gone and no archived copy "
                "is kept (set archive_inputs: true in the spec to keep the inputs of every run)"
            ) from None
        got = sha256_hex(found)
        if got != f.sha256 and not allow_changed:
            raise CannotReplay(
                f"cannot replay: input {f.path} changed since run {manifest.run_id} (sha256 "
                f"recorded {f.sha256}, found {got}) and no archived copy is kept; "
                "--allow-changed-inputs replays with the bytes found and shows the difference"
            )
        data[f.path] = found
        used.append(InputUsed(f.path, f.sha256, "original", None if got == f.sha256 else got))
    return data, used


def _id_map(recorded: Manifest, replayed: Manifest, used: list[InputUsed]) -> pl.DataFrame:
    """Replayed id -> recorded id of each changed input's records, matched by record number."""
    was = {f.path: f.rows for f in recorded.inputs}
    now = {f.path: f.rows for f in replayed.inputs}
    parts = []
    for u in used:
        if u.found_sha256 is None:
            continue
        n = min(was[u.path], now.get(u.path, 0))
        parts.append(
            pl.DataFrame(
                {"new": row_ids(u.found_sha256, n), "old": row_ids(u.sha256, n)},
                schema={"new": pl.UInt64, "old": pl.UInt64},
            )
        )
    if not parts:
        return pl.DataFrame(schema={"new": pl.UInt64, "old": pl.UInt64})
    return pl.concat(parts)


def _scratch_spec(
    spec_bytes: bytes, suite_bytes: bytes, manifest: Manifest, root: Path, scratch: Path
) -> tuple[LoadedSpec, Path, LoadedSpec | None]:
    """The recorded spec, its outputs and suite pointed into ``scratch``; also the spec as
    recorded (for the reference window), when it still resolves."""
    config = scratch / "config"
    config.mkdir(parents=True)
    spec_file = config / Path(manifest.spec.path).name
    spec_file.write_bytes(spec_bytes)
    suite_file = config / "suite" / (Path(manifest.suite.path or "suite.json").name)
    suite_file.parent.mkdir()
    suite_file.write_bytes(suite_bytes)
    try:
        data = yaml.safe_load(spec_bytes.decode("utf-8"))
        original = DatasetSpec.model_validate(data)
    except (ValueError, yaml.YAMLError, ValidationError) as exc:
        raise CannotReplay(
            f"the recorded spec {manifest.spec.path} no longer loads: {exc}"
        ) from None
    key = original.partition.key
    data["source"]["path"] = str(scratch / "source" / f"{{{key}}}" / "*")
    data["outputs"] = {side: str(scratch / side) for side in ("clean", "quarantine", "reports")}
    data["suite"] = str(suite_file)
    data["archive_inputs"] = False
    models = manifest.audit.models if manifest.audit is not None else {}
    for d in data.get("detectors") or []:
        if isinstance(d, dict) and d.get("name") in models:
            d["model"] = str(objects_store(root).path(models[d["name"]].sha256))
    loaded = LoadedSpec(DatasetSpec.model_validate(data), spec_file, manifest.spec.sha256)
    loaded.check_paths()
    recorded: LoadedSpec | None = None
    if original.reference.partitions > 0:
        recorded = LoadedSpec(original, Path(manifest.spec.path), manifest.spec.sha256)
        try:
            recorded.output_root("clean")
        except ConfigError:
            recorded = None
    return loaded, suite_file, recorded


def _read_parquet(path: str, sha256: str) -> pl.DataFrame | None:
    try:
        return pl.read_parquet(io.BytesIO(read_verified(path, sha256)))
    except (Unverified, OSError, pl.exceptions.PolarsError):
        return None


def _keyed(frame: pl.DataFrame, table: str) -> list[str]:
    if ROW_ID not in frame.columns:
        return []
    if table == "failures" and "reason" in frame.columns:
        return [ROW_ID, "reason"]
    return [ROW_ID]


def compare_tables(
    table: str,
    recorded: pl.DataFrame,
    replayed: pl.DataFrame,
    id_map: pl.DataFrame | None = None,
) -> TableDiff:
    """Row by row: rows only on one side (by ``_row_id``, and reason for failures), rows whose
    values changed, rows whose reasons changed. ``id_map`` turns replayed ids into recorded ones
    (``new`` -> ``old``) for inputs whose bytes changed."""
    diff = TableDiff(table, False, None, None, recorded.height, replayed.height)
    if id_map is not None and id_map.height and ROW_ID in replayed.columns:
        mapped = replayed.join(id_map, left_on=ROW_ID, right_on="new", how="left")
        replayed = mapped.with_columns(pl.coalesce("old", ROW_ID).alias(ROW_ID)).drop("old")
        drop = [c for c in (SOURCE_FILE, SOURCE_ROW) if c in replayed.columns]
        replayed, recorded = replayed.drop(drop), recorded.drop(drop, strict=False)
    diff.columns_only_recorded = [c for c in recorded.columns if c not in replayed.columns]
    diff.columns_only_replayed = [c for c in replayed.columns if c not in recorded.columns]
    keys = _keyed(recorded, table)
    if not keys or keys != _keyed(replayed, table):
        diff.note = "no _row_id to match rows by: only the row counts are compared"
        return diff
    common = [c for c in recorded.columns if c in replayed.columns]
    rec, rep = recorded.select(common), replayed.select(common)
    only_rec = rec.join(rep, on=keys, how="anti")
    only_rep = rep.join(rec, on=keys, how="anti")
    diff.only_recorded, diff.only_replayed = only_rec.height, only_rep.height
    diff.sample["only_recorded"] = only_rec[ROW_ID].head(SAMPLE).to_list()
    diff.sample["only_replayed"] = only_rep[ROW_ID].head(SAMPLE).to_list()
    values = [c for c in common if c not in keys]
    both = rec.join(rep, on=keys, how="inner", suffix="__replayed", nulls_equal=True)
    if values:
        differs = pl.any_horizontal(
            [pl.col(c).ne_missing(pl.col(f"{c}__replayed")) for c in values]
        )
        changed = both.filter(differs)
        diff.changed = changed.height
        diff.sample["changed"] = changed[ROW_ID].head(SAMPLE).to_list()
    if "_reasons" in values:
        moved = both.filter(pl.col("_reasons").ne_missing(pl.col("_reasons__replayed")))
        diff.changed_reasons = moved.height
        diff.sample["changed_reasons"] = (
            moved.select(
                ROW_ID,
                pl.col("_reasons").alias("recorded"),
                pl.col("_reasons__replayed").alias("replayed"),
            )
            .head(SAMPLE)
            .to_dicts()
        )
    same_columns = not (diff.columns_only_recorded or diff.columns_only_replayed)
    if same_columns and not (diff.only_recorded or diff.only_replayed or diff.changed):
        diff.note = "the same rows and values; only the file's bytes differ (writer)"
    return diff


def _compare(recorded: Manifest, replayed: Manifest, id_map: pl.DataFrame) -> list[TableDiff]:
    out: list[TableDiff] = []
    for table in TABLES:
        a, b = recorded.outputs.get(table), replayed.outputs.get(table)
        if a is None and b is None:
            continue
        if a is None or b is None:
            side = "recorded run" if a is None else "replay"
            out.append(
                TableDiff(
                    table,
                    False,
                    a.sha256 if a else None,
                    b.sha256 if b else None,
                    note=f"the {side} wrote no {table} file",
                )
            )
            continue
        if a.sha256 == b.sha256:
            out.append(TableDiff(table, True, a.sha256, b.sha256, a.rows, b.rows))
            continue
        rec, rep = _read_parquet(a.path, a.sha256), _read_parquet(b.path, b.sha256)
        if rec is None or rep is None:
            out.append(
                TableDiff(
                    table,
                    False,
                    a.sha256,
                    b.sha256,
                    a.rows,
                    b.rows,
                    note=f"the recorded {a.path} is gone or replaced: only the sha256 is compared",
                )
            )
            continue
        diff = compare_tables(table, rec, rep, id_map)
        diff.recorded_sha256, diff.replayed_sha256 = a.sha256, b.sha256
        out.append(diff)
    return out


def _versions(recorded: Mapping[str, str]) -> list[dict[str, str | None]]:
    now = versions()
    return [
        {"name": name, "recorded": recorded.get(name), "now": now.get(name)}
        for name in sorted(set(recorded) | set(now))
        if recorded.get(name) != now.get(name)
    ]


def _scratch_folder(out: Path | None, recorded: LoadedSpec | None) -> tuple[Path, bool]:
    if out is None:
        return Path(tempfile.mkdtemp(prefix="sluice-replay-")), True
    target = out.resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise CannotReplay(
            f"--out {out}: must be an empty folder or not exist yet (the replay writes its "
            "scratch outputs there); found a non-empty one"
        )
    if recorded is not None:
        for side in ("clean", "quarantine", "reports"):
            root = recorded.output_root(side)
            if target == root or root in target.parents or target in root.parents:
                raise CannotReplay(
                    f"--out {out}: overlaps the dataset's {side} root {root}; a replay never "
                    "writes into the dataset's outputs"
                )
    target.mkdir(parents=True, exist_ok=True)
    return target, False


def _recorded_spec(manifest: Manifest, spec_bytes: bytes) -> LoadedSpec | None:
    try:
        spec = DatasetSpec.model_validate(yaml.safe_load(spec_bytes.decode("utf-8")))
        loaded = LoadedSpec(spec, Path(manifest.spec.path), manifest.spec.sha256)
        for side in ("clean", "quarantine", "reports"):
            loaded.output_root(side)
        return loaded
    except (ValueError, yaml.YAMLError, ValidationError, ConfigError):
        return None


def replay(
    manifest_path: Path, *, out: Path | None = None, allow_changed_inputs: bool = False
) -> ReplayResult:
    """Replay the run ``manifest_path`` records into a scratch folder and compare its outputs.

    Raises :class:`CannotReplay` when an input, the spec or the suite is not available as it
    was (an input changed is replayed only with ``allow_changed_inputs``).
    """
    manifest = read_manifest(manifest_path)
    if manifest.tables:
        raise CannotReplay(
            f"{manifest_path}: the run wrote Delta tables (outputs.format delta); replay "
            "compares the POSIX layout's files only for now"
        )
    root = reports_root_of(manifest_path)
    audit = manifest.audit
    spec_bytes = _config_bytes(
        root,
        "dataset spec",
        manifest.spec.sha256,
        audit.spec.path if audit else None,
        manifest.spec.path,
    )
    suite_bytes = _config_bytes(
        root,
        "suite",
        manifest.suite.sha256,
        audit.suite.path if audit and audit.suite else None,
        manifest.suite.path,
    )
    data, used = _inputs(manifest, root, allow_changed=allow_changed_inputs)
    scratch, temporary = _scratch_folder(out, _recorded_spec(manifest, spec_bytes))
    try:
        replayed, reference = _run(
            manifest,
            root,
            scratch=scratch,
            spec_bytes=spec_bytes,
            suite_bytes=suite_bytes,
            data=data,
        )
        tables = _compare(manifest, replayed, _id_map(manifest, replayed, used))
    finally:
        if temporary:
            shutil.rmtree(scratch, ignore_errors=True)
    notes = [
        f"input {u.path} changed since the run (sha256 recorded {u.sha256}, replayed "
        f"{u.found_sha256}); its rows are matched by record number"
        for u in used
        if u.found_sha256 is not None
    ]
    if manifest.audit is None:
        notes.append("this manifest predates stored objects: spec and suite came from their paths")
    changed = _outputs_now(manifest, manifest_path)
    if changed is not None:
        notes.append(
            f"the partition's files are no longer the run's: {changed}; the replay is compared "
            "with what the manifest recorded, not with the files there now"
        )
    return ReplayResult(
        manifest=str(manifest_path),
        dataset=manifest.dataset,
        partition=manifest.partition.value,
        run_id=manifest.run_id,
        scratch=None if temporary else str(scratch),
        identical=all(t.identical for t in tables) and reference is None,
        inputs=used,
        tables=tables,
        versions=_versions(manifest.versions),
        reference=reference,
        notes=notes,
    )


def _outputs_now(manifest: Manifest, manifest_path: Path) -> str | None:
    """For a partition's current manifest (not a kept copy, whose outputs were replaced by
    later runs), why the output files on disk are not those it hashed; None when they are."""
    if manifest_path.resolve().parent.parent.name == "_manifests":
        return None
    from sluice.pipeline.idempotence import unverified_output

    return unverified_output(manifest.dump().get("outputs"))


def _run(
    manifest: Manifest,
    root: Path,
    *,
    scratch: Path,
    spec_bytes: bytes,
    suite_bytes: bytes,
    data: dict[str, bytes],
) -> tuple[Manifest, dict[str, Any] | None]:
    loaded, suite_file, recorded = _scratch_spec(spec_bytes, suite_bytes, manifest, root, scratch)
    part = Partition.parse(
        manifest.partition.value, manifest.partition.kind, manifest.partition.key
    )
    check_names(suite_file)
    suite = load_suite(
        suite_file,
        columns=list(loaded.spec.columns),
        parameters=partition_parameters(part.start, part.next().start),
    )
    if suite.sha256 != manifest.suite.sha256:
        raise CannotReplay(
            f"the stored suite hashes to {suite.sha256}, the manifest records "
            f"{manifest.suite.sha256}"
        )
    run_id = f"replay-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    work = loaded.output_root("reports") / ".work" / f"{part.dirname}-{run_id}"
    run = Run(loaded, suite, part, run_id, work, manifest.validation.engine)
    try:
        timed(lambda r: _ingest(r, data), "ingest")(run)
        stage_validate(run)
        timed(lambda r: _screen(r, recorded), "screen")(run)
        summary = stage_write(run)
    except BaseException:
        run.discard()
        raise
    replayed = read_manifest(Path(summary["manifest"]))
    was = [r.model_dump(mode="json") for r in manifest.screen.reference or []]
    now = [r.model_dump(mode="json") for r in replayed.screen.reference or []]
    reference = None if was == now else {"recorded": was, "replayed": now}
    return replayed, reference
