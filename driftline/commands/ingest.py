"""``driftline ingest``: run the exactly-once validation/batching stage."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from driftline.config import load_settings
from driftline.runtime import client_config_from, given_flags, serve_process_metrics, stop_on_signals

if TYPE_CHECKING:
    from driftline.consumers.ingest.service import IngestTopics
    from driftline.kafka.topics import TopicNames

__all__ = ["register"]


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
    from driftline.consumers.ingest.metrics import IngestMetrics
    from driftline.consumers.ingest.service import Ingest
    from driftline.kafka.topics import TopicNames

    stop = stop_on_signals()  # first: a SIGTERM during start-up still ends cleanly
    overrides = given_flags(args, "metrics_port", "transactional_id")
    settings = load_settings(args.config, overrides={"ingest": overrides})
    names = TopicNames(prefix=settings.topics.prefix)
    topics = ingest_topics(names)
    client = client_config_from(
        settings,
        args.bootstrap_servers,
        check_topics=[topics.features, topics.predictions, topics.labels, topics.observations, topics.dlq],
    )
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    serve_process_metrics(registry, settings.ingest.metrics_port, settings, bootstrap=str(client))
    Ingest(client, topics, settings.ingest, metrics).run(stop)
    return 0


def ingest_topics(names: TopicNames) -> IngestTopics:
    """The ingest view of the project's topic names."""
    from driftline.consumers.ingest.service import IngestTopics

    return IngestTopics(
        features=names.features,
        predictions=names.predictions,
        labels=names.labels,
        observations=names.observations,
        dlq=names.dlq,
    )
