"""Every module of the project sits in exactly one layer of the import contract in pyproject.toml.

``lint-imports`` (run by ``make test``) checks that no layer imports one above it; a module in no
layer escapes that check, so this test refuses one. ``python -m tests.test_layers`` prints how
many modules each layer holds.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def contract_layers() -> list[list[str]]:
    """The layers of the ``layers`` contract, top first; each a list of module names."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    linter = config["tool"]["importlinter"]
    (contract,) = [c for c in linter["contracts"] if c["id"] == "layers"]
    return [[m.strip() for m in layer.replace("|", ":").split(":")] for layer in contract["layers"]]


def project_modules() -> list[str]:
    """Every module under the root packages (packages by their ``__init__``)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    names = []
    for package in config["tool"]["importlinter"]["root_packages"]:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def layer_of(module: str, layers: list[list[str]]) -> list[int]:
    """The indices of the layers that hold ``module`` (itself or a package above it)."""
    return [
        i
        for i, layer in enumerate(layers)
        if any(module == m or module.startswith(m + ".") for m in layer)
    ]


def test_every_module_is_in_exactly_one_layer() -> None:
    layers = contract_layers()
    # the top-level package itself only re-exports the public API, lazily
    unplaced = [m for m in project_modules() if m != "sluice" and len(layer_of(m, layers)) != 1]
    assert unplaced == [], f"add these modules to a layer in pyproject.toml: {unplaced}"


def test_the_floor_is_the_bottom_layer_and_the_cli_the_top() -> None:
    layers = contract_layers()
    assert layers[-1] == ["sluice.core"]
    assert layers[0] == ["sluice.cli"]
    assert {"expectations", "detectors"} == set(layers[-2])


def test_a_module_outside_every_layer_is_found() -> None:
    assert layer_of("sluice.somewhere_new", contract_layers()) == []
    assert layer_of("sluice.core.frame", contract_layers()) == [len(contract_layers()) - 1]


if __name__ == "__main__":
    modules = project_modules()
    for layer in contract_layers():
        count = sum(1 for m in modules if layer_of(m, [layer]))
        print(f"{count:3d}  {' : '.join(layer)}")
