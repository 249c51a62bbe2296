"""GX's expectation types and the arguments each takes, kept as a committed file.

Importing GX takes seconds (tens of seconds on a busy machine), so the suite loader first checks
type names and argument names against ``gx_catalog.json`` and answers a typo without GX; GX still
validates every value afterwards. The file is used only when it was made from the installed GX
version. ``python -m expectations.gx_catalog`` regenerates it; ``--check`` says whether it is
current.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

CATALOG = Path(__file__).with_name("gx_catalog.json")
COMMAND = "python -m expectations.gx_catalog"


@cache
def gx_version() -> str:
    """The installed GX version, read without importing GX (once per process: each look-up
    scans every installed distribution's metadata)."""
    return metadata.version("great-expectations")


def build() -> dict[str, Any]:
    """The catalog of the installed GX: its version and each type's argument names (imports GX)."""
    from great_expectations.expectations.expectation import Expectation
    from great_expectations.expectations.registry import get_expectation_impl

    from expectations.suite import NOT_KWARGS, registered_types

    base = set(Expectation.__fields__)
    types: dict[str, list[str]] = {}
    for name in registered_types():
        fields = get_expectation_impl(name).__fields__
        types[name] = sorted(n for n in fields if n not in base and n not in NOT_KWARGS)
    return {"great_expectations": gx_version(), "types": types}


def text(catalog: dict[str, Any]) -> str:
    """The catalog as the committed file's text."""
    return json.dumps(catalog, indent=1, sort_keys=True) + "\n"


@cache
def arguments() -> dict[str, tuple[str, ...]] | None:
    """Each expectation type's argument names, or None when the file is not of the installed GX."""
    try:
        data = json.loads(CATALOG.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("great_expectations") != gx_version():
        return None
    return {name: tuple(args) for name, args in data["types"].items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Write the catalog of the installed GX (or, with ``--check``, exit 1 when it differs)."""
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__)
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if out of date")
    args = p.parse_args(argv)
    new = text(build())
    old = CATALOG.read_text(encoding="utf-8") if CATALOG.exists() else ""
    if args.check:
        if new != old:
            print(f"{CATALOG} is out of date: run {COMMAND}", file=sys.stderr)
            return 1
        return 0
    if new != old:
        CATALOG.write_text(new, encoding="utf-8")
        print(f"{CATALOG}: updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
