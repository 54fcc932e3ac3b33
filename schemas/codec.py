"""Decode raw Kafka messages into typed events, enforcing exactly the JSON Schema rules.

Two paths share one set of rules. `_validate` is the reference: it walks every rule of
the schema in a fixed order and names the first one broken (it also serves
`decode_document`). `decode_event` first tries a fast path that only *accepts*: it relies
on what orjson guarantees (no NaN/Infinity, ints within 64 bits, only JSON types) and on
the message size (no string can be longer than the message), and hands anything unusual
to the reference. So the fast path can be conservative but never lenient; the tests run
both against `jsonschema` on the same documents.
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any, Callable

import orjson

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

MAX_MESSAGE_BYTES = 1_048_576
MAX_PROPERTIES = 10_000
MAX_NAME = 256
MAX_STRING = 1024
TS_MAX = 253_402_300_800
"""Exclusive upper bound of a numeric `ts` (10000-01-01T00:00:00Z)."""


def _schema_pattern(file: str, *path: str | int) -> re.Pattern[str]:
    """Compile a pattern straight from a schema file, so codec and schema cannot drift."""
    node: Any = json.loads((Path(__file__).with_name(file)).read_text("utf-8"))
    for key in path:
        node = node[key]
    return re.compile(node["pattern"])


_MODEL_ID = _schema_pattern("feature.schema.json", "$defs", "model_id").search
_MODEL_VERSION = _schema_pattern(
    "prediction.schema.json", "properties", "model_version"
).search
_TS = _schema_pattern("feature.schema.json", "$defs", "ts", "oneOf", 1).search

_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what orjson reads and writes as integers
_NUMBER = frozenset({float, int})
_OUTCOME = frozenset({float, int, str, bool})
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_GOOD_IDS: set[str] = set()  # model_ids already matched (bounded; ids repeat)
_GOOD_VERSIONS: set[str] = set()
_CACHE_MAX = 65_536


# ---------------------------------------------------------------- shared small checks
def _json_type(value: object) -> str:
    """The JSON name of a value's type, for messages ("got object")."""
    if value is None:
        return "null"
    t = type(value)
    if t is float and value != value:
        return "NaN"
    if t is float and value - value != 0:  # type: ignore[operator]
        return "Infinity"
    names = {dict: "object", list: "array", tuple: "array", str: "string", bool: "boolean",
             int: "number", float: "number"}
    return names.get(t, t.__name__)


def _remember(value: str, search: Callable[[str], object], cache: set[str]) -> bool:
    """Match an id pattern, remembering hits (ids repeat: one regex per new id only)."""
    if value in cache:
        return True
    if search(value) is None:
        return False
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache.add(value)
    return True


def is_valid_model_id(value: object) -> bool:
    """True when `value` is a string matching the model_id pattern."""
    return type(value) is str and _remember(value, _MODEL_ID, _GOOD_IDS)


def parse_rfc3339(text: str) -> float | None:
    """Epoch seconds of an RFC 3339 date-time matching the schema's `ts` pattern, else None.

    Examples:
        >>> parse_rfc3339("2026-11-26T12:00:00.5+01:00")
        1795690800.5
        >>> parse_rfc3339("2026-02-29T00:00:00Z") is None
        True
    """
    if _TS(text) is None:
        return None
    days = date(int(text[0:4]), int(text[5:7]), int(text[8:10])).toordinal() - _EPOCH_ORDINAL
    seconds = days * 86_400 + int(text[11:13]) * 3600 + int(text[14:16]) * 60 + int(text[17:19])
    end = 19
    while text[end] not in "Zz+-":
        end += 1
    offset = 0
    if text[end] in "+-":
        offset = int(text[end + 1:end + 3]) * 3600 + int(text[end + 4:end + 6]) * 60
        offset = -offset if text[end] == "-" else offset
    frac = float("0" + text[19:end]) if end > 19 else 0.0
    return float(seconds - offset) + frac


# ---------------------------------------------------------------- reference validator
def _number(value: object, path: str, what: str) -> Any:
    """A finite JSON number, as orjson would have read it, or an InvalidEvent."""
    t = type(value)
    if t is float:
        if value - value == 0:  # type: ignore[operator]
            return value
        return InvalidEvent(path, "finite", f"must be {what} (got {_json_type(value)})")
    if t is int:
        if _INT_MIN <= value <= _INT_MAX:  # type: ignore[operator]
            return value
        try:  # outside 64 bits orjson reads a float: do the same
            return float(value)  # type: ignore[arg-type]
        except OverflowError:
            return InvalidEvent(path, "finite",
                                f"must be {what} (got a number beyond double range)")
    return InvalidEvent(path, "type", f"must be {what} (got {_json_type(value)})")


