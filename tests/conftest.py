"""Shared fixtures: small datasets on disk and one Prefect test harness per session.

No test reads the project's ``datasets/`` folder unless it names a file in it: for the whole
session ``SLUICE_DATASETS`` points at a folder of the tests' own (:func:`session_datasets`, one
spec named ``tiny``), so what a user keeps in ``datasets/`` cannot change a test's outcome. Tests
of the demo use a copy of its spec (:func:`demo_datasets`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from tests.browser import Browser

ROOT = Path(__file__).resolve().parent.parent
DEMO_SPEC = ROOT / "datasets" / "trips.yaml"
DEMO_SUITE = ROOT / "expectations" / "suites" / "trips.json"
SESSION_DATASETS = ("tiny",)

SpecFactory = Callable[..., Path]

TINY_SCHEMA: dict[str, Any] = {
    "id": "string",
    "amount": "float",
    "count": "int",
    "when": {"type": "datetime", "format": "%Y-%m-%d %H:%M:%S"},
    "kind": "string",
}


def tiny_suite() -> dict[str, Any]:
    """A small suite over the tiny schema."""
    return {
        "name": "tiny",
        "expectations": [
            {
                "type": "expect_column_values_to_be_unique",
                "kwargs": {"column": "id"},
                "meta": {"severity": "error"},
            },
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "amount"}},
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "amount", "min_value": 0, "max_value": 100},
            },
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": "kind", "value_set": ["a", "b"]},
                "meta": {"severity": "warn"},
            },
        ],
    }


def tiny_spec(name: str = "tiny", root: str = ".") -> dict[str, Any]:
    """A dataset spec over the tiny schema, with its suite at ``suite.json`` beside it."""
    return {
        "name": name,
        "source": {"path": f"{root}/raw/date={{date}}/*.csv", "format": "csv"},
        "partition": {"key": "date", "kind": "day"},
        "schema": TINY_SCHEMA,
        "keys": ["id"],
        "suite": "suite.json",
        "detectors": [],
        "outputs": {
            "clean": f"{root}/out/clean",
            "quarantine": f"{root}/out/quarantine",
            "reports": f"{root}/out/reports",
        },
    }


def write_tiny_spec(folder: Path, name: str = "tiny") -> Path:
    """Write a valid spec ``<name>.yaml`` (and ``suite.json``) into a datasets folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "suite.json").write_text(json.dumps(tiny_suite()))
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(tiny_spec(name, f"../{name}-data"), sort_keys=False))
    return path


def session_datasets() -> Path:
    """The datasets folder every test sees by default (``SLUICE_DATASETS``)."""
    return Path(os.environ["SLUICE_DATASETS"])


def demo_datasets(base: Path) -> Path:
    """A copy of the demo's spec and suite under ``base``; returns the datasets folder.

    The spec keeps its relative suite path, so the copy is laid out as in the project:
    ``base/datasets/trips.yaml`` and ``base/expectations/suites/trips.json``.
    """
    folder = base / "datasets"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEMO_SPEC, folder / DEMO_SPEC.name)
    suites = base / "expectations" / "suites"
    suites.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(DEMO_SUITE, suites / DEMO_SUITE.name)
    return folder


def add_extra_specs(folder: Path) -> tuple[str, str]:
    """Add a valid spec and an invalid one to a datasets folder; returns their names."""
    write_tiny_spec(folder, "zones")
    bad = tiny_spec("taxi")
    bad["kyes"] = bad.pop("keys")
    (folder / "taxi.yaml").write_text(yaml.safe_dump(bad, sort_keys=False))
    return "zones", "taxi"


def thin(cases: Sequence[Any], keep: Sequence[int] = (0,)) -> list[Any]:
    """Cases for ``parametrize``: those at the indices ``keep`` run in ``make test``, the others
    only under the ``slow`` marker (``make test-slow``).

    For matrices of real-CLI cases that prove one behaviour through several spellings: each
    case starts a ``sluice`` process, so the quick suite keeps one (or a few) of them.
    """
    out: list[Any] = []
    for i, case in enumerate(cases):
        if i in keep:
            out.append(case)
        else:
            values = case if isinstance(case, tuple) else (case,)
            out.append(pytest.param(*values, marks=pytest.mark.slow))
    return out


def pytest_configure(config: pytest.Config) -> None:
    """Give the session its own datasets folder, before any test module is imported."""
    folder = Path(tempfile.mkdtemp(prefix="sluice-test-datasets-"))
    for name in SESSION_DATASETS:
        write_tiny_spec(folder, name)
    os.environ["SLUICE_DATASETS"] = str(folder)
    config.add_cleanup(lambda: shutil.rmtree(folder, ignore_errors=True))


AMBIGUOUS_IS_IN = "`is_in` with a collection of the same datatype"
ambiguous_is_in: list[str] = []


