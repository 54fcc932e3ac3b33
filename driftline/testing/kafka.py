"""Where the test suite gets its Kafka broker, and helpers to produce and read back.

Broker order: ``$KAFKA_BOOTSTRAP_SERVERS`` → testcontainers' Kafka module when a Docker
engine answers → the project's local KRaft broker (``LocalBroker``) on free ports in a
per-session temporary directory. The fixtures in ``conftest.py`` wrap these functions;
tests normally use the fixtures (``kafka_bootstrap``, ``produce``, ``consume_all``, …).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn, TypeVar
from urllib.parse import urlparse

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from driftline.errors import BrokerUnavailable, KafkaOperationFailed
from driftline.kafka.admin import KafkaAdmin
from driftline.kafka.bootstrap import BOOTSTRAP_ENV
from driftline.kafka.clients import KafkaTarget, as_client_config
from driftline.kafka.local_broker import LocalBroker
from driftline.kafka.secure_broker import SecureBroker

__all__ = [
    "NoBroker",
    "Record",
    "TestBroker",
    "acquire_broker",
    "broker_unavailable",
    "consume_all_records",
    "docker_engine_answers",
    "free_ports",
    "produce_records",
    "secure_local_broker",
    "start_on_free_ports",
]

Headers = Sequence[tuple[str, bytes | str | None]]
BrokerT = TypeVar("BrokerT", bound=LocalBroker)


class NoBroker(Exception):
    """No broker could be had; the message lists why each source was not usable."""


@dataclass
class TestBroker:
    """A broker for the session: its address, where it came from, how to release it."""

    __test__ = False  # not a test class, despite the name

    bootstrap_servers: str
    source: str  # "env", "testcontainers" or "local"
    local: LocalBroker | None = None
    close: Callable[[], object] = field(default=lambda: None)


@dataclass(frozen=True)
class Record:
    """One consumed message, detached from the confluent-kafka ``Message`` object."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp_ms: int = 0

    def header(self, name: str) -> bytes | None:
        """The last value of header ``name``, or None."""
        found = [value for key, value in self.headers if key == name]
        return found[-1] if found else None


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (held together while picking, so no repeats)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def docker_engine_answers(timeout: float = 1.0) -> tuple[bool, str]:
    """Ping the Docker engine's API (``GET /_ping``) with a short timeout; never hangs."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    url = urlparse(host)
    try:
        if url.scheme == "unix":
            if not Path(url.path).exists():
                return False, f"no Docker engine (no socket at {url.path})"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: str | tuple[str, int] = url.path
        elif url.scheme in ("tcp", "http"):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (url.hostname or "127.0.0.1", url.port or 2375)
        else:
            return False, f"DOCKER_HOST={host} is not probed (only unix:// and tcp://)"
        with sock:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = sock.recv(256)
    except OSError as exc:
        return False, f"no Docker engine answers at {host} ({exc})"
    if b" 200 " in reply.split(b"\r\n", 1)[0]:
        return True, "docker engine answers"
    return False, f"Docker engine at {host} answered {reply[:60]!r}"


def acquire_broker(tmp_dir: Path) -> TestBroker:
    """A broker from the first source that works; ``NoBroker`` lists what each said."""
    env = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if env:
        if not KafkaAdmin(env).ping(timeout=15.0):
            raise NoBroker(f"{BOOTSTRAP_ENV}={env} is set but no broker answers there")
        return TestBroker(env, "env")
    reasons = []
    docker_ok, why = docker_engine_answers()
    if docker_ok:
        try:
            return _testcontainers_broker()
        except Exception as exc:
            reasons.append(f"testcontainers Kafka failed: {exc}")
    else:
        reasons.append(why)
    try:
        return _local_broker(tmp_dir)
    except BrokerUnavailable as exc:
        reasons.append(f"local broker: {exc}")
    raise NoBroker("; ".join(reasons))


def _testcontainers_broker() -> TestBroker:
    try:
        from testcontainers.community.kafka import KafkaContainer  # testcontainers >= 4.14
    except ImportError:
        from testcontainers.kafka import KafkaContainer

    container = KafkaContainer().with_kraft()
    container.start()
    return TestBroker(container.get_bootstrap_server(), "testcontainers", close=container.stop)


def _local_broker(tmp_dir: Path, attempts: int = 3) -> TestBroker:
    """The project's broker on free ports in ``tmp_dir``."""
    broker = start_on_free_ports(
        lambda attempt, ports: LocalBroker(tmp_dir / f"instance-{attempt}", *ports, die_with_parent=True),
        attempts=attempts,
    )
    return TestBroker(broker.bootstrap_servers, "local", local=broker, close=broker.stop)


def secure_local_broker(tmp_dir: Path, attempts: int = 3) -> SecureBroker:
    """A started ``SecureBroker`` on free ports in ``tmp_dir`` (stopped by the kernel if we die)."""
    return start_on_free_ports(
        lambda attempt, ports: SecureBroker(tmp_dir / f"secure-{attempt}", *ports, die_with_parent=True),
        n_ports=3,
        attempts=attempts,
    )


