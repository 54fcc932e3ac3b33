"""Reading training sets from ``driftline.labeled``: offset ranges chosen backwards from the end.

Ranges are chosen by reading each partition *backwards* in growing chunks from its end
(the last stable offset: reads are ``read_committed``) until the policy is satisfied:
``last_n`` — at least ``max_rows`` of the model's rows; ``since_drift`` — reached rows
older than the drift's start (``min_ts``), still capped at ``max_rows`` (across
partitions: ``newest_overall``). Records are keyed by ``model_id``, so other models'
records are skipped without being decoded. The selection rule itself is pure:
``driftline.consumers.registry.training_set``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition

from driftline.consumers.registry.training_set import Located, TrainingSet, finish_training_set, newest_overall
from driftline.errors import KafkaOperationFailed
from driftline.kafka.clients import KafkaTarget, read_committed_config
from driftline.kafka.reading import watermarks
from driftline.schemas.registry import OffsetRange, TrainingLineage

__all__ = ["LabeledReader", "PostDriftCount", "build_training_set", "rebuild", "training_set_from_ranges"]


class LabeledReader:
    """Reads offset ranges of one topic with ``read_committed``, by assignment (no group commits)."""

    def __init__(self, bootstrap: KafkaTarget, topic: str, timeout: float = 60.0) -> None:
        self.topic = topic
        self.timeout = timeout
        self._consumer = Consumer(
            read_committed_config(
                bootstrap,
                f"driftline-training-set-{uuid.uuid4().hex[:8]}",
                **{"enable.partition.eof": True, "fetch.max.bytes": 64 * 1024 * 1024},
            )
        )

    def close(self) -> None:
        self._consumer.close()

    def bounds(self) -> dict[int, tuple[int, int]]:
        """Partition → (low, end); ``end`` is the last stable offset for a read_committed client."""
        meta = self._consumer.list_topics(self.topic, timeout=10.0).topics[self.topic]
        if meta.error is not None:
            raise KafkaOperationFailed(f"metadata {self.topic}", meta.error.name(), meta.error.str())
        return {p: watermarks(self._consumer, self.topic, p) for p in sorted(meta.partitions)}

    def read(self, partition: int, start: int, end: int, model_id: str | None) -> list[Located]:
        """Decoded records at offsets ``[start, end)`` (only those keyed ``model_id``, if given)."""
        out: list[Located] = []
        if start >= end:
            return out
        key = model_id.encode() if model_id is not None else None
        self._consumer.assign([TopicPartition(self.topic, partition, start)])
        deadline = time.monotonic() + self.timeout
        try:
            while time.monotonic() < deadline:
                for msg in self._consumer.consume(10000, timeout=0.5):
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            raise KafkaOperationFailed(f"read {self.topic}", err.name(), err.str())
                        if msg.offset() >= end:
                            return out
                        continue
                    offset = msg.offset()
                    if offset >= end:
                        return out
                    if key is None or msg.key() == key:
                        out.append((partition, offset, orjson.loads(msg.value())))
                    if offset >= end - 1:
                        return out
                position = self._consumer.position([TopicPartition(self.topic, partition)])[0].offset
                if position >= end:
                    return out
        finally:
            self._consumer.unassign()
        raise KafkaOperationFailed(
            f"read {self.topic}[{partition}] {start}..{end}",
            "_TIMED_OUT",
            f"offset range not readable within {self.timeout} s",
        )

    def scan_back(
        self, partition: int, low: int, end: int, model_id: str, max_rows: int, min_ts: float | None, chunk: int
    ) -> tuple[int, list[Located]]:
        """Read backwards from ``end`` until enough model rows (or rows older than ``min_ts``)."""
        found: list[Located] = []
        start = end
        while start > low:
            new_start = max(low, start - chunk)
            found = self.read(partition, new_start, start, model_id) + found
            start, chunk = new_start, chunk * 2
            if len(found) >= max_rows:
                break
            if min_ts is not None and found and float(found[0][2].get("ts", 0.0)) < min_ts:
                break
        if len(found) > max_rows:
            found = found[-max_rows:]
            start = found[0][1]
        if min_ts is not None:
            found = [item for item in found if float(item[2].get("ts", 0.0)) >= min_ts]
        return start, found


def build_training_set(
    reader: LabeledReader,
    model_id: str,
    *,
    max_rows: int,
    policy: str = "last_n",
    min_ts: float | None = None,
    chunk: int = 20_000,
) -> TrainingSet:
    """Choose the ranges by ``policy`` ("last_n" | "since_drift") and select the rows."""
    scanned = {}
    for partition, (low, end) in reader.bounds().items():
        start, found = reader.scan_back(
            partition, low, end, model_id, max_rows, min_ts if policy == "since_drift" else None, chunk
        )
        if found:
            scanned[partition] = (start, end, found)
    ranges, located = [], []
    for partition, (start, end, found) in newest_overall(scanned, max_rows).items():
        ranges.append(OffsetRange(partition, start, end))
        located.extend(found)
    return finish_training_set(
        reader.topic, model_id, ranges, located, policy, min_ts if policy == "since_drift" else None
    )


class PostDriftCount:
    """How many of a model's labeled rows have ``ts >= drift_start``, reading each offset once.

    A pending retrain waits for rows after its drift start and is re-checked every few
    seconds; a follow-up may wait for tens of thousands of rows. The first count reads
    backwards from the end (``scan_back``) until it passes the drift start or has ``need``
    rows; every later count reads only the offsets added since. Re-sent duplicates of a row
    (the stream is at-least-once) are counted again: the count is an upper bound, and the
    training set itself is de-duplicated.
    """

    def __init__(self, reader: LabeledReader, model_id: str, drift_start: float) -> None:
        self.reader = reader
        self.model_id = model_id
        self.drift_start = drift_start
        self.ends: dict[int, int] | None = None
        self.count = 0

    def update(self, need: int) -> int:
        """The count now (exact up to ``need`` on the first call, then growing)."""
        bounds = self.reader.bounds()
        if self.ends is None:
            for partition, (low, end) in bounds.items():
                _, found = self.reader.scan_back(partition, low, end, self.model_id, need, self.drift_start, 20_000)
                self.count += len(found)
            self.ends = {p: end for p, (_, end) in bounds.items()}
            return self.count
        for partition, (low, end) in bounds.items():
            start = max(self.ends.get(partition, low), low)
            if end > start:
                rows = self.reader.read(partition, start, end, self.model_id)
                self.count += sum(1 for _, _, row in rows if float(row.get("ts", 0.0)) >= self.drift_start)
            self.ends[partition] = end
        return self.count


def training_set_from_ranges(
    reader: LabeledReader,
    model_id: str,
    ranges: Sequence[OffsetRange],
    policy: str = "explicit",
    min_ts: float | None = None,
) -> TrainingSet:
    """The training set of explicit ``ranges`` (``driftline models register``, ``rebuild``)."""
    located = [item for r in ranges for item in reader.read(r.partition, r.start, r.end, model_id)]
    return finish_training_set(reader.topic, model_id, list(ranges), located, policy, min_ts)


def rebuild(bootstrap: str, lineage: TrainingLineage) -> TrainingSet:
    """Re-read a version's recorded ranges; ``result.lineage.sha256 == lineage.sha256`` proves it."""
    reader = LabeledReader(bootstrap, lineage.topic)
    try:
        return training_set_from_ranges(reader, lineage.model_id, lineage.ranges, lineage.policy, lineage.min_ts)
    finally:
        reader.close()
