"""Validate many raw feature messages at once, by column, without an event per message.

`decode_event` pays Python work per message (checks, a frozen event); replay and
ingest only need columns. `decode_features` parses a run of messages with one
`map(orjson.loads, ...)` and checks each schema rule of a feature event once per run,
over whole columns, with C-level passes (`set(map(type, ...))`, `max(map(len, ...))`,
`itemgetter`). It only ever *accepts*: a run in which any rule might be broken (or
that holds anything else than plain feature events) is split in halves until the
culprits are alone, and those go through `decode_event` — the reference — so results,
error values included, are exactly those of `decode_event` message by message.
Each run is first offered to `typed_columns` (msgspec typed for the run's feature
names, no dicts at all), the cheapest path for the commonest input.

Examples:
    >>> ok = b'{"model_id":"m","event_id":"a","ts":1,"features":{"x":1.5}}'
    >>> run = decode_features([ok, ok])[0]
    >>> run.start, run.event_id, run.ts, run.numeric_only
    (0, ['a', 'a'], [1.0, 1.0], True)
    >>> decode_features([ok, b'{"model_id":"m"}'])[1]
    (1, InvalidEvent(field='event_id', rule='required', detail='is required in a feature event'))
"""

from __future__ import annotations

from itertools import chain, repeat
from operator import itemgetter
from typing import Any, Union

import numpy as np
import orjson

from .codec import decode_event
from .event_rules import MAX_MESSAGE_BYTES, MAX_NAME, MAX_PROPERTIES, MAX_STRING, TS_MAX, is_valid_model_id
from .events import Event, EventKind, InvalidEvent
from .feature_run import FeatureRun
from .typed_columns import typed_run

__all__ = ["FeatureRun", "decode_features"]

_SMALLEST_RUN = 16  # below this a failing run is decoded message by message
_PIECE = 256  # messages per run: every pass over a run's objects stays in cache
_HEAD = itemgetter("model_id", "event_id", "ts", "features")
_SCALARS = frozenset({str, int, float, bool, type(None)})
_NUMERIC = frozenset({int, float, type(None)})
_TS_TYPES = frozenset({float, int})
_BRACE, _QUOTE, _BRACKET, _BACKSLASH, _T, _F = (ord(c) for c in '{"[\\tf')
_FIXED_LETTERS = {c: "model_idevent_idtsfeatures".count(c) for c in "tf"}  # a feature event's names
_TYPED_LETTERS = {c: "typefeature".count(c) for c in "tf"}  # "type": "feature"
_loads, _JSONDecodeError = orjson.loads, orjson.JSONDecodeError


Decoded = Union[FeatureRun, "tuple[int, Event | InvalidEvent]"]


def decode_features(raws: list[bytes], kind: EventKind | None = None) -> list[Decoded]:
    """Decode messages in order: runs of plain valid feature events, and the others.

    ``kind`` is the topic's kind as for `decode_event` (None: inferred). Every other
    message comes back as ``(position, decode_event(raw, kind))``.
    """
    out: list[Decoded] = []
    if kind not in (None, "feature"):
        out.extend((i, decode_event(raw, kind)) for i, raw in enumerate(raws))
        return out
    for start in range(0, len(raws), _PIECE):
        _decode(raws[start : start + _PIECE], start, kind, out)
    return out


def _decode(raws: list[bytes], start: int, kind: EventKind | None, out: list[Decoded]) -> None:
    run = typed_run(raws, start) if raws else None
    if run is None and raws:
        run = _fast_run(raws, start)
    if run is not None:
        out.append(run)
    elif len(raws) <= _SMALLEST_RUN:
        out.extend((start + i, decode_event(raw, kind)) for i, raw in enumerate(raws))
    else:
        half = len(raws) // 2
        _decode(raws[:half], start, kind, out)
        _decode(raws[half:], start + half, kind, out)


def _no_booleans(
    octets: np.ndarray,
    typed: int,
    model_id: list[str],
    event_id: list[str],
    names: tuple[str, ...],
    rows: list[Any] | None,
    features: list[dict[str, Any]],
) -> bool:
    """No ``true``/``false`` in messages whose only strings are names, ids and "feature".

    Outside strings the letters t and f occur in JSON only in those two literals. With no
    escapes, every t and f inside a string is a t or f of the decoded string, so the
    buffer holds a literal iff it counts more of the letter than the strings do. Two
    numpy counts and a few joined strings: cheaper than searching for b"true" and
    b"false" (~0.7 µs a message), far cheaper than looking at every value.
    """
    if rows is not None:  # every row has exactly `names`
        keys = "".join(names)
        in_keys = (keys.count("t") * len(rows), keys.count("f") * len(rows))
    else:
        every_key = "".join(chain.from_iterable(features))
        in_keys = (every_key.count("t"), every_key.count("f"))
    ids = "".join(model_id) + "".join(event_id)
    n = len(event_id)
    for letter, code, keys_count in (("t", _T, in_keys[0]), ("f", _F, in_keys[1])):
        in_strings = _FIXED_LETTERS[letter] * n + _TYPED_LETTERS[letter] * typed + keys_count + ids.count(letter)
        if np.count_nonzero(octets == code) != in_strings:
            return False
    return True


