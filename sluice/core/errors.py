"""Errors for people: each names the file, the place, what was found and what is allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
"""Exit codes of every command: done; a check failed (the run's verdict); a usage, configuration
or input error (nothing was written); an internal error (a bug: the traceback is printed)."""


class SluiceError(Exception):
    """Base class: an error with a message meant for the person running sluice."""

    exit_code = EXIT_USAGE


class ConfigError(SluiceError):
    """A dataset spec, suite or parameter that cannot be understood. Raised before data moves."""

    def __init__(
        self,
        problem: str,
        *,
        file: Path | str | None = None,
        line: int | None = None,
        key: str | None = None,
        found: object = None,
        allowed: str | None = None,
    ) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.key = key
        self.found = found
        self.allowed = allowed
        self.problem = problem
        where = self.file or "<config>"
        if line is not None:
            where += f":{line}"
        parts = [f"{where}: "]
        if key:
            parts.append(f"{key}: ")
        parts.append(problem)
        if found is not None:
            parts.append(f"; found {found!r}")
        if allowed:
            parts.append(f"; allowed: {allowed}")
        super().__init__("".join(parts))


class InputError(SluiceError):
    """A source partition that cannot be read at all (missing, unreadable, wrong format)."""


class OutputError(SluiceError):
    """An output root or a spill file cannot be written (read-only, full, not a folder)."""


class RunFailed(SluiceError):
    """A run's verdict is ``failed``: its outputs are written, its causes are in ``summary``."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, summary: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.summary = summary


class CriticalCheckFailed(RunFailed):
    """A critical expectation failed: the partition is quarantined whole and the run fails."""


class ValidationFailed(SluiceError):
    """The strict soft path (``sluice.validate``) found rows to quarantine, or a failed verdict.

    ``result`` is the :class:`sluice.screening.ScreenResult` of the call: its ``quarantine``
    holds the rows and their reasons, its ``verdict`` the causes.
    """

    exit_code = 1

    def __init__(self, message: str, result: Any) -> None:
        super().__init__(message)
        self.result = result
