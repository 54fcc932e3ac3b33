"""Train a candidate model from training rows: a River pipeline by task, or a user plug-in.

Rows are ``JoinedRow`` dicts (``features``, ``label``, ``ts``, ...) already ordered by
time. The split is time-ordered — train on the older rows, validate on the newest
(default 20 %) — because a random split would let the model peek at the future it is
judged on. ``evaluate`` computes the metrics the validation gate reads, for the candidate
and the champion alike, on the same rows.

A **spec** describes a candidate so versioning can compare it with the champion's:
``{"task", "model", "params", "features"}``. ``model`` is ``"river"`` (the pipeline for the
task) or ``"plugin:module:function"``; a plug-in is called as ``fn(rows, spec)`` and must
return an object with ``predict_one`` (and ``predict_proba_one`` for classifiers) that
pickles.

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

from river import base, linear_model, optim, preprocessing

from driftline.stream.label_join import JoinedRow
from driftline.stream.performance import infer_task

__all__ = [
    "FeatureVector",
    "candidate_spec",
    "time_split",
    "load_plugin",
    "train_candidate",
    "train_river",
    "evaluate",
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


def _target(task: str, label: Any) -> Any:
    if task == "binary":
        return label is True or label == 1 or label == "1" or label == "true"
    return float(label) if task == "regression" else label


def train_river(rows: Sequence[Row], spec: Mapping[str, Any]) -> Any:
    """The built-in candidate: River pipeline for ``spec["task"]``, ``params["epochs"]`` passes."""
    task = spec["task"]
    model = _river_pipeline(task, spec["features"], spec.get("params", {}))
    for _ in range(int(spec.get("params", {}).get("epochs", 1))):
        for row in rows:
            model.learn_one(row["features"], _target(task, row["label"]))
    return model


def train_candidate(rows: Sequence[Row], spec: Mapping[str, Any]) -> Any:
    """Train ``spec``'s model on ``rows`` (River, or the plug-in named in ``spec["model"]``)."""
    kind = spec["model"]
    if kind == "river":
        return train_river(rows, spec)
    if kind.startswith("plugin:"):
        model = load_plugin(kind[len("plugin:"):])(list(rows), dict(spec))
        if not callable(getattr(model, "predict_one", None)):
            raise TypeError(f"plug-in {kind} returned {type(model).__name__} without predict_one")
        return model
    raise ValueError(f"unknown model kind {kind!r}: 'river' or 'plugin:module:function'")


def _binary_metrics(model: Any, rows: Sequence[Row]) -> dict[str, float]:
    proba = getattr(model, "predict_proba_one", None)
    tp = fp = fn = correct = 0
    loss, scored = 0.0, 0
    for row in rows:
        y = _target("binary", row["label"])
        if proba is not None:
            p = float(proba(row["features"]).get(True, 0.0))
            pred = p >= 0.5
            q = min(max(p if y else 1.0 - p, 1e-15), 1.0)
            loss, scored = loss - math.log(q), scored + 1
        else:
            pred = _target("binary", model.predict_one(row["features"]))
        correct += pred == y
        tp, fp, fn = tp + (pred and y), fp + (pred and not y), fn + (not pred and y)
    metrics = {"accuracy": correct / len(rows), "f1": 2 * tp / (2 * tp + fp + fn) if tp else 0.0}
    if scored:
        metrics["log_loss"] = loss / scored
    return metrics


def _multiclass_metrics(model: Any, rows: Sequence[Row]) -> dict[str, float]:
    pairs = [(row["label"], model.predict_one(row["features"])) for row in rows]
    classes = {y for y, _ in pairs}
    f1s = []
    for c in classes:
        tp = sum(1 for y, p in pairs if y == c and p == c)
        fp = sum(1 for y, p in pairs if y != c and p == c)
        fn = sum(1 for y, p in pairs if y == c and p != c)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return {"accuracy": sum(y == p for y, p in pairs) / len(pairs), "macro_f1": sum(f1s) / len(f1s)}


def _regression_metrics(model: Any, rows: Sequence[Row]) -> dict[str, float]:
    errors = [float(model.predict_one(row["features"])) - float(row["label"]) for row in rows]
    labels = [float(row["label"]) for row in rows]
    mean = sum(labels) / len(labels)
    total = sum((y - mean) ** 2 for y in labels)
    sse = sum(e * e for e in errors)
    return {"mae": sum(abs(e) for e in errors) / len(errors), "rmse": math.sqrt(sse / len(errors)),
            "r2": 1.0 - sse / total if total else 0.0}


def evaluate(model: Any, rows: Sequence[Row], task: str) -> dict[str, float]:
    """Metrics of ``model`` on ``rows``: binary accuracy/f1/log_loss, multiclass accuracy/macro_f1,
    regression mae/rmse/r2; plus ``n``."""
    if not rows:
        return {"n": 0.0}
    by_task = {"binary": _binary_metrics, "multiclass": _multiclass_metrics, "regression": _regression_metrics}
    metrics = by_task[task](model, rows)
    metrics["n"] = float(len(rows))
    return {k: round(v, 6) for k, v in metrics.items()}
