"""``sluice init`` through the real command: what it writes, what it refuses, and a run of what it
wrote, unedited, on the demo's data (catch table by planted kind)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from sluice.cli.demo import catch_table, read_outputs
from sluice.demo_data import ERROR_KINDS, evaluate, generate, raw_path
from sluice.profile import SLUICE_TYPES
from sluice.profile.duplicates import NEAR

DAYS = [dt.date(2024, 3, 4), dt.date(2024, 3, 5)]


def sluice(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed ``sluice`` command."""
    exe = Path(sys.executable).with_name("sluice")
    return subprocess.run(
        [str(exe), *args],
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pl.DataFrame]:
    """Two days of demo trips with planted errors, and their truth."""
    root = tmp_path_factory.mktemp("demo")
    truth = generate(root, DAYS, rows_per_partition=4000, seed=11)
    return root, truth


def test_init_writes_a_spec_and_suite_from_hive_folders(
    demo: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    root, _ = demo
    out = sluice("init", "trips", "--from", str(raw_path(root, DAYS[0])), "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "partition key 'pickup_date'" in out.stdout
    assert "pickup_at: datetime (format %Y-%m-%d %H:%M:%S)" in out.stdout
    spec = yaml.safe_load((tmp_path / "datasets" / "trips.yaml").read_text())
    assert spec["partition"] == {"key": "pickup_date", "kind": "day"}
    assert spec["source"]["path"].endswith("raw/pickup_date={pickup_date}/*.csv")
    assert spec["keys"] == ["trip_id"]
    suite = json.loads((tmp_path / "expectations" / "suites" / "trips.json").read_text())
    for entry in suite["expectations"]:
        assert "suggested" in entry["meta"], entry
    regexes = {
        e["kwargs"]["column"]: e["kwargs"]["regex"]
        for e in suite["expectations"]
        if e["type"] == "expect_column_values_to_match_regex"
    }
    assert regexes["medallion"] == "^[0-9][A-Z][0-9]{2}$"


def test_init_refuses_to_overwrite_without_force(
    demo: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    root, _ = demo
    args = ["init", "trips", "--from", str(raw_path(root, DAYS[0])), "--out", str(tmp_path)]
    args += ["--no-sluice-types"]
    assert sluice(*args).returncode == 0
    spec = tmp_path / "datasets" / "trips.yaml"
    spec.write_text("# mine\n")
    again = sluice(*args)
    assert again.returncode == 2
    assert "--force" in again.stderr
    assert str(spec) in again.stderr
    assert spec.read_text() == "# mine\n"
    forced = sluice(*args, "--force")
    assert forced.returncode == 0, forced.stderr
    assert spec.read_text().startswith("# Suggested by `sluice init trips`")


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["missing.csv"], "cannot read it"),
        (["data.xlsx"], "cannot tell the format"),
        (["empty.csv"], "no header"),
    ],
)
def test_bad_samples_are_exit_2_without_traceback(
    tmp_path: Path, files: list[str], message: str
) -> None:
    (tmp_path / "data.xlsx").write_bytes(b"PK\x03\x04")
    (tmp_path / "empty.csv").write_bytes(b"")
    args = [a for f in files for a in ("--from", str(tmp_path / f))]
    out = sluice("init", "x", *args, "--out", str(tmp_path / "proj"))
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "proj" / "datasets").exists()


