"""`driftline topics create` against a real broker, and the shared Kafka fixtures themselves."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from driftline.commands import topics as topics_command
from driftline.errors import KafkaOperationFailed
from driftline.kafka.admin import KafkaAdmin, create_topics
from driftline.kafka.topics import TopicNames, TopicSpec

pytestmark = pytest.mark.kafka


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    topics_command.register(parser.add_subparsers())
    args = parser.parse_args(["topics", *argv])
    return int(args.func(args))


def _outcomes(out: str) -> dict[str, str]:
    """``name  created  partitions=N`` lines → {name: outcome}."""
    return {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}


@pytest.fixture
def names(kafka_admin: KafkaAdmin) -> Iterator[TopicNames]:
    """A prefix for the CLI to create under; its topics are deleted afterwards."""
    names = TopicNames(prefix=f"cli-{uuid.uuid4().hex[:10]}.")
    yield names
    kafka_admin.delete_topics(names.all())


def test_topics_create_twice_reports_created_then_exists_with_the_right_configs(
    kafka_bootstrap: str, kafka_admin: KafkaAdmin, names: TopicNames, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("create", "--bootstrap-servers", kafka_bootstrap, "--prefix", names.prefix, "--partitions", "2")
    assert _cli(*args) == 0
    first = _outcomes(capsys.readouterr().out)
    assert first == {name: "created" for name in names.all()}

    assert _cli(*args) == 0
    second = _outcomes(capsys.readouterr().out)
    assert second == {name: "exists" for name in names.all()}

    counts = kafka_admin.partition_counts(names.all())
    assert counts[names.features] == 2 and counts[names.control] == 2
    assert counts[names.registry] == counts[names.model_updates] == counts[names.audit] == 1
    configs = kafka_admin.topic_configs(names.all())
    policies = {name: c["cleanup.policy"] for name, c in configs.items()}
    assert {n for n, p in policies.items() if p == "compact"} == {names.registry, names.model_updates}
    assert configs[names.audit]["retention.ms"] == "-1"
    assert configs[names.observations]["max.message.bytes"] == str(8 * 1024 * 1024)


def test_topics_create_uses_env_bootstrap_and_starts_no_local_broker(
    kafka_bootstrap: str,
    names: TopicNames,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    assert _cli("create", "--prefix", names.prefix, "--dir", str(tmp_path / "never")) == 0
    assert set(_outcomes(capsys.readouterr().out).values()) == {"created"}
    assert not (tmp_path / "never").exists()


def test_existing_topic_with_other_partitions_is_reported_not_changed(
    kafka_bootstrap: str, kafka_admin: KafkaAdmin, names: TopicNames, capsys: pytest.CaptureFixture[str]
) -> None:
    create_topics(kafka_admin, [TopicSpec(names.control, 3)])
    assert _cli("create", "--bootstrap-servers", kafka_bootstrap, "--prefix", names.prefix) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith(names.control + " "))
    assert "exists" in line and "partitions=3" in line and "spec says 6" in line
    assert kafka_admin.partition_counts([names.control]) == {names.control: 3}


def test_create_topics_wraps_broker_errors_with_their_code(kafka_admin: KafkaAdmin) -> None:
    with pytest.raises(KafkaOperationFailed) as info:
        create_topics(kafka_admin, [TopicSpec(f"bad-{uuid.uuid4().hex[:8]}", 1, {"cleanup.policy": "bogus"})])
    assert info.value.code == "INVALID_CONFIG"


def test_fixtures_give_isolated_topics_and_read_committed_round_trip(
    kafka_bootstrap: str, topic_factory, produce, consume_all, group_id: str, topic_names: TopicNames
) -> None:
    topic = topic_factory(partitions=3, config={"cleanup.policy": "compact"})
    assert topic != topic_factory() and group_id.startswith("g-")
    assert produce(topic, [(b"k1", b"v1"), (b"k2", b"v2", [("h", b"x")])]) == 2
    assert produce(topic, [(b"k3", b"v3")], transactional=True) == 1
    aborted = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"abort-{group_id}"})
    aborted.init_transactions(30)
    aborted.begin_transaction()
    aborted.produce(topic, key=b"k4", value=b"never visible")
    aborted.flush(30)  # abort would otherwise purge it unsent
    aborted.abort_transaction(30)

    records = consume_all(topic, min_count=3)
    assert sorted(r.value for r in records) == [b"v1", b"v2", b"v3"]
    assert next(r for r in records if r.key == b"k2").header("h") == b"x"
    read_uncommitted = consume_all(topic, isolation="read_uncommitted")
    assert b"never visible" in {r.value for r in read_uncommitted}

    assert topic_names.prefix.startswith("t-") and len(topic_names.all()) == len(TopicNames().all())
    produce(topic_names.observations, [(b"m1", b"batch")])
    assert [r.value for r in consume_all(topic_names.observations)] == [b"batch"]
