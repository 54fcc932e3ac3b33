"""Waiting for something a background thread or process does, with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["eventually"]


def eventually(ok: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """True once ``ok()`` holds, checked every ``interval`` s; False after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True
