"""Structured logging: one JSON object per line on stderr.

Every process logs through the standard library so that library code stays
plain ``logging.getLogger(__name__)``; only the entry point calls ``configure``.
Fields given as ``extra={"fields": {...}}`` (or via ``log``) become top-level keys.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

__all__ = ["JsonFormatter", "configure", "log"]

_RESERVED = {"ts", "level", "logger", "msg"}


class JsonFormatter(logging.Formatter):
    """Render a record as a single JSON line a log shipper can parse without regexes."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                line[key if key not in _RESERVED else f"field_{key}"] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure(level: str = "info", stream: Any = None) -> None:
    """Route the root logger to JSON lines on ``stream`` (stderr by default)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(max(root.level, logging.WARNING))


def log(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    """Log ``msg`` with structured ``fields`` as top-level JSON keys."""
    logger.log(level, msg, extra={"fields": fields})
