"""The JSON Schema files and the Python codec accept exactly the same documents.

Hypothesis builds valid documents and mutations of them (dropped keys, wrong types,
over-long strings, bad patterns, extra keys, nested values, bad timestamps); for every one,
`jsonschema.Draft202012Validator` (format checking off: the patterns carry the rules) and
the codec must agree on valid/invalid — through `decode_document` and through the fast
path of `decode_event` on the same document's bytes.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from driftline.schemas import (
    InvalidEvent,
    batch_from_events,
    decode_batch,
    decode_batch_document,
    decode_document,
    decode_event,
    encode_batch,
)

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
KINDS = ("feature", "prediction", "label")
VALIDATORS = {
    name: Draft202012Validator(json.loads((SCHEMAS / f"{name}.schema.json").read_text()))
    for name in (*KINDS, "observation-batch")
}
SETTINGS = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


# ------------------------------------------------------------------ parts
# Mostly valid values, with the boundary and near-miss cases mixed in at a lower rate.
def mostly(valid: st.SearchStrategy[Any], *edges: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`valid` nine times in ten, otherwise one of the edge strategies."""
    return st.integers(0, 9).flatmap(lambda roll: st.one_of(*edges) if roll == 0 else valid)


short_text = st.text(max_size=12)
names = mostly(st.text(min_size=1, max_size=12), st.text(min_size=256, max_size=257), st.just(""))
numbers = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
)
scalars = mostly(st.one_of(st.none(), st.booleans(), numbers, short_text), st.text(min_size=1024, max_size=1025))
model_ids = mostly(
    st.from_regex(r"\A[A-Za-z0-9._-]{1,128}\Z"),
    st.sampled_from(["m" * 128, "m" * 129, "churn\n", "a b", "", "é", "1+2"]),
)
versions = mostly(
    st.from_regex(r"\A[A-Za-z0-9._+-]{1,64}\Z"), st.sampled_from(["v" * 64, "v" * 65, "1.0\n", "1 0", ""])
)
event_ids = mostly(st.text(min_size=1, max_size=8), st.text(min_size=256, max_size=257), st.just(""))


@st.composite
def rfc3339(draw: st.DrawFn) -> str:
    year = draw(st.sampled_from([1969, 1970, 1972, 2000, 2024, 2025, 2100, 2400, 9999]))
    month, day = draw(st.integers(1, 13)), draw(st.sampled_from([1, 9, 28, 29, 30, 31, 32]))
    hour, minute = draw(st.sampled_from([0, 9, 23, 24])), draw(st.sampled_from([0, 59, 60]))
    second = draw(st.sampled_from([0, 30, 59, 60]))
    frac = draw(st.sampled_from(["", ".5", ".123456789", ".1234567890", "."]))
    sep = draw(st.sampled_from(["T", "t", "T", " ", "_"]))
    zone = draw(st.sampled_from(["Z", "z", "+01:00", "-05:30", "+23:59", "+24:00", "+0100", "", "-00:00"]))
    tail = draw(st.sampled_from(["", "", "", "\n", " "]))
    return f"{year:04d}-{month:02d}-{day:02d}{sep}{hour:02d}:{minute:02d}:{second:02d}{frac}{zone}{tail}"


timestamps = mostly(
    st.one_of(st.floats(0, 253402300800, exclude_max=True), st.integers(0, 2_000_000_000)),
    st.sampled_from([-1, 0, 253402300799, 253402300800, 253402300799.99999, -1e-300]),
    rfc3339(),
    st.text(max_size=30),
)
features = st.dictionaries(names, scalars, max_size=8)
scores = st.dictionaries(names, numbers, max_size=4)


def base(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    common = {"model_id": model_ids, "event_id": event_ids, "ts": timestamps}
    optional: dict[str, st.SearchStrategy[Any]] = {"type": st.just(kind)}
    if kind == "feature":
        common["features"] = features
    elif kind == "prediction":
        common.update(model_version=versions, prediction=scalars.filter(lambda v: v is not None))
        optional.update(score=numbers, scores=scores, features=features)
    else:
        common["label"] = scalars.filter(lambda v: v is not None)
    return st.fixed_dictionaries(common, optional=optional)


# ------------------------------------------------------------------ mutations
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, short_text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(short_text, inner, max_size=3)),
    max_leaves=6,
)
FIELDS = (
    "type",
    "model_id",
    "event_id",
    "ts",
    "features",
    "model_version",
    "prediction",
    "score",
    "scores",
    "label",
    "extra",
)


