"""The codec enforces every README rule and names the field and the rule it broke."""

from __future__ import annotations

import math
from datetime import datetime

import orjson
import pytest

from driftline.schemas import (
    MAX_MESSAGE_BYTES,
    FeatureEvent,
    InvalidEvent,
    LabelEvent,
    PredictionEvent,
    check_key,
    decode_document,
    decode_event,
    encode_event,
    parse_rfc3339,
)

FEATURE = {
    "model_id": "churn",
    "event_id": "e1",
    "ts": 1764158400.5,
    "features": {"age": 41, "plan": "pro", "active": True, "income": None},
}
PREDICTION = {
    "model_id": "churn",
    "event_id": "e1",
    "ts": 1764158400.5,
    "model_version": "1.2.0+build.7",
    "prediction": "churn",
    "score": 0.81,
    "scores": {"churn": 0.81, "stay": 0.19},
    "features": {"age": 41},
}
LABEL = {"model_id": "churn", "event_id": "e1", "ts": "2026-11-26T12:00:00Z", "label": True}
VALID = {"feature": FEATURE, "prediction": PREDICTION, "label": LABEL}


def both(doc: dict, kind: str | None = None) -> object:
    """decode_document and decode_event (the fast path) must give the same answer."""
    from_doc = decode_document(doc, kind)
    from_bytes = decode_event(orjson.dumps(doc), kind)
    assert from_doc == from_bytes
    return from_doc


def broken(kind: str, **changes: object) -> dict:
    doc = dict(VALID[kind])
    for key, value in changes.items():
        if value is DROP:
            doc.pop(key)
        else:
            doc[key] = value
    return doc


DROP = object()


# ------------------------------------------------------------------ valid documents
def test_valid_events_decode_to_typed_events() -> None:
    feature = both(FEATURE, "feature")
    assert feature == FeatureEvent("churn", "e1", 1764158400.5, FEATURE["features"])
    prediction = both(PREDICTION, "prediction")
    assert isinstance(prediction, PredictionEvent)
    assert (prediction.model_version, prediction.score, prediction.scores["stay"]) == ("1.2.0+build.7", 0.81, 0.19)
    label = both(LABEL, "label")
    assert label == LabelEvent("churn", "e1", 1795694400.0, True)


@pytest.mark.parametrize(
    ("doc", "kind"),
    [
        ({**FEATURE}, "feature"),
        ({**PREDICTION}, "prediction"),
        ({**LABEL}, "label"),
        ({**PREDICTION, "label": 1, "type": "prediction"}, None),  # invalid: label is extra
    ],
)
def test_kind_inferred_without_type(doc: dict, kind: str | None) -> None:
    result = both(doc)
    if kind is None:
        assert result == InvalidEvent("label", "additionalProperties", result.detail)
    else:
        assert result.kind == kind


def test_type_selects_kind_and_must_match_topic() -> None:
    assert both({**FEATURE, "type": "feature"}, "feature").kind == "feature"
    assert both({**FEATURE, "type": "feature"}).kind == "feature"
    mismatch = both({**FEATURE, "type": "label"}, "feature")
    assert (mismatch.field, mismatch.rule) == ("type", "kind_mismatch")
    for bad in ("Feature", 1, None):
        assert (both({**FEATURE, "type": bad}, "feature").rule) == "const"
        assert (both({**FEATURE, "type": bad}).field, both({**FEATURE, "type": bad}).rule) == ("type", "enum")


def test_inference_prefers_label_then_prediction() -> None:
    doc = {"model_id": "m", "event_id": "e", "ts": 0, "label": 1, "prediction": 1}
    result = both(doc)
    assert (result.field, result.rule) == ("prediction", "additionalProperties")
    assert both({"model_id": "m", "event_id": "e", "ts": 0}).field == "features"


