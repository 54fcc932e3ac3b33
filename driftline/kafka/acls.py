"""Least privilege per process: the ACLs each driftline principal needs, and applying them.

Why a table in code: the grants follow from the topic names, group ids and transactional
ids a deployment uses (``[topics] prefix``, ``DEPLOYMENT_IDS``), so they are computed from
the same settings the processes read, and ``driftline acls apply`` (idempotent) and
docs/secure-kafka.md state one thing. ``grants`` is pure; ``apply_grants``/``granted``
talk to the broker through the Admin API.

Kafka implies DESCRIBE from READ/WRITE, so a topic read is ``READ`` and a write ``WRITE``.
Readers that only assign partitions (state loads, training-set reads, subscribers) still
look up their group's coordinator (a librdkafka consumer always has a ``group.id``), which
needs ``DESCRIBE`` on the group, not ``READ``: they cannot commit offsets. Since Kafka 3.0
(KIP-679) an idempotent producer needs ``WRITE`` on a topic, not ``IDEMPOTENT_WRITE`` on the
cluster, so no principal gets a cluster ACL.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from driftline.errors import KafkaOperationFailed
from driftline.kafka.admin import KafkaAdmin
from driftline.kafka.topics import TopicNames

__all__ = [
    "READER_GROUP_PREFIXES",
    "ROLES",
    "DeploymentIds",
    "Grant",
    "apply_grants",
    "granted",
    "grants",
]

ROLES = ("ingest", "stream", "trainer", "operator", "subscriber")
#: Random group ids of assign-only readers (``driftline.kafka.reading``, the trainer's
#: training-set reader, ``ModelSubscriber``): coordinator lookup only.
READER_GROUP_PREFIXES = {
    "state": "driftline-state-",
    "training_set": "driftline-training-set-",
    "subscriber": "driftline-subscriber-",
}


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW ACL: ``principal`` may ``operation`` on ``resource`` ``name`` (LITERAL or PREFIXED)."""

    principal: str
    resource: str  # TOPIC, GROUP, TRANSACTIONAL_ID
    name: str
    operation: str  # READ, WRITE, DESCRIBE, CREATE
    pattern: str = "LITERAL"

    def line(self) -> str:
        """How ``acls show`` and the docs print it."""
        star = "*" if self.pattern == "PREFIXED" else ""
        return f"{self.principal:<18} {self.operation:<9} {self.resource:<17} {self.name}{star}"


@dataclass(frozen=True)
class DeploymentIds:
    """The group ids, transactional ids and faust app id of one deployment (``Settings``'s)."""

    ingest_group: str = "driftline-ingest"
    ingest_transactional_id: str = "driftline-ingest-0"
    trainer_group: str = "driftline-trainer"
    trainer_transactional_id: str = "driftline-trainer-0"
    stream_app_id: str = "driftline-stream"

    @classmethod
    def of(cls, settings: Any) -> DeploymentIds:
        """From ``driftline.config.Settings`` (the prefix already applied there)."""
        return cls(
            settings.ingest.group_id,
            settings.ingest.transactional_id,
            settings.trainer.group_id,
            settings.trainer.transactional_id,
            settings.stream.app_id,
        )


