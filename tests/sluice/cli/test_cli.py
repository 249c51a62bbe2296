"""The ``sluice`` command: its parser, the order of its work, and what it prints as it goes."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from sluice.cli import COMMANDS, _chosen, _parser, main, printable
from sluice.core.errors import EXIT_INTERNAL
from sluice.preflight import PROTOCOL_EXTRAS
from tests.conftest import DEMO_SPEC, ROOT, SpecFactory, thin, tiny_suite

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


SHIM = """
import os, socket, sys

_blocked = {n for n in os.environ.get("SLUICE_TEST_BLOCK", "").split(",") if n}
_net_log = os.environ["SLUICE_TEST_NET_LOG"]


class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name.split(".")[0])
        return None


def _refuse(*args, **kwargs):
    with open(_net_log, "a") as fh:
        fh.write(repr(args) + "\\n")
    raise OSError("the test refuses network access")


sys.meta_path.insert(0, _Block())
socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = _refuse
"""


@dataclass(frozen=True)
class Ran:
    """A finished ``sluice`` command: exit code, output, seconds, network attempts."""

    code: int
    out: str
    err: str
    seconds: float
    network: str


def _sluice_guarded(tmp_path: Path, *args: str, block: tuple[str, ...] = ("prefect",)) -> Ran:
    """Run the real ``sluice`` with ``block`` made unimportable and every socket refused."""
    shim = tmp_path / "shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(SHIM)
    net_log = tmp_path / "network.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(shim), str(ROOT)]),
        "SLUICE_TEST_BLOCK": ",".join(block),
        "SLUICE_TEST_NET_LOG": str(net_log),
    }
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("sluice")), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    seconds = time.perf_counter() - t0
    network = net_log.read_text() if net_log.exists() else ""
    return Ran(proc.returncode, proc.stdout, proc.stderr, seconds, network)


def _broken_spec(make_dataset: SpecFactory, what: str) -> tuple[Path, str]:
    """A dataset spec broken in one way, and a text its error message must hold."""
    csv = {"2024-01-01": "id,amount,count,when,kind\na,1,1,2024-01-01 10:00:00,a\n"}
    if what == "yaml":
        spec = make_dataset(csv)
        spec.write_text(spec.read_text() + "keys: [id\n")
        return spec, "not valid YAML"
    if what == "unknown key":
        return make_dataset(csv, extra={"ouputs": {}}), "ouputs: unknown key"
    if what == "detector":
        detectors = [{"name": "d", "detector": "nope", "features": ["amount"]}]
        return make_dataset(csv, detectors=detectors), "unknown detector"
    suite = tiny_suite()
    suite["expectations"][1]["type"] = "expect_column_values_to_not_be_nul"
    return make_dataset(csv, suite=suite), "expect_column_values_to_not_be_null"


@pytest.mark.parametrize(
    ("command", "what"),
    thin(
        [(c, w) for w in ("yaml", "unknown key", "detector", "suite") for c in ("run", "backfill")],
        keep=(0, 7),
    ),
)
def test_a_broken_configuration_is_refused_before_prefect_is_imported(
    make_dataset: SpecFactory, tmp_path: Path, command: str, what: str
) -> None:
    spec, expected = _broken_spec(make_dataset, what)
    dates = ["--partition", "2024-01-01"]
    if command == "backfill":
        dates = ["--start", "2024-01-01", "--end", "2024-01-02"]
    ran = _sluice_guarded(tmp_path, command, str(spec), *dates)
    assert ran.code == 2, ran.err
    assert expected in ran.err
    assert "Traceback" not in ran.err
    assert ran.network == ""
    assert not (tmp_path / "out").exists()


MAJORITY = {
    "type": "sluice.expect_column_values_to_follow_majority_by",
    "kwargs": {"column": "kind", "by": ["id"]},
}


@pytest.mark.parametrize("where", ["spec", "flag"])
def test_a_sluice_type_on_the_gx_engine_is_refused_before_prefect_is_imported(
    make_dataset: SpecFactory, tmp_path: Path, where: str
) -> None:
    suite = tiny_suite()
    suite["expectations"].append(MAJORITY)
    csv = {"2024-01-01": "id,amount,count,when,kind\na,1,1,2024-01-01 10:00:00,a\n"}
    extra = {"validation": {"engine": "gx"}} if where == "spec" else {}
    spec = make_dataset(csv, suite=suite, extra=extra)
    flag = ["--engine", "gx"] if where == "flag" else []
    ran = _sluice_guarded(tmp_path, "run", str(spec), "--partition", "2024-01-01", *flag)
    assert ran.code == 2, ran.err
    assert "sluice.expect_column_values_to_follow_majority_by" in ran.err
    assert "the polars engine runs it" in ran.err
    assert "Traceback" not in ran.err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("url", "package", "extra"),
    thin(
        [
            ("s3://bucket/raw/date={date}/*.csv", "s3fs", "s3"),
            ("gs://bucket/raw/date={date}/*.csv", "gcsfs", "gcs"),
            ("abfs://container/raw/date={date}/*.csv", "adlfs", "azure"),
            ("simplecache::https://example.com/raw/date={date}/*.csv", "aiohttp", "http"),
        ]
    ),
)
def test_a_remote_source_without_its_package_names_the_extra_to_install(
    make_dataset: SpecFactory, tmp_path: Path, url: str, package: str, extra: str
) -> None:
    spec = make_dataset({}, extra={"source": {"path": url, "format": "csv"}})
    ran = _sluice_guarded(
        tmp_path, "run", str(spec), "--partition", "2024-01-01", block=("prefect", package)
    )
    assert ran.code == 2, ran.err
    assert f"needs {package}, which is not installed" in ran.err
    assert f"pip install 'sluice[{extra}]'" in ran.err
    assert "tiny.yaml" in ran.err
    assert "source.path" in ran.err
    assert "internal error" not in ran.err
    assert ran.network == ""


def test_an_unknown_storage_protocol_is_a_config_error(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    spec = make_dataset({}, extra={"source": {"path": "nope://x/{date}.csv", "format": "csv"}})
    ran = _sluice_guarded(tmp_path, "backfill", str(spec), "--start", "2024-01", "--end", "2024-01")
    assert ran.code == 2, ran.err
    assert "unknown storage protocol 'nope'" in ran.err
    assert "s3" in ran.err.split("allowed:")[1]


def test_every_extra_named_for_a_protocol_is_declared() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for protocol, (extra, package) in PROTOCOL_EXTRAS.items():
        assert extra in extras, f"{protocol}: add the extra {extra!r} to pyproject.toml"
        assert any(req.startswith(package) for req in extras[extra]), (protocol, extras[extra])


GOOD = "id,amount,count,when,kind\na,1,1,2024-01-01 10:00:00,a\nb,200,2,2024-01-01 11:00:00,c\n"
LINE_TIMEOUT = 300.0


def _lines(stream: IO[str]) -> queue.Queue[str | None]:
    """The lines of a pipe as they come, then None at its end."""
    got: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            got.put(line.rstrip("\n"))
        got.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return got


def _until(got: queue.Queue[str | None], prefix: str, seen: list[str]) -> str:
    deadline = time.monotonic() + LINE_TIMEOUT
    while time.monotonic() < deadline:
        line = got.get(timeout=max(deadline - time.monotonic(), 0.1))
        if line is None:
            break
        seen.append(line)
        if line.startswith(prefix):
            return line
    pytest.fail(f"no line starting {prefix!r} on stderr:\n" + "\n".join(seen))


@pytest.mark.e2e
@pytest.mark.usefixtures("prefect_api")
def test_a_backfill_prints_each_partition_when_it_finishes_into_a_pipe(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    import prefect.settings

    from sluice.pipeline import run_partition
    from sluice.write import partition_lock

    days = ["2024-01-01", "2024-01-02", "2024-01-03"]
    spec = make_dataset({d: GOOD for d in days})  # 2024-01-04 has no file
    run_partition(str(spec), days[0])
    env = {
        **os.environ,
        "PREFECT_API_URL": str(prefect.settings.PREFECT_API_URL.value()),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    cmd = [str(Path(sys.executable).with_name("sluice")), "backfill", str(spec)]
    cmd += ["--start", days[0], "--end", "2024-01-04"]
    reports = tmp_path / "out" / "reports"
    seen: list[str] = []
    with partition_lock(reports, f"date={days[2]}"):  # the third partition waits for it
        proc = subprocess.Popen(
            cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        assert proc.stderr is not None
        err = _lines(proc.stderr)
        first = _until(err, "[1/4]", seen)
        second = _until(err, "[2/4]", seen)
        assert proc.poll() is None, "the lines came only when the backfill ended"
        assert not (reports / f"date={days[2]}").exists()
    third = _until(err, "[3/4]", seen)
    fourth = _until(err, "[4/4]", seen)
    out = proc.stdout.read()
    assert proc.wait(timeout=LINE_TIMEOUT) == 1  # the fourth partition failed

    assert first.startswith(f"[1/4] tiny {days[0]}: skipped (warned: ")
    assert re.search(r"2 rows in, 1 clean, 1 quarantined \(\d+\.\d s\)$", first), first
    for line, day in ((second, days[1]), (third, days[2])):
        assert re.fullmatch(
            rf"\[\d/4\] tiny {day}: warned: 2 rows in, 1 clean, 1 quarantined \(\d+\.\d s\)", line
        ), line
    failed = r"\[4/4\] tiny 2024-01-04: FAILED: .*no source files.* \(\d+\.\d s\)"
    assert re.fullmatch(failed, fourth), fourth
    assert not re.search(r"^\[\d/4\]", out, re.MULTILINE), "stdout keeps only the summary"
    assert "backfill: 2 screened, 1 skipped, 1 failed" in out


@pytest.mark.parametrize("option", ["--days", "--rows"])
def test_the_demo_refuses_a_count_below_one(tmp_path: Path, option: str) -> None:
    ran = _sluice_guarded(tmp_path, "demo", "--dir", str(tmp_path / "demo"), option, "0")
    assert ran.code == 2, ran.err
    assert f"argument {option}: '0' is not a whole number of 1 or more" in ran.err
    assert not (tmp_path / "demo").exists()


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


def test_version_prints_the_installed_version_and_imports_nothing_heavy(tmp_path: Path) -> None:
    from importlib import metadata

    ran = _sluice_guarded(tmp_path, "--version", block=HEAVY)
    assert ran.code == 0, ran.err
    assert ran.out == f"sluice {metadata.version('sluice')}\n"
    assert ran.err == ""


def _validate_inputs(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data.csv"
    data.write_text("id,amount\na,1\nb,\nc,3\n")
    suite = tmp_path / "suite.json"
    suite.write_text(
        json.dumps(
            {
                "name": "s",
                "expectations": [
                    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}},
                    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
                ],
            }
        )
    )
    return data, suite


def test_validate_json_prints_the_result_document_alone_on_stdout(tmp_path: Path) -> None:
    data, suite = _validate_inputs(tmp_path)
    result = tmp_path / "result.json"
    ran = sluice("validate", str(data), "--suite", str(suite), "--json", "--result", str(result))
    assert ran.returncode == 1, ran.stderr
    document = json.loads(ran.stdout)
    assert document == json.loads(result.read_text())
    assert [r["success"] for r in document["results"]] == [False, True]
    assert document["results"][0]["unexpected_rows"] == [1]
    assert "1/2 expectations passed on 3 rows" in ran.stderr
    assert "expectations passed" not in ran.stdout


@pytest.mark.parametrize("command", ["run", "backfill", "validate"])
def test_json_with_a_broken_configuration_prints_the_error_on_stderr_only(
    make_dataset: SpecFactory, tmp_path: Path, command: str
) -> None:
    spec, expected = _broken_spec(make_dataset, "suite")
    if command == "validate":
        (tmp_path / "v").mkdir()
        data, _ = _validate_inputs(tmp_path / "v")
        args = ["validate", str(data), "--suite", str(tmp_path / "suite.json")]
    elif command == "run":
        args = ["run", str(spec), "--partition", "2024-01-01"]
    else:
        args = ["backfill", str(spec), "--start", "2024-01-01", "--end", "2024-01-02"]
    ran = _sluice_guarded(tmp_path, *args, "--json")
    assert ran.code == 2, ran.err
    assert ran.out == ""
    assert expected in ran.err
    assert "Traceback" not in ran.err


@pytest.mark.e2e
@pytest.mark.usefixtures("prefect_api")
def test_run_and_backfill_json_print_their_summaries_alone_on_stdout(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    import prefect.settings

    days = ["2024-01-01", "2024-01-02"]
    spec = make_dataset({d: GOOD for d in days})
    env = {
        **os.environ,
        "PREFECT_API_URL": str(prefect.settings.PREFECT_API_URL.value()),
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
    }
    exe = str(Path(sys.executable).with_name("sluice"))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [exe, *args, "--json"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    ran = cli("run", str(spec), "--partition", days[0], "--fail-on", "warned")
    assert ran.returncode == 1, ran.stderr  # warned, and --fail-on warned
    summary = json.loads(ran.stdout)
    manifest = json.loads(Path(summary["manifest"]).read_text())
    assert (summary["dataset"], summary["partition"]) == ("tiny", days[0])
    assert summary["status"] == manifest["status"] == "warned"
    assert summary["counts"] == manifest["counts"]
    assert summary["conservation"] is manifest["conservation"]["holds"] is True
    assert [c["message"] for c in summary["causes"]] == [
        c["message"] for c in manifest["verdict"]["causes"]
    ]
    assert f"tiny {days[0]}: WARNED: 2 rows in, 1 clean, 1 quarantined" in ran.stderr

    ran = cli("backfill", str(spec), "--start", days[0], "--end", days[1])
    assert ran.returncode == 0, ran.stderr
    backfill = json.loads(ran.stdout)
    assert (backfill["dataset"], backfill["start"], backfill["end"]) == ("tiny", *days)
    assert [s["partition"] for s in backfill["skipped"]] == [days[0]]
    assert backfill["skipped"][0]["skipped"].startswith("already screened")
    assert [s["partition"] for s in backfill["screened"]] == [days[1]]
    assert backfill["screened"][0]["counts"]["in"] == 2
    assert backfill["failed"] == []
    assert "backfill: 1 screened, 1 skipped, 0 failed (2 warned)" in ran.stderr


def test_json_with_stdout_closed_still_validates_and_reports_on_stderr(tmp_path: Path) -> None:
    data, suite = _validate_inputs(tmp_path)
    exe = str(Path(sys.executable).with_name("sluice"))
    closed = ["sh", "-c", 'exec "$0" "$@" >&-', exe]
    ran = subprocess.run(
        [*closed, "validate", str(data), "--suite", str(suite), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 1, ran.stderr
    assert "internal error" not in ran.stderr
    assert "1/2 expectations passed on 3 rows" in ran.stderr


def test_a_reader_that_goes_away_is_no_internal_error(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    """`sluice run ... | head`: the run is done and committed; stdout's reader left early."""
    csv = {"2024-01-01": "id,amount,count,when,kind\na,1,1,2024-01-01 10:00:00,a\n"}
    spec = make_dataset(csv)
    exe = Path(sys.executable).with_name("sluice")
    env = {**os.environ, "PREFECT_API_URL": ""}
    proc = subprocess.Popen(
        [str(exe), "run", str(spec), "--partition", "2024-01-01"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=300)
    assert code in (0, 141), err
    for wrong in ("internal error", "Traceback", "Exception ignored"):
        assert wrong not in err
    assert list((tmp_path / "out" / "reports").rglob("manifest.json"))


def test_a_reason_naming_a_column_with_a_line_break_stays_on_one_line() -> None:
    assert printable("c\nd|type") == "c\\nd|type"
    assert printable("a\tb\x1b[31m|type") == "a\\tb\\x1b[31m|type"
    assert printable("prix é 日本|type") == "prix é 日本|type"


def test_a_partition_at_the_end_of_the_calendar_is_refused_with_why() -> None:
    got = sluice("run", str(DEMO_SPEC), "--partition", "9999-12-31")
    assert got.returncode == 2, got.stdout + got.stderr
    assert "partition 9999-12-31 is beyond the days sluice can screen" in got.stderr
    assert "internal error" not in got.stderr
