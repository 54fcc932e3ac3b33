"""Shared fixtures: one real Kafka broker per session, isolated topics and groups per test.

The broker starts lazily, only when a test asks for ``kafka_bootstrap`` (directly or via
another fixture), so ``pytest tests/unit`` needs no Java. Tests that need Kafka carry
``@pytest.mark.kafka`` (added automatically to any test using ``kafka_bootstrap``).
Without a broker they fail with the reason when ``CI=true`` and are skipped otherwise.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

import pytest

from driftline.kafka.admin import KafkaAdmin, create_topics
from driftline.kafka.topics import TopicNames, TopicSpec, topic_specs
from driftline.testing.kafka import (
    NoBroker,
    Record,
    TestBroker,
    acquire_broker,
    broker_unavailable,
    consume_all_records,
    produce_records,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the broker ``kafka``, so ``-m "not kafka"`` deselects it."""
    for item in items:
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("kafka"):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestBroker]:
    """The session's broker (``.source`` is "env", "testcontainers" or "local"); released at the end."""
    try:
        broker = acquire_broker(tmp_path_factory.mktemp("kafka"))
    except NoBroker as exc:
        broker_unavailable(f"no Kafka broker could be had: {exc}")
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: TestBroker) -> str:
    """``host:port`` of the session's broker."""
    return kafka_broker.bootstrap_servers


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> KafkaAdmin:
    """An admin client for the session's broker."""
    return KafkaAdmin(kafka_bootstrap)


@pytest.fixture
def group_id() -> str:
    """A consumer group id no other test uses."""
    return f"g-{uuid.uuid4().hex}"


@pytest.fixture
def topic_factory(kafka_admin: KafkaAdmin) -> Iterator[Callable[..., str]]:
    """``make(partitions=1, config=None, prefix="t") -> name``: a fresh uuid-named topic, deleted after the test."""
    created: list[str] = []

    def make(partitions: int = 1, config: Mapping[str, str] | None = None, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        create_topics(kafka_admin, [TopicSpec(name, partitions, dict(config or {}))])
        created.append(name)
        return name

    yield make
    _delete_quietly(kafka_admin, created)


@pytest.fixture
def topic_names(kafka_admin: KafkaAdmin) -> Iterator[TopicNames]:
    """Every driftline topic (production specs) under a per-test uuid prefix, created; deleted after."""
    names = TopicNames(prefix=f"t-{uuid.uuid4().hex[:10]}.")
    create_topics(kafka_admin, topic_specs(names))
    yield names
    _delete_quietly(kafka_admin, names.all())


@pytest.fixture
def produce(kafka_bootstrap: str) -> Callable[..., int]:
    """``produce(topic, [(key, value[, headers]), ...], transactional=False, partition=None) -> count``."""
    return partial(produce_records, kafka_bootstrap)


@pytest.fixture
def consume_all(kafka_bootstrap: str) -> Callable[..., list[Record]]:
    """``consume_all(topic, min_count=0, timeout=30, isolation="read_committed") -> [Record]``."""
    return partial(consume_all_records, kafka_bootstrap)


def _delete_quietly(admin: KafkaAdmin, names: Any) -> None:
    """Drop a test's topics so a long session does not pile them up; failures do not matter."""
    with contextlib.suppress(Exception):
        admin.delete_topics(list(names), timeout=10.0)
