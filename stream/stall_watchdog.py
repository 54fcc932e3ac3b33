"""A watchdog for source partitions that faust stops fetching after a rebalance.

faust-streaming sometimes leaves an assigned partition without fetches after a
rebalance (faust-streaming#629, #166: "has not committed/fetched TP since worker
start"): the worker is healthy, other partitions flow, but one partition's lag only
grows. Seen on the real broker after a ``kill -9`` and restart: partition 4 stayed at
its committed offset for minutes while the other five were processed to the end.

Every ``interval_s`` the watchdog compares, per assigned source partition, the end
offset with the last offset the agent saw. A partition with lag that delivered nothing
for ``stall_after_s`` (outside a rebalance) is stalled: it is logged with faust's and
aiokafka's view of it, counted, resumed and sought back to its committed offset
(``SeekGuard.reseek``).
Seeking back is safe: every batch at or below a model's saved position is skipped.

Not every gap is a stall: records of an aborted transaction (ingest killed or fenced
mid-batch) and transaction markers are never delivered to a ``read_committed`` reader.
When a partition's last records are such, it looks stalled forever. So once a re-seek
delivered nothing, the end offset did not move and the client's fetch position reached
it, the partition is *settled* up to that end: the gap holds nothing to deliver, and
only records after it can make the partition stalled again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from driftline.logs import log

__all__ = ["PartitionProgress", "StallWatchdog", "stalled_partitions"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class PartitionProgress:
    """Last offset the agent saw per partition, and when (monotonic seconds); ``started``
    stands in for partitions not seen since the last rebalance."""

    offsets: dict[int, int] = dataclasses.field(default_factory=dict)
    since: dict[int, float] = dataclasses.field(default_factory=dict)
    started: float = dataclasses.field(default_factory=time.monotonic)
    settled: dict[int, int] = dataclasses.field(default_factory=dict)
    """Per partition, an offset below which nothing is left to deliver (see module docstring)."""

    def saw(self, partition: int, offset: int, now: float | None = None) -> None:
        self.offsets[partition] = offset
        self.since[partition] = time.monotonic() if now is None else now

    def restart_clock(self, now: float | None = None) -> None:
        """After a rebalance every partition gets a fresh ``stall_after_s``."""
        now = time.monotonic() if now is None else now
        for partition in self.since:
            self.since[partition] = now
        self.started = now


def stalled_partitions(
    progress: PartitionProgress,
    ends: dict[int, int],
    committed: dict[int, int],
    stall_after_s: float,
    now: float,
    slack: int = 1,
) -> list[int]:
    """Partitions with records after what the agent saw, and nothing delivered for too long.

    The next offset expected is one past the last seen, or the committed offset for a
    partition not seen since start. ``slack`` offsets past it are normal: ingest writes
    in transactions, and each one's commit marker takes an offset after its records.

    Examples:
        >>> p = PartitionProgress(); p.saw(0, 9, now=0.0); p.started = 0.0
        >>> stalled_partitions(p, {0: 20, 1: 5, 2: 5}, {1: 5, 2: 3}, 30.0, now=31.0)
        [0, 2]
        >>> stalled_partitions(p, {0: 10}, {}, 30.0, now=31.0)
        []
    """
    stalled = []
    for partition, end in sorted(ends.items()):
        expected = progress.offsets[partition] + 1 if partition in progress.offsets else committed.get(partition, 0)
        expected = max(expected, progress.settled.get(partition, 0))
        quiet_since = progress.since.get(partition, progress.started)
        if end > expected + slack and now - quiet_since >= stall_after_s:
            stalled.append(partition)
    return stalled


class StallWatchdog:
    """Runs ``check`` every ``interval_s`` inside the faust app (see module docstring)."""

    def __init__(
        self,
        app: Any,
        topic: str,
        progress: PartitionProgress,
        guard: Any,
        stall_after_s: float = 30.0,
        on_stall: Callable[[int], None] | None = None,
    ) -> None:
        self.app = app
        self.guard = guard
        self.topic = topic
        self.progress = progress
        self.stall_after_s = stall_after_s
        self.on_stall = on_stall
        self._generation: int | None = None
        self._reseeked: dict[int, tuple[int, int | None]] = {}
        """partition → (end offset, last offset seen) when it was last re-sought."""

    async def check(self) -> list[int]:
        app = self.app
        if app.rebalancing or not app.tables.actives_ready:
            self._generation = None
            return []
        if self._generation != app.consumer_generation_id:
            self._generation = app.consumer_generation_id
            self.progress.restart_clock()
            self.progress.settled.clear()  # another member may have written since: look again
            self._reseeked.clear()
            return []
        consumer = app.consumer
        tps = [tp for tp in consumer.assignment() if tp.topic == self.topic]
        if not tps:
            return []
        ends = {
            tp.partition: int(offset) for tp, offset in (await consumer.highwaters(*tps)).items() if offset is not None
        }
        committed = {
            tp.partition: int(offset)
            for tp, offset in consumer._committed_offset.items()
            if tp.topic == self.topic and offset is not None
        }
        stalled = stalled_partitions(self.progress, ends, committed, self.stall_after_s, time.monotonic())
        stalled = [p for p in stalled if not self._settle(consumer, tps, p, ends[p])]
        if stalled and self.guard.can_seek() and self._generation == app.consumer_generation_id:
            await self._unstall([tp for tp in tps if tp.partition in stalled], ends, committed)
        return stalled

    async def _unstall(self, tps: list[Any], ends: dict[int, int], committed: dict[int, int]) -> None:
        consumer = self.app.consumer
        for tp in tps:
            log(
                logger,
                logging.WARNING,
                "partition stalled: records waiting but none delivered; resuming and "
                "seeking to the committed offset (faust-streaming#629)",
                partition=tp.partition,
                end_offset=ends.get(tp.partition),
                committed=committed.get(tp.partition),
                last_seen=self.progress.offsets.get(tp.partition),
                **_diagnostics(consumer, tp),
            )
            if self.on_stall is not None:
                self.on_stall(tp.partition)
        consumer.resume_partitions(tps)
        await self.guard.reseek(tps)
        for tp in tps:
            self._reseeked[tp.partition] = (ends[tp.partition], self.progress.offsets.get(tp.partition))
        self.progress.restart_clock()

    def _settle(self, consumer: Any, tps: list[Any], partition: int, end: int) -> bool:
        """True when ``partition`` only looks stalled: re-sought at this end offset, nothing
        delivered since, and the client fetched up to the end — the gap holds only aborted
        records and markers. Without the client's position it is not settled (re-seek again)."""
        if self._reseeked.get(partition) != (end, self.progress.offsets.get(partition)):
            return False
        tp = next(tp for tp in tps if tp.partition == partition)
        position = _client_position(consumer, tp)
        if position is None or position < end:
            return False
        self.progress.settled[partition] = end
        del self._reseeked[partition]
        log(
            logger,
            logging.INFO,
            "partition settled: the records after the last one delivered are not "
            "deliverable to read_committed (aborted transactions or markers); not a stall",
            partition=partition,
            end_offset=end,
            last_seen=self.progress.offsets.get(partition),
        )
        return True


