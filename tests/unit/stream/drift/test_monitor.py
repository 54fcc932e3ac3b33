"""ModelMonitor: reference bootstrap, state round trip, late events, count windows, cooldown."""

from __future__ import annotations

import json

import numpy as np
import orjson

from driftline.schemas.batch import BatchBuilder
from driftline.schemas.codec import decode_event
from driftline.schemas.control import RetrainRequested
from driftline.stream.drift.monitor import ModelMonitor, MonitorOutput
from driftline.stream.drift.monitor_config import MonitorConfig, ReferenceSettings
from driftline.stream.drift.policy import PolicySettings
from driftline.stream.drift.reference import ReferenceProfile
from driftline.stream.drift.windows import WindowSettings
from driftline.testing import synthetic

SMALL = MonitorConfig(windows=WindowSettings(size_s=10.0, allowed_lateness_s=2.0))


def batches(events: list[dict], size: int, model_id: str = "synthetic", indexed: bool = True, offset: int = 0):
    for start in range(0, len(events), size):
        builder = BatchBuilder(model_id)
        for i, e in enumerate(events[start : start + size], start + offset):
            builder.add(decode_event(orjson.dumps(e)), i if indexed else None)
        yield builder.build()


def run(monitor: ModelMonitor, events: list[dict], size: int = 500, **kw) -> MonitorOutput:
    total = MonitorOutput()
    for batch in batches(events, size, **kw):
        out = monitor.process(batch)
        total.decisions += out.decisions
        total.windows += out.windows
        total.joined += out.joined
        total.late_events += out.late_events
        if out.reference is not None:
            total.reference = out.reference
    return total


def test_first_full_window_becomes_the_reference():
    events = synthetic.stationary_events(3_000, rate=50.0, n_numeric=3, n_categorical=1)
    monitor = ModelMonitor("synthetic", SMALL)
    out = run(monitor, events)
    statuses = [w.status for w in out.windows]
    # window 0 holds the first (jittered) events only: partial, not a reference
    assert statuses[:3] == ["too_small", "reference", "unscored"] or statuses[:3] == [
        "unscored",
        "reference",
        "unscored",
    ]
    assert set(statuses[3:]) == {"scored"}
    assert out.reference is not None and monitor.reference is out.reference
    ref_window = out.windows[1].window
    assert out.reference.n_rows == ref_window.n_events
    assert out.decisions == []


def test_given_reference_scores_every_full_window_from_the_start():
    reference = ReferenceProfile.from_rows(
        [e["features"] for e in synthetic.stationary_events(5_000, n_numeric=3, n_categorical=1, seed=9)]
    )
    monitor = ModelMonitor("synthetic", SMALL, reference=reference, model_version="2.0.0")
    out = run(monitor, synthetic.stationary_events(2_000, rate=50.0, n_numeric=3, n_categorical=1))
    assert [w.status for w in out.windows[1:]] == ["scored"] * (len(out.windows) - 1)
    assert out.reference is None and out.decisions == []


def test_state_round_trip_mid_stream_continues_identically():
    events = synthetic.with_mean_shift(4_000, 2_050, feature="x1", rate=50.0, n_numeric=3, n_categorical=1)
    events += [
        {
            "model_id": "synthetic",
            "event_id": f"p{i}",
            "ts": events[-1]["ts"] + i / 50,
            "model_version": "1",
            "prediction": i % 2,
            "features": {"x0": 0.0},
        }
        for i in range(10)
    ]
    straight = run(ModelMonitor("synthetic", SMALL), events, size=300)
    assert straight.decisions, "the shift must be detected"
    store: dict = {}
    first = ModelMonitor("synthetic", SMALL, join_store=store)
    part1 = run(first, events[:2_100], size=300)
    state = json.loads(json.dumps(first.to_state()))
    second = ModelMonitor.from_state(state, SMALL, join_store=store)
    part2 = run(second, events[2_100:], size=300, offset=2_100)
    assert [d.to_dict() for d in part1.decisions + part2.decisions] == [d.to_dict() for d in straight.decisions]
    assert [w.to_dict() for w in part1.windows + part2.windows] == [w.to_dict() for w in straight.windows]
    assert second.to_state()["counters"]["events"] == len(events)


def test_late_events_are_counted_and_left_out_of_profiles():
    events = synthetic.stationary_events(1_000, rate=50.0, n_numeric=2, n_categorical=0, jitter_s=0.0)
    late = dict(events[10], event_id="late", ts=events[10]["ts"])
    events = events[:900] + [late] + events[900:]
    monitor = ModelMonitor("synthetic", SMALL)
    out = run(monitor, events)
    assert out.late_events == 1 and monitor.counters["late_events"] == 1
    assert sum(w.window.n_events for w in out.windows) + 1 + sum(w.n_events for w in monitor.open.values()) == len(
        events
    )


