"""``driftline stream``: run a stream worker (faust) over the observation micro-batches.

Start as many as you like with the same ``--app-id``: they share the observation
partitions through Kafka's group protocol and take over each other's partitions (and
state, from the changelogs) when one stops or dies.
"""

from __future__ import annotations

import argparse

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stream",
        help="run the drift monitor on the live observation stream (faust worker)",
    )
    parser.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (default: config, env, local broker)")
    parser.add_argument("--app-id", help="faust app id = consumer group (default [stream] app_id)")
    parser.add_argument("--metrics-port", type=int, help="Prometheus port (default [stream] metrics_port; 0 = any)")
    parser.add_argument("--store", choices=["auto", "memory", "rocksdb"], help="table store (default [stream] store)")
    parser.add_argument("--data-dir", help="RocksDB directory (default [stream] data_dir)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from driftline.config import load_settings
    from driftline.kafka.topics import TopicNames
    from driftline.runtime import client_config_from, given_flags, serve_process_metrics
    from driftline.stream.worker import build_worker, run_worker

    overrides = given_flags(args, "app_id", "metrics_port", "store", "data_dir")
    settings = load_settings(args.config, overrides={"stream": overrides})
    names = TopicNames(prefix=settings.topics.prefix)
    topics = [names.observations, names.model_updates, names.labeled, names.windows, names.control, names.dlq]
    # checked with librdkafka first: faust/aiokafka would retry a refused login with a traceback per attempt
    client = client_config_from(settings, args.bootstrap_servers, check_topics=topics)
    worker = build_worker(settings, client, names)
    serve_process_metrics(
        worker.registry, settings.stream.metrics_port, settings, bootstrap=str(client), app_id=settings.stream.app_id
    )
    run_worker(worker, loglevel=args.log_level)
    return 0
