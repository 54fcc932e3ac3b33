"""The stream worker reads only committed ingest transactions.

Ingest writes observation batches in Kafka transactions. When one is aborted (ingest
killed or fenced mid-batch), ingest writes the same events again in a later transaction;
a worker that read the aborted copy too would count those events twice.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from driftline.kafka.clients import transactional_producer_config
from driftline.testing.kafka import free_ports
from driftline.testing.metrics import metric_value, scrape

from .stream_support import (
    closing_event,
    feature_events,
    observation_messages,
    stream_process,
    wait_for_members,
    wait_for_window_tally,
    window_tally,
    workers,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

EVENTS = 2000


def _in_transaction(producer: Producer, topic: str, messages, commit: bool) -> None:
    producer.begin_transaction()
    for key, value in messages:
        producer.produce(topic, key=key, value=value)
    producer.flush(30)
    (producer.commit_transaction if commit else producer.abort_transaction)(30)


def test_aborted_transactions_are_never_counted(kafka_bootstrap, topic_names, consume_all, tmp_path: Path) -> None:
    messages = observation_messages(feature_events("m0", EVENTS), batch_size=250)
    producer = Producer(transactional_producer_config(kafka_bootstrap, f"test-ingest-{uuid.uuid4().hex[:8]}"))
    producer.init_transactions(30)
    _in_transaction(producer, topic_names.observations, messages[:4], commit=False)  # 1000 events, aborted
    _in_transaction(producer, topic_names.observations, messages, commit=True)
    _in_transaction(producer, topic_names.observations, observation_messages([closing_event("m0")]), commit=True)

    app_id = f"stream-{uuid.uuid4().hex[:8]}"
    worker = stream_process(kafka_bootstrap, topic_names.prefix, app_id, tmp_path / "w", log=tmp_path / "w.log")
    with workers(worker):
        wait_for_members(kafka_bootstrap, app_id, 1)
        wait_for_window_tally(consume_all, topic_names.windows, {"m0": EVENTS}, timeout=90)
        time.sleep(2)  # a worker reading the aborted copy would close more windows right after
        per_model, _, conflicts = window_tally(consume_all(topic_names.windows, timeout=20))
    assert conflicts == []
    assert per_model == {"m0": EVENTS}, (tmp_path / "w.log").read_text()[-2000:]


def test_an_aborted_transaction_at_the_end_of_a_partition_is_not_a_stall(
    kafka_bootstrap, topic_names, consume_all, tmp_path: Path
) -> None:
    """Aborted records and their marker after the last committed record are never delivered
    (read_committed): the watchdog may re-seek once to make sure, not every period."""
    messages = observation_messages(feature_events("m0", EVENTS), batch_size=250)
    producer = Producer(transactional_producer_config(kafka_bootstrap, f"test-ingest-{uuid.uuid4().hex[:8]}"))
    producer.init_transactions(30)
    _in_transaction(producer, topic_names.observations, messages, commit=True)
    _in_transaction(producer, topic_names.observations, observation_messages([closing_event("m0")]), commit=True)
    _in_transaction(producer, topic_names.observations, messages[:4], commit=False)  # the partition's tail

    app_id = f"stream-{uuid.uuid4().hex[:8]}"
    (port,) = free_ports(1)
    stall_after_s = 2.0  # the watchdog checks every second
    worker = stream_process(
        kafka_bootstrap,
        topic_names.prefix,
        app_id,
        tmp_path / "w",
        metrics_port=port,
        log=tmp_path / "w.log",
        extra_env={"DRIFTLINE_STREAM_STALL_AFTER_S": str(stall_after_s)},
    )
    with workers(worker):
        wait_for_members(kafka_bootstrap, app_id, 1)
        wait_for_window_tally(consume_all, topic_names.windows, {"m0": EVENTS}, timeout=90)
        time.sleep(6 * stall_after_s)  # a watchdog fooled by the tail re-seeks every period
        stalls = metric_value(scrape(port), "driftline_stream_partition_stalls_total")
    assert stalls <= 1, (tmp_path / "w.log").read_text()[-3000:]
