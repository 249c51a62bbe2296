"""The ``sluice`` command's parser: subcommand options load only with their subcommand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sluice.cli import COMMANDS, EXIT_INTERNAL, _chosen, _parser, main

HEAVY = ("prefect", "sluice.report.build", "great_expectations", "polars")


def _imported_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return set(out.stdout.split())


def test_top_level_help_imports_nothing_heavy() -> None:
    loaded = _imported_after("from sluice.cli import _parser\n_parser('').format_help()")
    assert not loaded & set(HEAVY)


def test_a_subcommand_gets_its_own_options_only_when_named() -> None:
    assert _chosen(["-v", "model", "trips", "--start", "2024-01-01"]) == "model"
    assert _chosen(["run", "model", "--partition", "2024-01-01"]) == "run"  # a dataset named model
    assert _chosen(["--help"]) is None
    args = _parser("model").parse_args(["model", "trips", "--start", "2024-01", "--detector", "d"])
    assert (args.dataset, args.detector, str(args.start)) == ("trips", "d", "2024-01-01")
    full = _parser().parse_args(["validate", "f.csv", "--suite", "s.json"])
    assert full.command == "validate"


def sluice(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The installed ``sluice`` command, run to its end."""
    exe = str(Path(sys.executable).with_name("sluice"))
    return subprocess.run(
        [exe, *args], check=False, capture_output=True, text=True, timeout=timeout
    )


def test_special_files_end_in_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    pipe = tmp_path / "spec.yaml"
    os.mkfifo(pipe)
    zero = tmp_path / "suite.json"
    zero.symlink_to("/dev/zero")
    data = tmp_path / "data.csv"
    data.write_text("id\nr1\n")
    ran = sluice("run", str(pipe), "--partition", "2024-01-01", timeout=60)
    assert ran.returncode == 2, ran.stderr
    assert f"{pipe}: dataset spec: not a regular file; found 'a FIFO" in ran.stderr
    checked = sluice("validate", str(data), "--suite", str(zero), timeout=60)
    assert checked.returncode == 2, checked.stderr
    assert f"{zero}: suite file: not a regular file; found 'a character device'" in checked.stderr
    data_pipe = tmp_path / "pipe.csv"
    os.mkfifo(data_pipe)
    suite = tmp_path / "good.json"
    suite.write_text(json.dumps({"name": "s", "expectations": []}))
    piped = sluice("validate", str(data_pipe), "--suite", str(suite), timeout=60)
    assert piped.returncode == 2, piped.stderr
    assert f"{data_pipe}: not a regular file; found a FIFO" in piped.stderr
    assert "Traceback" not in ran.stderr + checked.stderr + piped.stderr


def _validate_ragged_csv(tmp_path: Path, runs: int) -> list[int]:
    """Exit codes of ``runs`` runs of ``sluice validate`` on a ragged CSV, four at a time."""
    data = tmp_path / "ragged.csv"
    data.write_text("id,amount\nr1,1.5\nr2\nr3,3,extra\n")
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"name": "s", "expectations": []}))
    exe = str(Path(sys.executable).with_name("sluice"))
    cmd = [exe, "validate", str(data), "--suite", str(suite)]
    codes: list[int] = []
    for start in range(0, runs, 4):
        batch = [
            subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for _ in range(min(4, runs - start))
        ]
        for proc in batch:
            _, err = proc.communicate(timeout=300)
            assert "terminate called" not in err
            codes.append(proc.returncode)
    return codes


def test_validate_exits_2_on_a_ragged_csv_every_time(tmp_path: Path) -> None:
    assert _validate_ragged_csv(tmp_path, 8) == [2] * 8


@pytest.mark.slow
def test_validate_exits_2_on_a_ragged_csv_100_times_of_100(tmp_path: Path) -> None:
    assert _validate_ragged_csv(tmp_path, 100) == [2] * 100


def test_a_rust_panic_is_an_internal_error_not_a_failed_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import polars as pl

    def panics(_args: object) -> int:
        raise pl.exceptions.PanicException("operator does not support primitive `Int256`")

    monkeypatch.setitem(COMMANDS, "validate", panics)
    assert main(["validate", "f.csv", "--suite", "s.json"]) == EXIT_INTERNAL
    assert "internal error: PanicException: operator does not support" in capsys.readouterr().err