def pytest_warning_recorded(
    warning_message: warnings.WarningMessage, when: str, nodeid: str, location: object
) -> None:
    """Note where polars warned of an ``is_in`` whose argument is a Series of the same type.

    polars deprecates that form (it is to mean membership in each row's list) and only prints
    the warning when the warning is an error, so the session fails on it instead
    (:func:`pytest_sessionfinish`): the argument must be ``.implode()``-d."""
    if AMBIGUOUS_IS_IN in str(warning_message.message):
        where = f"{warning_message.filename}:{warning_message.lineno}"
        ambiguous_is_in.append(f"{nodeid or when}: {where}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail a session in which polars warned of an ambiguous ``is_in`` (on the controller)."""
    if ambiguous_is_in and not hasattr(session.config, "workerinput"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Name each ambiguous ``is_in`` polars warned of."""
    for line in sorted(set(ambiguous_is_in)):
        terminalreporter.write_line(f"ambiguous is_in (implode its argument): {line}", red=True)


# shared fixtures cheap enough to build once per test worker
PER_WORKER_FIXTURES = frozenset({"prefect_api"})
# shared fixture scopes, widest first: a test joins the group of its widest one
WIDEST = ("session", "package", "module", "class")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's, which reads the marks into node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep together, on one pytest-xdist worker, the tests that share a costly fixture.

    ``make test`` runs the tests on several workers with ``--dist loadgroup``: a test without a
    group may run on any worker, so a module- or session-scoped fixture of the project's would be
    built once per worker that runs one of its tests. Each test using such a fixture joins the
    group named after the widest of them (then by name), so the fixture is built once.
    """
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None or item.get_closest_marker("xdist_group"):
            continue
        shared = sorted(
            (WIDEST.index(defs[-1].scope), f"{defs[-1].baseid}::{name}")
            for name, defs in info.name2fixturedefs.items()
            if defs
            and defs[-1].scope in WIDEST
            and name not in PER_WORKER_FIXTURES
            and defs[-1].baseid.startswith("tests")
        )
        if shared:
            item.add_marker(pytest.mark.xdist_group(shared[0][1]))


UNGROUPED = pytest.StashKey[str]()


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Note when pytest-xdist would not keep grouped tests together: its ``--dist loadgroup``
    marks a grouped test by a suffix of its node id, and when that suffix does not take
    (pytest-xdist#1386, with pytest 9.2) the groups are silently ignored."""
    if not session.config.getoption("loadgroup", default=False):
        return
    lost = [
        item.nodeid
        for item in session.items
        # pytest-xdist's own reading of the suffix: after the last "]" of a parametrized id
        if item.get_closest_marker("xdist_group")
        and item.nodeid.rfind("@") <= item.nodeid.rfind("]")
    ]
    if lost:
        session.config.stash[UNGROUPED] = (
            f"pytest-xdist did not group {len(lost)} tests that share a fixture (first: "
            f"{lost[0]}): check the pytest and pytest-xdist versions against pyproject.toml"
        )


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Fail each grouped test that pytest-xdist did not keep with its group."""
    problem = item.config.stash.get(UNGROUPED, None)
    if problem and item.get_closest_marker("xdist_group"):
        pytest.fail(problem, pytrace=False)


@pytest.fixture
def make_dataset(tmp_path: Path) -> SpecFactory:
    """Write a dataset spec, its suite and source files under tmp_path; returns the spec path.

    ``files`` maps a partition (YYYY-MM-DD) to the text of its CSV (or bytes of any format).
    """

    def factory(
        files: dict[str, str | bytes],
        *,
        schema: dict[str, Any] | None = None,
        suite: dict[str, Any] | None = None,
        fmt: str = "csv",
        detectors: list[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        ext = {"csv": "csv", "parquet": "parquet", "ndjson": "ndjson"}[fmt]
        for part, content in files.items():
            d = tmp_path / "raw" / f"date={part}"
            d.mkdir(parents=True, exist_ok=True)
            target = d / f"data.{ext}"
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        (tmp_path / "suite.json").write_text(json.dumps(suite or tiny_suite()))
        spec: dict[str, Any] = {
            "name": "tiny",
            "source": {"path": f"raw/date={{date}}/*.{ext}", "format": fmt},
            "partition": {"key": "date", "kind": "day"},
            "schema": schema or TINY_SCHEMA,
            "keys": ["id"],
            "suite": "suite.json",
            "detectors": detectors if detectors is not None else [],
            "outputs": {
                "clean": "out/clean",
                "quarantine": "out/quarantine",
                "reports": "out/reports",
            },
        }
        spec.update(extra or {})
        path = tmp_path / "tiny.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path

    return factory


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One temporary Prefect API for the whole session, with its own PREFECT_HOME."""
    home = tmp_path_factory.mktemp("prefect-home")
    os.environ["PREFECT_HOME"] = str(home)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Headless Chromium driven by Playwright, network cut (:mod:`tests.browser`).

    Skips, saying how to install it, only when no Chromium is on PATH (``make test`` installs
    Debian's). Function-scoped: Playwright's sync API keeps its event loop marked as running in
    this thread while it is started, which would break ``asyncio.run`` in other tests.
    """
    from tests.browser import INSTALL_HINT, Browser, find_chromium

    executable = find_chromium()
    if executable is None:
        pytest.skip(f"no Chromium on PATH: {INSTALL_HINT}")
    with Browser(executable) as opened:
        yield opened
