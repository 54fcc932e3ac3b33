"""Window choice: validation on the newest post-drift rows, windows older than them, the best proper score wins."""

import random

import orjson
import pytest

from driftline.consumers.registry.validation_gate import GateThresholds, evaluate_gate
from driftline.consumers.training.batch_learners import BatchModel
from driftline.consumers.training.evaluation import baseline_metrics, evaluate
from driftline.consumers.training.window_choice import (
    SAME_WITHIN_Z,
    SIGNIFICANT_Z,
    choose_candidate,
    training_windows,
    validation_split,
)

FEATURES = ["x0", "x1", "x2", "x3"]
N_A, N_B, T0 = 6000, 1500, 1000.0
DRIFT_START = T0 + N_A


def _concept_change(seed=11, noise=0.01):
    """6,000 rows of x0+x1>0, then 1,500 of x0-x1>0: same N(0,1) features, 1 % label noise."""
    rng = random.Random(seed)
    rows = []
    for i in range(N_A + N_B):
        x = {name: rng.gauss(0, 1) for name in FEATURES}
        label = ((x["x0"] + x["x1"] if i < N_A else x["x0"] - x["x1"]) > 0) != (rng.random() < noise)
        rows.append({"ts": T0 + i, "event_id": f"e{i}", "features": x, "label": label})
    return rows


def _choose(rows, drift_start=DRIFT_START, **kw):
    args = {
        "task": "binary",
        "features": FEATURES,
        "drift_start": drift_start,
        "validation_fraction": 0.2,
        "min_validation_rows": 200,
        "learners": ["logistic", "hist_gbdt"],
        "max_rows": 5000,
        **kw,
    }
    return choose_candidate(rows, **args)


def _fit(rows):
    return BatchModel.fit(
        [r["features"] for r in rows], [r["label"] for r in rows], task="binary", features=FEATURES, learner="logistic"
    )


@pytest.fixture(scope="module")
def drifted():
    rows = _concept_change()
    return rows, _choose(rows)


def test_validation_rows_are_the_newest_post_change_rows(drifted):
    rows, sel = drifted
    valid = sel.validation_rows
    assert all(r["ts"] >= DRIFT_START for r in valid) and valid[-1] is rows[-1]
    assert len(valid) == round(0.2 * N_B)  # 300 > min_validation_rows
    assert sel.validation == {
        "n": len(valid),
        "ts_from": valid[0]["ts"],
        "ts_to": rows[-1]["ts"],
        "first_event_id": valid[0]["event_id"],
        "last_event_id": rows[-1]["event_id"],
        "drift_start": DRIFT_START,
    }
    trained = [t for t in sel.trials if "n_train" in t and "skipped" not in t]
    assert trained and all(t["ts_to"] < valid[0]["ts"] for t in trained)


def test_winner_learned_the_new_concept_from_a_post_change_window(drifted):
    _, sel = drifted
    assert sel.window == "since_drift" and sel.learner in ("logistic", "hist_gbdt")
    assert sel.metrics["accuracy"] >= 0.95
    assert sel.metrics == evaluate(sel.model, sel.validation_rows, "binary")
    scored = [t for t in sel.trials if "metrics" in t]
    windows = ("since_drift", "last_n", "latest", "recent_weighted")
    # the simple learner on every window; the tree ensemble only on the window that won
    assert {(t["window"], t["learner"]) for t in scored} == {
        *((w, "logistic") for w in windows),
        ("since_drift", "hist_gbdt"),
    }
    simple = {t["window"]: t for t in scored if t["learner"] == "logistic"}
    # the newest rows alone may score a little better by chance: not significantly, so the
    # window with more rows of the same concept wins
    assert (
        simple["since_drift"]["metrics"]["log_loss"] <= simple["latest"]["metrics"]["log_loss"]
        or simple["since_drift"].get("behind_best_z", 0.0) < SAME_WITHIN_Z
    )
    assert simple["last_n"]["metrics"]["accuracy"] < 0.9  # mostly the old concept
    orjson.dumps(sel.to_dict())  # JSON-able, model aside


