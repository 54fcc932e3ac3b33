"""An online River challenger per model, learning prequentially from joined rows.

Why: a drift alarm says the data moved; it does not say whether a retrained model would
do better. A small online model trained on the same labeled rows answers that
continuously: its prequential metrics (predict first, then learn, on each row in
arrival order) sit beside each serving ``model_version``'s metrics from
``PerformanceTracker``, so a dashboard shows the champion and a cheap challenger side by
side on identical rows.

The pipeline is chosen by task (declared, else ``PerformanceTracker``'s inference):

- binary: ``StandardScaler | LogisticRegression``;
- multiclass: ``StandardScaler | OneVsRestClassifier(LogisticRegression)``;
- regression: ``StandardScaler | LinearRegression``.

Features are turned into numbers once per row: numbers and booleans as floats, strings
one-hot as ``name=value``, missing values dropped (River models take sparse dicts).

State is pickle bytes (River objects pickle with their full state); the live agent keeps
it in its changelogged table. Only unpickle driftline's own state.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterable
from typing import Any

from river import compose, linear_model, metrics, multiclass, preprocessing

from driftline.stream.label_join import JoinedRow
from driftline.stream.state_pickle import loads_state

__all__ = ["OnlineChallenger", "challenger_pipeline", "numeric_features"]

_STATE_VERSION = 1


def challenger_pipeline(task: str) -> compose.Pipeline:
    """The River pipeline for ``task`` (``binary``, ``multiclass`` or ``regression``)."""
    if task == "binary":
        return preprocessing.StandardScaler() | linear_model.LogisticRegression()
    if task == "multiclass":
        return preprocessing.StandardScaler() | multiclass.OneVsRestClassifier(linear_model.LogisticRegression())
    if task == "regression":
        return preprocessing.StandardScaler() | linear_model.LinearRegression()
    raise ValueError(f"unknown task {task!r}")


def numeric_features(features: dict[str, Any] | None) -> dict[str, float]:
    """A row's features as River input: floats, one-hot strings, missing dropped.

    Examples:
        >>> numeric_features({"age": 41, "vip": True, "plan": "pro", "zip": None})
        {'age': 41.0, 'vip': 1.0, 'plan=pro': 1.0}
    """
    out: dict[str, float] = {}
    for name, value in (features or {}).items():
        if value is None:
            continue
        if isinstance(value, str):
            out[f"{name}={value}"] = 1.0
        else:
            f = float(value)
            if math.isfinite(f):
                out[name] = f
    return out


def _metrics_for(task: str) -> dict[str, Any]:
    if task == "regression":
        return {"mae": metrics.MAE(), "rmse": metrics.RMSE()}
    if task == "binary":
        return {"accuracy": metrics.Accuracy(), "log_loss": metrics.LogLoss()}
    return {"accuracy": metrics.Accuracy(), "macro_f1": metrics.MacroF1()}


class OnlineChallenger:
    """Predict-then-learn on every joined row that has features and a label.

    Examples:
        >>> ch = OnlineChallenger("binary")
        >>> rows = [JoinedRow("m", str(i), float(i), "1.0.0", 1, 0.9, i % 2 == 0, {"x": float(i % 2)})
        ...         for i in range(200)]
        >>> ch.update(rows)
        200
        >>> ch.snapshot()["accuracy"] > 0.9
        True
    """

    def __init__(self, task: str | None = None) -> None:
        self.task = task
        self.model: Any = challenger_pipeline(task) if task else None
        self.metrics: dict[str, Any] = _metrics_for(task) if task else {}
        self.n = 0

    def set_task(self, task: str) -> None:
        """Fix the task once it is known (declared or inferred); later calls are ignored."""
        if self.task is None and task:
            self.task = task
            self.model = challenger_pipeline(task)
            self.metrics = _metrics_for(task)

    def update(self, rows: Iterable[JoinedRow]) -> int:
        """Learn from ``rows`` in order; returns how many were used (0 before the task is known)."""
        if self.model is None:
            return 0
        used = 0
        for row in rows:
            x = numeric_features(row.features)
            if not x or row.label is None:
                continue
            y = self._target(row.label)
            if y is None:
                continue
            self._score(x, y)
            self.model.learn_one(x, y)
            used += 1
        self.n += used
        return used

    def _target(self, label: Any) -> Any:
        if self.task == "regression":
            return float(label) if isinstance(label, (int, float)) and not isinstance(label, bool) else None
        if self.task == "binary":
            return bool(label) if isinstance(label, (bool, int, float)) else label
        return label

    def _score(self, x: dict[str, float], y: Any) -> None:
        if self.task == "regression":
            y_pred = self.model.predict_one(x)
            if y_pred is not None:
                self.metrics["mae"].update(y, y_pred)
                self.metrics["rmse"].update(y, y_pred)
            return
        proba = self.model.predict_proba_one(x)
        y_pred = max(proba, key=proba.get) if proba else None
        if y_pred is not None:
            self.metrics["accuracy"].update(y, y_pred)
        if self.task == "binary":
            if proba:
                self.metrics["log_loss"].update(y, float(proba.get(True, 0.0)))
        elif y_pred is not None:
            self.metrics["macro_f1"].update(y, y_pred)

    def snapshot(self) -> dict[str, float]:
        """Prequential metrics so far plus ``n`` (rows learned)."""
        out = {k: float(m.get()) for k, m in self.metrics.items() if math.isfinite(float(m.get()))}
        out["n"] = float(self.n)
        return out

    def to_state(self) -> bytes:
        return pickle.dumps({"v": _STATE_VERSION, "task": self.task, "model": self.model,
                             "metrics": self.metrics, "n": self.n})

    @classmethod
    def from_state(cls, state: bytes) -> OnlineChallenger:
        d = loads_state(state)  # River objects: classes on an allow-list only
        if d.get("v") != _STATE_VERSION:
            raise ValueError(f"unknown OnlineChallenger state version {d.get('v')!r}")
        ch = cls(None)
        ch.task, ch.model, ch.metrics, ch.n = d["task"], d["model"], d["metrics"], d["n"]
        return ch
