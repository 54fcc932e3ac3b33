"""Pack validated events into per-model columnar micro-batches, bounded in events and bytes.

Faust pays a fixed cost per message, so ingest sends one message per up to
``max_events`` events of one model. A batch never spans two ingest transactions: the
caller drains every open builder before it commits.

Bytes are bounded too: a batch is cut before the raw size of its events would pass
``max_bytes``, and an encoded batch still larger than that (a columnar layout can grow
past the raw JSON — sparse feature names make a dense matrix) is split in halves until
each part fits or holds one event. Twelve valid events of 1 MB each once made an 11 MB
batch that the broker refused (``MSG_SIZE_TOO_LARGE``), and ingest crash-looped. The caller
keeps single events above ``max_bytes`` out (they go to the DLQ as ``too_large``).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence
from itertools import accumulate

from driftline.schemas.batch import BatchBuilder, ObservationBatch
from driftline.schemas.batch_wire import encode_batch
from driftline.schemas.columnar import FeatureRun
from driftline.schemas.events import Event

__all__ = ["BatchPacker", "Packed"]

Packed = tuple[str, bytes, int]
"""``(model_id, batch_bytes, n_events)``: one observation message."""


class BatchPacker:
    """Per-``model_id`` builders; yields encoded batches when full or when drained."""

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._builders: dict[str, BatchBuilder] = {}
        self._sizes: dict[str, int] = {}  # model_id -> raw bytes of the events in its builder

    def add(self, event: Event, size: int) -> list[Packed]:
        """Add one event of ``size`` raw bytes; return the batches this closed."""
        model_id = event.model_id
        builder = self._builder(model_id)
        full = []
        if len(builder) and self._sizes[model_id] + size > self.max_bytes:
            full += self._take(model_id, builder)
        builder.add(event)
        self._sizes[model_id] += size
        if len(builder) >= self.max_events:
            full += self._take(model_id, builder)
        return full

    def add_run(self, model_id: str, run: FeatureRun, sizes: Sequence[int]) -> list[Packed]:
        """Add validated feature rows of one model (``sizes``: raw bytes of each row); return
        the batches they filled. A run larger than the room left is cut, so no batch passes
        ``max_events`` or, by raw size, ``max_bytes``."""
        builder = self._builder(model_id)
        full = []
        ends = list(accumulate(sizes))  # ends[i]: raw bytes of rows 0..i (one pass in C, no per-row loop)
        start = 0
        while start < len(run):
            room, used = self.max_events - len(builder), self._sizes[model_id]
            before = ends[start - 1] if start else 0
            stop = bisect_right(ends, before + self.max_bytes - used, start, min(len(run), start + room))
            if stop == start:  # the next row does not fit beside what the batch holds
                if len(builder):
                    full += self._take(model_id, builder)
                    continue
                stop = start + 1  # alone it may pass max_bytes (the caller keeps larger events out)
            used += ends[stop - 1] - before
            part = run if start == 0 and stop == len(run) else run.slice(start, stop)
            builder.add_run(part)
            self._sizes[model_id] = used
            start = stop
            if len(builder) >= self.max_events or (start < len(run) and used + sizes[start] > self.max_bytes):
                full += self._take(model_id, builder)
        return full

    def _builder(self, model_id: str) -> BatchBuilder:
        builder = self._builders.get(model_id)
        if builder is None:
            builder = self._builders[model_id] = BatchBuilder(model_id)
            self._sizes[model_id] = 0
        return builder

    def drain(self) -> Iterator[Packed]:
        """Every non-empty open batch, encoded; the packer is empty afterwards."""
        for model_id, builder in list(self._builders.items()):
            if len(builder):
                yield from self._take(model_id, builder)
        self.discard()

    def discard(self) -> None:
        """Forget open batches (their transaction was aborted; the events are re-read)."""
        self._builders.clear()
        self._sizes.clear()

    @property
    def pending_events(self) -> int:
        return sum(len(b) for b in self._builders.values())

    def _take(self, model_id: str, builder: BatchBuilder) -> list[Packed]:
        batch = builder.build()
        builder.clear()
        self._sizes[model_id] = 0
        return list(self._encoded(model_id, batch))

    def _encoded(self, model_id: str, batch: ObservationBatch) -> Iterator[Packed]:
        payload = encode_batch(batch)
        if len(payload) <= self.max_bytes or len(batch) == 1:
            yield model_id, payload, len(batch)
            return
        half = len(batch) // 2
        yield from self._encoded(model_id, _without_empty_columns(batch.slice(0, half)))
        yield from self._encoded(model_id, _without_empty_columns(batch.slice(half, len(batch))))


def _without_empty_columns(part: ObservationBatch) -> ObservationBatch:
    """``part`` without the feature columns none of its rows has (a slice keeps them all)."""
    columns = part.features
    keep = tuple(name for name, values in columns.items() if any(v is not None for v in values))
    if len(keep) < len(columns):
        part.features_later(keep, lambda: {name: columns[name] for name in keep})
    return part
