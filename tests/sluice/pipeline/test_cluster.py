"""The cluster's shared-storage check refuses, with a clear error, a work folder it cannot use."""

from __future__ import annotations

from pathlib import Path

import pytest

from sluice.config import load_spec
from sluice.pipeline.cluster import ClusterError, check_shared_storage
from tests.conftest import SpecFactory


def test_a_work_folder_that_cannot_be_written_is_a_cluster_error(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    """The reports root is a file: no probe can be written under it; the check stops before
    asking any worker (no client is needed), naming the folder, without a traceback."""
    loaded = load_spec(make_dataset({"2024-01-01": "id\nr1\n"}))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "reports").write_text("not a folder", encoding="utf-8")
    with pytest.raises(
        ClusterError, match=r"cannot write a probe file in the work folder .*\.work"
    ):
        check_shared_storage(None, loaded)
