"""Review of a partition's quarantine: the file people decide in, its decisions, the audit log.

- :mod:`sluice.review.export`: the review file (``sluice review``): every quarantined row with
  its typed values, raw text, reasons and details, the detector's explanation, the decision
  columns and the identity of the commit it was made from;
- :mod:`sluice.review.decisions`: reading a filled-in review file back, refusing what cannot be
  applied with the row and column named;
- :mod:`sluice.review.audit`: the append-only log of every decision, and
  :func:`~sluice.review.audit.row_decisions`, every decision ever taken about a row.

Applying decisions is a new commit of the partition: :mod:`sluice.pipeline.release`.
"""

from __future__ import annotations

from sluice.review.audit import AuditEntry, row_decisions
from sluice.review.decisions import (
    Decision,
    DecisionError,
    Decisions,
    StaleDecisions,
    read_decisions,
)
from sluice.review.export import review_frame, write_review

__all__ = [
    "AuditEntry",
    "Decision",
    "DecisionError",
    "Decisions",
    "StaleDecisions",
    "read_decisions",
    "review_frame",
    "row_decisions",
    "write_review",
]
