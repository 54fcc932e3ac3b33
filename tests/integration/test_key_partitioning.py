"""Every driftline producer puts a key in the partition Java's and aiokafka's (faust's) partitioner picks.

The stream writes ``driftline.labeled`` through aiokafka (murmur2); the CLI's ``models
register`` and the trainer write through librdkafka. With librdkafka's default partitioner
(CRC32) one model's rows were split over two partitions.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import Producer

from driftline.kafka.clients import producer_config, transactional_producer_config

pytestmark = pytest.mark.kafka

KEYS = [f"model-{i}" for i in range(24)] + ["churn", "fraud", "gradual"]


def _partitions_written(config: dict, topic: str, transactional: bool) -> dict[str, int]:
    producer = Producer(config)
    written: dict[str, int] = {}

    def on_delivery(err, msg) -> None:  # type: ignore[no-untyped-def]
        assert err is None, err
        written[msg.key().decode()] = msg.partition()

    if transactional:
        producer.init_transactions(30)
        producer.begin_transaction()
    for key in KEYS:
        producer.produce(topic, key=key.encode(), value=b"{}", on_delivery=on_delivery)
    if transactional:
        producer.commit_transaction(30)
    assert producer.flush(30) == 0
    return written


@pytest.mark.parametrize("transactional", [False, True])
def test_librdkafka_producers_partition_keys_like_aiokafka(
    kafka_bootstrap: str, topic_factory: Callable[..., str], transactional: bool
) -> None:
    topic = topic_factory(partitions=6)
    config = (
        transactional_producer_config(kafka_bootstrap, f"partitioning-{topic}")
        if transactional
        else producer_config(kafka_bootstrap)
    )
    written = _partitions_written(config, topic, transactional)
    partitioner = DefaultPartitioner()
    expected = {key: partitioner(key.encode(), list(range(6)), list(range(6))) for key in KEYS}
    assert written == expected