# ------------------------------------------------------------------ every README rule
CASES = [
    # shared rules
    ("feature", dict(model_id=DROP), "model_id", "required"),
    ("feature", dict(event_id=DROP), "event_id", "required"),
    ("label", dict(ts=DROP), "ts", "required"),
    ("feature", dict(model_id=7), "model_id", "type"),
    ("feature", dict(model_id="churn model"), "model_id", "pattern"),
    ("feature", dict(model_id=""), "model_id", "pattern"),
    ("feature", dict(model_id="m" * 129), "model_id", "pattern"),
    ("feature", dict(model_id="churn\n"), "model_id", "pattern"),
    ("feature", dict(model_id="chürn"), "model_id", "pattern"),
    ("feature", dict(event_id=""), "event_id", "minLength"),
    ("feature", dict(event_id="e" * 257), "event_id", "maxLength"),
    ("feature", dict(event_id=12), "event_id", "type"),
    ("feature", dict(ts=-1), "ts", "minimum"),
    ("feature", dict(ts=253402300800), "ts", "exclusiveMaximum"),
    ("feature", dict(ts=True), "ts", "type"),
    ("feature", dict(ts=None), "ts", "type"),
    ("feature", dict(ts="2026-11-26 12:00:00Z"), "ts", "pattern"),
    ("feature", dict(ts="2026-11-26T12:00:00"), "ts", "pattern"),
    ("feature", dict(ts="2026-02-29T12:00:00Z"), "ts", "pattern"),
    ("feature", dict(ts="2026-11-26T24:00:00Z"), "ts", "pattern"),
    ("feature", dict(ts="2026-11-26T23:59:60Z"), "ts", "pattern"),
    ("feature", dict(ts="1969-12-31T23:59:59Z"), "ts", "pattern"),
    ("feature", dict(ts="2026-11-26T12:00:00.1234567890Z"), "ts", "pattern"),
    ("feature", dict(ts="2026-11-26T12:00:00+0100"), "ts", "pattern"),
    ("feature", dict(ts="2026-11-26T12:00:00Z\n"), "ts", "pattern"),
    ("feature", dict(extra=1), "extra", "additionalProperties"),
    ("label", dict(score=0.5), "score", "additionalProperties"),
    # features
    ("feature", dict(features=DROP), "features", "required"),
    ("feature", dict(features=[1, 2]), "features", "type"),
    ("feature", dict(features=None), "features", "type"),
    ("feature", dict(features={"": 1}), "features", "propertyNames"),
    ("feature", dict(features={"x" * 257: 1}), "features", "propertyNames"),
    ("feature", dict(features={"age": {"v": 1}}), "features.age", "type"),
    ("feature", dict(features={"age": [41]}), "features.age", "type"),
    ("feature", dict(features={"age": []}), "features.age", "type"),
    ("feature", dict(features={"age": {}}), "features.age", "type"),
    ("feature", dict(features={"plan": "p" * 1025}), "features.plan", "maxLength"),
    ("prediction", dict(features={"a": {}}), "features.a", "type"),
    # prediction
    ("prediction", dict(model_version=DROP), "model_version", "required"),
    ("prediction", dict(prediction=DROP), "prediction", "required"),
    ("prediction", dict(model_version="1.0 beta"), "model_version", "pattern"),
    ("prediction", dict(model_version="v" * 65), "model_version", "pattern"),
    ("prediction", dict(model_version=1.0), "model_version", "type"),
    ("prediction", dict(prediction=None), "prediction", "type"),
    ("prediction", dict(prediction=[1]), "prediction", "type"),
    ("prediction", dict(prediction="p" * 1025), "prediction", "maxLength"),
    ("prediction", dict(score="0.5"), "score", "type"),
    ("prediction", dict(score=None), "score", "type"),
    ("prediction", dict(score=True), "score", "type"),
    ("prediction", dict(scores={"a": "x"}), "scores.a", "type"),
    ("prediction", dict(scores={"a": True}), "scores.a", "type"),
    ("prediction", dict(scores={"": 0.1}), "scores", "propertyNames"),
    ("prediction", dict(scores=[0.1]), "scores", "type"),
    # label
    ("label", dict(label=DROP), "label", "required"),
    ("label", dict(label=None), "label", "type"),
    ("label", dict(label={"a": 1}), "label", "type"),
    ("label", dict(label="l" * 1025), "label", "maxLength"),
]