def test_count_windows_close_on_their_last_event():
    config = MonitorConfig(windows=WindowSettings(kind="count", size_events=400))
    monitor = ModelMonitor("synthetic", config)
    out = run(monitor, synthetic.stationary_events(2_000, n_numeric=2, n_categorical=1), size=333)
    assert [w.window.at_index for w in out.windows] == [399, 799, 1199, 1599, 1999]
    # the reference closes on row 399, before window 1 opens: no window is lost
    assert [w.status for w in out.windows] == ["reference", "scored", "scored", "scored", "scored"]


def test_without_batch_index_at_index_counts_events():
    config = MonitorConfig(windows=WindowSettings(kind="count", size_events=400))
    out = run(
        ModelMonitor("synthetic", config), synthetic.stationary_events(1_200, n_numeric=2), size=333, indexed=False
    )
    assert [w.window.at_index for w in out.windows] == [399, 799, 1199]


def test_drift_decision_is_deterministic_and_carries_evidence():
    events = synthetic.with_mean_shift(4_000, 2_050, feature="x1", shift_sigma=1.0, rate=50.0, n_numeric=3)
    a = run(ModelMonitor("synthetic", SMALL), events, size=100).decisions
    b = run(ModelMonitor("synthetic", SMALL), events, size=977).decisions
    assert [d.id for d in a] == [d.id for d in b]
    d = a[0]
    assert isinstance(d, RetrainRequested)
    assert d.id == f"synthetic:{int(d.window_start)}:drift" and d.window_end - d.window_start == 10.0
    top = d.evidence["breaches"][0]
    assert top["feature"] == "x1" and top["score"] > top["threshold"] > 0
    assert d.evidence["window"]["n_rows"] >= PolicySettings().min_window_events
    assert d.evidence["family"]["n_tests"] == 2 * 5  # (psi, missing_rate_delta) x 5 features
    assert RetrainRequested.from_dict(json.loads(json.dumps(d.to_dict()))) == d


def test_performance_decision_respects_the_shared_cooldown():
    events = synthetic.with_concept_drift(6_000, 3_000, label_delay=50, rate=50.0, n_numeric=2, n_categorical=0)
    plain = run(ModelMonitor("synthetic", SMALL), events)
    assert [d.rule.split(":")[0] for d in plain.decisions] == ["performance"]
    assert plain.joined and plain.joined[0].label is not None
    config = MonitorConfig(windows=SMALL.windows, policy=PolicySettings(cooldown_s=1e9))
    monitor = ModelMonitor("synthetic", config)
    monitor.policy._start_cooldown(0, events[0]["ts"])
    assert run(monitor, events).decisions == []


def test_set_reference_makes_open_windows_unscored():
    events = synthetic.stationary_events(1_000, rate=50.0, n_numeric=2, n_categorical=0)
    reference = ReferenceProfile.from_rows([e["features"] for e in events])
    monitor = ModelMonitor("synthetic", SMALL, reference=reference)
    run(monitor, events[:300])
    assert monitor.open and all(w.role == "scored" for w in monitor.open.values())
    monitor.set_reference(reference, "2.0.0")
    out = run(monitor, events[300:])
    assert out.windows[0].status == "unscored"
    assert monitor.model_version == "2.0.0"


def test_reference_settings_declared_types_are_used():
    config = MonitorConfig(windows=SMALL.windows, reference=ReferenceSettings(types={"x0": "categorical"}))
    events = [
        dict(e, features={"x0": round(e["features"]["x0"] or 0)})
        for e in synthetic.stationary_events(1_500, rate=50.0, n_numeric=1, n_categorical=0)
    ]
    monitor = ModelMonitor("synthetic", config)
    out = run(monitor, events)
    assert out.reference is not None
    assert out.reference.features["x0"].type.value == "categorical"
    assert isinstance(np.asarray(out.reference.features["x0"].counts), np.ndarray)


def test_batch_boundaries_do_not_change_windows_decisions_or_state():
    """Segments between window closes are read as row ranges of the batch (slices, or
    indices when late rows or two windows share a segment); any cut gives one result."""
    events = synthetic.with_mean_shift(
        6000,
        3500,
        feature="x2",
        shift_sigma=3.0,
        rate=100.0,
        n_numeric=4,
        n_categorical=1,
        missing_rate=0.05,
        jitter_s=3.0,
    )
    for e in events[::97]:
        e["ts"] -= 30.0  # late rows, and segments holding two windows' rows
    results = []
    for size in (6000, 777, 64):
        monitor = ModelMonitor("synthetic", SMALL)
        out = run(monitor, events, size)
        state = monitor.to_state()
        state.pop("tracker")
        results.append(
            ([w.to_dict() for w in out.windows], [d.at_index for d in out.decisions], out.late_events, state)
        )
    assert results[0][1]  # the shift is detected
    assert results[0] == results[1] == results[2]
