"""DriftPolicy: persistence, minimum size, cooldown, fixed and calibrated thresholds, state."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from driftline.errors import ConfigError
from driftline.stream.drift.calibration import FeatureNull
from driftline.stream.drift.policy import DriftPolicy, PolicySettings, WindowInfo

NULLS = {"x": FeatureNull(np.full(10, 1000), missing=100), "c": FeatureNull(np.array([500, 300, 0]), 0, ordered=False)}
CALM = {
    "x": SimpleNamespace(psi=0.001, missing_rate_delta=0.0, ks=0.01, wasserstein=0.01),
    "c": SimpleNamespace(psi=0.001, missing_rate_delta=0.0, ks=None, wasserstein=None),
}
DRIFT = {**CALM, "x": SimpleNamespace(psi=0.4, missing_rate_delta=0.0, ks=0.2, wasserstein=0.6)}


def info(i: int, n_rows: int = 5000) -> WindowInfo:
    return WindowInfo(i, 60.0 * i, 60.0 * i + 60, n_rows, n_rows, 60.0 * i + 70, 1000 * i)


def feed(policy: DriftPolicy, sequence, start: int = 0, n_rows: int = 5000):
    return [policy.on_window(info(start + i, n_rows), s, NULLS)[1] for i, s in enumerate(sequence)]


def test_needs_k_consecutive_breaching_windows():
    policy = DriftPolicy("m", PolicySettings(consecutive_windows=3))
    fired = feed(policy, [DRIFT, DRIFT, CALM, DRIFT, DRIFT, DRIFT])
    assert [d is not None for d in fired] == [False, False, False, False, False, True]
    assert fired[-1].evidence["consecutive_windows"] == 3
    assert fired[-1].window_start == 300.0 and fired[-1].at_index == 5000


def test_windows_under_the_minimum_size_neither_count_nor_reset():
    policy = DriftPolicy("m", PolicySettings(consecutive_windows=2, min_window_events=100))
    closed, decision = policy.on_window(info(0), DRIFT, NULLS)
    assert closed.status == "scored" and closed.streak == 1
    closed, decision = policy.on_window(info(1, n_rows=99), CALM, NULLS)
    assert closed.status == "too_small" and decision is None and policy.streak == 1
    assert policy.on_window(info(2), DRIFT, NULLS)[1] is not None


def test_cooldown_in_windows_then_fires_again():
    policy = DriftPolicy("m", PolicySettings(consecutive_windows=1, cooldown_windows=3))
    fired = feed(policy, [DRIFT] * 6)
    assert [d is not None for d in fired] == [True, False, False, False, True, False]
    assert len({d.id for d in fired if d}) == 2


def test_cooldown_in_seconds():
    policy = DriftPolicy("m", PolicySettings(consecutive_windows=1, cooldown_windows=0, cooldown_s=150.0))
    fired = feed(policy, [DRIFT] * 5)
    assert [d is not None for d in fired] == [True, False, False, True, False]


def test_performance_shares_the_cooldown():
    policy = DriftPolicy("m", PolicySettings(consecutive_windows=1, cooldown_windows=2))
    assert feed(policy, [DRIFT]) != [None]
    assert policy.on_performance(info(2), "adwin", {}) is None
    decision = policy.on_performance(info(3), "adwin", {"before": 0.1, "after": 0.4}, "1.2.0")
    assert decision.rule == "performance:adwin" and decision.id == "m:180:performance:adwin"
    assert decision.model_version == "1.2.0"
    assert policy.on_performance(info(4), "adwin", {}) is None


def test_performance_rule_can_be_switched_off():
    policy = DriftPolicy("m", PolicySettings(performance=False))
    assert policy.on_performance(info(0), "adwin", {}) is None


def test_calibrated_thresholds_fall_with_window_size_and_are_cached_per_bucket():
    policy = DriftPolicy("m")
    n_tests = policy.n_tests(NULLS)
    assert n_tests == 4
    small = policy.thresholds_for("x", NULLS["x"], 300, n_tests)
    large = policy.thresholds_for("x", NULLS["x"], 6000, n_tests)
    assert small["psi"] > large["psi"] and small["missing_rate_delta"] > large["missing_rate_delta"]
    assert policy.thresholds_for("x", NULLS["x"], 310, n_tests) is small
    assert len(policy.thresholds) == 2


def test_fixed_threshold_is_a_floor_and_adds_fixed_only_metrics():
    policy = DriftPolicy("m", PolicySettings(consecutive_windows=1, thresholds={"psi": 0.5, "wasserstein": 0.5}))
    breaches = policy.evaluate(DRIFT, NULLS, 5000)
    assert [(b.feature, b.metric) for b in breaches] == [("x", "wasserstein")]
    assert policy.n_tests(NULLS) == 2 + 2 + 1  # psi+missing per feature, wasserstein on the numeric one


def test_uncalibrated_policy_uses_fixed_thresholds_only():
    policy = DriftPolicy("m", PolicySettings(calibrate=False, thresholds={"psi": 0.2}))
    assert policy.thresholds_for("x", NULLS["x"], 5000, 2) == {"psi": 0.2}
    assert [b.metric for b in policy.evaluate(DRIFT, NULLS, 5000)] == ["psi"]


def test_decision_evidence_lists_scores_against_thresholds():
    policy = DriftPolicy("m", PolicySettings(consecutive_windows=1))
    closed, decision = policy.on_window(info(7), DRIFT, NULLS, "3.0.0")
    assert closed.decision_id == decision.id == "m:420:drift"
    (breach,) = decision.evidence["breaches"]
    assert breach["feature"] == "x" and breach["metric"] == "psi" and breach["score"] == 0.4
    assert 0 < breach["threshold"] < 0.4
    assert decision.evidence["window"] == {"id": 7, "start": 420.0, "end": 480.0, "n_events": 5000, "n_rows": 5000}
    assert decision.evidence["family"]["window_alpha"] == pytest.approx(
        PolicySettings(consecutive_windows=1).window_alpha
    )
    assert decision.reasons[0].startswith("x: psi 0.4 >")
    assert json.loads(json.dumps(closed.to_dict()))["scores"]["x"]["psi"] == 0.4


def test_state_round_trip():
    policy = DriftPolicy("m", PolicySettings(consecutive_windows=3, cooldown_s=10.0))
    feed(policy, [DRIFT, DRIFT, DRIFT, DRIFT])
    state = json.loads(json.dumps(policy.to_state()))
    restored = DriftPolicy.from_state("m", state, policy.settings)
    assert restored.to_state() == policy.to_state()
    assert feed(restored, [DRIFT, DRIFT], start=4) == feed(policy, [DRIFT, DRIFT], start=4)


@pytest.mark.parametrize(
    "kwargs,key",
    [
        ({"metrics": ("chi2_pvalue",)}, "policy.metrics"),
        ({"thresholds": {"bogus": 1.0}}, "policy.thresholds"),
        ({"consecutive_windows": 0}, "policy.consecutive_windows"),
        ({"mean_windows_between_false_alarms": 1}, "policy.mean_windows_between_false_alarms"),
        ({"task": "ranking"}, "policy.task"),
    ],
)
def test_bad_settings_name_the_key(kwargs, key):
    with pytest.raises(ConfigError) as err:
        PolicySettings(**kwargs)
    assert err.value.key == key


def test_evidence_says_when_the_drift_began_and_survives_a_restart():
    t0 = 1_767_225_600.0  # time windows: bounds are epoch seconds
    at = lambda i: WindowInfo(i, t0 + 60.0 * i, t0 + 60.0 * i + 60, 5000, 5000, t0 + 60.0 * i + 70, 1000 * i)  # noqa: E731
    policy = DriftPolicy("m", PolicySettings(consecutive_windows=3))
    for i, scores in enumerate([CALM, DRIFT, CALM, DRIFT]):
        assert policy.on_window(at(i), scores, NULLS)[1] is None
    policy = DriftPolicy.from_state("m", json.loads(json.dumps(policy.to_state())), policy.settings)
    assert policy.on_window(at(4), DRIFT, NULLS)[1] is None
    decision = policy.on_window(at(5), DRIFT, NULLS)[1]
    assert decision is not None
    assert decision.evidence["drift_started_ts"] == t0 + 180.0, "the streak began with window 3"
    assert decision.evidence["drift_started"] == t0 + 180.0


def test_count_windows_give_no_drift_start_time():
    policy = DriftPolicy("m", PolicySettings(consecutive_windows=2))
    decision = feed(policy, [DRIFT, DRIFT])[-1]
    assert decision is not None and decision.evidence["drift_started"] == 0.0
    assert "drift_started_ts" not in decision.evidence
