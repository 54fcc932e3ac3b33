"""A thin, typed wrapper around confluent-kafka's ``AdminClient``.

Why wrap it: the raw client returns dicts of futures and raises ``KafkaException``
holding a ``KafkaError``; every caller would repeat the same unwrapping. Here each
call waits for its futures and either returns plain Python values or raises
``KafkaOperationFailed`` carrying the Kafka error code name. Per-item outcomes that a
caller must judge itself (a topic that already exists) come back as values.

Constructing ``KafkaAdmin`` makes no network call; the client is created on first use.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from driftline.errors import BrokerUnavailable, KafkaAccessDenied, KafkaOperationFailed
from driftline.kafka.clients import KafkaTarget, RefusalWatch, as_client_config
from driftline.kafka.failures import explain

if TYPE_CHECKING:
    from driftline.kafka.topics import TopicSpec

__all__ = ["KafkaAdmin", "NewTopicRequest", "TopicOutcome", "create_topics", "error_code"]

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewTopicRequest:
    """One topic to create; ``replication_factor=-1`` means the broker's default."""

    name: str
    partitions: int
    config: Mapping[str, str]
    replication_factor: int = -1


@dataclass(frozen=True)
class TopicOutcome:
    """Result of creating one topic: ``error`` is ``None`` when it was created."""

    name: str
    error: KafkaError | None

    @property
    def code(self) -> str | None:
        """The Kafka error code name (``TOPIC_ALREADY_EXISTS``), or ``None`` on success."""
        return None if self.error is None else self.error.name()


