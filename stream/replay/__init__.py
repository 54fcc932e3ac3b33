"""Offline replay: the drift core and policy over a file of past events (``driftline replay``).

Pure (no Kafka): ``engine`` runs the monitor, ``decode`` and ``decode_worker`` decode lines
in worker processes so the monitor sees the same events in the same order.
"""

from driftline.stream.replay.engine import InvalidLine, Replay, ReplaySummary, read_reference, replay_lines

__all__ = ["InvalidLine", "Replay", "ReplaySummary", "read_reference", "replay_lines"]