def _string(value: object, path: str, low: int, high: int, what: str = "a string") -> Any:
    if type(value) is not str:
        return InvalidEvent(path, "type", f"must be {what} (got {_json_type(value)})")
    if len(value) < low:
        return InvalidEvent(path, "minLength", f"must be at least {low} character(s)")
    if len(value) > high:
        return InvalidEvent(path, "maxLength",
                            f"must be at most {high} characters (got {len(value)})")
    return value


def _patterned(value: object, path: str, search: Callable[[str], object], cache: set[str],
               rule: str) -> Any:
    if type(value) is not str:
        return InvalidEvent(path, "type", f"must be a string (got {_json_type(value)})")
    if not _remember(value, search, cache):
        return InvalidEvent(path, "pattern", f"must match {rule} (got {value[:80]!r})")
    return value


def _check_model_id(value: object, path: str) -> Any:
    return _patterned(value, path, _MODEL_ID, _GOOD_IDS, "^[A-Za-z0-9._-]{1,128}$")


def _check_model_version(value: object, path: str) -> Any:
    return _patterned(value, path, _MODEL_VERSION, _GOOD_VERSIONS, "^[A-Za-z0-9._+-]{1,64}$")


def _check_event_id(value: object, path: str) -> Any:
    return _string(value, path, 1, MAX_NAME)


def _check_ts(value: object, path: str) -> Any:
    what = "epoch seconds (a number >= 0) or an RFC 3339 date-time string"
    if type(value) is str:
        seconds = parse_rfc3339(value)
        if seconds is None:
            return InvalidEvent(path, "pattern", f"must be an RFC 3339 date-time like "
                                f"2026-11-26T12:00:00Z (got {value[:80]!r})")
        return seconds
    number = _number(value, path, what)
    if type(number) is InvalidEvent:
        return number
    if number < 0:
        return InvalidEvent(path, "minimum", f"must be >= 0 (got {number!r})")
    if number >= TS_MAX:
        return InvalidEvent(path, "exclusiveMaximum", f"must be < {TS_MAX} (year 10000)")
    return float(number)


def _check_names(mapping: dict[Any, Any], path: str) -> InvalidEvent | None:
    if len(mapping) > MAX_PROPERTIES:
        return InvalidEvent(path, "maxProperties",
                            f"must have at most {MAX_PROPERTIES} entries (got {len(mapping)})")
    for name in mapping:
        if type(name) is not str or not 0 < len(name) <= MAX_NAME:
            shown = name[:40] + "…" if type(name) is str and len(name) > 40 else repr(name)
            return InvalidEvent(path, "propertyNames", f"names must be strings of 1 to "
                                f"{MAX_NAME} characters (got {shown})")
    return None


def _check_features(value: object, path: str) -> Any:
    what = "a finite number, string, boolean or null"
    if type(value) is not dict:
        return InvalidEvent(path, "type", f"must be an object (got {_json_type(value)})")
    bad = _check_names(value, path)
    if bad is not None:
        return bad
    fixed: dict[str, Any] | None = None
    for name, item in value.items():
        t = type(item)
        if t is str:
            if len(item) > MAX_STRING:
                return InvalidEvent(f"{path}.{name}", "maxLength",
                                    f"must be at most {MAX_STRING} characters (got {len(item)})")
        elif t is float or t is int:
            number = _number(item, f"{path}.{name}", what)
            if type(number) is InvalidEvent:
                return number
            if number is not item:
                fixed = fixed if fixed is not None else dict(value)
                fixed[name] = number
        elif t is not bool and item is not None:
            return InvalidEvent(f"{path}.{name}", "type",
                                f"must be {what} (got {_json_type(item)})")
    return fixed if fixed is not None else value


def _check_scores(value: object, path: str) -> Any:
    if type(value) is not dict:
        return InvalidEvent(path, "type", f"must be an object (got {_json_type(value)})")
    bad = _check_names(value, path)
    if bad is not None:
        return bad
    out: dict[str, Any] = {}
    for name, item in value.items():
        number = _number(item, f"{path}.{name}", "a finite number")
        if type(number) is InvalidEvent:
            return number
        out[name] = number
    return out


def _check_outcome(value: object, path: str) -> Any:
    what = "a finite number, boolean or string"
    t = type(value)
    if t is bool:
        return value
    if t is str:
        return _string(value, path, 0, MAX_STRING, what)
    return _number(value, path, what)


