"""Training sets as exact offset ranges of ``driftline.labeled``, with a content hash.

Why offsets: ``driftline.labeled`` is kept forever and only appended to, so
``(topic, partition, [start, end))`` names the same records forever; with the selection
rule (``select_rows``) and the SHA-256 of the canonical rows, anyone can rebuild the
training set of any version and prove it is the same (``rebuild``).

Ranges are chosen by reading each partition *backwards* in growing chunks from its end
(the last stable offset: reads are ``read_committed``) until the policy is satisfied:
``last_n`` — at least ``max_rows`` of the model's rows; ``since_drift`` — reached rows
older than the drift's start (``min_ts``), still capped at ``max_rows``. Records are
keyed by ``model_id``, so other models' records are skipped without being decoded.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition

from driftline.errors import KafkaOperationFailed
from driftline.kafka.clients import read_committed_config
from driftline.schemas.registry import OffsetRange, TrainingLineage

from driftline.consumers.registry_state import watermarks

__all__ = [
    "TrainingSet",
    "select_rows",
    "rows_sha256",
    "LabeledReader",
    "build_training_set",
    "newest_overall",
    "PostDriftCount",
    "training_set_from_ranges",
    "rebuild",
]

#: One model row as read: (partition, offset, decoded JoinedRow dict).
Located = tuple[int, int, dict[str, Any]]


@dataclass(frozen=True)
class TrainingSet:
    """The selected rows (time-ordered) and the lineage that reproduces them."""

    rows: list[dict[str, Any]]
    lineage: TrainingLineage


def select_rows(located: Iterable[Located], model_id: str, min_ts: float | None = None) -> list[dict[str, Any]]:
    """The selection rule (pure): the model's labeled rows with features, ``ts >= min_ts``,
    first occurrence of each ``event_id`` by (partition, offset), ordered by ``(ts, event_id)``.

    Examples
    --------
    >>> r = lambda e, ts: {"model_id": "m", "event_id": e, "ts": ts, "label": 1, "features": {"x": 1}}
    >>> [x["event_id"] for x in select_rows([(0, 5, r("b", 2.0)), (0, 3, r("a", 3.0)), (0, 9, r("b", 2.0))], "m")]
    ['b', 'a']
    """
    seen: set[str] = set()
    rows = []
    for _p, _o, row in sorted(located, key=lambda item: (item[0], item[1])):
        if row.get("model_id") != model_id or row.get("label") is None or not row.get("features"):
            continue
        if min_ts is not None and float(row["ts"]) < min_ts:
            continue
        if row["event_id"] in seen:
            continue
        seen.add(row["event_id"])
        rows.append(row)
    rows.sort(key=lambda row: (float(row["ts"]), str(row["event_id"])))
    return rows


def rows_sha256(rows: Sequence[dict[str, Any]]) -> str:
    """SHA-256 of the rows as canonical JSON lines (orjson, sorted keys, ``\\n``-terminated)."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(orjson.dumps(row, option=orjson.OPT_SORT_KEYS))
        digest.update(b"\n")
    return digest.hexdigest()


class LabeledReader:
    """Reads offset ranges of one topic with ``read_committed``, by assignment (no group commits)."""

    def __init__(self, bootstrap: str, topic: str, timeout: float = 60.0) -> None:
        self.topic = topic
        self.timeout = timeout
        self._consumer = Consumer(read_committed_config(
            bootstrap, f"driftline-training-set-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True,
                                                                         "fetch.max.bytes": 64 * 1024 * 1024}))

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
        raise KafkaOperationFailed(f"read {self.topic}[{partition}] {start}..{end}", "_TIMED_OUT",
                                   f"offset range not readable within {self.timeout} s")

    def scan_back(self, partition: int, low: int, end: int, model_id: str, max_rows: int,
                  min_ts: float | None, chunk: int) -> tuple[int, list[Located]]:
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


def build_training_set(reader: LabeledReader, model_id: str, *, max_rows: int, policy: str = "last_n",
                       min_ts: float | None = None, chunk: int = 20_000) -> TrainingSet:
    """Choose the ranges by ``policy`` ("last_n" | "since_drift") and select the rows."""
    scanned = {}
    for partition, (low, end) in reader.bounds().items():
        start, found = reader.scan_back(partition, low, end, model_id, max_rows,
                                        min_ts if policy == "since_drift" else None, chunk)
        if found:
            scanned[partition] = (start, end, found)
    ranges, located = [], []
    for partition, (start, end, found) in newest_overall(scanned, max_rows).items():
        ranges.append(OffsetRange(partition, start, end))
        located.extend(found)
    return _finish(reader.topic, model_id, ranges, located, policy, min_ts if policy == "since_drift" else None)


def newest_overall(scanned: dict[int, tuple[int, int, list[Located]]], max_rows: int
                   ) -> dict[int, tuple[int, int, list[Located]]]:
    """Cut each partition's ``(start, end, rows)`` so that about ``max_rows`` rows are kept overall.

    Each partition was scanned for ``max_rows`` rows of its own; when a model's rows are in
    several partitions, only the newest ``max_rows`` by ``ts`` across all of them are wanted.
    A partition keeps its rows from the first one at or after that cut-off time, so its range
    stays a contiguous ``[start, end)`` that ``rebuild`` re-reads exactly.

    Examples
    --------
    >>> row = lambda ts: {"ts": ts}
    >>> cut = newest_overall({0: (0, 3, [(0, 0, row(1.0)), (0, 1, row(3.0)), (0, 2, row(5.0))]),
    ...                       1: (0, 2, [(1, 0, row(2.0)), (1, 1, row(4.0))])}, 3)
    >>> {p: (start, end, len(rows)) for p, (start, end, rows) in cut.items()}
    {0: (1, 3, 2), 1: (1, 2, 1)}
    """
    stamps = sorted((float(item[2].get("ts", 0.0)) for _, _, rows in scanned.values() for item in rows), reverse=True)
    if len(stamps) <= max_rows:
        return scanned
    cutoff = stamps[max_rows - 1]
    kept = {}
    for partition, (_start, end, rows) in scanned.items():
        first = next((i for i, item in enumerate(rows) if float(item[2].get("ts", 0.0)) >= cutoff), None)
        if first is not None:
            kept[partition] = (rows[first][1], end, rows[first:])
    return kept


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


def training_set_from_ranges(reader: LabeledReader, model_id: str, ranges: Sequence[OffsetRange],
                             policy: str = "explicit", min_ts: float | None = None) -> TrainingSet:
    """The training set of explicit ``ranges`` (``driftline models register``, ``rebuild``)."""
    located = [item for r in ranges for item in reader.read(r.partition, r.start, r.end, model_id)]
    return _finish(reader.topic, model_id, list(ranges), located, policy, min_ts)


def _finish(topic: str, model_id: str, ranges: list[OffsetRange], located: list[Located], policy: str,
            min_ts: float | None) -> TrainingSet:
    rows = select_rows(located, model_id, min_ts)
    lineage = TrainingLineage(topic, model_id, tuple(ranges), len(rows), rows_sha256(rows), policy, min_ts)
    return TrainingSet(rows, lineage)


def rebuild(bootstrap: str, lineage: TrainingLineage) -> TrainingSet:
    """Re-read a version's recorded ranges; ``result.lineage.sha256 == lineage.sha256`` proves it."""
    reader = LabeledReader(bootstrap, lineage.topic)
    try:
        return training_set_from_ranges(reader, lineage.model_id, lineage.ranges, lineage.policy, lineage.min_ts)
    finally:
        reader.close()
