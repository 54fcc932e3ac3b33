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
from driftline.testing.kafka import broker_unavailable, secure_local_broker

pytestmark = pytest.mark.kafka

GROUP_PREFIX = "secure-test-"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    """A started secured broker in its own directory on free ports, stopped after the module."""
    try:
        broker = secure_local_broker(tmp_path_factory.mktemp("secure-broker"))
    except BrokerUnavailable as exc:
        broker_unavailable(f"secured local broker unavailable: {exc}")
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


# -- driftline's own client layer, ACLs and clear failures (issue 14 items 3 and 5) ----------
def _driftline(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str, float]:
    import logging

    from driftline.cli import main

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    capsys.readouterr()  # only this command's output
    started = time.monotonic()
    try:
        rc = main(list(argv))
    finally:
        root.handlers[:], root.level = handlers, level  # main() points logging at the captured stderr
    out, err = capsys.readouterr()
    return rc, out, err, time.monotonic() - started


@pytest.fixture(scope="module")
def deployment(broker: SecureBroker) -> str:
    """A prefixed set of driftline topics, made by the admin, with ``driftline acls apply`` run (twice)."""
    from driftline.cli import main

    prefix = f"acl-{uuid.uuid4().hex[:8]}."
    admin = str(broker.client_files("admin").config)
    assert main(["--config", admin, "topics", "create", "--prefix", prefix, "--partitions", "2"]) == 0
    assert main(["--config", admin, "acls", "apply", "--prefix", prefix]) == 0
    return prefix


def _client_of(broker: SecureBroker, role: str, prefix: str, *, mtls: bool = False) -> Any:
    from driftline.kafka.clients import ClientConfig

    kafka = _config_of(broker, role, mtls=mtls)
    return ClientConfig(kafka.bootstrap_servers, kafka)


