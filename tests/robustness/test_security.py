"""Configuration is data, names cannot leave the output roots, models load only by hash, and
report values are escaped."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import pickle
import re
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.persist import save_model
from detectors.screen import fit_model
from detectors.spec import DetectorSpec
from expectations.suite import load_suite
from sluice.cli import main
from sluice.config import Partition, find_spec, load_spec
from sluice.core.errors import ConfigError
from sluice.core.files import file_sha256
from sluice.pipeline import Run, run_partition
from tests.conftest import thin
from tests.robustness.corpus import csv_text, good
from tests.robustness.support import check_conserved, manifest_path, write_dataset

DAY = "2024-01-01"
DIRNAME_RE = r"[A-Za-z_][A-Za-z0-9_]*=\d{1,4}-\d{2}(-\d{2})?"


class Marker:
    """Unpickling or constructing this creates a file: proof that code ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "!!python/object/apply:builtins.open ['{marker}', 'w']",
        "!!python/name:os.system",
        "!!python/object/new:builtins.open ['{marker}', 'w']",
    ],
)
def test_yaml_tags_in_a_spec_construct_nothing(tmp_path: Path, tag: str) -> None:
    marker = tmp_path / "ran"
    spec = write_dataset(tmp_path, {DAY: csv_text(good(0))})
    text = spec.read_text().replace("name: tiny", f"name: {tag.format(marker=marker)}")
    spec.write_text(text)
    with pytest.raises(ConfigError, match=r"tiny\.yaml:\d+: not valid YAML"):
        load_spec(spec)
    assert main(["run", str(spec), "--partition", DAY]) == 2
    assert not marker.exists()


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    spec = write_dataset(tmp_path, {DAY: csv_text(good(0))})
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    text = spec.read_text().replace("name: tiny", "name: tiny\ndescription: *a8")
    spec.write_text("\n".join(lines) + "\n" + text)
    with pytest.raises(ConfigError, match=r"description"):
        load_spec(spec)


def test_a_suite_is_json_data_never_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    suite = {
        "name": "evil",
        "expectations": [
            {
                "type": f"__import__('os').system('touch {marker}')",
                "kwargs": {"column": "id"},
            }
        ],
    }
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(suite))
    with pytest.raises(ConfigError, match=r"suite\.json.*expectations\[0\]\.type"):
        load_suite(path)
    pickled = tmp_path / "pickled.json"
    pickled.write_bytes(pickle.dumps(Marker(str(marker))))
    with pytest.raises(ConfigError, match=r"pickled\.json"):
        load_suite(pickled)
    assert not marker.exists()


def test_a_deeply_nested_suite_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "suite.json"
    path.write_text('{"name": "deep", "expectations": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ConfigError, match=r"suite\.json"):
        load_suite(path)


@pytest.mark.parametrize("name", ["../etc/passwd", "a/b", "..", "/abs", "x\x00y", "a b"])
def test_dataset_names_cannot_name_a_path(name: str) -> None:
    with pytest.raises(ConfigError, match="not a dataset name"):
        find_spec(name)
    assert main(["run", name, "--partition", DAY]) == 2


@pytest.mark.parametrize("value", ["../../etc", "2024-01-01/../../x", "2024-01-01\x00", "*"])
def test_partition_values_cannot_name_a_path(tmp_path: Path, value: str) -> None:
    spec = write_dataset(tmp_path, {DAY: csv_text(good(0))})
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        Run.prepare(str(spec), value)


@pytest.mark.parametrize(
    ("key", "value"),
    [("name", "../../x"), ("name", "a/b"), ("partition", {"key": "../x", "kind": "day"})],
)
def test_spec_names_that_would_be_paths_are_refused(
    tmp_path: Path, key: str, value: object
) -> None:
    spec = write_dataset(tmp_path, {DAY: csv_text(good(0))})
    data = yaml.safe_load(spec.read_text())
    data[key] = value
    spec.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=rf"tiny\.yaml:\d+: {key}"):
        load_spec(spec)


@settings(max_examples=200, deadline=None)
@given(
    day=st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)),
    kind=st.sampled_from(["day", "month"]),
    key=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True),
)
def test_every_partition_folder_is_one_plain_name(day: dt.date, kind: str, key: str) -> None:
    dirname = Partition.parse(day, kind, key).dirname  # type: ignore[arg-type]
    assert "/" not in dirname
    assert ".." not in dirname
    assert re.fullmatch(DIRNAME_RE, dirname)