def _xor_rows(n: int, seed: int = 4) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        x = {"a": rng.uniform(-1, 1), "b": rng.uniform(-1, 1)}
        rows.append({"ts": float(i), "event_id": str(i), "features": x, "label": (x["a"] * x["b"]) > 0})
    return rows


def test_a_tree_ensemble_replaces_the_linear_model_only_when_significantly_better():
    linear = [
        {"ts": float(i), "event_id": str(i), "features": {"a": a, "b": b}, "label": a - b > 0}
        for i, (a, b) in enumerate(
            (random.Random(i).gauss(0, 1), random.Random(-i - 1).gauss(0, 1)) for i in range(3000)
        )
    ]
    common = {
        "task": "binary",
        "features": ["a", "b"],
        "drift_start": None,
        "validation_fraction": 0.2,
        "min_validation_rows": 100,
        "learners": ["logistic", "hist_gbdt"],
        "max_rows": 10_000,
    }
    on_linear = choose_candidate(linear, **common)
    assert on_linear.learner == "logistic"
    gbdt = next(t for t in on_linear.trials if t.get("learner") == "hist_gbdt")
    assert gbdt["gain_z"] < SIGNIFICANT_Z
    on_xor = choose_candidate(_xor_rows(3000), **common)
    assert on_xor.learner == "hist_gbdt" and on_xor.metrics["accuracy"] > 0.9


def test_old_concept_fails_the_baseline_check_and_the_winner_passes_against_it(drifted):
    rows, sel = drifted
    valid = sel.validation_rows
    old = _fit(rows[:N_A])
    old_metrics, baseline = evaluate(old, valid, "binary"), baseline_metrics(valid, "binary")
    assert 0.4 <= old_metrics["accuracy"] <= 0.6
    thresholds = GateThresholds(
        floors={"accuracy": 0.5}, non_regression={"accuracy": {"abs": 0.01}, "log_loss": {"rel": 0.1}}
    )
    # judged like a retrain of the old rule against a champion that serves at chance: non-regression passes...
    retrain_of_old = evaluate(_fit(rows[N_A - 3000 : N_A]), valid, "binary")
    assert evaluate_gate(retrain_of_old, old_metrics, GateThresholds(non_regression=thresholds.non_regression)).passed
    # ...the baseline check does not
    verdict = evaluate_gate(retrain_of_old, old_metrics, thresholds, baseline=baseline)
    assert not verdict.passed and "constant predictor" in verdict.reason
    check = next(c for c in verdict.checks if c.kind == "baseline")
    assert check.metric == "log_loss" and check.baseline == baseline["log_loss"] and not check.passed
    winner = evaluate_gate(sel.metrics, old_metrics, thresholds, baseline=baseline)
    assert winner.passed and "baseline" in {c["kind"] for c in winner.to_dict()["checks"]}


def test_without_drift_start_validation_is_the_newest_rows_overall():
    rows = _concept_change(seed=12)[:2000]
    sel = _choose(rows, drift_start=None, learners=["logistic"])
    assert sel.validation_rows == rows[-400:] and sel.validation["drift_start"] is None
    skipped = {t["window"]: t["skipped"] for t in sel.trials if "skipped" in t}
    assert skipped["since_drift"] == "no drift start"
    assert {t["window"] for t in sel.trials if "metrics" in t} == {"last_n", "latest", "recent_weighted"}


def test_split_sizes_min_rows_and_half_cap():
    rows = [{"ts": float(i), "label": i % 2 == 0, "features": {}} for i in range(1000)]
    older, valid, used = validation_split(rows, drift_start=900.0, validation_fraction=0.2, min_validation_rows=30)
    assert len(valid) == 30 and valid[0]["ts"] == 970.0 and len(older) == 970 and used == 900.0
    older, valid, _ = validation_split(rows, drift_start=900.0, validation_fraction=0.2, min_validation_rows=500)
    assert len(valid) == 50  # never more than half of the 100 post-drift rows
    older, valid, used = validation_split(rows, drift_start=5000.0, validation_fraction=0.1, min_validation_rows=10)
    assert used is None and len(valid) == 100  # nothing after the drift start: the split of all rows


