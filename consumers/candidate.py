"""Train a candidate model from training rows: a River pipeline by task, or a user plug-in.

Rows are ``JoinedRow`` dicts (``features``, ``label``, ``ts``, ...) already ordered by
time. The split is time-ordered — train on the older rows, validate on the newest
(default 20 %) — because a random split would let the model peek at the future it is
judged on. ``evaluate`` computes the metrics the validation gate reads, for the candidate
and the champion alike, on the same rows.

A **spec** describes a candidate so versioning can compare it with the champion's:
``{"task", "model", "params", "features"}``. ``model`` is ``"river"`` (the pipeline for the
task), ``"auto"`` (converged scikit-learn learners, window and learner chosen by validation
on the newest post-drift rows — ``consumers.window_choice``) or ``"plugin:module:function"``;
a plug-in is called as ``fn(rows, spec)`` and must return an object with ``predict_one``
(and ``predict_proba_one`` for classifiers) that pickles.

``evaluate`` scores a whole batch at once when the model says its ``predict_many`` /
``predict_proba_many`` take lists of feature dicts (``predicts_dict_rows = True``, as
``BatchModel`` does; River's take DataFrames), else row by row — same metrics either way.
``baseline_metrics`` is the constant predictor on the same rows, for the gate's
"better than a constant" check.

Examples
--------
>>> rows = [{"ts": float(i), "features": {"x": float(i % 10)}, "label": i % 10 >= 5} for i in range(500)]
>>> spec = candidate_spec(rows, task="binary")
>>> spec["features"], spec["task"]
(['x'], 'binary')
>>> train, valid = time_split(rows, 0.2)
>>> model = train_candidate(train, spec)
>>> evaluate(model, valid, "binary")["accuracy"] > 0.9
True
"""

from __future__ import annotations

import importlib
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from river import base, linear_model, optim, preprocessing

from driftline.stream.label_join import JoinedRow
from driftline.stream.performance import infer_task

from driftline.consumers.batch_learners import LEARNERS
from driftline.consumers.batch_learners import target as _target

__all__ = [
    "FeatureVector",
    "candidate_spec",
    "time_split",
    "load_plugin",
    "train_candidate",
    "train_river",
    "train_auto",
    "evaluate",
    "baseline_metrics",
    "row_errors",
]

Row = Mapping[str, Any]


class FeatureVector(base.Transformer):
    """Keep the spec's features and make them numbers: bool → 0/1, str → one-hot, None → absent.

    Part of the pickled pipeline, so serving code passes raw feature dicts exactly as
    they appear in events.
    """

    def __init__(self, features: Sequence[str]) -> None:
        self.features = tuple(features)

    def transform_one(self, x: dict) -> dict:
        out: dict[str, float] = {}
        for name in self.features:
            value = x.get(name)
            if value is None:
                continue
            if isinstance(value, bool):
                out[name] = float(value)
            elif isinstance(value, (int, float)):
                if math.isfinite(value):
                    out[name] = float(value)
            else:
                out[f"{name}={value}"] = 1.0
        return out


def candidate_spec(rows: Sequence[Row], *, task: str | None = None, model: str = "river",
                   params: Mapping[str, Any] | None = None, min_coverage: float = 0.01) -> dict[str, Any]:
    """The spec for ``rows``: features present in at least ``min_coverage`` of rows, task inferred if None.

    The coverage cut keeps a rare stray feature from changing the feature set (a major bump).
    """
    counts: Counter[str] = Counter()
    for row in rows:
        counts.update(k for k, v in (row.get("features") or {}).items() if v is not None)
    need = max(1, math.ceil(min_coverage * len(rows)))
    features = sorted(name for name, n in counts.items() if n >= need)
    if task is None:
        task = infer_task([JoinedRow.from_dict(dict(r)) for r in rows[-5000:]])
    return {"task": task, "model": model, "params": dict(params or {}), "features": features}


def time_split(rows: Sequence[Row], validation_fraction: float) -> tuple[list[Row], list[Row]]:
    """(older rows, newest ``validation_fraction`` of rows); rows must already be time-ordered."""
    n_valid = max(1, int(round(len(rows) * validation_fraction)))
    cut = max(1, len(rows) - n_valid)
    return list(rows[:cut]), list(rows[cut:])


