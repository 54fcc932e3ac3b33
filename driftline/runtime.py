"""What every driftline process does at start: find the broker, handle stop signals."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from driftline.config import Settings

__all__ = ["bootstrap_from", "stop_on_signals"]


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


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, so loops finish their transaction and exit 0."""
    stop = threading.Event()

    def _handler(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    return stop
