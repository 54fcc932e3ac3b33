"""The topic catalogue: every topic of the design, the right cleanup policy, idempotent create."""

from __future__ import annotations

import dataclasses

import pytest
from confluent_kafka import KafkaError

from driftline.errors import ConfigError, KafkaOperationFailed
from driftline.kafka.admin import NewTopicRequest, TopicOutcome, create_topics
from driftline.kafka.topics import MAX_MESSAGE_BYTES, TopicNames, TopicSpec, topic_specs

DESIGN_TOPICS = {
    "driftline.features",
    "driftline.predictions",
    "driftline.labels",
    "driftline.observations",
    "driftline.dlq",
    "driftline.labeled",
    "driftline.control",
    "driftline.registry",
    "driftline.model-updates",
    "driftline.audit",
    "driftline.windows",
}


def _by_name(specs: tuple[TopicSpec, ...]) -> dict[str, TopicSpec]:
    return {s.name: s for s in specs}


def test_every_design_topic_has_exactly_one_spec() -> None:
    names = [s.name for s in topic_specs()]
    assert sorted(names) == sorted(DESIGN_TOPICS)
    assert TopicNames().all() == tuple(names)


def test_partitions_default_six_for_keyed_streams_and_one_for_single_writer_logs() -> None:
    specs = _by_name(topic_specs())
    for name in ("features", "predictions", "labels", "observations", "dlq", "labeled", "control"):
        assert specs[f"driftline.{name}"].partitions == 6, name
    for name in ("registry", "model-updates", "audit"):
        assert specs[f"driftline.{name}"].partitions == 1, name


def test_registry_and_model_updates_are_compacted_audit_and_labeled_kept_forever() -> None:
    specs = _by_name(topic_specs())
    compacted = {n for n, s in specs.items() if s.config.get("cleanup.policy") == "compact"}
    assert compacted == {"driftline.registry", "driftline.model-updates"}
    for name in ("driftline.audit", "driftline.labeled"):
        assert specs[name].config["cleanup.policy"] == "delete"
        assert specs[name].config["retention.ms"] == "-1"
        assert specs[name].config["retention.bytes"] == "-1"
    assert int(specs["driftline.dlq"].config["retention.ms"]) >= 7 * 24 * 3600 * 1000
    assert all(s.config["max.message.bytes"] == str(MAX_MESSAGE_BYTES) for s in specs.values())


def test_event_partitions_and_per_topic_overrides() -> None:
    specs = _by_name(
        topic_specs(
            event_partitions=2, partitions={"control": 12, "audit": 3}, configs={"audit": {"retention.ms": "1000"}}
        )
    )
    assert specs["driftline.features"].partitions == 2
    assert specs["driftline.control"].partitions == 12
    assert specs["driftline.audit"].partitions == 3
    assert specs["driftline.audit"].config["retention.ms"] == "1000"
    assert specs["driftline.audit"].config["cleanup.policy"] == "delete"  # merged, not replaced


def test_unknown_logical_topic_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="contrl"):
        topic_specs(partitions={"contrl": 3})


def test_prefix_applies_to_every_name() -> None:
    names = TopicNames(prefix="t-1.")
    assert names.features == "t-1.driftline.features"
    assert names.model_updates == "t-1.driftline.model-updates"
    assert all(n.startswith("t-1.driftline.") for n in names.all())
    assert {s.name for s in topic_specs(names)} == set(names.all())
    assert TopicNames() == TopicNames("") and hash(TopicNames()) == hash(TopicNames(""))
    with pytest.raises(dataclasses.FrozenInstanceError):
        names.features = "x"  # type: ignore[misc]


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 250, ".", ".."])
def test_invalid_topic_names_are_rejected(name: str) -> None:
    with pytest.raises(ConfigError):
        TopicSpec(name, 1)


def test_spec_rejects_zero_partitions_and_is_read_only() -> None:
    with pytest.raises(ConfigError, match="partitions"):
        TopicSpec("ok", 0)
    spec = TopicSpec("ok", 1, {"cleanup.policy": "compact"})
    with pytest.raises(TypeError):
        spec.config["cleanup.policy"] = "delete"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.partitions = 2  # type: ignore[misc]
    assert hash(spec) == hash(TopicSpec("ok", 1, {"other": "x"}))  # config not part of the hash


class _FakeAdmin:
    """Answers create_topics with the outcomes given per name (None = created)."""

    def __init__(self, errors: dict[str, int]) -> None:
        self.errors = errors
        self.requests: list[NewTopicRequest] = []

    def create_topics(self, requests, timeout=None):  # type: ignore[no-untyped-def]
        self.requests = list(requests)
        return [
            TopicOutcome(r.name, KafkaError(self.errors[r.name]) if r.name in self.errors else None)
            for r in self.requests
        ]

    def wait_for_topics(self, names, timeout=None):  # type: ignore[no-untyped-def]
        self.waited = list(names)


def test_create_topics_reports_created_and_exists_in_spec_order() -> None:
    admin = _FakeAdmin({"driftline.labels": KafkaError.TOPIC_ALREADY_EXISTS})
    result = create_topics(admin, topic_specs(), replication_factor=3)  # type: ignore[arg-type]
    assert list(result) == list(TopicNames().all())
    assert result["driftline.labels"] == "exists"
    assert {v for k, v in result.items() if k != "driftline.labels"} == {"created"}
    assert {r.replication_factor for r in admin.requests} == {3}
    assert admin.waited == list(result), "returns only once every topic is usable"


def test_create_topics_wraps_other_errors_with_their_code() -> None:
    admin = _FakeAdmin({"driftline.audit": KafkaError.POLICY_VIOLATION})
    with pytest.raises(KafkaOperationFailed) as info:
        create_topics(admin, topic_specs())  # type: ignore[arg-type]
    assert info.value.code == "POLICY_VIOLATION"
    assert "driftline.audit" in str(info.value)
