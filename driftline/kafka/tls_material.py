"""A throw-away certificate authority and the certificates a secured local broker needs.

Why: the secured local broker (``driftline.kafka.secure_broker``) must speak TLS with a
certificate clients can verify, and mTLS clients need certificates of their own; neither
``openssl`` nor ``keytool`` can be assumed on a developer machine, the ``cryptography``
package (already a dependency) can.

Clients get PEM (librdkafka and Python's ``ssl`` read it). The broker's own key goes
into a PKCS12 key store: on Java 17, Kafka 4.1's PEM key store cannot decrypt a PKCS#8
key encrypted the modern way ("PBES2 SecretKeyFactory not available") and cannot hold
an unencrypted one, while PKCS12 with AES-256 reads everywhere. Trust stores stay PEM.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertificateAuthority", "IssuedCertificate", "new_authority", "write_private"]

#: Long enough for a developer's broker, short enough that a leaked throw-away CA expires.
VALID_DAYS = 365
_KEY_BITS = 2048


@dataclass(frozen=True)
class IssuedCertificate:
    """A key and its certificate, signed by the authority that issued it."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, password: str | None) -> bytes:
        """PKCS#8 PEM, encrypted with ``password`` (``None``: unencrypted)."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
        )
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)

    def pkcs12(self, password: str, chain: tuple[x509.Certificate, ...] = ()) -> bytes:
        """A PKCS12 key store (key, certificate, ``chain``), encrypted with ``password``."""
        return pkcs12.serialize_key_and_certificates(
            b"kafka",
            self.key,
            self.certificate,
            list(chain),
            serialization.BestAvailableEncryption(password.encode()),
        )


@dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed CA that issues server and client certificates."""

    root: IssuedCertificate

    def certificate_pem(self) -> bytes:
        return self.root.certificate_pem()

    def issue(
        self,
        common_name: str,
        *,
        dns_names: tuple[str, ...] = (),
        ip_addresses: tuple[str, ...] = (),
        server: bool = False,
        client: bool = True,
    ) -> IssuedCertificate:
        """A leaf certificate for ``CN=<common_name>``; a server one carries the SANs clients verify."""
        key = _new_key()
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] * server + [ExtendedKeyUsageOID.CLIENT_AUTH] * client
        builder = _builder(common_name, key, self.root.certificate.subject).add_extension(
            x509.BasicConstraints(ca=False, path_length=None), critical=True
        )
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=True,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(self.root.key.public_key()), critical=False
        )
        return IssuedCertificate(key, builder.sign(self.root.key, hashes.SHA256()))


def new_authority(common_name: str = "driftline local CA") -> CertificateAuthority:
    """A fresh CA with a random key; nothing is written to disk."""
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        _builder(common_name, key, name)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    return CertificateAuthority(IssuedCertificate(key, builder.sign(key, hashes.SHA256())))


def write_private(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` readable by its owner only (0600 from creation, no window)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path


def _new_key() -> rsa.RSAPrivateKey:
    # RSA rather than EC: every consumer here (Kafka's PEM store, librdkafka, Python ssl) reads it.
    return rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)


def _builder(common_name: str, key: rsa.RSAPrivateKey, issuer: x509.Name) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