@st.composite
def mutated(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    doc = draw(base(kind))
    for _ in range(draw(st.integers(0, 2))):
        action = draw(st.sampled_from(["drop", "set", "nest", "type"]))
        if action == "drop" and doc:
            doc.pop(draw(st.sampled_from(sorted(doc))))
        elif action == "set":
            doc[draw(st.sampled_from(FIELDS))] = draw(json_values)
        elif action == "nest":
            target = draw(st.sampled_from(["features", "scores"]))
            doc[target] = {**draw(features), draw(names): draw(json_values)}
        else:
            doc["type"] = draw(st.sampled_from([*KINDS, "Feature", None, 1]))
    return doc


def python_valid(doc: dict[str, Any], kind: str | None) -> bool:
    by_doc = not isinstance(decode_document(doc, kind), InvalidEvent)
    by_bytes = not isinstance(decode_event(orjson.dumps(doc), kind), InvalidEvent)
    assert by_doc == by_bytes, (doc, decode_document(doc, kind), decode_event(orjson.dumps(doc), kind))
    return by_doc


def inferred(doc: dict[str, Any]) -> str:
    stated = doc.get("type")
    if isinstance(stated, str) and stated in KINDS:
        return stated
    return "label" if "label" in doc else "prediction" if "prediction" in doc else "feature"


@pytest.mark.parametrize("kind", KINDS)
@SETTINGS
@given(data=st.data())
def test_schema_and_codec_agree(kind: str, data: st.DataObject) -> None:
    doc = data.draw(st.one_of(base(kind), mutated(kind)))
    schema_valid = VALIDATORS[kind].is_valid(doc)
    assert python_valid(doc, kind) == schema_valid, (doc, decode_document(doc, kind))


@SETTINGS
@given(doc=st.one_of(*(mutated(kind) for kind in KINDS)))
def test_schema_and_codec_agree_when_kind_is_inferred(doc: dict[str, Any]) -> None:
    """Replay files: `type` selects the schema, else label/prediction/feature presence."""
    schema_valid = VALIDATORS[inferred(doc)].is_valid(doc)
    assert python_valid(doc, None) == schema_valid, (doc, decode_document(doc))


@pytest.mark.parametrize("count", [9_999, 10_000, 10_001])
def test_agree_near_the_feature_limit(count: int) -> None:
    doc = {"model_id": "m", "event_id": "e", "ts": 0, "features": {f"f{i}": i for i in range(count)}}
    assert python_valid(doc, "feature") == VALIDATORS["feature"].is_valid(doc) == (count <= 10_000)


# ------------------------------------------------------------------ observation batches
@st.composite
def batch_documents(draw: st.DrawFn) -> dict[str, Any]:
    events = []
    for i in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(KINDS))
        doc = draw(base(kind).filter(lambda d: "type" not in d))
        doc.update(model_id="m", event_id=f"e{i}", ts=float(i))
        event = decode_document(doc, kind)
        if not isinstance(event, InvalidEvent):
            events.append(event)
    if not events:
        events.append(decode_document({"model_id": "m", "event_id": "e", "ts": 0, "label": 1}))
    return orjson.loads(encode_batch(batch_from_events("m", events)))


COLUMNS = ("kind", "event_id", "ts", "has_features", "model_version", "prediction", "score", "scores", "label")


