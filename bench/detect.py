"""Benchmark every registered detector beside PyOD as shipped, in the same run.

    python -m bench.detect                      # ten ADBench sets + synthetic 1M x 20
    python -m bench.detect --big                # also synthetic 10M x 20
    python -m bench.detect --no-synthetic       # ADBench sets only
    python -m bench.detect --no-adbench --sizes 10000000 --no-ecdf-speed   # 10M x 20 only
    python -m bench.detect --candidates --seeds 3 --no-synthetic   # how `default` was chosen
    python -m bench.detect --json out.json      # keep every measurement
    python -m bench.detect --ecdf-speed-only    # ECOD/COPOD inductive scoring vs PyOD only
    python -m bench.detect --iforest-speed-only --repeat 3   # compiled IForest vs scikit-learn

Protocol (ADBench's unsupervised setting): fit on all rows of a set, score all rows, compare the
scores with the labels (ROC-AUC, average precision). sluice detectors fit on their bounded seeded
sample and score every row with ``score`` (what the screen stage does). PyOD models use their
defaults (``random_state`` set to the run's seed where the constructor has one; with ``--seeds N``
every seeded model runs with seeds 0..N-1 on the ADBench sets and the means average over seeds);
their quality is measured on
``decision_scores_``, their scoring speed with ``decision_function`` on the same rows. Peak memory
is the largest memory traced by ``tracemalloc`` during fit plus score (NumPy and Python
allocations).

Flag shares, each as "quota / threshold": the share of rows flagged by the quota the screen used
before (the top 1% of the fit rows' own scores, whatever the data) and by the detector's fitted
threshold (held-out scores, tail model, ``false_flag_rate``, default 0.001). "inliers flagged" and
"outliers flagged" are over the labelled rows of a set the detector was fitted on whole (as a
batch); "clean flagged" is over the inliers of an ADBench set when the detector is fitted on those
inliers alone. The synthetic tables run twice: with no outliers planted (every row clean) and with
1% planted. The ADBench sets are read from ``--data`` (default: ``$SLUICE_ADBENCH`` or
../shared/data/adbench_sample next to the repository) and never copied.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import average_precision_score, roc_auc_score

from detectors import available_detectors, get_detector
from detectors.base import sample_indices, threshold_from
from detectors.pyod_adapters import import_path

QUOTA = 0.01  # the threshold before: the top 1% of the fit rows' own scores, whatever the data

PYOD_AS_SHIPPED: dict[str, str] = {
    "iforest": "pyod.models.iforest:IForest",
    "hbos": "pyod.models.hbos:HBOS",
    "ecod": "pyod.models.ecod:ECOD",
    "copod": "pyod.models.copod:COPOD",
    "pca": "pyod.models.pca:PCA",
    "loda": "pyod.models.loda:LODA",
    "knn": "pyod.models.knn:KNN",
    "lof": "pyod.models.lof:LOF",
}
QUADRATIC = {"knn", "lof"}
PYOD_MAX_QUADRATIC_ROWS = 100_000
# PyOD's ECOD/COPOD keep several full-size copies of the data and score by stacking the scored rows
# onto the training rows: 2.4 GiB traced at 1M x 20, growing with rows, so 10M rows would need
# about 24 GiB by extrapolation (not measured), more than the 23 GiB of the machine measured on.
ECDF_COPIES = {"ecod", "copod"}
PYOD_MAX_ECDF_ROWS = 2_000_000
PYOD_MAX_SCORED_ROWS = 2_000_000
ECDF_BATCHES = (1_000, 10_000, 65_536, 262_144, 1_000_000)

_IF300 = {"detector": "iforest", "params": {"n_estimators": 300}}
CANDIDATES: dict[str, dict[str, Any]] = {
    "ens:iforest+ecod+hbos": {"members": ["iforest", "ecod", "hbos"]},
    "ens:iforest+ecod+hbos/rank": {"members": ["iforest", "ecod", "hbos"], "combine": "rank"},
    "ens:iforest+ecod": {"members": ["iforest", "ecod"]},
    "ens:iforest+hbos": {"members": ["iforest", "hbos"]},
    "ens:iforest+copod+hbos": {"members": ["iforest", "copod", "hbos"]},
    "ens:iforest+ecod+hbos+pca": {"members": ["iforest", "ecod", "hbos", "pca"]},
    "ens:iforest+ecod+hbos+knn": {"members": ["iforest", "ecod", "hbos", "knn"]},
    "ens:all-fast": {"members": ["iforest", "ecod", "copod", "hbos", "pca", "loda"]},
    "ens:iforest300+ecod": {"members": [_IF300, "ecod"]},
    "ens:iforest300+knn": {"members": [_IF300, "knn"]},
    "ens:iforest300+ecod+knn": {"members": [_IF300, "ecod", "knn"]},
}

FloatArray = npt.NDArray[np.float64]


@dataclass
class Result:
    """One detector on one dataset."""

    dataset: str
    method: str
    source: str
    rows: int
    features: int
    roc_auc: float | None
    average_precision: float | None
    fit_rows_per_s: float | None
    score_rows_per_s: float | None
    peak_mib: float | None
    note: str = ""
    seed: int = 0
    inliers_flagged_quota: float | None = None
    inliers_flagged: float | None = None
    outliers_flagged_quota: float | None = None
    outliers_flagged: float | None = None
    clean_flagged_quota: float | None = None
    clean_flagged: float | None = None


def default_data_dir() -> Path:
    """``$SLUICE_ADBENCH``, else ``../shared/data/adbench_sample`` beside the repository."""
    env = os.environ.get("SLUICE_ADBENCH")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "adbench_sample"


def load_adbench(folder: Path) -> list[tuple[str, FloatArray, npt.NDArray[np.int64]]]:
    """Every ``*.npz`` (arrays ``X`` and ``y``) in ``folder``, sorted by name."""
    out = []
    for path in sorted(folder.glob("*.npz")):
        with np.load(path, allow_pickle=False) as data:
            out.append(
                (
                    path.stem,
                    np.asarray(data["X"], dtype=np.float64),
                    np.asarray(data["y"]).astype(np.int64),
                )
            )
    return out


def synthetic(
    n: int, d: int = 20, contamination: float = 0.01, seed: int = 0
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Correlated, partly skewed inliers with three kinds of planted outliers (labels 1).

    Inliers are 5 latent factors mixed into ``d`` columns plus noise, a quarter of the columns
    exponentiated. Outliers, in equal shares: noise ten times larger; one column's value swapped
    with another row's (each value plausible, the combination not); two columns shifted by five
    standard deviations.
    """
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(5, d))
    X = np.empty((n, d), dtype=np.float64)
    step = 1_000_000
    for s in range(0, n, step):
        m = min(step, n - s)
        X[s : s + m] = rng.normal(size=(m, 5)) @ w + rng.normal(scale=0.5, size=(m, d))
    y = np.zeros(n, dtype=np.int64)
    k = int(n * contamination)
    idx = rng.choice(n, size=k, replace=False)
    y[idx] = 1
    a, b, c = np.array_split(idx, 3)
    X[a] += rng.normal(scale=5.0, size=(len(a), d))
    cols = rng.integers(0, d, size=len(b))
    donors = rng.integers(0, n, size=len(b))
    X[b, cols] = -X[donors, cols]
    sd = X[:100_000].std(axis=0)
    for i, r in enumerate(c):
        j = rng.choice(d, size=2, replace=False)
        X[r, j] += 5.0 * sd[j] * (1 if i % 2 else -1)
    skewed = np.arange(0, d, 4)
    X[:, skewed] = np.exp(X[:, skewed] / (2.0 * sd[skewed]))
    return X, y


