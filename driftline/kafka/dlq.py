"""Dead-letter records: the original bytes, unchanged, with why and where in headers.

A DLQ message keeps the source key and value byte for byte so it can be replayed after
the producer is fixed; headers say which topic/partition/offset it came from, which field
broke which rule, and when ingest rejected it.

Only when a copy would not fit a record (the source record was near the size limit and
the headers push it over) is the value cut (`fit_dlq_record`): the headers then say so
and carry the SHA-256 and size of the whole original, so nothing is lost silently and a
record the DLQ cannot hold never stops the process that rejected it.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from driftline.kafka.topics import MAX_MESSAGE_BYTES
from driftline.schemas.events import InvalidEvent

__all__ = ["DLQ_RECORD_LIMIT", "HEADER_PREFIX", "dlq_headers", "fit_dlq_record", "parse_dlq_headers"]

HEADER_PREFIX = "driftline."
DLQ_RECORD_LIMIT = MAX_MESSAGE_BYTES - 64 * 1024
"""Largest DLQ copy (key + value + headers) written: below the topic's and the producers'
record limit, with room for the record batch's own framing."""


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


def fit_dlq_record(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]], limit: int = DLQ_RECORD_LIMIT
) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """``value`` and ``headers`` as the DLQ can hold them: unchanged when they fit ``limit``;
    else the producer's own headers are dropped first, then the value is cut, each noted in
    a header, with the original's SHA-256 and size.

    Examples:
        >>> value, headers = fit_dlq_record(b"k", b"x" * 1000, [("driftline.error", b"big"), ("app", b"1")], limit=300)
        >>> len(value), [name[len("driftline.") :] for name in sorted(dict(headers))]
        (57, ['error', 'original.bytes', 'original.headers_dropped', 'original.sha256', 'original.truncated'])
    """

    def size(v: bytes | None, hs: list[tuple[str, bytes]]) -> int:
        return len(key or b"") + len(v or b"") + sum(len(n) + len(h) + 8 for n, h in hs)

    if size(value, headers) <= limit:
        return value, headers
    ours = [(n, h) for n, h in headers if n.startswith(HEADER_PREFIX)]
    note = [
        ("driftline.original.sha256", hashlib.sha256(value or b"").hexdigest().encode()),
        ("driftline.original.bytes", str(len(value or b"")).encode()),
    ]
    if len(ours) < len(headers):
        note.append(("driftline.original.headers_dropped", str(len(headers) - len(ours)).encode()))
    fitted = [*ours, *note]
    if size(value, fitted) <= limit:
        return value, fitted
    fitted.append(("driftline.original.truncated", b"true"))
    room = max(0, limit - size(b"", fitted))
    return (value or b"")[:room], fitted


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
