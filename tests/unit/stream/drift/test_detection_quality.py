"""Detection quality of the default policy on seeded synthetic streams (no broker).

Each stream goes through ``stream.replay`` — the codec, the columnar batches and the
``ModelMonitor`` the live agent runs. Stationary streams must raise nothing; each kind
of change must raise exactly one decision, never before the change, from a window at
most the third one holding post-change events ("within 3 windows").
"""

from __future__ import annotations

import math

import pytest

from driftline.stream.drift.monitor_config import MonitorConfig
from driftline.stream.drift.windows import WindowSettings
from driftline.stream.replay.engine import replay_lines
from driftline.testing import synthetic

WINDOW_S = MonitorConfig().windows.size_s
N, CHANGE = 60_000, 30_500  # 100 events/s: the change falls mid-way through a window


def replay(events, **kw):
    return replay_lines(synthetic.to_jsonl(events).splitlines(), **kw)


def window_of(ts: float) -> int:
    return math.floor(ts / WINDOW_S)


def assert_detected_once(events, change_event_id: str, rule_prefix: str):
    decisions, windows, summary = replay(events)
    change_line = next(i for i, e in enumerate(events) if e["event_id"] == change_event_id and "label" not in e)
    change_window = window_of(events[change_line]["ts"])
    assert summary.invalid == 0
    assert [d.rule.split(":")[0] for d in decisions] == [rule_prefix], [d.reasons for d in decisions]
    decision = decisions[0]
    assert decision.at_index > change_line, "no alarm before the change"
    assert window_of(decision.window_start) - change_window <= 2, (decision.window_start, change_window)
    assert events[decision.at_index]["ts"] == decision.ts
    before = [w for w in windows if w.window.end <= events[change_line]["ts"] and w.status == "scored"]
    assert before and not any(w.breaches for w in before), "no breaching window before the change"
    return decision


def test_no_alarm_on_300k_stationary_events_at_100_per_s():
    decisions, windows, summary = replay(synthetic.stationary_events(300_000, seed=1), batch_size=5000)
    scored = [w for w in windows if w.status == "scored"]
    assert summary.events == 300_000 and len(scored) >= 45
    assert decisions == []
    assert sum(bool(w.breaches) for w in scored) == 0


def test_no_alarm_at_5_events_per_s():
    """400 windows of ~300 events (6.7 hours): small windows where naive thresholds fire."""
    decisions, windows, _ = replay(synthetic.stationary_events(120_000, rate=5.0, seed=2), batch_size=5000)
    scored = [w for w in windows if w.status == "scored"]
    assert len(scored) >= 395 and all(250 < w.window.n_rows < 350 for w in scored)
    assert decisions == []
    # calibrated for one false alarm per 1e5 windows with k=2 (p = 0.3 % breaching windows)
    assert sum(bool(w.breaches) for w in scored) <= 4
    # the same windows with a naive fixed PSI threshold of 0.1 would breach again and again
    assert sum(w.scores[f].psi > 0.1 for w in scored for f in w.scores) > 10


def test_half_sigma_mean_shift_in_one_of_50_features():
    events = synthetic.with_mean_shift(N, CHANGE, feature="x31", shift_sigma=0.5, n_numeric=50, seed=3)
    decision = assert_detected_once(events, f"e{CHANGE}", "drift")
    assert decision.evidence["breaches"][0]["feature"] == "x31"


def test_variance_doubling():
    decision = assert_detected_once(
        synthetic.with_variance_change(N, CHANGE, feature="x4", seed=4), f"e{CHANGE}", "drift"
    )
    assert {b["feature"] for b in decision.evidence["breaches"]} == {"x4"}


def test_new_category_taking_20_percent():
    decision = assert_detected_once(synthetic.with_new_category(N, CHANGE, feature="c1", seed=5), f"e{CHANGE}", "drift")
    assert decision.evidence["breaches"][0]["feature"] == "c1"


def test_missing_rate_from_1_to_30_percent():
    events = synthetic.with_missing_rate(N, CHANGE, feature="x9", rate_after=0.3, seed=6)
    decision = assert_detected_once(events, f"e{CHANGE}", "drift")
    top = decision.evidence["breaches"][0]
    assert (top["feature"], top["metric"]) == ("x9", "missing_rate_delta")


def test_concept_drift_with_stable_features_is_caught_by_performance():
    events = synthetic.with_concept_drift(30_000, 18_550, label_delay=200, seed=7)
    decision = assert_detected_once(events, "e18550", "performance")
    assert decision.evidence["after"] > decision.evidence["before"]
    assert decision.model_version == "1.0.0"


@pytest.mark.parametrize("batch_size", [1, 7, 250])
def test_decisions_do_not_depend_on_batch_size(batch_size):
    """Windows of 10 s, two models interleaved, out-of-order events: same output for any batching."""
    config = MonitorConfig(windows=WindowSettings(size_s=10.0, allowed_lateness_s=2.0))
    events = synthetic.with_mean_shift(3_000, 1_530, feature="x2", n_numeric=4, n_categorical=1, rate=50.0)
    events += synthetic.with_concept_drift(1_500, 600, label_delay=50, rate=25.0, model_id="other", n_numeric=2)
    events.sort(key=lambda e: e["ts"])
    lines = synthetic.to_jsonl(events).splitlines()
    expected, expected_windows, _ = replay_lines(lines, config, batch_size=100_000)
    got, windows, _ = replay_lines(lines, config, batch_size=batch_size)
    assert [d.to_dict() for d in got] == [d.to_dict() for d in expected]
    assert [w.to_dict() for w in windows] == [w.to_dict() for w in expected_windows]
    assert {d.model_id for d in got} == {"synthetic", "other"}
