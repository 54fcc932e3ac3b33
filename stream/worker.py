"""Wiring of one ``driftline stream`` worker: app, table, agent, model updates, metrics.

``build_worker`` assembles everything without network I/O except one metadata call (the
observation topic's partition count, which the app's tables must match);
``run_worker`` runs it until SIGTERM/SIGINT (faust's ``Worker`` handles the signals and
stops cleanly: the agent finishes its batch, offsets are committed, changelogs flushed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from driftline.kafka.admin import KafkaAdmin
from driftline.kafka.clients import KafkaTarget
from driftline.kafka.dlq import dlq_headers, fit_dlq_record
from driftline.kafka.topics import TopicNames
from driftline.logs import log
from driftline.schemas.events import InvalidEvent
from driftline.stream.agent import BatchProcessor, register_agent
from driftline.stream.app import (
    ChangelogWrites,
    attach_faust_sensor,
    create_app,
    create_state_table,
    read_committed,
    store_url,
)
from driftline.stream.drift.monitor_config import MonitorConfig
from driftline.stream.model_updates import ModelUpdatesReader, ServingVersions
from driftline.stream.seek_guard import SeekGuard
from driftline.stream.stall_watchdog import PartitionProgress, StallWatchdog, run_watchdog
from driftline.stream.stream_metrics import StreamMetrics
from driftline.stream.stream_settings import StreamSettings
from driftline.stream.tables import ModelStateStore
from driftline.trust.commands import load_operator_key
from driftline.trust.keys import trusted_keys

__all__ = ["StreamWorker", "build_worker", "observation_partitions", "run_worker"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class StreamWorker:
    """Everything one worker process runs (kept together for tests and benchmarks)."""

    app: Any
    table: Any
    processor: BatchProcessor
    metrics: StreamMetrics
    registry: CollectorRegistry
    serving: ServingVersions
    names: TopicNames
    settings: StreamSettings


def observation_partitions(bootstrap: KafkaTarget, topic: str) -> int:
    """Partition count of the observation topic (it must exist: ``driftline topics create``)."""
    counts = KafkaAdmin(bootstrap).partition_counts([topic])
    count = counts.get(topic)
    if not count:
        from driftline.errors import ConfigError

        raise ConfigError("topics", f"topic {topic} does not exist; run `driftline topics create` first")
    return int(count)


def build_worker(
    settings: Any,
    bootstrap: KafkaTarget,
    names: TopicNames,
    stream: StreamSettings | None = None,
    registry: CollectorRegistry | None = None,
    tombstones: bool = False,
) -> StreamWorker:
    """App, table, agent and model-updates task for ``settings`` (``driftline.config.Settings``)."""
    stream = stream or settings.stream
    registry = registry or CollectorRegistry()
    metrics = StreamMetrics(registry)
    partitions = observation_partitions(bootstrap, names.observations)
    Path(stream.data_dir).mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    app = create_app(stream, bootstrap, partitions, settings.topics.replication_factor)
    read_committed(app)
    if stream.faust_metrics:
        attach_faust_sensor(app, registry)
    table = create_state_table(app, partitions)
    config = MonitorConfig.from_settings(settings)
    store = ModelStateStore(
        table,
        config,
        challenger=stream.challenger,
        tombstones=tombstones,
        on_refused=lambda model_id, part, reason: metrics.state_refused(model_id, part, reason).inc(),
    )
    serving = ServingVersions(
        trusted_keys(
            settings.subscriber.verify_key,
            settings.subscriber.verify_key_file,
            settings.trainer.signing_key,
            required=False,
        )
    )
    control_key = load_operator_key(stream.control_key_file) if stream.control_key_file else None
    processor = BatchProcessor(table, store, serving, metrics, names.observations, control_key)
    dlq = app.topic(names.dlq, key_serializer="raw", value_serializer="raw")

    async def invalid_update(record: Any, reason: str) -> None:
        error = InvalidEvent("$", "model_update", reason)
        headers = dlq_headers(names.model_updates, record.partition, record.offset, error, list(record.headers or ()))
        value, headers = fit_dlq_record(record.key, record.value, headers)
        await dlq.send(key=record.key, value=value, headers=headers)
        metrics.invalid("model_updates", "model_update").inc()

    reader = ModelUpdatesReader(
        bootstrap,
        names.model_updates,
        serving,
        on_outcome=lambda kind: metrics.model_updates(kind).inc(),
        on_invalid=invalid_update,
    )
    writes = ChangelogWrites(table)
    progress = PartitionProgress()
    guard = SeekGuard(app.consumer, {names.observations}, on_stale=lambda n: metrics.stale_records.inc(n))
    register_agent(app, names, processor, metrics, reader.ready, stream.updates_wait_s, writes, progress, guard)
    watchdog = StallWatchdog(
        app, names.observations, progress, guard, stream.stall_after_s, on_stall=lambda partition: metrics.stalls.inc()
    )

    async def drop_cache(_app: Any, _partitions: Any, **_: Any) -> None:
        store.invalidate()  # after a rebalance only the recovered table is the truth

    app.on_partitions_revoked.connect(drop_cache)
    app.on_partitions_assigned.connect(drop_cache)

    @app.task
    async def model_updates() -> None:
        backoff = 0.5
        while True:  # the reader never stays dead: the stream would go on measuring stale versions
            try:
                await reader.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log(
                    logger,
                    logging.ERROR,
                    "model-updates reader failed; reading again",
                    error=repr(exc),
                    retry_in_s=backoff,
                )
                metrics.reader_restarts.inc()
                reader.ready.set()  # never hold the agent back for ever: it runs on what it has
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    @app.task
    async def stall_watchdog() -> None:
        await run_watchdog(watchdog, interval_s=min(5.0, stream.stall_after_s / 2))

    return StreamWorker(app, table, processor, metrics, registry, serving, names, stream)


def run_worker(worker: StreamWorker, loglevel: str = "warning") -> None:
    """Run until a stop signal; never returns normally (faust's Worker exits the process)."""
    import faust

    log(
        logger,
        logging.INFO,
        "stream worker starting",
        app_id=worker.settings.app_id,
        store=store_url(worker.settings.store),
        observations=worker.names.observations,
    )
    faust.Worker(
        worker.app, loglevel=loglevel, override_logging=False, redirect_stdouts=False, quiet=True
    ).execute_from_commandline()
