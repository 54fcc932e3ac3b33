"""``driftline ingest``: run the exactly-once validation/batching stage."""

from __future__ import annotations

import argparse
import logging

from prometheus_client import CollectorRegistry

from driftline.config import load_settings
from driftline.logs import log
from driftline.metrics_server import serve_metrics
from driftline.runtime import bootstrap_from, stop_on_signals

__all__ = ["register"]

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="validate raw feature/prediction/label events into observation micro-batches (exactly-once)",
    )
    parser.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (default: config, env, local broker)")
    parser.add_argument("--metrics-port", type=int, help="Prometheus port (default [ingest] metrics_port; 0 = any)")
    parser.add_argument("--transactional-id", help="stable id per ingest instance (default [ingest] transactional_id)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from driftline.consumers.ingest import Ingest
    from driftline.consumers.ingest_metrics import IngestMetrics
    from driftline.kafka.topics import TopicNames

    stop = stop_on_signals()  # first: a SIGTERM during start-up still ends cleanly
    overrides: dict[str, object] = {}
    if args.metrics_port is not None:
        overrides["metrics_port"] = args.metrics_port
    if args.transactional_id:
        overrides["transactional_id"] = args.transactional_id
    settings = load_settings(args.config, overrides={"ingest": overrides})
    bootstrap = bootstrap_from(settings, args.bootstrap_servers)
    names = TopicNames(prefix=settings.topics.prefix)
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    port = serve_metrics(registry, settings.ingest.metrics_port, settings.metrics.addr)
    log(logger, logging.INFO, "metrics served", port=port, bootstrap=bootstrap)
    Ingest(bootstrap, ingest_topics(names), settings.ingest, metrics).run(stop)
    return 0


def ingest_topics(names: object) -> "IngestTopics":
    """The ingest view of the project's topic names."""
    from driftline.consumers.ingest import IngestTopics

    return IngestTopics(
        features=names.features,  # type: ignore[attr-defined]
        predictions=names.predictions,  # type: ignore[attr-defined]
        labels=names.labels,  # type: ignore[attr-defined]
        observations=names.observations,  # type: ignore[attr-defined]
        dlq=names.dlq,  # type: ignore[attr-defined]
    )
