"""The columnar observation micro-batch: many validated events of one model per message.

Faust pays a fixed Python cost per message, so ingest packs events into columns and the
stream agents update profiles with numpy over whole batches (see DESIGN.md). `index` is
an in-process extra (e.g. replay line numbers) and never goes on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Iterable

import numpy as np
import orjson

from .codec import is_valid_model_id, transport_error
from .events import Event, FeatureValue, InvalidEvent, PredictionEvent

__all__ = [
    "KIND_CODES",
    "KIND_FEATURE",
    "KIND_LABEL",
    "KIND_NAMES",
    "KIND_PREDICTION",
    "BatchBuilder",
    "ObservationBatch",
    "batch_from_events",
    "decode_batch",
    "decode_batch_document",
    "encode_batch",
]

KIND_FEATURE, KIND_PREDICTION, KIND_LABEL = 0, 1, 2
KIND_NAMES = ("feature", "prediction", "label")
KIND_CODES = {name: code for code, name in enumerate(KIND_NAMES)}
_NAN = float("nan")
_NUMERIC = frozenset({float, int, type(None)})
_NUMBER = frozenset({float, int})


@dataclass(eq=False)
class ObservationBatch:
    """Row `i` across all columns is one event; every column has `len(self)` entries.

    `features[name][i]` is None when row i has no features (`has_features[i]` False) or
    when its event lacks or nulls that feature (missing). `score` is NaN where absent.
    """

    model_id: str
    kind: np.ndarray  # int8, KIND_* codes
    event_id: list[str]
    ts: np.ndarray  # float64 epoch seconds
    has_features: np.ndarray  # bool
    features: dict[str, list[FeatureValue]]
    model_version: list[str | None]
    prediction: list[Any]
    score: np.ndarray  # float64, NaN = absent
    scores: list[dict[str, float] | None]
    label: list[Any]
    index: np.ndarray | None = field(default=None)  # int64 source positions; not on the wire

    def __len__(self) -> int:
        return len(self.event_id)

    def slice(self, start: int, stop: int) -> ObservationBatch:
        """Rows [start, stop): numpy views and list slices, no per-row work."""
        part = slice(start, stop)
        return ObservationBatch(
            self.model_id, self.kind[part], self.event_id[part], self.ts[part],
            self.has_features[part], {k: v[part] for k, v in self.features.items()},
            self.model_version[part], self.prediction[part], self.score[part],
            self.scores[part], self.label[part],
            None if self.index is None else self.index[part],
        )

    def numeric_column(self, name: str) -> np.ndarray:
        """A feature as float64: NaN where null, missing, non-numeric — and for booleans.

        Booleans are categories (their profile is counts of true/false), so they are not
        coerced to 0/1 here; read `features[name]` for them. A name never seen in the
        batch gives all NaN.
        """
        column = self.features.get(name)
        if column is None:
            return np.full(len(self), np.nan)
        if set(map(type, column)) <= _NUMERIC:
            return np.array(column, dtype=np.float64)  # None -> nan
        return np.array(
            [v if type(v) is float or type(v) is int else _NAN for v in column],
            dtype=np.float64,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ObservationBatch):
            return NotImplemented
        same_index = (self.index is None and other.index is None) or (
            self.index is not None and other.index is not None
            and np.array_equal(self.index, other.index))
        return (
            self.model_id == other.model_id and same_index
            and np.array_equal(self.kind, other.kind)
            and self.event_id == other.event_id
            and np.array_equal(self.ts, other.ts)
            and np.array_equal(self.has_features, other.has_features)
            and self.features == other.features
            and self.model_version == other.model_version
            and self.prediction == other.prediction
            and np.array_equal(self.score, other.score, equal_nan=True)
            and self.scores == other.scores and self.label == other.label
        )


class BatchBuilder:
    """Accumulates one model's events in arrival order, then builds a batch.

    Rows are kept as they come and turned into columns once in `build()`: a feature
    first seen mid-batch is simply None (missing) in earlier feature rows.
    """

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.clear()

    def clear(self) -> None:
        """Forget all rows (after a batch is built and sent)."""
        self._kind: list[int] = []
        self._event_id: list[str] = []
        self._ts: list[float] = []
        self._features: list[dict[str, FeatureValue] | None] = []
        self._prediction: list[PredictionEvent | None] = []
        self._label: list[Any] = []
        self._index: list[int] = []

    def __len__(self) -> int:
        return len(self._kind)

    def add(self, event: Event, index: int | None = None) -> None:
        """Append one event; `index` (all or none of the rows) is kept as batch.index."""
        if event.model_id != self.model_id:
            raise ValueError(f"event of model {event.model_id!r} added to {self.model_id!r}")
        if (index is None) != (not self._index) and self._kind:
            raise ValueError("give an index for every row of a batch or for none")
        kind = event.kind
        self._kind.append(KIND_CODES[kind])
        self._event_id.append(event.event_id)
        self._ts.append(event.ts)
        if index is not None:
            self._index.append(index)
        if kind == "feature":
            self._features.append(event.features)  # type: ignore[union-attr]
            self._prediction.append(None)
            self._label.append(None)
        elif kind == "prediction":
            self._features.append(event.features)  # type: ignore[union-attr]
            self._prediction.append(event)  # type: ignore[arg-type]
            self._label.append(None)
        else:
            self._features.append(None)
            self._prediction.append(None)
            self._label.append(event.label)  # type: ignore[union-attr]

    def build(self) -> ObservationBatch:
        """The rows so far as columns (the builder is left unchanged)."""
        if not self._kind:
            raise ValueError("cannot build an empty batch")
        rows = self._features
        present = [r for r in rows if r]
        names = dict.fromkeys(chain.from_iterable(present))
        empty: dict[str, FeatureValue] = {}
        filled = [r if r is not None else empty for r in rows]
        preds = self._prediction
        return ObservationBatch(
            model_id=self.model_id,
            kind=np.array(self._kind, dtype=np.int8),
            event_id=list(self._event_id),
            ts=np.array(self._ts, dtype=np.float64),
            has_features=np.array([r is not None for r in rows], dtype=bool),
            features={name: [r.get(name) for r in filled] for name in names},
            model_version=[p.model_version if p else None for p in preds],
            prediction=[p.prediction if p else None for p in preds],
            score=np.array([p.score if p else None for p in preds], dtype=np.float64),
            scores=[p.scores if p else None for p in preds],
            label=list(self._label),
            index=np.array(self._index, dtype=np.int64) if self._index else None,
        )


def batch_from_events(model_id: str, events: Iterable[Event],
                      indices: Iterable[int] | None = None) -> ObservationBatch:
    """One batch from events of one model (convenience for replay and tests)."""
    builder = BatchBuilder(model_id)
    if indices is None:
        for event in events:
            builder.add(event)
    else:
        for event, index in zip(events, indices, strict=True):
            builder.add(event, index)
    return builder.build()


def encode_batch(batch: ObservationBatch) -> bytes:
    """The wire form (README): orjson writes the numpy columns natively, NaN as null."""
    return orjson.dumps(
        {
            "v": 1, "model_id": batch.model_id, "n": len(batch),
            "kind": [KIND_NAMES[k] for k in batch.kind.tolist()],
            "event_id": batch.event_id, "ts": batch.ts,
            "has_features": batch.has_features, "features": batch.features,
            "model_version": batch.model_version, "prediction": batch.prediction,
            "score": batch.score, "scores": batch.scores, "label": batch.label,
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
    )


# ---------------------------------------------------------------- decode (untrusted input)
_COLUMN_TYPES: dict[str, tuple[frozenset[type], str]] = {
    "kind": (frozenset({str}), '"feature", "prediction" or "label"'),
    "event_id": (frozenset({str}), "a string"),
    "ts": (frozenset({float, int}), "a finite number"),
    "has_features": (frozenset({bool}), "a boolean"),
    "model_version": (frozenset({str, type(None)}), "a string or null"),
    "prediction": (frozenset({float, int, str, bool, type(None)}), "a scalar or null"),
    "score": (frozenset({float, int, type(None)}), "a finite number or null"),
    "scores": (frozenset({dict, type(None)}), "an object or null"),
    "label": (frozenset({float, int, str, bool, type(None)}), "a scalar or null"),
}
_FEATURE_TYPES = frozenset({float, int, str, bool, type(None)})
_REQUIRED = ("v", "model_id", "n", "kind", "event_id", "ts", "has_features", "features",
             "model_version", "prediction", "score", "scores", "label")
_ALLOWED = frozenset(_REQUIRED)


def _column(path: str, value: Any, n: int, allowed: frozenset[type], what: str,
            check_finite: bool) -> InvalidEvent | None:
    """An array of exactly n items of the allowed JSON types (the row named on failure)."""
    if type(value) is not list:
        return InvalidEvent(path, "type", f"must be an array (got {type(value).__name__})")
    if len(value) != n:
        return InvalidEvent(path, "length", f"must have n={n} items (got {len(value)})")
    types = set(map(type, value))
    if types <= allowed and not (check_finite and float in types and not _finite(value)):
        return None
    row = next(i for i, v in enumerate(value)
               if type(v) not in allowed or (type(v) is float and v - v != 0))
    return InvalidEvent(path, "type", f"row {row} must be {what} (got {value[row]!r:.80})")


def _finite(values: Iterable[Any]) -> bool:
    """No float NaN/Infinity: orjson never yields them, a dict from elsewhere might."""
    return all(v - v == 0 for v in values if type(v) is float)


def _check_columns(doc: dict[str, Any], n: int, check_finite: bool) -> InvalidEvent | None:
    for name, (allowed, what) in _COLUMN_TYPES.items():
        bad = _column(name, doc[name], n, allowed, what, check_finite)
        if bad is not None:
            return bad
    if not set(doc["kind"]) <= KIND_CODES.keys():
        return InvalidEvent("kind", "enum", 'items must be "feature", "prediction" or "label"')
    for row, scores in enumerate(doc["scores"]):
        if scores is not None and not (set(map(type, scores.values())) <= _NUMBER
                                       and (not check_finite or _finite(scores.values()))):
            return InvalidEvent("scores", "type", f"row {row}: values must be finite numbers")
    features = doc["features"]
    if type(features) is not dict:
        return InvalidEvent("features", "type", "must be an object of columns")
    for name, column in features.items():
        bad = _column(f"features.{name}", column, n, _FEATURE_TYPES,
                      "a finite number, string, boolean or null", check_finite)
        if bad is not None:
            return bad
    return None


def decode_batch_document(doc: object) -> ObservationBatch | InvalidEvent:
    """Check a parsed batch's shape (anyone can write to the topic) and build it."""
    return _decode_document(doc, check_finite=True)


