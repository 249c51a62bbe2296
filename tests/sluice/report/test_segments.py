"""Segment bias: the judge on hand-built outputs, then the real command on a partition where one
category is flagged wholesale."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pytest

from sluice.config import Partition
from sluice.core.failures import make_failures
from sluice.report import segments
from sluice.report.metrics import RunOutputs
from sluice.report.segments import SegmentPolicy, segment_bias
from tests.conftest import SpecFactory


def _outputs(flagged_in_quarantine: bool = False) -> RunOutputs:
    """2,000 screened rows: zone 3 (100 rows) has 90 flagged, the others about 2%; zone 4 has
    10 rows, all flagged (too few to judge); payment is unrelated to the flags."""
    rng = np.random.default_rng(5)
    n = 2000
    zone = np.where(np.arange(n) < 100, 3, rng.choice([1, 2], n))
    zone[100:110] = 4
    flagged = np.where(zone == 3, np.arange(n) < 90, rng.random(n) < 0.02)
    flagged[100:110] = True
    frame = pl.DataFrame(
        {
            "_row_id": pl.Series(np.arange(n), dtype=pl.UInt64),
            "zone": zone.astype(np.int64),
            "payment": rng.choice(["card", "cash"], n).tolist(),
            "fare": rng.random(n),
        }
    )
    ids = frame.filter(pl.Series(flagged))["_row_id"]
    severity: Literal["warn", "error"] = "error" if flagged_in_quarantine else "warn"
    failures = make_failures(ids, column="outlier", rule="knn", severity=severity)
    if flagged_in_quarantine:
        out = frame.filter(pl.Series(flagged))
        clean = frame.filter(pl.Series(~flagged))
        quarantine = out.select(
            "_row_id", *(pl.col(c).cast(pl.String) for c in ("zone", "payment", "fare"))
        ).with_columns(pl.col("zone").str.pad_start(3, " "))  # raw text, as it was read
    else:
        clean, quarantine = frame, pl.DataFrame({"_row_id": pl.Series([], dtype=pl.UInt64)})
    scores = pl.DataFrame(
        {"_row_id": frame["_row_id"], "detector": ["knn"] * n, "score": rng.random(n)}
    )
    return RunOutputs(
        manifest={"detectors": [{"name": "knn", "severity": severity}]},
        partition=Partition.parse("2024-01-01", "day", "date"),
        clean=clean,
        quarantine=quarantine,
        failures=failures,
        scores=scores,
    )


@pytest.mark.parametrize("quarantined", [False, True])
def test_the_category_flagged_wholesale_is_found_and_nothing_else(quarantined: bool) -> None:
    (seg,) = segment_bias(_outputs(quarantined))
    assert (seg.detector, seg.column, seg.value) == ("knn", "zone", "3")
    assert (seg.rows, seg.flagged) == (100, 90)
    overall = seg.overall
    assert 0.05 < overall < 0.1
    assert seg.share == 0.9
    assert seg.ratio == pytest.approx(0.9 / overall)
    assert seg.p_value < 1e-20
    assert seg.severity == ("error" if quarantined else "warn")
    assert seg.text.startswith("zone = 3: 90% of rows flagged by knn, ")
    assert seg.as_dict()["text"] == seg.text


@pytest.mark.parametrize("quarantined", [False, True])
def test_columns_counted_together_or_one_at_a_time_agree(
    quarantined: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = SegmentPolicy(min_rows=10, min_ratio=1.5, alpha=0.5)
    together = segment_bias(_outputs(quarantined), policy)
    assert len(together) >= 2
    monkeypatch.setattr(segments, "GROUP_CELLS", 1)
    assert segment_bias(_outputs(quarantined), policy) == together


def test_policy_thresholds_decide() -> None:
    outputs = _outputs()
    assert [s.value for s in segment_bias(outputs, SegmentPolicy(min_rows=10))] == ["4", "3"]
    assert segment_bias(outputs, SegmentPolicy(min_ratio=20.0)) == []
    assert segment_bias(outputs, SegmentPolicy(min_flagged=91)) == []


def test_distinct_counts_the_report_has_spare_reading_columns_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outputs = _outputs()
    read: list[str] = []
    more_than = RunOutputs.clean_has_more_values_than

    def spy(self: RunOutputs, name: str, limit: int) -> bool:
        read.append(name)
        return more_than(self, name, limit)

    monkeypatch.setattr(RunOutputs, "clean_has_more_values_than", spy)
    found = segment_bias(outputs)
    assert sorted(read) == ["payment", "zone"]
    read.clear()
    assert segment_bias(outputs, distinct={"zone": 4, "payment": 2}) == found
    assert read == []
    # at the limit a null would tip it over: the column is read
    assert segment_bias(outputs, distinct={"zone": 50, "payment": 2}) == found
    assert read == ["zone"]
    read.clear()
    # past the limit the column is passed over unread
    assert segment_bias(outputs, distinct={"zone": 51, "payment": 2}) == []
    assert read == []


def test_scores_of_several_detectors_in_any_order_and_repeated_count_once_each() -> None:
    """A bucket of one detector's scores is taken whole; several detectors' are split by
    detector; repeated score rows count once. Each way gives the same segments."""
    outputs = _outputs()
    alone = segment_bias(outputs)
    assert alone
    scores = outputs.scores
    assert scores is not None
    quiet = scores.with_columns(pl.lit("quiet").alias("detector"))  # flags nothing

    def run(frame: pl.DataFrame, failures: pl.DataFrame) -> list[segments.SegmentBias]:
        return segment_bias(
            RunOutputs(**{**outputs.__dict__, "scores": frame, "failures": failures})
        )

    shuffled = pl.concat([scores, quiet, scores.head(300)]).sample(fraction=1.0, seed=2)
    assert run(shuffled, outputs.failures) == alone
    # a second detector that flags: its segments beside knn's, the same for any order
    rng = np.random.default_rng(9)
    other_ids = scores.filter(pl.Series(rng.random(scores.height) < 0.05))["_row_id"]
    other = make_failures(other_ids, column="outlier", rule="lof", severity="warn")
    both_failures = pl.concat([outputs.failures, other.cast(outputs.failures.schema)])
    lof = scores.with_columns(pl.lit("lof").alias("detector"))
    policy_found = run(pl.concat([scores, lof]), both_failures)
    assert {s.detector for s in policy_found} == {"knn"}
    mixed = pl.concat([lof.head(700), scores, lof, scores.tail(20)]).sample(fraction=1.0, seed=4)
    assert run(mixed, both_failures) == policy_found


def test_no_scores_or_no_flags_means_no_segments() -> None:
    outputs = _outputs()
    none = RunOutputs(**{**outputs.__dict__, "scores": None})
    assert segment_bias(none) == []
    unflagged = RunOutputs(**{**outputs.__dict__, "failures": outputs.failures.head(0)})
    assert segment_bias(unflagged) == []


def _partition(n: int = 4000, wholesale: int = 35) -> str:
    """Ordinary rows of kinds a and b; ``wholesale`` rows of kind z with amounts and counts far
    from the rest and from each other (so each is an outlier on its own)."""
    rng = np.random.default_rng(3)
    lines = ["id,amount,count,when,kind"]
    for i in range(n):
        lines.append(
            f"r{i},{rng.normal(20, 2):.3f},{int(rng.integers(1, 6))},2024-01-01 10:00:00,"
            f"{'ab'[i % 2]}"
        )
    for i in range(wholesale):
        lines.append(f"z{i},{40 + 1.5 * i:.1f},{20 + 3 * i},2024-01-01 11:00:00,z")
    return "\n".join(lines) + "\n"


@pytest.mark.e2e
def test_sluice_run_warns_of_segment_bias_and_keeps_warned_rows_clean(
    make_dataset: SpecFactory, tmp_path: Path
) -> None:
    suite: dict[str, Any] = {"name": "tiny", "expectations": []}
    detectors = [{"name": "knn", "detector": "knn", "features": ["amount", "count"], "seed": 1}]
    spec = make_dataset({"2024-01-01": _partition()}, suite=suite, detectors=detectors)
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    }
    exe = Path(sys.executable).with_name("sluice")
    done = subprocess.run(
        [str(exe), "run", str(spec), "--partition", "2024-01-01"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    reports = tmp_path / "out" / "reports" / "date=2024-01-01"
    manifest = json.loads((reports / "manifest.json").read_text())

    # severity warn (the default): every row stays clean, the outliers are noted as warnings
    assert manifest["counts"]["clean"] == manifest["counts"]["in"] == 4035
    assert manifest["detectors"][0]["severity"] == "warn"
    warned = manifest["counts"]["warnings_by_reason"]["outlier|knn"]
    assert 35 <= warned <= 35 + 20
    failures = pl.read_parquet(reports / "failures.parquet").filter(pl.col("rule") == "knn")
    assert set(failures["severity"]) == {"warn"}

    (seg,) = manifest["findings"]["segment_bias"]
    assert (seg["column"], seg["value"], seg["rows"], seg["flagged"]) == ("kind", "z", 35, 35)
    html = (reports / "report.html").read_text()
    assert "segment bias" in html
    assert "kind = z" in html
    assert 'id="segments-table"' in html


def test_the_p_value_is_scipys_binomial_tail() -> None:
    """A segment's p-value (before the Bonferroni factor) is P(X >= flagged) for X binomial over
    the segment's rows at the overall rate: scipy.stats.binom.sf, to 1e-9 relative."""
    from scipy.stats import binom

    pol = SegmentPolicy(min_flagged=1, min_ratio=0.0, alpha=1.0)
    for rows, hits, overall in [(100, 4, 0.01), (1000, 51, 0.02), (40, 40, 0.5), (7, 1, 0.3)]:
        (got,) = segments._judge([("d", "c", "v", rows, hits, overall)], {}, pol)
        assert got.p_value == pytest.approx(float(binom.sf(hits - 1, rows, overall)), rel=1e-9)