def _measure(
    fit: Callable[[], Any], score: Callable[[], FloatArray], memory: bool
) -> tuple[FloatArray, float, float, float | None]:
    if memory:
        tracemalloc.start()
    t0 = time.perf_counter()
    fit()
    t1 = time.perf_counter()
    scores = score()
    t2 = time.perf_counter()
    peak = None
    if memory:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return scores, t1 - t0, t2 - t1, peak


def _quality(y: npt.NDArray[np.int64], s: FloatArray) -> tuple[float | None, float | None]:
    if y.min() == y.max():
        return None, None
    return float(roc_auc_score(y, s)), float(average_precision_score(y, s))


def _shares(
    scores: FloatArray, flags_quota: Any, flags: Any, y: Any
) -> tuple[float | None, float | None, float | None, float | None]:
    """Shares of inliers and of outliers flagged by the quota and by the fitted threshold."""
    labels = np.asarray(y)

    def share(f: Any, m: Any) -> float | None:
        return float(np.asarray(f)[m].mean()) if m.any() else None

    inl, out = labels == 0, labels == 1
    return share(flags_quota, inl), share(flags, inl), share(flags_quota, out), share(flags, out)


def run_ours(
    dataset: str,
    method: str,
    params: dict[str, Any],
    X: FloatArray,
    y: Any,
    *,
    memory: bool,
    seed: int = 0,
    clean: FloatArray | None = None,
) -> Result:
    """One sluice detector: fit on its bounded sample, score every row.

    Beside the quality, the shares of rows flagged: by the quota the screen used before (the top
    ``QUOTA`` of the fit rows' own scores) and by the detector's fitted threshold, among the
    inliers and the outliers of ``X``; and, when ``clean`` is given (rows known to be clean),
    among those rows when the detector is fitted on them alone.
    """
    name = "ensemble" if method.startswith("ens:") else method
    det = get_detector(name, **{**params, "random_state": seed})
    scores, tf, ts, peak = _measure(lambda: det.fit(X), lambda: det.score(X), memory)
    auc, ap = _quality(y, scores)
    quota = threshold_from(det.fit_scores_, QUOTA)
    shares = _shares(scores, scores > quota, scores > det.threshold_, y)
    clean_quota = clean_after = None
    if clean is not None:
        twin = get_detector(name, **{**params, "random_state": seed}).fit(clean)
        s = twin.score(clean)
        clean_quota = float((s > threshold_from(twin.fit_scores_, QUOTA)).mean())
        clean_after = float((s > twin.threshold_).mean())
    return Result(
        dataset,
        method,
        "sluice",
        len(X),
        X.shape[1],
        auc,
        ap,
        len(X) / tf,
        len(X) / ts,
        peak,
        f"fit on {det.n_fit_} rows",
        seed,
        *shares,
        clean_quota,
        clean_after,
    )