def test_identical_and_small_windows_are_skipped_with_a_reason():
    rows = [{"ts": float(i), "label": i % 2 == 0, "features": {"x0": float(i)}} for i in range(300)]
    windows, skipped = training_windows(rows, task="binary", drift_start=0.0, max_rows=1000)
    assert [w.name for w in windows] == ["since_drift", "latest", "recent_weighted"]
    assert skipped == [
        {"window": "last_n", "n_train": 300, "ts_from": 0.0, "ts_to": 299.0, "skipped": "same rows as since_drift"}
    ]
    windows, skipped = training_windows(rows, task="binary", drift_start=295.0, max_rows=1000)
    assert skipped[0]["window"] == "since_drift" and skipped[0]["skipped"] == "5 rows < 20"
    ones = [dict(r, label=True) for r in rows]
    assert {s["skipped"] for s in training_windows(ones, task="binary", drift_start=None, max_rows=50)[1]} >= {
        "one class only"
    }


def test_recent_weighted_halves_every_post_drift_row_count():
    rows = [{"ts": float(i), "label": i % 2 == 0, "features": {}} for i in range(400)]
    windows, _ = training_windows(rows, task="binary", drift_start=300.0, max_rows=50)
    weighted = next(w for w in windows if w.name == "recent_weighted")
    assert weighted.info["half_life_rows"] == 100 and weighted.weights[-1] == 1.0
    assert weighted.weights[-101] == pytest.approx(0.5) and weighted.weights[-201] == pytest.approx(0.25)


def test_extra_models_take_part_and_can_win(drifted):
    rows, _ = drifted

    class Oracle:  # knows the new rule; a River-like model: per-row methods only
        def predict_proba_one(self, x):
            p = 0.99 if x["x0"] - x["x1"] > 0 else 0.01
            return {True: p, False: 1 - p}

        def predict_one(self, x):
            return x["x0"] - x["x1"] > 0

    class Stale(Oracle):
        def predict_proba_one(self, x):
            return {True: 0.5, False: 0.5}

    sel = _choose(rows, learners=["logistic"], extra={"oracle": Oracle(), "stale": Stale()})
    assert (sel.window, sel.learner) == ("extra", "oracle") and isinstance(sel.model, Oracle)
    stale = next(t for t in sel.trials if t["learner"] == "stale")
    assert stale["window"] == "extra" and stale["metrics"]["log_loss"] == pytest.approx(0.693147, abs=1e-6)
    sel = _choose(rows, learners=["logistic"], extra={"stale": Stale()})
    assert sel.learner == "logistic"


def test_regression_winner_by_mae():
    rng = random.Random(13)
    rows = []
    for i in range(3000):
        x = {"x0": rng.gauss(0, 1), "x1": rng.gauss(0, 1)}
        y = (3 * x["x0"] if i < 2000 else -3 * x["x0"]) + rng.gauss(0, 0.1)
        rows.append({"ts": float(i), "event_id": str(i), "features": x, "label": y})
    sel = choose_candidate(
        rows,
        task="regression",
        features=["x0", "x1"],
        drift_start=2000.0,
        validation_fraction=0.2,
        min_validation_rows=100,
        learners=["ridge", "hist_gbdt"],
        max_rows=3000,
    )
    assert sel.window == "since_drift" and sel.metrics["r2"] > 0.95
    base = baseline_metrics(sel.validation_rows, "regression")
    assert evaluate_gate(sel.metrics, None, GateThresholds(), baseline=base).passed
    assert sel.metrics["mae"] == min(t["metrics"]["mae"] for t in sel.trials if "metrics" in t)


def test_nothing_trainable_raises():
    rows = [{"ts": float(i), "label": True, "features": {"x0": float(i)}} for i in range(100)]
    with pytest.raises(ValueError, match="no candidate could be trained"):
        choose_candidate(
            rows,
            task="binary",
            features=["x0"],
            drift_start=None,
            validation_fraction=0.2,
            min_validation_rows=10,
            learners=["logistic"],
            max_rows=100,
        )


