"""Reference and window profiles: bins, counts, round-trips, exact shard merge."""

from __future__ import annotations

import json
import pickle
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.schemas.batch import BatchBuilder
from driftline.schemas.events import FeatureEvent, LabelEvent, PredictionEvent
from driftline.stream.drift.profile import (
    FeatureType,
    ReferenceBuilder,
    ReferenceProfile,
    WindowProfile,
    infer_feature_type,
)


def make_batch(events: list, model_id: str = "m"):
    b = BatchBuilder(model_id)
    for e in events:
        b.add(e)
    return b.build()


def feats(rows: list[dict], model_id: str = "m", t0: float = 0.0) -> list[FeatureEvent]:
    return [FeatureEvent(model_id, f"e{i}", t0 + i, r) for i, r in enumerate(rows)]


RNG = np.random.default_rng(20261126)


# --- types --------------------------------------------------------------------------


def test_feature_type_inference_treats_bools_as_categories():
    assert infer_feature_type([1, 2.5, None]) is FeatureType.NUMERIC
    assert infer_feature_type([True, False]) is FeatureType.CATEGORICAL
    assert infer_feature_type([1, "a"]) is FeatureType.CATEGORICAL
    assert infer_feature_type([None, None]) is FeatureType.CATEGORICAL


# --- reference ------------------------------------------------------------------------


def test_numeric_reference_bins_at_quantiles_with_empty_tails():
    x = RNG.normal(10, 2, 5000)
    ref = ReferenceProfile.from_rows([{"x": float(v)} for v in x], numeric_bins=10)
    f = ref.features["x"]
    assert f.n_bins == 12 and f.counts[0] == 0 and f.counts[-1] == 0
    np.testing.assert_allclose(f.edges[1:-1], np.quantile(x, np.arange(1, 10) / 10))
    assert f.edges[0] == x.min() and f.edges[-1] == np.nextafter(x.max(), np.inf)
    assert (np.abs(f.counts[1:-1] - 500) <= 1).all()  # deciles hold ~10% each
    assert f.mean == pytest.approx(x.mean()) and f.std == pytest.approx(x.std())


def test_ties_are_deduplicated_and_a_constant_feature_works():
    rows = [{"z": 0.0} for _ in range(80)] + [{"z": float(i)} for i in range(1, 21)]
    f = ReferenceProfile.from_rows(rows, numeric_bins=10).features["z"]
    assert (np.diff(f.edges) > 0).all()
    assert f.counts.sum() == 100 and f.counts[1] == 80  # the point mass, one bin
    c = ReferenceProfile.from_rows([{"c": 3}] * 50).features["c"]
    assert c.edges.tolist() == [3.0, np.nextafter(3.0, 4.0)] and c.counts.tolist() == [0, 50, 0]
    assert c.std == 0.0
    w = WindowProfile(ReferenceProfile.from_rows([{"c": 3}] * 50))
    w.update(make_batch(feats([{"c": 2}, {"c": 3}, {"c": 3.0}, {"c": 4}])))
    assert w.features["c"].counts.tolist() == [1, 2, 1]


def test_categorical_reference_keeps_top_k_plus_other():
    rows = [{"c": v} for v in ["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"] * 2 + [None]]
    f = ReferenceProfile.from_rows(rows, top_k=2).features["c"]
    assert f.categories == ("a", "b") and f.counts.tolist() == [5, 4, 5]
    assert f.missing == 1 and f.n == 14
    assert ReferenceProfile.from_rows(rows, top_k=2).missing_rate("c") == pytest.approx(1 / 15)


def test_declared_types_override_inference_and_count_type_errors():
    rows = [{"x": 1}, {"x": "oops"}, {"x": None}, {"x": 2.5}, {"y": 7}]
    ref = ReferenceProfile.from_rows(rows, declared_types={"x": FeatureType.NUMERIC, "y": FeatureType.CATEGORICAL})
    x, y = ref.features["x"], ref.features["y"]
    assert (x.n, x.missing, x.type_errors) == (2, 3, 1)
    assert y.categories == ("7",) and y.missing == 4


def test_reference_round_trips_exactly_through_json():
    rows = [
        {"x": float(v), "k": int(k), "s": s}
        for v, k, s in zip(RNG.standard_cauchy(300), RNG.integers(0, 5, 300), RNG.choice(["p", "q", "r"], 300))
    ]
    ref = ReferenceProfile.from_rows(rows, numeric_bins=7, top_k=2)
    back = ReferenceProfile.from_dict(json.loads(json.dumps(ref.to_dict())))
    assert back == ref and back.fingerprint == ref.fingerprint
    assert back.features["x"].edges.tobytes() == ref.features["x"].edges.tobytes()