def error_code(exc: BaseException) -> tuple[str, str]:
    """(code name, description) of a confluent-kafka exception, or of any other one."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        err: KafkaError = exc.args[0]
        return err.name(), err.str()
    return type(exc).__name__, str(exc)


class KafkaAdmin:
    """Admin operations against one cluster, each waiting at most ``timeout`` seconds."""

    def __init__(
        self, bootstrap_servers: KafkaTarget, *, timeout: float = 30.0, config: Mapping[str, Any] | None = None
    ) -> None:
        target = as_client_config(bootstrap_servers)
        self.target = target
        self.bootstrap_servers = str(target)
        self.timeout = timeout
        self._config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            # librdkafka's connection errors go to Python logging, not raw to stderr.
            "logger": logging.getLogger("driftline.kafka.librdkafka"),
        }
        self._config.update(target.admin())
        self._config.update(config or {})
        self._client: AdminClient | None = None

    @property
    def client(self) -> AdminClient:
        """The underlying ``AdminClient`` (created lazily), for calls not wrapped here."""
        if self._client is None:
            self._client = AdminClient(self._config)
        return self._client

    def partition_counts(self, names: Iterable[str], timeout: float | None = None) -> dict[str, int]:
        """Partition count of each named topic that exists (absent topics are left out)."""
        metadata = self._call("list_topics", lambda: self.client.list_topics(timeout=self._t(timeout)))
        wanted = set(names)
        return {
            name: len(topic.partitions)
            for name, topic in metadata.topics.items()
            if name in wanted and topic.error is None
        }

    def wait_for_topics(self, names: Iterable[str], timeout: float | None = None) -> None:
        """Return once every named topic is in the metadata with a leader for each partition.

        A broker answers CreateTopics before its own metadata cache shows the topic (up
        to a second or so when it is also deleting topics); producing or describing in
        that window fails with UNKNOWN_TOPIC_OR_PART.
        """
        pending = set(names)
        t = self._t(timeout)
        deadline = time.monotonic() + t
        while pending:
            metadata = self._call("list_topics", lambda: self.client.list_topics(timeout=t))
            for name in list(pending):
                topic = metadata.topics.get(name)
                if (
                    topic is not None
                    and topic.error is None
                    and topic.partitions
                    and all(p.leader >= 0 for p in topic.partitions.values())
                ):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise KafkaOperationFailed(
                    "wait for topics", "_TIMED_OUT", f"not ready after {t:.0f} s: {sorted(pending)}"
                )
            if pending:
                time.sleep(0.1)

    def ping(self, timeout: float = 2.0) -> bool:
        """True when a broker answers a metadata request and lists at least one broker."""
        try:
            metadata = self.client.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return bool(metadata.brokers)

    def check_access(self, topics: Iterable[str] = (), timeout: float = 15.0) -> None:
        """Fail fast, in one line, when the broker refuses this client or a topic it needs.

        A process calls this before its loop: librdkafka would otherwise retry a wrong
        password or an untrusted certificate forever, and a missing topic ACL would show up
        as a bare code deep inside a transaction. Raises ``KafkaAccessDenied`` naming the
        setting or ACL to check, or ``BrokerUnavailable`` when no broker answers at all.
        """
        try:
            self.client.list_topics(timeout=timeout)
        except KafkaException as exc:
            self._raise_refusal()
            code, detail = error_code(exc)
            hint = (
                "; a secured cluster closes PLAINTEXT connections: check kafka.security_protocol"
                if self.target.protocol == "PLAINTEXT"
                else ""
            )
            raise BrokerUnavailable(
                f"no Kafka broker answered at {self.bootstrap_servers} over {self.target.protocol} within "
                f"{timeout:.0f} s ({code}: {detail}); check kafka.bootstrap_servers{hint}"
            ) from None
        for topic in topics:
            metadata = self._call("list_topics", lambda t=topic: self.client.list_topics(t, timeout=timeout))
            found = metadata.topics.get(topic)
            err = None if found is None else found.error
            if err is not None and explain(err.name(), err.str(), self.target.username) is not None:
                check = explain(err.name(), err.str(), self.target.username) or ""
                raise KafkaAccessDenied(f"describe topic {topic}", err.name(), err.str(), check)

    def create_topics(self, requests: Iterable[NewTopicRequest], timeout: float | None = None) -> list[TopicOutcome]:
        """Ask for every topic in one request; one outcome per topic, in request order."""
        new_topics = [
            NewTopic(
                r.name, num_partitions=r.partitions, replication_factor=r.replication_factor, config=dict(r.config)
            )
            for r in requests
        ]
        if not new_topics:
            return []
        t = self._t(timeout)
        futures = self._call(
            "create_topics",
            lambda: self.client.create_topics(new_topics, operation_timeout=t, request_timeout=t),
        )
        return [TopicOutcome(topic.topic, _settle(futures[topic.topic], t)[1]) for topic in new_topics]

    def delete_topics(self, names: Iterable[str], timeout: float | None = None) -> dict[str, str | None]:
        """Delete topics; maps each name to ``None`` or its error code (e.g. unknown topic)."""
        names = list(names)
        if not names:
            return {}
        t = self._t(timeout)
        futures = self._call(
            "delete_topics", lambda: self.client.delete_topics(names, operation_timeout=t, request_timeout=t)
        )
        result: dict[str, str | None] = {}
        for name in names:
            err = _settle(futures[name], t)[1]
            result[name] = None if err is None else err.name()
        return result

    def topic_configs(self, names: Iterable[str], timeout: float | None = None) -> dict[str, dict[str, str]]:
        """Effective configuration (every key, defaults included) of each named topic."""
        resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
        if not resources:
            return {}
        t = self._t(timeout)
        futures = self._call("describe_configs", lambda: self.client.describe_configs(resources, request_timeout=t))
        configs: dict[str, dict[str, str]] = {}
        for resource, future in futures.items():
            entries, err = _settle(future, t)
            if err is not None:
                raise KafkaOperationFailed(f"describe_configs {resource.name}", err.name(), err.str())
            configs[resource.name] = {key: entry.value for key, entry in entries.items()}
        return configs

    def _raise_refusal(self) -> None:
        """Serve the error callback; raise the refusal it saw (bad credentials, untrusted certificate)."""
        watch = self._config.get("error_cb")
        if self._client is None or not isinstance(watch, RefusalWatch):
            return
        self._client.poll(0)
        if watch.last is not None:
            raise watch.last

    def _t(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else timeout

    def _call(self, operation: str, fn: Any) -> Any:
        try:
            return fn()
        except KafkaException as exc:
            self._raise_refusal()  # a refusal behind the failure: that, not a timeout
            code, detail = error_code(exc)
            check = explain(code, detail, self.target.username)
            if check is not None:
                raise KafkaAccessDenied(operation, code, detail, check) from None
            raise KafkaOperationFailed(operation, code, detail) from exc


def _settle(future: Future[Any], timeout: float) -> tuple[Any, KafkaError | None]:
    """Wait for an admin future: ``(result, None)``, or ``(None, error)`` when Kafka refused."""
    try:
        return future.result(timeout=timeout + 5), None
    except KafkaException as exc:
        if exc.args and isinstance(exc.args[0], KafkaError):
            return None, exc.args[0]
        raise KafkaOperationFailed("admin request", "UNKNOWN", str(exc)) from exc
    except FutureTimeout as exc:
        raise KafkaOperationFailed("admin request", "_TIMED_OUT", f"no answer within {timeout + 5:.0f} s") from exc


def create_topics(
    admin: KafkaAdmin,
    specs: Iterable[TopicSpec],
    *,
    replication_factor: int = -1,
    timeout: float | None = None,
) -> dict[str, Literal["created", "exists"]]:
    """Create the topics that do not exist yet; safe to run any number of times.

    Returns topic name → ``"created"`` or ``"exists"`` in spec order, once every topic is
    usable (in the broker's metadata with partition leaders). An existing topic is left as
    it is (its partitions and configs are not changed). Any other failure raises
    ``KafkaOperationFailed`` with the Kafka error code.
    """
    requests = [NewTopicRequest(s.name, s.partitions, s.config, replication_factor) for s in specs]
    result: dict[str, Literal["created", "exists"]] = {}
    for outcome in admin.create_topics(requests, timeout=timeout):
        if outcome.error is None:
            result[outcome.name] = "created"
        elif outcome.code == "TOPIC_ALREADY_EXISTS":
            result[outcome.name] = "exists"
        else:
            target = getattr(admin, "target", None)  # any admin-like object (tests pass fakes)
            check = explain(outcome.code or "", outcome.error.str(), target.username if target else "")
            if check is not None:
                raise KafkaAccessDenied(f"create topic {outcome.name}", outcome.code or "", outcome.error.str(), check)
            raise KafkaOperationFailed(f"create topic {outcome.name}", outcome.code or "", outcome.error.str())
    if result:
        admin.wait_for_topics(result, timeout=timeout)
    return result
