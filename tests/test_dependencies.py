"""Declared dependencies match imports.

Every third-party module imported by the runtime packages (sluice, flows, expectations,
detectors) must come from a runtime dependency of ``pyproject.toml``, or from an extra with the
import guarded by an ``except ImportError``; every module imported by tests, benchmarks and
scripts must come from a runtime or ``dev`` dependency; and every declared dependency must be
imported somewhere, unless it is listed below with the reason it is declared at all. Imports
count in every form the project uses: ``import x``, ``from x import y``,
``importlib.import_module("x")`` and import paths given as ``"module:attribute"`` strings (the
detector registry's plug-ins, uvicorn's app factory).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from sluice.preflight import PROTOCOL_EXTRAS

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_DIRS = ("sluice", "flows", "expectations", "detectors")
DEV_DIRS = ("tests", "bench", "scripts")
FIRST_PARTY = frozenset({*RUNTIME_DIRS, *DEV_DIRS})

# Runtime dependencies declared only to cap a transitive dependency of Prefect (docs/traps.md).
CAP_ONLY: dict[str, str] = {
    # fastapi >= 0.151 refuses the `"limit": null` of Prefect's worker query: `prefect deploy`
    # fails (test_prefects_server_answers_the_worker_query_of_prefect_deploy below)
    "fastapi": "Prefect's server with fastapi >= 0.151 fails `prefect deploy` (422)",
}

# Development tools run as commands or plug-ins, never imported.
DEV_TOOLS: dict[str, str] = {
    "pytest-timeout": "pytest plug-in (the `timeout` setting in pyproject.toml)",
    "pytest-xdist": "pytest plug-in: `make test` spreads the tests over worker processes (-n)",
    "ruff": "linter and formatter, run as a command",
    "mypy": "type checker, run as a command",
    "import-linter": "layer contracts, run as `lint-imports` by `make test`",
    "types-pyyaml": "type stubs for mypy",
    "pandas-stubs": "type stubs for mypy",
    "types-jsonschema": "type stubs for mypy",
    "types-psutil": "type stubs for mypy",
    "moto": "local S3 server, run as `python -m moto.server` by tests/s3.py",
    "dask": "the `dask scheduler` and `dask worker` commands of tests/sluice/pipeline/test_dask.py",
    "s3fs": "fsspec's s3:// filesystem, loaded by name when the `sluice` command of "
    "tests/sluice/storage/test_s3_sources.py reads sources on the local S3 server",
    "aiobotocore": "s3fs's S3 client: named so that pip resolves its botocore with moto's boto3",
}

# "package.module:attribute"; a dotted module, so that "about:blank" is not one
IMPORT_PATH = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+):[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError"})


def normalize(name: str) -> str:
    """A distribution name in its canonical form (PEP 503): lower case, runs of ``-_.`` as ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The distribution a PEP 508 requirement string names (``pkg[extra]>=1; marker``)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return normalize(match.group(1))


@dataclass(frozen=True)
class Declared:
    """The dependencies ``pyproject.toml`` declares, by canonical distribution name."""

    runtime: frozenset[str]
    dev: frozenset[str]
    extras: Mapping[str, frozenset[str]]


def declared(pyproject: Path) -> Declared:
    """Read the runtime dependencies, the ``dev`` extra and the other extras of a pyproject."""
    project = tomllib.loads(pyproject.read_text())["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    return Declared(
        runtime=frozenset(requirement_name(r) for r in project["dependencies"]),
        dev=frozenset(requirement_name(r) for r in optional.get("dev", [])),
        extras={
            extra: frozenset(requirement_name(r) for r in reqs)
            for extra, reqs in optional.items()
            if extra != "dev"
        },
    )


@dataclass(frozen=True)
class Use:
    """One import of a top-level module: where, and whether an ``except ImportError`` guards it."""

    where: str
    guarded: bool


@dataclass
class _Collector(ast.NodeVisitor):
    """Collects the top-level module of every import in one file."""

    where: str
    uses: dict[str, list[Use]] = field(default_factory=dict)
    _guards: int = 0

    def _add(self, module: str, node: ast.AST) -> None:
        top = module.split(".", maxsplit=1)[0]
        line = getattr(node, "lineno", 0)
        self.uses.setdefault(top, []).append(Use(f"{self.where}:{line}", self._guards > 0))

    def visit_Try(self, node: ast.Try) -> None:
        guarded = any(_catches_import_error(h) for h in node.handlers)
        self._guards += guarded
        for stmt in node.body:
            self.visit(stmt)
        self._guards -= guarded
        for handler in node.handlers:
            self.visit(handler)
        for stmt in [*node.orelse, *node.finalbody]:
            self.visit(stmt)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            self._add(node.module, node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        arg = node.args[0] if node.args else None
        literal = arg.value if isinstance(arg, ast.Constant) else None
        if name in ("import_module", "__import__") and isinstance(literal, str):
            self._add(literal, node)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str):
            match = IMPORT_PATH.fullmatch(node.value)
            if match is not None:
                self._add(match.group(1), node)


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(k, ast.Name) and k.id in IMPORT_ERRORS for k in kinds)


