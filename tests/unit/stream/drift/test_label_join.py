"""Label join: either order, features attached, TTL expiry proportional to what expires."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.schemas.batch import BatchBuilder
from driftline.schemas.events import FeatureEvent, LabelEvent, PredictionEvent
from driftline.stream.drift.label_join import ExpiryCounts, JoinedRow, LabelJoin


def batch(events: list, model_id: str = "m"):
    b = BatchBuilder(model_id)
    for e in events:
        b.add(e)
    return b.build()


def F(eid, ts, **feats):
    return FeatureEvent("m", eid, ts, feats)


def P(eid, ts, y=1, version="1.0.0", score=None, features=None):
    return PredictionEvent("m", eid, ts, version, y, score=score, features=features)


def L(eid, ts, y=1):
    return LabelEvent("m", eid, ts, y)


def entries(store):
    return sorted(k for k in store if k.startswith("j|"))


def test_prediction_then_label_attaches_earlier_features_and_deletes_entry():
    store: dict = {}
    j = LabelJoin(store, ttl_s=100)
    assert j.add_batch(batch([F("a", 1.0, x=2.5, c="p"), P("a", 2.0, y=0, score=0.2)])) == []
    [row] = j.add_batch(batch([L("a", 5.0, y=1)]))
    assert row == JoinedRow("m", "a", 2.0, "1.0.0", 0, 0.2, 1, {"x": 2.5, "c": "p"}, None, 5.0)
    assert entries(store) == []


def test_label_first_then_prediction_with_inline_features():
    j = LabelJoin({}, ttl_s=100)
    assert j.add_batch(batch([L("a", 1.0, y="yes")])) == []
    [row] = j.add_batch(batch([P("a", 0.5, y="no", features={"x": 1})]))
    assert (row.prediction, row.label, row.features, row.ts) == ("no", "yes", {"x": 1}, 0.5)


def test_all_parts_in_one_batch_write_nothing_to_the_store():
    store: dict = {}
    rows = LabelJoin(store).add_batch(batch([P("a", 1), F("b", 1, x=1), L("a", 2)]))
    assert [r.event_id for r in rows] == ["a"] and rows[0].features is None
    assert entries(store) == ["j|m|b"]


def test_store_survives_a_restart_and_is_json():
    store: dict = {}
    LabelJoin(store, ttl_s=60).add_batch(batch([P("a", 1.0, score=0.7), F("a", 1.0, x=None)]))
    restored = json.loads(json.dumps(store))
    [row] = LabelJoin(restored, ttl_s=60).add_batch(batch([L("a", 3.0)]))
    assert row.score == 0.7 and row.features == {}


def test_expiry_counts_unmatched_kinds_separately_and_keeps_young_entries():
    store: dict = {}
    j = LabelJoin(store, ttl_s=100, bucket_s=10)
    j.add_batch(batch([P("p1", 0), P("p2", 5), L("l1", 3), F("f1", 4, x=1), P("young", 95)]))
    assert j.expire(105.0) == ExpiryCounts()  # bucket [0,10) ends after 105-100
    got = j.expire(110.0)
    assert got == ExpiryCounts(unmatched_labels=1, unmatched_predictions=2, features_only=1)
    assert entries(store) == ["j|m|young"]
    [row] = j.add_batch(batch([L("young", 150)]))
    assert row.event_id == "young"


class CountingStore(dict):
    """A dict that counts reads, to show expiry does not scan."""

    reads = 0
    forbid_iter = False

    def get(self, k, d=None):
        self.reads += 1
        return super().get(k, d)

    def pop(self, k, *d):
        self.reads += 1
        return super().pop(k, *d)

    def __iter__(self):
        assert not self.forbid_iter, "expiry must not iterate the store"
        return super().__iter__()


def test_expiry_cost_is_proportional_to_what_expires():
    store = CountingStore()
    j = LabelJoin(store, ttl_s=1000, bucket_s=10)
    j.add_batch(batch([P(f"old{i}", 1.0 + i * 0.01) for i in range(20)]))
    for t in range(20):  # 5000 young entries in later buckets
        j.add_batch(batch([P(f"y{t}-{i}", 500.0 + t) for i in range(250)]))
    store.reads, store.forbid_iter = 0, True
    assert j.expire(1015.0).unmatched_predictions == 20
    assert store.reads <= 20 + 1 + 1  # entries, one chunk, meta
    store.forbid_iter = False
    assert len(entries(store)) == 5000


def test_tombstones_suppress_redelivered_parts():
    plain, dedup = LabelJoin({}), LabelJoin({}, tombstones=True)
    events = [P("a", 1), L("a", 2)]
    for j in (plain, dedup):
        assert len(j.add_batch(batch(events))) == 1
    assert len(plain.add_batch(batch(events))) == 1  # joined again: consumers dedupe
    assert dedup.add_batch(batch(events)) == [] and dedup.duplicates == 2
    assert dedup.expire(10**6) == ExpiryCounts()  # tombstones expire silently
    assert entries(dedup.store) == []


def test_joined_row_round_trips_through_json():
    r = JoinedRow("m", "e", 1.5, "2.0.0", "cat", None, "dog", {"x": 1.0, "b": True}, {"cat": 0.4, "dog": 0.6}, 3.0)
    assert JoinedRow.from_dict(json.loads(json.dumps(r.to_dict()))) == r


@settings(max_examples=80, deadline=None)
@given(st.permutations(list(range(10))), st.lists(st.integers(0, 10), max_size=4))
def test_any_arrival_order_and_batching_joins_the_same_rows(order, cuts):
    parts = []
    for k in range(4):  # four events: F+P+L, P+L, L only, F+P
        e = f"e{k}"
        parts += [F(e, 1.0, x=k), P(e, 1.0, y=k), L(e, 2.0, y=-k)]
    parts = [p for i, p in enumerate(parts) if i not in (6, 11)]  # e2 lacks F, e3 lacks L
    parts = [parts[i] for i in order]
    bounds = sorted({0, len(parts), *[min(c, len(parts)) for c in cuts]})
    j = LabelJoin({}, ttl_s=100)
    rows = []
    for a, b in zip(bounds, bounds[1:]):
        if b > a:
            rows += j.add_batch(batch(parts[a:b]))
    assert sorted((r.event_id, r.prediction, r.label) for r in rows) == [("e0", 0, 0), ("e1", 1, -1), ("e2", 2, -2)]
    got = j.expire(1000.0)  # features arriving after their join linger as features_only
    assert (got.unmatched_predictions, got.unmatched_labels) == (1, 0)
    assert entries(j.store) == []
