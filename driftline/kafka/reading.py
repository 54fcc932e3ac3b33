"""Reading a topic to its end: the partition watermarks and every committed record, in order.

Used wherever a process rebuilds state from a compacted or append-only topic (the trainer's
registry state, the CLI's view, registration outcomes) and by training-set reads.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from driftline.errors import KafkaAccessDenied, KafkaOperationFailed
from driftline.kafka.clients import KafkaTarget, as_client_config, read_committed_config
from driftline.kafka.failures import explain

__all__ = ["read_topic", "watermarks"]

_SETTLING = (
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._TRANSPORT,
    KafkaError._TIMED_OUT,
)


def watermarks(consumer: Consumer, topic: str, partition: int, timeout: float = 30.0) -> tuple[int, int]:
    """(low, end) of a partition, retrying while leadership settles (new topics, broker restarts).

    For a ``read_committed`` consumer ``end`` is the last stable offset.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10.0, cached=False)
        except KafkaException as exc:
            error = exc.args[0]
            if time.monotonic() > deadline or not (error.retriable() or error.code() in _SETTLING):
                raise KafkaOperationFailed(f"watermarks {topic}[{partition}]", error.name(), error.str()) from exc
            time.sleep(0.2)


def read_topic(bootstrap: KafkaTarget, topic: str, timeout: float = 60.0) -> list[tuple[bytes | None, bytes | None]]:
    """Every committed record of ``topic`` from the beginning to its current end, in order."""
    consumer = Consumer(
        read_committed_config(bootstrap, f"driftline-state-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True})
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10.0).topics[topic]
        if metadata.error is not None:  # e.g. no ACL: an empty read would pass for an empty topic
            check = explain(metadata.error.name(), metadata.error.str(), as_client_config(bootstrap).username)
            if check is not None:
                raise KafkaAccessDenied(f"read {topic}", metadata.error.name(), metadata.error.str(), check)
            raise KafkaOperationFailed(f"read {topic}", metadata.error.name(), metadata.error.str())
        partitions = sorted(metadata.partitions)
        ends = {p: watermarks(consumer, topic, p) for p in partitions}
        todo = {p for p, (low, high) in ends.items() if high > low}
        consumer.assign([TopicPartition(topic, p, -2) for p in partitions])
        records: list[tuple[bytes | None, bytes | None]] = []
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            for msg in consumer.consume(5000, timeout=0.2):
                err = msg.error()
                if err is not None and err.code() != KafkaError._PARTITION_EOF:
                    raise KafkaOperationFailed(f"read {topic}", err.name(), err.str())
                if err is None:
                    records.append((msg.key(), msg.value()))
                if msg.offset() >= ends[msg.partition()][1] - 1 or err is not None:
                    position = consumer.position([TopicPartition(topic, msg.partition())])[0].offset
                    if position >= ends[msg.partition()][1] or err is not None:
                        todo.discard(msg.partition())
        if todo:
            raise KafkaOperationFailed(f"read {topic}", "_TIMED_OUT", f"not at the end within {timeout} s")
        return records
    finally:
        consumer.close()
