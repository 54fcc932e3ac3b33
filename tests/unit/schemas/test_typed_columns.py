"""The msgspec-typed run decoder only accepts what `decode_event` accepts, with its values.

`typed_run` may refuse anything (the caller then takes the general path); what it
accepts must be, message by message, a valid feature event with the same ids, ts and
feature values (integers as floats, null as NaN). The messages here are written byte by
byte — number spellings, whitespace, duplicate keys, key order, escapes — because the
typed decoder is a second JSON parser, and it must not accept more than orjson does.
"""

from __future__ import annotations

import math

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.schemas.codec import decode_event
from driftline.schemas.columnar import FeatureRun, decode_features
from driftline.schemas.events import InvalidEvent
from driftline.schemas.typed_columns import typed_run

SETTINGS = settings(max_examples=300, deadline=None)


def mostly(usual: st.SearchStrategy, odd: st.SearchStrategy) -> st.SearchStrategy:
    """`usual` nine times in ten: a message breaks few rules at once, so many are valid."""
    return st.integers(0, 9).flatmap(lambda roll: usual if roll else odd)


digits = st.text("0123456789", min_size=1, max_size=25)
odd_numbers = st.one_of(
    st.builds(
        lambda sign, whole, frac, exp: sign + whole + frac + exp,
        st.sampled_from(["", "-", "+"]),
        st.one_of(digits, st.just("0")),
        st.one_of(st.just(""), digits.map(lambda d: "." + d), st.just(".")),
        st.one_of(
            st.just(""),
            st.builds(lambda e, s, d: e + s + d, st.sampled_from("eE"), st.sampled_from(["", "+", "-"]), digits),
        ),
    ),
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(
        [
            "null",
            "true",
            "false",
            "NaN",
            "Infinity",
            '"1"',
            "[1]",
            "{}",
            "1e400",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775809",
            ".5",
            "01",
            "-0",
            "0e0",
            "1E+2",
            "1e-400",
        ]
    ),
)
text_literals = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=8).map(lambda t: orjson.dumps(t).decode()),
    st.sampled_from(
        ['"' + "a" * 1024 + '"', '"' + "a" * 1025 + '"', '"\\u00e9"', '"\\ud800"', '"tab\there"', '"\\\\"']
    ),
)
number_literals = mostly(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False).map(repr), st.integers(-1000, 1000).map(str), st.just("null")
    ),
    st.one_of(odd_numbers, text_literals),
)
spaces = mostly(st.just(""), st.sampled_from([" ", "\t", "\n ", "\r\n", "\x0c", "\x0b"]))
names = st.sampled_from(["x", "y", "a b", "é", "\\u0078", 'q\\"', "t", ""])


@st.composite
def message(draw: st.DrawFn, keys: list[str]) -> bytes:
    """A feature event written by hand: keys in any order, maybe repeated or missing."""
    present = draw(st.permutations(keys))
    if draw(st.integers(0, 9)) == 0:
        present = present[:-1] + [draw(names)] + present[-1:]  # another or a repeated name
    pairs = ",".join(f'{draw(spaces)}"{k}"{draw(spaces)}:{draw(spaces)}{draw(number_literals)}' for k in present)
    ts = draw(
        mostly(
            st.floats(0, 2e9).map(repr),
            st.sampled_from(["0", "-0.0", "-1", "253402300799.9", "253402300800", "true", '"2026-11-26T12:00:00Z"']),
        )
    )
    event_id = draw(mostly(st.just("e1"), st.sampled_from(["", "x" * 256, "x" * 257, "\\u00e9", "\\ud800", "a\\"])))
    model_id = draw(mostly(st.just('"m"'), st.sampled_from(['"M-1.2"', '"bad id!"', "5"])))
    fields = [f'"model_id":{model_id}', f'"event_id":"{event_id}"', f'"ts":{ts}', f'"features":{{{pairs}}}']
    extra = draw(
        mostly(
            st.sampled_from(["", '"type":"feature"']),
            st.sampled_from(['"type":"label"', '"model_version":"1"', '"model_id":"m"', '"features":{}']),
        )
    )
    if extra:
        fields.append(extra)
    fields = draw(st.permutations(fields))
    end = draw(mostly(st.sampled_from(["", "\n"]), st.sampled_from([" ", ",{}", "}"])))
    return ("{" + ",".join(fields) + "}" + end).encode()


