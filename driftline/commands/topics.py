"""``driftline topics create``: make every driftline topic, idempotently.

Reports each topic as ``created`` or ``exists``; running it twice is harmless. Without
``--bootstrap-servers`` / ``kafka.bootstrap_servers`` / ``$KAFKA_BOOTSTRAP_SERVERS`` it
uses (and if needed starts) the local broker.
"""

from __future__ import annotations

import argparse
from typing import Any

from driftline.config import load_settings
from driftline.kafka.admin import KafkaAdmin, create_topics
from driftline.kafka.bootstrap import resolve_bootstrap
from driftline.kafka.clients import ClientConfig
from driftline.kafka.local_broker import configured_port
from driftline.kafka.topics import TopicNames, topic_specs

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``topics`` with its ``create`` action."""
    parser = subparsers.add_parser("topics", help="manage driftline's Kafka topics")
    actions = parser.add_subparsers(dest="topics_action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create every driftline topic that does not exist yet")
    create.add_argument(
        "--partitions", type=int, help="partitions of the event topics (default: topics.event_partitions, 6)"
    )
    create.add_argument(
        "--bootstrap-servers", help="brokers (default: kafka.bootstrap_servers, $KAFKA_BOOTSTRAP_SERVERS, local broker)"
    )
    create.add_argument("--prefix", help="prefix for every topic name (default: topics.prefix)")
    create.add_argument("--replication-factor", type=int, help="default: topics.replication_factor")
    create.add_argument("--dir", help="local broker instance directory (default: kafka.local_dir)")
    create.set_defaults(func=_create)


def _create(args: argparse.Namespace) -> int:
    settings = load_settings(getattr(args, "config", None))
    kafka, topics = settings.kafka, settings.topics
    bootstrap = resolve_bootstrap(
        instance_dir=args.dir or kafka.local_dir,
        servers=args.bootstrap_servers or kafka.bootstrap_servers,
        port=configured_port(None, kafka.local_port),
        cache_root=kafka.cache_dir or None,
    )
    prefix = topics.prefix if args.prefix is None else args.prefix
    specs = topic_specs(
        TopicNames(prefix=prefix),
        event_partitions=args.partitions or topics.event_partitions,
    )
    replication = args.replication_factor or topics.replication_factor
    admin = KafkaAdmin(ClientConfig(bootstrap, kafka))
    admin.check_access()
    outcomes = create_topics(admin, specs, replication_factor=replication)
    actual = admin.partition_counts(name for name, outcome in outcomes.items() if outcome == "exists")
    width = max(len(name) for name in outcomes)
    for spec in specs:
        count = actual.get(spec.name, spec.partitions)
        note = f" (spec says {spec.partitions}; existing topics are not changed)" if count != spec.partitions else ""
        print(f"{spec.name:<{width}}  {outcomes[spec.name]:<7}  partitions={count}{note}")
    return 0
