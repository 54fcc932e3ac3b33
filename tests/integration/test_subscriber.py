"""The subscriber refuses tampered or unsigned artifacts (never unpickling them) and serves its cache at start."""

from __future__ import annotations

import base64
import os
import pickle

import orjson
from prometheus_client import CollectorRegistry

from driftline.consumers.subscriber.client import ModelSubscriber
from driftline.testing.waiting import eventually
from driftline.trust.keys import Ed25519PrivateKey
from driftline.trust.pointer_moves import sign_pointer

from .trainer_support import KEY, PUBLIC_KEY, labeled_rows, produce_rows, request, trainer_thread, values


class _Explodes:
    """Unpickling this creates a directory: proof the bytes were (or were not) unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_tampered_and_unsigned_artifacts_are_refused_and_never_unpickled(
    kafka_bootstrap, topic_names, produce, consume_all, tmp_path
):
    produce_rows(produce, topic_names.labeled, labeled_rows("t", 400))
    with trainer_thread(kafka_bootstrap, topic_names, tmp_path):
        produce(topic_names.control, [request("t")])
        [good] = values(consume_all, topic_names.model_updates, min_count=1)
    marker = tmp_path / "unpickled"
    evil = base64.b64encode(pickle.dumps(_Explodes(str(marker)))).decode()
    nxt = good["sequence"] + 1

    def resigned(**change) -> dict:  # what only the trainer's key can write: the artifact is the lie
        return sign_pointer({**good, "sequence": nxt, **change}, KEY)

    tampered = resigned(version="9.9.9", artifact={**good["artifact"], "inline": evil})
    unsigned = resigned(version="9.9.8", artifact={**good["artifact"], "signature": ""})
    relabelled = resigned(version="9.9.7")  # genuine bytes, signed for 1.0.0 only
    forged = {**good, "sequence": nxt, "version": "9.9.6"}  # a pointer move nobody trusted signed
    retyped = {**good, "type": "anything_at_all"}
    errors: list[tuple[str | None, str]] = []
    registry = CollectorRegistry()
    sub = ModelSubscriber(
        "t",
        kafka_bootstrap,
        topic_names.model_updates,
        PUBLIC_KEY,
        cache_dir=tmp_path / "c",
        on_error=lambda _m, v, exc: errors.append((v, str(exc))),
        registry=registry,
    ).start()
    try:
        assert sub.wait_for("1.0.0", 30)
        deadline_ok = True
        for i, event in enumerate((tampered, unsigned, relabelled, forged, retyped)):  # one at a time
            produce(topic_names.model_updates, [("t", orjson.dumps(event))])
            deadline_ok = deadline_ok and eventually(lambda i=i: len(errors) > i, 30)
    finally:
        sub.stop()
    assert deadline_ok, errors
    assert [v for v, _ in errors] == ["9.9.9", "9.9.8", "9.9.7", "9.9.6", "1.0.0"]
    assert "digest mismatch" in errors[0][1] and "unsigned" in errors[1][1] and "bad signature" in errors[2][1]
    assert "bad pointer signature" in errors[3][1] and "not a pointer move" in errors[4][1]
    assert not marker.exists()
    assert sub.version == "1.0.0"
    assert registry.get_sample_value("driftline_subscriber_updates_total", {"model_id": "t", "outcome": "refused"}) == 5
    # a restarted (or offline) process serves the last good version at once, before any Kafka read
    again = ModelSubscriber("t", "127.0.0.1:1", topic_names.model_updates, PUBLIC_KEY, cache_dir=tmp_path / "c")
    assert again.version == "1.0.0" and again.predict_one(labeled_rows("t", 1)[0]["features"]) in (True, False)
    # …but not a cached copy signed under another key
    other = ModelSubscriber(
        "t",
        "127.0.0.1:1",
        topic_names.model_updates,
        Ed25519PrivateKey.generate().public_key(),
        cache_dir=tmp_path / "c",
    )
    assert other.version is None