def test_builder_from_batches_equals_from_rows_below_the_cap():
    rows = [{"x": float(v), "c": str(c)} for v, c in zip(RNG.normal(size=200), RNG.integers(0, 4, 200))]
    rows[5] = {"x": 1.0}  # c absent in one event
    b = ReferenceBuilder(numeric_bins=5, top_k=3, max_rows=1000)
    labels = [LabelEvent("m", "l", 0.0, 1)]  # rows without features
    b.add(make_batch(feats(rows[:120]) + labels))
    b.add(make_batch(feats(rows[120:])))
    assert b.n_rows == 200
    assert b.build() == ReferenceProfile.from_rows(rows, numeric_bins=5, top_k=3)


def test_builder_reservoir_is_uniform_and_bounded():
    b = ReferenceBuilder(max_rows=500, seed=7)
    for start in range(0, 20_000, 1000):
        b.add_rows([{"i": float(i)} for i in range(start, start + 1000)])
    f = b.build().features["i"]
    assert b.n_rows == 20_000 and f.n == 500
    # Uniform sample of 0..19999: mean 9999.5, sd of the mean ≈ 5773/sqrt(500) ≈ 258.
    assert abs(f.mean - 9999.5) < 4 * 258
    assert f.max > 15_000  # not a first-N cut


# --- window -----------------------------------------------------------------------------


def _ref() -> ReferenceProfile:
    rows = [{"x": float(v), "c": str(c)} for v, c in zip(RNG.normal(0, 1, 2000), RNG.choice(list("abcdef"), 2000))]
    return ReferenceProfile.from_rows(rows, numeric_bins=10, top_k=4)


def test_window_counts_match_an_independent_histogram():
    ref = _ref()
    x = RNG.normal(0.3, 1.5, 1000)
    c = RNG.choice(list("abcdefgh"), 1000)
    w = WindowProfile(ref).update(make_batch(feats([{"x": float(a), "c": str(b)} for a, b in zip(x, c)])))
    e = ref.features["x"].edges
    expect = np.histogram(x, np.concatenate([[-np.inf], e, [np.inf]]))[0]
    # np.histogram bins are [a, b) like ours except its last bin is closed at +inf: same.
    assert w.features["x"].counts.tolist() == expect.tolist()
    cats = ref.features["c"].categories
    exp_c = [int((c == k).sum()) for k in cats] + [int((~np.isin(c, cats)).sum())]
    assert w.features["c"].counts.tolist() == exp_c
    assert w.features["x"].mean == pytest.approx(x.mean(), rel=1e-12)
    assert w.features["x"].std == pytest.approx(x.std(), rel=1e-9)
    under = x[x < e[0]]
    if under.size:
        assert w.features["x"].tail_mean(0) == pytest.approx(under.mean())


def test_missing_unknown_type_errors_and_rows_without_features():
    ref = _ref()
    events = [
        FeatureEvent("m", "1", 0, {"x": 1.0, "c": "a", "new": 5}),
        FeatureEvent("m", "2", 0, {"x": "bad", "c": None}),
        FeatureEvent("m", "3", 0, {"new": None, "other": "z"}),
        PredictionEvent("m", "4", 0, "1.0.0", 1, features={"x": True, "c": 1}),
        PredictionEvent("m", "5", 0, "1.0.0", 1),  # no features: not counted
        LabelEvent("m", "1", 0, 0),
    ]
    w = WindowProfile(ref).update(make_batch(events))
    x, c = w.features["x"], w.features["c"]
    assert w.n_rows == 4
    assert (x.n, x.missing, x.type_errors) == (1, 3, 2)  # "bad" and True
    assert (c.n, c.missing) == (2, 2) and c.counts[-1] == 1  # 1 → "1" → OTHER
    assert w.unknown_features == {"new": 1, "other": 1}
    assert w.missing_rate("x") == 0.75


