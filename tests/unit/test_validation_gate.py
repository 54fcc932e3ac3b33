"""The validation gate: floors, non-regression on the same rows, and failing closed."""

from driftline.consumers.validation_gate import GateThresholds, evaluate_gate

T = GateThresholds(floors={"accuracy": 0.7, "mae": 2.0},
                   non_regression={"accuracy": {"abs": 0.02}, "log_loss": {"rel": 0.1}, "mae": {"abs": 0.1, "rel": 0.5}})


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
