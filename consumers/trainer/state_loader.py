"""Rebuild the registry state from the topics the trainer writes (trainer start, CLI views)."""

from __future__ import annotations

import orjson

from driftline.consumers.registry.state import RegistryState
from driftline.kafka.clients import KafkaTarget
from driftline.kafka.reading import read_topic
from driftline.kafka.topics import TopicNames

__all__ = ["load_state"]


def load_state(bootstrap: KafkaTarget, names: TopicNames) -> RegistryState:
    """Rebuild the registry state from the registry, model-updates and audit topics."""
    state = RegistryState()
    for kind, topic in (("registry", names.registry), ("model_updates", names.model_updates), ("audit", names.audit)):
        for key, value in read_topic(bootstrap, topic):
            state.apply(kind, key.decode() if key else None, orjson.loads(value) if value else None)
    return state
