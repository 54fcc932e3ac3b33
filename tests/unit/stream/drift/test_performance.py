"""Per-version prequential metrics and ADWIN signals on seeded error streams."""

from __future__ import annotations

import math

import numpy as np
import pytest

from driftline.stream.drift.label_join import JoinedRow
from driftline.stream.drift.performance import PerformanceTracker, infer_task


def rows_binary(
    err_rates: list[tuple[int, float]], version: str = "1.0.0", seed: int = 0, start: int = 0
) -> list[JoinedRow]:
    """Labels ~ Bernoulli(0.5); the prediction is wrong with the segment's error rate."""
    rng = np.random.default_rng(seed)
    out, i = [], start
    for n, rate in err_rates:
        y = rng.random(n) < 0.5
        wrong = rng.random(n) < rate
        score = np.clip(np.where(y ^ wrong, 0.8, 0.2) + rng.normal(0, 0.05, n), 0.01, 0.99)
        for a, w, s in zip(y.tolist(), wrong.tolist(), score.tolist()):
            out.append(JoinedRow("m", f"e{i}", float(i), version, a != w, s, a, None))
            i += 1
    return out


def test_binary_metrics_match_an_independent_computation():
    rows = rows_binary([(500, 0.2)])
    t = PerformanceTracker("binary")
    assert t.update(rows) == []
    y = np.array([r.label for r in rows])
    p = np.array([r.prediction for r in rows])
    s = np.array([r.score for r in rows])
    tp, fp, fn = (y & p).sum(), (~y & p).sum(), (y & ~p).sum()
    m = t.metrics_by_version()["1.0.0"]
    assert m["accuracy"] == pytest.approx((y == p).mean(), rel=1e-12)
    assert m["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn), rel=1e-12)
    ll = -np.mean(np.where(y, np.log(s), np.log(1 - s)))
    assert m["log_loss"] == pytest.approx(ll, rel=1e-9)
    assert m["n"] == 500


def test_regression_metrics_and_versions_are_separate():
    rng = np.random.default_rng(3)
    y = rng.normal(10, 2, 300)
    p1, p2 = y + rng.normal(0, 1, 300), y + rng.normal(0, 3, 300)
    rows = [JoinedRow("m", f"a{i}", i, "1", float(a), None, float(b), None) for i, (a, b) in enumerate(zip(p1, y))]
    rows += [JoinedRow("m", f"b{i}", i, "2", float(a), None, float(b), None) for i, (a, b) in enumerate(zip(p2, y))]
    t = PerformanceTracker("regression")
    t.update(rows)
    m = t.metrics_by_version()
    assert m["1"]["mae"] == pytest.approx(np.abs(p1 - y).mean(), rel=1e-12)
    assert m["2"]["rmse"] == pytest.approx(math.sqrt(((p2 - y) ** 2).mean()), rel=1e-12)
    assert m["1"]["n"] == m["2"]["n"] == 300


def test_multiclass_cross_entropy_uses_scores():
    rows = [
        JoinedRow("m", "1", 0, "1", "a", None, "a", None, {"a": 0.7, "b": 0.2, "c": 0.1}),
        JoinedRow("m", "2", 1, "1", "b", None, "c", None, {"a": 0.1, "b": 0.5, "c": 0.4}),
    ]
    t = PerformanceTracker("multiclass")
    t.update(rows)
    m = t.metrics_by_version()["1"]
    assert m["accuracy"] == 0.5
    assert m["cross_entropy"] == pytest.approx(-(math.log(0.7) + math.log(0.4)) / 2)


@pytest.mark.parametrize(
    "labels,preds,task",
    [
        ([True, False] * 30, [False, True] * 30, "binary"),
        ([0, 1] * 30, [1, 1] * 30, "binary"),
        (["spam", "ham"] * 30, ["ham", "ham"] * 30, "binary"),
        (["a", "b", "c"] * 20, ["a"] * 60, "multiclass"),
        ([0, 1, 2, 3] * 15, [0, 1, 2, 2] * 15, "multiclass"),
        ([float(v) for v in range(60)], [1.5] * 60, "regression"),
        (list(range(60)), list(range(60)), "regression"),  # > 20 distinct integers
    ],
)
def test_task_inference(labels, preds, task):
    rows = [JoinedRow("m", str(i), i, "1", p, None, y, None) for i, (y, p) in enumerate(zip(labels, preds))]
    assert infer_task(rows) == task
    t = PerformanceTracker(infer_rows=50)
    assert t.update(rows[:40]) == [] and t.task is None  # buffering
    t.update(rows[40:])
    assert t.task == task and t.metrics_by_version()["1"]["n"] == 60


def test_string_binary_positive_class_sorts_last():
    rows = [
        JoinedRow("m", str(i), i, "1", p, None, y, None)
        for i, (y, p) in enumerate([("spam", "spam"), ("ham", "spam"), ("ham", "ham")])
    ]
    t = PerformanceTracker("binary")
    t.update(rows)
    assert t.pos_label == "spam"
    assert t.metrics_by_version()["1"]["f1"] == pytest.approx(2 / 3)  # tp=1 fp=1 fn=0


def test_error_rate_step_is_detected_once_with_before_and_after():
    rows = rows_binary([(4000, 0.1), (2000, 0.4)], seed=42)
    sigs = PerformanceTracker("binary").update(rows)
    assert [s.index for s in sigs] == [4127]
    s = sigs[0]
    assert 4000 <= s.index < 4400 and s.model_version == "1.0.0" and s.degraded
    # before ≈ the old 10% level; the kept sub-window still mixes in old rows, the last
    # 100 rows are all post-change (rate 0.4, sd of their mean ≈ 0.05).
    assert s.before < 0.12 < s.after < s.recent and s.recent > 0.25
    assert s.event_id == f"e{s.index}"
    assert s.metrics["n"] == s.index + 1 and "accuracy" in s.metrics


def test_no_false_alarms_on_stationary_streams():
    for seed in range(5):
        t = PerformanceTracker("binary")
        assert t.update(rows_binary([(20_000, 0.2)], seed=seed)) == []
    rng = np.random.default_rng(9)
    y = rng.normal(size=20_000)
    p = y + rng.standard_t(3, 20_000)  # heavy-tailed errors
    rows = [JoinedRow("m", str(i), i, "1", float(a), None, float(b), None) for i, (a, b) in enumerate(zip(p, y))]
    assert PerformanceTracker("regression").update(rows) == []


def test_regression_scale_change_is_detected():
    rng = np.random.default_rng(21)
    y = rng.normal(size=6000)
    noise = np.concatenate([rng.normal(0, 1, 3000), rng.normal(0, 2, 3000)])
    rows = [
        JoinedRow("m", str(i), i, "1", float(a + e), None, float(a), None) for i, (a, e) in enumerate(zip(y, noise))
    ]
    sigs = PerformanceTracker("regression").update(rows)
    assert [s.index for s in sigs] == [3039]
    assert sigs[0].metric == "abs_error_clipped" and sigs[0].before < sigs[0].after < sigs[0].recent
    assert sigs[0].recent > 1.3 * sigs[0].before  # 39 of the last 100 rows are post-change


def test_state_round_trip_continues_identically():
    rows = rows_binary([(3000, 0.1), (2000, 0.4)], seed=7)
    rows += rows_binary([(100, 0.3)], version="2.0.0", seed=8, start=10_000)
    whole = PerformanceTracker()
    sig_whole = whole.update(rows)
    a = PerformanceTracker()
    sig_a = a.update(rows[:30])  # still inferring: buffered
    b = PerformanceTracker.from_state(a.to_state())
    sig_b = b.update(rows[30:3500])
    c = PerformanceTracker.from_state(b.to_state())
    sig_c = c.update(rows[3500:])
    assert isinstance(a.to_state(), bytes)
    assert sig_a + sig_b + sig_c == sig_whole and len(sig_whole) == 1
    assert c.metrics_by_version() == whole.metrics_by_version()
    assert set(whole.metrics_by_version()) == {"1.0.0", "2.0.0"}