def run_pyod(
    dataset: str, method: str, X: FloatArray, y: Any, *, memory: bool, seed: int = 0
) -> Result:
    """One PyOD model with its defaults: fit on all rows, ``decision_function`` on all rows."""
    skip = None
    if method in QUADRATIC and len(X) > PYOD_MAX_QUADRATIC_ROWS:
        skip = f"skipped: quadratic in rows, > {PYOD_MAX_QUADRATIC_ROWS:,} rows"
    elif method in ECDF_COPIES and len(X) > PYOD_MAX_ECDF_ROWS:
        skip = f"skipped: > {PYOD_MAX_ECDF_ROWS:,} rows (2.4 GiB traced at 1M, grows with rows)"
    if skip:
        return Result(
            dataset, method, "pyod", len(X), X.shape[1], None, None, None, None, None, skip
        )
    cls = import_path(PYOD_AS_SHIPPED[method])
    seeded = "random_state" in cls.__init__.__code__.co_varnames
    kwargs = {"random_state": seed} if seeded else {}
    model = cls(**kwargs)
    Q = X[:PYOD_MAX_SCORED_ROWS]
    _, tf, ts, peak = _measure(
        lambda: model.fit(X), lambda: np.asarray(model.decision_function(Q)), memory
    )
    auc, ap = _quality(y, np.asarray(model.decision_scores_, dtype=np.float64))
    note = f"score r/s on the first {len(Q):,} rows" if len(Q) < len(X) else ""
    return Result(
        dataset,
        method,
        "pyod",
        len(X),
        X.shape[1],
        auc,
        ap,
        len(X) / tf,
        len(Q) / ts,
        peak,
        note,
        seed,
    )


def _rate(rows: int, call: Callable[[], object], budget_s: float = 5.0) -> float:
    """Rows per second of ``call``: the best of up to three calls within ``budget_s``."""
    best = float("inf")
    spent = 0.0
    for _ in range(3):
        t = time.perf_counter()
        call()
        took = time.perf_counter() - t
        best, spent = min(best, took), spent + took
        if spent > budget_s:
            break
    return rows / best


