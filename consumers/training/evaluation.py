"""Scoring a model on labeled rows (pure): metrics by task, per-row errors, the constant baseline.

Every candidate, the champion and the constant predictor are judged through these on the
same validation rows. Batch models (``predicts_dict_rows``) are scored in one call; River
pipelines and plug-ins row by row.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from driftline.consumers.training.batch_learners import target as _target

__all__ = ["baseline_metrics", "evaluate", "row_errors"]

Row = Mapping[str, Any]


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
    return {
        "mae": float(np.mean(np.abs(errors))),
        "rmse": math.sqrt(sse / len(errors)),
        "r2": 1.0 - sse / total if total else 0.0,
    }


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