def load_plugin(path: str) -> Callable[[list[Row], dict[str, Any]], Any]:
    """``"package.module:function"`` → the function."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"plug-in must be 'module:function', got {path!r}")
    return getattr(importlib.import_module(module_name), attr)


def _river_pipeline(task: str, features: Sequence[str], params: Mapping[str, Any]) -> Any:
    optimizer = optim.SGD(float(params.get("lr", 0.01)))
    l2 = float(params.get("l2", 0.0))
    if task == "binary":
        head: Any = linear_model.LogisticRegression(optimizer=optimizer, l2=l2)
    elif task == "multiclass":
        head = linear_model.SoftmaxRegression(optimizer=optimizer, l2=l2)
    elif task == "regression":
        head = linear_model.LinearRegression(optimizer=optimizer, l2=l2)
    else:
        raise ValueError(f"unknown task {task!r}")
    return FeatureVector(features) | preprocessing.StandardScaler() | head


def train_river(rows: Sequence[Row], spec: Mapping[str, Any]) -> Any:
    """The built-in candidate: River pipeline for ``spec["task"]``, ``params["epochs"]`` passes."""
    task = spec["task"]
    model = _river_pipeline(task, spec["features"], spec.get("params", {}))
    for _ in range(int(spec.get("params", {}).get("epochs", 1))):
        for row in rows:
            model.learn_one(row["features"], _target(task, row["label"]))
    return model


def train_auto(rows: Sequence[Row], spec: Mapping[str, Any], *, drift_start: float | None = None,
               extra: Mapping[str, Any] | None = None) -> Any:
    """The ``auto`` candidate: ``window_choice.choose_candidate`` over ``rows``, its ``Selection``.

    ``params``: ``learners`` (default by task: logistic/ridge + hist_gbdt), ``validation_fraction``
    (0.2), ``min_validation_rows`` (200), ``max_rows`` (all rows), plus learner params. The drift
    start is an argument, not a param: it changes every retrain and would make every spec new.
    """
    from driftline.consumers.window_choice import choose_candidate

    task, params = spec["task"], dict(spec.get("params", {}))
    return choose_candidate(rows, task=task, features=spec["features"], drift_start=drift_start,
                            validation_fraction=float(params.get("validation_fraction", 0.2)),
                            min_validation_rows=int(params.get("min_validation_rows", 200)),
                            learners=list(params.get("learners", LEARNERS[task])),
                            max_rows=int(params.get("max_rows", len(rows))), params=params, extra=extra)


def train_candidate(rows: Sequence[Row], spec: Mapping[str, Any], *, drift_start: float | None = None) -> Any:
    """Train ``spec``'s model on ``rows`` (River, ``auto``, or the plug-in named in ``spec["model"]``)."""
    kind = spec["model"]
    if kind == "river":
        return train_river(rows, spec)
    if kind == "auto":
        return train_auto(rows, spec, drift_start=drift_start).model
    if kind.startswith("plugin:"):
        model = load_plugin(kind[len("plugin:"):])(list(rows), dict(spec))
        if not callable(getattr(model, "predict_one", None)):
            raise TypeError(f"plug-in {kind} returned {type(model).__name__} without predict_one")
        return model
    raise ValueError(f"unknown model kind {kind!r}: 'river', 'auto' or 'plugin:module:function'")


def _batch(model: Any, name: str) -> Callable[[list[dict]], Any] | None:
    """``model.<name>`` when it takes lists of feature dicts (``predicts_dict_rows``), else None."""
    return getattr(model, name, None) if getattr(model, "predicts_dict_rows", False) else None


def _binary_outputs(model: Any, rows: Sequence[Row]) -> tuple[np.ndarray, np.ndarray | None]:
    """(predicted labels, P(True) or None without probabilities)."""
    xs = [row["features"] for row in rows]
    if (many := _batch(model, "predict_proba_many")) is not None:
        p = np.asarray(many(xs), dtype=float)
        return p >= 0.5, p
    if (many := _batch(model, "predict_many")) is not None:
        return np.array([_target("binary", v) for v in many(xs)], dtype=bool), None
    if (proba := getattr(model, "predict_proba_one", None)) is not None:
        p = np.array([float(proba(x).get(True, 0.0)) for x in xs], dtype=float)
        return p >= 0.5, p
    return np.array([_target("binary", model.predict_one(x)) for x in xs], dtype=bool), None


