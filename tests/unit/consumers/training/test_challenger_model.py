"""The trainer rebuilds the stream's challenger from its export: same predictions on raw features."""

from __future__ import annotations

import copy
import pickle
import random
from typing import Any

import orjson
import pytest

from driftline.consumers.training.challenger_model import (
    ChallengerClassifier,
    ChallengerRegressor,
    challenger_from_export,
)
from driftline.consumers.training.evaluation import evaluate
from driftline.stream.drift.challenger import OnlineChallenger, numeric_features
from driftline.stream.drift.label_join import JoinedRow
from driftline.stream.drift.river_state import dump_pipeline

TASKS = ["binary", "multiclass", "regression"]


def raw(rng: random.Random, novel: bool = False) -> dict[str, Any]:
    """Event features as they arrive: floats, ints, bools, strings, None, features that come and go."""
    features: dict[str, Any] = {
        "x": rng.gauss(0, 1),
        "age": rng.randint(18, 80),
        "vip": rng.random() < 0.3,
        "plan": rng.choice(["free", "pro", "team", None]),
        "zip": None,
    }
    if rng.random() < 0.3:
        features["coupon"] = rng.choice(["A", "B"])
    if rng.random() < 0.1:
        del features["x"]
    if novel:  # what the challenger never learned: new strings, new names, extreme values
        features["plan"] = rng.choice(["enterprise", "pro", "free=1"])
        features[rng.choice(["brand_new", "other"])] = rng.choice([1.5, "s", True, None, float("inf")])
        features["age"] = rng.choice([0, 10**6, -3])
    return features


def label(task: str, features: dict[str, Any], rng: random.Random) -> Any:
    x = features.get("x", 0.0) + (0.8 if features["vip"] else 0.0) + (0.5 if features["plan"] == "pro" else 0.0)
    if task == "regression":
        return 3.0 * x + 0.01 * features["age"] + rng.gauss(0, 0.3)
    if task == "binary":
        return x + rng.gauss(0, 0.5) > 0.4
    return ["low", "mid", "high"][(x > 0) + (x > 1)]


def rows(task: str, n: int, seed: int, novel: bool = False) -> list[JoinedRow]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        features = raw(rng, novel)
        out.append(JoinedRow("m", f"e{i}", float(i), "1.0.0", None, None, label(task, features, rng), features))
    return out


def learned(task: str, n: int = 600) -> OnlineChallenger:
    challenger = OnlineChallenger(task)
    assert challenger.update(rows(task, n, 11)) == n
    return challenger


def stream_prediction(challenger: OnlineChallenger, features: dict[str, Any]) -> tuple[Any, Any]:
    """(label or value, probabilities) exactly as the stream's challenger computes them."""
    x = numeric_features(features)
    if challenger.task == "regression":
        return challenger.model.predict_one(x), None
    proba = challenger.model.predict_proba_one(x)
    return (max(proba, key=proba.get) if proba else None), proba


def same(a: Any, b: Any) -> bool:
    return repr(a) == repr(b)  # exact floats (and key order), not approximately


@pytest.mark.parametrize("task", TASKS)
def test_the_rebuilt_model_predicts_exactly_what_the_stream_does_on_raw_features(task: str) -> None:
    challenger = learned(task)
    model = challenger_from_export(orjson.loads(orjson.dumps(challenger.export())))
    assert isinstance(model, ChallengerRegressor if task == "regression" else ChallengerClassifier)
    held_out = [r.features for r in rows(task, 200, 12)] + [r.features for r in rows(task, 200, 13, novel=True)]
    held_out += [{}, None, {"plan": "pro"}, {"vip": False}, {"zip": None}]
    for features in held_out:
        expected, proba = stream_prediction(challenger, copy.deepcopy(features))
        assert same(model.predict_one(features), expected)
        if task != "regression":
            assert same(model.predict_proba_one(features), proba)


