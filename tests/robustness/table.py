"""Print the corpus outcome table of docs/robustness.md: ``python -m tests.robustness.table``.

Runs every case through :func:`sluice.pipeline.run_partition` and ``sluice validate`` (in this
process) and prints one Markdown row per case. Errors are shown with the temporary folder
replaced by ``…``.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

from sluice.cli import main
from sluice.core.errors import SluiceError
from sluice.pipeline import run_partition
from tests.robustness.corpus import CASES, Case
from tests.robustness.support import check_conserved, reasons, write_dataset

DAY = "2024-01-01"


def _pipeline(case: Case, root: Path) -> str:
    spec = write_dataset(root, {DAY: case.content}, fmt=case.fmt, schema=case.schema)
    try:
        summary = run_partition(str(spec), DAY)
    except SluiceError as exc:
        text = str(exc).replace(str(root / "raw" / f"date={DAY}"), "…")
        return f"error: `{text[:110]}`"
    m = check_conserved(Path(summary["manifest"]), case.rows)
    c = m["counts"]
    why = ", ".join(f"`{r}`" for r in sorted(reasons(m))) or "none"
    return (
        f"{m['status']}: {c['in']} in = {c['clean']} clean + {c['quarantine']} quarantined; {why}"
    )


def _validate(case: Case, root: Path) -> str:
    if isinstance(case.content, dict):
        return "n/a (two files)"
    data = root / f"data.{case.fmt}"
    data.write_bytes(case.data)
    suite = root / "suite.json"
    gap = " (gap)" if case.validate_gap else ""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = main(["validate", str(data), "--suite", str(suite)])
    except Exception as exc:
        return f"{type(exc).__name__}{gap}"
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return f"{type(exc).__name__} escapes{gap}"
    return f"exit {code}{gap}"


def rows() -> list[str]:
    """One Markdown table row per corpus case."""
    out = []
    for case in CASES:
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            pipeline = _pipeline(case, Path(a))
            write_dataset(Path(b), {})
            validate = _validate(case, Path(b))
        cells = (f"`{case.name}`", pipeline, validate)
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return out


if __name__ == "__main__":
    print("| case | `sluice run` / `run_partition` | `sluice validate` |")
    print("|---|---|---|")
    print("\n".join(rows()))
