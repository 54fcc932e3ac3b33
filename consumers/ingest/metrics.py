"""Prometheus metrics of the ingest process (own registry; children resolved once)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["IngestMetrics"]

_SIZE_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class IngestMetrics:
    """Counters and histograms; hot paths call ``inc(n)`` once per consumed batch."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages_in = Counter(
            "driftline_ingest_messages", "Raw messages consumed, by source topic.", ["topic"], registry=registry
        )
        self.valid = Counter(
            "driftline_ingest_valid_events",
            "Events that passed validation, by source topic.",
            ["topic"],
            registry=registry,
        )
        self.invalid = Counter(
            "driftline_ingest_invalid_events",
            "Messages sent to the DLQ, by source topic and the rule they broke.",
            ["topic", "reason"],
            registry=registry,
        )
        self.batches_out = Counter("driftline_ingest_batches", "Observation micro-batches produced.", registry=registry)
        self.batch_size = Histogram(
            "driftline_ingest_batch_size_events",
            "Events per observation micro-batch.",
            buckets=_SIZE_BUCKETS,
            registry=registry,
        )
        self.processing = Histogram(
            "driftline_ingest_processing_seconds",
            "Time to validate and pack one consumed batch of raw messages.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.commit = Histogram(
            "driftline_ingest_transaction_commit_seconds",
            "Time to commit one transaction.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.committed = Counter(
            "driftline_ingest_transactions_committed", "Transactions committed.", registry=registry
        )
        self.aborted = Counter(
            "driftline_ingest_transactions_aborted", "Transactions aborted (their input is re-read).", registry=registry
        )
        self.kafka_retries = Counter(
            "driftline_ingest_kafka_retries",
            "Kafka calls retried after a retriable error (broker or coordinator away).",
            registry=registry,
        )
        self._topic_children: dict[str, tuple[Counter, Counter]] = {}
        self._invalid_children: dict[tuple[str, str], Counter] = {}

    def count_topic(self, topic: str, messages: int, valid: int) -> None:
        children = self._topic_children.get(topic)
        if children is None:
            children = self._topic_children[topic] = (self.messages_in.labels(topic), self.valid.labels(topic))
        if messages:
            children[0].inc(messages)
        if valid:
            children[1].inc(valid)

    def count_invalid(self, topic: str, reason: str, n: int = 1) -> None:
        child = self._invalid_children.get((topic, reason))
        if child is None:
            child = self._invalid_children[(topic, reason)] = self.invalid.labels(topic, reason)
        child.inc(n)
