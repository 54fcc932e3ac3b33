"""DLQ headers round-trip, and the demo's junk really is junk to the codec."""

from __future__ import annotations

from driftline.demo.traffic import MALFORMED, SyntheticTraffic
from driftline.kafka.dlq import dlq_headers, parse_dlq_headers
from driftline.schemas.codec import check_key, decode_event
from driftline.schemas.events import InvalidEvent

KIND = {"features": "feature", "predictions": "prediction", "labels": "label"}


def test_dlq_headers_carry_source_error_and_original_headers() -> None:
    error = InvalidEvent("features.age", "finite", "must be a finite number (got NaN)")
    headers = dlq_headers("driftline.features", 3, 42, error, [("trace", b"abc")], now=0.25)
    parsed = parse_dlq_headers(headers)
    assert parsed["source.topic"] == "driftline.features"
    assert parsed["source.partition"] == "3" and parsed["source.offset"] == "42"
    assert parsed["error.field"] == "features.age" and parsed["error.rule"] == "finite"
    assert parsed["error"] == str(error)
    assert parsed["rejected_at"] == "1970-01-01T00:00:00.250Z"
    assert ("trace", b"abc") in headers


def _rejected(kind: str, key: bytes | None, value: bytes) -> bool:
    result = decode_event(value, KIND[kind]) if value else InvalidEvent("$", "empty", "")
    if isinstance(result, InvalidEvent):
        return True
    return check_key(key, result) is not None


def test_every_malformed_demo_message_is_rejected() -> None:
    assert all(_rejected(kind, key, value) for kind, key, value in MALFORMED)


def test_demo_traffic_is_valid_apart_from_the_junk() -> None:
    traffic = SyntheticTraffic(drift_at=100, malformed_every=50)
    junk = {value for _, _, value in MALFORMED}
    messages = list(traffic.messages(300))
    good = [m for m in messages if m.value not in junk]
    assert len(messages) - len(good) == 6
    assert not any(_rejected(m.kind, m.key, m.value) for m in good)
    assert sum(m.kind == "labels" for m in good) == 2 * 300  # every prediction gets its label