def _fast_run(raws: list[bytes], start: int) -> FeatureRun | None:
    """The run as columns if every message is plainly a valid feature event, else None.

    Each check is one pass over a column or over the run's bytes, and each mirrors a
    rule of `event_rules.validate` for what orjson can produce (no NaN/Infinity, ints within 64
    bits, only JSON types).
    """
    if set(map(type, raws)) != {bytes}:
        return None
    longest = max(map(len, raws))
    if longest > MAX_MESSAGE_BYTES:
        return None
    try:
        docs = list(map(_loads, raws))
    except _JSONDecodeError:
        return None
    # exactly the four fields of a feature event, plus "type": "feature" if stated: a
    # 5-field document without all four would fail _HEAD, so counting suffices
    if set(map(type, docs)) != {dict}:
        return None
    n = len(docs)
    fields = sum(map(len, docs))
    if fields != 4 * n and (
        not set(map(len, docs)) <= {4, 5}
        or list(map(dict.get, docs, repeat("type"))).count("feature") != fields - 4 * n
    ):
        return None
    try:
        model_id, event_id, ts, features = map(list, zip(*map(_HEAD, docs)))
        ids = set(model_id)  # TypeError: an unhashable model_id
    except (KeyError, TypeError):
        return None
    if not all(map(is_valid_model_id, ids)):
        return None
    if set(map(type, event_id)) != {str} or "" in event_id or max(map(len, event_id)) > MAX_NAME:
        return None
    ts_types = set(map(type, ts))
    if not ts_types <= _TS_TYPES:
        return None
    if not (min(ts) >= 0 and max(ts) < TS_MAX):
        return None
    if ts_types != {float}:
        ts = list(map(float, ts))  # ints in range: the float decode_event would give
    if set(map(type, features)) != {dict}:
        return None
    # Every message holds exactly two '{' (event, features) and no '[': so every feature
    # value is a scalar. Braces inside strings only make the count larger: a (safe) miss.
    joined = b"".join(raws)
    octets = np.frombuffer(joined, np.uint8)  # counting bytes in numpy: ~0.3 ns a byte
    if np.count_nonzero(octets == _BRACE) != 2 * n or _BRACKET in joined:
        return None
    widths = list(map(len, features))
    names = tuple(features[0])
    rows = None
    if len(names) > 1 and widths.count(len(names)) == n:
        try:  # every row has the first row's names, and no other (same size): the usual
            rows = list(map(itemgetter(*names), features))
        except KeyError:
            pass
    if rows is None:
        names = tuple(dict.fromkeys(chain.from_iterable(features)))
    if "" in names or (names and max(map(len, names)) > MAX_NAME):
        return None
    if len(names) > MAX_PROPERTIES and max(widths) > MAX_PROPERTIES:
        return None
    # Without string values or escapes, the quotes are exactly those of the names and of
    # model_id, event_id and "type": then no value is a string. Otherwise (or if a value
    # may be a boolean) look at the values' types.
    quotes = 2 * (fields + sum(widths)) + 4 * n + 2 * (fields - 4 * n)
    if (
        np.count_nonzero(octets == _QUOTE) == quotes
        and _BACKSLASH not in joined
        and _no_booleans(octets, fields - 4 * n, model_id, event_id, names, rows, features)
    ):
        numeric_only = True
    else:
        values = set(map(type, chain.from_iterable(map(dict.values, features))))
        if (
            str in values
            and longest > MAX_STRING
            and max((len(v) for f in features for v in f.values() if type(v) is str), default=0) > MAX_STRING
        ):
            return None
        numeric_only = values <= _NUMERIC
    run = FeatureRun(start, model_id, event_id, ts, features, numeric_only)
    if rows is not None:  # convert now, while the objects are in cache
        run.names, run.rows = names, rows
        if numeric_only:
            run.numeric = np.array(rows, dtype=np.float64).T  # None -> NaN
    return run
