"""Decode a run of plain feature events with msgspec, typed for exactly that event.

The commonest input — every message a feature event with the same features, as a
served model produces them — is the one replay and ingest must decode fastest.
`orjson.loads` builds two dicts per message that `columnar` then checks column by
column; here a msgspec decoder typed for exactly that event (the first message's
feature names, each a number or null — or, when the first message has a string or
boolean value, each a number, a string of at most 1,024 characters, a boolean or null;
ids and ts with their schema bounds) checks every rule while it parses, into small
structs. Purely numeric values then go once into a float64 matrix (about 1.5 µs a
message less than `columnar`'s path); otherwise the run holds value tuples, as
`columnar` gives them (about half of `columnar`'s time on 18 numbers and 2 strings).
When the first message has only numbers and nulls but a later one a string or a
boolean (a categorical feature that was null at first), the run is decoded again, once,
with the decoder of any scalar.

Like `columnar`, it only ever *accepts*: anything the typed decoder refuses — another
event type, a nested feature value, other names, a broken rule, bad JSON — makes
`typed_run` return None and the caller takes the general path, which ends in
`decode_event`, the reference. What it accepts, `decode_event` accepts with the same
values, except that integers come back as floats (see `FeatureRun`).

Examples:
    >>> run = typed_run([b'{"model_id":"m","event_id":"a","ts":1,"features":{"x":2,"y":null}}'], 0)
    >>> run.names, run.numeric.tolist(), run.features
    (('x', 'y'), [[2.0], [nan]], [{'x': 2.0, 'y': None}])
    >>> text = typed_run([b'{"model_id":"m","event_id":"a","ts":1,"features":{"x":"a","y":3}}'], 0)
    >>> text.numeric_only, text.rows
    (False, [('a', 3.0)])
    >>> typed_run([b'{"model_id":"m","event_id":"a","ts":1,"features":{"x":[1]}}'], 0) is None
    True
"""

from __future__ import annotations

import re
from itertools import chain
from typing import Annotated, Any, Literal, Optional

import msgspec
import numpy as np
import orjson

from .event_rules import MAX_MESSAGE_BYTES, MAX_NAME, MAX_STRING, TS_MAX, is_valid_model_id
from .feature_run import FeatureRun

__all__ = ["typed_run"]

MAX_TYPED_NAMES = 1024
"""Rows with more features take `columnar`'s path (a struct type per set of names)."""
_DECODERS_KEPT = 64  # distinct sets of feature names with a decoder ready

_EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME)]
_Ts = Annotated[float, msgspec.Meta(ge=0, lt=TS_MAX)]
_ASTUPLE = msgspec.structs.astuple  # a struct's fields in order, read in C (attrgetter: twice the time)
_UNNAMEABLE = re.compile(r'[\\"\x00-\x1f]')  # msgspec cannot rename a field to these
_VALUE_TYPES = frozenset({float, int, str, bool, type(None)})
_CATEGORY_TYPES = frozenset({str, bool})
_TEXT_AMONG_NUMBERS = re.compile(r"Expected `float \| null`, got `(str|bool)` - at `\$\[\d+\]\.features\.")
"""msgspec's error when a numbers-only decoder meets a string or boolean feature value."""


_Number = Optional[float]
_Scalar = Optional[bool | float | Annotated[str, msgspec.Meta(max_length=MAX_STRING)]]


class _Typed:
    """One set of feature names (numbers only, or any scalars): its decoder of a JSON
    array of events (whose fields, and whose features' fields, are in name order)."""

    def __init__(self, names: tuple[str, ...], text: bool) -> None:
        # attributes f0, f1, ... read from the real names (any string can be a name)
        fields = [f"f{i}" for i in range(len(names))]
        value = _Scalar if text else _Number
        features = msgspec.defstruct(
            "Features",
            [(f, value) for f in fields],
            rename=dict(zip(fields, names)),
            forbid_unknown_fields=True,
            gc=False,
        )
        event = msgspec.defstruct(
            "FeatureEvent",
            [
                ("model_id", str),
                ("event_id", _EventId),
                ("ts", _Ts),
                ("features", features),
                ("type", Literal["feature"], "feature"),
            ],
            forbid_unknown_fields=True,
            gc=False,
        )
        self.decoder = msgspec.json.Decoder(list[event])  # type: ignore[valid-type]
        self.names = names
        self.text = text


_typed: dict[tuple[tuple[str, ...], bool], _Typed] = {}


def typed_run(raws: list[bytes], start: int) -> FeatureRun | None:
    """The messages as one run (numbered from ``start``), or None if any is not a plain
    valid feature event with the first message's feature names."""
    if set(map(type, raws)) != {bytes} or max(map(len, raws)) > MAX_MESSAGE_BYTES:
        return None
    typed = _for_shape(_shape(raws[0]))
    if typed is None:
        return None
    joined = b"[" + b",".join(raws) + b"]"  # one array: a message holding two events makes the count wrong
    events = _decode(typed, joined)
    if type(events) is msgspec.ValidationError and not typed.text and _TEXT_AMONG_NUMBERS.match(str(events)):
        typed = _for_shape((typed.names, True))  # numbers at first, then a string or boolean
        if typed is None:
            return None
        events = _decode(typed, joined)
    n = len(raws)
    if type(events) is not list or len(events) != n:
        return None
    model_id, event_id, ts, features, _ = map(list, zip(*map(_ASTUPLE, events)))
    if not all(map(is_valid_model_id, set(model_id))):
        return None
    rows = map(_ASTUPLE, features)  # a tuple of values per row, in name order
    if typed.text:  # value tuples, as columnar gives for runs with strings or booleans
        return FeatureRun(start, model_id, event_id, ts, None, False, typed.names, list(rows))
    width = len(typed.names)
    matrix = np.fromiter(chain.from_iterable(rows), np.float64, n * width).reshape(n, width).T  # None -> NaN
    return FeatureRun(start, model_id, event_id, ts, None, True, typed.names, None, matrix)


def _decode(typed: _Typed, joined: bytes) -> list[Any] | msgspec.DecodeError:
    """The events, or why not: bad JSON (DecodeError), a rule broken (ValidationError)."""
    try:
        return typed.decoder.decode(joined)
    except msgspec.DecodeError as error:
        return error


def _shape(raw: bytes) -> tuple[tuple[str, ...], bool] | None:
    """The feature names of a message and whether a value is a string or a boolean, if
    it looks like a feature event with valid names and only scalars as values."""
    try:
        doc: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    features = doc.get("features") if type(doc) is dict else None
    if type(features) is not dict or not 0 < len(features) <= MAX_TYPED_NAMES:
        return None
    names = tuple(features)
    if "" in names or max(map(len, names)) > MAX_NAME or _UNNAMEABLE.search("".join(names)):
        return None
    kinds = set(map(type, features.values()))
    if not kinds <= _VALUE_TYPES:
        return None  # nested values (invalid): columnar's path finds the culprit
    return names, bool(kinds & _CATEGORY_TYPES)


def _for_shape(shape: tuple[tuple[str, ...], bool] | None) -> _Typed | None:
    if shape is None:
        return None
    typed = _typed.get(shape)
    if typed is None:
        if len(_typed) >= _DECODERS_KEPT:
            _typed.clear()
        typed = _typed[shape] = _Typed(*shape)
    return typed