@pytest.mark.parametrize(("kind", "changes", "field", "rule"), CASES)
def test_rule_broken_is_named(kind: str, changes: dict, field: str, rule: str) -> None:
    result = both(broken(kind, **changes), kind)
    assert isinstance(result, InvalidEvent), result
    assert (result.field, result.rule) == (field, rule), str(result)


@pytest.mark.parametrize("kind", ["feature", "prediction", "label"])
def test_boundaries_are_inclusive(kind: str) -> None:
    doc = broken(kind, model_id="m" * 128, event_id="e" * 256, ts=253402300799.999)
    assert not isinstance(both(doc, kind), InvalidEvent)
    assert not isinstance(both(broken(kind, ts=0), kind), InvalidEvent)


def test_feature_values_at_their_limits() -> None:
    features = {"x" * 256: "v" * 1024, "n": -1.5e300, "i": 2**64 - 1, "j": -(2**63), "b": False, "z": None}
    result = both(broken("feature", features=features), "feature")
    assert result.features == features


def test_message_of_exactly_ten_thousand_features_is_valid_and_one_more_is_not() -> None:
    many = {f"f{i}": i for i in range(10_000)}
    assert both(broken("feature", features=many), "feature").features == many
    many["one_more"] = 1
    result = both(broken("feature", features=many), "feature")
    assert (result.field, result.rule) == ("features", "maxProperties")
    scores = {f"c{i}": 0.0 for i in range(10_001)}
    result = both(broken("prediction", scores=scores), "prediction")
    assert (result.field, result.rule) == ("scores", "maxProperties")


def test_invalid_event_reads_as_field_and_detail() -> None:
    result = decode_event(orjson.dumps(broken("feature", features={"age": {"v": 1}})))
    assert str(result) == "features.age: must be a finite number, string, boolean or null (got object)"


# ------------------------------------------------------------------ transport / bad input
@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        (b"", "empty"),
        (None, "empty"),
        (b'{"model_id": "\xff"}', "utf8"),
        (b"\xed\xa0\x80", "utf8"),  # an encoded surrogate is not UTF-8
        (b"not json", "json"),
        (b'{"model_id": "m",', "json"),
        (b'{"model_id":"m","event_id":"e","ts":NaN,"features":{}}', "json"),
        (b'{"model_id":"m","event_id":"e","ts":0,"features":{"a":Infinity}}', "json"),
        (b'{"model_id":"m","event_id":"e","ts":0,"features":{"a":1e400}}', "json"),
        (b"[1, 2]", "type"),
        (b'"a string"', "type"),
        (b"null", "type"),
    ],
)
def test_transport_rules(raw: bytes | None, rule: str) -> None:
    result = decode_event(raw, "feature")
    assert isinstance(result, InvalidEvent)
    assert (result.field, result.rule) == ("$", rule), str(result)


