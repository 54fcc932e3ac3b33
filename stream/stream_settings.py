"""``[stream]``: the faust worker's settings (app id, state store, group timings, metrics).

Kept apart from ``stream.app`` so ``driftline.config`` can register the section without
importing faust. The label-join TTL is ``[windows] label_ttl_s`` (the monitor's), not here.
"""

from __future__ import annotations

import dataclasses

from driftline.errors import ConfigError

__all__ = ["STORES", "StreamSettings"]

STORES = ("auto", "memory", "rocksdb")
"""``auto``: RocksDB when ``rocksdict`` imports, else memory (state still has changelogs)."""


@dataclasses.dataclass(frozen=True)
class StreamSettings:
    """The ``driftline stream`` worker.

    ``app_id`` is the faust app id: the consumer group and the prefix of the changelog
    topics, so every worker of one deployment must share it. ``data_dir`` holds RocksDB
    state (per app id and worker); it is a cache: the changelogs are the truth.
    Timings are the Kafka group protocol's; short ones make tests and failover fast,
    the defaults suit production. ``stall_after_s``: a source partition with records
    waiting that delivered none for this long is re-sought (``stream.stall_watchdog``).
    ``control_key_file``: the Ed25519 key (hex seed, 0600) the stream signs its retrain
    requests and version checks with; the trainer trusts it as an operator with the
    ``stream`` role (``driftline operators keygen stream --roles stream``). Empty: unsigned,
    trusted only while no ``stream`` key is configured (`driftline.trust.commands`).
    """

    app_id: str = "driftline-stream"
    store: str = "auto"
    data_dir: str = ".driftline/stream"
    metrics_port: int = 9465
    session_timeout_s: float = 30.0
    heartbeat_interval_s: float = 3.0
    commit_interval_s: float = 2.0
    standby_replicas: int = 1
    challenger: bool = True
    faust_metrics: bool = True
    updates_wait_s: float = 10.0
    stall_after_s: float = 30.0
    control_key_file: str = ""

    def __post_init__(self) -> None:
        checks = [
            (bool(self.app_id), "app_id", "must not be empty"),
            (self.store in STORES, "store", f"must be one of {STORES}"),
            (0 <= self.metrics_port <= 65535, "metrics_port", "must be 0-65535"),
            (self.session_timeout_s > 0, "session_timeout_s", "must be > 0"),
            (
                0 < self.heartbeat_interval_s < self.session_timeout_s,
                "heartbeat_interval_s",
                "must be > 0 and below session_timeout_s",
            ),
            (self.commit_interval_s > 0, "commit_interval_s", "must be > 0"),
            (self.standby_replicas >= 0, "standby_replicas", "must be >= 0"),
            (self.updates_wait_s >= 0, "updates_wait_s", "must be >= 0"),
            (self.stall_after_s > 0, "stall_after_s", "must be > 0"),
        ]
        for ok, key, problem in checks:
            if not ok:
                raise ConfigError(f"stream.{key}", problem)