def test_values_in_the_data_never_become_paths(tmp_path: Path) -> None:
    hostile = ["../../../../tmp/x", "/etc/passwd", "..", "date=2024-01-02", "$(touch ran)"]
    rows = [f"{v},1,1,,{v}" for v in hostile]
    spec = write_dataset(tmp_path, {DAY: csv_text(*rows)})
    before = {p for p in tmp_path.rglob("*")}
    run_partition(str(spec), DAY)
    created = {p for p in tmp_path.rglob("*")} - before
    assert created
    out = tmp_path / "out"
    assert all(p == out or out in p.parents for p in created)
    assert not (tmp_path / "ran").exists()
    check_conserved(manifest_path(tmp_path, DAY), rows_in=len(hostile))


def _model_dataset(tmp_path: Path, model: Path, sha: str) -> Path:
    rng = np.random.default_rng(0)
    rows = [f"r{i},{rng.uniform(1, 90):.3f},{rng.integers(0, 50)},,a" for i in range(300)]
    detectors = [
        {
            "name": "saved",
            "detector": "iforest",
            "features": ["amount", "count"],
            "fit": "model",
            "model": str(model),
            "model_sha256": sha,
        }
    ]
    return write_dataset(tmp_path, {DAY: csv_text(*rows)}, detectors=detectors)


def _saved_model(path: Path) -> str:
    rng = np.random.default_rng(1)
    frame = pl.DataFrame(
        {"_row_id": np.arange(400, dtype=np.uint64), "amount": rng.uniform(1, 90, 400)}
    ).with_columns(pl.Series("count", rng.integers(0, 50, 400)))
    spec = DetectorSpec.model_validate(
        {"name": "saved", "detector": "iforest", "features": ["amount", "count"]}
    )
    return save_model(fit_model(frame, spec), path)


def test_a_saved_model_runs_only_when_its_hash_matches(tmp_path: Path) -> None:
    model = tmp_path / "model.sluice-model"
    sha = _saved_model(model)
    spec = _model_dataset(tmp_path / "good", model, sha)
    summary = run_partition(str(spec), DAY)
    m = check_conserved(Path(summary["manifest"]), rows_in=300)
    assert m["detectors"][0]["model_sha256"] == sha
    assert m["detectors"][0]["fit_mode"] == "model"

    marker = tmp_path / "unpickled"
    evil = tmp_path / "evil.sluice-model"
    with zipfile.ZipFile(model) as zf:
        meta = zf.read("meta.json")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("meta.json", meta)
        zf.writestr("model.pkl", pickle.dumps(Marker(str(marker))))
    evil.write_bytes(buf.getvalue())
    for expected in (sha, file_sha256(evil)):
        spec = _model_dataset(tmp_path / f"evil-{expected[:6]}", evil, expected)
        with pytest.raises(ConfigError, match="refusing saved model"):
            run_partition(str(spec), DAY)
        assert not (spec.parent / "out" / "clean" / f"date={DAY}").exists()
    assert not marker.exists()


def test_report_values_are_escaped(tmp_path: Path) -> None:
    script = "<script>alert(1)</script>"
    rows = [good(i) for i in range(8)] + [f"{script},500,1,,{script}", f"r1,{script},1,,a"]
    spec = write_dataset(tmp_path, {DAY: csv_text(*rows)})
    summary = run_partition(str(spec), DAY)
    report = Path(summary["manifest"]).with_name("report.html")
    html = report.read_text(encoding="utf-8")
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert os.path.getsize(report) > 0


# ---- suites: configuration is data, through the real command ----------------------------------

CLI_BOUND_S = 120


