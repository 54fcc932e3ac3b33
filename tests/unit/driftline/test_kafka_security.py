"""The [kafka] security keys: validation naming the key, masking, and the two client mappings."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from driftline.config import KafkaSettings, load_settings, settings_from_mapping
from driftline.errors import ConfigError
from driftline.kafka.clients import (
    producer_config,
    read_committed_config,
    transactional_consumer_config,
    transactional_producer_config,
    with_security,
)
from driftline.kafka.security import (
    MECHANISMS,
    PROTOCOLS,
    aiokafka_credentials,
    librdkafka_properties,
    masked_properties,
    resolve_secret,
)
from driftline.kafka.tls_material import new_authority, write_private

SECRET = "s3cr3t-value"
SASL_SSL = {"security_protocol": "SASL_SSL"}


def _kafka(**keys: Any) -> KafkaSettings:
    kafka: KafkaSettings = settings_from_mapping({"kafka": keys}).kafka
    return kafka


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA file and a client certificate with its key encrypted under ``key-pw``."""
    root = tmp_path_factory.mktemp("pki")
    ca = new_authority()
    client = ca.issue("subscriber")
    (root / "ca.pem").write_bytes(ca.certificate_pem())
    (root / "client.pem").write_bytes(client.certificate_pem())
    write_private(root / "client-key.pem", client.key_pem("key-pw"))
    return {"ca": str(root / "ca.pem"), "cert": str(root / "client.pem"), "key": str(root / "client-key.pem")}


def _combination(protocol: str, mechanism: str, pki: dict[str, str]) -> dict[str, Any]:
    keys: dict[str, Any] = {"security_protocol": protocol}
    if protocol.startswith("SASL"):
        keys["sasl_mechanism"] = mechanism
        if mechanism != "OAUTHBEARER":
            keys.update(sasl_username="ingest", sasl_password=SECRET)
    if protocol in ("SSL", "SASL_SSL"):
        keys["ssl_ca_file"] = pki["ca"]
    return keys


COMBINATIONS = [("PLAINTEXT", ""), ("SSL", "")] + [(p, m) for p in ("SASL_PLAINTEXT", "SASL_SSL") for m in MECHANISMS]


@pytest.mark.parametrize(("protocol", "mechanism"), COMBINATIONS)
def test_every_protocol_and_mechanism_maps_to_librdkafka(protocol: str, mechanism: str, pki: dict[str, str]) -> None:
    props = librdkafka_properties(_kafka(**_combination(protocol, mechanism, pki)), env={})
    expected: dict[str, str] = {"security.protocol": protocol}
    if mechanism:
        expected["sasl.mechanism"] = mechanism
        if mechanism != "OAUTHBEARER":
            expected.update({"sasl.username": "ingest", "sasl.password": SECRET})
    if protocol in ("SSL", "SASL_SSL"):
        expected.update({"ssl.ca.location": pki["ca"], "ssl.endpoint.identification.algorithm": "https"})
    assert props == expected
    assert all(isinstance(v, str) for v in props.values())


