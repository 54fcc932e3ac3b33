"""The stream worker on the real broker: live equals replay, and bad input never stops it."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from driftline.commands.ingest import ingest_topics
from driftline.consumers.ingest.metrics import IngestMetrics
from driftline.consumers.ingest.service import Ingest
from driftline.consumers.ingest.settings import IngestSettings
from driftline.kafka.dlq import parse_dlq_headers
from driftline.stream.drift.monitor import MonitorConfig
from driftline.stream.drift.windows import WindowSettings
from driftline.stream.replay.engine import replay_lines
from driftline.testing.kafka import free_ports
from driftline.testing.metrics import metric_value, scrape
from driftline.testing.synthetic import stationary_events, to_jsonl, with_mean_shift

from .stream_support import (
    WINDOW_S,
    closing_event,
    feature_events,
    observation_messages,
    stream_process,
    wait_for_members,
    workers,
)

pytestmark = pytest.mark.kafka

CONFIG = MonitorConfig(windows=WindowSettings(size_s=WINDOW_S, allowed_lateness_s=1.0))


def _ingest_thread(bootstrap: str, names: object) -> tuple[threading.Event, threading.Thread]:
    group = f"g-{uuid.uuid4()}"
    settings = IngestSettings(group_id=group, transactional_id=f"{group}-txn", batch_max_events=500, batch_max_ms=100)
    ingest = Ingest(bootstrap, ingest_topics(names), settings, IngestMetrics(CollectorRegistry()))
    stop = threading.Event()
    thread = threading.Thread(target=ingest.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def _wait_records(consume_all, topic: str, predicate, timeout: float) -> list:
    deadline = time.monotonic() + timeout
    records: list = []
    while time.monotonic() < deadline:
        records = consume_all(topic, timeout=30)
        if predicate(records):
            return records
        time.sleep(1)
    return records


def test_live_ingest_and_stream_make_the_same_decisions_as_replay(
    kafka_bootstrap, topic_names, produce, consume_all, tmp_path: Path
) -> None:
    drifting = with_mean_shift(12_000, change_at=6_000, feature="x3", shift_sigma=1.0, model_id="shifty")
    calm = stationary_events(12_000, seed=7, model_id="calm")
    events = [e for pair in zip(drifting, calm) for e in pair]
    lines = to_jsonl(events)
    decisions, windows, _ = replay_lines(lines.splitlines(), CONFIG)
    expected = sorted(d.id for d in decisions)
    assert any(i.startswith("shifty:") for i in expected), "the scenario must drift"

    app_id = f"stream-{uuid.uuid4().hex[:8]}"
    worker = stream_process(kafka_bootstrap, topic_names.prefix, app_id, tmp_path / "w", log=tmp_path / "w.log")
    stop, thread = _ingest_thread(kafka_bootstrap, topic_names)
    try:
        with workers(worker):
            wait_for_members(kafka_bootstrap, app_id, 1)
            produce(topic_names.features, [(e["model_id"].encode(), orjson.dumps(e)) for e in events])
            records = _wait_records(consume_all, topic_names.windows, lambda r: len(r) >= len(windows), 90)
            assert len(records) >= len(windows), (tmp_path / "w.log").read_text()[-3000:]
            control = consume_all(topic_names.control, timeout=30)
    finally:
        stop.set()
        thread.join(15)
    live = sorted({orjson.loads(r.value)["id"] for r in control})
    assert live == expected
    assert all(r.key == orjson.loads(r.value)["model_id"].encode() for r in control)


def test_invalid_batches_and_updates_go_to_the_dlq_and_the_worker_keeps_going(
    kafka_bootstrap, topic_names, produce, consume_all, tmp_path: Path
) -> None:
    produce(topic_names.model_updates, [(b"m1", b"{not json")])
    (port,) = free_ports(1)
    app_id = f"stream-{uuid.uuid4().hex[:8]}"
    worker = stream_process(
        kafka_bootstrap, topic_names.prefix, app_id, tmp_path / "w", metrics_port=port, log=tmp_path / "w.log"
    )
    with workers(worker):
        wait_for_members(kafka_bootstrap, app_id, 1)
        bad = [(b"m1", b'{"v": 1, "model_id": "m1"}', [("origin", b"rogue")]), (b"m1", b"\xff\xfe")]
        produce(topic_names.observations, bad)
        produce(topic_names.observations, observation_messages(feature_events("m1", 3000) + [closing_event("m1")]))
        windows = _wait_records(consume_all, topic_names.windows, lambda r: len(r) >= 3, 60)
        assert sum(orjson.loads(r.value)["window"]["n_events"] for r in windows) == 3000
        dlq = consume_all(topic_names.dlq, min_count=3, timeout=30)
        text = scrape(port)
        assert worker.poll() is None
    by_value = {r.value: parse_dlq_headers(list(r.headers)) for r in dlq}
    assert by_value[b'{"v": 1, "model_id": "m1"}']["source.topic"] == topic_names.observations
    assert by_value[b'{"v": 1, "model_id": "m1"}']["error.rule"] == "required"
    assert dict(next(r for r in dlq if r.value.startswith(b'{"v"')).headers)["origin"] == b"rogue"
    assert by_value[b"\xff\xfe"]["source.offset"] == "1"
    assert by_value[b"{not json"]["source.topic"] == topic_names.model_updates
    assert metric_value(text, "driftline_stream_invalid_total", source="observations") == 2
    assert metric_value(text, "driftline_stream_model_updates_total", outcome="invalid") == 1
    assert metric_value(text, "driftline_stream_batches_total", outcome="applied") >= 7
    assert metric_value(text, "driftline_stream_window_events_total", model_id="m1") == 3000
    assert metric_value(text, "driftline_faust_messages_received_total") > 0
