"""The faust app of ``driftline stream``: settings, the state table, the sensor.

Choices, and why:

- ``processing_guarantee="at_least_once"``: faust's exactly-once mode has open bugs
  (duplicates on rebalance); the agent instead makes its *effect* exactly-once with the
  source offset stored in the model's state (``stream.tables``).
- ``topic_partitions`` = the observation topic's partition count: faust writes a table
  change to the changelog partition of the event being processed, so changelog and
  source must have the same number of partitions (faust checks it on the first write).
- One plain table (no windowed tables: see DESIGN.md, "Own the windows"); faust declares
  its changelog topic itself (``<app_id>-state-changelog``, compacted), which matters
  because the brokers run with topic auto-creation off.
- RocksDB store when ``rocksdict`` imports (``store = "auto"``), else memory: either
  way the changelog is the truth and a new worker recovers from it.
- ``stream_wait_empty=False``: with the agent acking messages itself, faust's
  ``wait_empty`` at revocation can wait forever for a message that was queued and then
  cleared from the stream (seen: a rebalance hung for minutes). Instead the agent
  discards a batch whose processing overlapped a rebalance (``stream.agent``): not saved,
  not acked, redelivered after the seek to the committed offsets.
- ``ChangelogWrites``: faust acks a source offset as soon as the agent moves on, while
  the table's changelog records are still in its producer buffer, and its pre-commit
  flush (``ProducerBuffer.flush``) gives up after 0.1 s without progress and does not
  count the record being handed to the client — so an offset could be committed whose
  state never reached the changelog; a ``kill -9`` then lost those batches for good.
  The agent acks each batch itself, in order, once its changelog writes are acknowledged.
- ``read_committed`` (``read_committed``): faust reads with ``read_uncommitted`` unless
  its exactly-once mode is on, but ingest writes the observations in transactions: an
  aborted ingest transaction (ingest killed or fenced mid-batch, then re-run) would be
  counted and then counted again. The worker's consumer reads committed data only.
- ``SeekGuard`` (``stream.seek_guard``): records fetched before recovery's seek to the
  committed offsets can arrive after it; faust then commits past the skipped offsets.
  The guard drops them and seeks back; ``StallWatchdog`` re-seeks a partition that
  stops delivering although records wait (faust-streaming#629).
"""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import Any

import faust

from driftline.kafka.clients import KafkaTarget, as_client_config
from driftline.kafka.topics import MAX_MESSAGE_BYTES
from driftline.stream.stream_settings import StreamSettings

__all__ = ["ChangelogWrites", "attach_faust_sensor", "create_app", "create_state_table", "store_url"]


def store_url(store: str) -> str:
    """``rocksdb://`` or ``memory://`` for ``auto``/``memory``/``rocksdb``."""
    if store == "auto":
        store = "rocksdb" if importlib.util.find_spec("rocksdict") is not None else "memory"
    if store == "rocksdb" and importlib.util.find_spec("rocksdict") is None:
        from driftline.errors import ConfigError

        raise ConfigError("stream.store", "rocksdb needs the rocksdict package (pip install rocksdict)")
    return f"{store}://"


def create_app(
    settings: StreamSettings, bootstrap: KafkaTarget, partitions: int, replication_factor: int = 1, **overrides: Any
) -> faust.App:
    """A faust App configured for driftline (no network I/O until it starts).

    ``[kafka]``'s security reaches faust's consumers, producer and topic admin as
    ``broker_credentials`` (``ClientConfig.faust_credentials``), the same settings librdkafka gets.
    """
    target = as_client_config(bootstrap)
    brokers = [f"kafka://{host.strip()}" for host in str(target).split(",") if host.strip()]
    conf: dict[str, Any] = {
        "broker": brokers,
        "broker_credentials": target.faust_credentials(),
        "store": store_url(settings.store),
        "datadir": str(Path(settings.data_dir) / settings.app_id),
        "processing_guarantee": "at_least_once",
        "topic_partitions": partitions,
        "topic_replication_factor": replication_factor,
        "topic_allow_declare": True,
        "broker_session_timeout": settings.session_timeout_s,
        "broker_heartbeat_interval": settings.heartbeat_interval_s,
        "broker_commit_interval": settings.commit_interval_s,
        "table_standby_replicas": settings.standby_replicas,
        "stream_wait_empty": False,
        "consumer_auto_offset_reset": "earliest",
        "producer_max_request_size": MAX_MESSAGE_BYTES,
        "consumer_max_fetch_size": MAX_MESSAGE_BYTES,
        "key_serializer": "raw",
        "value_serializer": "raw",
        "web_enabled": False,
    }
    conf.update(overrides)
    return faust.App(settings.app_id, **conf)


def create_state_table(app: faust.App, partitions: int) -> Any:
    """The agent's one table: str keys, raw bytes values (layout in ``stream.tables``)."""
    return app.Table(
        "state",
        key_type=str,  # faust picks json for str keys, raw for bytes values
        value_type=bytes,
        partitions=partitions,
        extra_topic_configs={"max.message.bytes": str(MAX_MESSAGE_BYTES)},
        help="driftline per-model monitor state, reference-row chunks and label-join buffer",
    )


def attach_faust_sensor(app: faust.App, registry: Any, prefix: str = "driftline_faust") -> None:
    """faust's Prometheus sensor, on our registry (not the global one, not faust's web page)."""
    from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor

    app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(registry, prefix))


def read_committed(app: faust.App) -> None:
    """Make the app's source consumer read only committed transactions (see above).

    faust builds its aiokafka consumer when the worker starts; this wraps the factory
    of this app's consumer thread, so no other app in the process is affected.
    """
    thread = app.consumer._thread
    create = thread._create_worker_consumer

    def create_read_committed(transport: Any) -> Any:
        consumer = create(transport)
        consumer._isolation_level = "read_committed"  # read by start(), when the fetcher is built
        return consumer

    thread._create_worker_consumer = create_read_committed


class ChangelogWrites:
    """Collects the futures of a table's changelog records, so the agent can await them.

    Wraps ``table.send_changelog`` (every ``table[k] = v`` / ``del table[k]`` goes through
    it); ``take()`` hands over the futures of the writes made since the last call.
    """

    def __init__(self, table: Any) -> None:
        self.pending: list[asyncio.Future] = []
        send = table.send_changelog

        def send_changelog(*args: Any, **kwargs: Any) -> Any:
            fut = send(*args, **kwargs)
            self.pending.append(fut)
            return fut

        table.send_changelog = send_changelog

    def take(self) -> list[asyncio.Future]:
        pending, self.pending = self.pending, []
        return pending
