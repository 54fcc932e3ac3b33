"""Batch learners: converged and calibrated, fast per-row paths equal to sklearn's, picklable."""

import math
import pickle
import random
import warnings

import numpy as np
import pytest

from driftline.consumers.training.batch_learners import BatchModel, FeatureEncoder, learner_kwargs
from driftline.consumers.training.candidate import candidate_spec, time_split, train_candidate
from driftline.consumers.training.evaluation import evaluate

FEATURES = [f"x{i}" for i in range(6)] + ["plan", "flag"]


def _rows(n, task="binary", seed=0, noise=0.0, holes=False):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        x = {f"x{j}": rng.gauss(0, 1) for j in range(6)}
        x["plan"], x["flag"] = rng.choice(["pro", "free", "team"]), rng.random() < 0.3
        if holes and rng.random() < 0.1:
            x["x2"] = rng.choice([None, float("nan"), "n/a"])
        s = 2 * x["x0"] - x["x1"] + (0.8 if x["plan"] == "pro" else 0.0) + 0.5 * x["flag"]
        if task == "binary":
            label = (s > 0) != (rng.random() < noise)
        elif task == "multiclass":
            label = "hi" if s > 1 else "mid" if s > -1 else "lo"
        else:
            label = s + rng.gauss(0, 0.1)
        rows.append({"ts": float(i), "event_id": str(i), "features": x, "label": label})
    return rows


def _fit(rows, task, learner, **kw):
    return BatchModel.fit(
        [r["features"] for r in rows],
        [_y(task, r["label"]) for r in rows],
        task=task,
        features=FEATURES,
        learner=learner,
        **kw,
    )


def _y(task, label):
    return bool(label) if task == "binary" else label


def test_logistic_converges_and_is_calibrated_on_a_clean_linear_rule():
    train, valid = time_split(_rows(4000), 0.25)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ConvergenceWarning fails the test
        model = _fit(train, "binary", "logistic")
    metrics = evaluate(model, valid, "binary")
    assert metrics["accuracy"] >= 0.97 and metrics["log_loss"] < 0.15


