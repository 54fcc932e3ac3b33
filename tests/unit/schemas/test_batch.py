"""Observation micro-batches: builder, columns, slicing, and the wire round trip."""

from __future__ import annotations

import base64
import math

import numpy as np
import orjson
import pytest

from driftline.schemas import (
    KIND_FEATURE,
    KIND_LABEL,
    KIND_PREDICTION,
    BatchBuilder,
    FeatureEvent,
    InvalidEvent,
    LabelEvent,
    ObservationBatch,
    PredictionEvent,
    batch_from_events,
    decode_batch,
    decode_batch_document,
    encode_batch,
)

EVENTS = [
    FeatureEvent("churn", "e1", 10.0, {"age": 41, "plan": "pro"}),
    PredictionEvent("churn", "e1", 10.5, "1.0.0", 1, score=0.81),
    FeatureEvent("churn", "e2", 11.0, {"age": None, "tenure": 3.5, "vip": True}),
    PredictionEvent("churn", "e2", 11.5, "1.0.0", "stay", scores={"stay": 0.7, "churn": 0.3}, features={"age": 52.0}),
    LabelEvent("churn", "e1", 12.0, 1),
]


def build(index: bool = False) -> ObservationBatch:
    return batch_from_events("churn", EVENTS, range(100, 105) if index else None)


def test_columns_follow_the_readme_layout() -> None:
    batch = build()
    assert len(batch) == 5
    assert batch.kind.dtype == np.int8
    assert batch.kind.tolist() == [KIND_FEATURE, KIND_PREDICTION, KIND_FEATURE, KIND_PREDICTION, KIND_LABEL]
    assert batch.event_id == ["e1", "e1", "e2", "e2", "e1"]
    assert batch.ts.tolist() == [10.0, 10.5, 11.0, 11.5, 12.0]
    assert batch.has_features.tolist() == [True, False, True, True, False]
    assert batch.model_version == [None, "1.0.0", None, "1.0.0", None]
    assert batch.prediction == [None, 1, None, "stay", None]
    assert batch.scores == [None, None, None, {"stay": 0.7, "churn": 0.3}, None]
    assert batch.label == [None, None, None, None, 1]
    np.testing.assert_array_equal(batch.score, [np.nan, 0.81, np.nan, np.nan, np.nan])
    assert batch.index is None


def test_features_seen_mid_batch_are_backfilled_with_none() -> None:
    features = build().features
    assert list(features) == ["age", "plan", "tenure", "vip"]
    assert features["age"] == [41, None, None, 52.0, None]
    assert features["plan"] == ["pro", None, None, None, None]
    assert features["tenure"] == [None, None, 3.5, None, None]
    assert features["vip"] == [None, None, True, None, None]
    assert all(len(column) == 5 for column in features.values())


def test_numeric_column_is_nan_for_null_missing_strings_and_booleans() -> None:
    batch = batch_from_events(
        "m",
        [
            FeatureEvent("m", "a", 0.0, {"x": 1, "y": True}),
            FeatureEvent("m", "b", 0.0, {"x": "oops", "y": 2.5}),
            FeatureEvent("m", "c", 0.0, {"x": None}),
            FeatureEvent("m", "d", 0.0, {"x": 2**63, "y": False}),
        ],
    )
    x, y = batch.numeric_column("x"), batch.numeric_column("y")
    assert x.dtype == np.float64
    np.testing.assert_array_equal(x, [1.0, np.nan, np.nan, float(2**63)])
    np.testing.assert_array_equal(y, [np.nan, 2.5, np.nan, np.nan])
    assert np.isnan(batch.numeric_column("never_seen")).all()
    assert len(batch.numeric_column("never_seen")) == 4


def test_numeric_column_does_not_parse_numeric_strings() -> None:
    batch = batch_from_events("m", [FeatureEvent("m", "a", 0.0, {"x": "1.5"}), FeatureEvent("m", "b", 0.0, {"x": 2})])
    np.testing.assert_array_equal(batch.numeric_column("x"), [np.nan, 2.0])


