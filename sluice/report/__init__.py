"""Reports data scientists read: one offline HTML file per run, metric history, alarms, drift.

- :mod:`sluice.report.metrics` measures a run from its outputs;
- :mod:`sluice.report.history` keeps every run's metrics under ``<reports>/_history/``;
- :mod:`sluice.report.anomalies` judges metrics against same-weekday history;
- :mod:`sluice.report.drift` tests each column against earlier clean partitions;
- :mod:`sluice.report.html` and :mod:`sluice.report.plots` render it (inline CSS and SVG);
- :mod:`sluice.report.build` ties them together for the write stage and ``sluice report``;
- :mod:`sluice.report.artifacts` publishes a summary to Prefect.
"""

from sluice.report.build import SCORES_NAME, StagedReport, rebuild_report, stage_report
from sluice.report.history import append_history, load_history

__all__ = [
    "SCORES_NAME",
    "StagedReport",
    "append_history",
    "load_history",
    "rebuild_report",
    "stage_report",
]