def test_acls_apply_is_idempotent_and_show_lists_every_role(
    broker: SecureBroker, deployment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = str(broker.client_files("admin").config)
    rc, out, _err, _t = _driftline(capsys, "--config", admin, "acls", "apply", "--prefix", deployment)
    assert rc == 0 and " 0 created" in out, out
    rc, out, _err, _t = _driftline(capsys, "--config", admin, "acls", "show")
    assert rc == 0
    for role in ("ingest", "stream", "trainer", "operator", "subscriber"):
        assert f"User:{role}" in out
    assert f"{deployment}driftline.model-updates" in out and f"{deployment}driftline-trainer-0" in out


@pytest.mark.parametrize(
    ("case", "command"),
    [
        ("wrong password", ("topics", "create")),
        ("wrong password", ("models", "list")),
        ("untrusted CA", ("topics", "create")),
        ("no credentials", ("models", "list")),
    ],
)
def test_a_refused_client_fails_in_one_line_naming_the_setting_within_30s(
    broker: SecureBroker, case: str, command: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = broker.client_files("operator").config.read_text()
    lines = text.splitlines()
    if case == "wrong password":
        lines = [('sasl_password = "wrong"' if line.startswith("sasl_password") else line) for line in lines]
        setting = "kafka.sasl_password"
    elif case == "untrusted CA":
        other = tmp_path / "other-ca.pem"
        other.write_bytes(new_authority().certificate_pem())
        lines = [(f'ssl_ca_file = "{other}"' if line.startswith("ssl_ca_file") else line) for line in lines]
        setting = "kafka.ssl_ca_file"
    else:
        lines = [line for line in lines if line.startswith(("[kafka]", "bootstrap_servers"))]
        setting = "kafka.security_protocol"
    config = tmp_path / "client.toml"
    config.write_text("\n".join(lines) + "\n")
    rc, _out, err, took = _driftline(capsys, "--config", str(config), *command)
    errors = [line for line in err.splitlines() if line.startswith("driftline: error:")]
    assert rc != 0 and len(errors) == 1 and setting in errors[0], err
    assert took < 30, f"took {took:.0f} s"


def test_a_subscriber_cannot_write_model_updates_or_control_and_ingest_not_the_registry(
    broker: SecureBroker, deployment: str
) -> None:
    from driftline.consumers.trainer.client import send_json
    from driftline.errors import KafkaAccessDenied
    from driftline.kafka.topics import TopicNames

    names = TopicNames(prefix=deployment)
    for role, topic in (
        ("subscriber", names.model_updates),
        ("subscriber", names.control),
        ("ingest", names.registry),
        ("operator", names.model_updates),
    ):
        # no WRITE anywhere (subscriber): the idempotent producer's PID is refused (CLUSTER_...)
        with pytest.raises(KafkaAccessDenied, match="AUTHORIZATION_FAILED") as refused:
            send_json(_client_of(broker, role, deployment), topic, "m", {"type": "forged"})
        assert f"User:{role}" in str(refused.value) and "driftline acls apply" in str(refused.value)
    # what the roles may do, they can: the operator writes control, the trainer model-updates
    send_json(_client_of(broker, "operator", deployment), names.control, "m", {"type": "ok"})
    send_json(_client_of(broker, "trainer", deployment), names.model_updates, "m", {"type": "ok"})


def test_the_subscriber_reads_model_updates_over_mtls_and_sasl_with_its_own_principal(
    broker: SecureBroker, deployment: str
) -> None:
    from driftline.consumers.trainer.client import send_json
    from driftline.kafka.topics import TopicNames

    names = TopicNames(prefix=deployment)
    send_json(_client_of(broker, "trainer", deployment), names.model_updates, "mtls", {"type": "x"})
    for mtls in (True, False):
        client = _client_of(broker, "subscriber", deployment, mtls=mtls)
        assert client.protocol == ("SSL" if mtls else "SASL_SSL")
        # the group ModelSubscriber uses: coordinator lookup (DESCRIBE) only, never commits
        consumer = Consumer(client.read_committed_consumer(f"driftline-subscriber-{uuid.uuid4().hex[:8]}"))
        try:
            consumer.assign([TopicPartition(names.model_updates, 0, -2)])
            keys: list[bytes | None] = []
            deadline = time.monotonic() + 20
            while b"mtls" not in keys and time.monotonic() < deadline:
                for msg in consumer.consume(10, timeout=0.5):
                    assert msg.error() is None, msg.error()
                    keys.append(msg.key())
        finally:
            consumer.close()
        assert b"mtls" in keys


def test_the_state_reader_of_an_operator_cannot_read_the_labeled_rows(broker: SecureBroker, deployment: str) -> None:
    from driftline.errors import KafkaOperationFailed
    from driftline.kafka.reading import read_topic
    from driftline.kafka.topics import TopicNames

    with pytest.raises(KafkaOperationFailed, match="AUTHORIZATION"):
        read_topic(_client_of(broker, "operator", deployment), TopicNames(prefix=deployment).labeled, timeout=15)


# -- the whole loop, one principal per process ------------------------------------------
def _principal_env(broker: SecureBroker, role: str) -> dict[str, str]:
    """``DRIFTLINE_KAFKA_*`` for ``role`` over SASL_SSL: how a process is given its principal."""
    security = broker.client_security(role)
    return {
        "DRIFTLINE_KAFKA_SECURITY_PROTOCOL": security.security_protocol,
        "DRIFTLINE_KAFKA_SASL_MECHANISM": security.sasl_mechanism,
        "DRIFTLINE_KAFKA_SASL_USERNAME": security.sasl_username,
        "DRIFTLINE_KAFKA_SASL_PASSWORD": security.sasl_password,
        "DRIFTLINE_KAFKA_SSL_CA_FILE": security.ssl_ca_file,
    }


def test_the_whole_loop_runs_over_sasl_ssl_with_one_principal_per_process_and_acls_applied(
    broker: SecureBroker, tmp_path: Path
) -> None:
    """ingest, stream and trainer each as its own principal with only ``acls apply``'s grants;
    the subscriber over mTLS; the exact counts of the plain closed-loop tests hold."""
    from driftline.demo.closed_loop import ServingOptions
    from driftline.demo.loop_runner import LoopConfig, run_env, run_scenario
    from driftline.demo.scenarios import make_scenario
    from driftline.kafka.acls import DeploymentIds, apply_grants, grants
    from driftline.kafka.topics import TopicNames

    run_id = f"sec-{uuid.uuid4().hex[:8]}"
    ids_env = run_env(LoopConfig(broker.bootstrap_servers, run_id, tmp_path / "logs"), load_settings(env={}))
    settings = load_settings(env=ids_env)
    admin = KafkaAdmin(_client_of(broker, "admin", ""))
    wanted = set(grants(TopicNames(prefix=settings.topics.prefix), DeploymentIds.of(settings)))
    apply_grants(admin, wanted)  # returns once the authorizer lists them
    scenario = make_scenario("concept_change", 12_000, change_at=3_000)
    run = run_scenario(
        broker.bootstrap_servers,
        scenario,
        ServingOptions(rate=500.0, event_rate=100.0, label_delay=200),
        tmp_path,
        run_id=run_id,
        first_rows=5_000,
        client=_client_of(broker, "admin", ""),  # the test's own clients: topics, serving traffic, reads
        process_env={
            "ingest": _principal_env(broker, "ingest"),
            "stream": _principal_env(broker, "stream"),
            "trainer": _principal_env(broker, "trainer"),
            "models": _principal_env(broker, "admin"),  # `models register` writes labeled rows
        },
        subscriber_client=_client_of(broker, "subscriber", "", mtls=True),
        settle_timeout_s=90.0,
    )
    logs = "\n".join(f"{p.name}: {p.read_text()[-1500:]}" for p in sorted((tmp_path / "logs").glob("*.log")))
    r = run.result
    assert r.served_events == r.n_events == scenario.n_events
    assert run.caught_up and run.joined == r.n_events, f"the stream joined {run.joined:,} of {r.n_events:,}\n{logs}"
    assert run.version_mismatches == 0
    assert run.facts.retrain_requests, f"the stream (User:stream) sent no retrain request\n{logs}"
    assert not run.facts.pending, f"the trainer (User:trainer) left requests unanswered: {run.facts.describe()}"
    assert "AUTHORIZATION_FAILED" not in logs, logs


@pytest.mark.parametrize(
    ("command", "role", "env", "expect"),
    [
        ("ingest", "operator", {}, "TOPIC_AUTHORIZATION_FAILED"),  # may not read the raw topics
        ("ingest", "ingest", {"DRIFTLINE_INGEST_TRANSACTIONAL_ID": "forged-0"}, "TRANSACTIONAL_ID_AUTHORIZATION"),
        ("trainer", "stream", {}, "TOPIC_AUTHORIZATION_FAILED"),  # may not read the registry
        ("stream", "stream", {"DRIFTLINE_KAFKA_SASL_PASSWORD": "wrong"}, "kafka.sasl_password"),
    ],
)
def test_a_process_refused_by_the_broker_stops_with_one_line_within_30s(
    broker: SecureBroker, deployment: str, command: str, role: str, env: dict[str, str], expect: str, tmp_path: Path
) -> None:
    import subprocess
    import sys

    environ = {
        **os.environ,
        "DRIFTLINE_TOPICS_PREFIX": deployment,
        "DRIFTLINE_STREAM_DATA_DIR": str(tmp_path / "stream"),
        "DRIFTLINE_TRAINER_SIGNING_KEY_FILE": str(tmp_path / "signing.key"),
        "DRIFTLINE_TRAINER_ARTIFACT_DIR": str(tmp_path / "artifacts"),
        **env,
    }
    environ.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    cmd = [sys.executable, "-m", "driftline.cli", "--config", str(broker.client_files(role).config), command]
    started = time.monotonic()
    done = subprocess.run(
        [*cmd, "--metrics-port", "0"], capture_output=True, text=True, timeout=90, env=environ, check=False
    )
    took = time.monotonic() - started
    errors = [line for line in done.stderr.splitlines() if line.startswith("driftline: error:")]
    assert done.returncode != 0 and len(errors) == 1 and expect in errors[0], done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert took < 30, f"took {took:.0f} s"
