"""The event schema's rules in Python: the reference validator, naming the first rule broken.

`validate` walks every rule of the feature, prediction and label schemas in a fixed
order and returns the event, or an ``InvalidEvent`` with the field and the rule — the
same verdict `jsonschema` gives on the schema files (a hypothesis test holds them
together; the id and ``ts`` patterns are read from the files themselves). The codec's
fast paths only ever *accept*; anything unusual comes here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from .events import (
    Event,
    EventKind,
    FeatureEvent,
    InvalidEvent,
    LabelEvent,
    PredictionEvent,
)

__all__ = [
    "KNOWN_MODEL_IDS",
    "MAX_MESSAGE_BYTES",
    "MAX_NAME",
    "MAX_PROPERTIES",
    "MAX_STRING",
    "NUMBER_TYPES",
    "OUTCOME_TYPES",
    "TS_MAX",
    "decode_document",
    "is_valid_model_id",
    "is_valid_model_version",
    "json_type",
    "parse_rfc3339",
    "resolve_kind",
    "validate",
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
_MODEL_VERSION = _schema_pattern("prediction.schema.json", "properties", "model_version").search
_TS = _schema_pattern("feature.schema.json", "$defs", "ts", "oneOf", 1).search

_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what orjson reads and writes as integers
NUMBER_TYPES = frozenset({float, int})
OUTCOME_TYPES = frozenset({float, int, str, bool})
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
KNOWN_MODEL_IDS: set[str] = set()  # model_ids already matched (bounded; ids repeat)
_GOOD_VERSIONS: set[str] = set()
_CACHE_MAX = 65_536


# ---------------------------------------------------------------- shared small checks
def json_type(value: object) -> str:
    """The JSON name of a value's type, for messages ("got object")."""
    if value is None:
        return "null"
    t = type(value)
    if t is float and value != value:
        return "NaN"
    if t is float and value - value != 0:  # type: ignore[operator]
        return "Infinity"
    names = {
        dict: "object",
        list: "array",
        tuple: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
    }
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
    return type(value) is str and _remember(value, _MODEL_ID, KNOWN_MODEL_IDS)


def is_valid_model_version(value: str) -> bool:
    """True when the string `value` matches the model_version pattern."""
    return _remember(value, _MODEL_VERSION, _GOOD_VERSIONS)


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
        offset = int(text[end + 1 : end + 3]) * 3600 + int(text[end + 4 : end + 6]) * 60
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
        return InvalidEvent(path, "finite", f"must be {what} (got {json_type(value)})")
    if t is int:
        if _INT_MIN <= value <= _INT_MAX:  # type: ignore[operator]
            return value
        try:  # outside 64 bits orjson reads a float: do the same
            return float(value)  # type: ignore[arg-type]
        except OverflowError:
            return InvalidEvent(path, "finite", f"must be {what} (got a number beyond double range)")
    return InvalidEvent(path, "type", f"must be {what} (got {json_type(value)})")


def _string(value: object, path: str, low: int, high: int, what: str = "a string") -> Any:
    if type(value) is not str:
        return InvalidEvent(path, "type", f"must be {what} (got {json_type(value)})")
    if len(value) < low:
        return InvalidEvent(path, "minLength", f"must be at least {low} character(s)")
    if len(value) > high:
        return InvalidEvent(path, "maxLength", f"must be at most {high} characters (got {len(value)})")
    return value


def _patterned(value: object, path: str, search: Callable[[str], object], cache: set[str], rule: str) -> Any:
    if type(value) is not str:
        return InvalidEvent(path, "type", f"must be a string (got {json_type(value)})")
    if not _remember(value, search, cache):
        return InvalidEvent(path, "pattern", f"must match {rule} (got {value[:80]!r})")
    return value


def _check_model_id(value: object, path: str) -> Any:
    return _patterned(value, path, _MODEL_ID, KNOWN_MODEL_IDS, "^[A-Za-z0-9._-]{1,128}$")


def _check_model_version(value: object, path: str) -> Any:
    return _patterned(value, path, _MODEL_VERSION, _GOOD_VERSIONS, "^[A-Za-z0-9._+-]{1,64}$")


def _check_event_id(value: object, path: str) -> Any:
    return _string(value, path, 1, MAX_NAME)


def _check_ts(value: object, path: str) -> Any:
    what = "epoch seconds (a number >= 0) or an RFC 3339 date-time string"
    if type(value) is str:
        seconds = parse_rfc3339(value)
        if seconds is None:
            return InvalidEvent(
                path, "pattern", f"must be an RFC 3339 date-time like 2026-11-26T12:00:00Z (got {value[:80]!r})"
            )
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
        return InvalidEvent(path, "maxProperties", f"must have at most {MAX_PROPERTIES} entries (got {len(mapping)})")
    for name in mapping:
        if type(name) is not str or not 0 < len(name) <= MAX_NAME:
            shown = name[:40] + "…" if type(name) is str and len(name) > 40 else repr(name)
            return InvalidEvent(
                path, "propertyNames", f"names must be strings of 1 to {MAX_NAME} characters (got {shown})"
            )
    return None


