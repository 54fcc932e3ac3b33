"""River state as explicit JSON: exact round trips, and forged or unsupported input refused."""

from __future__ import annotations

import copy
import math
import pickle
import random
import sys
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from river import compose, linear_model, metrics, multiclass, optim, preprocessing

from driftline.stream.drift import river_state
from driftline.stream.drift.challenger import OnlineChallenger, challenger_pipeline
from driftline.stream.drift.label_join import JoinedRow
from driftline.stream.drift.river_state import dump_metric, dump_pipeline, load_metric, load_pipeline

TASKS = ["binary", "multiclass", "regression"]
LABELS = {"binary": [False, True], "multiclass": ["a", "b", "c"], "regression": None}


def same(a: Any, b: Any) -> bool:
    """Exact equality: repr is the shortest exact float text, tells -0.0 and NaN apart, shows key order."""
    return repr(a) == repr(b)


def stream(task: str, n: int, seed: int, labels: list[Any] | None = None, scale: float = 1.0) -> list[tuple[dict, Any]]:
    """Sparse rows as the challenger sees them: numbers, one-hot strings, features coming and going."""
    rng = random.Random(seed)
    labels = labels or LABELS[task]
    rows = []
    for _ in range(n):
        x = {"a": rng.gauss(0, 1) * scale, f"c={rng.choice('uvw')}": 1.0}
        if rng.random() < 0.7:
            x["b"] = rng.uniform(-5, 5) * scale
        if rng.random() < 0.2:
            x[f"rare{rng.randrange(40)}"] = rng.gauss(3, 2)
        if task == "regression":
            y: Any = 2.0 * x["a"] - x.get("b", 0.0) + rng.gauss(0, 0.5)
        else:
            k = int((math.tanh(x["a"]) + 1) / 2 * len(labels) + rng.gauss(0, 0.5))
            y = labels[min(len(labels) - 1, max(0, k))]
        rows.append((x, y))
    return rows


def predict(model: Any, task: str, x: dict) -> Any:
    return model.predict_one(x) if task == "regression" else model.predict_proba_one(x)


def trained(task: str, rows: list[tuple[dict, Any]]) -> compose.Pipeline:
    model = challenger_pipeline(task)
    for x, y in rows:
        predict(model, task, x)  # predict-then-learn, as the stream does (transform adds scaler keys)
        model.learn_one(x, y)
    return model


def through_json(doc: dict) -> dict:
    return orjson.loads(orjson.dumps(doc))


def assert_same_future(a: Any, b: Any, task: str, rows: list[tuple[dict, Any]]) -> None:
    """``a`` and ``b`` predict the same on every row, and learn the rows into the same state."""
    for x, y in rows:
        assert same(predict(a, task, x), predict(b, task, x))
        assert a.predict_one(x) == b.predict_one(x) or same(a.predict_one(x), b.predict_one(x))
        a.learn_one(x, y)
        b.learn_one(x, y)
    assert dump_pipeline(a) == dump_pipeline(b)
    last_a, last_b = list(a.steps.values())[-1], list(b.steps.values())[-1]
    heads = (
        [(last_a, last_b)]
        if task != "multiclass"
        else list(zip(last_a.classifiers.values(), last_b.classifiers.values(), strict=True))
    )
    for head_a, head_b in heads:
        assert same(head_a._weights.to_dict(), head_b._weights.to_dict())
        assert same(head_a.intercept, head_b.intercept)
        assert head_a.optimizer.n_iterations == head_b.optimizer.n_iterations > 0


# -- exact round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_loaded_pipeline_predicts_and_keeps_learning_exactly_like_the_original(task: str, seed: int) -> None:
    rows = stream(task, 700, seed)
    model = trained(task, rows[:500])
    again = load_pipeline(through_json(dump_pipeline(model)))
    assert type(again) is compose.Pipeline and list(again.steps) == list(model.steps)
    reference = copy.deepcopy(model)  # what a faithful copy (like the old pickle) does next
    assert_same_future(again, model, task, rows[500:])
    assert dump_pipeline(reference) != dump_pipeline(model)  # the future rows did change the state


