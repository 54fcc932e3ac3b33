"""The throw-away CA: a server certificate clients verify for 127.0.0.1 and localhost, mTLS client certs."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from driftline.kafka.tls_material import new_authority, write_private


def test_server_certificate_covers_loopback_and_is_signed_by_the_ca() -> None:
    ca = new_authority()
    server = ca.issue("broker", dns_names=("localhost",), ip_addresses=("127.0.0.1",), server=True)
    sans = server.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    usages = server.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages and ExtendedKeyUsageOID.CLIENT_AUTH in usages
    server.certificate.verify_directly_issued_by(ca.root.certificate)
    assert ca.root.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_client_certificate_subject_is_the_principal_name() -> None:
    client = new_authority().issue("subscriber")
    assert client.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "subscriber"
    usages = client.certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_keys_are_encrypted_and_files_private(tmp_path: Path) -> None:
    ca = new_authority()
    client = ca.issue("subscriber")
    pem = client.key_pem("pw")
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    path = write_private(tmp_path / "k" / "key.pem", pem)
    assert path.stat().st_mode & 0o777 == 0o600
    store = pkcs12.load_key_and_certificates(client.pkcs12("pw", (ca.root.certificate,)), b"pw")
    assert store[1] == client.certificate and store[2] == [ca.root.certificate]


def test_python_tls_handshake_verifies_ip_and_hostname(tmp_path: Path) -> None:
    """What the broker's clients do: trust only the CA, check 127.0.0.1, present a client certificate."""
    ca = new_authority()
    server = ca.issue("broker", dns_names=("localhost",), ip_addresses=("127.0.0.1",), server=True)
    client = ca.issue("subscriber")
    (tmp_path / "ca.pem").write_bytes(ca.certificate_pem())
    (tmp_path / "server.pem").write_bytes(server.certificate_pem())
    write_private(tmp_path / "server-key.pem", server.key_pem("spw"))
    (tmp_path / "client.pem").write_bytes(client.certificate_pem())
    write_private(tmp_path / "client-key.pem", client.key_pem("cpw"))

    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tmp_path / "ca.pem"))
    server_ctx.load_cert_chain(tmp_path / "server.pem", tmp_path / "server-key.pem", password="spw")
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    client_ctx.load_cert_chain(tmp_path / "client.pem", tmp_path / "client-key.pem", password="cpw")

    seen: list[object] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                seen.append(tls.getpeercert())

        thread = threading.Thread(target=serve)
        thread.start()
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_ctx.wrap_socket(raw, server_hostname="127.0.0.1"),
        ):
            pass
        thread.join(10)
    assert seen and dict(x[0] for x in seen[0]["subject"]) == {"commonName": "subscriber"}  # type: ignore[index]
