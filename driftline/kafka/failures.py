"""Which Kafka errors mean "the broker refused this client", and which setting to check.

Why: librdkafka retries a wrong password or an untrusted certificate forever, logging one
line per attempt per broker, and an authorization failure comes back as a bare code. A
user needs one sentence naming what failed and the ``[kafka]`` setting (or ACL) to fix.
Pure: works on the error's code name and text, so the client layer, the CLI and the
stream's aiokafka side share it.
"""

from __future__ import annotations

__all__ = ["AUTHORIZATION_CODES", "explain", "is_refusal_log", "refusal_line"]

_ACLS = "run `driftline acls apply` with the admin's config, or ask the cluster's administrator (docs/secure-kafka.md)"

AUTHORIZATION_CODES: dict[str, str] = {
    "TOPIC_AUTHORIZATION_FAILED": "the principal has no ACL for this topic",
    "GROUP_AUTHORIZATION_FAILED": "the principal has no ACL for its consumer group",
    "TRANSACTIONAL_ID_AUTHORIZATION_FAILED": "the principal has no ACL for its transactional id",
    "CLUSTER_AUTHORIZATION_FAILED": "the principal has no ACL for this cluster operation",
    "DELEGATION_TOKEN_AUTHORIZATION_FAILED": "the principal may not use delegation tokens",
}

_AUTHENTICATION = ("_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "SaslAuthenticationFailedError")
#: librdkafka log lines the error callback already reports once (dropped from the log).
_REFUSAL_LOG = (
    "SASL authentication error",
    "SSL handshake failed",
    "Authentication failed",
    "certificate verify failed",
    "authorization failed",
)


def explain(code: str, detail: str, username: str = "") -> str | None:
    """What to check for a refusal (``None`` when ``code`` is not one: retry or report as usual)."""
    who = f"User:{username}" if username else "the principal"
    if code in AUTHORIZATION_CODES:
        return f"{AUTHORIZATION_CODES[code].replace('the principal', who)}: {_ACLS}"
    if code in _AUTHENTICATION or "SASL authentication" in detail:
        return (
            "the broker refused the credentials: check kafka.sasl_username and kafka.sasl_password "
            "(and kafka.sasl_mechanism)"
        )
    lowered = detail.lower()
    if code == "_SSL" or "ssl handshake" in lowered or "certificate verify failed" in lowered:
        if "certificate verify failed" in lowered or "broker certificate could not be verified" in lowered:
            return "the broker's certificate is not trusted: check kafka.ssl_ca_file (the CA that signed it)"
        if "hostname" in lowered or "ip address mismatch" in lowered:
            return (
                "the broker's certificate does not name this host: check kafka.bootstrap_servers, "
                "or set kafka.ssl_endpoint_identification = false"
            )
        return "the TLS handshake failed: check kafka.ssl_ca_file and, for mTLS, kafka.ssl_cert_file/kafka.ssl_key_file"
    return None


def is_refusal_log(message: str) -> bool:
    """Whether a librdkafka log line repeats a refusal the error callback reports."""
    return any(part.lower() in message.lower() for part in _REFUSAL_LOG)


def refusal_line(exc: BaseException) -> str | None:
    """One line for a confluent-kafka exception that is a refusal (``KafkaException(KafkaError)``), else None.

    For what escapes a process as the client library's own exception (a transactional id
    the principal may not use makes ``init_transactions`` raise): the CLI prints this.
    """
    error = exc.args[0] if exc.args else None
    name, text = getattr(error, "name", None), getattr(error, "str", None)
    if not callable(name) or not callable(text):
        return None
    code, detail = str(name()), str(text())
    check = explain(code, detail)
    return None if check is None else f"{detail} ({code}); {check}"