@pytest.mark.parametrize("labels", [[0, 1, 2], ["a", "b", "c"], [True, "x", 2.5]])
def test_multiclass_labels_keep_their_types_and_order(labels: list[Any]) -> None:
    rows = stream("multiclass", 400, 7, labels=labels)
    model = trained("multiclass", rows[:200])
    again = load_pipeline(through_json(dump_pipeline(model)))
    ovr, ovr_again = model["OneVsRestClassifier"], again["OneVsRestClassifier"]
    assert same(list(ovr_again.classifiers), list(ovr.classifiers))
    assert_same_future(again, model, "multiclass", rows[200:])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    task=st.sampled_from(TASKS),
    seed=st.integers(0, 2**32),
    warmup=st.integers(0, 150),
    scale=st.sampled_from([1e-300, 1e-3, 1.0, 1e6, 1e150]),
)
def test_round_trip_is_exact_for_any_stream(task: str, seed: int, warmup: int, scale: float) -> None:
    rows = stream(task, warmup + 200, seed, scale=scale)
    model = trained(task, rows[:warmup])
    again = load_pipeline(through_json(dump_pipeline(model)))
    assert_same_future(again, model, task, rows[warmup:])


@settings(max_examples=200, deadline=None)
@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_every_learned_float_round_trips_bit_for_bit(value: float) -> None:
    model = challenger_pipeline("regression")
    model["LinearRegression"]._weights["x"] = value
    model["LinearRegression"].intercept = value
    again = load_pipeline(through_json(dump_pipeline(model)))
    assert same(again["LinearRegression"].weights["x"], value)
    assert same(again["LinearRegression"].intercept, value)


def test_diverged_models_still_round_trip() -> None:
    model = challenger_pipeline("regression")
    for i in range(50):
        model.learn_one({"x": 1e200 * (i % 3 - 1)}, 1e300)
    doc = dump_pipeline(model)
    assert "NaN" in orjson.dumps(doc).decode() or "Infinity" in orjson.dumps(doc).decode()
    assert same(load_pipeline(through_json(doc)).predict_one({"x": 1.0}), model.predict_one({"x": 1.0}))


def test_hyper_parameters_round_trip() -> None:
    model = preprocessing.StandardScaler(with_std=False) | linear_model.LogisticRegression(
        optimizer=optim.SGD(0.3),
        loss=optim.losses.Log(weight_pos=2.0, weight_neg=0.5),
        l2=0.01,
        intercept_init=0.25,
        intercept_lr=0.05,
        clip_gradient=3.0,
        initializer=optim.initializers.Constant(0.1),
    )
    rows = stream("binary", 300, 3)
    for x, y in rows[:100]:
        model.learn_one(x, y)
    again = load_pipeline(through_json(dump_pipeline(model)))
    head = again["LogisticRegression"]
    assert (
        head.optimizer.lr.learning_rate,
        head.l2,
        head.intercept_init,
        head.intercept_lr.learning_rate,
        head.clip_gradient,
        head.initializer.value,
        head.loss.weight_pos,
        head.loss.weight_neg,
    ) == (0.3, 0.01, 0.25, 0.05, 3.0, 0.1, 2.0, 0.5)
    assert again["StandardScaler"].with_std is False
    assert_same_future(again, model, "binary", rows[100:])


def test_the_format_is_plain_json_and_versioned() -> None:
    doc = dump_pipeline(trained("binary", stream("binary", 50, 0)))
    assert (doc["format"], doc["v"], doc["kind"]) == ("driftline.river-state", 1, "Pipeline")
    assert through_json(doc) == doc
    head = doc["steps"][1]["estimator"]
    assert head["optimizer"] == {"kind": "SGD", "lr": {"kind": "Constant", "learning_rate": 0.01}, "n_iterations": 50}
    assert b"\x80" not in orjson.dumps(doc)