@st.composite
def batch_mutated(draw: st.DrawFn) -> dict[str, Any]:
    """Mutations that keep every column n long (lengths are checked beyond the schema)."""
    doc = draw(batch_documents())
    n = doc["n"]
    action = draw(st.sampled_from(["none", "drop", "top", "cell", "feature", "extra", "block"]))
    if action == "drop":
        doc.pop(draw(st.sampled_from(sorted(doc))))
    elif action == "top":
        key = draw(st.sampled_from(["v", "model_id", "n", "features", "numeric", *COLUMNS]))
        doc[key] = draw(st.one_of(json_values, st.sampled_from([0, 1, 1.0, 2, True, "m"])))
    elif action == "cell":
        column = draw(st.sampled_from(COLUMNS))
        doc[column][draw(st.integers(0, n - 1))] = draw(
            st.one_of(json_values, st.sampled_from(["feature", "label", "bogus"]))
        )
    elif action == "feature":
        name = draw(short_text)
        doc["features"][name] = [draw(json_values) for _ in range(n)]
    elif action == "extra":
        doc[draw(short_text.filter(lambda k: k not in doc))] = 1
    elif action == "block" and "numeric" in doc:  # the binary block of version 2
        block = doc["numeric"]
        change = draw(st.sampled_from(["names", "data", "inf", "clash", "extra"]))
        if change == "names":
            block["names"] = draw(st.lists(st.one_of(short_text, json_values), max_size=3))
        elif change == "data":
            block["data"] = draw(st.one_of(st.sampled_from(["", "AAAA", "AAAAAAAAAAA=", "!!"]), json_values))
        elif change == "inf":
            values = np.frombuffer(base64.b64decode(block["data"]), "<f8").copy()
            values[draw(st.integers(0, len(values) - 1))] = draw(st.sampled_from([np.inf, -np.inf]))
            block["data"] = base64.b64encode(values.tobytes()).decode()
        elif change == "clash" and doc["features"]:
            block["names"][0] = next(iter(doc["features"]))
        elif change == "extra":
            block["x"] = 1
    return doc


def consistent_lengths(doc: dict[str, Any]) -> bool:
    """What the schema cannot express holds: column lengths, and a decodable block."""
    n = doc.get("n")
    columns = [doc.get(c) for c in COLUMNS]
    if isinstance(doc.get("features"), dict):
        columns += list(doc["features"].values())
    block = doc.get("numeric")
    if (
        isinstance(block, dict)
        and isinstance(block.get("names"), list)
        and isinstance(block.get("data"), str)
        and isinstance(n, int)
    ):
        try:
            values = np.frombuffer(base64.b64decode(block["data"], validate=True), "<f8")
        except ValueError:
            return False
        features = doc.get("features") if isinstance(doc.get("features"), dict) else {}
        if (
            len(values) != len(block["names"]) * n
            or np.isinf(values).any()
            or any(name in features for name in block["names"] if isinstance(name, str))
        ):
            return False
    return all(not isinstance(c, list) or len(c) == n for c in columns)


@SETTINGS
@given(doc=batch_mutated())
def test_batch_schema_and_decode_batch_agree(doc: dict[str, Any]) -> None:
    from_doc = decode_batch_document(doc)
    from_bytes = decode_batch(orjson.dumps(doc))
    assert isinstance(from_doc, InvalidEvent) == isinstance(from_bytes, InvalidEvent)
    python_ok = not isinstance(from_doc, InvalidEvent)
    schema_ok = VALIDATORS["observation-batch"].is_valid(doc)
    if consistent_lengths(doc):
        assert python_ok == schema_ok, (doc, from_doc)
    else:  # the schema cannot compare lengths with n; decode_batch must still refuse
        assert not python_ok


# ------------------------------------------------------------------ columnar decoding
# `decode_features` must give, message by message, exactly what `decode_event` gives.
# Runs share one set of feature names (the uniform fast path) unless mutated; names that
# trip the byte-level shortcuts (quotes, escapes, "true"/"false") are mixed in.
tricky_names = st.sampled_from(['a"b', "x\\", "is_true", "false", "k:", "é"])
numeric_values = st.one_of(st.none(), numbers)
# (braces in strings only send a run to the per-message path: keep them rare here)
plain_text = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="{["), max_size=12),
    st.sampled_from(['"', "\\", "true", "x{y"]),
)
plain_scalars = st.one_of(st.none(), st.booleans(), numbers, plain_text)
plain_ids = plain_text.filter(lambda text: text and "{" not in text)
plain_ts = st.one_of(st.floats(0, 2e9), st.integers(0, 2_000_000_000))