@pytest.mark.parametrize(
    ("task", "learner"),
    [
        ("binary", "logistic"),
        ("multiclass", "logistic"),
        ("regression", "ridge"),
        ("binary", "hist_gbdt"),
        ("multiclass", "hist_gbdt"),
        ("regression", "hist_gbdt"),
    ],
)
def test_per_row_predictions_equal_sklearns_batch_predictions(task, learner):
    rows = _rows(1500, task, seed=1, holes=True)
    model = _fit(rows[:1200], task, learner)
    probe = [r["features"] for r in rows[1200:]] + [{}, {"plan": "enterprise"}, {"x0": float("inf"), "x2": "?"}]
    matrix = model._matrix(probe)
    if task == "regression":
        expected = model.estimator.predict(matrix)
        np.testing.assert_allclose([model.predict_one(x) for x in probe], expected, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(model.predict_many(probe), expected, rtol=1e-12)
        return
    expected = model.estimator.predict_proba(matrix)
    got = np.array([[model.predict_proba_one(x)[c] for c in model.classes] for x in probe])
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert [model.predict_one(x) for x in probe] == model.estimator.predict(matrix).tolist()
    assert model.predict_many(probe).tolist() == model.estimator.predict(matrix).tolist()
    if task == "binary":
        assert set(model.classes) == {False, True}
        np.testing.assert_allclose(model.predict_proba_many(probe), expected[:, 1])


def test_pickle_round_trip_predicts_the_same_without_the_training_rows():
    rows = _rows(800, "multiclass", seed=2, holes=True)
    model = _fit(rows, "multiclass", "logistic")
    blob = pickle.dumps(model)
    assert b"event_id" not in blob and len(blob) < 50_000
    clone = pickle.loads(blob)
    probe = [r["features"] for r in _rows(50, "multiclass", seed=3, holes=True)]
    assert [clone.predict_proba_one(x) for x in probe] == [model.predict_proba_one(x) for x in probe]


def test_unseen_category_and_missing_values_do_not_raise():
    model = _fit(_rows(600, seed=4, holes=True), "binary", "logistic")
    for x in (
        {},
        {"plan": "enterprise"},
        {"x0": None, "x1": float("nan"), "x2": "text"},
        {"flag": None},
        {"x0": float("-inf"), "other": 5},
    ):
        p = model.predict_proba_one(x)
        assert set(p) == {False, True} and math.isclose(sum(p.values()), 1.0) and isinstance(model.predict_one(x), bool)


def test_encoding_matches_featurevector_meaning():
    xs = [{"a": 1.0, "b": "x", "c": True}, {"a": None, "b": "y", "c": False}, {"a": float("nan"), "b": 3, "c": 1}]
    enc = FeatureEncoder(["a", "b", "c"], xs, impute=True)
    # b is a number once (its column, imputed with that median, plus an indicator) and a string twice
    assert enc.columns == ["a", "a?missing", "b", "b?missing", "b=x", "b=y", "c"]
    assert enc.row({"a": None, "b": "zzz", "c": True, "ignored": 9.0}) == [1.0, 1.0, 3.0, 1.0, 0.0, 0.0, 1.0]
    assert enc.row({"a": 2.0, "b": "y", "c": False}) == [2.0, 0.0, 3.0, 1.0, 0.0, 1.0, 0.0]
    gbdt = FeatureEncoder(["a", "b", "c"], xs, impute=False)
    assert "a?missing" not in gbdt.columns and math.isnan(gbdt.row({})[0])


def test_matrix_is_row_by_row_for_every_kind_of_value():
    # matrix() encodes column by column with numpy; it must mean exactly what row() means
    rng = random.Random(11)
    kinds = [
        lambda: rng.gauss(0, 1),
        lambda: rng.randint(-3, 3),
        lambda: rng.random() < 0.5,
        lambda: None,
        lambda: float("nan"),
        lambda: float("inf"),
        lambda: rng.choice(["p", "q", "r"]),
        lambda: "1.5",
        lambda: {"nested": 1},
        lambda: [1, 2],
    ]
    xs = [
        {
            "num": rng.gauss(0, 1),
            "cat": rng.choice(["p", "q"]),
            "mixed": rng.choice(kinds)(),
            "sparse": None if rng.random() < 0.3 else rng.gauss(5, 1),
        }
        for _ in range(500)
    ]
    features = ["num", "cat", "mixed", "sparse", "absent"]
    for impute in (True, False):
        enc = FeatureEncoder(features, xs, impute=impute)
        probe = xs[:50] + [{}, {"mixed": "unseen"}, {"cat": 7, "num": True}, {"sparse": float("-inf")}]
        expected = np.array([enc.row(x) for x in probe], dtype=float)
        assert np.array_equal(enc.matrix(probe), expected, equal_nan=True)
    assert enc.matrix([]).shape == (0, len(enc.columns))


def test_sample_weight_shifts_the_fit_toward_the_weighted_rows():
    rng = random.Random(5)
    xs = [{"x0": rng.gauss(0, 1)} for _ in range(2000)]
    ys = [(x["x0"] > 0) if i < 1000 else (x["x0"] < 0) for i, x in enumerate(xs)]  # the rule flips half-way
    weights = [0.01] * 1000 + [1.0] * 1000
    model = BatchModel.fit(xs, ys, task="binary", features=["x0"], learner="logistic", sample_weight=weights)
    assert model.predict_one({"x0": 2.0}) is False and model.predict_one({"x0": -2.0}) is True


def test_params_reach_the_estimator_and_bad_learners_are_refused():
    assert learner_kwargs("logistic", {"C": 0.1})["C"] == 0.1
    assert learner_kwargs("hist_gbdt", {"C": 0.1, "hist_gbdt": {"learning_rate": 0.05}})["learning_rate"] == 0.05
    model = _fit(_rows(300, seed=6), "binary", "logistic", params={"C": 0.001})
    strong = _fit(_rows(300, seed=6), "binary", "logistic")
    assert np.abs(model.estimator.coef_).sum() < np.abs(strong.estimator.coef_).sum()
    with pytest.raises(ValueError, match="does not fit task"):
        _fit(_rows(100, "regression"), "regression", "logistic")
    with pytest.raises(ValueError, match="two classes"):
        BatchModel.fit([{"x0": 1.0}] * 30, [True] * 30, task="binary", features=["x0"], learner="logistic")


def test_auto_kind_through_train_candidate():
    rows = _rows(1500, seed=7)
    spec = candidate_spec(rows, task="binary", model="auto", params={"learners": ["logistic"]})
    train, valid = time_split(rows, 0.2)
    model = train_candidate(train, spec)
    assert isinstance(model, BatchModel) and evaluate(model, valid, "binary")["accuracy"] >= 0.95


@pytest.mark.parametrize(
    ("task", "learner"),
    [("binary", "logistic"), ("binary", "hist_gbdt"), ("multiclass", "logistic"), ("regression", "ridge")],
)
def test_evaluate_batch_path_equals_per_row_path(task, learner):
    rows = _rows(1200, task, seed=8, noise=0.05, holes=True)
    model = _fit(rows[:900], task, learner)

    class PerRow:  # the same model, seen without its batch methods (as River models and plug-ins are)
        def predict_one(self, x):
            return model.predict_one(x)

        if task != "regression":

            def predict_proba_one(self, x):
                return model.predict_proba_one(x)

    batch, per_row = evaluate(model, rows[900:], task), evaluate(PerRow(), rows[900:], task)
    assert batch.keys() == per_row.keys() and ("log_loss" in batch) == (task != "regression")
    for key in batch:
        assert batch[key] == pytest.approx(per_row[key], abs=2e-6), key
