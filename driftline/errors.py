"""The exception hierarchy: every error driftline raises derives from DriftlineError.

Callers catch one type; Kafka errors are wrapped with their code so a log line says
what went wrong and what to do about it.
"""

from __future__ import annotations

__all__ = ["BrokerUnavailable", "ConfigError", "DriftlineError", "KafkaAccessDenied", "KafkaOperationFailed"]


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

    def __init__(self, operation: str, code: str, detail: str, fatal: bool = False) -> None:
        super().__init__(f"{operation} failed: {code}: {detail}")
        self.operation = operation
        self.code = code
        self.fatal = fatal
        """librdkafka said the client cannot go on (a fenced producer): the process must stop."""


class KafkaAccessDenied(KafkaOperationFailed):
    """The broker refused this client: bad credentials, an untrusted certificate or a missing ACL.

    Retrying cannot help, so the process stops with one line naming the ``[kafka]`` setting
    (or the ACL) to check instead of librdkafka retrying forever.
    """

    def __init__(self, operation: str, code: str, detail: str, check: str) -> None:
        DriftlineError.__init__(self, f"{operation}: {detail} ({code}); {check}")
        self.operation = operation
        self.code = code
        self.check = check
        self.fatal = True