@st.composite
def feature_messages(draw: st.DrawFn) -> list[bytes]:
    keys = draw(st.lists(st.one_of(plain_ids, tricky_names), max_size=6, unique=True))
    values = draw(
        st.sampled_from(
            [
                numeric_values,
                plain_scalars,
                st.one_of(numeric_values, st.just(True)),
                st.one_of(numeric_values, st.just(False)),
            ]
        )
    )
    stated = draw(st.booleans())
    out = []
    for _ in range(draw(st.integers(1, 40))):
        roll = draw(st.integers(0, 59))
        if roll == 0:
            out.append(orjson.dumps(draw(mutated("feature"))))
        elif roll == 1:
            out.append(
                draw(
                    st.sampled_from(
                        [
                            b"",
                            b"{",
                            b"[1]",
                            b"\xff",
                            b'{"model_id":"m"}',
                            b'{"model_id":"a","event_id":"e","ts":1,"features":{"x":NaN}}',
                            b'{"model_id":"a","event_id":"e","ts":1,"features":{"x":[1]}}',
                            b'{"model_id":"a","event_id":"e","ts":1,"features":{"x":{}}}',
                        ]
                    )
                )
            )
        else:
            doc = {
                "model_id": draw(st.sampled_from(["a", "b"])),
                "event_id": draw(plain_ids),
                "ts": draw(plain_ts),
                "features": {k: draw(values) for k in keys},
            }
            if stated:
                doc["type"] = "feature"
            out.append(orjson.dumps(doc))
    return out


runs: list[int] = []  # FeatureRuns per example: the fast path must be exercised


@SETTINGS
@given(raws=feature_messages(), kind=st.sampled_from([None, "feature"]))
def columnar_agrees_with_decode_event(raws: list[bytes], kind: str | None) -> None:
    from driftline.schemas.columnar import FeatureRun, decode_features

    seen = []
    runs.append(0)
    for item in decode_features(raws, kind):  # type: ignore[arg-type]
        if type(item) is not FeatureRun:
            position, result = item  # type: ignore[misc]
            assert result == decode_event(raws[position], kind), raws[position]  # type: ignore[arg-type]
            seen.append(position)
            continue
        run = item
        runs[-1] += 1
        straight = not run.has_dicts
        for row in range(len(run)):
            event = decode_event(raws[run.start + row], kind)  # type: ignore[arg-type]
            assert not isinstance(event, InvalidEvent), (raws[run.start + row], event)
            features = event.features
            if straight:  # decoded straight into the matrix: integers as floats
                features = {k: float(v) if type(v) is int else v for k, v in features.items()}
            assert (run.model_id[row], run.event_id[row], run.ts[row], run.features[row]) == (
                event.model_id,
                event.event_id,
                event.ts,
                features,
            )
            assert list(map(type, run.features[row].values())) == list(map(type, features.values()))
            seen.append(run.start + row)
        values = [v for f in run.features for v in f.values()]
        assert run.numeric_only == all(type(v) in (int, float, type(None)) for v in values)
        if run.rows is not None:
            assert run.names == tuple(run.features[0])
            assert run.rows == [tuple(f[name] for name in run.names) for f in run.features]
            columns = [[f[name] for f in run.features] for name in run.names]
            if run.numeric_only:
                assert np.array_equal(run.numeric, np.array(columns, dtype=np.float64), equal_nan=True)
    assert seen == list(range(len(raws)))


@pytest.mark.parametrize(
    "value, numeric",
    [
        (b"1.5", True),
        (b"true", False),
        (b"false", False),
        (b"null", True),
        (b'"tf"', False),
    ],
)
@pytest.mark.parametrize("key", [b"tft", b"\\u0074", b"x"])
def test_one_boolean_among_numbers_makes_a_run_not_numeric(value: bytes, numeric: bool, key: bytes) -> None:
    """The byte-level shortcut for "no booleans" counts letters t and f: names, ids and
    escapes full of them must not hide (or invent) a literal."""
    from driftline.schemas.columnar import FeatureRun, decode_features

    plain = [b'{"model_id":"fit","event_id":"tt%d","ts":1,"features":{"%s":0.5,"f":2}}' % (i, key) for i in range(40)]
    odd = b'{"model_id":"fit","event_id":"ft","ts":1,"features":{"%s":%s,"f":2}}' % (key, value)
    raws = plain[:20] + [odd] + plain[20:]
    items = decode_features(raws)
    runs = [item for item in items if type(item) is FeatureRun]
    assert sum(len(r) for r in runs) == len(raws), "all valid: decoded as runs"
    assert all(r.numeric_only for r in runs) == numeric
    for run in runs:
        for row in range(len(run)):
            assert run.features[row] == decode_event(raws[run.start + row]).features


def test_columnar_decoding_agrees_with_decode_event() -> None:
    runs.clear()
    columnar_agrees_with_decode_event()
    assert sum(1 for r in runs if r) > len(runs) // 2, "the fast path was rarely exercised"
