"""Window clock: per-row semantics, batch-boundary independence, state round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.errors import ConfigError
from driftline.stream.drift.windows import WindowClock, WindowSettings


def naive(ts: list[float], size: float, lateness: float):
    """One row at a time, straight from the definition."""
    max_ts, open_, out_ids, out_late, closes = -math.inf, set(), [], [], []
    for i, t in enumerate(ts):
        w = math.floor(t / size)
        late = (w + 1) * size <= max_ts - lateness
        out_ids.append(w)
        out_late.append(late)
        if not late:
            open_.add(w)
        max_ts = max(max_ts, t)
        for c in sorted(open_):
            if (c + 1) * size <= max_ts - lateness:
                closes.append((c, i))
                open_.discard(c)
    return out_ids, out_late, closes


def run_batched(ts: list[float], cuts: list[int], settings_: WindowSettings):
    clock = WindowClock(settings_)
    ids, late, closes, offset = [], [], [], 0
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(ts))), len(ts)]
    for a, b in zip(bounds, bounds[1:]):
        state = json.loads(json.dumps(clock.to_state()))
        clock = WindowClock.from_state(state, settings_)
        assignment = clock.assign(np.array(ts[a:b]))
        ids += assignment.window_id.tolist()
        late += assignment.late.tolist()
        closes += [(w, r + offset) for w, r in assignment.closes]
        clock.advance(assignment)
        offset = b
    return ids, late, closes, clock


timestamps = st.lists(st.floats(0, 200, allow_nan=False).map(lambda x: round(x, 2)), min_size=1, max_size=80)


@settings(max_examples=200, deadline=None)
@given(ts=timestamps, cuts=st.lists(st.integers(0, 80), max_size=6), lateness=st.sampled_from([0.0, 3.0, 15.0]))
def test_batched_equals_row_by_row_definition(ts, cuts, lateness):
    expected = naive(ts, 10.0, lateness)
    ids, late, closes, _ = run_batched(ts, cuts, WindowSettings(size_s=10.0, allowed_lateness_s=lateness))
    assert (ids, late, closes) == expected


def test_rows_of_a_window_all_precede_its_closing_row():
    rng = np.random.default_rng(3)
    ts = np.arange(5000) * 0.1 + rng.uniform(-3, 3, 5000)
    clock = WindowClock(WindowSettings(size_s=60.0, allowed_lateness_s=5.0))
    a = clock.assign(ts)
    assert a.closes, "several windows must close"
    for window_id, row in a.closes:
        rows = np.flatnonzero(a.rows_of(window_id))
        assert rows.max() < row
        assert not a.rows_of(window_id)[row:].any()


def test_late_events_are_counted_not_assigned():
    clock = WindowClock(WindowSettings(size_s=10.0, allowed_lateness_s=2.0))
    a = clock.assign(np.array([1.0, 13.0, 5.0, 11.0]))
    assert a.late.tolist() == [False, False, True, False]
    assert a.closes == [(0, 1)]
    clock.advance(a)
    assert clock.late_events == 1
    assert clock.open_windows == [1]


def test_event_within_lateness_joins_its_still_open_window():
    clock = WindowClock(WindowSettings(size_s=10.0, allowed_lateness_s=5.0))
    a = clock.assign(np.array([1.0, 12.0, 9.0, 16.0]))
    assert a.late.tolist() == [False, False, False, False]
    assert a.closes == [(0, 3)]
    assert a.rows_of(0).tolist() == [True, False, True, False]


def test_count_windows_close_on_their_last_event_across_batches():
    s = WindowSettings(kind="count", size_events=3)
    clock = WindowClock(s)
    first = clock.assign(np.zeros(4))
    assert first.window_id.tolist() == [0, 0, 0, 1] and first.closes == [(0, 2)]
    clock.advance(first)
    second = clock.assign(np.zeros(5))
    assert second.window_id.tolist() == [1, 1, 2, 2, 2] and second.closes == [(1, 1), (2, 4)]
    assert clock.bounds(2) == (6.0, 9.0)


def test_state_is_json_and_round_trips():
    s = WindowSettings(size_s=10.0, allowed_lateness_s=2.0)
    clock = WindowClock(s)
    assert json.loads(json.dumps(clock.to_state()))["max_ts"] is None
    clock.advance(clock.assign(np.array([1.0, 25.0, 3.0])))
    restored = WindowClock.from_state(json.loads(json.dumps(clock.to_state())), s)
    assert restored.to_state() == clock.to_state()
    assert restored.watermark == 23.0


@pytest.mark.parametrize("kwargs", [{"kind": "session"}, {"size_s": 0}, {"size_events": 0}, {"allowed_lateness_s": -1}])
def test_bad_settings_name_the_key(kwargs):
    with pytest.raises(ConfigError) as err:
        WindowSettings(**kwargs)
    assert err.value.key.startswith("windows.")
