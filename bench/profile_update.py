"""Window-profile update throughput and memory.

    .venv/bin/python bench/profile_update.py [--rows 1000] [--features 20] [--batches 300]

Prints feature values/s of ``WindowProfile.update`` on batches of ``--rows`` rows with
``--features`` features (all numeric, then 3/4 numeric + 1/4 categorical), next to a
same-run baseline over the same arrays — ``np.searchsorted`` + ``np.bincount`` per
numeric column and ``collections.Counter`` per categorical column, i.e. the binning work
alone without missing/type checks, exact moments or tails — and the ratio. Then shows
the profile's size stays flat as events grow (pickled ``to_dict()`` and tracemalloc).

Batches are real ``ObservationBatch``es (`driftline.testing.column_batches.batch_of_columns`),
each read once before timing: a batch converts a numeric column to an array once and
keeps it, and that conversion is timed separately ("column prep") because the
profile's cost is the subject here.
"""

from __future__ import annotations

import argparse
import gc
import pickle
import time
import tracemalloc
from collections import Counter

import numpy as np

from driftline.schemas.batch import ObservationBatch
from driftline.stream.drift.profile import ReferenceProfile, WindowProfile
from driftline.testing.column_batches import batch_of_columns


def column_batch(cols: dict[str, list]) -> ObservationBatch:
    """A real batch of these columns, its numeric columns already converted (cached)."""
    batch = batch_of_columns(cols)
    for name in cols:
        batch.numeric_column(name)
    return batch


def make_columns(rng: np.random.Generator, n: int, n_num: int, n_cat: int, shift: float = 0.0) -> dict[str, list]:
    cols: dict[str, list] = {}
    for j in range(n_num):
        x = rng.normal(shift + j, 1 + j / 10, n)
        col = x.tolist()
        for i in rng.choice(n, n // 100, replace=False).tolist():  # 1% missing
            col[i] = None
        cols[f"n{j}"] = col
    cats = [f"c{k}" for k in range(30)]
    for j in range(n_cat):
        cols[f"c{j}"] = rng.choice(cats, n, p=np.arange(30, 0, -1) / 465).tolist()
    return cols


def bench(n_rows: int, n_num: int, n_cat: int, n_batches: int) -> None:
    rng = np.random.default_rng(0)
    ref_cols = make_columns(rng, 20_000, n_num, n_cat)
    ref = ReferenceProfile.from_columns(ref_cols, 20_000, numeric_bins=10, top_k=50)
    batches = [column_batch(make_columns(rng, n_rows, n_num, n_cat, 0.1)) for _ in range(20)]
    values = n_rows * (n_num + n_cat) * n_batches

    w = WindowProfile(ref)
    w.update(batches[0])  # warm-up
    t0 = time.perf_counter()
    for i in range(n_batches):
        w.update(batches[i % len(batches)])
    t_prof = time.perf_counter() - t0

    edges = {k: f.edges for k, f in ref.features.items() if hasattr(f, "edges")}
    t0 = time.perf_counter()
    for i in range(n_batches):
        b = batches[i % len(batches)]
        for k, e in edges.items():
            x = b.numeric_column(k)
            np.bincount(np.searchsorted(e, x[~np.isnan(x)], "right"), minlength=len(e) + 1)
        for k in b.features:
            if k not in edges:
                Counter(b.features[k])
    t_base = time.perf_counter() - t0
    print(f"{n_rows} rows x {n_num} numeric + {n_cat} categorical, {n_batches} batches:")
    print(f"  WindowProfile.update  {values / t_prof / 1e6:7.2f} M values/s ({t_prof / n_batches * 1e3:.3f} ms/batch)")
    print(f"  baseline (bin only)   {values / t_base / 1e6:7.2f} M values/s ({t_base / n_batches * 1e3:.3f} ms/batch)")
    print(f"  ratio profile/baseline time: {t_prof / t_base:.2f}x")


def bench_column_prep(n_rows: int, n_features: int, n_batches: int) -> None:
    try:
        from driftline.schemas.batch import BatchBuilder
        from driftline.schemas.events import FeatureEvent
    except ImportError:
        print("column prep: driftline.schemas.batch not available, skipped")
        return
    rng = np.random.default_rng(1)
    cols = make_columns(rng, n_rows, n_features, 0)
    bb = BatchBuilder("m")
    for i in range(n_rows):
        bb.add(FeatureEvent("m", str(i), float(i), {k: c[i] for k, c in cols.items()}))
    batch = bb.build()
    ref = ReferenceProfile.from_columns(cols, n_rows)
    w = WindowProfile(ref)
    reps = max(1, n_batches // 10)
    t0 = time.perf_counter()
    for _ in range(reps):
        for k in batch.features:
            batch.numeric_column(k)
    t_prep = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(reps):
        w.update(batch)
    t_all = time.perf_counter() - t0
    v = n_rows * n_features * reps
    print(
        f"  real ObservationBatch: numeric_column alone {v / t_prep / 1e6:.2f} M values/s; "
        f"update incl. it {v / t_all / 1e6:.2f} M values/s"
    )


def memory(n_rows: int) -> None:
    rng = np.random.default_rng(2)
    ref_cols = make_columns(rng, 20_000, 15, 5)
    ref = ReferenceProfile.from_columns(ref_cols, 20_000)
    batches = [column_batch(make_columns(rng, n_rows, 15, 5, 0.1)) for _ in range(10)]
    print("profile size as events grow (20 features):")
    gc.collect()
    tracemalloc.start()
    w = WindowProfile(ref)
    base = tracemalloc.get_traced_memory()[0]
    done = 0
    for target in (10_000, 100_000, 1_000_000):
        while done < target:
            w.update(batches[(done // n_rows) % len(batches)])
            done += n_rows
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - base
        print(
            f"  {done:>9,} events: pickled to_dict {len(pickle.dumps(w.to_dict())):>6,} B,"
            f" traced heap held {held:>7,} B"
        )
    tracemalloc.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--batches", type=int, default=300)
    a = ap.parse_args()
    bench(a.rows, a.features, 0, a.batches)
    bench(a.rows, a.features - a.features // 4, a.features // 4, a.batches)
    bench_column_prep(a.rows, a.features, a.batches)
    memory(a.rows)


if __name__ == "__main__":
    main()