def imports(root: Path, dirs: Iterable[str]) -> dict[str, list[Use]]:
    """Every third-party top-level module imported by the ``.py`` files under ``dirs``."""
    found: dict[str, list[Use]] = {}
    for folder in dirs:
        for path in sorted((root / folder).rglob("*.py")):
            collector = _Collector(str(path.relative_to(root)))
            collector.visit(ast.parse(path.read_bytes(), filename=str(path)))
            for top, uses in collector.uses.items():
                if top not in FIRST_PARTY and top not in sys.stdlib_module_names:
                    found.setdefault(top, []).extend(uses)
    return found


def distributions(module: str, index: Mapping[str, list[str]]) -> frozenset[str]:
    """The installed distributions that provide a top-level module, canonical names."""
    return frozenset(normalize(d) for d in index.get(module, []))


def _where(uses: list[Use]) -> str:
    shown = ", ".join(u.where for u in uses[:3])
    return shown + (f" and {len(uses) - 3} more" if len(uses) > 3 else "")


def problems(
    root: Path,
    deps: Declared,
    index: Mapping[str, list[str]],
    cap_only: Mapping[str, str] = CAP_ONLY,
    dev_tools: Mapping[str, str] = DEV_TOOLS,
) -> list[str]:
    """Every mismatch between the imports under ``root`` and the declared dependencies."""
    found: list[str] = []
    extras = frozenset[str]().union(*deps.extras.values())
    runtime_uses = imports(root, RUNTIME_DIRS)
    dev_uses = imports(root, DEV_DIRS)
    used: set[str] = set()
    for scope, uses_by_module, allowed in (
        ("runtime", runtime_uses, deps.runtime),
        ("dev", dev_uses, deps.runtime | deps.dev),
    ):
        for module, uses in sorted(uses_by_module.items()):
            dists = distributions(module, index)
            used |= dists
            if not dists:
                found.append(
                    f"{module} is imported ({_where(uses)}) but no installed distribution "
                    "provides it: declare the package that does and install it"
                )
            elif not dists & allowed:
                unguarded = [u for u in uses if not u.guarded]
                if scope == "runtime" and dists & extras and not unguarded:
                    continue
                wanted = "a runtime dependency" if scope == "runtime" else "a runtime or dev one"
                if scope == "runtime" and dists & extras:
                    wanted += " (or guard the import with `except ImportError` for its extra)"
                found.append(
                    f"{module} (distribution {', '.join(sorted(dists))}) is imported by "
                    f"{_where(unguarded or uses)} but is not {wanted} in pyproject.toml"
                )
    for dist in sorted(deps.runtime - used):
        if dist not in cap_only:
            found.append(
                f"runtime dependency {dist} is declared but nothing under "
                f"{', '.join(RUNTIME_DIRS)} imports it: drop it, or list it in CAP_ONLY with "
                "the reason it is declared"
            )
    for dist in sorted(set(cap_only)):
        if dist not in deps.runtime:
            found.append(f"CAP_ONLY lists {dist}, which is not a runtime dependency")
        elif dist in used:
            found.append(f"CAP_ONLY lists {dist}, which is imported: remove it from CAP_ONLY")
    for dist in sorted(deps.dev - used - set(dev_tools)):
        found.append(
            f"dev dependency {dist} is declared but nothing imports it: drop it, or list it "
            "in DEV_TOOLS with what runs it"
        )
    return found


@pytest.fixture(scope="module")
def index() -> Mapping[str, list[str]]:
    """Installed top-level modules and the distributions that provide them."""
    return packages_distributions()


@pytest.fixture(scope="module")
def deps() -> Declared:
    """This project's declared dependencies."""
    return declared(ROOT / "pyproject.toml")


def test_declared_dependencies_match_the_imports(
    deps: Declared, index: Mapping[str, list[str]]
) -> None:
    assert problems(ROOT, deps, index) == []


