"""The screen stage on frames: failures, scores, model records, fit modes and explanations."""

from __future__ import annotations

import json
import sys

import numpy as np
import polars as pl
import pytest

from detectors import screen
from detectors.screen import SCORES_SCHEMA, check_specs
from detectors.spec import DetectorSpec, FeatureSpec
from sluice.core.errors import ConfigError
from sluice.core.failures import FAILURE_SCHEMA

FEATURES: list[FeatureSpec | str] = [
    "distance",
    "fare",
    "tip",
    FeatureSpec(column="payment", kind="categorical"),
]


def trips(n: int = 2000, seed: int = 0) -> pl.DataFrame:
    """Fare follows distance; row 5 has a fare and a tip far above all others."""
    rng = np.random.default_rng(seed)
    distance = rng.exponential(3.0, n)
    fare = 2.5 + 2.0 * distance + rng.normal(0, 0.5, n)
    tip = fare * 0.15 * rng.random(n)
    fare[5] = 180.0
    tip[5] = 90.0
    return pl.DataFrame(
        {
            "_row_id": pl.Series(np.arange(n) + 1000, dtype=pl.UInt64),
            "distance": distance,
            "fare": fare,
            "tip": tip,
            "payment": rng.choice(["card", "cash"], n).tolist(),
        }
    )


def spec(name: str, **kw: object) -> DetectorSpec:
    """A spec on the trips features; 2,000 rows hold too few clean extremes to test the default
    rate (0.001, two rows), so these tests flag at 1% of clean rows unless they say otherwise."""
    params = {"false_flag_rate": 0.01, **kw.pop("params", {})}  # type: ignore[dict-item]
    return DetectorSpec.model_validate(
        {"name": name, "features": FEATURES, "seed": 3, "params": params, **kw}
    )


@pytest.mark.parametrize("name", ["ecod", "iforest", "knn", "default"])
def test_planted_outlier_is_a_failure_explained_by_its_column(name: str) -> None:
    frame = trips()
    result = screen(frame, [spec(name)])
    f = result.failures
    assert f.schema == pl.Schema(FAILURE_SCHEMA)
    row = f.filter(pl.col("_row_id") == 1005)
    assert row.height == 1
    assert row["reason"][0] == f"outlier|{name}"
    assert row["column"][0] == "outlier"
    assert row["rule"][0] == name
    assert row["severity"][0] == "warn"
    details = json.loads(row["details"][0])
    assert float(row["value"][0]) == details["score"]
    assert details["score"] > details["threshold"]
    top = details["top_features"]
    assert len(top) == 3
    assert {top[0]["column"], top[1]["column"]} == {"fare", "tip"}
    assert top[0]["contribution"] >= top[1]["contribution"] >= top[2]["contribution"]


def test_scores_cover_every_row_and_agree_with_failures() -> None:
    frame = trips()
    result = screen(frame, [spec("ecod"), spec("hbos")])
    s = result.scores
    assert s.schema == pl.Schema(SCORES_SCHEMA)
    assert s.height == 2 * frame.height
    assert (s["is_outlier"] == (s["score"] > s["threshold"])).all()
    flagged = s.filter("is_outlier").select("_row_id", "detector").sort("detector", "_row_id")
    failed = result.failures.select("_row_id", pl.col("rule").alias("detector"))
    assert flagged.equals(failed.sort("detector", "_row_id"))
    for name in ("ecod", "hbos"):
        share = s.filter(pl.col("detector") == name)["is_outlier"].to_numpy().mean()
        assert share <= 0.02


def test_same_input_same_seed_same_output_and_input_untouched() -> None:
    frame = trips()
    before = frame.clone()
    a = screen(frame, [spec("default"), spec("iforest")])
    b = screen(frame, [spec("default"), spec("iforest")])
    assert a.scores.equals(b.scores)
    assert a.failures.equals(b.failures)
    assert a.models == b.models
    assert frame.equals(before)


