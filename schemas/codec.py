"""Decode raw Kafka messages into typed events, enforcing exactly the JSON Schema rules.

`event_rules.validate` is the reference: it walks every rule of the schema in a fixed
order and names the first one broken. `decode_event` first tries a fast path that only
*accepts*: it relies on what orjson guarantees (no NaN/Infinity, ints within 64 bits,
only JSON types) and on the message size (no string can be longer than the message),
and hands anything unusual to the reference. So the fast path can be conservative but
never lenient; the tests run both against `jsonschema` on the same documents.
"""

from __future__ import annotations

from typing import Any

import orjson

from .event_rules import (
    KNOWN_MODEL_IDS,
    MAX_MESSAGE_BYTES,
    MAX_NAME,
    MAX_PROPERTIES,
    MAX_STRING,
    NUMBER_TYPES,
    OUTCOME_TYPES,
    TS_MAX,
    decode_document,
    is_valid_model_id,
    is_valid_model_version,
    json_type,
    parse_rfc3339,
    resolve_kind,
    validate,
)
from .events import (
    Event,
    EventKind,
    FeatureEvent,
    InvalidEvent,
    LabelEvent,
    PredictionEvent,
)

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_PROPERTIES",
    "TS_MAX",
    "check_key",
    "decode_document",
    "decode_event",
    "encode_event",
    "is_valid_model_id",
    "parse_rfc3339",
    "transport_error",
]


# ---------------------------------------------------------------- fast path (orjson input)
_set_slot = {
    cls: [cls.__dict__[f].__set__ for f in cls.__slots__]  # type: ignore[attr-defined]
    for cls in (FeatureEvent, PredictionEvent, LabelEvent)
}
_new = object.__new__
_FE_MID, _FE_EID, _FE_TS, _FE_FEATURES = _set_slot[FeatureEvent]
_LE_MID, _LE_EID, _LE_TS, _LE_LABEL = _set_slot[LabelEvent]


def _new_label(model_id: str, event_id: str, ts: float, label: Any) -> LabelEvent:
    """Fill the slots directly: the frozen `__init__` pays object.__setattr__ per field."""
    event = _new(LabelEvent)
    _LE_MID(event, model_id)
    _LE_EID(event, event_id)
    _LE_TS(event, ts)
    _LE_LABEL(event, label)
    return event  # type: ignore[no-any-return]


def _fast_head(doc: dict[str, Any]) -> tuple[str, str, float] | None:
    """model_id, event_id and ts when plainly valid; None sends the message to `validate`."""
    model_id = doc.get("model_id")
    event_id = doc.get("event_id")
    ts = doc.get("ts")
    if type(model_id) is not str or not (model_id in KNOWN_MODEL_IDS or is_valid_model_id(model_id)):
        return None
    if type(event_id) is not str or not 0 < len(event_id) <= MAX_NAME:
        return None
    if type(ts) is not float or not 0.0 <= ts < TS_MAX:
        ts = _fast_ts(ts)
        if ts is None:
            return None
    return model_id, event_id, ts


def _fast_ts(ts: Any) -> float | None:
    """A ts that is not a plain float: an int in range or an RFC 3339 string."""
    if type(ts) is int and 0 <= ts < TS_MAX:
        return float(ts)
    if type(ts) is str:
        return parse_rfc3339(ts)
    return None


def _fast_mapping(value: Any, raw: bytes, strings: bool) -> bool:
    """Size and names of a features/scores object; values are checked by the caller."""
    if type(value) is not dict or len(value) > MAX_PROPERTIES or "" in value:
        return False
    if len(raw) > MAX_NAME + 2 and len("".join(value)) > MAX_NAME:
        if max(map(len, value)) > MAX_NAME:
            return False
    return not (strings and len(raw) > MAX_STRING + 2 and _long_string(value))