def _metric_stream(name: str, n: int, seed: int) -> list[tuple[Any, Any]]:
    rng = random.Random(seed)
    if name in ("MAE", "RMSE"):
        return [(rng.gauss(0, 1), rng.gauss(0, 1)) for _ in range(n)]
    if name == "LogLoss":
        return [(rng.random() < 0.5, rng.random()) for _ in range(n)]
    if name == "F1":
        return [(rng.random() < 0.5, rng.random() < 0.4) for _ in range(n)]
    if name == "CrossEntropy":
        return [(rng.choice("abc"), dict(zip("abc", (rng.random(), rng.random(), rng.random())))) for _ in range(n)]
    return [(rng.choice("abc"), rng.choice("abcd")) for _ in range(n)]


@pytest.mark.parametrize(
    "cls",
    [metrics.Accuracy, metrics.F1, metrics.LogLoss, metrics.CrossEntropy, metrics.MacroF1, metrics.MAE, metrics.RMSE],
)
def test_metrics_round_trip_and_keep_updating_identically(cls: type) -> None:
    pairs = _metric_stream(cls.__name__, 300, 1)
    metric = cls()
    for y, p in pairs[:200]:
        metric.update(y, p)
        metric.get()  # MacroF1.get adds zero cells: part of the state
    again = load_metric(through_json(dump_metric(metric)))
    assert type(again) is cls and same(again.get(), metric.get())
    for y, p in pairs[200:]:
        metric.update(y, p)
        again.update(y, p)
        assert same(again.get(), metric.get())
    assert dump_metric(again) == dump_metric(metric)
    assert type(load_metric(through_json(dump_metric(cls())))) is cls  # fresh: int total weight, empty tables


def test_a_binary_accuracy_keeps_bool_labels() -> None:
    metric = metrics.Accuracy()
    for i in range(10):
        metric.update(i % 2 == 0, i % 3 == 0)
    again = load_metric(through_json(dump_metric(metric)))
    assert same(dict(again.cm.sum_row), dict(metric.cm.sum_row)) and set(again.cm.classes) == {False, True}


# -- forged documents ----------------------------------------------------------------------


def _binary_doc() -> dict:
    return through_json(dump_pipeline(trained("binary", stream("binary", 60, 0))))


def _ovr_doc() -> dict:
    return through_json(dump_pipeline(trained("multiclass", stream("multiclass", 60, 0))))


def _head(doc: dict) -> dict:
    return doc["steps"][-1]["estimator"]


def _scaler(doc: dict) -> dict:
    return doc["steps"][0]["estimator"]


def _set(path: Callable[[dict], dict], key: str, value: Any) -> Callable[[dict], None]:
    def mutate(doc: dict) -> None:
        path(doc)[key] = value

    return mutate


def _first_key(d: dict) -> str:
    return next(iter(d))


