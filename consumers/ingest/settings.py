"""``[ingest]``: micro-batch limits, consumer group, transactional id and metrics port."""

from __future__ import annotations

import dataclasses

from driftline.errors import ConfigError
from driftline.kafka.topics import MAX_MESSAGE_BYTES

__all__ = ["IngestSettings"]


def _require(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError(key, problem)


@dataclasses.dataclass(frozen=True)
class IngestSettings:
    """The ingest process: micro-batch limits, consumer group, metrics port."""

    group_id: str = "driftline-ingest"
    transactional_id: str = "driftline-ingest-0"
    batch_max_events: int = 1000
    batch_max_ms: int = 200
    batch_max_bytes: int = 4 * 1024 * 1024
    """A batch is cut before its events' raw bytes pass this, and a single event larger than
    it goes to the DLQ (``too_large``): half the topics' and producer's 8 MiB record limit, so
    a batch, its encoding overhead and the DLQ copy of a near-limit record always fit."""
    consume_batch: int = 2000
    metrics_port: int = 9464
    max_future_s: float = 3600.0
    """An event whose ``ts`` is further ahead of this host's clock is rejected (``future_timestamp``):
    one far-future event would move its model's watermark for good. One hour, as Kafka's own
    ``message.timestamp.after.max.ms`` default."""

    def __post_init__(self) -> None:
        _require(self.max_future_s > 0, "ingest.max_future_s", "must be > 0 seconds")
        _require(self.batch_max_events >= 1, "ingest.batch_max_events", "must be >= 1")
        _require(self.batch_max_ms >= 1, "ingest.batch_max_ms", "must be >= 1")
        _require(
            64 * 1024 <= self.batch_max_bytes <= MAX_MESSAGE_BYTES // 2,
            "ingest.batch_max_bytes",
            f"must be 65536 to {MAX_MESSAGE_BYTES // 2} (half the {MAX_MESSAGE_BYTES}-byte record limit)",
        )
        _require(self.consume_batch >= 1, "ingest.consume_batch", "must be >= 1")
        _require(0 <= self.metrics_port <= 65535, "ingest.metrics_port", "must be 0-65535")
        _require(bool(self.group_id), "ingest.group_id", "must not be empty")
        _require(bool(self.transactional_id), "ingest.transactional_id", "must not be empty")
