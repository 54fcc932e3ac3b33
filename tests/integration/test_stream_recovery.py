"""Stream workers on the real broker: kill -9 never loses or double-counts an event.

Observation batches are produced directly (as ingest writes them) in a background
thread, so the run is in full swing when a worker is killed. At the end a far-future
event per model closes every open window; the distinct closed windows' event counts must
then add up to exactly the events produced per model, and a window re-sent after the
crash (same id) must carry the same count.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from .stream_support import (
    closing_event,
    feature_events,
    kill_9,
    observation_messages,
    stream_process,
    wait_for_members,
    wait_for_window_tally,
    workers,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

MODELS = [f"m{i}" for i in range(6)]
EVENTS = 8000  # per model: 8 windows of 1000 events


def _messages() -> list[tuple[bytes, bytes]]:
    events = [e for i in range(0, EVENTS, 500) for m in MODELS for e in feature_events(m, 500, start=i)]
    return observation_messages(events, batch_size=250)


def _producer(produce, topic: str, messages, pace_s: float) -> threading.Thread:
    def run() -> None:
        for i in range(0, len(messages), 4):
            produce(topic, messages[i : i + 4])
            time.sleep(pace_s)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _windows_seen(consume_all, topic: str) -> int:
    return len(consume_all(topic, timeout=30))


def _finish(produce, consume_all, names, producer: threading.Thread) -> None:
    producer.join(120)
    produce(names.observations, observation_messages([closing_event(m) for m in MODELS]))
    per_model, conflicts = wait_for_window_tally(consume_all, names.windows, {m: EVENTS for m in MODELS}, timeout=120)
    assert conflicts == [], f"windows re-sent with different counts: {conflicts[:5]}"
    assert per_model == {m: EVENTS for m in MODELS}


def test_two_workers_one_killed_the_other_takes_over(
    kafka_bootstrap, topic_names, produce, consume_all, tmp_path: Path
) -> None:
    app_id = f"stream-{uuid.uuid4().hex[:8]}"
    a = stream_process(kafka_bootstrap, topic_names.prefix, app_id, tmp_path / "a", log=tmp_path / "a.log")
    b = stream_process(kafka_bootstrap, topic_names.prefix, app_id, tmp_path / "b", log=tmp_path / "b.log")
    with workers(a, b):
        wait_for_members(kafka_bootstrap, app_id, 2)
        messages = _messages()
        producer = _producer(produce, topic_names.observations, messages, pace_s=0.15)
        deadline = time.monotonic() + 60
        while _windows_seen(consume_all, topic_names.windows) < 2 * len(MODELS) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert producer.is_alive(), "the kill must happen mid-run"
        kill_9(a)
        _finish(produce, consume_all, topic_names, producer)
        assert b.poll() is None, (tmp_path / "b.log").read_text()[-3000:]


def test_single_worker_killed_and_restarted(kafka_bootstrap, topic_names, produce, consume_all, tmp_path: Path) -> None:
    app_id = f"stream-{uuid.uuid4().hex[:8]}"
    first = stream_process(kafka_bootstrap, topic_names.prefix, app_id, tmp_path / "w", log=tmp_path / "w1.log")
    with workers(first) as running:
        wait_for_members(kafka_bootstrap, app_id, 1)
        producer = _producer(produce, topic_names.observations, _messages(), pace_s=0.15)
        deadline = time.monotonic() + 60
        while _windows_seen(consume_all, topic_names.windows) < 2 * len(MODELS) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert producer.is_alive(), "the kill must happen mid-run"
        kill_9(first)
        second = stream_process(kafka_bootstrap, topic_names.prefix, app_id, tmp_path / "w", log=tmp_path / "w2.log")
        running.append(second)
        _finish(produce, consume_all, topic_names, producer)
