"""The peer: the plain script a user would write instead of sluice.

    python -m bench.peer DATA OUT [--detector iforest|ecod]

pandas reads the file (CSV, Parquet or NDJSON), Great Expectations validates the suite of
:mod:`bench.validate` (``result_format`` COMPLETE, to know the failing rows), PyOD scores the
rows that pass on the float columns of :data:`FEATURES` (IForest or ECOD, missing values filled
with the column median), and ``to_parquet`` writes the clean rows and the quarantined rows. It
prints one JSON line: rows in, clean, quarantined.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

FEATURES = (
    "trip_distance",
    "fare_amount",
    "tip_amount",
    "total_amount",
    "tolls_amount",
    "extra",
    "mta_tax",
    "congestion_surcharge",
)
"""The float columns both the peer and sluice screen for outliers."""
CONTAMINATION = 0.01


def main(argv: list[str] | None = None) -> int:
    """Screen one file the way a user's script would; print the counts as JSON."""
    p = argparse.ArgumentParser(prog="python -m bench.peer", description=__doc__)
    p.add_argument("data", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--detector", choices=("iforest", "ecod"), default="iforest")
    args = p.parse_args(argv)

    import great_expectations as gx
    import numpy as np
    import pandas as pd
    from great_expectations.expectations.registry import get_expectation_impl

    from bench.validate import SUITE

    if args.data.suffix == ".parquet":
        df = pd.read_parquet(args.data)
    elif args.data.suffix == ".ndjson":
        df = pd.read_json(args.data, lines=True, convert_dates=["pickup_at", "dropoff_at"])
    else:
        df = pd.read_csv(args.data, parse_dates=["pickup_at", "dropoff_at"])
    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("peer")
        .add_dataframe_asset("trips")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": df})
    )
    suite = gx.ExpectationSuite(
        name="peer",
        expectations=[
            get_expectation_impl(e["type"])(**e["kwargs"]) for e in SUITE["expectations"]
        ],
    )
    result = batch.validate(suite, result_format="COMPLETE")
    bad: set[int] = set()
    for r in result.results:
        bad.update(int(i) for i in (r.result or {}).get("unexpected_index_list") or [])
    passed = df.drop(index=sorted(bad))
    features = passed[list(FEATURES)].astype("float64")
    x = features.fillna(features.median()).to_numpy()
    if args.detector == "ecod":
        from pyod.models.ecod import ECOD

        model: Any = ECOD(contamination=CONTAMINATION)
    else:
        from pyod.models.iforest import IForest

        model = IForest(contamination=CONTAMINATION, random_state=0)
    model.fit(x)
    outliers = passed.index[np.asarray(model.labels_) == 1]
    quarantine = df.loc[sorted(bad | {int(i) for i in outliers})]
    clean = passed.drop(index=outliers)
    args.out.mkdir(parents=True, exist_ok=True)
    clean.to_parquet(args.out / "clean.parquet")
    quarantine.to_parquet(args.out / "quarantine.parquet")
    counts = {"in": len(df), "clean": len(clean), "quarantine": len(quarantine)}
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