@st.composite
def messages(draw: st.DrawFn) -> list[bytes]:
    keys = draw(st.lists(st.sampled_from(["x", "y", "a b", "é", "k1", "k2"]), min_size=1, max_size=4, unique=True))
    return draw(st.lists(message(keys), min_size=1, max_size=4))


accepted: list[bool] = []


@SETTINGS
@given(raws=messages())
def typed_run_accepts_only_what_decode_event_accepts(raws: list[bytes]) -> None:
    run = typed_run(raws, 7)
    accepted.append(run is not None)
    if run is None:
        return
    assert run.start == 7 and len(run) == len(raws)
    text = not run.numeric_only  # the first message had a string: value tuples
    assert (run.rows is not None and run.numeric is None) if text else (run.rows is None)
    for row, raw in enumerate(raws):
        event = decode_event(raw)
        assert not isinstance(event, InvalidEvent), (raw, event)
        assert (run.model_id[row], run.event_id[row], run.ts[row]) == (event.model_id, event.event_id, event.ts), raw
        assert set(event.features) == set(run.names), raw
        for column, name in enumerate(run.names):
            expected = event.features[name]
            if text:
                got = run.rows[row][column]
                if type(expected) is int:  # integers come as floats
                    expected = float(expected)
                assert got == expected and type(got) is type(expected), (raw, name)
                continue
            got = run.numeric[column, row]
            assert math.isnan(got) if expected is None else got == float(expected), (raw, name)
            assert type(got) is np.float64


def test_typed_run_accepts_only_what_decode_event_accepts() -> None:
    accepted.clear()
    typed_run_accepts_only_what_decode_event_accepts()
    assert sum(accepted) >= len(accepted) // 20, "the typed decoder was rarely exercised"


@SETTINGS
@given(
    raws=st.lists(message(["x", "c"]), min_size=1, max_size=4),
    first=st.sampled_from(['"plan"', '"' + "p" * 1024 + '"', "1.5", "null", "true"]),
)
def test_runs_with_strings_accept_only_what_decode_event_accepts(raws: list[bytes], first: str) -> None:
    """The first message decides the decoder: with a string or a boolean among its values,
    every value may be a number, a string of at most 1,024 characters, a boolean or null."""
    lead = b'{"model_id":"m","event_id":"e","ts":1,"features":{"x":2,"c":%s}}' % first.encode()
    typed_run_accepts_only_what_decode_event_accepts.hypothesis.inner_test(raws=[lead, *raws])


def plain(i: int, features: str = '{"x":1.5,"y":null}', model_id: str = "m") -> bytes:
    return b'{"model_id":"%s","event_id":"e%d","ts":%d,"features":%s}' % (model_id.encode(), i, i, features.encode())


def test_a_plain_numeric_run_is_decoded_straight_into_a_matrix() -> None:
    raws = [plain(0), plain(1, '{"y":2,"x":-3}'), plain(2, '{"x":18446744073709551616,"y":1e-3}')]
    run = typed_run(raws, 0)
    assert run is not None and run.names == ("x", "y") and run.rows is None
    assert np.array_equal(run.numeric, [[1.5, -3.0, float(2**64)], [np.nan, 2.0, 1e-3]], equal_nan=True)
    assert run.features == [{"x": 1.5, "y": None}, {"x": -3.0, "y": 2.0}, {"x": float(2**64), "y": 1e-3}]
    assert run.columns() == {"x": [1.5, -3.0, float(2**64)], "y": [None, 2.0, 1e-3]}