def ecdf_speed(train_rows: Sequence[int], batches: Sequence[int], d: int = 20) -> None:
    """Inductive scoring speed of sluice ECOD/COPOD against PyOD's ``decision_function``.

    Both are fitted on the same ``train_rows`` rows and score the same batches (best of up to
    three calls each). "all rows" is sluice fitted on every training row, the same reference as
    PyOD's (its scores of a row equal PyOD's scoring that row alone); "N sample" is sluice's
    default bounded fit sample of those rows.
    """
    rng = np.random.default_rng(0)
    Q = rng.standard_normal((max(batches), d))
    print(
        f"{'method':<6} {'train rows':>10} {'sluice fit on':>14} {'batch':>10} "
        f"{'sluice r/s':>12} {'PyOD r/s':>10} {'x':>7}"
    )
    for n in train_rows:
        X = rng.standard_normal((n, d))
        for name in ("ecod", "copod"):
            theirs = import_path(PYOD_AS_SHIPPED[name])().fit(X)
            variants = [("all rows", get_detector(name, max_fit_rows=None).fit(X))]
            sampled = get_detector(name)
            if (sampled.effective_max_fit_rows or n) < n:
                variants.append((f"{sampled.effective_max_fit_rows:,} sample", sampled.fit(X)))
            for _, ours in variants:
                ours.score(Q[:10])  # compiles the look-up on first use in a process (once)
            for m in batches:
                batch = Q[:m]
                slow = _rate(m, lambda b=batch, t=theirs: t.decision_function(b))  # type: ignore[misc]
                for label, ours in variants:
                    fast = _rate(m, lambda b=batch, o=ours: o.score(b))  # type: ignore[misc]
                    print(
                        f"{name:<6} {n:>10,} {label:>14} {m:>10,} "
                        f"{fast:>12,.0f} {slow:>10,.0f} {fast / slow:>7,.0f}",
                        flush=True,
                    )


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _timed(call: Callable[[], FloatArray]) -> tuple[FloatArray, float, float]:
    """``call()``'s result, wall seconds and CPU seconds of the whole process (every thread)."""
    c, w = _cpu(), time.perf_counter()
    out = call()
    return out, time.perf_counter() - w, _cpu() - c


def _load() -> str:
    return "/".join(f"{v:.1f}" for v in os.getloadavg())


