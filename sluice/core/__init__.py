"""The floor: definitions every layer shares, importing nothing else of the project.

``errors`` (the exception types and their exit codes), ``failures`` (the one failures table),
``frame`` (reserved column names, engine names), ``files`` (bounded reads, hashing, verified
reads) and ``versions``. ``expectations`` and ``detectors`` build on this package alone; the
orchestration in the rest of ``sluice`` and in ``flows`` builds on all three (docs/design.md,
"Layers"; the contracts in pyproject.toml are checked by ``make test``).
"""
