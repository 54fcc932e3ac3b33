"""Keeps records fetched before a seek from reaching the agent after it.

faust-streaming seeks every source partition back to its committed offset when a
rebalance's recovery ends (``Consumer.perform_seek``). A fetch that was already under
way still delivers the records it got from the *old* position afterwards, and faust's
fetch loop then (1) treats the jump from the committed offset to that record as a gap
in the log and marks the skipped offsets as acknowledged, so they are committed
unprocessed, and (2) stores the stale record's offset as the read position, so the
records that the seek re-fetches look old and are dropped. On the real broker, after a
``kill -9`` and restart: the committed offset was 10, the first record delivered was
18, and offsets 11-17 of every partition were never processed (faust-streaming#221
describes the same race for the no-table case).

``SeekGuard`` wraps one faust consumer for the source topics (changelog records pass
untouched: recovery positions those itself): every ``perform_seek`` starts a new *epoch*,
the fetch generator drops the records of a fetch started in an older epoch and seeks
back again (the client's position already moved past them), and the agent asks
``fresh(message)`` and leaves a stale message unprocessed and unacked; the seek
re-fetches it in order. Observed: right after recovery's seek, a fetch begun during
recovery delivered 142 records, and the client's position stood at the log end.

A fetch that overlapped a seek of all partitions is followed by a seek back of *every*
source partition, not only those with dropped records: faust itself silently discards
the records of partitions it had paused when the fetch began (recovery pauses the
source partitions), and the client's position has moved past those too.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from driftline.logs import log

__all__ = ["SeekGuard"]

logger = logging.getLogger(__name__)


class SeekGuard:
    """Epochs of a faust consumer's seeks; see the module docstring."""

    def __init__(self, consumer: Any, topics: set[str], on_stale: Callable[[int], None] | None = None) -> None:
        self.consumer = consumer
        self.topics = topics
        self.on_stale = on_stale
        self.epoch = 0  # every seek of all partitions; odd while one runs
        self._tp_epoch: dict[Any, int] = {}  # per partition re-seeks; odd while one runs
        self._fresh: set[tuple[str, int, int]] = set()
        self._read_after_seek: dict[Any, Any] = {}
        self._reseek_pending = False
        self._getmany = consumer.getmany
        self._perform_seek = consumer.perform_seek
        consumer.getmany = self.getmany
        consumer.perform_seek = self.perform_seek

    async def perform_seek(self) -> None:
        self.epoch += 1
        self._fresh.clear()
        try:
            await self._perform_seek()
        finally:
            self._read_after_seek = {
                tp: offset for tp, offset in self.consumer._read_offset.items() if tp.topic in self.topics
            }
            self.epoch += 1

    async def reseek(self, tps: list[Any]) -> None:
        """Seek source partitions back to their committed offsets (the beginning if none).

        Safe at any time outside a rebalance: a batch at or below a model's saved position
        is skipped when it comes again. Only these partitions: a seek of all of them would
        also move the changelog partitions that recovery and standbys are reading.
        """
        for tp in tps:
            self._tp_epoch[tp] = self._tp_epoch.get(tp, 0) + 1
        moved = {(tp.topic, tp.partition) for tp in tps}
        self._fresh -= {key for key in self._fresh if key[:2] in moved}
        try:
            for tp in tps:
                offset = self.consumer._committed_offset.get(tp) or self._read_after_seek.get(tp)
                if offset is None or offset < 0:
                    # an explicit offset: after seek_to_beginning the client has no position
                    # until it resets, and faust's livelock check then crashes the consumer
                    offset = (await self.consumer.earliest_offsets(tp)).get(tp) or 0
                await self.consumer.seek(tp, offset)
        finally:
            for tp in tps:
                self._tp_epoch[tp] += 1

    def can_seek(self) -> bool:
        """Outside a rebalance and its table recovery (which ends with its own seek)."""
        app = self.consumer.app
        return not app.rebalancing and app.tables.actives_ready and not self.epoch % 2

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[Any, Any]]:
        if self._reseek_pending and self.can_seek():
            await self._reseek_all("a fetch overlapped a seek during recovery")
        started, started_tp = self.epoch, dict(self._tp_epoch)
        dropped: dict[Any, int] = {}
        async for tp, message in self._getmany(timeout=timeout):
            if tp.topic not in self.topics:  # changelogs: recovery seeks them itself
                yield tp, message
                continue
            tp_epoch = self._tp_epoch.get(tp, 0)
            if self.epoch != started or started % 2 or tp_epoch != started_tp.get(tp, 0) or tp_epoch % 2:
                dropped[tp] = dropped.get(tp, 0) + 1
                continue
            self._fresh.add((message.topic, message.partition, message.offset))
            yield tp, message
        if dropped and self.on_stale is not None:
            self.on_stale(sum(dropped.values()))
        if self.epoch != started or started % 2:
            # The fetch overlapped a seek of all partitions: besides the records dropped
            # here, faust itself discards the records of partitions it had paused when
            # the fetch began, and the client's position is past all of them.
            self._reseek_pending = True
            if self.can_seek():
                await self._reseek_all("a fetch overlapped a seek", sum(dropped.values()))
            elif not self.epoch % 2:
                # Until the seek back can run, fetches go on: put back the read positions
                # the seek set, which the fetch loop overwrote with those of stale records
                # (it drops records below its read position).
                self.consumer._read_offset.update(self._read_after_seek)
        elif dropped and self.can_seek():
            await self._reseek(list(dropped), "records fetched before a partition's seek", sum(dropped.values()))

    async def _reseek_all(self, reason: str, dropped: int = 0) -> None:
        self._reseek_pending = False
        tps = [tp for tp in self.consumer.assignment() if tp.topic in self.topics]
        await self._reseek(tps, reason, dropped)

    async def _reseek(self, tps: list[Any], reason: str, dropped: int) -> None:
        log(
            logger,
            logging.INFO,
            "seeking back to re-fetch in order",
            reason=reason,
            dropped_records=dropped,
            partitions=sorted(tp.partition for tp in tps),
        )
        try:
            await self.reseek(tps)
        except Exception as exc:
            log(logger, logging.WARNING, "seek back failed", error=repr(exc)[:300])

    def fresh(self, message: Any) -> bool:
        """True once per message fetched in the current epoch; False for a stale one."""
        key = (message.topic, message.partition, message.offset)
        if key in self._fresh:
            self._fresh.discard(key)
            return True
        return False
