"""The batched numeric update and exact row sums equal their per-feature definitions.

``WindowProfile.update`` counts every numeric feature of a batch in one pass (bins,
moments, tails); ``NumericWindow.update`` + ``add_sums`` is the per-feature definition.
They must agree exactly on any data: nulls, non-numeric and non-finite values, values
outside the reference's range, squares that overflow, absent columns, row selections.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from driftline.schemas.batch import ObservationBatch
from driftline.stream.drift.profile import ExactSum, NumericWindow, ReferenceProfile, WindowProfile
from driftline.testing.column_batches import batch_of_columns


def _per_feature(ref: ReferenceProfile, batch: ObservationBatch, idx: np.ndarray) -> dict[str, NumericWindow]:
    """The definition: one feature at a time, valid values only."""
    out = {}
    for name, r in ref.features.items():
        w = NumericWindow(np.zeros(r.n_bins, np.int64))
        col = batch.features.get(name)
        if col is None:
            w.missing += len(idx)
        else:
            vals = [col[i] for i in idx.tolist()]
            good = [v for v in vals if type(v) in (int, float) and np.isfinite(v)]
            w.missing += len(vals) - len(good)
            w.type_errors += len(vals) - len(good) - vals.count(None)
            with np.errstate(over="ignore"):  # overflowing squares are the point of some cases
                arrays = w.update(r, np.array(good, dtype=np.float64))
            w.add_sums([ExactSum.of(a) for a in arrays])
        out[name] = w
    return out


def _random_case(rng: np.random.Generator, n: int):
    ref_rows = [{f"x{j}": float(rng.normal(j, 1.0 + j)) for j in range(6)} for _ in range(200)]
    for r in ref_rows[:20]:
        r["x5"] = 7.0  # ties: fewer edges for x5
    ref = ReferenceProfile.from_rows(ref_rows, numeric_bins=int(rng.integers(2, 12)))
    specials = [
        None,
        "a",
        True,
        float("nan"),
        float("inf"),
        -float("inf"),
        1e200,
        -1e200,
        0.0,
        -0.0,
        5e-324,
        1e-300,
        10**6,
    ]
    cols: dict[str, list] = {}
    for j in range(6):
        if j == 3:
            continue  # absent from the batch: all missing
        col = list(rng.normal(j, 3.0 * (1 + j), n))
        for i in rng.choice(n, size=n // 5, replace=False).tolist():
            col[i] = specials[int(rng.integers(len(specials)))]
        cols[f"x{j}"] = col
    cols["extra"] = [None if i % 3 else 1.0 for i in range(n)]  # unknown to the reference
    has = rng.random(n) > 0.1
    for k in cols:
        cols[k] = [v if h else None for v, h in zip(cols[k], has)]
    return ref, batch_of_columns(cols, has)


@pytest.mark.parametrize("seed", range(8))
def test_batched_update_equals_per_feature_definition(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    ref, batch = _random_case(rng, n)
    a, b = int(rng.integers(0, n)), int(rng.integers(0, n + 1))
    mask = rng.random(n) > 0.5
    picks = np.sort(rng.choice(n, size=n // 2, replace=False))
    for rows in (None, slice(min(a, b), max(a, b)), slice(a, None), mask, picks):
        w = WindowProfile(ref).update(batch, rows)
        idx = np.arange(n)[rows] if rows is not None else np.arange(n)
        if isinstance(rows, np.ndarray) and rows.dtype == bool:
            idx = np.flatnonzero(rows)
        idx = idx[batch.has_features[idx]]
        expected = _per_feature(ref, batch, idx)
        assert w.n_rows == len(idx)
        for name, e in expected.items():
            assert w.features[name].to_dict() == e.to_dict(), (rows, name)


def test_batched_update_of_a_feature_without_reference_values():
    ref = ReferenceProfile.from_columns({"x": [None, None], "y": [1.0, 2.0]}, 2, {"x": "numeric"}, numeric_bins=4)
    batch = batch_of_columns({"x": [1.0, -2.0, None, "s"], "y": [3.0, None, 1.5, 1.0]}, np.ones(4, bool))
    w = WindowProfile(ref).update(batch)
    expected = _per_feature(ref, batch, np.arange(4))
    assert {k: v.to_dict() for k, v in w.features.items()} == {k: v.to_dict() for k, v in expected.items()}


@pytest.mark.parametrize("seed", range(6))
def test_of_rows_is_exact(seed):
    rng = np.random.default_rng(seed)
    rows, n = 7, int(rng.integers(1, 5000))
    m = rng.normal(0, 1, (rows, n)) * np.exp2(rng.integers(-60, 60, (rows, 1)))
    m[1] *= np.exp2(rng.integers(-300, 300, n))  # huge dynamic range: residual spills
    m[2, : n // 2] = 0.0
    m[3] = -0.0
    m[4] = 5e-324 * rng.integers(-1000, 1000, n)  # subnormals
    m[5] = rng.choice([1e308, -1e308, 1.0], n)
    m[6] = np.round(m[6] * 8) / 8  # few significant bits: one pass suffices
    copy = m.copy()
    sums = ExactSum.of_rows(m)
    assert np.array_equal(m, copy)  # not owned: input untouched
    for r in range(rows):
        assert sums[r].fraction() == sum(map(Fraction, m[r].tolist())), r
    amax = np.abs(m).max(axis=1)
    assert ExactSum.of_rows(m.copy(), amax, owned=True) == sums


def test_exact_row_sums_of_a_matrix_without_columns_are_zero():
    # a window of rows with no numeric columns: every row sums to an exact zero (this used to raise)
    assert ExactSum.of_rows(np.zeros((3, 0))) == [ExactSum()] * 3
    assert ExactSum.of_rows(np.zeros((0, 4))) == []
