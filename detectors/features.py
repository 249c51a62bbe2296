"""Feature preparation: typed columns of a frame to the finite float64 matrix a detector reads.

Fitted on the detector's fit rows and kept with the detector:

- numeric and boolean: cast to float; NaN, infinities and nulls are imputed with the fit median,
  and a ``<column>__missing`` indicator is added when the fit rows had any;
- categorical: ``frequency`` (the share of fit rows with that value; an unseen value is 0) or
  ``onehot`` (the most frequent values, up to ``MAX_ONEHOT``, each a 0/1 column; rarer and unseen
  values set ``<column>=__other__``); null is a category of its own;
- timestamp: hour of day (fractional) and weekday (1 = Monday) for datetimes, weekday for dates,
  imputed like numerics.

Each output column remembers its source column, so contributions can be reported per source column.
Scaling is left to the detectors that need it: KNN, LOF and LODA standardise with the fit sample's
mean and standard deviation, PyOD's PCA standardises itself, and IForest, HBOS, ECOD and COPOD do
not depend on the scale of a feature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import polars as pl

from detectors.base import FloatArray
from detectors.spec import FeatureSpec
from sluice.core.errors import ConfigError

MAX_ONEHOT = 20
OTHER = "__other__"
NULL = "__null__"

_NUMERIC = (
    pl.Int8,
    pl.Int16,
    pl.Int32,
    pl.Int64,
    pl.UInt8,
    pl.UInt16,
    pl.UInt32,
    pl.UInt64,
    pl.Float32,
    pl.Float64,
)
_ALLOWED: dict[str, str] = {
    "numeric": "integer or float columns",
    "boolean": "boolean columns",
    "timestamp": "datetime or date columns",
    "categorical": "string, integer or boolean columns",
}


def _kind_accepts(kind: str, dtype: pl.DataType) -> bool:
    if kind == "numeric":
        return isinstance(dtype, _NUMERIC)
    if kind == "boolean":
        return isinstance(dtype, pl.Boolean)
    if kind == "timestamp":
        return isinstance(dtype, pl.Datetime | pl.Date)
    return isinstance(dtype, (pl.String, pl.Categorical, pl.Enum, pl.Boolean, *_NUMERIC))


SPEC_TYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "int": pl.Int64(),
    "float": pl.Float64(),
    "bool": pl.Boolean(),
    "date": pl.Date(),
    "datetime": pl.Datetime(),
}


def check_features(
    features: Sequence[FeatureSpec],
    schema: Mapping[str, pl.DataType | str],
    *,
    detector: str,
) -> None:
    """Raise :class:`ConfigError` for a missing column or a type the feature's kind cannot read.

    ``schema`` maps column names to polars types or to dataset-spec type names (``"float"``, ...).
    """
    seen: set[str] = set()
    for i, f in enumerate(features):
        key = f"features[{i}]"
        if f.column in seen:
            raise ConfigError(
                f"detector {detector!r} lists a column twice", key=key, found=f.column
            )
        seen.add(f.column)
        if f.column not in schema:
            raise ConfigError(
                f"detector {detector!r} uses a column the data does not have",
                key=key,
                found=f.column,
                allowed=", ".join(c for c in schema if not c.startswith("_")),
            )
        declared = schema[f.column]
        dtype = SPEC_TYPES.get(declared, pl.Null()) if isinstance(declared, str) else declared
        if not _kind_accepts(f.kind, dtype):
            raise ConfigError(
                f"detector {detector!r}: column {f.column!r} is {dtype}, "
                f"which a {f.kind} feature cannot read",
                key=f"{key}.kind",
                found=f.kind,
                allowed=f"{f.kind} takes {_ALLOWED[f.kind]}; declare another kind for {dtype}",
            )


def _impute(values: FloatArray, fill: float) -> tuple[FloatArray, FloatArray]:
    bad = ~np.isfinite(values)
    return np.where(bad, fill, values), bad.astype(np.float64)


class FeaturePreparer:
    """Turns the declared columns of a frame into a finite float64 matrix; fitted on fit rows."""

    def __init__(self, features: Sequence[FeatureSpec]) -> None:
        self.features = list(features)

    def _raw(self, frame: pl.DataFrame, f: FeatureSpec) -> list[tuple[str, FloatArray]]:
        s = frame.get_column(f.column)
        if f.kind in ("numeric", "boolean"):
            return [(f.column, s.cast(pl.Float64).to_numpy().astype(np.float64, copy=False))]
        if f.kind == "timestamp":
            out = []
            if isinstance(s.dtype, pl.Datetime):
                hour = (
                    s.dt.hour().cast(pl.Float64)
                    + s.dt.minute().cast(pl.Float64) / 60.0
                    + s.dt.second().cast(pl.Float64) / 3600.0
                )
                out.append((f"{f.column}.hour", hour.to_numpy().astype(np.float64, copy=False)))
            wd = s.dt.weekday().cast(pl.Float64).to_numpy().astype(np.float64, copy=False)
            out.append((f"{f.column}.weekday", wd))
            return out
        raise AssertionError(f.kind)

    @staticmethod
    def _categories(frame: pl.DataFrame, column: str) -> pl.Series:
        return frame.get_column(column).cast(pl.String).fill_null(NULL)

    def fit(self, frame: pl.DataFrame) -> Self:
        """Learn medians, missing indicators and category tables from the fit rows."""
        check_features(self.features, frame.schema, detector="(features)")
        n = frame.height
        steps: list[dict[str, Any]] = []
        for f in self.features:
            if f.kind == "categorical":
                cats = self._categories(frame, f.column)
                vc = cats.value_counts().sort(["count", f.column], descending=[True, False])
                values = vc.get_column(f.column).to_list()
                counts = vc.get_column("count").to_list()
                encoding = f.encoding or "frequency"
                step: dict[str, Any] = {"column": f.column, "kind": f.kind, "encoding": encoding}
                if encoding == "frequency":
                    step["frequency"] = {v: c / n for v, c in zip(values, counts, strict=True)}
                    step["outputs"] = [f"{f.column}.frequency"]
                else:
                    kept = values[:MAX_ONEHOT]
                    step["categories"] = kept
                    step["outputs"] = [f"{f.column}={v}" for v in kept] + [f"{f.column}={OTHER}"]
                steps.append(step)
                continue
            parts = []
            outputs: list[str] = []
            missing = False
            for name, vals in self._raw(frame, f):
                finite = vals[np.isfinite(vals)]
                med = float(np.median(finite)) if len(finite) else 0.0
                parts.append({"output": name, "median": med})
                outputs.append(name)
                missing = missing or len(finite) < len(vals)
            if missing:
                outputs.append(f"{f.column}__missing")
            steps.append(
                {
                    "column": f.column,
                    "kind": f.kind,
                    "impute": parts,
                    "missing_indicator": missing,
                    "outputs": outputs,
                }
            )
        self.steps_ = steps
        self.feature_names_ = [o for s in steps for o in s["outputs"]]
        self.sources_ = [s["column"] for s in steps for _ in s["outputs"]]
        self.n_fit_ = n
        return self

    def transform(self, frame: pl.DataFrame) -> FloatArray:
        """The prepared matrix of ``frame`` (rows in order, columns ``feature_names_``)."""
        if not hasattr(self, "steps_"):
            raise RuntimeError("FeaturePreparer is not fitted; call fit first")
        check_features(self.features, frame.schema, detector="(features)")
        cols: list[FloatArray] = []
        for f, step in zip(self.features, self.steps_, strict=True):
            if f.kind == "categorical":
                cats = self._categories(frame, f.column)
                if step["encoding"] == "frequency":
                    freq = step["frequency"]
                    mapped = cats.replace_strict(
                        list(freq), list(freq.values()), default=0.0, return_dtype=pl.Float64
                    )
                    cols.append(mapped.to_numpy().astype(np.float64, copy=False))
                else:
                    kept = step["categories"]
                    for v in kept:
                        cols.append((cats == v).cast(pl.Float64).to_numpy())
                    cols.append((~cats.is_in(kept)).cast(pl.Float64).to_numpy())
                continue
            any_bad = np.zeros(frame.height, dtype=np.float64)
            for (_, vals), part in zip(self._raw(frame, f), step["impute"], strict=True):
                filled, bad = _impute(vals, part["median"])
                cols.append(filled)
                any_bad = np.maximum(any_bad, bad)
            if step["missing_indicator"]:
                cols.append(any_bad)
        if not cols:
            return np.empty((frame.height, 0), dtype=np.float64)
        return np.column_stack(cols).astype(np.float64, copy=False)

    def fit_transform(self, frame: pl.DataFrame) -> FloatArray:
        """``fit(frame).transform(frame)``."""
        return self.fit(frame).transform(frame)

    def summary(self) -> list[dict[str, Any]]:
        """JSON-safe description of the fitted preparation, for the manifest."""
        out = []
        for s in self.steps_:
            item: dict[str, Any] = {
                "column": s["column"],
                "kind": s["kind"],
                "outputs": list(s["outputs"]),
            }
            if s["kind"] == "categorical":
                item["encoding"] = s["encoding"]
                item["n_categories"] = len(s.get("frequency") or s.get("categories") or [])
            else:
                item["impute_median"] = {p["output"]: p["median"] for p in s["impute"]}
                item["missing_indicator"] = s["missing_indicator"]
            out.append(item)
        return out