def test_chunked_scoring_equals_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = trips()
    whole = screen(frame, [spec("default")])
    monkeypatch.setattr(sys.modules["detectors.screen"], "SCORE_CHUNK_ROWS", 300)
    chunked = screen(frame, [spec("default")])
    assert whole.scores.equals(chunked.scores)
    assert whole.failures.equals(chunked.failures)


def test_model_record_is_json_and_complete() -> None:
    result = screen(trips(), [spec("iforest", params={"false_flag_rate": 0.02})])
    (m,) = result.models
    json.dumps(m)
    assert m["name"] == "iforest"
    assert m["detector"] == "iforest"
    assert m["class"] == "detectors.pyod_adapters.IForest"
    assert m["params"]["false_flag_rate"] == 0.02
    assert m["false_flag_rate"] == 0.02
    assert m["severity"] == "warn"
    assert m["expected_clean_flags"] == 40.0
    how = m["threshold_method"]
    assert how["threshold"] == m["threshold"]
    assert how["held_out"] == "two-fold cross-fit of the fit sample"
    assert how["held_out_rows"] == 2000
    assert how["false_flag_rate"] == 0.02
    assert how["method"].startswith("generalized Pareto tail")
    assert how["u"] < m["threshold"]
    assert how["shape"] >= 0.0
    assert how["scale"] > 0.0
    assert m["params"]["random_state"] == 3
    assert m["seed"] == 3
    assert m["fit_mode"] == "batch"
    assert m["skipped"] is False
    assert m["n_fit"] == 2000
    assert m["n_scored"] == 2000
    assert m["threshold"] == result.scores["threshold"][0]
    assert m["n_flagged"] == result.failures.height
    assert [p["column"] for p in m["feature_preparation"]] == ["distance", "fare", "tip", "payment"]
    assert m["explanation"] == "occlusion"


def test_reference_fit_catches_a_shift_the_batch_fit_absorbs() -> None:
    clean = trips(seed=1)
    batch = trips(seed=2)
    shifted = batch.with_columns(
        pl.when(pl.col("_row_id") < 2400).then(pl.col("fare")).otherwise(pl.col("fare") + 15.0)
    )
    own = screen(shifted, [spec("knn")])
    ref = screen(shifted, [spec("knn")], reference=clean)
    assert own.models[0]["fit_mode"] == "batch"
    assert ref.models[0]["fit_mode"] == "reference"
    assert ref.models[0]["n_fit"] == clean.height
    late = pl.col("_row_id") >= 2400
    caught_ref = ref.scores.filter(late)["is_outlier"].sum()
    caught_own = own.scores.filter(late)["is_outlier"].sum()
    assert caught_ref > 500
    assert caught_own < 100


def test_fit_batch_ignores_the_reference() -> None:
    result = screen(trips(seed=2), [spec("hbos", fit="batch")], reference=trips(seed=1, n=500))
    assert result.models[0]["fit_mode"] == "batch"
    assert result.models[0]["n_fit"] == 2000


def test_fit_reference_without_reference_is_recorded() -> None:
    result = screen(trips(), [spec("hbos", fit="reference")])
    assert result.models[0]["fit_mode"] == "batch"
    assert "no reference" in result.models[0]["note"]


@pytest.mark.parametrize("n", [0, 3])
def test_too_few_rows_skips_without_failures(n: int) -> None:
    frame = trips().head(n)
    result = screen(frame, [spec("knn"), spec("ecod")])
    assert result.failures.height == 0
    assert result.scores.height == 0
    for m in result.models:
        assert m["skipped"] is True
        assert f"{n} batch rows" in m["reason"]