def test_slice_is_consistent_across_columns() -> None:
    part = build(index=True).slice(1, 4)
    assert len(part) == 3
    assert part.event_id == ["e1", "e2", "e2"]
    assert part.kind.tolist() == [KIND_PREDICTION, KIND_FEATURE, KIND_PREDICTION]
    assert part.features["age"] == [None, None, 52.0]
    assert part.index.tolist() == [101, 102, 103]
    assert part.label == [None, None, None]
    np.testing.assert_array_equal(part.score, [0.81, np.nan, np.nan])


def test_round_trip_through_the_wire() -> None:
    batch = build()
    raw = encode_batch(batch)
    doc = orjson.loads(raw)
    assert doc["v"] == 2 and doc["n"] == 5 and doc["kind"][4] == "label"
    assert doc["score"] == [None, 0.81, None, None, None]
    assert list(doc["features"]) == ["plan", "vip"]  # strings and booleans stay lists
    assert doc["numeric"]["names"] == ["age", "tenure"]  # numbers and nulls: the block
    decoded = decode_batch(raw)
    assert decoded == batch  # 41 travels as 41.0, equal in Python and to the drift core
    assert decoded.features["age"] == [41.0, None, None, 52.0, None]
    np.testing.assert_array_equal(decoded.numeric_column("tenure"), [np.nan, np.nan, 3.5, np.nan, np.nan])
    assert decoded.only_numbers("age") and not decoded.only_numbers("plan")


def test_version_1_batches_still_decode() -> None:
    doc = orjson.loads(encode_batch(build()))
    numeric = decode_batch(encode_batch(build())).features
    doc.update(v=1, features={**doc["features"], "age": numeric["age"], "tenure": numeric["tenure"]})
    del doc["numeric"]
    assert decode_batch(orjson.dumps(doc)) == build()


def _numeric_doc(**change) -> bytes:
    doc = orjson.loads(encode_batch(build()))
    doc["numeric"].update(change)
    return orjson.dumps(doc)


@pytest.mark.parametrize(
    "raw, field, rule",
    [
        (_numeric_doc(data="not base64!"), "numeric.data", "base64"),
        (_numeric_doc(data=""), "numeric.data", "length"),
        (_numeric_doc(names=["age"]), "numeric.data", "length"),
        (_numeric_doc(names=["age", "age"]), "numeric.names", "uniqueItems"),
        (_numeric_doc(names=["age", "plan"]), "numeric.names", "duplicate"),
        (_numeric_doc(names=["age", 3]), "numeric.names", "type"),
        (_numeric_doc(data=base64.b64encode(np.full(10, np.inf).tobytes()).decode()), "numeric.data", "finite"),
        (orjson.dumps({**orjson.loads(encode_batch(build())), "v": 1}), "numeric", "additionalProperties"),
        (
            orjson.dumps({k: v for k, v in orjson.loads(encode_batch(build())).items() if k != "numeric"}),
            "numeric",
            "required",
        ),
    ],
)
def test_numeric_block_names_what_is_wrong(raw: bytes, field: str, rule: str) -> None:
    error = decode_batch(raw)
    assert isinstance(error, InvalidEvent) and (error.field, error.rule) == (field, rule), error


def test_index_stays_off_the_wire() -> None:
    batch = build(index=True)
    assert "index" not in orjson.loads(encode_batch(batch))
    decoded = decode_batch(encode_batch(batch))
    assert decoded.index is None and decoded != batch
    decoded.index = batch.index
    assert decoded == batch


def test_builder_add_clear_and_reuse() -> None:
    builder = BatchBuilder("churn")
    for event in EVENTS[:2]:
        builder.add(event)
    assert len(builder) == 2
    first = builder.build()
    builder.clear()
    assert len(builder) == 0
    builder.add(EVENTS[4])
    second = builder.build()
    assert len(first) == 2 and second.label == [1] and second.features == {}


