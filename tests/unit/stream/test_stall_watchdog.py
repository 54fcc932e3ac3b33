"""Which source partitions count as stalled: records waiting, nothing delivered for long."""

from __future__ import annotations

from driftline.stream.stall_watchdog import PartitionProgress, stalled_partitions


def progress_at(start: float, seen: dict[int, tuple[int, float]]) -> PartitionProgress:
    p = PartitionProgress()
    p.started = start
    for partition, (offset, when) in seen.items():
        p.saw(partition, offset, now=when)
    return p


def test_a_partition_with_lag_and_no_delivery_for_long_is_stalled() -> None:
    p = progress_at(0.0, {0: (9, 0.0)})
    assert stalled_partitions(p, {0: 20}, {}, stall_after_s=30.0, now=31.0) == [0]
    assert stalled_partitions(p, {0: 20}, {}, stall_after_s=30.0, now=29.0) == [], "not yet long enough"


def test_a_caught_up_partition_is_never_stalled() -> None:
    p = progress_at(0.0, {0: (19, 0.0)})
    assert stalled_partitions(p, {0: 20}, {}, stall_after_s=1.0, now=500.0) == []


def test_an_unseen_partition_counts_from_its_committed_offset_and_the_start() -> None:
    p = progress_at(100.0, {})
    assert stalled_partitions(p, {1: 5, 2: 5}, {1: 5, 2: 3}, stall_after_s=10.0, now=111.0) == [2]
    assert stalled_partitions(p, {2: 5}, {2: 3}, stall_after_s=10.0, now=105.0) == []


def test_restarting_the_clock_gives_every_partition_a_fresh_period() -> None:
    p = progress_at(0.0, {0: (1, 0.0)})
    p.restart_clock(now=50.0)
    assert stalled_partitions(p, {0: 9}, {}, stall_after_s=30.0, now=60.0) == []
    assert stalled_partitions(p, {0: 9}, {}, stall_after_s=30.0, now=81.0) == [0]


def test_a_transaction_marker_after_the_last_record_is_not_a_stall() -> None:
    p = progress_at(0.0, {0: (19, 0.0)})
    assert stalled_partitions(p, {0: 21}, {}, stall_after_s=1.0, now=500.0) == [], "20 is the commit marker"
    assert stalled_partitions(p, {0: 22}, {}, stall_after_s=1.0, now=500.0) == [0]


def test_a_settled_partition_waits_for_records_after_its_settled_end() -> None:
    p = progress_at(0.0, {0: (9, 0.0)})
    p.settled[0] = 16  # 10..15: an aborted transaction and its marker, never delivered
    assert stalled_partitions(p, {0: 16}, {}, stall_after_s=1.0, now=500.0) == []
    assert stalled_partitions(p, {0: 17}, {}, stall_after_s=1.0, now=500.0) == [], "one marker of slack"
    assert stalled_partitions(p, {0: 30}, {}, stall_after_s=1.0, now=500.0) == [0], "new records, none delivered"