def iforest_speed(
    rows: int, adbench: Sequence[tuple[str, FloatArray, npt.NDArray[np.int64]]], repeat: int = 1
) -> None:
    """The compiled isolation-forest scorer against scikit-learn's ``score_samples``, same forest.

    The forest is the registry's ``default`` (300 trees) fitted on its 200,000-row sample of a
    synthetic ``rows`` x 20 table; the scorers score all ``rows`` rows in the same process, one
    after the other (with ``repeat`` above 1 they take turns that many times and each keeps its
    run of least CPU: others may load the machine). CPU is the process's user + system time (all
    threads); "workers" is how many threads the rows were split over, "busy" is CPU / wall (below
    the workers when others load the machine). Then the fit: PyOD's own ``fit`` (scikit-learn
    scores the sample twice) against sluice's (once, compiled). Then ROC-AUC on the ADBench sets
    of the compiled scores and of scikit-learn's, same forests.
    """
    from pyod.models.iforest import IForest as PyODIForest
    from sklearn.ensemble import IsolationForest

    from detectors.iforest_kernel import CompactForest, default_threads
    from detectors.pyod_adapters import IForest

    X, _ = synthetic(rows)
    det = get_detector("default")
    assert isinstance(det, IForest)
    det.fit_uncalibrated(X)
    sample = X[sample_indices(rows, 200_000, 0)] if rows > 200_000 else X
    # scikit-learn's forest on the same sample: the same trees (detectors.iforest_fit)
    forest = IsolationForest(n_estimators=300, random_state=0).fit(sample)
    compact = CompactForest.from_sklearn(forest)
    same_trees = np.array_equal(compact.node, det.forest_.node) and np.array_equal(
        compact.value, det.forest_.value
    )
    compact.score_samples(X[:10])  # compiles on first use in a process
    cores = default_threads()
    print(f"# Isolation forest scoring, 300 trees, {rows:,} x {X.shape[1]}, {cores} cores")
    print(f"trees grown without scikit-learn equal to scikit-learn's: {same_trees}\n")
    head = (
        f"{'scorer':<22} {'workers':>7} {'wall s':>7} {'CPU s':>7} {'busy':>5} {'rows/CPU-s':>11} "
        f"{'rows/wall-s':>11} {'load avg 1/5/15':>16}"
    )
    print(head)
    print("-" * len(head))
    runs: dict[str, FloatArray] = {}
    calls: list[tuple[str, int, Callable[[], FloatArray]]] = [
        ("compiled, 1 thread", 1, lambda: compact.score_samples(X, threads=1)),
        (
            f"compiled, {cores} threads",
            compact.workers(rows, cores),
            lambda: compact.score_samples(X, threads=cores),
        ),
        ("scikit-learn", 1, lambda: np.asarray(forest.score_samples(X), dtype=np.float64)),
    ]
    rates: dict[str, float] = {}
    best: dict[str, tuple[float, float]] = {}
    for _ in range(max(1, repeat)):
        for label, _, call in calls:
            runs[label], wall, cpu = _timed(call)
            if label not in best or cpu < best[label][1]:
                best[label] = (wall, cpu)
    for label, workers, _ in calls:
        wall, cpu = best[label]
        rates[label] = rows / cpu
        print(
            f"{label:<22} {workers:>7} {wall:>7.2f} {cpu:>7.2f} {cpu / wall:>5.2f} "
            f"{rows / cpu:>11,.0f} {rows / wall:>11,.0f} {_load():>16}",
            flush=True,
        )
    ref = runs["scikit-learn"]
    same = all(np.array_equal(v, ref) for v in runs.values())
    diff = max(float(np.abs(v - ref).max()) for v in runs.values())
    fast = rates[f"compiled, {cores} threads"]
    print(
        f"\ncompiled / scikit-learn rows per CPU-second: {fast / rates['scikit-learn']:.1f}x; "
        f"scores equal bit for bit: {same} (largest difference {diff:g})"
    )
    _, w_pyod, c_pyod = _timed(
        lambda: PyODIForest(n_estimators=300, random_state=0).fit(sample).decision_scores_
    )
    _, w_ours, c_ours = _timed(lambda: get_detector("default").fit_uncalibrated(sample).fit_scores_)
    print(
        f"fit on {len(sample):,} rows with fit scores: "
        f"PyOD {c_pyod:.2f} CPU s ({w_pyod:.2f} wall), "
        f"sluice {c_ours:.2f} CPU s ({w_ours:.2f} wall); load {_load()}"
    )
    if not adbench:
        return
    print(f"\n{'ADBench set':<16} {'rows':>7} {'AUC compiled':>12} {'AUC sklearn':>11}")
    aucs = []
    for name, Xs, ys in adbench:
        d = get_detector("default")
        assert isinstance(d, IForest)
        d.fit_uncalibrated(Xs)
        ours = d.score(Xs)
        sk = IsolationForest(n_estimators=300, random_state=0).fit(Xs)
        theirs = -np.asarray(sk.score_samples(Xs), dtype=np.float64)
        a, b = float(roc_auc_score(ys, ours)), float(roc_auc_score(ys, theirs))
        aucs.append((a, b))
        print(f"{name:<16} {len(Xs):>7,} {a:>12.4f} {b:>11.4f}")
    mean = np.mean(aucs, axis=0)
    print(f"{'mean':<16} {'':>7} {mean[0]:>12.4f} {mean[1]:>11.4f}")


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_header() -> None:
    """The column titles of the result lines (flag shares: quota before / threshold now)."""
    head = (
        f"{'dataset':<16} {'method':<28} {'src':<6} {'seed':>4} {'rows':>10} {'AUC':>6} {'AP':>6} "
        f"{'fit r/s':>11} {'score r/s':>11} {'peak MiB':>9} {'inliers flagged':>15} "
        f"{'outliers flagged':>16} {'clean flagged':>15}  note"
    )
    print(head)
    print("-" * len(head))


