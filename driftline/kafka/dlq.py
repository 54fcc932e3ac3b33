"""Dead-letter records: the original bytes, unchanged, with why and where in headers.

A DLQ message keeps the source key and value byte for byte so it can be replayed after
the producer is fixed; headers say which topic/partition/offset it came from, which field
broke which rule, and when ingest rejected it.
"""

from __future__ import annotations

import time
from typing import Any

from driftline.schemas.events import InvalidEvent

__all__ = ["HEADER_PREFIX", "dlq_headers", "parse_dlq_headers"]

HEADER_PREFIX = "driftline."


def dlq_headers(
    topic: str,
    partition: int,
    offset: int,
    error: InvalidEvent,
    original: list[tuple[str, bytes | None]] | None = None,
    now: float | None = None,
) -> list[tuple[str, bytes]]:
    """Headers for one rejected message; the producer's own headers are kept after ours."""
    when = time.time() if now is None else now
    headers = [
        ("driftline.source.topic", topic.encode()),
        ("driftline.source.partition", str(partition).encode()),
        ("driftline.source.offset", str(offset).encode()),
        ("driftline.error.field", error.field.encode()),
        ("driftline.error.rule", error.rule.encode()),
        ("driftline.error", str(error).encode()),
        ("driftline.rejected_at", _rfc3339(when).encode()),
    ]
    for name, value in original or ():
        headers.append((name, value if value is not None else b""))
    return headers


def parse_dlq_headers(headers: list[tuple[str, bytes]] | None) -> dict[str, Any]:
    """The ``driftline.*`` headers of a DLQ message as a dict of strings (tools, tests)."""
    parsed: dict[str, Any] = {}
    for name, value in headers or ():
        if name.startswith(HEADER_PREFIX) and name not in parsed:
            parsed[name[len(HEADER_PREFIX) :]] = value.decode("utf-8", "replace")
    return parsed


def _rfc3339(epoch: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))
    return f"{seconds}.{int((epoch % 1) * 1000):03d}Z"
