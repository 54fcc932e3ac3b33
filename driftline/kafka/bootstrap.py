"""Find the Kafka cluster to talk to, starting the local broker when none is given.

Why one function: every process and CLI command answers "which brokers?" the same way,
in one stated order — an explicit address, else ``$KAFKA_BOOTSTRAP_SERVERS`` (then nothing
is started), else the project's local broker (started if it is not running).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from driftline.errors import BrokerUnavailable
from driftline.kafka.local_broker import LocalBroker

__all__ = ["BOOTSTRAP_ENV", "resolve_bootstrap"]

BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
_LOG = logging.getLogger(__name__)


def resolve_bootstrap(
    start_local: bool = True,
    instance_dir: str | os.PathLike[str] | None = None,
    *,
    servers: str = "",
    port: int | None = None,
    cache_root: str | os.PathLike[str] | None = None,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
) -> str:
    """The bootstrap servers to use.

    ``servers`` (e.g. ``--bootstrap-servers`` or ``kafka.bootstrap_servers``) wins, then
    ``$KAFKA_BOOTSTRAP_SERVERS``; with neither, the local broker in ``instance_dir``
    (default ``./.driftline/kafka``) is used, and started unless ``start_local`` is False,
    in which case a stopped broker raises ``BrokerUnavailable``.
    """
    environ = os.environ if env is None else env
    chosen = servers.strip() or environ.get(BOOTSTRAP_ENV, "").strip()
    if chosen:
        return chosen
    broker = LocalBroker(Path(instance_dir) if instance_dir else None, port, cache_root=cache_root)
    if broker.status().state == "running":
        return broker.bootstrap_servers
    if not start_local:
        raise BrokerUnavailable(
            f"no {BOOTSTRAP_ENV} set and the local broker in {broker.instance_dir} is not running; "
            "run `driftline kafka start` or set KAFKA_BOOTSTRAP_SERVERS=host:port"
        )
    _LOG.info("no %s set; using the local broker in %s", BOOTSTRAP_ENV, broker.instance_dir)
    return broker.start(timeout=timeout).bootstrap_servers