def print_row(r: Result) -> None:
    """One measurement as a line."""
    print(
        f"{r.dataset:<16} {r.method:<28} {r.source:<6} {r.seed:>4} {r.rows:>10,} "
        f"{_fmt(r.roc_auc, '.3f'):>6} {_fmt(r.average_precision, '.3f'):>6} "
        f"{_fmt(r.fit_rows_per_s, ',.0f'):>11} {_fmt(r.score_rows_per_s, ',.0f'):>11} "
        f"{_fmt(r.peak_mib, ',.1f'):>9} {_pair(r.inliers_flagged_quota, r.inliers_flagged):>15} "
        f"{_pair(r.outliers_flagged_quota, r.outliers_flagged):>16} "
        f"{_pair(r.clean_flagged_quota, r.clean_flagged):>15}  {r.note}",
        flush=True,
    )


def _pair(before: float | None, after: float | None) -> str:
    if before is None and after is None:
        return "-"
    return f"{_fmt(before, '.2%')} / {_fmt(after, '.2%')}"


def summarise(
    results: Sequence[Result], datasets: Sequence[str]
) -> list[tuple[str, str, float, float]]:
    """Mean ROC-AUC and AP over ``datasets`` per (source, method), seeds averaged first."""
    keys = sorted({(r.source, r.method) for r in results if r.dataset in datasets})
    out = []
    for source, method in keys:
        aucs, aps = [], []
        for ds in datasets:
            rs = [
                r
                for r in results
                if (r.source, r.method, r.dataset) == (source, method, ds) and r.roc_auc is not None
            ]
            if rs:
                aucs.append(np.mean([r.roc_auc for r in rs]))
                aps.append(np.mean([r.average_precision for r in rs]))
        if len(aucs) == len(datasets):
            out.append((source, method, float(np.mean(aucs)), float(np.mean(aps))))
    return sorted(out, key=lambda t: -t[2])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; exit 2 when the ADBench folder is missing."""
    ap = argparse.ArgumentParser(prog="python -m bench.detect", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=default_data_dir())
    ap.add_argument("--detectors", help="comma-separated registered names (default: all)")
    ap.add_argument("--no-synthetic", action="store_true", help="skip the synthetic tables")
    ap.add_argument(
        "--sizes",
        default="1000000",
        help="comma-separated row counts of the synthetic x 20 tables (default 1000000)",
    )
    ap.add_argument("--big", action="store_true", help="also run 10M x 20 (slow)")
    ap.add_argument("--no-adbench", action="store_true", help="skip the ADBench sets")
    ap.add_argument(
        "--candidates", action="store_true", help="also the ensembles tried for default"
    )
    ap.add_argument("--no-memory", action="store_true", help="do not trace memory")
    ap.add_argument("--seeds", type=int, default=1, help="seeds per ADBench set (default 1)")
    ap.add_argument(
        "--no-ecdf-speed", action="store_true", help="skip the ECOD/COPOD inductive scoring table"
    )
    ap.add_argument("--json", type=Path, help="write every result to this file")
    ap.add_argument(
        "--ecdf-speed-only", action="store_true", help="only the ECOD/COPOD scoring table"
    )
    ap.add_argument(
        "--no-iforest-speed", action="store_true", help="skip the compiled IForest scoring table"
    )
    ap.add_argument(
        "--iforest-speed-only",
        action="store_true",
        help="only the compiled IForest scoring table (rows: the first of --sizes) and its AUC",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="IForest scoring table: turns per scorer, the least CPU kept (default 1)",
    )
    args = ap.parse_args(argv)
    if args.iforest_speed_only:
        sets = [] if args.no_adbench or not args.data.is_dir() else load_adbench(args.data)
        iforest_speed(int(args.sizes.split(",")[0]), sets, args.repeat)
        return 0
    if args.ecdf_speed_only:
        ecdf_speed([100_000, 1_000_000], ECDF_BATCHES)
        return 0

    if not args.no_adbench and (not args.data.is_dir() or not any(args.data.glob("*.npz"))):
        print(
            f"bench.detect: no ADBench sets (*.npz with X and y) in {args.data}; "
            "pass --data or set SLUICE_ADBENCH",
            file=sys.stderr,
        )
        return 2
    try:
        sizes = [] if args.no_synthetic else [int(v) for v in args.sizes.split(",") if v]
    except ValueError:
        print(f"bench.detect: --sizes takes row counts, got {args.sizes!r}", file=sys.stderr)
        return 2
    if args.big and 10_000_000 not in sizes:
        sizes.append(10_000_000)
    names = args.detectors.split(",") if args.detectors else available_detectors()
    unknown = sorted(set(names) - set(available_detectors()))
    if unknown:
        print(f"bench.detect: unknown detectors {unknown}", file=sys.stderr)
        return 2
    methods: list[tuple[str, dict[str, Any]]] = [(n, {}) for n in names]
    if args.candidates:
        methods += list(CANDIDATES.items())
    pyod_methods = [n for n in names if n in PYOD_AS_SHIPPED]
    memory = not args.no_memory

    results: list[Result] = []

    def keep(r: Result) -> None:
        results.append(r)
        print_row(r)
        if args.json:  # after every result: a long run that stops keeps what it measured
            args.json.write_text(json.dumps([asdict(x) for x in results], indent=1))

    sets = [] if args.no_adbench else load_adbench(args.data)
    if sets:
        print(f"# ADBench sample: {len(sets)} sets from {args.data}\n")
        print_header()
    for ds, X, y in sets:
        for seed in range(max(1, args.seeds)):
            for method, params in methods:
                inliers = X[y == 0]
                keep(run_ours(ds, method, params, X, y, memory=memory, seed=seed, clean=inliers))
            for method in pyod_methods:
                keep(run_pyod(ds, method, X, y, memory=memory, seed=seed))

    adbench = [ds for ds, _, _ in sets]
    if adbench:
        summarise_adbench(results, adbench, max(1, args.seeds))

    for n in sizes:
        X, y = synthetic(n, contamination=0.0)
        ds = f"synthetic-clean-{n / 1_000_000:g}M"
        print(f"\n# {ds} x {X.shape[1]}: no outliers planted\n")
        print_header()
        for method, params in methods:
            keep(run_ours(ds, method, params, X, y, memory=memory))
        del X, y
        X, y = synthetic(n)
        ds = f"synthetic-{n / 1_000_000:g}M"
        print(f"\n# {ds} x {X.shape[1]}\n")
        print_header()
        for method, params in methods:
            keep(run_ours(ds, method, params, X, y, memory=memory))
        for method in pyod_methods:
            keep(run_pyod(ds, method, X, y, memory=memory))
        del X, y

    if not args.no_ecdf_speed:
        print("\n# Inductive scoring, 20 features: sluice ECOD/COPOD vs PyOD decision_function\n")
        ecdf_speed([100_000, 1_000_000], ECDF_BATCHES)

    if not args.no_iforest_speed:
        print()
        iforest_speed(sizes[0] if sizes else 1_000_000, sets, args.repeat)

    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nprocess peak RSS {peak_rss:,.0f} MiB")
    return 0


def _mean(results: Sequence[Result], field: str) -> float | None:
    vals = [getattr(r, field) for r in results if getattr(r, field) is not None]
    return float(np.mean(vals)) if vals else None


def summarise_adbench(results: Sequence[Result], adbench: Sequence[str], seeds: int) -> None:
    """Print the mean quality per method over the ADBench sets, and default vs PyOD IForest."""
    print(f"\n# Mean over the {len(adbench)} ADBench sets, {seeds} seed(s)\n")
    print(
        f"{'src':<6} {'method':<28} {'mean AUC':>8} {'mean AP':>8} "
        f"{'inliers flagged':>17} {'outliers flagged':>17} {'clean flagged':>17}"
    )
    summary = summarise(results, adbench)
    for source, method, auc, mean_ap in summary:
        rs = [r for r in results if (r.source, r.method) == (source, method)]
        cols = [
            _pair(_mean(rs, f"{what}_quota"), _mean(rs, what))
            for what in ("inliers_flagged", "outliers_flagged", "clean_flagged")
        ]
        print(
            f"{source:<6} {method:<28} {auc:>8.3f} {mean_ap:>8.3f} "
            + " ".join(f"{c:>17}" for c in cols)
        )
    means = {(s, m): a for s, m, a, _ in summary}
    if ("sluice", "default") in means and ("pyod", "iforest") in means:
        print(
            f"\ndefault mean ROC-AUC {means[('sluice', 'default')]:.3f} vs "
            f"PyOD IForest {means[('pyod', 'iforest')]:.3f} "
            f"(same run, {len(adbench)} sets, {seeds} seed(s))"
        )


if __name__ == "__main__":
    sys.exit(main())