def _decode_document(doc: object, check_finite: bool) -> ObservationBatch | InvalidEvent:
    if type(doc) is not dict:
        return InvalidEvent("$", "type", "must be a JSON object")
    for name in _REQUIRED:
        if name not in doc:
            return InvalidEvent(name, "required", "is required in an observation batch")
    for name in doc:
        if name not in _ALLOWED:
            return InvalidEvent(str(name)[:80], "additionalProperties", "is not a batch field")
    v, n = doc["v"], doc["n"]
    if type(v) not in (int, float) or v != 1:
        return InvalidEvent("v", "const", f"must be 1 (got {v!r:.40})")
    if type(doc["model_id"]) is not str:
        return InvalidEvent("model_id", "type", "must be a string")
    if not is_valid_model_id(doc["model_id"]):
        return InvalidEvent("model_id", "pattern", "must match ^[A-Za-z0-9._-]{1,128}$")
    if not (type(n) is int or (type(n) is float and n.is_integer())):
        return InvalidEvent("n", "type", f"must be an integer (got {n!r:.40})")
    if n < 1:
        return InvalidEvent("n", "minimum", f"must be >= 1 (got {n})")
    bad = _check_columns(doc, int(n), check_finite)
    if bad is not None:
        return bad
    return ObservationBatch(
        model_id=doc["model_id"],
        kind=np.array([KIND_CODES[k] for k in doc["kind"]], dtype=np.int8),
        event_id=doc["event_id"],
        ts=np.array(doc["ts"], dtype=np.float64),
        has_features=np.array(doc["has_features"], dtype=bool),
        features=doc["features"],
        model_version=doc["model_version"],
        prediction=doc["prediction"],
        score=np.array(doc["score"], dtype=np.float64),
        scores=doc["scores"],
        label=doc["label"],
    )


def decode_batch(raw: bytes | None) -> ObservationBatch | InvalidEvent:
    """Decode a `driftline.observations` message; never raises on bad input."""
    if not raw:
        return InvalidEvent("$", "empty", "message value is empty")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return transport_error(bytes(raw))
    return _decode_document(doc, check_finite=False)  # orjson yields no NaN/Infinity