def _check_score(value: object, path: str) -> Any:
    return _number(value, path, "a finite number")


_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "model_id": _check_model_id, "event_id": _check_event_id, "ts": _check_ts,
    "features": _check_features, "model_version": _check_model_version,
    "prediction": _check_outcome, "score": _check_score, "scores": _check_scores,
    "label": _check_outcome,
}
_COMMON = ("model_id", "event_id", "ts")
_SPECS: dict[str, tuple[type, tuple[str, ...], tuple[str, ...]]] = {
    "feature": (FeatureEvent, (*_COMMON, "features"), ()),
    "prediction": (PredictionEvent, (*_COMMON, "model_version", "prediction"),
                   ("score", "scores", "features")),
    "label": (LabelEvent, (*_COMMON, "label"), ()),
}
_ALLOWED = {k: frozenset((*req, *opt, "type")) for k, (_, req, opt) in _SPECS.items()}


def _validate(doc: dict[Any, Any], kind: str) -> Event | InvalidEvent:
    """The reference: every schema rule in a fixed order; the first broken one wins."""
    cls, required, optional = _SPECS[kind]
    for name in required:
        if name not in doc:
            return InvalidEvent(name, "required", f"is required in a {kind} event")
    allowed = _ALLOWED[kind]
    for name in doc:
        if type(name) is not str or name not in allowed:
            return InvalidEvent(str(name)[:80], "additionalProperties",
                                f"is not a field of a {kind} event")
    values = {}
    for name in (*required, *optional):
        if name in doc:
            value = _CHECKS[name](doc[name], name)
            if type(value) is InvalidEvent:
                return value
            values[name] = value
    return cls(**values)  # type: ignore[no-any-return]


def _resolve_kind(doc: dict[Any, Any], kind: str | None) -> str | InvalidEvent:
    """The schema a document is checked against: the topic's kind, or `type`, or inferred."""
    stated = doc.get("type", _resolve_kind)
    if kind is not None:
        if kind not in _SPECS:
            raise ValueError(f"unknown event kind {kind!r}")
        if stated is _resolve_kind or (type(stated) is str and stated == kind):
            return kind
        if type(stated) is str and stated in _SPECS:
            return InvalidEvent("type", "kind_mismatch",
                                f'must be "{kind}" on this topic (got "{stated}")')
        shown = repr(stated[:40]) if type(stated) is str else _json_type(stated)
        return InvalidEvent("type", "const", f'must be "{kind}" (got {shown})')
    if stated is _resolve_kind:
        return "label" if "label" in doc else "prediction" if "prediction" in doc else "feature"
    if type(stated) is str and stated in _SPECS:
        return stated
    return InvalidEvent("type", "enum", 'must be "feature", "prediction" or "label"')


def decode_document(doc: object, kind: EventKind | None = None) -> Event | InvalidEvent:
    """Check an already-parsed document (e.g. from a JSONL line or a test) against the schema.

    Accepts only what a JSON parser produces (dict, list, str, int, float, bool, None;
    subclasses such as numpy scalars are rejected as the wrong type). float NaN/Infinity
    are rejected; ints beyond 64 bits become floats as orjson would read them. The
    returned event may share the document's `features` dict.
    """
    if type(doc) is not dict:
        return InvalidEvent("$", "type", f"must be a JSON object (got {_json_type(doc)})")
    resolved = _resolve_kind(doc, kind)
    if type(resolved) is InvalidEvent:
        return resolved
    return _validate(doc, resolved)  # type: ignore[arg-type]