def _assignment_state(consumer: Any, tp: Any) -> Any:
    """aiokafka's state of ``tp`` under faust's consumer (internals: raises if they changed)."""
    inner = consumer._thread._ensure_consumer()
    return inner._subscription.subscription.assignment.state_value(tp)


def _client_position(consumer: Any, tp: Any) -> int | None:
    """aiokafka's fetch position of ``tp`` (None if the internals changed)."""
    try:
        position = _assignment_state(consumer, tp)._position
    except Exception:
        return None
    return int(position) if position is not None else None


def _diagnostics(consumer: Any, tp: Any) -> dict[str, Any]:
    """faust's and aiokafka's state of ``tp``, for the stall report."""
    facts: dict[str, Any] = {
        "faust_active": tp in (consumer._active_partitions or ()),
        "faust_paused": tp in consumer._paused_partitions,
        "faust_buffered": tp in consumer._buffered_partitions,
    }
    try:
        state = _assignment_state(consumer, tp)
        facts.update(
            kafka_paused=state.paused, kafka_position=state._position, kafka_status=str(getattr(state, "_status", ""))
        )
    except Exception as exc:
        facts["kafka_state"] = repr(exc)[:200]
    return facts


async def run_watchdog(watchdog: StallWatchdog, interval_s: float) -> None:
    """The watchdog loop; a failed check is logged and retried at the next interval."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await watchdog.check()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log(logger, logging.WARNING, "stall check failed", error=repr(exc)[:300])
