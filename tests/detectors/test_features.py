"""Feature preparation: typed columns to a finite float matrix."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from detectors.features import MAX_ONEHOT, OTHER, FeaturePreparer, check_features
from detectors.spec import FeatureSpec
from sluice.core.errors import ConfigError


def test_numeric_with_nulls_gets_median_and_indicator() -> None:
    fit = pl.DataFrame({"x": [1.0, None, 3.0, 10.0, float("nan")]})
    prep = FeaturePreparer([FeatureSpec(column="x")]).fit(fit)
    assert prep.feature_names_ == ["x", "x__missing"]
    assert prep.sources_ == ["x", "x"]
    out = prep.transform(pl.DataFrame({"x": [None, 5.0, float("inf")]}))
    np.testing.assert_array_equal(out, [[3.0, 1.0], [5.0, 0.0], [3.0, 1.0]])


def test_numeric_without_nulls_has_no_indicator_and_still_imputes() -> None:
    prep = FeaturePreparer([FeatureSpec(column="n")]).fit(
        pl.DataFrame({"n": pl.Series([4, 2, 8], dtype=pl.Int64)})
    )
    assert prep.feature_names_ == ["n"]
    out = prep.transform(pl.DataFrame({"n": pl.Series([None, 7], dtype=pl.Int64)}))
    np.testing.assert_array_equal(out[:, 0], [4.0, 7.0])


def test_all_null_fit_column_is_finite() -> None:
    prep = FeaturePreparer([FeatureSpec(column="x")]).fit(
        pl.DataFrame({"x": pl.Series([None, None], dtype=pl.Float64)})
    )
    assert np.isfinite(prep.transform(pl.DataFrame({"x": [1.0, None]}))).all()


def test_frequency_encoding_with_unseen_and_null() -> None:
    fit = pl.DataFrame({"c": ["a", "a", "a", "b", None]})
    prep = FeaturePreparer([FeatureSpec(column="c", kind="categorical")]).fit(fit)
    assert prep.feature_names_ == ["c.frequency"]
    out = prep.transform(pl.DataFrame({"c": ["a", "b", None, "zzz"]}))
    np.testing.assert_allclose(out[:, 0], [0.6, 0.2, 0.2, 0.0])


def test_onehot_keeps_frequent_values_and_routes_the_rest_to_other() -> None:
    values = [f"v{i:02d}" for i in range(MAX_ONEHOT + 5) for _ in range(MAX_ONEHOT + 5 - i)]
    spec = FeatureSpec(column="c", kind="categorical", encoding="onehot")
    prep = FeaturePreparer([spec]).fit(pl.DataFrame({"c": values}))
    assert len(prep.feature_names_) == MAX_ONEHOT + 1
    assert prep.feature_names_[0] == "c=v00"
    assert prep.feature_names_[-1] == f"c={OTHER}"
    out = prep.transform(pl.DataFrame({"c": ["v00", "v24", "new"]}))
    assert out[0, 0] == 1.0
    assert out[0].sum() == 1.0
    assert out[1, -1] == 1.0
    assert out[1].sum() == 1.0
    assert out[2, -1] == 1.0
    assert out[2].sum() == 1.0


def test_timestamp_gives_fractional_hour_and_weekday() -> None:
    fit = pl.DataFrame(
        {
            "t": [dt.datetime(2024, 1, 1, 13, 30), dt.datetime(2024, 1, 6, 0, 0), None],
            "d": [dt.date(2024, 1, 1), dt.date(2024, 1, 7), dt.date(2024, 1, 3)],
        }
    )
    prep = FeaturePreparer(
        [FeatureSpec(column="t", kind="timestamp"), FeatureSpec(column="d", kind="timestamp")]
    ).fit(fit)
    assert prep.feature_names_ == ["t.hour", "t.weekday", "t__missing", "d.weekday"]
    out = prep.transform(fit)
    np.testing.assert_allclose(out[0], [13.5, 1.0, 0.0, 1.0])
    np.testing.assert_allclose(out[1], [0.0, 6.0, 0.0, 7.0])
    np.testing.assert_allclose(out[2], [6.75, 3.5, 1.0, 3.0])


def test_boolean_becomes_zero_one() -> None:
    prep = FeaturePreparer([FeatureSpec(column="b", kind="boolean")]).fit(
        pl.DataFrame({"b": [True, False, True]})
    )
    out = prep.transform(pl.DataFrame({"b": [False, None]}))
    np.testing.assert_array_equal(out[:, 0], [0.0, 1.0])


def test_output_is_finite_float64_for_mixed_frame() -> None:
    frame = pl.DataFrame(
        {
            "x": [1.5, None, 2.0],
            "c": ["a", None, "b"],
            "b": [True, None, False],
            "t": [dt.datetime(2024, 1, 1), None, dt.datetime(2024, 1, 2, 5)],
        }
    )
    specs = [
        FeatureSpec(column="x"),
        FeatureSpec(column="c", kind="categorical", encoding="onehot"),
        FeatureSpec(column="b", kind="boolean"),
        FeatureSpec(column="t", kind="timestamp"),
    ]
    out = FeaturePreparer(specs).fit_transform(frame)
    assert out.dtype == np.float64
    assert out.shape == (3, len(FeaturePreparer(specs).fit(frame).feature_names_))
    assert np.isfinite(out).all()


def test_summary_is_plain_data() -> None:
    prep = FeaturePreparer(
        [FeatureSpec(column="x"), FeatureSpec(column="c", kind="categorical")]
    ).fit(pl.DataFrame({"x": [1.0, None], "c": ["a", "b"]}))
    summary = prep.summary()
    assert summary[0]["impute_median"] == {"x": 1.0}
    assert summary[0]["missing_indicator"] is True
    assert summary[1] == {
        "column": "c",
        "kind": "categorical",
        "outputs": ["c.frequency"],
        "encoding": "frequency",
        "n_categories": 2,
    }


@pytest.mark.parametrize(
    ("kind", "dtype"),
    [("numeric", pl.String()), ("timestamp", pl.Int64()), ("boolean", pl.Float64())],
)
def test_kind_that_cannot_read_the_type_is_a_config_error(kind: str, dtype: pl.DataType) -> None:
    spec = FeatureSpec(column="col", kind=kind)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as info:
        check_features([spec], {"col": dtype}, detector="d1")
    assert info.value.key == "features[0].kind"
    assert "'d1'" in str(info.value)
    assert kind in str(info.value)


def test_missing_and_repeated_columns_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="does not have") as info:
        check_features([FeatureSpec(column="nope")], {"x": pl.Float64()}, detector="d")
    assert info.value.allowed == "x"
    with pytest.raises(ConfigError, match="twice"):
        check_features(
            [FeatureSpec(column="x"), FeatureSpec(column="x")], {"x": pl.Float64()}, detector="d"
        )


def test_encoding_only_for_categorical() -> None:
    with pytest.raises(ValueError, match="encoding"):
        FeatureSpec(column="x", kind="numeric", encoding="onehot")


def test_transform_before_fit_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        FeaturePreparer([FeatureSpec(column="x")]).transform(pl.DataFrame({"x": [1.0]}))