FORGERIES: dict[str, Callable[[dict], None]] = {
    "lr as a string": _set(lambda d: _head(d)["optimizer"]["lr"], "learning_rate", "0.01"),
    "lr NaN token": _set(lambda d: _head(d)["optimizer"]["lr"], "learning_rate", "NaN"),
    "lr NaN float": _set(lambda d: _head(d)["optimizer"]["lr"], "learning_rate", math.nan),
    "lr infinite": _set(lambda d: _head(d)["optimizer"]["lr"], "learning_rate", math.inf),
    "lr negative": _set(lambda d: _head(d)["optimizer"]["lr"], "learning_rate", -0.1),
    "scheduler by name": _set(lambda d: _head(d)["optimizer"], "lr", {"kind": "InverseScaling", "learning_rate": 0.1}),
    "optimizer by name": _set(lambda d: _head(d), "optimizer", {"kind": "Adam", "lr": 0.1, "n_iterations": 0}),
    "l2 bool": _set(_head, "l2", True),
    "l2 NaN token": _set(_head, "l2", "NaN"),
    "l1 non-zero": _set(_head, "l1", 0.5),
    "clip_gradient zero": _set(_head, "clip_gradient", 0.0),
    "intercept not a number": _set(_head, "intercept", "nan"),
    "intercept_lr a number": _set(_head, "intercept_lr", 0.01),
    "n_iterations float": _set(lambda d: _head(d)["optimizer"], "n_iterations", 1.5),
    "n_iterations negative": _set(lambda d: _head(d)["optimizer"], "n_iterations", -1),
    "n_iterations beyond int64": _set(lambda d: _head(d)["optimizer"], "n_iterations", 2**70),
    "loss by name": _set(_head, "loss", {"kind": "Hinge"}),
    "loss weight negative": _set(lambda d: _head(d)["loss"], "weight_pos", -1.0),
    "regression loss on a classifier": _set(_head, "loss", {"kind": "Squared"}),
    "initializer by name": _set(_head, "initializer", {"kind": "Normal", "mu": 0.0, "sigma": 1.0}),
    "weights a list": _set(_head, "weights", [["x", 1.0]]),
    "weight a string": lambda d: _head(d)["weights"].update({"a": "1.0"}),
    "weight a list": lambda d: _head(d)["weights"].update({"a": [1.0]}),
    "feature name too long": lambda d: _head(d)["weights"].update({"x" * (river_state.MAX_NAME + 1): 1.0}),
    "too many weights": _set(_head, "weights", {f"f{i}": 0.0 for i in range(river_state.MAX_FEATURES + 1)}),
    "negative variance": lambda d: _scaler(d)["vars"].update({"a": -1.0}),
    "negative infinite variance": lambda d: _scaler(d)["vars"].update({"a": "-Infinity"}),
    "zero count": lambda d: _scaler(d)["counts"].update({"a": 0}),
    "float count": lambda d: _scaler(d)["counts"].update({"a": 3.0}),
    "NaN count": lambda d: _scaler(d)["counts"].update({"a": "NaN"}),
    "with_std an int": _set(_scaler, "with_std", 1),
    "rolling scaler field": _set(_scaler, "window_size", 10),
    "missing field": lambda d: _head(d).pop("weights"),
    "extra field": _set(_head, "__reduce__", ["os.system", "touch /tmp/pwned"]),
    "estimator kind a dotted name": _set(lambda d: d["steps"][1], "estimator", {"kind": "os.system"}),
    "estimator kind another River class": lambda d: _head(d).update(kind="PARegressor"),
    "classifier where a transformer goes": lambda d: d["steps"].insert(0, copy.deepcopy(d["steps"][1])),
    "transformer last": lambda d: d["steps"].append(copy.deepcopy(d["steps"][0]) | {"name": "Scaler2"}),
    "repeated step name": lambda d: d["steps"].insert(0, copy.deepcopy(d["steps"][0])),
    "step name not a string": _set(lambda d: d["steps"][0], "name", 7),
    "no steps": _set(lambda d: d, "steps", []),
    "too many steps": lambda d: d.update(
        steps=[d["steps"][0] | {"name": f"s{i}"} for i in range(river_state.MAX_STEPS)] + d["steps"][1:]
    ),
    "wrong format": _set(lambda d: d, "format", "pickle"),
    "future version": _set(lambda d: d, "v", 2),
    "version true": _set(lambda d: d, "v", True),
    "pipeline kind": _set(lambda d: d, "kind", "TransformerUnion"),
}