def _tree(tmp_path: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_an_undeclared_runtime_import_is_named(
    tmp_path: Path, deps: Declared, index: Mapping[str, list[str]]
) -> None:
    root = _tree(tmp_path, {"sluice/report/console.py": "import polars\nimport rich.table\n"})
    found = problems(root, deps, index, cap_only={}, dev_tools={})
    assert any(p.startswith("rich (distribution rich)") for p in found), found
    assert any("sluice/report/console.py:2" in p for p in found), found
    assert not any(p.startswith("polars ") for p in found), found


def test_a_dependency_dropped_while_in_use_is_named(
    tmp_path: Path, deps: Declared, index: Mapping[str, list[str]]
) -> None:
    root = _tree(tmp_path, {"detectors/x.py": "from polars import col\n"})
    without = Declared(deps.runtime - {"polars"}, deps.dev | {"polars"}, deps.extras)
    found = problems(root, without, index, cap_only={}, dev_tools={})
    assert [p for p in found if p.startswith("polars ")] == [
        "polars (distribution polars) is imported by detectors/x.py:1 but is not a runtime "
        "dependency in pyproject.toml"
    ]


def test_a_declared_dependency_nothing_imports_is_named(
    tmp_path: Path, index: Mapping[str, list[str]]
) -> None:
    root = _tree(tmp_path, {"flows/a.py": "import polars\n", "tests/t.py": "import pytest\n"})
    deps = Declared(frozenset({"polars", "rich"}), frozenset({"pytest", "ruff"}), {})
    assert problems(root, deps, index, cap_only={}, dev_tools={}) == [
        "runtime dependency rich is declared but nothing under sluice, flows, expectations, "
        "detectors imports it: drop it, or list it in CAP_ONLY with the reason it is declared",
        "dev dependency ruff is declared but nothing imports it: drop it, or list it in "
        "DEV_TOOLS with what runs it",
    ]


def test_test_only_imports_need_a_dev_dependency_not_a_runtime_one(
    tmp_path: Path, index: Mapping[str, list[str]]
) -> None:
    root = _tree(tmp_path, {"sluice/a.py": "import polars\n", "scripts/s.py": "import pytest\n"})
    ok = Declared(frozenset({"polars"}), frozenset({"pytest"}), {})
    assert problems(root, ok, index, cap_only={}, dev_tools={}) == []
    runtime_import = _tree(tmp_path, {"sluice/b.py": "import pytest\n"})
    assert problems(runtime_import, ok, index, cap_only={}, dev_tools={}) == [
        "pytest (distribution pytest) is imported by sluice/b.py:1 but is not a runtime "
        "dependency in pyproject.toml"
    ]


def test_import_paths_and_import_module_count_as_imports(
    tmp_path: Path, index: Mapping[str, list[str]]
) -> None:
    root = _tree(
        tmp_path,
        {
            "detectors/r.py": (
                'PATH = "pyod.models.knn:KNN"\nURL = "about:blank"\nWHEN = "10:30"\n'
            ),
            "flows/f.py": 'import importlib\nimportlib.import_module("yaml")\n',
        },
    )
    uses = imports(root, RUNTIME_DIRS)
    assert sorted(uses) == ["pyod", "yaml"]
    assert [u.where for u in uses["pyod"]] == ["detectors/r.py:1"]
    deps = Declared(frozenset({"pyod"}), frozenset(), {})
    assert problems(root, deps, index, cap_only={}, dev_tools={}) == [
        "yaml (distribution pyyaml) is imported by flows/f.py:2 but is not a runtime "
        "dependency in pyproject.toml"
    ]


def test_an_extra_package_may_be_imported_only_behind_an_import_error_guard(
    tmp_path: Path, index: Mapping[str, list[str]]
) -> None:
    deps = Declared(frozenset(), frozenset(), {"config": frozenset({"pyyaml"})})
    guarded = "try:\n    import yaml\nexcept ImportError:\n    yaml = None\n"
    assert problems(_tree(tmp_path / "a", {"sluice/g.py": guarded}), deps, index, {}, {}) == []
    bare = _tree(tmp_path / "b", {"sluice/g.py": "import yaml\n"})
    assert problems(bare, deps, index, {}, {}) == [
        "yaml (distribution pyyaml) is imported by sluice/g.py:1 but is not a runtime "
        "dependency (or guard the import with `except ImportError` for its extra) in "
        "pyproject.toml"
    ]


def test_an_import_no_installed_distribution_provides_is_named(
    tmp_path: Path, index: Mapping[str, list[str]]
) -> None:
    root = _tree(tmp_path, {"bench/b.py": "import no_such_module_sluice\n"})
    deps = Declared(frozenset(), frozenset(), {})
    assert problems(root, deps, index, {}, {}) == [
        "no_such_module_sluice is imported (bench/b.py:1) but no installed distribution "
        "provides it: declare the package that does and install it"
    ]


def test_every_storage_extra_the_errors_name_is_declared_with_its_package(deps: Declared) -> None:
    for protocol, (extra, package) in PROTOCOL_EXTRAS.items():
        assert extra in deps.extras, f"{protocol}:// points to sluice[{extra}], not declared"
        assert normalize(package) in deps.extras[extra], (
            f"sluice[{extra}] does not install {package}, which {protocol}:// needs"
        )


def test_the_readme_says_how_to_install_each_storage_extra(deps: Declared) -> None:
    readme = (ROOT / "README.md").read_text()
    for extra in sorted(set(deps.extras) - {"dev"}):
        assert f"sluice[{extra}]" in readme, f"README.md does not say how to install [{extra}]"


@pytest.mark.usefixtures("prefect_api")
def test_prefects_server_answers_the_worker_query_of_prefect_deploy() -> None:
    """fastapi >= 0.151 refuses the ``"limit": null`` Prefect's client sends (the fastapi cap)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    name = f"dependencies-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=name, type="process"))
        assert client.read_workers_for_work_pool(name) == []
