"""The observation batch on the wire: encode for `driftline.observations`, decode untrusted bytes.

Version 2 (schemas/README.md) carries purely numeric feature columns as one base64
float64 block (`numeric_block`); decoders read versions 1 and 2. Decoding checks every
column's length and types and returns an ``InvalidEvent`` naming the field — a batch
message is input like any other and never crashes the stream worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import orjson

from .batch import KIND_CODES, KIND_NAMES, ObservationBatch
from .codec import is_valid_model_id, transport_error
from .events import InvalidEvent
from .numeric_block import decode_block, encode_block

_NUMBER = frozenset({float, int})

__all__ = ["decode_batch", "decode_batch_document", "encode_batch"]


def encode_batch(batch: ObservationBatch) -> bytes:
    """The wire form (README): version 2 when some feature column is purely numeric.

    Those columns go into one binary float64 block (`numeric_block`), the others stay
    JSON lists; orjson writes the numpy columns natively, NaN as null.
    """
    names, lists = batch.numeric_split()
    doc = {
        "v": 2 if names else 1,
        "model_id": batch.model_id,
        "n": len(batch),
        "kind": [KIND_NAMES[k] for k in batch.kind.tolist()],
        "event_id": batch.event_id,
        "ts": batch.ts,
        "has_features": batch.has_features,
        "features": lists,
        "model_version": batch.model_version,
        "prediction": batch.prediction,
        "score": batch.score,
        "scores": batch.scores,
        "label": batch.label,
    }
    if names:
        doc["numeric"] = encode_block(names, batch.numeric_matrix(names))
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


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
_FEATURE_TYPES: frozenset[type] = frozenset({float, int, str, bool, type(None)})
_REQUIRED = (
    "v",
    "model_id",
    "n",
    "kind",
    "event_id",
    "ts",
    "has_features",
    "features",
    "model_version",
    "prediction",
    "score",
    "scores",
    "label",
)
_ALLOWED = frozenset((*_REQUIRED, "numeric"))


def _column(
    path: str, value: Any, n: int, allowed: frozenset[type], what: str, check_finite: bool
) -> InvalidEvent | None:
    """An array of exactly n items of the allowed JSON types (the row named on failure)."""
    if type(value) is not list:
        return InvalidEvent(path, "type", f"must be an array (got {type(value).__name__})")
    if len(value) != n:
        return InvalidEvent(path, "length", f"must have n={n} items (got {len(value)})")
    types = set(map(type, value))
    if types <= allowed and not (check_finite and float in types and not _finite(value)):
        return None
    row = next(i for i, v in enumerate(value) if type(v) not in allowed or (type(v) is float and v - v != 0))
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
        if scores is not None and not (
            set(map(type, scores.values())) <= _NUMBER and (not check_finite or _finite(scores.values()))
        ):
            return InvalidEvent("scores", "type", f"row {row}: values must be finite numbers")
    features = doc["features"]
    if type(features) is not dict:
        return InvalidEvent("features", "type", "must be an object of columns")
    for name, column in features.items():
        bad = _column(
            f"features.{name}", column, n, _FEATURE_TYPES, "a finite number, string, boolean or null", check_finite
        )
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
    if type(v) not in (int, float) or v not in (1, 2):
        return InvalidEvent("v", "enum", f"must be 1 or 2 (got {v!r:.40})")
    if (v == 2) != ("numeric" in doc):
        return InvalidEvent(
            "numeric",
            "required" if v == 2 else "additionalProperties",
            "is required in a version 2 batch, and only there",
        )
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
    block = decode_block(doc["numeric"], int(n), doc["features"]) if v == 2 else None
    if type(block) is InvalidEvent:
        return block
    batch = ObservationBatch(
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
    if block is not None:
        batch.attach_numeric(*block)  # type: ignore[misc]
    return batch


def decode_batch(raw: bytes | None) -> ObservationBatch | InvalidEvent:
    """Decode a `driftline.observations` message; never raises on bad input."""
    if not raw:
        return InvalidEvent("$", "empty", "message value is empty")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return transport_error(bytes(raw))
    return _decode_document(doc, check_finite=False)  # orjson yields no NaN/Infinity
