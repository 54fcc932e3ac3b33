"""Helpers for the ingest tests: raw events, ingest as a process, what ingest committed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from confluent_kafka import Consumer

from driftline.kafka.clients import read_committed_config
from driftline.schemas.batch_wire import decode_batch
from driftline.schemas.events import InvalidEvent
from driftline.testing.events import feature_event
from driftline.testing.kafka import produce_records as produce

__all__ = ["Committed", "CommittedReader", "feature_event", "ingest_process", "produce"]


@dataclass
class Committed:
    """What a read_committed reader sees on the observation and DLQ topics."""

    event_ids: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    invalid_batches: list[InvalidEvent] = field(default_factory=list)
    dlq: list[tuple[bytes | None, bytes | None, dict[str, str]]] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(self.event_ids.values())


class CommittedReader:
    """Reads observations and DLQ from the beginning with ``isolation.level=read_committed``."""

    def __init__(self, bootstrap: str, observations: str, dlq: str) -> None:
        self.consumer = Consumer(read_committed_config(bootstrap, f"reader-{uuid.uuid4()}"))
        self.consumer.subscribe([observations, dlq])
        self.observations = observations
        self.seen = Committed()

    def poll_for(self, seconds: float) -> Committed:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(1000, timeout=0.2):
                if msg.error():
                    continue
                self._record(msg)
        return self.seen

    def wait_for(self, events: int, dlq: int, timeout: float, settle: float = 1.0) -> Committed:
        """Read until the expected counts are reached (then ``settle`` more seconds) or ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.poll_for(0.5)
            if self.seen.events >= events and len(self.seen.dlq) >= dlq:
                return self.poll_for(settle)
        return self.seen

    def _record(self, msg: object) -> None:
        from driftline.kafka.dlq import parse_dlq_headers

        if msg.topic() == self.observations:  # type: ignore[attr-defined]
            batch = decode_batch(msg.value())  # type: ignore[attr-defined]
            if isinstance(batch, InvalidEvent):
                self.seen.invalid_batches.append(batch)
                return
            self.seen.batches += 1
            self.seen.event_ids.update(f"{k}:{e}" for k, e in zip(batch.kind.tolist(), batch.event_id))
        else:
            headers = parse_dlq_headers(msg.headers())  # type: ignore[attr-defined]
            self.seen.dlq.append((msg.key(), msg.value(), headers))  # type: ignore[attr-defined]

    def close(self) -> None:
        self.consumer.close()


def ingest_process(bootstrap: str, prefix: str, group: str, *extra: str) -> subprocess.Popen[bytes]:
    """``driftline ingest`` as a real OS process, with topics under ``prefix``."""
    env = dict(
        os.environ,
        DRIFTLINE_TOPICS_PREFIX=prefix,
        DRIFTLINE_INGEST_GROUP_ID=group,
        DRIFTLINE_INGEST_TRANSACTIONAL_ID=f"{group}-txn",
        DRIFTLINE_INGEST_BATCH_MAX_MS="100",
    )
    cmd = [
        sys.executable,
        "-m",
        "driftline.cli",
        "ingest",
        "--bootstrap-servers",
        bootstrap,
        "--metrics-port",
        "0",
        *extra,
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
