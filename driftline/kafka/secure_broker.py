"""The local KRaft broker with production-style security: SASL_SSL, mTLS and ACLs.

Why: driftline must be tested the way it runs on a company's cluster — authenticated,
encrypted, with a principal per process and nothing allowed that was not granted — and
a developer machine has no such cluster. Same jars and process mechanics as
``LocalBroker``; in its own instance directory (``.driftline/kafka-secure``) and on its own
ports (9192 and up, never the plain broker's 9092):

- ``SASL_SSL`` (``bootstrap_servers``): SCRAM-SHA-512, one user per role (``ROLES``),
  created at format time (``kafka-storage format --add-scram``) with random passwords;
- ``SSL`` (``mtls_bootstrap_servers``): ``ssl.client.auth=required``; a client certificate
  ``CN=<name>`` is the principal ``User:<name>`` (``ssl.principal.mapping.rules``), so the
  subscriber is ``User:subscriber`` over either listener and one set of ACLs covers both.
  It is also the inter-broker listener (the broker's own certificate, ``User:broker``);
- ``CONTROLLER``: TLS with client certificates too, on 127.0.0.1 only;
- ``StandardAuthorizer`` with ``super.users=User:admin;User:broker``; no ACL, no access.

A throw-away CA (its key is never written) signs the broker certificate (SAN 127.0.0.1
and localhost) and the subscriber's client certificate. Each principal gets a ready
client config, ``<instance>/clients/<role>.toml`` (0600), with a ``[kafka]`` section in
driftline's settings keys; ``clients/subscriber-mtls.toml`` is the mTLS one.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from driftline.errors import BrokerUnavailable, ConfigError
from driftline.kafka.admin import KafkaAdmin
from driftline.kafka.local_broker import (
    HOST,
    BrokerStatus,
    LocalBroker,
    _free_port,
    _port_free,
    render_properties,
    server_props,
)
from driftline.kafka.security import librdkafka_properties
from driftline.kafka.tls_material import new_authority, write_private

__all__ = [
    "DEFAULT_SECURE_PORT",
    "MECHANISM",
    "MTLS_ROLES",
    "ROLES",
    "ClientFiles",
    "ClientSecurity",
    "SecureBroker",
    "default_secure_instance_dir",
]

DEFAULT_SECURE_PORT = 9192
MECHANISM = "SCRAM-SHA-512"
#: One principal per driftline process (issue 14); ``admin`` is the super user that grants ACLs.
ROLES = ("admin", "ingest", "stream", "trainer", "operator", "subscriber")
#: Roles that also get a client certificate for the mTLS listener.
MTLS_ROLES = ("subscriber",)
BROKER_PRINCIPAL = "broker"
#: ``CN=subscriber`` → ``User:subscriber``; any other subject keeps Kafka's default (the full DN).
PRINCIPAL_MAPPING = "RULE:^CN=([a-zA-Z0-9._-]+)$/$1/,DEFAULT"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"


def default_secure_instance_dir() -> Path:
    """``.driftline/kafka-secure`` under the current directory (next to the plain broker's)."""
    return Path.cwd() / ".driftline" / "kafka-secure"


@dataclass(frozen=True)
class ClientFiles:
    """Where a principal's ready client config is."""

    role: str
    config: Path  # a TOML file with a [kafka] section
    mtls_config: Path | None  # the same principal over the mTLS listener, if it has a certificate


class SecureBroker(LocalBroker):
    """A ``LocalBroker`` with SASL_SSL, mTLS and ACLs; constructing it touches nothing.

    ``port`` is the SASL_SSL port; ``mtls_port`` the SSL one (default: port+2, else any
    free port). Credentials and certificates are made once, before the first format, and
    kept in the instance directory (``credentials.json`` and ``tls/``, 0600).
    """

    default_port = DEFAULT_SECURE_PORT

    def __init__(
        self,
        instance_dir: str | os.PathLike[str] | None = None,
        port: int | None = None,
        controller_port: int | None = None,
        mtls_port: int | None = None,
        *,
        cache_root: str | os.PathLike[str] | None = None,
        die_with_parent: bool = False,
    ) -> None:
        super().__init__(
            instance_dir or default_secure_instance_dir(),
            port,
            controller_port,
            cache_root=cache_root,
            die_with_parent=die_with_parent,
        )
        self.requested_mtls_port = mtls_port

    # -- where things are ------------------------------------------------------------
    @property
    def tls_dir(self) -> Path:
        return self.instance_dir / "tls"

    @property
    def ca_file(self) -> Path:
        """The CA certificate clients must trust (public; not a secret)."""
        return self.tls_dir / "ca.pem"

    @property
    def clients_dir(self) -> Path:
        return self.instance_dir / "clients"

    @property
    def _credentials_path(self) -> Path:
        return self.instance_dir / "credentials.json"

    @property
    def _mtls_record_path(self) -> Path:
        return self.instance_dir / "secure.json"

    @property
    def mtls_port(self) -> int:
        try:
            return int(json.loads(self._mtls_record_path.read_text())["mtls_port"])
        except (OSError, ValueError, KeyError, TypeError):
            return self.requested_mtls_port or self.port + 2

    @property
    def mtls_bootstrap_servers(self) -> str:
        """``127.0.0.1:<mtls port>``: the listener that requires a client certificate."""
        return f"{HOST}:{self.mtls_port}"

    def client_files(self, role: str) -> ClientFiles:
        """The config files ``start`` wrote for ``role`` (one of ``ROLES``)."""
        if role not in ROLES:
            raise BrokerUnavailable(f"no principal {role!r} on the secured broker; roles: {', '.join(ROLES)}")
        mtls = self.clients_dir / f"{role}-mtls.toml" if role in MTLS_ROLES else None
        return ClientFiles(role, self.clients_dir / f"{role}.toml", mtls)

    def client_security(self, role: str, *, mtls: bool = False) -> ClientSecurity:
        """``role``'s connection settings (what its client config file holds)."""
        credentials = self._read_credentials()
        self.client_files(role)  # refuses an unknown role
        if mtls:
            if role not in MTLS_ROLES:
                raise BrokerUnavailable(f"{role!r} has no client certificate; mTLS roles: {', '.join(MTLS_ROLES)}")
            return ClientSecurity(
                bootstrap_servers=self.mtls_bootstrap_servers,
                security_protocol="SSL",
                ssl_ca_file=str(self.ca_file),
                ssl_cert_file=str(self.tls_dir / f"{role}.pem"),
                ssl_key_file=str(self.tls_dir / f"{role}-key.pem"),
                ssl_key_password=credentials["client_key_passwords"][role],
            )
        return ClientSecurity(
            bootstrap_servers=self.bootstrap_servers,
            security_protocol="SASL_SSL",
            sasl_mechanism=MECHANISM,
            sasl_username=role,
            sasl_password=credentials["scram"][role],
            ssl_ca_file=str(self.ca_file),
        )

    def admin_properties(self) -> dict[str, str]:
        """librdkafka properties (``bootstrap.servers`` included) of the ``admin`` principal."""
        admin = self.client_security("admin")
        return {"bootstrap.servers": admin.bootstrap_servers, **librdkafka_properties(admin, env={})}

    def start(self, timeout: float = 60.0) -> BrokerStatus:
        """Start (or find running) the broker, then (re)write every principal's client config."""
        status = super().start(timeout)
        self._write_client_configs()
        return status

    # -- LocalBroker hooks -----------------------------------------------------------
    def _choose_ports(self) -> tuple[int, int]:
        port, controller_port = super()._choose_ports()
        mtls = self._recorded_mtls() or self.requested_mtls_port
        if mtls is None:
            mtls = port + 2 if port + 2 != controller_port and _port_free(port + 2) else _free_port()
        if mtls in (port, controller_port):
            raise BrokerUnavailable(f"mTLS port {mtls} is already this instance's client or controller port")
        if not _port_free(mtls):
            raise BrokerUnavailable(f"port {mtls} on {HOST} is already in use; choose another mTLS port")
        self._mtls_record_path.parent.mkdir(parents=True, exist_ok=True)
        self._mtls_record_path.write_text(json.dumps({"mtls_port": mtls}))
        return port, controller_port

    def _server_config(self, port: int, controller_port: int) -> str:
        credentials = self._ensure_material()
        return render_properties(
            secure_server_props(
                server_props(port, controller_port, self.data_dir),
                port=port,
                mtls_port=self.mtls_port,
                controller_port=controller_port,
                broker_keystore=self.tls_dir / "broker.p12",
                key_password=credentials["broker_key_password"],
                truststore=self.ca_file,
            )
        )

    def _format_arguments(self) -> list[str]:
        users = self._read_credentials()["scram"]
        args: list[str] = []
        for name, password in users.items():
            args += ["--add-scram", f"{MECHANISM}=[name={name},password={password}]"]
        return args

    def _admin(self) -> KafkaAdmin:
        try:
            config: dict[str, Any] = self.admin_properties()
        except (BrokerUnavailable, ConfigError):
            config = {"security.protocol": "SASL_SSL"}  # not made yet: the ping fails, as it should
        return KafkaAdmin(self.bootstrap_servers, config=config)

    # -- credentials and certificates ------------------------------------------------------
    def _recorded_mtls(self) -> int | None:
        if not (self.data_dir / "meta.properties").exists():
            return None
        try:
            return int(json.loads(self._mtls_record_path.read_text())["mtls_port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _read_credentials(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self._credentials_path.read_text())
            return data
        except (OSError, ValueError) as exc:
            raise BrokerUnavailable(
                f"{self._credentials_path} is missing or unreadable ({exc}); the SCRAM users were made with it. "
                f"Stop the broker and remove {self.instance_dir} to start over with new credentials"
            ) from None

    def _ensure_material(self) -> dict[str, Any]:
        """Credentials and TLS files: made once, before the first format; reused after."""
        formatted = (self.data_dir / "meta.properties").exists()
        if self._credentials_path.exists() and (self.tls_dir / "broker.p12").exists():
            return self._read_credentials()
        if formatted:
            self._read_credentials()  # raises: the storage holds users whose passwords are lost
            raise BrokerUnavailable(
                f"{self.tls_dir} is incomplete; remove {self.instance_dir} to start over with new credentials"
            )
        credentials: dict[str, Any] = {
            "scram": {role: secrets.token_hex(24) for role in ROLES},
            "broker_key_password": secrets.token_hex(24),
            "client_key_passwords": {role: secrets.token_hex(24) for role in MTLS_ROLES},
        }
        ca = new_authority()
        broker = ca.issue(BROKER_PRINCIPAL, dns_names=("localhost",), ip_addresses=(HOST,), server=True, client=True)
        self.tls_dir.mkdir(parents=True, exist_ok=True)
        self.ca_file.write_bytes(ca.certificate_pem())
        write_private(
            self.tls_dir / "broker.p12",
            broker.pkcs12(credentials["broker_key_password"], (ca.root.certificate,)),
        )
        for role in MTLS_ROLES:
            client = ca.issue(role, client=True)
            write_private(self.tls_dir / f"{role}-key.pem", client.key_pem(credentials["client_key_passwords"][role]))
            (self.tls_dir / f"{role}.pem").write_bytes(client.certificate_pem() + ca.certificate_pem())
        write_private(self._credentials_path, json.dumps(credentials, indent=2).encode())
        return credentials

    def _write_client_configs(self) -> None:
        """One TOML per principal, rewritten on every start (the ports may have changed)."""
        for role in ROLES:
            files = self.client_files(role)
            title = f"User:{role} over SASL_SSL ({MECHANISM})"
            write_private(files.config, client_toml(title, self.client_security(role).toml_keys()).encode())
            if files.mtls_config is not None:
                title = f"User:{role} over mTLS (certificate CN={role})"
                keys = self.client_security(role, mtls=True).toml_keys()
                write_private(files.mtls_config, client_toml(title, keys).encode())


def secure_server_props(
    base: Mapping[str, str],
    *,
    port: int,
    mtls_port: int,
    controller_port: int,
    broker_keystore: Path,
    key_password: str,
    truststore: Path,
) -> dict[str, str]:
    """The plain broker's properties with its listeners replaced by SASL_SSL, SSL (mTLS) and a TLS controller."""
    listeners = f"SASL_SSL://{HOST}:{port},SSL://{HOST}:{mtls_port},CONTROLLER://{HOST}:{controller_port}"
    props = dict(base)
    props.update(
        {
            "listeners": listeners,
            "advertised.listeners": listeners,
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,SSL:SSL,CONTROLLER:SSL",
            "inter.broker.listener.name": "SSL",
            "controller.listener.names": "CONTROLLER",
            # SCRAM on the SASL_SSL listener only; the users' credentials live in the metadata log.
            "sasl.enabled.mechanisms": MECHANISM,
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            # Client certificates: required on the mTLS and controller listeners (listener-prefixed,
            # so the SASL_SSL listener does not ask for one, KIP-684).
            "listener.name.ssl.ssl.client.auth": "required",
            "listener.name.controller.ssl.client.auth": "required",
            "ssl.principal.mapping.rules": PRINCIPAL_MAPPING,
            "ssl.keystore.type": "PKCS12",  # see driftline.kafka.tls_material on why not PEM
            "ssl.keystore.location": str(broker_keystore),
            "ssl.keystore.password": key_password,
            "ssl.key.password": key_password,
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(truststore),
            "ssl.endpoint.identification.algorithm": "https",
            "authorizer.class.name": AUTHORIZER,
            "super.users": f"User:admin;User:{BROKER_PRINCIPAL}",
            "allow.everyone.if.no.acl.found": "false",
        }
    )
    return props


def client_toml(title: str, kafka: Mapping[str, str]) -> str:
    """A ``[kafka]`` section usable as ``driftline.toml`` or ``--config`` (JSON strings are TOML strings)."""
    lines = [f"# driftline client config: {title}; generated by `driftline kafka start --secure`", "[kafka]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in kafka.items()]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ClientSecurity:
    """One principal's ``[kafka]`` security keys (the fields ``driftline.kafka.security`` maps)."""

    bootstrap_servers: str
    security_protocol: str
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    ssl_ca_file: str = ""
    ssl_cert_file: str = ""
    ssl_key_file: str = ""
    ssl_key_password: str = field(default="", repr=False)
    ssl_endpoint_identification: bool = True
    librdkafka: Mapping[str, Any] = field(default_factory=dict)

    def toml_keys(self) -> dict[str, str]:
        """The non-empty string keys, as a client config writes them."""
        return {k: v for k, v in asdict(self).items() if isinstance(v, str) and v}