def test_when_the_concept_keeps_moving_the_newest_rows_win():
    import math

    rng = random.Random(8)
    rows = []
    for i in range(8000):
        angle = math.pi * max(0.0, (i - 2000) / 6000)  # the rule turns half a circle after row 2,000
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)}
        rows.append(
            {
                "ts": float(i),
                "event_id": str(i),
                "features": x,
                "label": math.cos(angle) * x["a"] + math.sin(angle) * x["b"] > 0,
            }
        )
    sel = choose_candidate(
        rows,
        task="binary",
        features=["a", "b"],
        drift_start=2000.0,
        validation_fraction=0.05,
        min_validation_rows=200,
        learners=["logistic"],
        max_rows=50_000,
    )
    assert sel.window == "latest" and sel.metrics["accuracy"] > 0.8  # the others learned rules long gone (< 0.5)


def test_a_window_mostly_of_old_rows_does_not_win_on_size_while_the_concept_moves():
    rng = random.Random(12)
    rows = []
    for i in range(10_000):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)}
        new = i >= 6000 and rng.random() < 0.5  # half-way through a gradual change after row 6,000
        rows.append(
            {
                "ts": float(i),
                "event_id": str(i),
                "features": x,
                "label": (x["a"] - x["b"] if new else x["a"] + x["b"]) > 0,
            }
        )
    sel = choose_candidate(
        rows,
        task="binary",
        features=["a", "b"],
        drift_start=6000.0,
        validation_fraction=0.25,
        min_validation_rows=200,
        learners=["logistic"],
        max_rows=20_000,
    )
    last_n = next(t for t in sel.trials if t.get("window") == "last_n")
    # about as accurate on the newest rows, but confidently wrong on the half that follows the new rule
    assert abs(last_n["metrics"]["accuracy"] - sel.metrics["accuracy"]) < 0.03
    assert sel.window in ("since_drift", "latest") and sel.metrics["log_loss"] < last_n["metrics"]["log_loss"] - 0.1


def test_windows_no_better_than_a_constant_are_marked_and_do_not_compete(drifted):
    _, sel = drifted
    last_n = next(t for t in sel.trials if t.get("window") == "last_n")
    assert last_n["not_better_than_constant"] and sel.window != "last_n"


def test_an_online_model_is_judged_on_the_rows_it_has_not_learned():
    rows = _concept_change()

    class Learned:  # an online model that learned every row up to ``trained_until``, and the new rule
        def __init__(self, trained_until):
            self.trained_until = trained_until

        def predict_proba_one(self, x):
            p = 0.99 if x["x0"] - x["x1"] > 0 else 0.01
            return {True: p, False: 1 - p}

        def predict_one(self, x):
            return x["x0"] - x["x1"] > 0

    # the plain split validates on the newest 300 post-drift rows; this model saw all but the newest 250
    seen_until = rows[-251]["ts"]
    sel = _choose(rows, learners=["logistic"], extra={"online": Learned(seen_until)})
    assert sel.learner == "online" and sel.validation["n"] == 250 and sel.validation["ts_from"] > seen_until
    assert all(t.get("ts_to", -1) < sel.validation["ts_from"] for t in sel.trials if t["window"] != "extra")
    # with fewer unseen rows than min_validation_rows it keeps the plain split and is skipped
    sel = _choose(rows, learners=["logistic"], extra={"online": Learned(rows[-151]["ts"])})
    assert sel.learner == "logistic" and sel.validation["n"] == 300
    [trial] = [t for t in sel.trials if t["learner"] == "online"]
    assert trial["skipped"].startswith("it learned from the validation rows")
    older, valid, _ = validation_split(
        rows, drift_start=DRIFT_START, validation_fraction=0.2, min_validation_rows=200, unseen_after=seen_until
    )
    assert len(valid) == 250 and older[-1]["ts"] == seen_until