def _check_features(value: object, path: str) -> Any:
    what = "a finite number, string, boolean or null"
    if type(value) is not dict:
        return InvalidEvent(path, "type", f"must be an object (got {json_type(value)})")
    bad = _check_names(value, path)
    if bad is not None:
        return bad
    fixed: dict[str, Any] | None = None
    for name, item in value.items():
        t = type(item)
        if t is str:
            if len(item) > MAX_STRING:
                return InvalidEvent(
                    f"{path}.{name}", "maxLength", f"must be at most {MAX_STRING} characters (got {len(item)})"
                )
        elif t is float or t is int:
            number = _number(item, f"{path}.{name}", what)
            if type(number) is InvalidEvent:
                return number
            if number is not item:
                fixed = fixed if fixed is not None else dict(value)
                fixed[name] = number
        elif t is not bool and item is not None:
            return InvalidEvent(f"{path}.{name}", "type", f"must be {what} (got {json_type(item)})")
    return fixed if fixed is not None else value


def _check_scores(value: object, path: str) -> Any:
    if type(value) is not dict:
        return InvalidEvent(path, "type", f"must be an object (got {json_type(value)})")
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
    "model_id": _check_model_id,
    "event_id": _check_event_id,
    "ts": _check_ts,
    "features": _check_features,
    "model_version": _check_model_version,
    "prediction": _check_outcome,
    "score": _check_score,
    "scores": _check_scores,
    "label": _check_outcome,
}
_COMMON = ("model_id", "event_id", "ts")
_SPECS: dict[str, tuple[type, tuple[str, ...], tuple[str, ...]]] = {
    "feature": (FeatureEvent, (*_COMMON, "features"), ()),
    "prediction": (PredictionEvent, (*_COMMON, "model_version", "prediction"), ("score", "scores", "features")),
    "label": (LabelEvent, (*_COMMON, "label"), ()),
}
_ALLOWED = {k: frozenset((*req, *opt, "type")) for k, (_, req, opt) in _SPECS.items()}


def validate(doc: dict[Any, Any], kind: str) -> Event | InvalidEvent:
    """The reference: every schema rule in a fixed order; the first broken one wins."""
    cls, required, optional = _SPECS[kind]
    for name in required:
        if name not in doc:
            other = _other_kind(doc, kind)
            if other is not None:
                return InvalidEvent(
                    "$",
                    "wrong_topic",
                    f"looks like a {other} event (it has {_MARKERS[other]!r}, no {_MARKERS[kind]!r}), sent to the "
                    f"{kind} topic: produce it to the {other}s topic (driftline.{other}s)",
                )
            return InvalidEvent(name, "required", f"is required in a {kind} event")
    allowed = _ALLOWED[kind]
    for name in doc:
        if type(name) is not str or name not in allowed:
            return InvalidEvent(str(name)[:80], "additionalProperties", f"is not a field of a {kind} event")
    values = {}
    for name in (*required, *optional):
        if name in doc:
            value = _CHECKS[name](doc[name], name)
            if type(value) is InvalidEvent:
                return value
            values[name] = value
    return cls(**values)  # type: ignore[no-any-return]


#: The field that tells each kind of event apart, and every field only that kind has.
_MARKERS = {"prediction": "prediction", "label": "label", "feature": "features"}
_OWN_FIELDS = {
    "prediction": ("model_version", "prediction", "score", "scores"),
    "label": ("label",),
    "feature": ("features",),
}


def _other_kind(doc: dict[Any, Any], kind: str) -> str | None:
    """The kind ``doc`` looks like when it has none of ``kind``'s own fields and another kind's marker."""
    if any(name in doc for name in _OWN_FIELDS[kind]):
        return None
    return next((k for k, marker in _MARKERS.items() if k != kind and marker in doc), None)


def resolve_kind(doc: dict[Any, Any], kind: str | None) -> str | InvalidEvent:
    """The schema a document is checked against: the topic's kind, or `type`, or inferred."""
    stated = doc.get("type", resolve_kind)
    if kind is not None:
        if kind not in _SPECS:
            raise ValueError(f"unknown event kind {kind!r}")
        if stated is resolve_kind or (type(stated) is str and stated == kind):
            return kind
        if type(stated) is str and stated in _SPECS:
            return InvalidEvent("type", "kind_mismatch", f'must be "{kind}" on this topic (got "{stated}")')
        shown = repr(stated[:40]) if type(stated) is str else json_type(stated)
        return InvalidEvent("type", "const", f'must be "{kind}" (got {shown})')
    if stated is resolve_kind:
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
        return InvalidEvent("$", "type", f"must be a JSON object (got {json_type(doc)})")
    resolved = resolve_kind(doc, kind)
    if type(resolved) is InvalidEvent:
        return resolved
    return validate(doc, resolved)  # type: ignore[arg-type]
