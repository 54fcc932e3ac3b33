"""Candidates: spec, time-ordered split, River pipelines by task, plug-ins, metrics."""

import random
import sys
import types

import pytest

from driftline.consumers.training.candidate import candidate_spec, time_split, train_candidate
from driftline.consumers.training.evaluation import evaluate


def _rows(n, task="binary", seed=0):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1), "plan": rng.choice(["pro", "free"]), "flag": i % 3 == 0}
        signal = 2 * x["a"] - x["b"] + (1.0 if x["plan"] == "pro" else 0.0)
        label = (
            signal > 0.5
            if task == "binary"
            else (
                round(signal, 3) if task == "regression" else ("hi" if signal > 1 else "mid" if signal > -1 else "lo")
            )
        )
        rows.append({"ts": float(i), "event_id": str(i), "features": x, "label": label})
    return rows


def test_time_split_keeps_the_newest_rows_for_validation():
    train, valid = time_split(_rows(100), 0.2)
    assert len(valid) == 20 and max(r["ts"] for r in train) < min(r["ts"] for r in valid)


def test_spec_drops_rare_features_and_infers_the_task():
    rows = _rows(300)
    rows[0]["features"]["stray"] = 1.0
    spec = candidate_spec(rows)
    assert spec == {"task": "binary", "model": "river", "params": {}, "features": ["a", "b", "flag", "plan"]}


@pytest.mark.parametrize(
    ("task", "metric", "bound"),
    [("binary", "accuracy", 0.85), ("multiclass", "accuracy", 0.55), ("regression", "r2", 0.8)],
)
def test_river_pipeline_learns_each_task(task, metric, bound):
    train, valid = time_split(_rows(3000, task), 0.2)
    spec = candidate_spec(train, task=task, params={"epochs": 2})
    metrics = evaluate(train_candidate(train, spec), valid, task)
    assert metrics[metric] >= bound and metrics["n"] == 600


def test_plugin_receives_rows_and_spec(monkeypatch):
    seen = {}

    class Constant:
        def predict_one(self, x):
            return True

    def train(rows, spec):
        seen.update(n=len(rows), spec=spec)
        return Constant()

    module = types.ModuleType("driftline_test_plugin")
    module.train = train
    monkeypatch.setitem(sys.modules, "driftline_test_plugin", module)
    rows = _rows(50)
    spec = candidate_spec(rows, task="binary", model="plugin:driftline_test_plugin:train")
    model = train_candidate(rows, spec)
    assert seen["n"] == 50 and seen["spec"]["features"] == spec["features"]
    assert "log_loss" not in evaluate(model, rows, "binary")  # no predict_proba_one: no log loss


def test_plugin_must_return_a_predictor(monkeypatch):
    module = types.ModuleType("driftline_bad_plugin")
    module.train = lambda rows, spec: object()
    monkeypatch.setitem(sys.modules, "driftline_bad_plugin", module)
    with pytest.raises(TypeError, match="predict_one"):
        train_candidate(_rows(10), {"model": "plugin:driftline_bad_plugin:train", "task": "binary"})