# ---------------------------------------------------------------- fast path (orjson input)
_set_slot = {cls: [cls.__dict__[f].__set__ for f in cls.__slots__]  # type: ignore[attr-defined]
             for cls in (FeatureEvent, PredictionEvent, LabelEvent)}
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
    """model_id, event_id and ts when plainly valid; None sends the message to `_validate`."""
    model_id = doc.get("model_id")
    event_id = doc.get("event_id")
    ts = doc.get("ts")
    if type(model_id) is not str or not (model_id in _GOOD_IDS or is_valid_model_id(model_id)):
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

    Braces inside strings only add to the count, so a miss is safe: `_validate` decides.
    """
    return raw.count(b"{") == objects and raw.rfind(b"[") < 0


# The shortest possible event around one feature entry, with every other entry at its
# shortest ('"k":0,' = 6 bytes): {"model_id":"m","event_id":"e","ts":0,"features":{}} is 52
# bytes, '"<name>":0' adds name + 4. So in a message of `size` bytes with k features no
# feature name or string value is longer than size - 50 - 6k characters (escapes and
# UTF-8 only make the bytes longer than the characters).
_SHORTEST_EVENT = 50


def _fast_label(doc: dict[str, Any], raw: bytes) -> Event | None:
    label = doc.get("label")
    if len(doc) != 4 + ("type" in doc) or type(label) not in _OUTCOME:
        return None
    if type(label) is str and len(label) > MAX_STRING:
        return None
    head = _fast_head(doc)
    return None if head is None else _new_label(*head, label)


def _fast_prediction(doc: dict[str, Any], raw: bytes) -> Event | None:
    version, prediction = doc.get("model_version"), doc.get("prediction")
    score, scores, features = doc.get("score"), doc.get("scores"), doc.get("features")
    present = (5 + ("type" in doc) + (score is not None) + (scores is not None)
               + (features is not None))
    if (len(doc) != present or type(version) is not str
            or not _remember(version, _MODEL_VERSION, _GOOD_VERSIONS)):
        return None
    if type(prediction) not in _OUTCOME or (
            type(prediction) is str and len(prediction) > MAX_STRING):
        return None
    if score is not None and type(score) not in _NUMBER:
        return None
    if scores is not None and not (_fast_mapping(scores, raw, False)
                                   and set(map(type, scores.values())) <= _NUMBER):
        return None
    if features is not None and not _fast_mapping(features, raw, True):
        return None
    head = _fast_head(doc)
    if head is None or not _flat(raw, 1 + (scores is not None) + (features is not None)):
        return None
    return PredictionEvent(*head, version, prediction, score, scores, features)


_loads, _JSONDecodeError = orjson.loads, orjson.JSONDecodeError
_find = bytes.find
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
            return InvalidEvent("$", "maxBytes",
                                f"message is {len(raw)} bytes, more than {MAX_MESSAGE_BYTES}")
    try:
        doc = _loads(raw)
    except _JSONDecodeError:
        if not raw:
            return InvalidEvent("$", "empty", "message value is empty")
        return transport_error(raw)
    if type(doc) is not dict:
        return InvalidEvent("$", "type", f"must be a JSON object (got {_json_type(doc)})")
    if kind is None or "type" in doc:
        resolved = _resolve_kind(doc, kind)
        if type(resolved) is InvalidEvent:
            return resolved
        kind = resolved  # type: ignore[assignment]
    if kind == "feature":  # the hottest path (ingest, replay): inline, one call less
        # Accept-only like `_fast_prediction`/`_fast_label`: anything unusual → `_validate`.
        try:
            model_id, event_id = doc["model_id"], doc["event_id"]
            ts, features = doc["ts"], doc["features"]
            if model_id not in _GOOD_IDS and not is_valid_model_id(model_id):
                return _validate(doc, kind)
        except (KeyError, TypeError):
            return _validate(doc, kind)
        if (type(features) is not dict or len(features) > MAX_PROPERTIES or "" in features
                or type(event_id) is not str or not 0 < len(event_id) <= MAX_NAME
                or (len(doc) != 4 and (len(doc) != 5 or "type" not in doc))):
            return _validate(doc, kind)
        if type(ts) is not float or not 0.0 <= ts < TS_MAX:
            ts = _fast_ts(ts)
            if ts is None:
                return _validate(doc, kind)
        room = len(raw) - _SHORTEST_EVENT - 6 * len(features)  # longest possible string
        if ((room > MAX_NAME and max(map(len, features), default=0) > MAX_NAME)
                or (room > MAX_STRING and _long_string(features))
                # exactly two '{' (event, features: both are there) and no '[': values are
                # scalars. Braces inside strings only cause a (safe) fall back to
                # `_validate`. (find and `in` are memchr: faster than counting.)
                or _find(raw, b"{", _find(raw, b"{", _find(raw, b"{") + 1) + 1) >= 0
                or b"[" in raw):
            return _validate(doc, kind)
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
    event = fast(doc, raw)
    return event if event is not None else _validate(doc, kind)  # type: ignore[arg-type]


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
        return InvalidEvent("$key", "key_mismatch",
                            f"must equal model_id {event.model_id!r} (got {key[:80]!r})")
    return None


# ---------------------------------------------------------------- encode
def encode_event(event: Event) -> bytes:
    """JSON bytes of an event, with `type`; optional fields left out when None.

    Does not re-validate: events from the codec round-trip; a hand-built event with a
    NaN would be written as null (orjson's choice) and rejected on the way back in.
    """
    doc: dict[str, Any] = {"type": event.kind, "model_id": event.model_id,
                           "event_id": event.event_id, "ts": event.ts}
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