def test_message_over_one_mebibyte_is_rejected_before_parsing() -> None:
    pad = "x" * 1000
    doc = broken("feature", features={f"f{i}": pad for i in range(1100)})
    raw = orjson.dumps(doc)
    assert len(raw) > MAX_MESSAGE_BYTES
    assert decode_event(raw, "feature") == InvalidEvent("$", "maxBytes", decode_event(raw).detail)
    fits = orjson.dumps(broken("feature", features={f"f{i}": pad for i in range(1000)}))
    assert len(fits) <= MAX_MESSAGE_BYTES
    assert isinstance(decode_event(fits, "feature"), FeatureEvent)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    ("kind", "field", "where"),
    [
        ("feature", "ts", lambda v: {"ts": v}),
        ("feature", "features.age", lambda v: {"features": {"age": v}}),
        ("prediction", "prediction", lambda v: {"prediction": v}),
        ("prediction", "score", lambda v: {"score": v}),
        ("prediction", "scores.stay", lambda v: {"scores": {"stay": v}}),
        ("label", "label", lambda v: {"label": v}),
    ],
)
def test_nan_and_infinity_floats_in_documents(bad: float, kind: str, field: str, where) -> None:
    result = decode_document(broken(kind, **where(bad)), kind)
    assert isinstance(result, InvalidEvent)
    assert (result.field, result.rule) == (field, "finite") or (
        field == "ts" and bad == math.inf and result.rule == "exclusiveMaximum"
    )


def test_python_only_types_are_rejected_in_documents() -> None:
    assert decode_document(broken("feature", features={"a": (1,)}), "feature").rule == "type"
    assert decode_document(broken("feature", features={"a": 1j}), "feature").rule == "type"
    assert decode_document("{}").field == "$"


def test_ints_beyond_64_bits_are_read_as_orjson_reads_them() -> None:
    big = 2**64
    doc = broken("feature", features={"a": big})
    assert decode_document(doc, "feature").features["a"] == float(big)
    assert decode_event(b'{"model_id":"m","event_id":"e","ts":0,"features":{"a":18446744073709551616}}').features[
        "a"
    ] == float(big)
    assert decode_document(broken("label", label=10**400), "label").rule == "finite"


# ------------------------------------------------------------------ ts parsing
@pytest.mark.parametrize(
    "text",
    [
        "2026-11-26T12:00:00Z",
        "2026-11-26t12:00:00z",
        "2026-11-26T12:00:00.123+01:00",
        "2026-11-26T12:00:00.5-05:30",
        "2024-02-29T23:59:59.999999999+23:59",
        "1970-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2000-02-29T00:00:00-00:00",
    ],
)
def test_rfc3339_matches_datetime(text: str) -> None:
    norm = text.upper().replace("Z", "+00:00")
    head, _, tail = norm.partition(".")
    if tail:  # datetime takes at most 6 fraction digits
        digits = tail[: len(tail) - 6]
        norm = f"{head}.{digits[:6].ljust(6, '0')}{tail[-6:]}"
    expected = datetime.fromisoformat(norm).timestamp()
    assert parse_rfc3339(text) == pytest.approx(expected, abs=1e-6)


def test_rfc3339_offsets_and_fractions_exactly() -> None:
    assert parse_rfc3339("2026-11-26T12:00:00Z") == 1795694400.0
    assert parse_rfc3339("2026-11-26T13:00:00+01:00") == 1795694400.0
    assert parse_rfc3339("2026-11-26T06:30:00.25-05:30") == 1795694400.25
    assert parse_rfc3339("2026-11-26T12:00:00.000000001Z") == pytest.approx(1795694400.0, abs=1e-6)


def test_calendar_in_pattern_matches_real_calendar() -> None:
    for year in [1970, 1972, 1999, 2000, 2023, 2024, 2100, 2400, 2800, 3000, 9996, 9999]:
        for month in range(1, 13):
            for day in (28, 29, 30, 31):
                text = f"{year:04d}-{month:02d}-{day:02d}T00:00:00Z"
                try:
                    datetime(year, month, day)
                    real = True
                except ValueError:
                    real = False
                assert (parse_rfc3339(text) is not None) == real, text


# ------------------------------------------------------------------ encode / key
@pytest.mark.parametrize("kind", ["feature", "prediction", "label"])
def test_encode_round_trips(kind: str) -> None:
    event = decode_document(VALID[kind], kind)
    raw = encode_event(event)
    assert orjson.loads(raw)["type"] == kind
    assert decode_event(raw, kind) == event
    assert decode_event(raw) == event


