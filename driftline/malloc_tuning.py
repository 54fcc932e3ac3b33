"""glibc allocator settings for batch work: freed batch memory is kept for the next batch.

A batch's numpy arrays (a 20-feature matrix of 4096 rows is 640 KiB) and its decoded
objects are allocated, used and freed again a batch at a time. glibc serves
allocations above its mmap threshold with a fresh ``mmap`` and returns them on free,
and gives the top of the heap back to the kernel once more than the trim threshold
is free: then every batch faults its memory in again, page by page, zeroed by the
kernel. In ``driftline replay --jobs 2`` that was 30-40 thousand page faults and about
a fifth of the CPU time per 300,000 events (``bench/replay_throughput.py``). Raising
both thresholds keeps that memory in the process for the next batch; a process holds
at most `TRIM_THRESHOLD` of freed memory beyond what it uses.

``DRIFTLINE_MALLOC_TUNING=off`` leaves glibc's defaults alone (a tight memory limit),
and a threshold set with glibc's own ``MALLOC_MMAP_THRESHOLD_`` or
``MALLOC_TRIM_THRESHOLD_`` environment variable is kept as set.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20
"""Allocations below this come from the heap (glibc's largest allowed value on 64 bits)."""
TRIM_THRESHOLD = 128 << 20
"""Free memory kept at the top of the heap before it is given back to the kernel."""


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds; False where nothing was changed (not
    glibc, or turned off)."""
    if not sys.platform.startswith("linux") or os.environ.get("DRIFTLINE_MALLOC_TUNING") == "off":
        return False
    try:
        libc = ctypes.CDLL(None)
        _ = libc.gnu_get_libc_version  # glibc only (musl has a mallopt that does nothing)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    wanted = [
        (param, value)
        for param, value, env in (
            (_M_MMAP_THRESHOLD, MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_"),
            (_M_TRIM_THRESHOLD, TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_"),
        )
        if env not in os.environ
    ]
    return bool(wanted) and all([mallopt(param, value) == 1 for param, value in wanted])
