"""Rebuild the stream's online challenger, from its export, as a model the trainer can ship.

Why: the online challenger is a candidate too. A retrain request carries
``OnlineChallenger.export()``, which is JSON and never pickle. The trainer turns it back into
a servable object here, then packages it (pickled, then signed, like any artifact) and
judges it with the same validation gate as a freshly trained model. Serving code passes
raw feature dicts, exactly as events carry them. So the model applies the stream's own
``numeric_features`` (numbers and bools as floats, strings one-hot as ``name=value``,
missing values dropped) before the River pipeline, and predicts exactly what the stream's
challenger predicts for the same raw features.

Two differences, neither of which changes a prediction. First, features the challenger
never learned are dropped before the pipeline. The stream's scaler would turn such a
feature into 0.0 and would find no weight for it, so it adds nothing to the sum. Dropping
it keeps a long-running server from growing the scaler's tables with every unseen one-hot
value. Second, ``predict_one`` of a classifier is the most probable class of
``predict_proba_one``, as in the stream.

Examples:
    >>> from driftline.stream.drift.challenger import OnlineChallenger
    >>> from driftline.stream.drift.label_join import JoinedRow
    >>> ch = OnlineChallenger("binary")
    >>> ch.update([JoinedRow("m", str(i), float(i), "1.0.0", True, 0.5, i % 2 == 0,
    ...                      {"x": float(i % 2), "plan": "pro" if i % 3 else "free", "vip": None})
    ...            for i in range(300)])
    300
    >>> model = challenger_from_export(ch.export())
    >>> model.task, model.features
    ('binary', ('plan', 'x'))
    >>> model.predict_one({"x": 0.0, "plan": "pro"})
    True
    >>> sorted(model.predict_proba_one({"x": 1.0}))
    [False, True]
    >>> challenger_from_export({"format": "driftline.challenger-export", "v": 9})
    Traceback (most recent call last):
    ...
    ValueError: challenger export: unknown version 9 (this reads 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from river import compose

from driftline.stream.drift.challenger import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    TASKS,
    is_challenger_pipeline,
    numeric_features,
    read_features,
    read_last_ts,
)
from driftline.stream.drift.river_state import load_pipeline

__all__ = ["ChallengerClassifier", "ChallengerModel", "ChallengerRegressor", "challenger_from_export"]

_FIELDS = frozenset({"format", "v", "task", "n", "features", "model", "last_ts"})


class ChallengerModel:
    """The challenger's River pipeline behind raw-feature ``predict_one`` (pickles)."""

    def __init__(self, task: str, features: tuple[str, ...], n: int, pipeline: compose.Pipeline) -> None:
        self.task = task
        self.features = features  # raw feature names the challenger learned from, sorted
        self.n = n  # rows it learned from
        self.pipeline = pipeline
        self._inputs = pipeline.steps["StandardScaler"].counts  # every input it ever learned
        self.trained_until: float | None = None
        """Event time of the newest row it learned: rows up to here cannot validate it."""

    def _x(self, features: dict[str, Any] | None) -> dict[str, float]:
        inputs = self._inputs
        return {k: v for k, v in numeric_features(features).items() if k in inputs}

    def predict_one(self, x: dict[str, Any] | None) -> Any:
        return self.pipeline.predict_one(self._x(x))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, n={self.n}, features={len(self.features)})"


class ChallengerRegressor(ChallengerModel):
    """Regression: ``predict_one`` → float."""


class ChallengerClassifier(ChallengerModel):
    """Binary (keys ``False``/``True``, as in the stream) or multiclass (class labels)."""

    def predict_proba_one(self, x: dict[str, Any] | None) -> dict[Any, float]:
        return self.pipeline.predict_proba_one(self._x(x))

    def predict_one(self, x: dict[str, Any] | None) -> Any:
        proba = self.predict_proba_one(x)
        return max(proba, key=lambda label: proba[label]) if proba else None


def challenger_from_export(doc: Any) -> ChallengerModel:
    """The servable model for ``OnlineChallenger.export()``'s ``doc``; ``ValueError`` if it is not one."""
    if not isinstance(doc, Mapping) or doc.get("format") != EXPORT_FORMAT:
        raise ValueError("challenger export: not an OnlineChallenger export (no format marker)")
    if doc.get("v") != EXPORT_VERSION or isinstance(doc.get("v"), bool):
        raise ValueError(f"challenger export: unknown version {doc.get('v')!r:.40} (this reads {EXPORT_VERSION})")
    doc = {"last_ts": None, **doc}  # exports made before last_ts was kept
    if set(doc) != _FIELDS:
        raise ValueError(f"challenger export: fields {sorted(map(str, set(doc) ^ _FIELDS))} missing or unknown")
    task, n = doc["task"], doc["n"]
    if task not in TASKS:
        raise ValueError(f"challenger export: unknown task {task!r:.40}")
    if type(n) is not int or not 0 <= n < 2**63:
        raise ValueError(f"challenger export: n must be a non-negative integer, got {n!r:.40}")
    features = tuple(read_features(doc["features"], "challenger export: features"))
    pipeline = load_pipeline(doc["model"])
    if not is_challenger_pipeline(pipeline, task):
        raise ValueError(f"challenger export: the model is not the {task} challenger pipeline")
    cls = ChallengerRegressor if task == "regression" else ChallengerClassifier
    model = cls(task, features, n, pipeline)
    model.trained_until = read_last_ts(doc["last_ts"], "challenger export")
    return model