@pytest.mark.parametrize(("protocol", "mechanism"), [c for c in COMBINATIONS if c[1] != "OAUTHBEARER"])
def test_every_protocol_and_mechanism_maps_to_aiokafka_and_faust(
    protocol: str, mechanism: str, pki: dict[str, str]
) -> None:
    import faust

    auth = aiokafka_credentials(_kafka(**_combination(protocol, mechanism, pki)), env={})
    kwargs = auth.client_kwargs()
    assert kwargs["security_protocol"] == protocol
    tls = protocol in ("SSL", "SASL_SSL")
    assert isinstance(kwargs.get("ssl_context"), ssl.SSLContext) is tls
    credentials = auth.faust_credentials()
    if protocol == "PLAINTEXT":
        assert credentials is None
    elif protocol == "SSL":
        assert isinstance(credentials, faust.SSLCredentials) and credentials.context is auth.ssl_context
    else:
        assert (kwargs["sasl_mechanism"], kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == (
            mechanism,
            "ingest",
            SECRET,
        )
        assert isinstance(credentials, faust.SASLCredentials)
        # faust derives SASL_SSL from the context it is given: it must agree with the setting.
        assert (credentials.protocol.value, credentials.mechanism.value) == (protocol, mechanism)
        assert credentials.password == SECRET and SECRET not in repr(credentials)
        assert SECRET not in repr(auth)


def test_oauthbearer_needs_a_token_provider_for_aiokafka(pki: dict[str, str]) -> None:
    kafka = _kafka(**_combination("SASL_SSL", "OAUTHBEARER", pki))
    with pytest.raises(ConfigError) as caught:
        aiokafka_credentials(kafka, env={})
    assert caught.value.key == "kafka.sasl_mechanism"
    provider = object()
    auth = aiokafka_credentials(kafka, env={}, token_provider=provider)
    assert auth.client_kwargs()["sasl_oauth_token_provider"] is provider


def test_mtls_context_loads_the_client_certificate_and_honours_endpoint_identification(pki: dict[str, str]) -> None:
    keys = {
        "security_protocol": "SSL",
        "ssl_ca_file": pki["ca"],
        "ssl_cert_file": pki["cert"],
        "ssl_key_file": pki["key"],
        "ssl_key_password": "key-pw",
    }
    props = librdkafka_properties(_kafka(**keys), env={})
    assert props["ssl.certificate.location"] == pki["cert"]
    assert props["ssl.key.location"] == pki["key"]
    assert props["ssl.key.password"] == "key-pw"
    context = aiokafka_credentials(_kafka(**keys), env={}).ssl_context
    assert context is not None and context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    off = _kafka(**keys, ssl_endpoint_identification=False)
    assert librdkafka_properties(off, env={})["ssl.endpoint.identification.algorithm"] == "none"
    context = aiokafka_credentials(off, env={}).ssl_context
    assert context is not None and not context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(ConfigError) as caught:
        aiokafka_credentials(_kafka(**{**keys, "ssl_key_password": "wrong"}), env={})
    assert caught.value.key == "kafka.ssl_key_file" and "wrong" not in str(caught.value)


def test_passthrough_goes_on_top_of_the_neutral_keys(pki: dict[str, str]) -> None:
    kafka = _kafka(
        **_combination("SASL_SSL", "SCRAM-SHA-512", pki),
        librdkafka={"ssl.endpoint.identification.algorithm": "none", "socket.keepalive.enable": True, "retries": 3},
    )
    props = librdkafka_properties(kafka, env={})
    assert props["ssl.endpoint.identification.algorithm"] == "none"
    assert props["socket.keepalive.enable"] == "true" and props["retries"] == "3"
    config = with_security(producer_config("b:1", **{"security.protocol": "PLAINTEXT"}), props)
    assert config["security.protocol"] == "SASL_SSL", "a stage's own keys never weaken [kafka]'s security"


def test_passthrough_table_from_toml_and_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "driftline.toml"
    path.write_text('[kafka]\nsecurity_protocol = "SSL"\n[kafka.librdkafka]\n"ssl.cipher.suites" = "HIGH"\n')
    assert load_settings(path, env={}).kafka.librdkafka == {"ssl.cipher.suites": "HIGH"}
    env = {"DRIFTLINE_KAFKA_LIBRDKAFKA": '{"client.rack": "r1"}', "DRIFTLINE_KAFKA_SECURITY_PROTOCOL": "SSL"}
    kafka = load_settings(None, env=env).kafka
    assert kafka.librdkafka == {"client.rack": "r1"} and kafka.security_protocol == "SSL"
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env={"DRIFTLINE_KAFKA_LIBRDKAFKA": "client.rack=r1"})
    assert caught.value.key == "kafka.librdkafka"


def test_secrets_from_environment_and_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "pw"
    secret_file.write_text(SECRET + "\n")
    base = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256", "sasl_username": "u"}
    from_env = _kafka(**base, sasl_password="env:KAFKA_PW")
    assert librdkafka_properties(from_env, env={"KAFKA_PW": SECRET})["sasl.password"] == SECRET
    assert aiokafka_credentials(from_env, env={"KAFKA_PW": SECRET}).sasl_plain_password == SECRET
    from_file = _kafka(**base, sasl_password=f"file:{secret_file}")
    assert librdkafka_properties(from_file, env={})["sasl.password"] == SECRET, "the trailing newline is dropped"
    assert from_file.as_dict()["sasl_password"] == f"file:{secret_file}", "a reference is not a secret"
    with pytest.raises(ConfigError, match="KAFKA_PW") as caught:
        librdkafka_properties(from_env, env={})
    assert caught.value.key == "kafka.sasl_password"
    with pytest.raises(ConfigError, match="cannot read the secret file") as caught:
        resolve_secret("kafka.sasl_password", f"file:{tmp_path / 'missing'}", env={})
    assert caught.value.key == "kafka.sasl_password"