def _rows_and_screened(seed: int, n: int = 5_000) -> tuple[pl.Series, pl.Series, pl.Series, int]:
    """Row ids as the report holds them (clean rows, then quarantined ones), a detector's
    screened ids (every clean row and some quarantined ones, in another order), the flagged
    ids, and how many rows are clean."""
    rng = np.random.default_rng(seed)
    # distinct ids over the whole 64-bit range (an odd multiplier is a bijection modulo 2**64)
    spread = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    ids = pl.Series("_row_id", rng.permutation(spread))
    failed = rng.random(n) < 0.05  # quarantined by a rule: not screened
    flagged = ~failed & (rng.random(n) < 0.03)  # quarantined by the detector
    quarantined = failed | flagged
    rows = pl.concat([ids.filter(pl.Series(~quarantined)), ids.filter(pl.Series(quarantined))])
    screened = ids.filter(pl.Series(~failed)).sample(fraction=1.0, seed=seed)
    return rows, screened, ids.filter(pl.Series(flagged)), int((~quarantined).sum())


def _same(
    a: tuple[pl.Series, pl.Series, int, int], b: tuple[pl.Series, pl.Series, int, int]
) -> None:
    assert a[0].equals(b[0])
    assert a[1].equals(b[1])
    assert a[2:] == b[2:]


