"""SeekGuard: records fetched before a seek never reach the agent after it, and the
partitions they came from are sought back so they are fetched again, in order."""

from __future__ import annotations

import asyncio
import types
from typing import NamedTuple

from driftline.stream.seek_guard import SeekGuard

SOURCE = "obs"
CHANGELOG = "app-state-changelog"


class TP(NamedTuple):
    topic: str
    partition: int


class Msg(NamedTuple):
    topic: str
    partition: int
    offset: int


class FakeConsumer:
    """The faust consumer surface SeekGuard uses; ``batches`` are what each fetch returns.

    ``on_record`` runs between records of a fetch (to start a seek mid-fetch).
    """

    def __init__(self, batches, committed=None, earliest=0) -> None:
        self.batches = list(batches)
        self._committed_offset = dict(committed or {})
        self._read_offset: dict = {}
        self.seeks: list[tuple[TP, int]] = []
        self.full_seeks = 0
        self.earliest = earliest
        self.on_record = None
        self.app = types.SimpleNamespace(rebalancing=False, tables=types.SimpleNamespace(actives_ready=True))

    def assignment(self):
        return {TP(SOURCE, 0), TP(SOURCE, 1), TP(CHANGELOG, 0)}

    async def getmany(self, timeout: float):
        for i, (tp, message) in enumerate(self.batches.pop(0) if self.batches else []):
            if self.on_record is not None:
                await self.on_record(i)
            yield tp, message

    async def perform_seek(self) -> None:
        self.full_seeks += 1
        self._read_offset.update({tp: offset for tp, offset in self._committed_offset.items()})

    async def seek(self, tp, offset: int) -> None:
        self.seeks.append((tp, offset))
        self._read_offset[tp] = offset

    async def earliest_offsets(self, *tps):
        return {tp: self.earliest for tp in tps}


def records(topic: str, partition: int, offsets) -> list:
    return [(TP(topic, partition), Msg(topic, partition, o)) for o in offsets]


async def drain(consumer) -> list[Msg]:
    return [m async for _, m in consumer.getmany(timeout=1.0)]


def test_records_of_one_epoch_are_fresh_exactly_once() -> None:
    async def run():
        consumer = FakeConsumer([records(SOURCE, 0, [5, 6])])
        guard = SeekGuard(consumer, {SOURCE})
        got = await drain(consumer)
        assert [m.offset for m in got] == [5, 6]
        assert [guard.fresh(m) for m in got] == [True, True]
        assert guard.fresh(got[0]) is False  # a second delivery of the same record is not fresh
        assert consumer.seeks == []

    asyncio.run(run())


def test_a_seek_during_a_fetch_drops_the_rest_and_seeks_back() -> None:
    async def run():
        consumer = FakeConsumer(
            [records(SOURCE, 0, [18, 19, 20]) + records(SOURCE, 1, [7])],
            committed={TP(SOURCE, 0): 10, TP(SOURCE, 1): 3},
        )
        guard = SeekGuard(consumer, {SOURCE})

        async def seek_after_first(i: int) -> None:
            if i == 1:
                await consumer.perform_seek()  # recovery ends: seek to the committed offsets

        consumer.on_record = seek_after_first
        got = await drain(consumer)
        assert [m.offset for m in got] == [18], "records after the seek must not be yielded"
        assert guard.fresh(got[0]) is False, "the record yielded before the seek is stale now"
        assert consumer.full_seeks == 1
        assert sorted(consumer.seeks) == [(TP(SOURCE, 0), 10), (TP(SOURCE, 1), 3)]
        assert consumer._read_offset[TP(SOURCE, 0)] == 10

    asyncio.run(run())


def test_changelog_records_pass_even_across_a_seek() -> None:
    async def run():
        consumer = FakeConsumer([records(CHANGELOG, 0, [0, 1, 2])], committed={TP(SOURCE, 0): 4, TP(SOURCE, 1): 4})
        SeekGuard(consumer, {SOURCE})  # wraps the consumer's getmany and perform_seek

        async def seek_first(i: int) -> None:
            if i == 0:
                await consumer.perform_seek()

        consumer.on_record = seek_first
        got = await drain(consumer)
        assert [m.offset for m in got] == [0, 1, 2]

    asyncio.run(run())


def test_a_partition_without_committed_offset_is_sought_to_its_earliest_offset() -> None:
    async def run():
        consumer = FakeConsumer([records(SOURCE, 1, [0, 1])], committed={TP(SOURCE, 0): 9}, earliest=2)
        SeekGuard(consumer, {SOURCE})  # wraps the consumer's getmany and perform_seek

        async def seek_first(i: int) -> None:
            if i == 1:
                await consumer.perform_seek()

        consumer.on_record = seek_first
        await drain(consumer)
        assert dict(consumer.seeks) == {TP(SOURCE, 0): 9, TP(SOURCE, 1): 2}

    asyncio.run(run())


def test_during_recovery_the_seek_back_waits_for_the_tables() -> None:
    async def run():
        consumer = FakeConsumer([records(SOURCE, 0, [3, 4]), records(SOURCE, 0, [0])], committed={TP(SOURCE, 0): 0})
        guard = SeekGuard(consumer, {SOURCE})
        consumer.app.tables.actives_ready = False

        async def seek_first(i: int) -> None:
            if i == 0:
                await consumer.perform_seek()
                consumer._read_offset[TP(SOURCE, 0)] = 4  # the fetch loop stores an in-flight record's offset

        consumer.on_record = seek_first
        assert await drain(consumer) == []
        assert consumer.seeks == [], "no seek while recovery still owns the positions"
        assert consumer._read_offset[TP(SOURCE, 0)] == 0, "the read position the seek set is put back"
        consumer.on_record = None
        consumer.app.tables.actives_ready = True
        got = await drain(consumer)
        assert (TP(SOURCE, 0), 0) in consumer.seeks, "the pending seek back runs before the next fetch"
        assert [m.offset for m in got] == [0] and guard.fresh(got[0])

    asyncio.run(run())


def test_a_partition_reseek_leaves_other_partitions_fresh() -> None:
    async def run():
        consumer = FakeConsumer([records(SOURCE, 1, [7])], committed={TP(SOURCE, 0): 5})
        guard = SeekGuard(consumer, {SOURCE})
        got = await drain(consumer)
        await guard.reseek([TP(SOURCE, 0)])
        assert consumer.seeks == [(TP(SOURCE, 0), 5)]
        assert guard.fresh(got[0]), "a re-seek of partition 0 must not invalidate partition 1"

    asyncio.run(run())