@pytest.mark.parametrize("task", TASKS)
def test_predicting_leaves_the_rebuilt_model_unchanged(task: str) -> None:
    model = challenger_from_export(learned(task).export())
    before = dump_pipeline(model.pipeline)
    for features in (r.features for r in rows(task, 100, 14, novel=True)):
        model.predict_one(features)
    assert dump_pipeline(model.pipeline) == before  # unseen one-hot values do not grow the scaler


def test_binary_probabilities_are_keyed_true_and_false_like_the_stream() -> None:
    model = challenger_from_export(learned("binary").export())
    proba = model.predict_proba_one({"x": 2.0, "vip": True, "plan": "pro"})
    assert set(proba) == {False, True} and proba[True] > 0.5 and model.predict_one({"x": 2.0, "vip": True}) is True


def test_multiclass_predicts_the_stream_labels() -> None:
    model = challenger_from_export(learned("multiclass").export())
    assert set(model.predict_proba_one({"x": 0.0})) == {"low", "mid", "high"}
    assert model.predict_one({"x": 3.0, "vip": True}) == "high"


def test_a_regressor_has_no_probabilities() -> None:
    model = challenger_from_export(learned("regression").export())
    assert not hasattr(model, "predict_proba_one") and isinstance(model.predict_one({"x": 1.0}), float)


@pytest.mark.parametrize("task", TASKS)
def test_the_rebuilt_model_pickles_and_the_trainer_can_evaluate_it(task: str) -> None:
    model = challenger_from_export(learned(task).export())
    again = pickle.loads(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    valid = [r.to_dict() for r in rows(task, 200, 15)]
    for row in valid:
        assert same(again.predict_one(row["features"]), model.predict_one(row["features"]))
    scores = evaluate(again, valid, task)
    assert scores == evaluate(model, valid, task) and scores["n"] == 200.0
    if task != "regression":
        assert scores["accuracy"] > 0.7


def test_the_export_is_the_learned_model_only() -> None:
    challenger = learned("binary", 300)
    doc = challenger.export()
    assert (doc["format"], doc["v"], doc["task"], doc["n"]) == ("driftline.challenger-export", 1, "binary", 300)
    assert doc["features"] == ["age", "coupon", "plan", "vip", "x"]  # raw names; "zip" was always None
    assert doc["model"]["kind"] == "Pipeline" and "metrics" not in doc
    assert orjson.loads(orjson.dumps(doc)) == doc
    model = challenger_from_export(doc)
    assert (model.task, model.features, model.n) == ("binary", tuple(doc["features"]), 300)


def test_a_challenger_without_a_task_has_nothing_to_export() -> None:
    with pytest.raises(ValueError, match="no task"):
        OnlineChallenger(None).export()


def _forge(**changes: Any) -> dict[str, Any]:
    doc = learned("binary", 50).export()
    doc.update(changes)
    return doc


@pytest.mark.parametrize(
    "doc",
    [
        None,
        [],
        _forge(format="driftline.online-challenger"),
        _forge(v=2),
        _forge(v=True),
        _forge(task="ranking"),
        _forge(task="regression"),  # a classifier's pipeline under another task
        _forge(n=-1),
        _forge(n="50"),
        _forge(features="x"),
        _forge(features=["x", "x"]),
        _forge(features=[1]),
        _forge(extra=1),
        _forge(model={"kind": "Pipeline"}),
        _forge(model=None),
    ],
    ids=lambda d: "forged",
)
def test_a_forged_export_is_refused(doc: Any) -> None:
    with pytest.raises(ValueError):
        challenger_from_export(doc)


def test_a_forged_model_inside_an_export_is_refused() -> None:
    doc = learned("binary", 50).export()
    doc["model"]["steps"][1]["estimator"]["kind"] = "os.system"
    with pytest.raises(ValueError, match="unknown kind 'os.system'"):
        challenger_from_export(doc)
