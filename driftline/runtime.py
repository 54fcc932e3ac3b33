"""What every driftline process does at start: find the broker, handle stop signals."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from driftline.config import Settings
from driftline.logs import log
from driftline.metrics_server import serve_metrics

__all__ = ["bootstrap_from", "client_config_from", "given_flags", "serve_process_metrics", "stop_on_signals"]

if TYPE_CHECKING:
    from driftline.kafka.clients import ClientConfig

logger = logging.getLogger(__name__)


def bootstrap_from(settings: Settings, explicit: str | None = None, start_local: bool = True) -> str:
    """Broker address: ``explicit`` → ``[kafka] bootstrap_servers`` → $KAFKA_BOOTSTRAP_SERVERS → local broker.

    The local broker (``driftline kafka start``) is started only when nothing else is given.
    """
    from driftline.kafka.bootstrap import resolve_bootstrap
    from driftline.kafka.local_broker import configured_port

    return resolve_bootstrap(
        start_local=start_local,
        instance_dir=Path(settings.kafka.local_dir),
        servers=explicit or settings.kafka.bootstrap_servers,
        port=configured_port(None, settings.kafka.local_port),
        cache_root=settings.kafka.cache_dir or None,
    )


def client_config_from(
    settings: Settings,
    explicit: str | None = None,
    start_local: bool = True,
    *,
    check_topics: Iterable[str] | None = None,
) -> ClientConfig:
    """The process's one Kafka client configuration: ``bootstrap_from``'s brokers and ``[kafka]``'s security.

    Every client the process makes (producers, consumers, admin, faust, aiokafka) is built
    from it, so none connects with other credentials than the rest. With ``check_topics``
    the broker is asked first (``KafkaAdmin.check_access``): a wrong password, an untrusted
    certificate or a topic the principal may not see stops the process in one line.
    """
    from driftline.kafka.admin import KafkaAdmin
    from driftline.kafka.clients import ClientConfig

    client = ClientConfig(bootstrap_from(settings, explicit, start_local), settings.kafka)
    if check_topics is not None:
        KafkaAdmin(client).check_access(check_topics)
    return client


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, so loops finish their transaction and exit 0."""
    stop = threading.Event()

    def _handler(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    return stop


def given_flags(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The flags among ``names`` the user gave (not None): overrides of the same config keys."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def serve_process_metrics(registry: CollectorRegistry, port: int, settings: Settings, **fields: Any) -> int:
    """Serve ``registry`` on ``port`` at ``[metrics] addr`` and log where; returns the bound port."""
    bound = serve_metrics(registry, port, settings.metrics.addr)
    log(logger, logging.INFO, "metrics served", port=bound, **fields)
    return bound
