"""``source.max_files``: a partition of too many files is refused before any is read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sluice.config import MAX_FILES, load_spec
from sluice.core.errors import ConfigError, InputError
from sluice.ingest import list_source_files
from tests.conftest import SpecFactory

ROWS = "id,amount,count,when,kind\n{i},1,1,2024-01-01 10:00:00,a\n"


def _drop(spec: Path, day: str, n: int) -> None:
    folder = spec.parent / "raw" / f"date={day}"
    for i in range(n):
        (folder / f"extra-{i:03d}.csv").write_text(ROWS.format(i=f"x{i}"))


def _limit(spec: Path, n: int) -> None:
    data = yaml.safe_load(spec.read_text())
    data["source"]["max_files"] = n
    spec.write_text(yaml.safe_dump(data, sort_keys=False))


def test_the_limit_counts_files_and_allows_exactly_max_files(make_dataset: SpecFactory) -> None:
    spec = make_dataset({"2024-01-01": ROWS.format(i="a")})
    _drop(spec, "2024-01-01", 4)
    _limit(spec, 5)
    loaded = load_spec(spec)
    assert len(list_source_files(loaded, loaded.spec.partition.parse("2024-01-01"))) == 5
    _drop(spec, "2024-01-01", 5)
    with pytest.raises(InputError) as got:
        list_source_files(loaded, loaded.spec.partition.parse("2024-01-01"))
    text = str(got.value)
    assert "tiny date=2024-01-01: 6 source files match" in text
    assert "source.max_files allows 5" in text
    assert "smaller partitions (partition.kind: hour)" in text


def test_the_default_limit_and_bad_limits(make_dataset: SpecFactory) -> None:
    spec = make_dataset({"2024-01-01": ROWS.format(i="a")})
    assert load_spec(spec).spec.source.max_files == MAX_FILES
    for bad in (0, -1, "many"):
        _limit(spec, bad)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=r"source\.max_files"):
            load_spec(spec)


def test_sluice_run_refuses_a_partition_of_too_many_files(make_dataset: SpecFactory) -> None:
    spec = make_dataset({"2024-01-01": ROWS.format(i="a")})
    _drop(spec, "2024-01-01", 3)
    _limit(spec, 2)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["SLUICE_PREFECT"] = "0"
    exe = str(Path(sys.executable).with_name("sluice"))
    got = subprocess.run(
        [exe, "run", str(spec), "--partition", "2024-01-01", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert got.returncode == 2, got.stderr
    assert got.stdout == ""
    assert "4 source files match" in got.stderr
    assert "source.max_files allows 2" in got.stderr
    assert "Traceback" not in got.stderr
    for side in ("clean", "quarantine", "reports"):
        assert not (spec.parent / "out" / side / "date=2024-01-01").exists()