def _sluice(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start the installed ``sluice`` command (no Prefect API: config errors stop before it)."""
    exe = Path(sys.executable).with_name("sluice")
    return subprocess.Popen(
        [str(exe), *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = proc.communicate(timeout=CLI_BOUND_S)
    return proc.returncode, out + err


def _hostile_entry(kwargs: dict[str, object]) -> dict[str, object]:
    return {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount", **kwargs}}


def _suite_cases(tmp_path: Path, entry: dict[str, object]) -> tuple[Path, Path, Path]:
    """A dataset whose suite holds ``entry``, and a data file: (spec, suite, data)."""
    suite = {"name": "evil", "expectations": [entry]}
    spec = write_dataset(tmp_path / "ds", {DAY: csv_text(good(0), good(1))}, suite=suite)
    data = tmp_path / "data.csv"
    data.write_text("amount,count\n1.5,2\n")
    return spec, spec.parent / "suite.json", data


def _both_commands(
    tmp_path: Path, entry: dict[str, object], capsys: pytest.CaptureFixture[str] | None = None
) -> list[tuple[str, int, str]]:
    """Exit code and output of ``sluice validate`` and ``sluice run`` on a suite with ``entry``.

    Without ``capsys`` both run as real commands in subprocesses, started together; with it,
    in this process through the same ``main``.
    """
    spec, suite, data = _suite_cases(tmp_path, entry)
    commands = {
        "validate": ["validate", str(data), "--suite", str(suite)],
        "run": ["run", str(spec), "--partition", DAY],
    }
    if capsys is None:
        procs = {name: _sluice(*args) for name, args in commands.items()}
        return [(name, *_finish(proc)) for name, proc in procs.items()]
    out = []
    for name, args in commands.items():
        code = main(args)
        captured = capsys.readouterr()
        out.append((name, code, captured.out + captured.err))
    return out


def _assert_refused(
    tmp_path: Path,
    entry: dict[str, object],
    key: str,
    marker: Path | None = None,
    capsys: pytest.CaptureFixture[str] | None = None,
) -> None:
    for command, code, text in _both_commands(tmp_path, entry, capsys):
        assert code == 2, (command, text)
        assert "suite.json:" in text
        assert key in text, (command, text)
        assert "Traceback" not in text
    assert not (tmp_path / "ds" / "out").exists()
    if marker is not None:
        assert not marker.exists()


CODE_CONDITIONS = [
    "amount > @logging.os.system('touch {m}')",
    "amount > logging.os.system('touch {m}')",
    "amount.__class__.__mro__[1].__subclasses__() == 1",
    "`amount`.__class__ > 1",
    "__import__('os').system('touch {m}') == 0",
    "(lambda: __import__('os').system('touch {m}'))() == 0",
    "amount > `__import__`('os').system('touch {m}')",
    "amount.isin(open('{m}', 'w'))",
]


def test_the_reported_condition_exploit_is_refused_by_both_real_commands(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    entry = _hostile_entry(
        {"row_condition": CODE_CONDITIONS[0].format(m=marker), "condition_parser": "pandas"}
    )
    _assert_refused(tmp_path, entry, "expectations[0].kwargs.row_condition", marker)


@pytest.mark.parametrize("condition", CODE_CONDITIONS)
def test_a_row_condition_that_would_run_code_is_refused_by_both_commands(
    tmp_path: Path, condition: str, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "PWNED"
    entry = _hostile_entry(
        {"row_condition": condition.format(m=marker), "condition_parser": "pandas"}
    )
    _assert_refused(tmp_path, entry, "expectations[0].kwargs.row_condition", marker, capsys)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    thin(
        [
            (
                {"row_condition": 'col("amount") > 1', "condition_parser": "great_expectations"},
                "expectations[0].kwargs.condition_parser",
            ),
            (
                {"row_condition": "amount > 1", "condition_parser": "spark"},
                "expectations[0].kwargs.condition_parser",
            ),
            (
                {
                    "row_condition": {
                        "type": "pass_through",
                        "pass_through_filter": "amount > @logging.os.system('touch {m}')",
                    }
                },
                "expectations[0].kwargs.row_condition",
            ),
            (
                {"row_condition": "amuont > 1", "condition_parser": "pandas"},
                "expectations[0].kwargs.row_condition",
            ),
        ],
        keep=(2,),
    ),
)
def test_condition_parsers_objects_and_columns_are_checked_by_both_commands(
    tmp_path: Path, kwargs: dict[str, object], key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "PWNED"
    text = json.dumps(kwargs).replace("{m}", str(marker))
    real = isinstance(kwargs["row_condition"], dict)
    _assert_refused(
        tmp_path, _hostile_entry(json.loads(text)), key, marker, None if real else capsys
    )


@pytest.mark.parametrize(
    "parameter",
    thin(
        [
            "__import__('os').system('touch {m}')",
            "upstream_row_count * 0.9",
            "now()",
            "partition_start + 1",
        ],
        keep=(0,),
    ),
)
def test_a_suite_parameter_expression_is_refused(
    tmp_path: Path, parameter: str, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "PWNED"
    entry: dict[str, object] = {
        "type": "expect_column_values_to_be_between",
        "kwargs": {"column": "amount", "min_value": {"$PARAMETER": parameter.format(m=marker)}},
    }
    real = parameter.startswith("__import__")
    key = "expectations[0].kwargs.min_value"
    _assert_refused(tmp_path, entry, key, marker, None if real else capsys)


def test_a_misspelt_column_stops_the_run_before_any_data_moves(tmp_path: Path) -> None:
    entry: dict[str, object] = {
        "type": "expect_column_values_to_not_be_null",
        "kwargs": {"column": "amuont"},
    }
    for command, code, text in _both_commands(tmp_path, entry):
        assert code == 2, (command, text)
        assert "expectations[0].kwargs.column" in text
        assert "did you mean 'amount'" in text
    assert not (tmp_path / "ds" / "out").exists()


CATASTROPHIC = r"^(?=a)(a+)+$"
EVIL_TEXT = "a" * 40 + "!"


def test_a_catastrophic_pattern_cannot_hang_sluice_validate(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text(f"kind,amount\n{EVIL_TEXT},1\naaa,2\n")
    suite = tmp_path / "suite.json"
    entries = [
        {
            "type": "expect_column_values_to_match_regex",
            "kwargs": {"column": "kind", "regex": CATASTROPHIC},
        },
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}},
    ]
    suite.write_text(json.dumps({"name": "slow", "expectations": entries}))
    result = tmp_path / "result.json"
    for engine in ("auto", "gx"):
        started = time.monotonic()
        proc = _sluice(
            "validate",
            str(data),
            "--suite",
            str(suite),
            "--engine",
            engine,
            "--result",
            str(result),
            env={"SLUICE_PATTERN_BUDGET_S": "1"},
        )
        code, text = _finish(proc)
        assert time.monotonic() - started < CLI_BOUND_S
        assert code == 1, text
        assert "COULD NOT RUN" in text
        assert "SLUICE_PATTERN_BUDGET_S" in text
        doc = json.loads(result.read_text())
        states = [r["state"] for r in doc["results"]]
        assert states == ["could_not_run", "passed"]
        assert "budget" in doc["results"][0]["why"]


@pytest.mark.parametrize("where", ["main", "thread"])
def test_a_catastrophic_pattern_cannot_hang_the_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    monkeypatch.setenv("SLUICE_PATTERN_BUDGET_S", "1")
    suite = {
        "name": "slow",
        "expectations": [
            {
                "type": "expect_column_values_to_match_regex",
                "kwargs": {"column": "kind", "regex": CATASTROPHIC},
                "meta": {"severity": "warn"},
            },
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}},
        ],
    }
    rows = [good(i, kind=EVIL_TEXT if i % 2 else "aaa") for i in range(6)]
    spec = write_dataset(tmp_path, {DAY: csv_text(*rows)}, suite=suite)
    summaries: list[dict[str, object]] = []
    started = time.monotonic()
    if where == "main":
        summaries.append(run_partition(str(spec), DAY))
    else:
        worker = threading.Thread(target=lambda: summaries.append(run_partition(str(spec), DAY)))
        worker.start()
        worker.join(timeout=CLI_BOUND_S)
        assert not worker.is_alive()
    assert time.monotonic() - started < CLI_BOUND_S
    (summary,) = summaries
    manifest = check_conserved(Path(str(summary["manifest"])), rows_in=6)
    verdicts = manifest["validation"]["verdicts"]
    assert [v["state"] for v in verdicts] == ["could_not_run", "passed"]
    assert "SLUICE_PATTERN_BUDGET_S" in verdicts[0]["why"]


def test_a_bad_pattern_budget_stops_the_command(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("kind\naaa\n")
    suite = tmp_path / "suite.json"
    entry = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "kind"}}
    suite.write_text(json.dumps({"name": "s", "expectations": [entry]}))
    proc = _sluice(
        "validate", str(data), "--suite", str(suite), env={"SLUICE_PATTERN_BUDGET_S": "-1"}
    )
    code, text = _finish(proc)
    assert code == 2, text
    assert "SLUICE_PATTERN_BUDGET_S" in text
    assert "Traceback" not in text


def test_partition_parameters_are_the_partitions_bounds_in_a_run(tmp_path: Path) -> None:
    between = {
        "type": "expect_column_values_to_be_between",
        "kwargs": {
            "column": "when",
            "min_value": {"$PARAMETER": "partition_start"},
            "max_value": {"$PARAMETER": "partition_end"},
            "strict_max": True,
        },
    }
    rows = [
        good(0),
        good(1),
        "late,1.5,2,2024-01-02 00:00:00,a",
        "early,1.5,2,2023-12-31 23:59:59,a",
    ]
    spec = write_dataset(
        tmp_path, {DAY: csv_text(*rows)}, suite={"name": "p", "expectations": [between]}
    )
    (entry,) = Run.prepare(str(spec), DAY).suite.entries
    assert (entry.kwargs["min_value"], entry.kwargs["max_value"]) == ("2024-01-01", "2024-01-02")
    summary = run_partition(str(spec), DAY)
    manifest = check_conserved(Path(str(summary["manifest"])), rows_in=4)
    assert manifest["counts"]["quarantined_by_reason"] == {
        "when|expect_column_values_to_be_between": 2
    }