def test_secrets_are_masked_in_repr_as_dict_and_errors(tmp_path: Path) -> None:
    settings = settings_from_mapping(
        {
            "kafka": {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "u",
                "sasl_password": SECRET,
                "librdkafka": {"sasl.oauthbearer.client.secret": SECRET, "client.rack": "r1"},
            }
        }
    )
    kafka = settings.kafka
    for shown in (repr(kafka), str(settings.as_dict()), str(kafka.as_dict())):
        assert SECRET not in shown and "***" in shown
    assert kafka.as_dict()["librdkafka"] == {"sasl.oauthbearer.client.secret": "***", "client.rack": "r1"}
    assert masked_properties(librdkafka_properties(kafka, env={}))["sasl.password"] == "***"
    path = tmp_path / "driftline.toml"
    path.write_text("[kafka]\nsasl_password = 12345678\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert caught.value.key == "kafka.sasl_password" and "12345678" not in str(caught.value)


@pytest.mark.parametrize(
    ("keys", "key"),
    [
        ({"security_protocol": "TLS"}, "kafka.security_protocol"),
        ({"security_protocol": "SASL_SSL"}, "kafka.sasl_mechanism"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"}, "kafka.sasl_mechanism"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_password": "p"}, "kafka.sasl_username"),
        ({**SASL_SSL, "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "u"}, "kafka.sasl_password"),
        ({**SASL_SSL, "sasl_mechanism": "OAUTHBEARER", "sasl_username": "u"}, "kafka.sasl_username"),
        ({"sasl_mechanism": "PLAIN"}, "kafka.sasl_mechanism"),
        ({"sasl_username": "u"}, "kafka.sasl_username"),
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u",
          "sasl_password": "p", "ssl_ca_file": "/ca.pem"}, "kafka.ssl_ca_file"),
        ({"security_protocol": "SSL", "ssl_cert_file": "/c.pem"}, "kafka.ssl_key_file"),
        ({"security_protocol": "SSL", "ssl_key_file": "/k.pem"}, "kafka.ssl_cert_file"),
        ({"security_protocol": "SSL", "ssl_key_password": "x"}, "kafka.ssl_key_password"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u",
          "sasl_password": "env:"}, "kafka.sasl_password"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u",
          "sasl_password": "file:"}, "kafka.sasl_password"),
        ({"librdkafka": {"bootstrap.servers": "x:1"}}, "kafka.librdkafka.bootstrap.servers"),
        ({"librdkafka": {"debug": ["all"]}}, "kafka.librdkafka.debug"),
        ({"librdkafka": []}, "kafka.librdkafka"),
        ({"ssl_endpoint_identification": "yes"}, "kafka.ssl_endpoint_identification"),
    ],
)  # fmt: skip
def test_bad_security_settings_name_the_key(keys: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _kafka(**keys)
    assert caught.value.key == key
    assert key in str(caught.value)


def test_missing_certificate_files_name_the_key(tmp_path: Path) -> None:
    kafka = _kafka(security_protocol="SSL", ssl_ca_file=str(tmp_path / "nope.pem"))
    for mapping in (librdkafka_properties, aiokafka_credentials):
        with pytest.raises(ConfigError) as caught:
            mapping(kafka, env={})
        assert caught.value.key == "kafka.ssl_ca_file"


def test_protocols_are_the_four_kafka_knows() -> None:
    assert PROTOCOLS == ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")


def test_every_client_factory_takes_the_security_properties_unchanged() -> None:
    security = librdkafka_properties(
        _kafka(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u", sasl_password="p"),
        env={},
    )
    for plain in (
        producer_config("b:1"),
        transactional_producer_config("b:1", "tx"),
        read_committed_config("b:1", "g"),
        transactional_consumer_config("b:1", "g"),
    ):
        assert "security.protocol" not in plain, "without [kafka] security a client stays as it was"
        assert with_security(plain, security) == {**plain, **security}
