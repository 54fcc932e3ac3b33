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
>>> from driftline.consumers.training.evaluation import evaluate
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

from driftline.consumers.training.batch_learners import LEARNERS
from driftline.consumers.training.batch_learners import target as _target
from driftline.consumers.training.window_choice import choose_candidate
from driftline.stream.drift.label_join import JoinedRow
from driftline.stream.drift.performance import infer_task

__all__ = [
    "FeatureVector",
    "candidate_spec",
    "load_plugin",
    "time_split",
    "train_auto",
    "train_candidate",
    "train_river",
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


def candidate_spec(
    rows: Sequence[Row],
    *,
    task: str | None = None,
    model: str = "river",
    params: Mapping[str, Any] | None = None,
    min_coverage: float = 0.01,
) -> dict[str, Any]:
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
    n_valid = max(1, round(len(rows) * validation_fraction))
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


def train_auto(
    rows: Sequence[Row],
    spec: Mapping[str, Any],
    *,
    drift_start: float | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Any:
    """The ``auto`` candidate: ``window_choice.choose_candidate`` over ``rows``, its ``Selection``.

    ``params``: ``learners`` (default by task: logistic/ridge + hist_gbdt), ``validation_fraction``
    (0.2), ``min_validation_rows`` (200), ``max_rows`` (all rows), plus learner params. The drift
    start is an argument, not a param: it changes every retrain and would make every spec new.
    """
    task, params = spec["task"], dict(spec.get("params", {}))
    return choose_candidate(
        rows,
        task=task,
        features=spec["features"],
        drift_start=drift_start,
        validation_fraction=float(params.get("validation_fraction", 0.2)),
        min_validation_rows=int(params.get("min_validation_rows", 200)),
        learners=list(params.get("learners", LEARNERS[task])),
        max_rows=int(params.get("max_rows", len(rows))),
        params=params,
        extra=extra,
    )


def train_candidate(rows: Sequence[Row], spec: Mapping[str, Any], *, drift_start: float | None = None) -> Any:
    """Train ``spec``'s model on ``rows`` (River, ``auto``, or the plug-in named in ``spec["model"]``)."""
    kind = spec["model"]
    if kind == "river":
        return train_river(rows, spec)
    if kind == "auto":
        return train_auto(rows, spec, drift_start=drift_start).model
    if kind.startswith("plugin:"):
        model = load_plugin(kind[len("plugin:") :])(list(rows), dict(spec))
        if not callable(getattr(model, "predict_one", None)):
            raise TypeError(f"plug-in {kind} returned {type(model).__name__} without predict_one")
        return model
    raise ValueError(f"unknown model kind {kind!r}: 'river', 'auto' or 'plugin:module:function'")