@pytest.mark.parametrize(
    ("specs", "key"),
    [
        ([spec("nope")], "detectors[0].detector"),
        ([spec("ecod"), spec("knn", params={"k": 3})], "detectors[1].params.k"),
        ([spec("ecod", params={"random_state": 1})], "detectors[0].params.random_state"),
        ([spec("ecod"), spec("ecod")], "detectors[1].name"),
        (
            [DetectorSpec(name="ecod", features=[FeatureSpec(column="payment")])],
            "detectors[0].features[0].kind",
        ),
        ([DetectorSpec(name="ecod", features=["missing"])], "detectors[0].features[0]"),
    ],
)
def test_bad_specs_stop_before_any_fit(specs: list[DetectorSpec], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        screen(trips(), specs)
    assert info.value.key == key


def test_spec_name_is_the_rule_and_detector_picks_the_model() -> None:
    s = DetectorSpec(name="fares", detector="copod", features=["fare", "distance"])
    result = screen(trips(), [s])
    assert set(result.failures["reason"]) == {"outlier|fares"}
    assert result.models[0]["class"] == "detectors.ecdf.COPOD"
    assert result.models[0]["explanation"] == "tail_probability"


def test_large_batch_fits_on_a_bounded_sample() -> None:
    frame = trips(n=5000)
    result = screen(frame, [spec("ecod", params={"max_fit_rows": 1000})])
    assert result.models[0]["n_fit"] == 1000
    assert result.scores.height == 5000
    assert 1005 in result.failures["_row_id"].to_list()


def test_check_specs_reads_dataset_spec_type_names() -> None:
    specs = [
        DetectorSpec(name="ecod", features=["fare", FeatureSpec(column="at", kind="timestamp")])
    ]
    check_specs(specs, {"fare": "float", "at": "datetime"})
    with pytest.raises(ConfigError) as info:
        check_specs(specs, {"fare": "string", "at": "datetime"})
    assert info.value.key == "detectors[0].features[0].kind"


def test_occlusion_credits_both_columns_of_a_broken_relation() -> None:
    frame = trips().with_columns(
        pl.when(pl.col("_row_id") == 1010)
        .then(0.3)
        .otherwise(pl.col("distance"))
        .alias("distance"),
        pl.when(pl.col("_row_id") == 1010).then(25.0).otherwise(pl.col("fare")).alias("fare"),
    )
    result = screen(frame, [spec("knn")])
    row = result.failures.filter(pl.col("_row_id") == 1010)
    assert row.height == 1
    top = json.loads(row["details"][0])["top_features"]
    assert {top[0]["column"], top[1]["column"]} == {"fare", "distance"}
    assert top[1]["contribution"] > 10 * abs(top[2]["contribution"])


def test_severity_error_quarantines_and_warn_is_the_default() -> None:
    frame = trips()
    warned = screen(frame, [spec("knn")]).failures
    errors = screen(frame, [spec("knn", severity="error")]).failures
    assert set(warned["severity"]) == {"warn"}
    assert set(errors["severity"]) == {"error"}
    assert warned.drop("severity").equals(errors.drop("severity"))
    assert 1005 in errors["_row_id"].to_list()


def test_a_clean_batch_gets_almost_no_flags_at_the_default_rate() -> None:
    rng = np.random.default_rng(11)
    n = 20_000
    frame = pl.DataFrame(
        {
            "_row_id": pl.Series(np.arange(n), dtype=pl.UInt64),
            "a": rng.normal(size=n),
            "b": rng.gamma(2.0, size=n),
        }
    )
    far = pl.col("_row_id") < 20  # spread out, so no planted row is another's neighbour
    planted = frame.with_columns(
        pl.when(far).then(8.0 + 0.5 * pl.col("_row_id")).otherwise("a").alias("a"),
        pl.when(far).then(25.0 + pl.col("_row_id")).otherwise("b").alias("b"),
    )
    for name in ("default", "ecod", "knn"):
        s = DetectorSpec(name=name, features=["a", "b"], seed=1)
        clean = screen(frame, [s]).models[0]
        assert clean["n_flagged"] <= 3 * clean["expected_clean_flags"], clean
        caught = screen(planted, [s]).failures["_row_id"].to_list()
        assert set(range(20)) <= set(caught), name
        assert len(caught) - 20 <= 3 * clean["expected_clean_flags"]