def grants(names: TopicNames, ids: DeploymentIds, principals: Mapping[str, str] | None = None) -> list[Grant]:
    """Every ACL of every role; ``principals`` maps a role to its principal (default ``User:<role>``)."""
    who = {role: f"User:{role}" for role in ROLES} | dict(principals or {})
    out: list[Grant] = []

    def topics(role: str, operation: str, *topic_names: str) -> None:
        out.extend(Grant(who[role], "TOPIC", t, operation) for t in topic_names)

    # ingest: raw topics in, observations and the DLQ out, in its transactions
    topics("ingest", "READ", names.features, names.predictions, names.labels)
    topics("ingest", "WRITE", names.observations, names.dlq)
    out.append(Grant(who["ingest"], "GROUP", ids.ingest_group, "READ"))
    out.append(Grant(who["ingest"], "TRANSACTIONAL_ID", ids.ingest_transactional_id, "WRITE"))
    # stream: faust's group and its own changelog/repartition topics (named after the app id);
    # CREATE on the topics it uses because faust declares them (an existing topic stays as it is)
    stream_topics = (names.observations, names.model_updates, names.labeled, names.windows, names.control, names.dlq)
    topics("stream", "READ", names.observations, names.model_updates)
    topics("stream", "WRITE", names.labeled, names.windows, names.control, names.dlq)
    topics("stream", "CREATE", *stream_topics)
    out.extend(
        Grant(who["stream"], "TOPIC", f"{ids.stream_app_id}-", op, "PREFIXED") for op in ("READ", "WRITE", "CREATE")
    )
    out.append(Grant(who["stream"], "GROUP", ids.stream_app_id, "READ"))
    # trainer: the only writer of registry, model-updates and audit
    topics("trainer", "READ", names.control, names.labeled, names.registry, names.model_updates, names.audit)
    topics("trainer", "WRITE", names.registry, names.model_updates, names.audit, names.dlq)
    out.append(Grant(who["trainer"], "GROUP", ids.trainer_group, "READ"))
    out.append(Grant(who["trainer"], "TRANSACTIONAL_ID", ids.trainer_transactional_id, "WRITE"))
    for prefix in (READER_GROUP_PREFIXES["state"], READER_GROUP_PREFIXES["training_set"]):
        out.append(Grant(who["trainer"], "GROUP", prefix, "DESCRIBE", "PREFIXED"))
    # operator (the CLI): commands to control; reads the registry's topics
    topics("operator", "WRITE", names.control)
    topics("operator", "READ", names.registry, names.model_updates, names.audit)
    out.append(Grant(who["operator"], "GROUP", READER_GROUP_PREFIXES["state"], "DESCRIBE", "PREFIXED"))
    # subscriber: model-updates only
    topics("subscriber", "READ", names.model_updates)
    out.append(Grant(who["subscriber"], "GROUP", READER_GROUP_PREFIXES["subscriber"], "DESCRIBE", "PREFIXED"))
    return out


def _binding(grant: Grant) -> AclBinding:
    return AclBinding(
        ResourceType[grant.resource],
        grant.name,
        ResourcePatternType[grant.pattern],
        grant.principal,
        "*",
        AclOperation[grant.operation],
        AclPermissionType.ALLOW,
    )


def _grant(binding: Any) -> Grant:
    return Grant(
        binding.principal,
        binding.restype.name,
        binding.name,
        binding.operation.name,
        binding.resource_pattern_type.name,
    )


def granted(admin: KafkaAdmin, timeout: float = 15.0) -> list[Grant]:
    """Every ALLOW ACL on the cluster, sorted by principal (what ``driftline acls show`` prints)."""
    everything = AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY, AclPermissionType.ALLOW
    )
    future = admin._call("describe_acls", lambda: admin.client.describe_acls(everything, request_timeout=timeout))
    bindings = admin._call("describe_acls", lambda: future.result(timeout=timeout + 5))
    return sorted(_grant(b) for b in bindings)


def apply_grants(admin: KafkaAdmin, wanted: Iterable[Grant], timeout: float = 15.0) -> tuple[int, int]:
    """Create the ACLs of ``wanted`` that are missing; (created, already there). Never removes one.

    Returns once the authorizer lists them: the broker answers CreateAcls before applying
    them, and a process started right after ``acls apply`` would otherwise be refused.
    """
    present = set(granted(admin, timeout))
    missing = sorted(set(wanted) - present)
    if missing:
        futures = admin._call(
            "create_acls", lambda: admin.client.create_acls([_binding(g) for g in missing], request_timeout=timeout)
        )
        for binding, future in futures.items():
            try:
                future.result(timeout=timeout + 5)
            except Exception as exc:
                raise KafkaOperationFailed(
                    f"create ACL {_grant(binding).line()}", type(exc).__name__, str(exc)
                ) from exc
        deadline = time.monotonic() + timeout
        while not set(missing) <= set(granted(admin, timeout)):
            if time.monotonic() > deadline:
                raise KafkaOperationFailed(
                    "create ACLs", "_TIMED_OUT", f"not listed by the broker after {timeout:.0f} s"
                )
            time.sleep(0.2)
    return len(missing), len(set(wanted)) - len(missing)
