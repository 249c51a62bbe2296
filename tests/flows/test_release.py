"""The release flow: a typed form in the UI and a markdown artifact summarising the release."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from flows.parameters import HOUR_PATTERN
from flows.release import release_decisions
from sluice.pipeline import run_partition
from sluice.pipeline.release import review_partition
from sluice.report.artifacts import artifact_key
from tests.conftest import SpecFactory

CSV = (
    "id,amount,count,when,kind\n"
    "a,1,1,2024-01-01 10:00:00,a\n"
    "b,200,2,2024-01-01 11:00:00,a\n"
    "c,3,3,2024-01-01 12:00:00,b\n"
    "d,-5,4,2024-01-01 13:00:00,b\n"
)


def test_the_form_asks_for_dataset_partition_file_and_reviewer() -> None:
    props = release_decisions.parameters.properties
    assert set(props) == {"dataset", "partition", "decisions", "by"}
    assert set(release_decisions.parameters.required or []) == set(props)
    assert {"type": "string", "format": "date"} in props["partition"]["anyOf"]
    assert {"type": "string", "pattern": HOUR_PATTERN} in props["partition"]["anyOf"]
    assert props["decisions"]["pattern"] == r"(?i)\.(csv|parquet)$"
    assert props["decisions"]["minLength"] == 1
    assert props["by"]["minLength"] == 1


@pytest.mark.usefixtures("prefect_api")
def test_a_flow_run_releases_and_publishes_a_summary(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    spec = str(make_dataset({"2024-01-01": CSV}))
    first = run_partition(spec, "2024-01-01")
    assert first["counts"]["quarantine"] == 2
    review, _ = review_partition(spec, "2024-01-01", tmp_path / "review.csv")
    frame = pl.read_csv(review, infer_schema=False)
    decided = frame.with_columns(
        pl.when(pl.col("id") == "b")
        .then(pl.lit("release"))
        .when(pl.col("id") == "d")
        .then(pl.lit("fix"))
        .alias("decision"),
        pl.when(pl.col("id") == "d").then(pl.lit("5")).otherwise(pl.col("amount")).alias("amount"),
        pl.lit("a large but real amount").alias("note"),
    )
    decided.write_csv(review)
    state = release_decisions(spec, dt.date(2024, 1, 1), str(review), "carol", return_state=True)
    summary = state.result()
    assert (summary["released"], summary["fixed"], summary["still_failing"]) == (1, 1, 0)
    assert summary["counts"]["clean"] == 4
    run_id = state.state_details.flow_run_id
    assert run_id is not None
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[artifact_key("tiny", "release")]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]),
            )
        )
    assert len(found) == 1
    text = str(found[0].data)
    assert "# tiny 2024-01-01: release" in text
    assert "| released (held wrongly) | 1 |" in text
    assert "| fixed and released | 1 |" in text
    assert "Now 4 clean and 0 quarantined of 4 rows (conservation holds)" in text
    manifest = json.loads(Path(summary["manifest"]).read_text())
    assert manifest["release"]["by"] == "carol"