def test_rows_selects_a_subset_by_slice_or_mask():
    ref = _ref()
    rows = [{"x": float(v)} for v in RNG.normal(size=50)]
    b = make_batch(feats(rows))
    mask = np.zeros(50, bool)
    mask[10:30] = True
    by_slice = WindowProfile(ref).update(b, slice(10, 30))
    by_mask = WindowProfile(ref).update(b, mask)
    direct = WindowProfile(ref).update(make_batch(feats(rows[10:30])))
    assert by_slice == direct and by_mask == direct and direct.n_rows == 20


def test_window_round_trips_and_refuses_another_reference():
    ref = _ref()
    w = WindowProfile(ref).update(make_batch(feats([{"x": float(v), "c": "b", "q": 1} for v in RNG.normal(size=100)])))
    d = json.loads(json.dumps(w.to_dict()))
    assert WindowProfile.from_dict(d, ref) == w
    other = ReferenceProfile.from_rows([{"x": 1.0}])
    with pytest.raises(ValueError):
        WindowProfile.from_dict(d, other)
    with pytest.raises(ValueError):
        w.merge(WindowProfile(other))


def test_profile_size_is_independent_of_event_count():
    ref = _ref()
    w = WindowProfile(ref)
    sizes = []
    batch = make_batch(
        feats([{"x": float(v), "c": str(c)} for v, c in zip(RNG.normal(size=1000), RNG.choice(list("abcxyz"), 1000))])
    )
    for target in (10, 100, 1000):
        while w.n_rows < target * 1000:
            w.update(batch)
        sizes.append(len(pickle.dumps(w.to_dict())))
    # 100x the events: only the digits of counts and exact sums grow (O(log n)).
    assert sizes[-1] < 1.15 * sizes[0], sizes


def test_unknown_feature_tally_is_bounded():
    ref = _ref()
    w = WindowProfile(ref)
    w.update(make_batch(feats([{f"f{i:03d}": 1 for i in range(100)}])))
    assert len(w.unknown_features) == 64 and w.unknown_other == 36
    assert "f000" in w.unknown_features and "f099" not in w.unknown_features


# --- exact merge (property) ------------------------------------------------------------

_num = st.one_of(
    st.none(),
    st.floats(-1e100, 1e100, allow_nan=False, allow_infinity=False),
    st.integers(-(10**6), 10**6),
    st.just("str"),
    st.booleans(),
)
_cat = st.one_of(
    st.none(), st.sampled_from(["a", "b", "c", "d", "true"]), st.booleans(), st.sampled_from([0, 1, 1.0, 2])
)
_row = st.fixed_dictionaries({}, optional={"x": _num, "c": _cat, "u": st.sampled_from(["p", None])})


def _merge_ref() -> ReferenceProfile:
    rows = [
        {"x": float(v), "c": c}
        for v, c in zip(np.random.default_rng(1).normal(0, 1e3, 400), ["a", "b", "c", True, 1] * 80)
    ]
    return ReferenceProfile.from_rows(rows, numeric_bins=8, top_k=3)


MERGE_REF = _merge_ref()


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_row, st.booleans()), min_size=1, max_size=60), st.lists(st.integers(0, 60), max_size=4))
def test_shards_merged_equal_one_pass_exactly(rows, cuts):
    events = [
        FeatureEvent("m", str(i), 0, r) if with_features else PredictionEvent("m", str(i), 0, "1", 0)
        for i, (r, with_features) in enumerate(rows)
    ]
    whole = WindowProfile(MERGE_REF).update(make_batch(events))
    bounds = sorted({0, len(events), *[min(c, len(events)) for c in cuts]})
    parts = [WindowProfile(MERGE_REF).update(make_batch(events[a:b])) for a, b in zip(bounds, bounds[1:]) if b > a]
    merged = parts[0]
    for p in parts[1:]:
        merged = merged + p
    assert merged == whole
    valid = [float(r["x"]) for r, f in rows if f and type(r.get("x")) in (int, float)]
    assert whole.features["x"].sum.fraction() == sum(map(Fraction, valid))
    # Reversed order of merging gives the same profile too.
    rev = parts[-1]
    for p in reversed(parts[:-1]):
        rev = rev + p
    assert rev == whole


def test_exact_sum_is_exact_where_floats_are_not():
    from driftline.stream.drift.profile import ExactSum

    x = np.array([1e16, 1.0, -1e16, 1.0])
    assert float(ExactSum.of(x)) == 2.0 and sum(x.tolist()) == 1.0  # naive sum loses one
    a, b = ExactSum.of(x[:1]), ExactSum.of(x[1:])
    assert a + b == ExactSum.of(x) == b + a
