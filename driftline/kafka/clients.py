"""confluent-kafka client configurations for driftline's exactly-once stages.

Ingest and trainer read with ``read_committed`` and never auto-commit: their offsets go
into the producer's transaction (``send_offsets_to_transaction``), so the outputs and the
progress they depend on become visible together or not at all.

One client layer (issue 16 item 3): a process builds one ``ClientConfig`` from its
settings (``driftline.runtime.client_config_from``) and hands it to everything that makes
a client. Every factory here takes either that or a bare bootstrap string (tests, benches:
PLAINTEXT, exactly the configuration they always had); with a ``ClientConfig`` the
``[kafka]`` security properties (``driftline.kafka.security.librdkafka_properties``) go on
top, with an error callback that turns a refusal (bad credentials, untrusted certificate,
missing ACL) into one ``KafkaAccessDenied`` naming the setting to check, and librdkafka's
log routed through Python logging with the per-attempt repeats of that refusal dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from driftline.errors import KafkaAccessDenied
from driftline.kafka.failures import explain, is_refusal_log
from driftline.kafka.security import KafkaSecurity, aiokafka_credentials, librdkafka_properties, masked_properties
from driftline.logs import log

__all__ = [
    "FETCH_TUNING",
    "KEY_PARTITIONER",
    "ClientConfig",
    "KafkaTarget",
    "as_client_config",
    "bootstrap_of",
    "producer_config",
    "read_committed_config",
    "transactional_consumer_config",
    "transactional_producer_config",
    "with_security",
]

KEY_PARTITIONER = "murmur2_random"
"""The Java client's partitioner (and aiokafka's, so faust's): one key lands in one partition
whichever client wrote it. librdkafka's default (``consistent_random``, CRC32) put the rows
``models register`` wrote to ``driftline.labeled`` in another partition than the stream's rows
of the same model, so training-set reads scanned both and per-key order across writers broke."""

FETCH_TUNING: dict[str, Any] = {
    "queued.min.messages": 200000,
    "max.partition.fetch.bytes": 10 * 1024 * 1024,
}
"""Large fetches and a deep prefetch queue: with librdkafka's defaults a consume loop of
small events tops out far below what the broker serves (bench/ingest_throughput.py)."""


_LOG = logging.getLogger(__name__)
LIBRDKAFKA_LOGGER = "driftline.kafka.librdkafka"


class RefusalWatch:
    """librdkafka's ``error_cb``: a refusal is logged once (per code, per minute) as one line and kept.

    Not raised from the callback: confluent-kafka then runs delivery callbacks with the
    exception still set (``SystemError``). A long-running client keeps retrying (librdkafka
    does) with that one line; a short call (``KafkaAdmin``) raises ``last`` when it fails.
    Other errors (a broker away, a timeout) are librdkafka's to retry: one warning per code a minute.
    """

    def __init__(self, bootstrap: str, username: str = "", repeat_s: float = 60.0) -> None:
        self.bootstrap = bootstrap
        self.username = username
        self.repeat_s = repeat_s
        self.last: KafkaAccessDenied | None = None
        self._logged: dict[str, float] = {}

    def __call__(self, error: Any) -> None:
        try:
            code, detail = error.name(), error.str()
        except SystemError:
            # a fatal error: confluent-kafka has set its KafkaException before calling us, so no
            # call on ``error`` works; the client raises that exception itself
            return
        check = explain(code, detail, self.username)
        if check is None:
            if self._first_in_a_while(code):
                log(_LOG, logging.WARNING, "kafka client error (librdkafka retries)", code=code, detail=detail)
            return
        who = f" as User:{self.username}" if self.username else ""
        self.last = KafkaAccessDenied(f"connect to {self.bootstrap}{who}", code, _first_line(detail), check)
        if self._first_in_a_while(code):
            log(_LOG, logging.ERROR, str(self.last), code=code, check=check)

    def _first_in_a_while(self, code: str) -> bool:
        now = time.monotonic()
        if now - self._logged.get(code, -self.repeat_s) < self.repeat_s:
            return False
        self._logged[code] = now
        return True


class QuietRepeats(logging.Filter):
    """Drops librdkafka's per-attempt copies of a refusal and repeats of one line within ``window_s``."""

    def __init__(self, window_s: float = 30.0) -> None:
        super().__init__()
        self.window_s = window_s
        self._seen: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if is_refusal_log(message):
            return False
        key = message.split(" (after ", 1)[0]
        now = time.monotonic()
        if now - self._seen.get(key, -self.window_s) < self.window_s:
            return False
        self._seen[key] = now
        return True


def _librdkafka_logger() -> logging.Logger:
    logger = logging.getLogger(LIBRDKAFKA_LOGGER)
    if not any(isinstance(f, QuietRepeats) for f in logger.filters):
        logger.addFilter(QuietRepeats())
    return logger


def _first_line(text: str) -> str:
    return text.split(": ", 1)[-1] if text.startswith(("sasl_ssl://", "ssl://", "sasl_plaintext://")) else text


