"""Progress on a terminal, silence in logs.

When standard error is a terminal, stages update one status line in place; otherwise nothing is
printed here, and logs keep only the summaries that flows and the CLI write.
"""

from __future__ import annotations

import sys

_state = {"active": False}


def progress(dataset: str, partition: str, stage: str) -> None:
    """Show which stage of which partition is running, on a terminal only."""
    if not sys.stderr.isatty():
        return
    sys.stderr.write(f"\r\x1b[2K{dataset} {partition}: {stage}...")
    sys.stderr.flush()
    _state["active"] = True


def done() -> None:
    """End the status line, if one was shown."""
    if _state["active"]:
        sys.stderr.write("\r\x1b[2K")
        sys.stderr.flush()
        _state["active"] = False