def _flat(raw: bytes, objects: int) -> bool:
    """No arrays and exactly `objects` objects in the message, i.e. no nested values.

    The caller has parsed `objects` dicts, so at least that many '{' are there: no '{'
    after the first `objects` means exactly that many. Braces or brackets inside strings
    only cause a (safe) miss: `validate` decides. (On CPython 3.11 ``int in bytes`` is a
    bare memchr, while ``b"[" in raw`` first fails an int conversion and ``find`` and
    ``count`` pay ~200 ns of call overhead each; ``split`` is the cheapest way to skip.)
    """
    return _BRACKET not in raw and _BRACE not in raw.split(b"{", objects)[-1]


# The shortest possible event around one feature entry, with every other entry at its
# shortest ('"k":0,' = 6 bytes): {"model_id":"m","event_id":"e","ts":0,"features":{}} is 52
# bytes, '"<name>":0' adds name + 4. So in a message of `size` bytes with k features no
# feature name or string value is longer than size - 50 - 6k characters (escapes and
# UTF-8 only make the bytes longer than the characters).
_SHORTEST_EVENT = 50


def _fast_label(doc: dict[str, Any], raw: bytes) -> Event | None:
    label = doc.get("label")
    if len(doc) != 4 + ("type" in doc) or type(label) not in OUTCOME_TYPES:
        return None
    if type(label) is str and len(label) > MAX_STRING:
        return None
    head = _fast_head(doc)
    return None if head is None else _new_label(*head, label)


def _fast_prediction(doc: dict[str, Any], raw: bytes) -> Event | None:
    version, prediction = doc.get("model_version"), doc.get("prediction")
    score, scores, features = doc.get("score"), doc.get("scores"), doc.get("features")
    present = 5 + ("type" in doc) + (score is not None) + (scores is not None) + (features is not None)
    if len(doc) != present or type(version) is not str or not is_valid_model_version(version):
        return None
    if type(prediction) not in OUTCOME_TYPES or (type(prediction) is str and len(prediction) > MAX_STRING):
        return None
    if score is not None and type(score) not in NUMBER_TYPES:
        return None
    if scores is not None and not (
        _fast_mapping(scores, raw, False) and set(map(type, scores.values())) <= NUMBER_TYPES
    ):
        return None
    if features is not None and not _fast_mapping(features, raw, True):
        return None
    head = _fast_head(doc)
    if head is None or not _flat(raw, 1 + (scores is not None) + (features is not None)):
        return None
    return PredictionEvent(*head, version, prediction, score, scores, features)  # type: ignore[arg-type]  # checked above


_loads, _JSONDecodeError = orjson.loads, orjson.JSONDecodeError
_BRACE, _BRACKET = ord("{"), ord("[")
_FAST = {"prediction": _fast_prediction, "label": _fast_label}  # features: inline in decode_event