def test_encode_leaves_out_absent_optionals() -> None:
    event = PredictionEvent("m", "e", 1.0, "1", 0)
    assert orjson.loads(encode_event(event)) == {
        "type": "prediction",
        "model_id": "m",
        "event_id": "e",
        "ts": 1.0,
        "model_version": "1",
        "prediction": 0,
    }


def test_key_must_be_present_and_equal_model_id() -> None:
    event = decode_document(FEATURE, "feature")
    assert check_key(b"churn", event) is None
    assert check_key("churn", event) is None
    assert (check_key(None, event).field, check_key(None, event).rule) == ("$key", "required")
    assert check_key(b"", event).rule == "required"
    assert check_key(b"fraud", event) == InvalidEvent("$key", "key_mismatch", check_key(b"fraud", event).detail)
    assert check_key(b"\xff", event).rule == "key_mismatch"


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        decode_event(orjson.dumps(FEATURE), "features")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model_id":"m","event_id":"e","ts":1,"features":{"a":"{","b":"[x]"}}',  # brackets in strings
        b'{ "model_id" : "m", "event_id":"e{", "ts":1, "features": {"a": 1} }',
        b'{"model_id":"m","event_id":"e","ts":1,"features":{"a":{"b":1}}}',  # nested object
        b'{"model_id":"m","event_id":"e","ts":1,"features":{"a":[1,2]}}',  # nested array
        b'{"model_id":"m","event_id":"e","ts":1,"features":{"a":{}}}',
        b'{"model_id":"m","event_id":"e","ts":1,"model_version":"1","prediction":1,"scores":{"x":0.5},'
        b'"features":{"a":"}{"}}',
        b'{"model_id":"m","event_id":"e","ts":1,"model_version":"1","prediction":1,"scores":{"x":{"y":1}}}',
        b'{"model_id":"m","event_id":"e","ts":1,"model_version":"1","prediction":1,"features":{"a":[]}}',
        b'{"model_id":"m","event_id":"e","ts":1,"model_version":"1","prediction":"{[","score":0.1}',
    ],
)
def test_the_fast_paths_structure_checks_agree_with_the_reference(raw: bytes) -> None:
    """Braces and brackets in strings, nested values: the fast paths' byte-level checks
    (no '[', no '{' beyond the parsed objects) decide exactly as the reference does."""
    assert decode_event(raw) == decode_document(orjson.loads(raw))


@pytest.mark.parametrize(
    ("doc", "kind", "looks_like"),
    [
        ({"model_id": "m", "event_id": "e", "ts": 1, "label": 1}, "feature", "label"),
        ({"model_id": "m", "event_id": "e", "ts": 1, "features": {"x": 1}}, "label", "feature"),
        ({"model_id": "m", "event_id": "e", "ts": 1, "model_version": "1.0.0", "prediction": 1}, "label", "prediction"),
        ({"model_id": "m", "event_id": "e", "ts": 1, "label": 0}, "prediction", "label"),
    ],
)
def test_an_event_on_another_kinds_topic_is_named_wrong_topic(doc: dict, kind: str, looks_like: str) -> None:
    result = decode_event(orjson.dumps(doc), kind)
    assert isinstance(result, InvalidEvent) and (result.field, result.rule) == ("$", "wrong_topic")
    assert f"a {looks_like} event" in result.detail and f"driftline.{looks_like}s" in result.detail
    # a broken event of the topic's own kind is still reported by the field it lacks
    broken = {
        **doc,
        **{"prediction": {"model_version": "1.0.0"}, "label": {"label": 1}, "feature": {"features": {}}}[kind],
    }
    own = decode_event(orjson.dumps({k: v for k, v in broken.items() if k not in ("event_id",)}), kind)
    assert isinstance(own, InvalidEvent) and own.rule == "required" and own.field == "event_id"