OVR_FORGERIES: dict[str, Callable[[dict], None]] = {
    "repeated label": lambda d: _head(d)["classifiers"].append(copy.deepcopy(_head(d)["classifiers"][0])),
    "label a list": lambda d: _head(d)["classifiers"][0].__setitem__(0, ["a"]),
    "label an object": lambda d: _head(d)["classifiers"][0].__setitem__(0, {"a": 1}),
    "label too long": lambda d: _head(d)["classifiers"][0].__setitem__(0, "a" * (river_state.MAX_NAME + 1)),
    "pair of three": lambda d: _head(d)["classifiers"][0].append(1),
    "classifiers an object": lambda d: _head(d).update(classifiers={"a": _head(d)["classifiers"][0][1]}),
    "template a regressor": lambda d: _head(d)["classifier"].update(kind="LinearRegression"),
    "sub-model a regressor": lambda d: _head(d)["classifiers"][0][1].update(kind="LinearRegression"),
    "too many classes": lambda d: _head(d).update(
        classifiers=[[i, _head(d)["classifier"]] for i in range(river_state.MAX_CLASSES + 1)]
    ),
    "sub-model forged lr": lambda d: _head(d)["classifiers"][1][1]["optimizer"]["lr"].update(learning_rate="Infinity"),
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_a_forged_pipeline_is_refused(name: str) -> None:
    doc = _binary_doc()
    load_pipeline(copy.deepcopy(doc))  # the unforged one loads
    FORGERIES[name](doc)
    with pytest.raises(ValueError, match="river state"):
        load_pipeline(doc)


@pytest.mark.parametrize("name", sorted(OVR_FORGERIES))
def test_a_forged_one_vs_rest_is_refused(name: str) -> None:
    doc = _ovr_doc()
    load_pipeline(copy.deepcopy(doc))
    OVR_FORGERIES[name](doc)
    with pytest.raises(ValueError, match="river state"):
        load_pipeline(doc)


@pytest.mark.parametrize("doc", [None, [], "Pipeline", 1, {"kind": "Pipeline"}, b"\x80\x04"])
def test_what_is_not_a_document_is_refused(doc: Any) -> None:
    with pytest.raises(ValueError, match="river state"):
        load_pipeline(doc)
    with pytest.raises(ValueError, match="river state"):
        load_metric(doc)


def test_a_kind_is_never_imported_by_name() -> None:
    assert "this" not in sys.modules and "antigravity" not in sys.modules
    for kind in ("this", "antigravity", "river.linear_model.PARegressor", "builtins.eval"):
        doc = _binary_doc()
        _head(doc)["kind"] = kind
        with pytest.raises(ValueError, match="unknown kind"):
            load_pipeline(doc)
        with pytest.raises(ValueError, match="unknown kind"):
            load_metric({"format": "driftline.river-state", "v": 1, "kind": kind})
    assert "this" not in sys.modules and "antigravity" not in sys.modules


def _cm_doc() -> dict:
    metric = metrics.MacroF1()
    for y, p in _metric_stream("MacroF1", 50, 0):
        metric.update(y, p)
    return through_json(dump_metric(metric))


METRIC_FORGERIES: dict[str, Callable[[dict], None]] = {
    "negative samples": lambda d: d["cm"].update(n_samples=-1),
    "samples a float": lambda d: d["cm"].update(n_samples=1.0),
    "cell NaN": lambda d: d["cm"]["data"][0][1][0].__setitem__(1, "NaN"),
    "cell a string": lambda d: d["cm"]["data"][0][1][0].__setitem__(1, "1"),
    "row sum infinite": lambda d: d["cm"]["sum_row"][0].__setitem__(1, "Infinity"),
    "repeated class": lambda d: d["cm"]["sum_col"].append(copy.deepcopy(d["cm"]["sum_col"][0])),
    "label an object": lambda d: d["cm"]["sum_col"][0].__setitem__(0, {"x": 1}),
    "too many cells": lambda d: d["cm"].update(data=[[i, [[j, 1.0] for j in range(1001)]] for i in range(1000)]),
    "too many classes": lambda d: d["cm"].update(sum_row=[[i, 1.0] for i in range(river_state.MAX_CLASSES + 1)]),
    "classes not a list": lambda d: d["cm"].update(classes={"a": 1}),
    "missing table": lambda d: d["cm"].pop("sum_col"),
    "extra field": lambda d: d.update(beta=2.0),
    "kind F1": lambda d: d.update(kind="F1"),
    "kind by dotted name": lambda d: d.update(kind="river.metrics.ROCAUC"),
}


@pytest.mark.parametrize("name", sorted(METRIC_FORGERIES))
def test_a_forged_metric_is_refused(name: str) -> None:
    doc = _cm_doc()
    load_metric(copy.deepcopy(doc))
    METRIC_FORGERIES[name](doc)
    with pytest.raises(ValueError, match="river state"):
        load_metric(doc)


@pytest.mark.parametrize(
    "forge",
    [
        lambda d: d["mean"].update(n=-1.0),
        lambda d: d["mean"].update(n="NaN"),
        lambda d: d["mean"].update(mean="1.0"),
        lambda d: d["mean"].update(extra=1),
        lambda d: d.update(mean=[1.0, 2.0]),
    ],
)
def test_a_forged_running_mean_is_refused(forge: Callable[[dict], None]) -> None:
    metric = metrics.MAE()
    metric.update(1.0, 2.0)
    doc = through_json(dump_metric(metric))
    forge(doc)
    with pytest.raises(ValueError, match="river state"):
        load_metric(doc)


# -- unsupported objects -------------------------------------------------------------------


class _MyLogisticRegression(linear_model.LogisticRegression):
    pass


def _learned(model: Any, x: dict, y: Any) -> Any:
    model.learn_one(x, y)
    return model


def _with_attribute(model: Any) -> Any:
    model["LogisticRegression"].extra_state = 1.0
    return model


UNSUPPORTED: dict[str, Callable[[], Any]] = {
    "a bare estimator": lambda: linear_model.LogisticRegression(),
    "another regressor": lambda: preprocessing.StandardScaler() | linear_model.PARegressor(),
    "another scaler": lambda: preprocessing.MinMaxScaler() | linear_model.LogisticRegression(),
    "a rolling scaler": lambda: preprocessing.StandardScaler(window_size=3) | linear_model.LogisticRegression(),
    "Adam": lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(optimizer=optim.Adam()),
    "L1": lambda: preprocessing.StandardScaler() | linear_model.LinearRegression(l1=0.1),
    "a decaying intercept rate": lambda: (
        preprocessing.StandardScaler()
        | linear_model.LogisticRegression(intercept_lr=optim.schedulers.InverseScaling(0.1))
    ),
    "a decaying learning rate": lambda: (
        preprocessing.StandardScaler()
        | linear_model.LinearRegression(optimizer=optim.SGD(optim.schedulers.InverseScaling(0.1)))
    ),
    "hinge loss": lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(loss=optim.losses.Hinge()),
    "absolute loss": lambda: (
        preprocessing.StandardScaler() | linear_model.LinearRegression(loss=optim.losses.Absolute())
    ),
    "a random initializer": lambda: (
        preprocessing.StandardScaler() | linear_model.LogisticRegression(initializer=optim.initializers.Normal(seed=1))
    ),
    "one-vs-rest of another classifier": lambda: (
        preprocessing.StandardScaler() | multiclass.OneVsRestClassifier(linear_model.PAClassifier())
    ),
    "a subclass": lambda: preprocessing.StandardScaler() | _MyLogisticRegression(),
    "a scaler last": lambda: compose.Pipeline(preprocessing.StandardScaler()),
    "an unknown attribute": lambda: _with_attribute(challenger_pipeline("binary")),
    "a non-string feature name": lambda: _learned(challenger_pipeline("binary"), {1: 1.0}, True),
    "a tuple class label": lambda: _learned(challenger_pipeline("multiclass"), {"x": 1.0}, ("a", 1)),
    "a NaN class label": lambda: _learned(challenger_pipeline("multiclass"), {"x": 1.0}, math.nan),
    "an infinite learning rate": lambda: (
        preprocessing.StandardScaler() | linear_model.LinearRegression(optimizer=optim.SGD(math.inf))
    ),
}


@pytest.mark.parametrize("name", sorted(UNSUPPORTED))
def test_an_unsupported_model_is_refused_by_name(name: str) -> None:
    with pytest.raises(ValueError, match="river state: .*(unsupported|label|name|finite|expected)"):
        dump_pipeline(UNSUPPORTED[name]())


@pytest.mark.parametrize(
    "metric",
    [
        metrics.FBeta(beta=2.0),
        metrics.MacroFBeta(beta=2.0),
        metrics.ROCAUC(),
        metrics.MSE(),
        metrics.Precision(),
        metrics.ConfusionMatrix(),
    ],
)
def test_an_unsupported_metric_is_refused_by_name(metric: Any) -> None:
    with pytest.raises(ValueError, match=f"unsupported .*{type(metric).__name__}"):
        dump_metric(metric)


def test_the_error_names_what_is_unsupported() -> None:
    with pytest.raises(ValueError, match=r"steps\[1\]\.optimizer: unsupported river\.optim\.adam\.Adam"):
        dump_pipeline(UNSUPPORTED["Adam"]())


# -- the challenger's state ------------------------------------------------------------------


def joined(task: str, n: int, seed: int) -> list[JoinedRow]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        features = {
            "x": rng.gauss(0, 1),
            "plan": rng.choice(["free", "pro", None]),
            "vip": rng.random() < 0.3,
            "age": rng.randint(18, 80),
        }
        if task == "regression":
            label: Any = 3.0 * features["x"] + rng.gauss(0, 1)
        elif task == "binary":
            label = features["x"] + rng.gauss(0, 1) > 0
        else:
            label = "abc"[int(features["x"] > 0) + int(features["vip"])]
        rows.append(JoinedRow("m", f"e{i}", float(i), "1.0.0", None, None, label, features))
    return rows


@pytest.mark.parametrize("task", TASKS)
def test_the_challenger_state_is_json_and_resumes_exactly(task: str) -> None:
    rows = joined(task, 600, 5)
    challenger = OnlineChallenger(task)
    challenger.update(rows[:400])
    state = challenger.to_state()
    doc = orjson.loads(state)
    assert (doc["format"], doc["v"], doc["task"], doc["n"]) == ("driftline.online-challenger", 2, task, 400)
    assert sorted(doc["features"]) == ["age", "plan", "vip", "x"]
    assert state.startswith(b"{")  # JSON, not pickle
    again = OnlineChallenger.from_state(state)
    assert again.snapshot() == challenger.snapshot() and again.task == task and again.n == 400
    assert again.update(rows[400:]) == challenger.update(rows[400:]) == 200
    assert again.snapshot() == challenger.snapshot()
    assert again.to_state() == challenger.to_state()


def test_a_challenger_without_a_task_round_trips() -> None:
    again = OnlineChallenger.from_state(OnlineChallenger(None).to_state())
    assert again.task is None and again.model is None and again.update(joined("binary", 5, 0)) == 0
    again.set_task("binary")
    assert again.update(joined("binary", 50, 0)) == 50


def test_an_old_pickled_challenger_state_is_refused_not_loaded() -> None:
    challenger = OnlineChallenger("binary")
    challenger.update(joined("binary", 50, 0))
    old = pickle.dumps({"v": 1, "task": "binary", "model": challenger.model, "metrics": challenger.metrics, "n": 50})
    with pytest.raises(ValueError, match="old pickled OnlineChallenger state"):
        OnlineChallenger.from_state(old)


def _state(task: str = "binary") -> dict:
    challenger = OnlineChallenger(task)
    challenger.update(joined(task, 50, 0))
    return orjson.loads(challenger.to_state())


CHALLENGER_FORGERIES: dict[str, Callable[[dict], None]] = {
    "another format": lambda d: d.update(format="driftline.performance"),
    "future version": lambda d: d.update(v=3),
    "unknown task": lambda d: d.update(task="ranking"),
    "another task's model": lambda d: d.update(model=_state("regression")["model"]),
    "another task's metrics": lambda d: d.update(metrics=_state("regression")["metrics"]),
    "metrics swapped": lambda d: d["metrics"].update(accuracy=d["metrics"]["log_loss"]),
    "negative n": lambda d: d.update(n=-1),
    "n a float": lambda d: d.update(n=50.0),
    "features not a list": lambda d: d.update(features="x"),
    "feature repeated": lambda d: d["features"].append(d["features"][0]),
    "a model without a task": lambda d: d.update(task=None),
    "extra field": lambda d: d.update(code="os.system"),
    "forged model": lambda d: d["model"]["steps"][1]["estimator"].update(l2="NaN"),
}


@pytest.mark.parametrize("name", sorted(CHALLENGER_FORGERIES))
def test_a_forged_challenger_state_is_refused(name: str) -> None:
    doc = _state()
    OnlineChallenger.from_state(orjson.dumps(doc))
    CHALLENGER_FORGERIES[name](doc)
    with pytest.raises(ValueError):
        OnlineChallenger.from_state(orjson.dumps(doc))


@pytest.mark.parametrize("blob", [b"", b"not json", b"[1, 2]", b"null", b"\x80\x05K\x01."])
def test_bytes_that_are_no_challenger_state_are_refused(blob: bytes) -> None:
    with pytest.raises(ValueError):
        OnlineChallenger.from_state(blob)
