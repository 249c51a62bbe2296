"""The polars engine: GX suites compiled to polars expressions, with GX's verdicts.

``supports(entry)`` says whether an entry compiles (``compiled_on(frame)`` for many entries);
``run_polars(frame, entries)`` validates a frame in one pass. The supported types are in
:data:`SUPPORTED_TYPES`; where GX's answers and this engine's differ on purpose,
docs/engines.md lists why.
"""

from expectations.polars_engine.registry import SUPPORTED_TYPES
from expectations.polars_engine.runner import (
    ExpectationRaised,
    compile_entry,
    compiled_on,
    run_polars,
    supports,
    unsupported_error,
)

__all__ = [
    "SUPPORTED_TYPES",
    "ExpectationRaised",
    "compile_entry",
    "compiled_on",
    "run_polars",
    "supports",
    "unsupported_error",
]
