"""Ingest against a real broker: nothing lost, nothing doubled, bad input kept whole."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid

import orjson
import pytest
from prometheus_client import CollectorRegistry

from driftline.commands.ingest import ingest_topics
from driftline.consumers.ingest.metrics import IngestMetrics
from driftline.consumers.ingest.service import Ingest
from driftline.consumers.ingest.settings import IngestSettings
from driftline.testing.events import feature_event

from .ingest_support import CommittedReader, ingest_process, produce

pytestmark = pytest.mark.kafka

VALID_PREDICTION = {
    "model_id": "m1",
    "event_id": "p-1",
    "ts": "2026-11-26T12:00:00Z",
    "model_version": "1.0.0",
    "prediction": 1,
    "score": 0.7,
}

# (name, topic attribute, key, value, rule the DLQ header must name)
BAD_INPUT = [
    ("non-utf8", "features", b"m1", b'{"model_id": "m1", "event_id": "\xff", "ts": 1, "features": {}}', "utf8"),
    ("not-json", "features", b"m1", b"{model_id: m1", None),
    ("not-object", "predictions", b"m1", b'["m1", 1]', None),
    ("missing-field", "labels", b"m1", b'{"model_id": "m1", "ts": 1, "label": 1}', "required"),
    ("ill-typed", "labels", b"m1", b'{"model_id": "m1", "event_id": 5, "ts": 1, "label": 1}', None),
    ("nan", "features", b"m1", b'{"model_id": "m1", "event_id": "a", "ts": 1, "features": {"x": NaN}}', None),
    ("infinity", "features", b"m1", b'{"model_id": "m1", "event_id": "a", "ts": 1, "features": {"x": Infinity}}', None),
    (
        "long-string",
        "features",
        b"m1",
        orjson.dumps({"model_id": "m1", "event_id": "a" * 300, "ts": 1, "features": {}}),
        None,
    ),
    (
        "over-1MiB",
        "features",
        b"m1",
        orjson.dumps({"model_id": "m1", "event_id": "a", "ts": 1, "features": {"x": "y" * (1024 * 1024)}}),
        None,
    ),
    (
        "too-many-features",
        "features",
        b"m1",
        orjson.dumps({"model_id": "m1", "event_id": "a", "ts": 1, "features": {f"f{i}": 1 for i in range(10_001)}}),
        None,
    ),
    (
        "nested-object",
        "features",
        b"m1",
        b'{"model_id": "m1", "event_id": "a", "ts": 1, "features": {"x": {"y": 1}}}',
        None,
    ),
    ("nested-array", "features", b"m1", b'{"model_id": "m1", "event_id": "a", "ts": 1, "features": {"x": [1]}}', None),
    ("empty-value", "labels", b"m1", b"", None),
    ("null-key", "predictions", None, orjson.dumps(VALID_PREDICTION), None),
    # valid feature events whose key is wrong: checked by column in a run of valid ones
    ("feature-key-mismatch", "features", b"m2", feature_event("m1", 10**6), "key_mismatch"),
    ("feature-null-key", "features", None, feature_event("m1", 10**6 + 1), "required"),
    # a valid event far ahead of the host's clock would move its model's watermark for good
    (
        "future-feature-in-a-run",
        "features",
        b"m1",
        orjson.dumps(
            {
                "model_id": "m1",
                "event_id": "future-f",
                "ts": time.time() + 10 * 86400,
                "features": {f"f{j}": 0.5 for j in range(20)},
            }
        ),
        "future_timestamp",
    ),
    (
        "future-prediction",
        "predictions",
        b"m1",
        orjson.dumps({**VALID_PREDICTION, "event_id": "future-p", "ts": time.time() + 2 * 3600}),
        "future_timestamp",
    ),
    (
        "year-9999-label",
        "labels",
        b"m1",
        b'{"model_id": "m1", "event_id": "y", "ts": 253402300799, "label": 1}',
        "future_timestamp",
    ),
]


def _run_ingest_thread(bootstrap: str, names: object, group: str, registry: CollectorRegistry):
    settings = IngestSettings(group_id=group, transactional_id=f"{group}-txn", batch_max_events=100, batch_max_ms=100)
    ingest = Ingest(bootstrap, ingest_topics(names), settings, IngestMetrics(registry))
    stop = threading.Event()
    thread = threading.Thread(target=ingest.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def test_valid_events_batched_once_and_every_bad_message_in_dlq(kafka_bootstrap: str, topic_names) -> None:
    n_valid = 3000
    produce(kafka_bootstrap, topic_names.features, ((b"m1", feature_event("m1", i)) for i in range(n_valid // 2)))
    produce(kafka_bootstrap, topic_names.features, ((b"m2", feature_event("m2", i)) for i in range(n_valid // 2)))
    for _name, attr, key, value, _ in BAD_INPUT:
        produce(kafka_bootstrap, getattr(topic_names, attr), [(key, value)])
    produce(kafka_bootstrap, topic_names.predictions, [(b"m1", orjson.dumps(VALID_PREDICTION))])
    registry = CollectorRegistry()
    stop, thread = _run_ingest_thread(kafka_bootstrap, topic_names, f"g-{uuid.uuid4()}", registry)
    reader = CommittedReader(kafka_bootstrap, topic_names.observations, topic_names.dlq)
    try:
        seen = reader.wait_for(events=n_valid + 1, dlq=len(BAD_INPUT), timeout=60, settle=2.0)
    finally:
        stop.set()
        thread.join(15)
        reader.close()
    assert not thread.is_alive(), "ingest did not stop within 15 s"
    assert seen.invalid_batches == []
    assert seen.events == n_valid + 1
    assert len(seen.event_ids) == n_valid + 1  # counted by event id: none doubled
    assert 0 < seen.batches <= (n_valid // 100) + 20  # packed, not one message per event
    assert len(seen.dlq) == len(BAD_INPUT)
    dlq_values = sorted(v or b"" for _, v, _ in seen.dlq)
    assert dlq_values == sorted(value for _, _, _, value, _ in BAD_INPUT)  # bytes unchanged
    for _, _value, headers in seen.dlq:
        assert headers["source.topic"].startswith(topic_names.prefix)
        assert int(headers["source.offset"]) >= 0 and headers["error"] and headers["error.rule"]
    rules = {(v or b""): h["error.rule"] for _, v, h in seen.dlq}
    for _, _, _, value, rule in BAD_INPUT:
        if rule:
            assert rules[value] == rule
    sample = registry.get_sample_value
    assert sample("driftline_ingest_valid_events_total", {"topic": topic_names.features}) == n_valid
    invalid_total = sum(
        s.value
        for m in registry.collect()
        if m.name == "driftline_ingest_invalid_events"
        for s in m.samples
        if s.name.endswith("_total")
    )
    assert invalid_total == len(BAD_INPUT)
    assert sample("driftline_ingest_transactions_committed_total") >= 1


def _big_event(i: int) -> bytes:
    """A valid feature event of just under 1 MiB (the contract's largest): 1,000 strings of 1,000 bytes."""
    features = {f"w{j}": f"{i:04d}" + "v" * 996 for j in range(1000)}
    return orjson.dumps({"model_id": "big", "event_id": f"big-{i}", "ts": 1_767_225_600 + i, "features": features})


def test_near_limit_events_and_dlq_copies_fit_their_records(kafka_bootstrap: str, topic_names) -> None:
    """12 valid ~1 MB events once made one 11 MB batch (MSG_SIZE_TOO_LARGE, a crash loop); a
    raw message just under the topic's limit once made a DLQ copy over it. Now both fit."""
    produce(kafka_bootstrap, topic_names.features, ((b"big", _big_event(i)) for i in range(12)))
    near_limit = b"x" * (8 * 1024 * 1024 - 512)  # not JSON and > 1 MiB: rejected as maxBytes
    produce(kafka_bootstrap, topic_names.labels, [(b"big", near_limit)])
    registry = CollectorRegistry()
    stop, thread = _run_ingest_thread(kafka_bootstrap, topic_names, f"g-{uuid.uuid4()}", registry)
    reader = CommittedReader(kafka_bootstrap, topic_names.observations, topic_names.dlq)
    try:
        seen = reader.wait_for(events=12, dlq=1, timeout=90, settle=2.0)
    finally:
        stop.set()
        thread.join(15)
        reader.close()
    assert not thread.is_alive(), "ingest did not stop within 15 s"
    assert seen.events == 12 and len(seen.event_ids) == 12 and seen.invalid_batches == []
    assert seen.batches >= 3  # at most 4 MiB (ingest.batch_max_bytes) of raw events each
    [(_key, value, headers)] = seen.dlq
    assert headers["error.rule"] == "maxBytes" and headers["original.truncated"] == "true"
    assert int(headers["original.bytes"]) == len(near_limit)
    assert headers["original.sha256"] == hashlib.sha256(near_limit).hexdigest()
    assert value is not None and near_limit.startswith(value) and len(value) < len(near_limit)
    assert registry.get_sample_value("driftline_ingest_transactions_committed_total") >= 1


@pytest.mark.slow
def test_kill_9_mid_run_then_restart_loses_and_doubles_nothing(kafka_bootstrap: str, topic_names) -> None:
    n = 200_000
    producer_thread = threading.Thread(
        target=produce,
        args=(
            kafka_bootstrap,
            topic_names.features,
            ((f"m{i % 5}".encode(), feature_event(f"m{i % 5}", i)) for i in range(n)),
        ),
    )
    producer_thread.start()
    group = f"g-{uuid.uuid4()}"
    reader = CommittedReader(kafka_bootstrap, topic_names.observations, topic_names.dlq)
    first = ingest_process(kafka_bootstrap, topic_names.prefix, group)
    try:
        deadline = time.monotonic() + 60
        while reader.poll_for(0.2).events < n // 4 and time.monotonic() < deadline:
            pass
        assert 0 < reader.seen.events < n, "ingest should be mid-run when killed"
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        producer_thread.join(120)
        second = ingest_process(kafka_bootstrap, topic_names.prefix, group)
        try:
            seen = reader.wait_for(events=n, dlq=0, timeout=120, settle=3.0)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(15)
    finally:
        if first.poll() is None:
            first.kill()
        reader.close()
    assert seen.events == n
    assert len(seen.event_ids) == n
    assert seen.dlq == []


def test_sigterm_commits_and_exits_zero_within_10s(kafka_bootstrap: str, topic_names) -> None:
    group = f"g-{uuid.uuid4()}"
    process = ingest_process(kafka_bootstrap, topic_names.prefix, group)
    n = 20_000
    produce(kafka_bootstrap, topic_names.features, ((b"m1", feature_event("m1", i)) for i in range(n)))
    reader = CommittedReader(kafka_bootstrap, topic_names.observations, topic_names.dlq)
    try:
        reader.poll_for(1.0)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(12)
        elapsed = time.monotonic() - started
        stderr = process.stderr.read().decode() if process.stderr else ""
        assert code == 0, stderr[-2000:]
        assert elapsed <= 10.0
        restarted = ingest_process(kafka_bootstrap, topic_names.prefix, group)
        try:
            seen = reader.wait_for(events=n, dlq=0, timeout=60, settle=2.0)
        finally:
            restarted.send_signal(signal.SIGTERM)
            assert restarted.wait(12) == 0
    finally:
        if process.poll() is None:
            process.kill()
        reader.close()
    assert seen.events == n and len(seen.event_ids) == n


def test_events_from_kcat_are_accepted(kafka_bootstrap: str, topic_names) -> None:
    kcat = shutil.which("kcat")
    if kcat is None:
        if os.environ.get("CI") == "true":
            pytest.fail("kcat is not installed: apt-get install kcat (scripts/test installs it as root)")
        pytest.skip("kcat is not installed (apt-get install kcat)")
    lines = [
        '{"model_id": "edge-1", "event_id": "k1", "ts": 1767225600, "features": {"a": 1.5, "b": "x"}}',
        '{"model_id": "edge-1", "event_id": "k2", "ts": "2026-01-01T00:00:01Z", "features": {"a": null}}',
    ]
    payload = "".join(f"edge-1\t{line}\n" for line in lines)
    subprocess.run(
        [kcat, "-P", "-b", kafka_bootstrap, "-t", topic_names.features, "-K", "\t"],
        input=payload.encode(),
        check=True,
        timeout=30,
    )
    registry = CollectorRegistry()
    stop, thread = _run_ingest_thread(kafka_bootstrap, topic_names, f"g-{uuid.uuid4()}", registry)
    reader = CommittedReader(kafka_bootstrap, topic_names.observations, topic_names.dlq)
    try:
        seen = reader.wait_for(events=2, dlq=0, timeout=30, settle=1.0)
    finally:
        stop.set()
        thread.join(15)
        reader.close()
    assert sorted(seen.event_ids) == ["0:k1", "0:k2"]
    assert seen.dlq == []
