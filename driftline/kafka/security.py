"""The ``[kafka]`` security settings, mapped once for every client driftline makes.

Why one module: confluent-kafka (librdkafka) and faust/aiokafka name the same things
differently, and a setting honoured by one client and forgotten by another is a process
that cannot connect (or, worse, connects in the clear). ``librdkafka_properties`` and
``aiokafka_credentials`` are the only translations; both read the same validated fields.

Secrets (``sasl_password``, ``ssl_key_password``) are either the value itself or a
reference: ``env:NAME`` (the environment variable NAME) or ``file:PATH`` (the file's text
without its trailing newline). References are resolved when a client is configured, so a
rotated secret file is read again by the next client, and they are not secret themselves:
``masked`` shows them, and replaces every literal secret by ``***``.

This module imports no Kafka client: ``driftline.config`` validates with it, and faust
is imported only when ``faust_credentials`` is called.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from driftline.errors import ConfigError

__all__ = [
    "MASK",
    "MECHANISMS",
    "PROTOCOLS",
    "SECRET_FIELDS",
    "AiokafkaAuth",
    "KafkaSecurity",
    "aiokafka_credentials",
    "is_secret_property",
    "librdkafka_properties",
    "mask_value",
    "masked",
    "masked_properties",
    "resolve_secret",
    "ssl_context",
    "validate",
]

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")
SECRET_FIELDS = frozenset({"sasl_password", "ssl_key_password"})
MASK = "***"
_TLS = frozenset({"SSL", "SASL_SSL"})
_SASL = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
_SSL_FIELDS = ("ssl_ca_file", "ssl_cert_file", "ssl_key_file", "ssl_key_password")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Pass-through properties whose values are secrets (masked like the secret fields).
_SECRET_PROPERTY = re.compile(r"password|secret|token|jaas|\.pem$|oauthbearer\.config", re.I)


class KafkaSecurity(Protocol):
    """The ``[kafka]`` fields read here (``driftline.config.KafkaSettings`` has them)."""

    @property
    def security_protocol(self) -> str: ...
    @property
    def sasl_mechanism(self) -> str: ...
    @property
    def sasl_username(self) -> str: ...
    @property
    def sasl_password(self) -> str: ...
    @property
    def ssl_ca_file(self) -> str: ...
    @property
    def ssl_cert_file(self) -> str: ...
    @property
    def ssl_key_file(self) -> str: ...
    @property
    def ssl_key_password(self) -> str: ...
    @property
    def ssl_endpoint_identification(self) -> bool: ...
    @property
    def librdkafka(self) -> Mapping[str, Any]: ...


# -- validation ---------------------------------------------------------------------
def validate(s: KafkaSecurity) -> None:
    """Refuse a combination no client could use; each error names the key and the fix."""
    _check(
        s.security_protocol in PROTOCOLS,
        "kafka.security_protocol",
        f"must be one of {', '.join(PROTOCOLS)}, got {s.security_protocol!r}",
    )
    sasl = s.security_protocol in _SASL
    if sasl:
        _check(
            s.sasl_mechanism in MECHANISMS,
            "kafka.sasl_mechanism",
            f"must be one of {', '.join(MECHANISMS)} with security_protocol {s.security_protocol}, "
            f"got {s.sasl_mechanism!r}",
        )
        if s.sasl_mechanism == "OAUTHBEARER":
            for key in ("sasl_username", "sasl_password"):
                _check(
                    not getattr(s, key),
                    f"kafka.{key}",
                    "OAUTHBEARER takes a token, not a username/password; "
                    "configure it with sasl.oauthbearer.* in [kafka.librdkafka]",
                )
        else:
            _check(bool(s.sasl_username), "kafka.sasl_username", f"required with sasl_mechanism {s.sasl_mechanism}")
            _check(bool(s.sasl_password), "kafka.sasl_password", f"required with sasl_mechanism {s.sasl_mechanism}")
    else:
        for key in ("sasl_mechanism", "sasl_username", "sasl_password"):
            _check(
                not getattr(s, key),
                f"kafka.{key}",
                f"only used with security_protocol SASL_PLAINTEXT or SASL_SSL (it is {s.security_protocol})",
            )
    if s.security_protocol not in _TLS:
        for key in _SSL_FIELDS:
            _check(
                not getattr(s, key),
                f"kafka.{key}",
                f"only used with security_protocol SSL or SASL_SSL (it is {s.security_protocol})",
            )
    _check(
        bool(s.ssl_cert_file) == bool(s.ssl_key_file),
        "kafka.ssl_key_file" if s.ssl_cert_file else "kafka.ssl_cert_file",
        "ssl_cert_file and ssl_key_file go together (the client certificate and its key, for mTLS)",
    )
    _check(
        not s.ssl_key_password or bool(s.ssl_key_file),
        "kafka.ssl_key_password",
        "only used with ssl_key_file (it decrypts that key)",
    )
    for key in SECRET_FIELDS:
        _check_reference(f"kafka.{key}", getattr(s, key))
    _check_passthrough(s.librdkafka)


def _check_reference(key: str, value: str) -> None:
    if value.startswith("env:"):
        _check(
            bool(_ENV_NAME.fullmatch(value[4:])),
            key,
            f"'env:' must be followed by an environment variable name, got {value!r}",
        )
    elif value.startswith("file:"):
        _check(bool(value[5:]), key, "'file:' must be followed by the path of the file holding the secret")


def _check_passthrough(table: Mapping[str, Any]) -> None:
    for name, value in table.items():
        key = f"kafka.librdkafka.{name}"
        _check(isinstance(name, str) and bool(name.strip()), "kafka.librdkafka", "property names must be non-empty")
        _check(
            name != "bootstrap.servers",
            key,
            "set the brokers with kafka.bootstrap_servers (or KAFKA_BOOTSTRAP_SERVERS), not here",
        )
        _check(
            isinstance(value, str | int | float | bool),
            key,
            f"must be a string, number or boolean, got {type(value).__name__}",
        )


# -- secrets and masking --------------------------------------------------------------
def resolve_secret(key: str, value: str, env: Mapping[str, str] | None = None) -> str:
    """The secret ``value`` stands for: itself, ``env:NAME``'s variable, or ``file:PATH``'s text."""
    if value.startswith("env:"):
        name = value[4:]
        found = (os.environ if env is None else env).get(name)
        _check(bool(found), key, f"environment variable {name} (from {value!r}) is not set or empty")
        return str(found)
    if value.startswith("file:"):
        path = Path(value[5:]).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(key, f"cannot read the secret file {path}: {exc.strerror or exc}") from None
        secret = text.removesuffix("\n").removesuffix("\r")
        _check(bool(secret), key, f"the secret file {path} is empty")
        return secret
    return value


def is_secret_property(name: str) -> bool:
    """Whether a librdkafka property's value is a secret (masked in logs)."""
    return bool(_SECRET_PROPERTY.search(name))


