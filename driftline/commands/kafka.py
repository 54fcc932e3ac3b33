"""``driftline kafka start|stop|status``: the project's local single-node broker.

For machines without a Kafka cluster: the broker runs from Maven Central jars in an
instance directory (default ``.driftline/kafka``); see ``driftline.kafka.local_broker``.
``--secure`` runs the secured variant instead (SASL_SSL, mTLS, ACLs; default
``.driftline/kafka-secure``, port 9192); see ``driftline.kafka.secure_broker``.
"""

from __future__ import annotations

import argparse
from typing import Any

from driftline.config import load_settings
from driftline.kafka.local_broker import LocalBroker, configured_port
from driftline.kafka.secure_broker import MTLS_ROLES, SecureBroker

__all__ = ["register"]

#: ``status`` exit codes, as LSB init scripts use them: 0 running, 3 not running.
EXIT_RUNNING, EXIT_UNRESPONSIVE, EXIT_STOPPED = 0, 1, 3


def register(subparsers: Any) -> None:
    """Add ``kafka`` with its ``start``, ``stop`` and ``status`` actions."""
    parser = subparsers.add_parser("kafka", help="run a local Kafka broker (KRaft, single node)")
    actions = parser.add_subparsers(dest="kafka_action", metavar="ACTION", required=True)
    for name, handler, help_text in (
        ("start", _start, "start the broker (no-op if running); returns when it answers"),
        ("stop", _stop, "stop the broker this instance directory started"),
        ("status", _status, "say whether the broker runs (exit 0) or not (exit 3)"),
    ):
        action = actions.add_parser(name, help=help_text)
        action.add_argument("--dir", help="instance directory (default: kafka.local_dir, .driftline/kafka)")
        action.add_argument(
            "--port", type=int, help="client port (default: kafka.local_port, else the instance's last, else 9092)"
        )
        action.add_argument(
            "--secure",
            action="store_true",
            help="the secured broker (SASL_SSL + mTLS + ACLs) in .driftline/kafka-secure, port 9192 by default",
        )
        if name == "start":
            action.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for readiness")
            action.add_argument("--mtls-port", type=int, help="with --secure: the mTLS listener's port")
        action.set_defaults(func=handler)


def _broker(args: argparse.Namespace) -> LocalBroker:
    kafka = load_settings(getattr(args, "config", None)).kafka
    if getattr(args, "secure", False):
        # kafka.local_dir and kafka.local_port name the plain broker; the secured one has its own.
        mtls_port = getattr(args, "mtls_port", None)
        return SecureBroker(args.dir, args.port, mtls_port=mtls_port, cache_root=kafka.cache_dir or None)
    port = configured_port(args.port, kafka.local_port)
    return LocalBroker(args.dir or kafka.local_dir, port, cache_root=kafka.cache_dir or None)


def _start(args: argparse.Namespace) -> int:
    broker = _broker(args)
    status = broker.start(timeout=args.timeout)
    print(f"kafka running at {status.bootstrap_servers} (pid {status.pid}, dir {status.instance_dir})")
    if isinstance(broker, SecureBroker):
        print(f"SASL_SSL (SCRAM-SHA-512) at {broker.bootstrap_servers}, mTLS at {broker.mtls_bootstrap_servers}")
        print(f"CA certificate: {broker.ca_file}")
        print(f"client configs (one per principal, 0600): {broker.clients_dir}/<role>.toml")
        mtls = ", ".join(f"{role}-mtls.toml" for role in MTLS_ROLES)
        print(f"use one with: driftline --config {broker.client_files('ingest').config} ...  (mTLS: {mtls})")
        return 0
    print(f"use it with: export KAFKA_BOOTSTRAP_SERVERS={status.bootstrap_servers}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    broker = _broker(args)
    print("kafka stopped" if broker.stop() else f"kafka was not running (dir {broker.instance_dir})")
    return 0


def _status(args: argparse.Namespace) -> int:
    status = _broker(args).status()
    if status.state == "stopped":
        print(f"kafka stopped (dir {status.instance_dir})")
        return EXIT_STOPPED
    print(f"kafka {status.state} at {status.bootstrap_servers} (pid {status.pid}, log {status.log_path})")
    return EXIT_RUNNING if status.state == "running" else EXIT_UNRESPONSIVE
