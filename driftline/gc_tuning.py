"""Garbage-collector thresholds for batch work: fewer young-generation collections.

driftline's hot paths parse messages a batch at a time: a few hundred JSON documents
(each a dict holding a dict of features) live together for a moment, then are freed.
With CPython's default threshold (a collection every 700 container allocations) the
collector runs in the middle of every batch and traverses every live document — about
a sixth of replay's decoding time, measured with ``bench/replay_throughput.py``. With a
threshold of 50,000 most documents are already freed when a collection runs, and a
freed object is never traversed. Reference cycles are still collected, only later.

`tune_for_batches` also keeps freed batch memory in the process (`malloc_tuning`).
"""

from __future__ import annotations

import gc

from driftline.malloc_tuning import keep_freed_memory

__all__ = ["BATCH_THRESHOLDS", "tune_for_batches"]

BATCH_THRESHOLDS = (50_000, 20, 100)
"""Young generation every 50,000 allocations; older ones proportionally rarer."""


def tune_for_batches() -> tuple[int, int, int]:
    """Set `BATCH_THRESHOLDS` (and glibc's, see `keep_freed_memory`); returns the
    collector thresholds that were in force."""
    before = gc.get_threshold()
    gc.set_threshold(*BATCH_THRESHOLDS)
    keep_freed_memory()
    return before  # type: ignore[return-value]