def mask_value(value: str) -> str:
    """``***`` for a literal secret; a reference (``env:…``, ``file:…``) or empty value as it is."""
    if not value or value.startswith(("env:", "file:")):
        return value
    return MASK


def masked(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``[kafka]``'s fields fit for a log line: every secret replaced by ``***``."""
    out = dict(fields)
    for key in SECRET_FIELDS & out.keys():
        out[key] = mask_value(str(out[key]))
    if isinstance(out.get("librdkafka"), Mapping):
        out["librdkafka"] = {k: (MASK if is_secret_property(k) else v) for k, v in out["librdkafka"].items()}
    return out


def masked_properties(props: Mapping[str, Any]) -> dict[str, Any]:
    """A librdkafka configuration fit for a log line (secret properties as ``***``)."""
    return {k: (MASK if is_secret_property(k) else v) for k, v in props.items()}


# -- librdkafka ---------------------------------------------------------------------
def librdkafka_properties(s: KafkaSecurity, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The librdkafka security properties for ``s``, the ``[kafka.librdkafka]`` table on top.

    Every confluent-kafka producer, consumer and admin client gets these (merged into its
    own configuration). Pure but for resolving ``env:``/``file:`` secrets and checking that
    the named certificate files exist, so a typo is one clear error naming the key instead
    of a librdkafka failure at the first connection.
    """
    props: dict[str, str] = {"security.protocol": s.security_protocol}
    if s.security_protocol in _SASL:
        props["sasl.mechanism"] = s.sasl_mechanism
        if s.sasl_mechanism != "OAUTHBEARER":
            props["sasl.username"] = s.sasl_username
            props["sasl.password"] = resolve_secret("kafka.sasl_password", s.sasl_password, env)
    if s.security_protocol in _TLS:
        for key, prop in (
            ("ssl_ca_file", "ssl.ca.location"),
            ("ssl_cert_file", "ssl.certificate.location"),
            ("ssl_key_file", "ssl.key.location"),
        ):
            if getattr(s, key):
                props[prop] = _existing_file(key, getattr(s, key))
        if s.ssl_key_password:
            props["ssl.key.password"] = resolve_secret("kafka.ssl_key_password", s.ssl_key_password, env)
        props["ssl.endpoint.identification.algorithm"] = "https" if s.ssl_endpoint_identification else "none"
    props.update({name: _property_text(value) for name, value in s.librdkafka.items()})
    return props


def _property_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _existing_file(key: str, value: str) -> str:
    path = Path(value).expanduser()
    _check(path.is_file(), f"kafka.{key}", f"no such file: {path}")
    return str(path)


# -- faust / aiokafka ---------------------------------------------------------------
@dataclass(frozen=True)
class AiokafkaAuth:
    """What an aiokafka client (``client_kwargs``) or faust's app (``faust_credentials``) needs."""

    security_protocol: str
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = field(default=None, repr=False)
    ssl_context: ssl.SSLContext | None = None
    sasl_oauth_token_provider: Any = None

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AIOKafkaConsumer``/``AIOKafkaProducer``/``AIOKafkaAdminClient``."""
        kwargs: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.ssl_context is not None:
            kwargs["ssl_context"] = self.ssl_context
        if self.sasl_mechanism is not None:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            if self.sasl_mechanism == "OAUTHBEARER":
                kwargs["sasl_oauth_token_provider"] = self.sasl_oauth_token_provider
            else:
                kwargs["sasl_plain_username"] = self.sasl_plain_username
                kwargs["sasl_plain_password"] = self.sasl_plain_password
        return kwargs

    def faust_credentials(self) -> Any:
        """``faust.App(broker_credentials=...)``: None (PLAINTEXT), SSL or SASL credentials.

        faust 0.15.3's ``SSLCredentials(cafile=…)`` raises TypeError (no ``purpose``), so
        the context is always built here and handed over whole.
        """
        import faust

        if self.security_protocol == "PLAINTEXT":
            return None
        if self.security_protocol == "SSL":
            return faust.SSLCredentials(self.ssl_context)
        if self.sasl_mechanism == "OAUTHBEARER":
            return faust.OAuthCredentials(oauth_cb=self.sasl_oauth_token_provider, ssl_context=self.ssl_context)
        # faust picks SASL_SSL when it gets a context, SASL_PLAINTEXT otherwise: as configured.
        return faust.SASLCredentials(
            username=self.sasl_plain_username,
            password=self.sasl_plain_password,
            ssl_context=self.ssl_context,
            mechanism=self.sasl_mechanism,
        )


def aiokafka_credentials(
    s: KafkaSecurity, env: Mapping[str, str] | None = None, *, token_provider: Any = None
) -> AiokafkaAuth:
    """The same settings as ``librdkafka_properties``, in aiokafka's (and so faust's) terms.

    ``[kafka.librdkafka]`` does not apply here (those are librdkafka's names). OAUTHBEARER
    needs an aiokafka ``AbstractTokenProvider`` as ``token_provider``.
    """
    context = ssl_context(s, env) if s.security_protocol in _TLS else None
    if s.security_protocol not in _SASL:
        return AiokafkaAuth(s.security_protocol, ssl_context=context)
    if s.sasl_mechanism == "OAUTHBEARER":
        _check(
            token_provider is not None,
            "kafka.sasl_mechanism",
            "OAUTHBEARER for faust/aiokafka clients needs a token provider, which driftline does not configure; "
            "use SCRAM-SHA-512 (or PLAIN over SASL_SSL) for the stream",
        )
        return AiokafkaAuth(
            s.security_protocol, "OAUTHBEARER", ssl_context=context, sasl_oauth_token_provider=token_provider
        )
    return AiokafkaAuth(
        s.security_protocol,
        s.sasl_mechanism,
        s.sasl_username,
        resolve_secret("kafka.sasl_password", s.sasl_password, env),
        context,
    )


def ssl_context(s: KafkaSecurity, env: Mapping[str, str] | None = None) -> ssl.SSLContext:
    """A client TLS context: the CA (else the system's), the client certificate for mTLS, hostname check.

    With ``ssl_endpoint_identification = false`` the chain is still verified; only the
    host name is not (as librdkafka's ``ssl.endpoint.identification.algorithm=none``).
    """
    ca = _existing_file("ssl_ca_file", s.ssl_ca_file) if s.ssl_ca_file else None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    except ssl.SSLError as exc:
        raise ConfigError("kafka.ssl_ca_file", f"{ca} is not a PEM CA certificate ({exc.reason})") from None
    context.check_hostname = s.ssl_endpoint_identification
    if s.ssl_cert_file:
        cert = _existing_file("ssl_cert_file", s.ssl_cert_file)
        key = _existing_file("ssl_key_file", s.ssl_key_file)
        password = resolve_secret("kafka.ssl_key_password", s.ssl_key_password, env) if s.ssl_key_password else None
        try:
            context.load_cert_chain(cert, key, password=password)
        except ssl.SSLError as exc:
            raise ConfigError(
                "kafka.ssl_key_file",
                f"{key} does not load with {cert} ({exc.reason}); check the pair and kafka.ssl_key_password",
            ) from None
    return context


def _check(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError(key, problem)
