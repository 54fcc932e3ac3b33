"""The validation gate: floors, non-regression on the same rows, beating the constant, and failing closed."""

import math
import random

import pytest

from driftline.consumers.registry.validation_gate import GateThresholds, evaluate_gate
from driftline.consumers.training.evaluation import baseline_metrics

T = GateThresholds(
    floors={"accuracy": 0.7, "mae": 2.0},
    non_regression={"accuracy": {"abs": 0.02}, "log_loss": {"rel": 0.1}, "mae": {"abs": 0.1, "rel": 0.5}},
)


def test_no_thresholds_fails_closed():
    result = evaluate_gate({"accuracy": 0.99}, {"accuracy": 0.5}, GateThresholds())
    assert not result.passed and "fails closed" in result.reason and result.checks == ()


def test_thresholds_for_other_metrics_only_also_fail_closed():
    result = evaluate_gate({"r2": 0.9}, None, GateThresholds(floors={"accuracy": 0.5}))
    assert not result.passed and "fails closed" in result.reason


def test_floors_only_without_champion():
    assert evaluate_gate({"accuracy": 0.7}, None, T).passed
    result = evaluate_gate({"accuracy": 0.69}, None, T)
    assert not result.passed and result.reason.startswith("accuracy 0.69 fails floor >= 0.7")


def test_lower_is_better_floor():
    assert evaluate_gate({"mae": 1.9}, None, T).passed
    assert not evaluate_gate({"mae": 2.1}, None, T).passed


def test_non_regression_abs_and_rel():
    champion = {"accuracy": 0.80, "log_loss": 0.40}
    assert evaluate_gate({"accuracy": 0.785, "log_loss": 0.43}, champion, T).passed
    result = evaluate_gate({"accuracy": 0.77, "log_loss": 0.45}, champion, T)
    assert not result.passed
    assert [c.metric for c in result.checks if not c.passed] == ["accuracy", "log_loss"]
    assert "log_loss regressed" in result.reason


def test_looser_of_abs_and_rel_applies():
    # mae tolerance: max(0.1, 0.5 * 1.0) = 0.5 worse allowed
    assert evaluate_gate({"mae": 1.45}, {"mae": 1.0}, T).passed
    assert not evaluate_gate({"mae": 1.55}, {"mae": 1.0}, T).passed


def test_nan_metric_never_passes():
    assert not evaluate_gate({"accuracy": float("nan")}, None, T).passed


def test_result_is_recordable():
    d = evaluate_gate({"accuracy": 0.9}, {"accuracy": 0.85}, T).to_dict()
    assert d["passed"] and {c["kind"] for c in d["checks"]} == {"floor", "non_regression"}


# --- baseline: better than the constant predictor on the same rows -------------------------------

B = GateThresholds(floors={"accuracy": 0.5}, non_regression={"accuracy": {"abs": 0.02}})


def test_candidate_at_chance_passes_non_regression_but_fails_the_baseline():
    chance = {"accuracy": 0.51, "log_loss": 0.9}
    assert evaluate_gate(chance, {"accuracy": 0.5, "log_loss": 3.0}, B).passed  # no baseline given: old behaviour
    result = evaluate_gate(chance, {"accuracy": 0.5, "log_loss": 3.0}, B, baseline={"accuracy": 0.52, "log_loss": 0.69})
    assert not result.passed
    assert result.reason == "log_loss 0.9 not better than the constant predictor 0.69 on the same rows"
    check = result.checks[-1]
    assert (check.kind, check.metric, check.value, check.bound) == ("baseline", "log_loss", 0.9, 0.69)
    assert check.baseline == 0.69 and not check.passed
    assert result.to_dict()["checks"][-1]["baseline"] == 0.69


def test_baseline_is_strict_and_uses_accuracy_without_log_loss():
    base = {"accuracy": 0.6, "log_loss": 0.67}
    assert not evaluate_gate({"accuracy": 0.6}, None, B, baseline=base).passed  # equal is not better
    result = evaluate_gate({"accuracy": 0.61}, None, B, baseline=base)
    assert result.passed and result.checks[-1].metric == "accuracy"
    assert not evaluate_gate({"accuracy": 0.9, "log_loss": 0.67}, None, B, baseline=base).passed


def test_regression_baseline_is_the_median_mae():
    t = GateThresholds(floors={"r2": 0.0})
    assert evaluate_gate({"mae": 0.9, "r2": 0.2}, None, t, baseline={"mae": 1.0, "r2": -0.01}).passed
    result = evaluate_gate({"mae": 1.1, "r2": 0.2}, None, t, baseline={"mae": 1.0, "r2": -0.01})
    assert not result.passed and "mae 1.1 not better" in result.reason


def test_baseline_can_be_switched_off_and_a_perfect_constant_is_not_a_check():
    off = GateThresholds(floors={"accuracy": 0.5}, beat_baseline=False)
    assert evaluate_gate({"accuracy": 0.55, "log_loss": 0.9}, None, off, baseline={"log_loss": 0.69}).passed
    one_class = {"accuracy": 1.0, "log_loss": 0.0}
    result = evaluate_gate({"accuracy": 0.97, "log_loss": 0.1}, None, B, baseline=one_class)
    assert result.passed and {c.kind for c in result.checks} == {"floor"}


def test_baseline_alone_is_a_check_and_nan_fails_it():
    assert evaluate_gate({"log_loss": 0.3}, None, GateThresholds(), baseline={"log_loss": 0.69}).passed
    assert not evaluate_gate({"log_loss": float("nan")}, None, GateThresholds(), baseline={"log_loss": 0.69}).passed


def test_baseline_metrics_are_the_constant_predictors():
    rng = random.Random(3)
    labels = [rng.random() < 0.3 for _ in range(500)]
    share = sum(labels) / len(labels)
    binary = baseline_metrics([{"label": y, "features": {}} for y in labels], "binary")
    entropy = -(share * math.log(share) + (1 - share) * math.log(1 - share))
    assert binary["log_loss"] == round(entropy, 6) and binary["accuracy"] == round(1 - share, 6)
    classes = [rng.choice("aabc") for _ in range(400)]
    multi = baseline_metrics([{"label": y, "features": {}} for y in classes], "multiclass")
    freq = {c: classes.count(c) / len(classes) for c in set(classes)}
    assert multi["accuracy"] == round(max(freq.values()), 6)
    assert multi["log_loss"] == pytest.approx(-sum(f * math.log(f) for f in freq.values()), abs=1e-6)
    values = [rng.expovariate(1.0) for _ in range(301)]
    median = sorted(values)[150]
    reg = baseline_metrics([{"label": v, "features": {}} for v in values], "regression")
    assert reg["mae"] == pytest.approx(sum(abs(v - median) for v in values) / len(values), abs=1e-6)
