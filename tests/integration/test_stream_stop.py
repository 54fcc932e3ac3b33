"""SIGTERM stops a stream worker cleanly and promptly, mid-run; a restart loses nothing."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from .stream_support import (
    closing_event,
    feature_events,
    observation_messages,
    stream_process,
    wait_for_members,
    wait_for_window_tally,
    workers,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

MODELS = ["m0", "m1", "m2"]
EVENTS = 4000
STOP_WITHIN_S = 15.0


def test_sigterm_mid_run_exits_zero_promptly_and_a_restart_counts_every_event(
    kafka_bootstrap, topic_names, produce, consume_all, tmp_path: Path
) -> None:
    messages = observation_messages(
        [e for i in range(0, EVENTS, 500) for m in MODELS for e in feature_events(m, 500, start=i)], batch_size=250
    )

    def feed() -> None:
        for i in range(0, len(messages), 3):
            produce(topic_names.observations, messages[i : i + 3])
            time.sleep(0.3)

    feeder = threading.Thread(target=feed, daemon=True)
    app_id = f"stream-{uuid.uuid4().hex[:8]}"
    first = stream_process(kafka_bootstrap, topic_names.prefix, app_id, tmp_path / "w", log=tmp_path / "w1.log")
    with workers(first) as running:
        wait_for_members(kafka_bootstrap, app_id, 1)
        feeder.start()
        time.sleep(1.5)
        assert feeder.is_alive(), "the stop must happen mid-run"
        started = time.monotonic()
        first.send_signal(signal.SIGTERM)
        try:
            code = first.wait(STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"stream worker still running {STOP_WITHIN_S} s after SIGTERM:\n"
                + (tmp_path / "w1.log").read_text()[-3000:]
            )
        took = time.monotonic() - started
        assert code == 0, (tmp_path / "w1.log").read_text()[-3000:]
        second = stream_process(kafka_bootstrap, topic_names.prefix, app_id, tmp_path / "w", log=tmp_path / "w2.log")
        running.append(second)
        feeder.join(60)
        produce(topic_names.observations, observation_messages([closing_event(m) for m in MODELS]))
        per_model, conflicts = wait_for_window_tally(
            consume_all, topic_names.windows, {m: EVENTS for m in MODELS}, timeout=120
        )
    assert conflicts == []
    assert per_model == {m: EVENTS for m in MODELS}
    print(f"stopped {took:.1f} s after SIGTERM")
