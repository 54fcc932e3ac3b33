"""confluent-kafka client configurations for driftline's exactly-once stages.

Ingest and trainer read with ``read_committed`` and never auto-commit: their offsets go
into the producer's transaction (``send_offsets_to_transaction``), so the outputs and the
progress they depend on become visible together or not at all.

``with_security`` puts the librdkafka properties of ``[kafka]``'s security keys
(``driftline.kafka.security.librdkafka_properties``) on any configuration built here;
the factories themselves are unchanged, so a client given none stays PLAINTEXT.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "FETCH_TUNING",
    "KEY_PARTITIONER",
    "producer_config",
    "read_committed_config",
    "transactional_consumer_config",
    "transactional_producer_config",
    "with_security",
]

KEY_PARTITIONER = "murmur2_random"
"""The Java client's partitioner (and aiokafka's, so faust's): one key lands in one partition
whichever client wrote it. librdkafka's default (``consistent_random``, CRC32) put the rows
``models register`` wrote to ``driftline.labeled`` in another partition than the stream's rows
of the same model, so training-set reads scanned both and per-key order across writers broke."""

FETCH_TUNING: dict[str, Any] = {
    "queued.min.messages": 200000,
    "max.partition.fetch.bytes": 10 * 1024 * 1024,
}
"""Large fetches and a deep prefetch queue: with librdkafka's defaults a consume loop of
small events tops out far below what the broker serves (bench/ingest_throughput.py)."""


def transactional_consumer_config(bootstrap: str, group_id: str, **overrides: Any) -> dict[str, Any]:
    """A read_committed consumer whose offsets are committed only through a producer transaction."""
    tuned: dict[str, Any] = {
        "enable.auto.offset.store": False,
        "partition.assignment.strategy": "cooperative-sticky",
        "fetch.wait.max.ms": 100,
        **FETCH_TUNING,
    }
    return read_committed_config(bootstrap, group_id, **{**tuned, **overrides})


def producer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """Every librdkafka producer's base: the bootstrap and the key partitioner Java and faust use."""
    return {"bootstrap.servers": bootstrap, "partitioner": KEY_PARTITIONER, **overrides}


def transactional_producer_config(bootstrap: str, transactional_id: str, **overrides: Any) -> dict[str, Any]:
    """An idempotent producer with a stable ``transactional.id`` (fences zombie instances)."""
    config: dict[str, Any] = {
        **producer_config(bootstrap),
        "transactional.id": transactional_id,
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "lz4",
        "transaction.timeout.ms": 60000,
        "message.max.bytes": 8 * 1024 * 1024,
    }
    config.update(overrides)
    return config


def read_committed_config(bootstrap: str, group_id: str, **overrides: Any) -> dict[str, Any]:
    """A plain reader that sees only committed transactional output (tests, demo, CLI)."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
    }
    config.update(overrides)
    return config


def with_security(config: Mapping[str, Any], security: Mapping[str, str]) -> dict[str, Any]:
    """``config`` with the security properties on top (change those in ``[kafka.librdkafka]``, not here).

    On top, not underneath: a client must never connect with other credentials or a
    weaker protocol than ``[kafka]`` says because a stage's own defaults said otherwise.
    """
    return {**config, **security}
