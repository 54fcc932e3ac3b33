"""Every topic driftline uses, declared once: names, partition counts and configs.

Why here: processes, the CLI and tests all need the same names and the same topic
settings (pure: ``driftline.kafka.admin.create_topics`` creates them); a ``TopicNames``
instance is passed around instead of string literals, and a
prefix gives tests (and side-by-side deployments) their own isolated set of topics.

Partition choices:

- event topics (``features``, ``predictions``, ``labels``), ``observations``, ``labeled``,
  ``dlq``, ``control`` and ``windows``: ``event_partitions`` (6), all keyed by ``model_id``, so one
  model's events, batches and control commands stay in order on one partition and the
  ingest/faust/trainer consumer groups can spread models over workers.
- ``registry``, ``model-updates`` and ``audit``: 1 partition. The trainer is their only
  writer, volume is a few records per model version, and one partition gives every reader
  (subscribers read the whole topic, not as a group) a single total order.

Examples:
    >>> names = TopicNames(prefix="t1.")
    >>> names.model_updates
    't1.driftline.model-updates'
    >>> {s.name: s.partitions for s in topic_specs(names, event_partitions=2)}["t1.driftline.features"]
    2
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import overload

from driftline.errors import ConfigError

__all__ = ["COMPACTED", "FOREVER", "MAX_MESSAGE_BYTES", "TopicNames", "TopicSpec", "topic_specs"]

_VALID_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")

#: Largest record any driftline topic accepts (topic ``max.message.bytes``). Observation
#: micro-batches and DLQ copies of oversized input go past Kafka's 1 MiB default;
#: producers set ``message.max.bytes`` to match (``driftline.kafka.clients``).
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
_BASE: Mapping[str, str] = MappingProxyType({"max.message.bytes": str(MAX_MESSAGE_BYTES)})
#: Keep the latest record per key (registry entries, current deployment per model).
COMPACTED: Mapping[str, str] = MappingProxyType({**_BASE, "cleanup.policy": "compact"})
#: Never delete by age or size (the audit trail and training lineage).
FOREVER: Mapping[str, str] = MappingProxyType(
    {**_BASE, "cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
)
#: Bad input is kept long enough for an operator to look at it and replay it.
_DLQ: Mapping[str, str] = MappingProxyType({**_BASE, "retention.ms": str(30 * 24 * 3600 * 1000)})


@dataclass(frozen=True)
class TopicSpec:
    """One topic: name, partition count and topic-level configs (read-only after creation)."""

    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not _VALID_NAME.match(self.name) or self.name in (".", ".."):
            raise ConfigError("topics", f"invalid Kafka topic name {self.name!r}")
        if self.partitions < 1:
            raise ConfigError("topics", f"{self.name}: partitions must be >= 1, got {self.partitions}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.config.items()):
            raise ConfigError("topics", f"{self.name}: topic config keys and values must be strings")
        object.__setattr__(self, "config", MappingProxyType(dict(self.config)))


class _Topic:
    """A ``TopicNames`` attribute: the default name with the instance's prefix in front."""

    def __init__(self, base: str) -> None:
        self.base = base

    def __set_name__(self, owner: type, logical: str) -> None:
        self.logical = logical

    @overload
    def __get__(self, names: None, owner: type) -> _Topic: ...
    @overload
    def __get__(self, names: TopicNames, owner: type) -> str: ...
    def __get__(self, names: TopicNames | None, owner: type) -> str | _Topic:
        return self if names is None else names.prefix + self.base


@dataclass(frozen=True)
class TopicNames:
    """The name of every driftline topic; attributes are the logical names used in code.

    ``prefix`` goes in front of every name: tests use a uuid prefix for an isolated set,
    deployments may use one to share a cluster.
    """

    prefix: str = ""

    features = _Topic("driftline.features")
    predictions = _Topic("driftline.predictions")
    labels = _Topic("driftline.labels")
    observations = _Topic("driftline.observations")
    dlq = _Topic("driftline.dlq")
    labeled = _Topic("driftline.labeled")
    control = _Topic("driftline.control")
    registry = _Topic("driftline.registry")
    model_updates = _Topic("driftline.model-updates")
    audit = _Topic("driftline.audit")
    windows = _Topic("driftline.windows")

    def as_dict(self) -> dict[str, str]:
        """Logical name → topic name, in declaration order."""
        return {key: getattr(self, key) for key, value in vars(TopicNames).items() if isinstance(value, _Topic)}

    def all(self) -> tuple[str, ...]:
        """Every topic name, in declaration order."""
        return tuple(self.as_dict().values())


# Logical topic → (uses event_partitions?, fixed partition count, config).
_LAYOUT: dict[str, tuple[bool, int, Mapping[str, str]]] = {
    "features": (True, 0, _BASE),
    "predictions": (True, 0, _BASE),
    "labels": (True, 0, _BASE),
    "observations": (True, 0, _BASE),
    "dlq": (True, 0, _DLQ),
    # Training sets are offset ranges of this topic: deleting rows would break lineage.
    "labeled": (True, 0, FOREVER),
    "control": (True, 0, _BASE),
    "registry": (False, 1, COMPACTED),
    "model_updates": (False, 1, COMPACTED),
    "audit": (False, 1, FOREVER),
    # Closed-window summaries from the stream agent (dashboards, recovery checks).
    "windows": (True, 0, _BASE),
}


def topic_specs(
    names: TopicNames | None = None,
    *,
    event_partitions: int = 6,
    partitions: Mapping[str, int] | None = None,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[TopicSpec, ...]:
    """The spec of every driftline topic.

    ``partitions`` and ``configs`` override single topics by logical name (``"control"``,
    ``"model_updates"``); configs are merged over the defaults.
    """
    names = names or TopicNames()
    partitions = dict(partitions or {})
    configs = dict(configs or {})
    unknown = (set(partitions) | set(configs)) - set(_LAYOUT)
    if unknown:
        raise ConfigError("topics", f"unknown logical topic(s) {sorted(unknown)}; known: {sorted(_LAYOUT)}")
    specs = []
    for logical, name in names.as_dict().items():
        per_event, fixed, config = _LAYOUT[logical]
        count = partitions.get(logical, event_partitions if per_event else fixed)
        specs.append(TopicSpec(name, count, {**config, **configs.get(logical, {})}))
    return tuple(specs)
