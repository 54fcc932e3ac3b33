"""``driftline demo``: the main job on its embedded default (local broker, synthetic traffic)."""

from __future__ import annotations

import argparse
from pathlib import Path

from driftline.config import load_settings
from driftline.runtime import client_config_from

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the whole loop on a local broker with synthetic drifting traffic and show it working"
    )
    parser.add_argument("--bootstrap-servers", help="use this broker instead of the local one")
    parser.add_argument("--events", type=int, default=30_000, help="events per model (default 30000)")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for the pipeline to catch up")
    parser.add_argument("--log-dir", default=".driftline/demo", help="where the processes' logs go")
    parser.add_argument(
        "--metrics-port-base",
        type=int,
        default=0,
        metavar="PORT",
        help="serve Prometheus metrics on fixed ports: ingest PORT, stream PORT+1, trainer "
        "PORT+2, the demo's subscribers PORT+3 (deploy/prometheus scrapes 9464-9467); "
        "default: free ports",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from driftline.demo.run import DemoOptions, run_demo

    settings = load_settings(args.config)
    print(
        "driftline demo: starting the local Kafka broker if needed (first run downloads its jars with Maven)",
        flush=True,
    )
    bootstrap = client_config_from(settings, args.bootstrap_servers)
    options = DemoOptions(
        events_per_model=args.events,
        timeout_s=args.timeout,
        log_dir=Path(args.log_dir),
        metrics_port_base=args.metrics_port_base,
    )
    return run_demo(settings, bootstrap, options, say=lambda line: print(line, flush=True))
