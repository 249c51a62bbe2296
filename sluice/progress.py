"""Progress on a terminal, silence in logs.

When standard error is a terminal, stages update one status line in place; otherwise no status
is printed, and logs keep only the summaries that flows and the CLI write. The one line per
finished partition of a backfill is printed on standard error in both cases (:class:`LineHandler`).
"""

from __future__ import annotations

import logging
import sys

PARTITION_LOG = "prefect.flow_runs.partitions"
"""The logger of a backfill's one line per finished partition: a child of Prefect's flow-run
logger, so the lines reach the run's logs in the API; the CLI also prints them on stderr."""

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


class LineHandler(logging.Handler):
    """Write each record's message as one line on standard error, terminal or not.

    A status line shown by :func:`progress` is cleared first, so the line stands alone.
    """

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record's message and flush."""
        try:
            message = record.getMessage()
            done()
            sys.stderr.write(message + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)