def test_builder_refuses_other_models_empty_builds_and_mixed_index() -> None:
    builder = BatchBuilder("churn")
    with pytest.raises(ValueError):
        builder.build()
    with pytest.raises(ValueError):
        builder.add(LabelEvent("fraud", "e", 0.0, 1))
    builder.add(EVENTS[0], 7)
    with pytest.raises(ValueError):
        builder.add(EVENTS[1])


def good_doc() -> dict:
    return orjson.loads(encode_batch(build()))


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        (lambda d: d.pop("ts"), "ts", "required"),
        (lambda d: d.update(v=3), "v", "enum"),
        (lambda d: d.update(v=True), "v", "enum"),
        (lambda d: d.update(n=0), "n", "minimum"),
        (lambda d: d.update(n="5"), "n", "type"),
        (lambda d: d.update(n=6), "kind", "length"),
        (lambda d: d.update(model_id="a b"), "model_id", "pattern"),
        (lambda d: d.update(extra=[]), "extra", "additionalProperties"),
        (lambda d: d["kind"].__setitem__(0, "features"), "kind", "enum"),
        (lambda d: d["ts"].__setitem__(2, "11"), "ts", "type"),
        (lambda d: d["ts"].append(1.0), "ts", "length"),
        (lambda d: d["features"]["plan"].pop(), "features.plan", "length"),
        (lambda d: d["features"].update(x=[{}] * 5), "features.x", "type"),
        (lambda d: d.update(features=[]), "features", "type"),
        (lambda d: d["scores"].__setitem__(0, {"a": "b"}), "scores", "type"),
        (lambda d: d["has_features"].__setitem__(0, 1), "has_features", "type"),
        (lambda d: d["score"].__setitem__(0, "0.1"), "score", "type"),
    ],
)
def test_decode_batch_names_what_is_wrong(change, field: str, rule: str) -> None:
    doc = good_doc()
    change(doc)
    result = decode_batch(orjson.dumps(doc))
    assert isinstance(result, InvalidEvent)
    assert (result.field, result.rule) == (field, rule), str(result)


@pytest.mark.parametrize("raw", [b"", None, b"\xff", b"{", b"[]", b"null", b'{"v":1}', b'{"v":1,"n":1e400}'])
def test_foreign_messages_never_raise(raw: bytes | None) -> None:
    assert isinstance(decode_batch(raw), InvalidEvent)


def test_decode_batch_document_rejects_nan() -> None:
    doc = good_doc()
    doc["ts"][0] = math.nan
    assert (decode_batch_document(doc).field, decode_batch_document(doc).rule) == ("ts", "type")
    doc = good_doc()
    doc["features"]["plan"][0] = math.inf
    assert decode_batch_document(doc).field == "features.plan"


# ------------------------------------------------------------------ runs of decode_features
def _feature_raws(models: list[str], strings: bool = False) -> list[bytes]:
    return [
        orjson.dumps(
            {
                "model_id": m,
                "event_id": f"e{i}",
                "ts": float(i),
                "features": {"x": i, "y": f"s{i}" if strings else i / 2},
            }
        )
        for i, m in enumerate(models)
    ]


def test_run_by_model_keeps_each_models_rows_in_order() -> None:
    from driftline.schemas.columnar import FeatureRun, decode_features

    models = ["a", "b", "a", "c", "a", "b"]
    (run,) = decode_features(_feature_raws(models), "feature")
    assert type(run) is FeatureRun
    parts = run.by_model()
    assert [(m, picked) for m, _, picked in parts] == [("a", [0, 2, 4]), ("b", [1, 5]), ("c", [3])]
    for model_id, rows, picked in parts:
        assert rows.model_id == [model_id] * len(picked)
        assert rows.event_id == [f"e{p}" for p in picked]
        assert rows.ts == [float(p) for p in picked]
        assert rows.features == [{"x": p, "y": p / 2} for p in picked]
        assert rows.columns() == {"x": [float(p) for p in picked], "y": [p / 2 for p in picked]}
        assert rows.numeric.tolist() == [[float(p) for p in picked], [p / 2 for p in picked]]
    (single,) = decode_features(_feature_raws(["a", "a"]), "feature")
    assert single.by_model() == [("a", single, None)]