def test_anything_else_is_refused_for_the_general_path() -> None:
    refused = {
        "a nested value after numbers": [plain(0), plain(1, '{"x":[1],"y":1}')],
        "a string after numbers, then a nested value": [
            plain(0),
            plain(1, '{"x":"a","y":1}'),
            plain(2, '{"x":{},"y":1}'),
        ],
        "a string too long": [plain(0, '{"x":"a","y":"%s"}' % ("s" * 1025))],
        "a nested value among strings": [plain(0, '{"x":"a","y":1}'), plain(1, '{"x":"a","y":[1]}')],
        "a string too long after numbers": [plain(0), plain(1, '{"x":1,"y":"%s"}' % ("s" * 1025))],
        "another name": [plain(0), plain(1, '{"x":1,"z":1}')],
        "a name missing": [plain(0), plain(1, '{"x":1}')],
        "two events on one line": [plain(0), plain(1) + b"," + plain(2)],
        "an invalid model_id": [plain(0, model_id="no spaces")],
        "a label event": [b'{"model_id":"m","event_id":"e","ts":1,"label":1}'],
        "an unnameable feature name": [plain(0, '{"a\\"b":1}')],
        "not bytes": ["{}"],
        "ts below 0": [b'{"model_id":"m","event_id":"e","ts":-1,"features":{"x":1}}'],
        "ts in year 10000": [b'{"model_id":"m","event_id":"e","ts":253402300800,"features":{"x":1}}'],
        "ts as a date-time string": [b'{"model_id":"m","event_id":"e","ts":"2026-11-26T12:00:00Z","features":{"x":1}}'],
        "an empty event_id": [b'{"model_id":"m","event_id":"","ts":1,"features":{"x":1}}'],
        "an event_id too long": [b'{"model_id":"m","event_id":"%s","ts":1,"features":{"x":1}}' % (b"e" * 257)],
        "a feature name too long": [plain(0, '{"%s":1}' % ("n" * 257))],
        "an unknown field": [b'{"model_id":"m","event_id":"e","ts":1,"features":{"x":1},"score":1}'],
        "bad JSON": [plain(0), b"{"],
    }
    for why, raws in refused.items():
        assert typed_run(raws, 0) is None, why  # type: ignore[arg-type]


def test_a_string_or_boolean_after_numbers_decodes_the_run_again_with_text(monkeypatch) -> None:
    """A categorical feature null in the first message: the numbers-only decoder meets a
    string later, and the run is decoded again, once, with the decoder of any scalar."""
    from driftline.schemas import typed_columns

    decoders: list[bool] = []  # text or not, per decode
    real = typed_columns._decode
    monkeypatch.setattr(
        typed_columns, "_decode", lambda typed, joined: decoders.append(typed.text) or real(typed, joined)
    )
    raws = [plain(0), plain(1, '{"x":"a","y":1}'), plain(2, '{"x":true,"y":null}'), plain(3, '{"x":2,"y":3}')]
    run = typed_run(raws, 0)
    assert run is not None and not run.numeric_only and run.names == ("x", "y")
    assert run.rows == [(1.5, None), ("a", 1.0), (True, None), (2.0, 3.0)]
    assert run.features == [decode_event(r).features for r in raws]
    assert decoders == [False, True]
    decoders.clear()
    assert typed_run([plain(0), plain(1, '{"x":[1],"y":1}')], 0) is None and decoders == [False]


def test_decode_features_takes_the_typed_path_for_numbers_and_columnar_for_categories() -> None:
    (numeric,) = decode_features([plain(i) for i in range(20)])
    (mixed,) = decode_features([plain(i, '{"x":1,"y":"a"}') for i in range(20)])
    assert type(numeric) is FeatureRun and numeric.numeric is not None and not numeric.has_dicts
    assert type(mixed) is FeatureRun and not mixed.numeric_only and mixed.rows is not None
    assert not mixed.has_dicts and mixed.rows[0] == (1.0, "a")  # the typed path, with text
    assert [f["y"] for f in mixed.features] == ["a"] * 20
    (booleans,) = decode_features([plain(i, '{"x":1,"y":true}') for i in range(20)])
    assert not booleans.has_dicts and booleans.rows == [(1.0, True)] * 20


def test_many_sets_of_names_keep_a_bounded_cache_of_decoders() -> None:
    from driftline.schemas import typed_columns

    for i in range(3 * typed_columns._DECODERS_KEPT):
        run = typed_run([plain(0, orjson.dumps({f"n{i}": 1.0}).decode())], 0)
        assert run is not None and run.names == (f"n{i}",)
    assert len(typed_columns._typed) <= typed_columns._DECODERS_KEPT