def _binary_metrics(y: np.ndarray, pred: np.ndarray, p: np.ndarray | None) -> dict[str, float]:
    tp, fp, fn = int(np.sum(pred & y)), int(np.sum(pred & ~y)), int(np.sum(~pred & y))
    metrics = {"accuracy": float(np.mean(pred == y)), "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0}
    if p is not None:
        metrics["log_loss"] = _log_loss(np.where(y, p, 1.0 - p))
    return metrics


def _log_loss(p_true: np.ndarray) -> float:
    """Mean -log of the probability given to the true label, clipped to [1e-15, 1]."""
    return float(-np.mean(np.log(np.clip(p_true, 1e-15, 1.0))))


def _multiclass_outputs(model: Any, rows: Sequence[Row]) -> tuple[list[Any], np.ndarray | None]:
    """(predicted labels, probability of each row's true label or None without probabilities)."""
    xs, labels = [row["features"] for row in rows], [row["label"] for row in rows]
    if _batch(model, "predict_many") is not None:
        preds = list(np.asarray(model.predict_many(xs), dtype=object).tolist())
        classes = getattr(model, "classes", None)
        if (many := _batch(model, "predict_proba_many")) is None or classes is None:
            return preds, None
        proba, column = np.asarray(many(xs), dtype=float), {c: i for i, c in enumerate(classes)}
        return preds, np.array([proba[i, column[y]] if y in column else 0.0 for i, y in enumerate(labels)])
    preds = [model.predict_one(x) for x in xs]
    if (proba_one := getattr(model, "predict_proba_one", None)) is None:
        return preds, None
    return preds, np.array([float(proba_one(x).get(y, 0.0)) for x, y in zip(xs, labels, strict=True)], dtype=float)


def _multiclass_metrics(labels: Sequence[Any], preds: Sequence[Any], p_true: np.ndarray | None) -> dict[str, float]:
    pairs = list(zip(labels, preds, strict=True))
    f1s = []
    for c in set(labels):
        tp = sum(1 for y, p in pairs if y == c and p == c)
        fp = sum(1 for y, p in pairs if y != c and p == c)
        fn = sum(1 for y, p in pairs if y == c and p != c)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    metrics = {"accuracy": sum(y == p for y, p in pairs) / len(pairs), "macro_f1": sum(f1s) / len(f1s)}
    if p_true is not None:
        metrics["log_loss"] = _log_loss(p_true)
    return metrics


def _regression_outputs(model: Any, rows: Sequence[Row]) -> np.ndarray:
    xs = [row["features"] for row in rows]
    if (many := _batch(model, "predict_many")) is not None:
        return np.asarray(many(xs), dtype=float)
    return np.array([float(model.predict_one(x)) for x in xs], dtype=float)


def _regression_metrics(labels: np.ndarray, preds: np.ndarray) -> dict[str, float]:
    errors = preds - labels
    total = float(np.sum((labels - labels.mean()) ** 2))
    sse = float(np.sum(errors * errors))
    return {"mae": float(np.mean(np.abs(errors))), "rmse": math.sqrt(sse / len(errors)),
            "r2": 1.0 - sse / total if total else 0.0}


def _finish(metrics: dict[str, float], n: int) -> dict[str, float]:
    metrics["n"] = float(n)
    return {k: round(v, 6) for k, v in metrics.items()}


def evaluate(model: Any, rows: Sequence[Row], task: str) -> dict[str, float]:
    """Metrics of ``model`` on ``rows``: binary accuracy/f1/log_loss, multiclass accuracy/macro_f1/log_loss,
    regression mae/rmse/r2; plus ``n``. ``log_loss`` only for models with probabilities."""
    if not rows:
        return {"n": 0.0}
    if task == "binary":
        y = np.array([_target(task, row["label"]) for row in rows], dtype=bool)
        metrics = _binary_metrics(y, *_binary_outputs(model, rows))
    elif task == "multiclass":
        metrics = _multiclass_metrics([row["label"] for row in rows], *_multiclass_outputs(model, rows))
    elif task == "regression":
        labels = np.array([float(row["label"]) for row in rows], dtype=float)
        metrics = _regression_metrics(labels, _regression_outputs(model, rows))
    else:
        raise ValueError(f"unknown task {task!r}")
    return _finish(metrics, len(rows))


def row_errors(model: Any, rows: Sequence[Row], task: str, loss: str = "error") -> np.ndarray:
    """Per-row loss of ``model`` on ``rows``, for paired comparisons on the same rows (``window_choice``).

    ``loss="error"``: 0/1 for classifiers, absolute error for regression. ``loss="log_loss"``:
    -log of the probability given to the true label (classifiers with probabilities; the
    0/1 error otherwise). The batch paths are used where the model has them.
    """
    if task == "binary":
        y = np.array([_target(task, row["label"]) for row in rows], dtype=bool)
        pred, p = _binary_outputs(model, rows)
        if loss == "log_loss" and p is not None:
            return -np.log(np.clip(np.where(y, p, 1.0 - p), 1e-15, 1.0))
        return (pred != y).astype(float)
    if task == "multiclass":
        preds, p_true = _multiclass_outputs(model, rows)
        if loss == "log_loss" and p_true is not None:
            return -np.log(np.clip(p_true, 1e-15, 1.0))
        return np.array([p != row["label"] for p, row in zip(preds, rows, strict=True)], dtype=float)
    labels = np.array([float(row["label"]) for row in rows], dtype=float)
    return np.abs(_regression_outputs(model, rows) - labels)


def baseline_metrics(rows: Sequence[Row], task: str) -> dict[str, float]:
    """The best constant predictor's metrics on ``rows`` (same keys as ``evaluate``).

    Classifiers: the rows' own class frequencies as probabilities, the majority class as
    label; regression: their median. A candidate that cannot beat this learned nothing that
    holds on these rows — e.g. the old concept after a concept change.
    """
    if not rows:
        return {"n": 0.0}
    if task == "binary":
        y = np.array([_target(task, row["label"]) for row in rows], dtype=bool)
        p = np.full(len(y), float(y.mean()))
        metrics = _binary_metrics(y, p >= 0.5, p)
    elif task == "multiclass":
        labels = [row["label"] for row in rows]
        counts = Counter(labels)
        majority = counts.most_common(1)[0][0]
        p_true = np.array([counts[y] / len(labels) for y in labels], dtype=float)
        metrics = _multiclass_metrics(labels, [majority] * len(labels), p_true)
    elif task == "regression":
        values = np.array([float(row["label"]) for row in rows], dtype=float)
        metrics = _regression_metrics(values, np.full(len(values), float(np.median(values))))
    else:
        raise ValueError(f"unknown task {task!r}")
    return _finish(metrics, len(rows))
