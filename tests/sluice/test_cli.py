"""The ``sluice`` command's parser: subcommand options load only with their subcommand."""

from __future__ import annotations

import subprocess
import sys

from sluice.cli import _chosen, _parser

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