def test_an_out_folder_that_is_a_file_is_exit_2(
    demo: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    root, _ = demo
    (tmp_path / "file").write_text("x")
    out = sluice(
        "init", "t", "--from", str(raw_path(root, DAYS[0])), "--out", str(tmp_path / "file")
    )
    assert out.returncode == 2, out.stderr
    assert "cannot write" in out.stderr
    assert "Traceback" not in out.stderr


def test_sluice_types_are_suggested_only_when_asked_or_runnable(
    demo: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    from sluice.cli.init import engine_runs_sluice_types

    root, _ = demo
    src = str(raw_path(root, DAYS[0]))
    on = sluice("init", "a", "--from", src, "--out", str(tmp_path), "--sluice-types")
    assert on.returncode in (0, 2), on.stderr
    default = sluice("init", "b", "--from", src, "--out", str(tmp_path))
    assert default.returncode == 0, default.stderr
    suite = json.loads((tmp_path / "expectations" / "suites" / "b.json").read_text())
    used = {e["type"] for e in suite["expectations"]} & set(SLUICE_TYPES)
    assert bool(used) == engine_runs_sluice_types() or not engine_runs_sluice_types()
    if not engine_runs_sluice_types():
        assert on.returncode == 2
        assert "sluice." in on.stderr
        assert not (tmp_path / "datasets" / "a.yaml").exists()


@pytest.mark.e2e
def test_the_suggested_spec_runs_unedited_and_catches_the_planted_kinds(
    demo: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    root, truth = demo
    src = str(raw_path(root, DAYS[0]))
    init = sluice("init", "trips", "--from", src, "--out", str(tmp_path), "--no-sluice-types")
    assert init.returncode == 0, init.stderr
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
    }
    spec = str(tmp_path / "datasets" / "trips.yaml")
    run = sluice("run", spec, "--partition", str(DAYS[1]), env=env)
    assert run.returncode in (0, 1), run.stderr
    assert "Traceback" not in run.stderr
    quarantine = read_outputs(tmp_path / "var" / "trips" / "quarantine")
    day = truth.filter(pl.col("partition") == DAYS[1])
    print(catch_table(day, quarantine, 4000))
    table = {r["kind"]: r for r in evaluate(day, quarantine).iter_rows(named=True)}
    assert set(table) == set(ERROR_KINDS)
    for kind, row in table.items():
        assert row["planted"] > 0
        assert row["caught"] > 0, f"no planted {kind} was quarantined"


def test_source_templates_from_folders(tmp_path: Path) -> None:
    from sluice.cli.init import source_and_partition
    from sluice.core.errors import SluiceError

    spec_dir = tmp_path / "proj" / "datasets"
    months = [tmp_path / "raw" / f"month=2024-0{m}" / "part.parquet" for m in (1, 2)]
    path, partition, _ = source_and_partition(months, spec_dir)
    assert partition == {"key": "month", "kind": "month"}
    assert path == "../../raw/month={month}/*.parquet"
    flat = [tmp_path / "drop" / "a.csv", tmp_path / "drop" / "b.csv"]
    path, partition, _ = source_and_partition(flat, spec_dir)
    assert (path, partition["key"]) == ("../../drop/*.csv", "date")
    not_dates = [tmp_path / "region=eu" / "a.csv", tmp_path / "other" / "b.csv"]
    with pytest.raises(SluiceError, match="several folders"):
        source_and_partition(not_dates, spec_dir)


def test_samples_linked_into_hive_folders_keep_the_folders_layout(
    demo: tuple[Path, pl.DataFrame], tmp_path: Path
) -> None:
    """Hive folders of symbolic links to files kept elsewhere (a store's mount): the partition
    layout is the links' folders, not the folder their targets share, so each partition reads
    its own file and not every file of the store."""
    root, _ = demo
    store = tmp_path / "store"
    store.mkdir()
    for day in DAYS:
        target = store / f"trips_{day:%Y%m%d}.csv"
        target.write_bytes(raw_path(root, day).read_bytes())
        link = tmp_path / "proj" / "raw" / f"date={day}" / "trips.csv"
        link.parent.mkdir(parents=True)
        link.symlink_to(target)
    proj = tmp_path / "proj"
    links = [str(proj / "raw" / f"date={day}" / "trips.csv") for day in DAYS]
    out = sluice("init", "trips", "--from", links[0], "--from", links[1], "--out", str(proj))
    assert out.returncode == 0, out.stderr
    spec = yaml.safe_load((proj / "datasets" / "trips.yaml").read_text())
    assert spec["partition"] == {"key": "date", "kind": "day"}
    assert spec["source"]["path"] == "../raw/date={date}/*.csv"
    env = {**os.environ, "SLUICE_DATASETS": str(proj / "datasets")}
    run = sluice("run", "trips", "--partition", str(DAYS[0]), "--json", env=env)
    assert run.returncode in (0, 1), run.stderr
    summary = json.loads(run.stdout)
    lines = raw_path(root, DAYS[0]).read_bytes().count(b"\n") - 1
    assert summary["counts"]["in"] == lines


def _people(tmp_path: Path) -> tuple[Path, set[tuple[int, int]]]:
    from tests.sluice.profile.test_duplicates import PLAIN, people

    frame, truth = people(500, 150, seed=21, names=PLAIN)
    path = tmp_path / "people.csv"
    frame.write_csv(path)
    return path, truth


def test_init_suggests_near_duplicate_entries_with_their_own_evidence(tmp_path: Path) -> None:
    path, _ = _people(tmp_path)
    out = sluice("init", "people", "--from", str(path), "--out", str(tmp_path / "proj"))
    assert out.returncode == 0, out.stderr
    assert "near duplicates (expected to fail, so judged by their own evidence):" in out.stdout
    suite = json.loads((tmp_path / "proj" / "expectations" / "suites" / "people.json").read_text())
    near = [e for e in suite["expectations"] if e["type"] == NEAR]
    assert sorted(e["kwargs"]["block_on"][0] for e in near) == ["born", "national", "zip"]
    for e in near:
        ev = e["meta"]["suggested"]
        assert ev["flagged_share"] > suite["meta"]["max_fail_share"]
        assert f"flags {ev['flagged_rows']} of {ev['sample_rows']} sample rows" in out.stdout
    off = sluice(
        "init", "people", "--from", str(path), "--out", str(tmp_path / "off"), "--no-sluice-types"
    )
    assert off.returncode == 0, off.stderr
    assert NEAR not in (tmp_path / "off" / "expectations" / "suites" / "people.json").read_text()


@pytest.mark.slow
@pytest.mark.e2e
def test_clean_rows_and_duplicate_references_trace_to_source_lines(tmp_path: Path) -> None:
    path, truth = _people(tmp_path)
    init = sluice("init", "people", "--from", str(path), "--out", str(tmp_path))
    assert init.returncode == 0, init.stderr
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
    }
    run = sluice(
        "run", str(tmp_path / "datasets" / "people.yaml"), "--partition", "2024-01-01", env=env
    )
    assert run.returncode in (0, 1), run.stderr
    source = pl.read_csv(path, infer_schema=False)
    var = tmp_path / "var" / "people"
    clean = read_outputs(var / "clean")
    assert clean.columns[:3] == ["_row_id", "_source_file", "_source_row"]
    assert {Path(f).resolve() for f in clean["_source_file"]} == {path.resolve()}
    lines = source.get_column("record").to_list()
    assert [lines[r] for r in clean["_source_row"]] == clean["record"].to_list()
    failures = pl.read_parquet(next((var / "reports").glob("*/failures.parquet")))
    near = failures.filter(pl.col("rule") == NEAR)
    quarantine = read_outputs(var / "quarantine").select("_row_id", "_source_row", "_reasons")
    pairs = set()
    for row_id, details in near.select("_row_id", "details").iter_rows():
        got = json.loads(details)
        (at,) = quarantine.filter(pl.col("_row_id") == row_id)["_source_row"]
        assert Path(got["duplicate_of_file"]).resolve() == path.resolve()
        pairs.add(tuple(sorted((int(at), int(got["duplicate_of_row"])))))
    assert pairs
    assert len(pairs & truth) / len(pairs) >= 0.95
    held = {
        int(r): reasons for r, reasons in quarantine.select("_source_row", "_reasons").iter_rows()
    }
    for first in {a for a, _ in pairs}:
        # the first occurrence stays clean, or is held for dirt of its own (the damaged copy
        # may come first in the file), never as a near duplicate
        assert first in set(clean["_source_row"]) or not any(
            NEAR in reason for reason in held[first]
        ), first


def test_amounts_with_a_currency_and_digit_groups_run_as_numbers(tmp_path: Path) -> None:
    """A sales export whose amounts read $1,234.56 and -$5.00: init declares them numbers with
    their symbol and separator, and the run writes them as floats, quarantining an amount
    whose groups are malformed ($12,34) as a type failure."""
    rng = np.random.default_rng(4)
    days = ["2024-03-04", "2024-03-05"]
    for day in days:
        folder = tmp_path / "raw" / f"date={day}"
        folder.mkdir(parents=True)
        cents = rng.integers(100, 50_000_000, 300)
        lines = [
            f'{day}-{i},"{"-" if i % 9 == 0 else ""}${c // 100:,}.{c % 100:02d}",'
            f"{['north', 'south'][i % 2]}"
            for i, c in enumerate(cents)
        ]
        if day == days[1]:
            lines.append(f'{day}-bad,"$12,34",north')
        (folder / "sales.csv").write_text("order_id,amount,region\n" + "\n".join(lines) + "\n")
    samples = [str(tmp_path / "raw" / f"date={d}" / "sales.csv") for d in days]
    out = sluice(
        "init", "sales", "--from", samples[0], "--from", samples[1], "--out", str(tmp_path)
    )
    assert out.returncode == 0, out.stderr
    spec = yaml.safe_load((tmp_path / "datasets" / "sales.yaml").read_text())
    assert spec["schema"]["amount"] == {"type": "float", "thousands": ",", "currency": "$"}
    env = {**os.environ, "SLUICE_DATASETS": str(tmp_path / "datasets")}
    run = sluice("run", "sales", "--partition", days[1], "--json", env=env)
    assert run.returncode in (0, 1), run.stderr
    summary = json.loads(run.stdout)
    assert summary["counts"]["in"] == 301
    clean = pl.read_parquet(next((tmp_path / "var" / "sales" / "clean").rglob("*.parquet")))
    assert clean.schema["amount"] == pl.Float64
    quarantine = pl.read_parquet(
        next((tmp_path / "var" / "sales" / "quarantine").rglob("*.parquet"))
    )
    bad = quarantine.filter(pl.col("order_id") == f"{days[1]}-bad")
    assert "amount|type" in bad["_reasons"][0]
    source = pl.read_csv(samples[1], infer_schema=False).with_columns(
        pl.col("amount").str.replace_all(r"[$,]", "").cast(pl.Float64).alias("expected")
    )
    both = clean.join(source.select("order_id", "expected"), on="order_id")
    assert both.height == clean.height > 250
    assert (both["amount"] == both["expected"]).all()


def test_location_ids_are_no_detector_features_and_init_says_why(tmp_path: Path) -> None:
    """Trips whose pickup and dropoff zones are numbered 1 to 265: the suggested detector
    screens the amounts only, and init's output names each numeric column it left out, and
    why, with how to add one back."""
    rng = np.random.default_rng(6)
    n = 1200
    folder = tmp_path / "raw" / "date=2024-03-04"
    folder.mkdir(parents=True)
    pl.DataFrame(
        {
            "PULocationID": rng.integers(1, 266, n),
            "DOLocationID": rng.integers(1, 266, n),
            "trip_distance": np.round(rng.gamma(2.0, 2.0, n), 2),
            "fare_amount": np.round(rng.gamma(3.0, 5.0, n), 2),
        }
    ).write_csv(folder / "trips.csv")
    out = sluice("init", "trips", "--from", str(folder / "trips.csv"), "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    spec = yaml.safe_load((tmp_path / "datasets" / "trips.yaml").read_text())
    assert spec["detectors"][0]["features"] == ["trip_distance", "fare_amount"]
    assert "detector features (knn): trip_distance, fare_amount" in out.stdout
    assert "{column: NAME, kind: categorical}" in out.stdout
    for column in ("PULocationID", "DOLocationID"):
        assert f"  {column}: its name ends in 'id'" in out.stdout


def test_a_file_written_with_its_pandas_index_is_declared_and_runs(tmp_path: Path) -> None:
    """``DataFrame.to_csv()`` writes the index under an empty name: init declares it under
    another name with the empty name as its alias, and the spec runs unedited."""
    import pandas as pd

    rng = np.random.default_rng(7)
    folder = tmp_path / "raw" / "date=2024-03-04"
    folder.mkdir(parents=True)
    n = 400
    pd.DataFrame(
        {"city": rng.choice(["a", "b", "c"], n), "amount": np.round(rng.gamma(2.0, 3.0, n), 2)}
    ).to_csv(folder / "s.csv")
    assert (folder / "s.csv").read_text().startswith(",city,amount\n")
    out = sluice("init", "s", "--from", str(folder / "s.csv"), "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    spec = yaml.safe_load((tmp_path / "datasets" / "s.yaml").read_text())
    assert spec["schema"]["column_1"] == {"type": "int", "aliases": [""]}
    env = {**os.environ, "SLUICE_DATASETS": str(tmp_path / "datasets")}
    run = sluice("run", "s", "--partition", "2024-03-04", "--json", env=env)
    assert run.returncode in (0, 1), run.stderr
    summary = json.loads(run.stdout)
    assert summary["counts"]["in"] == n
    assert summary["counts"]["clean"] + summary["counts"]["quarantine"] == n
    clean = pl.read_parquet(next((tmp_path / "var" / "s" / "clean").rglob("*.parquet")))
    assert set(clean["column_1"].to_list()) <= set(range(n))
    assert clean.height == summary["counts"]["clean"] > 0