def start_on_free_ports(make: Callable[[int, list[int]], BrokerT], n_ports: int = 2, attempts: int = 3) -> BrokerT:
    """``make(attempt, ports)``'s broker, started on ``n_ports`` free ports (client, controller, …).

    A port grabbed by someone else between picking and binding → another try on new ports.
    """
    error: BrokerUnavailable | None = None
    for attempt in range(attempts):
        broker = make(attempt, free_ports(n_ports))
        try:
            broker.start(timeout=90.0)
        except BrokerUnavailable as exc:
            error = exc
            if "already in use" not in str(exc) and "Address already in use" not in str(exc):
                raise
            continue
        return broker
    assert error is not None
    raise error


def broker_unavailable(reason: str) -> NoReturn:
    """No broker for a test: a failure when ``CI=true`` (an integration test never skips
    silently there), a skip on a developer's machine without Java or Maven."""
    import pytest  # a test dependency: only tests call this

    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def produce_records(
    bootstrap: KafkaTarget,
    topic: str,
    records: Iterable[tuple[bytes | str | None, bytes | str | None]]
    | Iterable[tuple[bytes | str | None, bytes | str | None, Headers]],
    *,
    partition: int | None = None,
    transactional: bool = False,
    config: dict[str, object] | None = None,
) -> int:
    """Produce ``(key, value[, headers])`` tuples, wait for every delivery, return the count.

    ``transactional=True`` sends them in one committed transaction, as driftline's
    exactly-once stages do (so a ``read_committed`` reader's view can be checked).
    ``bootstrap`` may be a ``ClientConfig`` (a secured cluster: its principal's security).
    """
    target = as_client_config(bootstrap)
    settings: dict[str, object] = target.librdkafka(
        {"bootstrap.servers": str(target), "linger.ms": 5, "message.max.bytes": 8 * 1024 * 1024}
    )
    if transactional:
        settings["transactional.id"] = f"test-{uuid.uuid4()}"
    settings.update(config or {})
    producer = Producer(settings)
    if transactional:
        producer.init_transactions(30)
        producer.begin_transaction()
    failures: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            failures.append(err.str())

    count = 0
    extra = {} if partition is None else {"partition": partition}
    for key, value, *rest in records:
        headers = list(rest[0]) if rest else None
        while True:
            try:
                producer.produce(topic, key=key, value=value, headers=headers, on_delivery=on_delivery, **extra)
                break
            except BufferError:
                producer.poll(0.1)
        count += 1
        producer.poll(0)
    if transactional:
        producer.commit_transaction(60)
    if producer.flush(60) != 0:
        raise KafkaOperationFailed("produce", "_TIMED_OUT", f"{topic}: messages still in flight after 60 s")
    if failures:
        raise KafkaOperationFailed("produce", "DELIVERY", f"{topic}: {len(failures)} failed, first: {failures[0]}")
    return count


def consume_all_records(
    bootstrap: KafkaTarget,
    topic: str,
    *,
    min_count: int = 0,
    timeout: float = 30.0,
    isolation: str = "read_committed",
) -> list[Record]:
    """Every record of ``topic`` from the beginning up to its end, in partition order.

    "End" is the end each partition had when reached (for ``read_committed``, the last
    stable offset); with ``min_count`` it keeps reading until at least that many arrived.
    Raises ``AssertionError`` naming what was missing if ``timeout`` passes first.
    Reads with a fresh, never-committing consumer group, so nothing else is disturbed.
    """
    target = as_client_config(bootstrap)  # a ClientConfig: its principal's security too
    consumer = Consumer(
        target.librdkafka(
            {
                "bootstrap.servers": str(target),
                "group.id": f"consume-all-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": isolation,
                "auto.offset.reset": "earliest",
            }
        )
    )
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10.0).topics[topic].partitions)
        if not partitions:
            raise KafkaOperationFailed("consume_all", "UNKNOWN_TOPIC_OR_PART", topic)
        consumer.assign([TopicPartition(topic, p, -2) for p in partitions])  # -2 = OFFSET_BEGINNING
        records: list[Record] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=0.2):
                err = msg.error()
                if err is not None and err.code() == KafkaError._PARTITION_EOF:
                    at_end.add(msg.partition())
                elif err is not None:
                    raise KafkaOperationFailed(f"consume {topic}", err.name(), err.str())
                else:
                    at_end.discard(msg.partition())
                    records.append(_record(msg))
            if len(at_end) == len(partitions) and len(records) >= min_count:
                return sorted(records, key=lambda r: (r.partition, r.offset))
        raise AssertionError(
            f"{topic}: read {len(records)} records (wanted >= {min_count}) and reached the end of "
            f"{len(at_end)}/{len(partitions)} partitions within {timeout} s"
        )
    finally:
        with contextlib.suppress(Exception):
            consumer.close()


def _record(msg: object) -> Record:
    return Record(
        topic=msg.topic(),  # type: ignore[attr-defined]
        partition=msg.partition(),  # type: ignore[attr-defined]
        offset=msg.offset(),  # type: ignore[attr-defined]
        key=msg.key(),  # type: ignore[attr-defined]
        value=msg.value(),  # type: ignore[attr-defined]
        headers=tuple(msg.headers() or ()),  # type: ignore[attr-defined]
        timestamp_ms=msg.timestamp()[1],  # type: ignore[attr-defined]
    )