@pytest.mark.parametrize("seed", range(4))
def test_rows_known_to_be_screened_count_as_looking_each_one_up(seed: int) -> None:
    rows, screened, flagged, clean = _rows_and_screened(seed)
    looked_up = segments._screened_rows(rows, screened, flagged)
    assert int(looked_up[0].head(clean).sum()) == clean  # every clean row was screened
    _same(segments._screened_rows(rows, screened, flagged, screened_first=clean), looked_up)
    # a clean row not screened, and a screened id among no rows: as many ids, other ones
    odd = pl.concat([screened.filter(screened != rows[0]), pl.Series([1], dtype=pl.UInt64)])
    assert segments._known_screened(rows, odd, clean) is None
    odd_looked_up = segments._screened_rows(rows, odd, flagged)
    assert odd_looked_up[2] == 1
    _same(segments._screened_rows(rows, odd, flagged, screened_first=clean), odd_looked_up)
    # a clean row not screened: fewer ids
    fewer = screened.filter(screened != rows[1])
    _same(
        segments._screened_rows(rows, fewer, flagged, screened_first=clean),
        segments._screened_rows(rows, fewer, flagged),
    )


def test_a_report_held_in_memory_looks_up_only_the_quarantined_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    firsts: list[int] = []
    screened_rows = segments._screened_rows

    def spy(
        row_ids: pl.Series, ids: pl.Series, hit: pl.Series | None, screened_first: int = 0
    ) -> tuple[pl.Series, pl.Series, int, int]:
        firsts.append(screened_first)
        return screened_rows(row_ids, ids, hit, screened_first)

    found = segment_bias(_outputs(flagged_in_quarantine=True))
    monkeypatch.setattr(segments, "_screened_rows", spy)
    assert segment_bias(_outputs(flagged_in_quarantine=True)) == found
    clean = _outputs(flagged_in_quarantine=True).clean
    assert clean is not None
    assert firsts == [clean.height]
