"""The secured local broker, against real clients: SASL_SSL/SCRAM, mTLS, ACLs, and each way to be refused.

Every client here is configured only from a client config the broker wrote, through
``librdkafka_properties`` / ``aiokafka_credentials`` — the mapping every driftline process uses.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from driftline.commands import kafka as kafka_command
from driftline.config import KafkaSettings, load_settings
from driftline.errors import BrokerUnavailable
from driftline.kafka.admin import KafkaAdmin, create_topics
from driftline.kafka.secure_broker import ROLES, SecureBroker
from driftline.kafka.security import aiokafka_credentials, librdkafka_properties
from driftline.kafka.tls_material import new_authority
from driftline.kafka.topics import TopicSpec
from driftline.testing.kafka import secure_local_broker

pytestmark = pytest.mark.kafka

GROUP_PREFIX = "secure-test-"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """A started secured broker in its own directory on free ports, stopped after the module."""
    try:
        broker = secure_local_broker(tmp_path_factory.mktemp("secure-broker"))
    except BrokerUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"secured local broker unavailable: {exc}", pytrace=False)
        pytest.skip(f"secured local broker unavailable: {exc}")
    yield broker
    broker.stop()


def _settings(path: Path, **changes: Any) -> KafkaSettings:
    """A written client config, loaded as every process loads ``--config``, with ``changes`` on top."""
    kafka: KafkaSettings = load_settings(path, env={}, overrides={"kafka": changes} if changes else None).kafka
    return kafka


def _client_config(kafka: KafkaSettings, **extra: Any) -> dict[str, Any]:
    return {"bootstrap.servers": kafka.bootstrap_servers, **librdkafka_properties(kafka, env={}), **extra}


def _config_of(broker: SecureBroker, role: str, *, mtls: bool = False) -> KafkaSettings:
    files = broker.client_files(role)
    path = files.mtls_config if mtls else files.config
    assert path is not None
    return _settings(path)


@pytest.fixture(scope="module")
def topic(broker: SecureBroker) -> str:
    """A topic the admin made: ``ingest`` may write it, ``subscriber`` may read it (its groups too)."""
    admin_settings = _config_of(broker, "admin")
    admin = KafkaAdmin(admin_settings.bootstrap_servers, config=librdkafka_properties(admin_settings, env={}))
    name = f"secure-{uuid.uuid4().hex[:10]}"
    assert create_topics(admin, [TopicSpec(name, 2)]) == {name: "created"}
    grants = [
        AclBinding(
            ResourceType.TOPIC, name, ResourcePatternType.LITERAL, "User:ingest", "*", op, AclPermissionType.ALLOW
        )
        for op in (AclOperation.WRITE, AclOperation.DESCRIBE)
    ] + [
        AclBinding(
            ResourceType.TOPIC, name, ResourcePatternType.LITERAL, "User:subscriber", "*", op, AclPermissionType.ALLOW
        )
        for op in (AclOperation.READ, AclOperation.DESCRIBE)
    ]
    grants.append(
        AclBinding(
            ResourceType.GROUP,
            GROUP_PREFIX,
            ResourcePatternType.PREFIXED,
            "User:subscriber",
            "*",
            AclOperation.READ,
            AclPermissionType.ALLOW,
        )
    )
    for future in admin.client.create_acls(grants, request_timeout=15).values():
        future.result(timeout=20)
    _wait_for_acls(admin, name, expected=4)
    return name


def _wait_for_acls(admin: KafkaAdmin, topic: str, expected: int, timeout: float = 15.0) -> None:
    """The broker answers CreateAcls before its authorizer applied them; wait until it lists them."""
    wanted = AclBindingFilter(
        ResourceType.TOPIC,
        topic,
        ResourcePatternType.LITERAL,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    deadline = time.monotonic() + timeout
    while True:
        found = admin.client.describe_acls(wanted, request_timeout=10).result(timeout=15)
        if len(found) >= expected or time.monotonic() > deadline:
            assert len(found) >= expected, f"ACLs not applied within {timeout} s: {found}"
            return
        time.sleep(0.2)


def _produce(config: dict[str, Any], topic: str, values: list[bytes]) -> list[KafkaError]:
    """Produce ``values``; the delivery errors (empty when all were written)."""
    errors: list[KafkaError] = []

    def delivered(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            errors.append(err)

    producer = Producer({**config, "message.timeout.ms": 15000, "linger.ms": 5})
    for i, value in enumerate(values):
        producer.produce(topic, key=f"k{i}".encode(), value=value, on_delivery=delivered)
    assert producer.flush(30) == 0, "messages still in flight after 30 s"
    return errors


def _read_values(config: dict[str, Any], topic: str, count: int, timeout: float = 20.0) -> list[bytes]:
    consumer = Consumer(
        {
            **config,
            "group.id": f"{GROUP_PREFIX}{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, -2) for p in (0, 1)])
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(values) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            values.append(msg.value())
        return values
    finally:
        consumer.close()


def _first_client_error(config: dict[str, Any], timeout: float = 20.0) -> KafkaError:
    """The first error librdkafka reports while trying to reach the broker with ``config``."""
    errors: list[KafkaError] = []
    producer = Producer({**config, "error_cb": errors.append})
    deadline = time.monotonic() + timeout
    while not errors and time.monotonic() < deadline:
        producer.poll(0.2)
    assert errors, f"no error within {timeout} s: the broker accepted the connection"
    return errors[0]


def test_ingest_writes_over_sasl_ssl_and_subscriber_reads_over_sasl_ssl_and_mtls(
    broker: SecureBroker, topic: str
) -> None:
    values = [f"v{i}".encode() for i in range(20)]
    assert _produce(_client_config(_config_of(broker, "ingest")), topic, values) == []
    over_sasl = _read_values(_client_config(_config_of(broker, "subscriber")), topic, len(values))
    over_mtls = _read_values(_client_config(_config_of(broker, "subscriber", mtls=True)), topic, len(values))
    assert sorted(over_sasl) == sorted(values)
    assert sorted(over_mtls) == sorted(values), "CN=subscriber maps to User:subscriber and gets its ACLs"


def test_aiokafka_client_authenticates_with_the_same_settings(broker: SecureBroker, topic: str) -> None:
    from aiokafka import AIOKafkaProducer

    auth = aiokafka_credentials(_config_of(broker, "ingest"), env={})
    assert auth.faust_credentials().protocol.value == "SASL_SSL"

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, **auth.client_kwargs())
        await producer.start()
        try:
            await asyncio.wait_for(producer.send_and_wait(topic, b"from-aiokafka", key=b"a"), 20)
        finally:
            await producer.stop()

    asyncio.run(send())
    assert b"from-aiokafka" in _read_values(_client_config(_config_of(broker, "subscriber")), topic, 21)


def test_a_principal_without_an_acl_is_refused_by_the_broker(broker: SecureBroker, topic: str) -> None:
    errors = _produce(_client_config(_config_of(broker, "operator")), topic, [b"not allowed"])
    assert [e.name() for e in errors] == ["TOPIC_AUTHORIZATION_FAILED"]


def test_a_wrong_password_fails_authentication(broker: SecureBroker) -> None:
    kafka = _settings(broker.client_files("ingest").config, sasl_password="not-the-password")
    err = _first_client_error(_client_config(kafka))
    assert err.code() == KafkaError._AUTHENTICATION, err
    assert "SCRAM-SHA-512" in err.str()


def test_an_untrusted_ca_fails_the_handshake(broker: SecureBroker, tmp_path: Path) -> None:
    stranger_ca = tmp_path / "other-ca.pem"
    stranger_ca.write_bytes(new_authority("someone else's CA").certificate_pem())
    kafka = _settings(broker.client_files("ingest").config, ssl_ca_file=str(stranger_ca))
    err = _first_client_error(_client_config(kafka))
    assert err.code() in (KafkaError._SSL, KafkaError._TRANSPORT), err
    assert "certificate verify failed" in err.str()
    # The aiokafka/faust side builds its context from the same keys and refuses the same way.
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(aiokafka_credentials(kafka, env={}).ssl_context, broker.port)
    _handshake(aiokafka_credentials(_config_of(broker, "ingest"), env={}).ssl_context, broker.port)


def test_the_mtls_listener_refuses_a_client_without_a_certificate(broker: SecureBroker) -> None:
    mtls = broker.client_files("subscriber").mtls_config
    assert mtls is not None
    kafka = _settings(mtls, ssl_cert_file="", ssl_key_file="", ssl_key_password="")
    err = _first_client_error(_client_config(kafka))
    assert err.code() in (KafkaError._SSL, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN), err


def _handshake(context: ssl.SSLContext | None, port: int) -> None:
    assert context is not None
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1"),
    ):
        pass


def test_every_principal_has_a_private_client_config_with_masked_secrets(broker: SecureBroker) -> None:
    for role in ROLES:
        path = broker.client_files(role).config
        assert path.stat().st_mode & 0o777 == 0o600, path
        kafka = _settings(path)
        assert (kafka.security_protocol, kafka.sasl_mechanism, kafka.sasl_username) == (
            "SASL_SSL",
            "SCRAM-SHA-512",
            role,
        )
        assert kafka.as_dict()["sasl_password"] == "***" and kafka.sasl_password not in repr(kafka)
        assert kafka.bootstrap_servers == broker.bootstrap_servers != "127.0.0.1:9092"
    assert broker.ca_file.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")


def test_cli_status_and_start_with_secure(broker: SecureBroker, capsys: pytest.CaptureFixture[str]) -> None:
    cli = _cli
    directory = str(broker.instance_dir)
    assert cli("status", "--secure", "--dir", directory) == kafka_command.EXIT_RUNNING
    assert cli("start", "--secure", "--dir", directory) == 0  # already running: a no-op
    out = capsys.readouterr().out
    assert f"mTLS at {broker.mtls_bootstrap_servers}" in out
    assert str(broker.clients_dir) in out


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    kafka_command.register(parser.add_subparsers())
    args = parser.parse_args(["kafka", *argv])
    return int(args.func(args))