# ---------------------------------------------------------------- transport
def transport_error(raw: bytes) -> InvalidEvent:
    """Why orjson refused the bytes: not UTF-8, or not JSON (NaN literals included)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return InvalidEvent("$", "utf8", f"is not valid UTF-8 ({exc.reason} at byte {exc.start})")
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return InvalidEvent("$", "json", f"is not valid JSON ({exc})")
    raise AssertionError("unreachable: bytes parse now")  # pragma: no cover


def decode_event(raw: bytes | None, kind: EventKind | None = None) -> Event | InvalidEvent:
    """Decode one message value: transport rules, then the schema of `kind` (or inferred).

    Examples:
        >>> decode_event(b'{"model_id":"churn","event_id":"e1","ts":0,"label":1}')
        LabelEvent(model_id='churn', event_id='e1', ts=0.0, label=1)
        >>> print(decode_event(b'{"model_id":"churn"}', "label"))
        event_id: is required in a label event
    """
    if type(raw) is not bytes or len(raw) > MAX_MESSAGE_BYTES:
        if not raw:
            return InvalidEvent("$", "empty", "message value is empty")
        raw = bytes(raw)
        if len(raw) > MAX_MESSAGE_BYTES:
            return InvalidEvent("$", "maxBytes", f"message is {len(raw)} bytes, more than {MAX_MESSAGE_BYTES}")
    try:
        doc = _loads(raw)
    except _JSONDecodeError:
        if not raw:
            return InvalidEvent("$", "empty", "message value is empty")
        return transport_error(raw)
    if type(doc) is not dict:
        return InvalidEvent("$", "type", f"must be a JSON object (got {json_type(doc)})")
    if kind is None or "type" in doc:
        resolved = resolve_kind(doc, kind)
        if type(resolved) is InvalidEvent:
            return resolved
        kind = resolved  # type: ignore[assignment]
    if kind == "feature":  # the hottest path (ingest, replay): inline, one call less
        # Accept-only like `_fast_prediction`/`_fast_label`: anything unusual → `validate`.
        try:
            model_id, event_id = doc["model_id"], doc["event_id"]
            ts, features = doc["ts"], doc["features"]
            if model_id not in KNOWN_MODEL_IDS and not is_valid_model_id(model_id):
                return validate(doc, kind)
        except (KeyError, TypeError):
            return validate(doc, kind)
        if (
            type(features) is not dict
            or len(features) > MAX_PROPERTIES
            or "" in features
            or type(event_id) is not str
            or not 0 < len(event_id) <= MAX_NAME
            or (len(doc) != 4 and (len(doc) != 5 or "type" not in doc))
        ):
            return validate(doc, kind)
        if type(ts) is not float or not 0.0 <= ts < TS_MAX:
            ts = _fast_ts(ts)
            if ts is None:
                return validate(doc, kind)
        room = len(raw) - _SHORTEST_EVENT - 6 * len(features)  # longest possible string
        if (
            (room > MAX_NAME and max(map(len, features), default=0) > MAX_NAME)
            or (room > MAX_STRING and _long_string(features))
            # exactly two '{' (event, features: both are there) and no '[': values are
            # scalars. Braces inside strings only cause a (safe) fall back to
            # `validate`. (`_flat`, inline: this is the hottest path.)
            or _BRACKET in raw
            or _BRACE in raw.split(b"{", 2)[2]
        ):
            return validate(doc, kind)
        event = _new(FeatureEvent)
        _FE_MID(event, model_id)
        _FE_EID(event, event_id)
        _FE_TS(event, ts)
        _FE_FEATURES(event, features)
        return event  # type: ignore[no-any-return]
    try:
        fast = _FAST[kind]  # type: ignore[index]
    except KeyError:
        raise ValueError(f"unknown event kind {kind!r}") from None
    fast_event = fast(doc, raw)
    return fast_event if fast_event is not None else validate(doc, kind)  # type: ignore[arg-type]


def _long_string(features: dict[str, Any]) -> bool:
    """Some string value is longer than MAX_STRING characters."""
    for item in features.values():
        if type(item) is str and len(item) > MAX_STRING:
            return True
    return False


def check_key(key: bytes | str | None, event: Event) -> InvalidEvent | None:
    """The transport rule: the message key is present and equals `model_id`."""
    if not key:
        return InvalidEvent("$key", "required", "message key is required and must equal model_id")
    expected = event.model_id if type(key) is str else event.model_id.encode()
    if key != expected:
        return InvalidEvent("$key", "key_mismatch", f"must equal model_id {event.model_id!r} (got {key[:80]!r})")
    return None


# ---------------------------------------------------------------- encode
def encode_event(event: Event) -> bytes:
    """JSON bytes of an event, with `type`; optional fields left out when None.

    Does not re-validate: events from the codec round-trip; a hand-built event with a
    NaN would be written as null (orjson's choice) and rejected on the way back in.
    """
    doc: dict[str, Any] = {"type": event.kind, "model_id": event.model_id, "event_id": event.event_id, "ts": event.ts}
    if type(event) is FeatureEvent:
        doc["features"] = event.features
    elif type(event) is LabelEvent:
        doc["label"] = event.label
    else:
        for name in ("model_version", "prediction", "score", "scores", "features"):
            value = getattr(event, name)
            if value is not None:
                doc[name] = value
    return orjson.dumps(doc)
