"""Every client factory carries exactly ``[kafka]``'s mapping; refusals become one clear error; the ACL table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from driftline.config import KafkaSettings, settings_from_mapping
from driftline.errors import KafkaAccessDenied
from driftline.kafka.acls import DeploymentIds, grants
from driftline.kafka.clients import (
    ClientConfig,
    RefusalWatch,
    producer_config,
    read_committed_config,
    transactional_consumer_config,
)
from driftline.kafka.failures import explain
from driftline.kafka.security import aiokafka_credentials, librdkafka_properties
from driftline.kafka.tls_material import new_authority
from driftline.kafka.topics import TopicNames


@pytest.fixture
def kafka(tmp_path: Path) -> KafkaSettings:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(new_authority().certificate_pem())
    return KafkaSettings(
        bootstrap_servers="b:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="ingest",
        sasl_password="s3cret",
        ssl_ca_file=str(ca),
        librdkafka={"socket.keepalive.enable": True},
    )


def _librdkafka_factories(client: ClientConfig) -> dict[str, dict[str, Any]]:
    return {
        "producer": client.producer(),
        "transactional_producer": client.transactional_producer("t-0"),
        "transactional_consumer": client.transactional_consumer("g"),
        "read_committed_consumer": client.read_committed_consumer("g"),
        "admin": client.admin(),
        "module producer_config": producer_config(client),
        "module read_committed_config": read_committed_config(client, "g"),
        "module transactional_consumer_config": transactional_consumer_config(client, "g"),
    }


def test_every_librdkafka_factory_holds_exactly_the_mapping(kafka: KafkaSettings) -> None:
    client = ClientConfig(kafka.bootstrap_servers, kafka)
    wanted = librdkafka_properties(kafka)
    for name, config in _librdkafka_factories(client).items():
        security = {k: v for k, v in config.items() if k.startswith(("security.", "sasl.", "ssl."))}
        security |= {k: config[k] for k in kafka.librdkafka}
        assert security == wanted, name
        assert config["bootstrap.servers"] == "b:9093", name
        assert isinstance(config["error_cb"], RefusalWatch), name


def test_aiokafka_and_faust_get_the_same_settings(kafka: KafkaSettings) -> None:
    client = ClientConfig(kafka.bootstrap_servers, kafka)
    kwargs = client.aiokafka_kwargs()
    expected = aiokafka_credentials(kafka).client_kwargs()
    assert kwargs.pop("bootstrap_servers") == "b:9093"
    assert {k: v for k, v in kwargs.items() if k != "ssl_context"} == {
        k: v for k, v in expected.items() if k != "ssl_context"
    }
    assert kwargs["sasl_plain_password"] == "s3cret"
    credentials = client.faust_credentials()
    assert credentials.username == "ingest" and credentials.mechanism.value == "SCRAM-SHA-512"


def test_a_bare_bootstrap_keeps_the_plain_configuration() -> None:
    assert producer_config("b:9092") == {"bootstrap.servers": "b:9092", "partitioner": "murmur2_random"}
    assert "error_cb" not in read_committed_config("b:9092", "g")
    assert ClientConfig("b:9092").aiokafka_kwargs() == {"bootstrap_servers": "b:9092"}
    assert ClientConfig("b:9092").faust_credentials() is None


def test_secrets_are_masked_and_str_is_the_bootstrap(kafka: KafkaSettings) -> None:
    client = ClientConfig(kafka.bootstrap_servers, kafka)
    assert str(client) == "b:9093"
    assert "s3cret" not in repr(client) and "s3cret" not in str(client.masked())


class _Error:
    def __init__(self, code: str, text: str) -> None:
        self._code, self._text = code, text

    def name(self) -> str:
        return self._code

    def str(self) -> str:
        return self._text


@pytest.mark.parametrize(
    ("code", "text", "setting"),
    [
        ("_AUTHENTICATION", "SASL authentication error: invalid credentials", "kafka.sasl_password"),
        ("_SSL", "SSL handshake failed: certificate verify failed", "kafka.ssl_ca_file"),
        ("TOPIC_AUTHORIZATION_FAILED", "Broker: Topic authorization failed", "driftline acls apply"),
        ("TRANSACTIONAL_ID_AUTHORIZATION_FAILED", "x", "driftline acls apply"),
        ("GROUP_AUTHORIZATION_FAILED", "x", "consumer group"),
    ],
)
def test_a_refusal_raises_one_error_naming_the_setting(code: str, text: str, setting: str) -> None:
    watch = RefusalWatch("b:9093", "ingest")
    watch(_Error(code, text))  # never raises inside librdkafka's callback
    assert isinstance(watch.last, KafkaAccessDenied)
    assert setting in str(watch.last) and "\n" not in str(watch.last)


def test_other_errors_are_left_to_librdkafka() -> None:
    watch = RefusalWatch("b:9093")
    watch(_Error("_TRANSPORT", "Connection refused"))
    assert watch.last is None
    assert explain("_ALL_BROKERS_DOWN", "1/1 brokers are down") is None


def test_grants_least_privilege_per_role() -> None:
    names = TopicNames(prefix="p.")
    ids = DeploymentIds.of(settings_from_mapping({"topics": {"prefix": "p."}}))
    table = grants(names, ids)
    writes = {(g.principal, g.name) for g in table if g.resource == "TOPIC" and g.operation == "WRITE"}
    for topic in (names.registry, names.model_updates, names.audit):
        assert {p for p, t in writes if t == topic} == {"User:trainer"}
    assert {p for p, t in writes if t == names.control} == {"User:stream", "User:operator"}
    subscriber = [g for g in table if g.principal == "User:subscriber"]
    assert {(g.resource, g.name, g.operation) for g in subscriber} == {
        ("TOPIC", "p.driftline.model-updates", "READ"),
        ("GROUP", "driftline-subscriber-", "DESCRIBE"),
    }
    txn = {(g.principal, g.name) for g in table if g.resource == "TRANSACTIONAL_ID"}
    assert txn == {("User:ingest", "p.driftline-ingest-0"), ("User:trainer", "p.driftline-trainer-0")}
    assert ("User:stream", "p.driftline-stream-", "PREFIXED") in {(g.principal, g.name, g.pattern) for g in table}
    assert not [g for g in table if g.resource == "CLUSTER"]
    assert grants(names, ids, {"subscriber": "User:edge"})[-1].principal == "User:edge"