@dataclass(frozen=True)
class ClientConfig:
    """How this process reaches Kafka: the bootstrap and ``[kafka]``'s security, for every client kind.

    Built once per process; the factories resolve ``env:``/``file:`` secrets on each call,
    so a rotated secret file reaches the next client made. ``str()`` is the bootstrap (log
    lines, faust's broker list); ``repr`` masks the secrets.
    """

    bootstrap_servers: str
    security: KafkaSecurity | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return self.bootstrap_servers

    @property
    def protocol(self) -> str:
        return "PLAINTEXT" if self.security is None else self.security.security_protocol

    @property
    def username(self) -> str:
        return "" if self.security is None else self.security.sasl_username

    def security_properties(self) -> dict[str, str]:
        """``librdkafka_properties`` of the settings (empty for a bare bootstrap)."""
        return {} if self.security is None else librdkafka_properties(self.security)

    def librdkafka(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` with the security properties on top, the refusal watch and the quiet logger."""
        if self.security is None:
            return dict(config)
        return {
            "error_cb": RefusalWatch(self.bootstrap_servers, self.username),
            "logger": _librdkafka_logger(),
            **with_security(config, self.security_properties()),
        }

    # -- one factory per client kind ---------------------------------------------------
    def producer(self, **overrides: Any) -> dict[str, Any]:
        return producer_config(self, **overrides)

    def transactional_producer(self, transactional_id: str, **overrides: Any) -> dict[str, Any]:
        return transactional_producer_config(self, transactional_id, **overrides)

    def transactional_consumer(self, group_id: str, **overrides: Any) -> dict[str, Any]:
        return transactional_consumer_config(self, group_id, **overrides)

    def read_committed_consumer(self, group_id: str, **overrides: Any) -> dict[str, Any]:
        return read_committed_config(self, group_id, **overrides)

    def admin(self, **overrides: Any) -> dict[str, Any]:
        """An ``AdminClient``'s configuration (``KafkaAdmin`` takes the ``ClientConfig`` itself)."""
        return self.librdkafka({"bootstrap.servers": self.bootstrap_servers, **overrides})

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """``AIOKafkaConsumer(**...)``: the bootstrap and the same security, in aiokafka's terms."""
        auth = {} if self.security is None else aiokafka_credentials(self.security).client_kwargs()
        return {"bootstrap_servers": self.bootstrap_servers, **auth}

    def faust_credentials(self) -> Any:
        """``faust.App(broker_credentials=...)`` (None for PLAINTEXT)."""
        return None if self.security is None else aiokafka_credentials(self.security).faust_credentials()

    def masked(self) -> dict[str, Any]:
        """The librdkafka properties fit for a log line."""
        return masked_properties({"bootstrap.servers": self.bootstrap_servers, **self.security_properties()})


KafkaTarget = str | ClientConfig
"""What every client-making function takes: a ``ClientConfig``, or a bare bootstrap (PLAINTEXT)."""


def as_client_config(target: KafkaTarget) -> ClientConfig:
    """``target`` as a ``ClientConfig`` (a bare bootstrap string: PLAINTEXT, no callbacks)."""
    return target if isinstance(target, ClientConfig) else ClientConfig(target)


def bootstrap_of(target: KafkaTarget) -> str:
    """The bootstrap servers of ``target``."""
    return str(target)


def transactional_consumer_config(bootstrap: KafkaTarget, group_id: str, **overrides: Any) -> dict[str, Any]:
    """A read_committed consumer whose offsets are committed only through a producer transaction."""
    tuned: dict[str, Any] = {
        "enable.auto.offset.store": False,
        "partition.assignment.strategy": "cooperative-sticky",
        "fetch.wait.max.ms": 100,
        **FETCH_TUNING,
    }
    return read_committed_config(bootstrap, group_id, **{**tuned, **overrides})


def producer_config(bootstrap: KafkaTarget, **overrides: Any) -> dict[str, Any]:
    """Every librdkafka producer's base: the bootstrap and the key partitioner Java and faust use."""
    target = as_client_config(bootstrap)
    return target.librdkafka({"bootstrap.servers": str(target), "partitioner": KEY_PARTITIONER, **overrides})


def transactional_producer_config(bootstrap: KafkaTarget, transactional_id: str, **overrides: Any) -> dict[str, Any]:
    """An idempotent producer with a stable ``transactional.id`` (fences zombie instances)."""
    config: dict[str, Any] = {
        **producer_config(bootstrap),
        "transactional.id": transactional_id,
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": "lz4",
        "transaction.timeout.ms": 60000,
        "message.max.bytes": 8 * 1024 * 1024,
    }
    config.update(overrides)
    return config


def read_committed_config(bootstrap: KafkaTarget, group_id: str, **overrides: Any) -> dict[str, Any]:
    """A plain reader that sees only committed transactional output (tests, demo, CLI)."""
    target = as_client_config(bootstrap)
    config: dict[str, Any] = {
        "bootstrap.servers": str(target),
        "group.id": group_id,
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
    }
    config.update(overrides)
    return target.librdkafka(config)


def with_security(config: Mapping[str, Any], security: Mapping[str, str]) -> dict[str, Any]:
    """``config`` with the security properties on top (change those in ``[kafka.librdkafka]``, not here).

    On top, not underneath: a client must never connect with other credentials or a
    weaker protocol than ``[kafka]`` says because a stage's own defaults said otherwise.
    """
    return {**config, **security}
