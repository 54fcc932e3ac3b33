"""The exception hierarchy: every error driftline raises derives from DriftlineError.

Callers catch one type; Kafka errors are wrapped with their code so a log line says
what went wrong and what to do about it.
"""

from __future__ import annotations

__all__ = ["BrokerUnavailable", "ConfigError", "DriftlineError", "KafkaOperationFailed"]


class DriftlineError(Exception):
    """Root of all driftline errors."""


class ConfigError(DriftlineError):
    """A configuration key is unknown or its value is bad; the message names the key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config key {key!r}: {problem}")
        self.key = key
        self.problem = problem


class BrokerUnavailable(DriftlineError):
    """No Kafka broker could be reached or started; the message says what to do."""


class KafkaOperationFailed(DriftlineError):
    """A Kafka client call failed; carries the librdkafka error code name."""

    def __init__(self, operation: str, code: str, detail: str) -> None:
        super().__init__(f"{operation} failed: {code}: {detail}")
        self.operation = operation
        self.code = code
