"""Pack validated events into per-model columnar micro-batches.

Faust pays a fixed cost per message, so ingest sends one message per up to
``max_events`` events of one model. A batch never spans two ingest transactions: the
caller drains every open builder before it commits.
"""

from __future__ import annotations

from collections.abc import Iterator

from driftline.schemas.batch import BatchBuilder
from driftline.schemas.batch_wire import encode_batch
from driftline.schemas.columnar import FeatureRun
from driftline.schemas.events import Event

__all__ = ["BatchPacker"]


class BatchPacker:
    """Per-``model_id`` builders; yields encoded batches when full or when drained."""

    def __init__(self, max_events: int) -> None:
        self.max_events = max_events
        self._builders: dict[str, BatchBuilder] = {}

    def add(self, event: Event) -> tuple[str, bytes, int] | None:
        """Add one event; return ``(model_id, batch_bytes, n)`` when its batch is full."""
        builder = self._builder(event.model_id)
        builder.add(event)
        if len(builder) >= self.max_events:
            return self._take(event.model_id, builder)
        return None

    def add_run(self, model_id: str, run: FeatureRun) -> list[tuple[str, bytes, int]]:
        """Add validated feature rows of one model; return the batches they filled.

        A run larger than the room left is cut, so no batch exceeds ``max_events``.
        """
        builder = self._builder(model_id)
        full = []
        start = 0
        while start < len(run):
            room = self.max_events - len(builder)
            part = run if start == 0 and len(run) <= room else run.slice(start, start + room)
            builder.add_run(part)
            start += len(part)
            if len(builder) >= self.max_events:
                full.append(self._take(model_id, builder))
        return full

    def _builder(self, model_id: str) -> BatchBuilder:
        builder = self._builders.get(model_id)
        if builder is None:
            builder = self._builders[model_id] = BatchBuilder(model_id)
        return builder

    def drain(self) -> Iterator[tuple[str, bytes, int]]:
        """Every non-empty open batch, encoded; the packer is empty afterwards."""
        for model_id, builder in list(self._builders.items()):
            if len(builder):
                yield self._take(model_id, builder)
        self._builders.clear()

    def discard(self) -> None:
        """Forget open batches (their transaction was aborted; the events are re-read)."""
        self._builders.clear()

    @property
    def pending_events(self) -> int:
        return sum(len(b) for b in self._builders.values())

    @staticmethod
    def _take(model_id: str, builder: BatchBuilder) -> tuple[str, bytes, int]:
        n = len(builder)
        payload = encode_batch(builder.build())
        builder.clear()
        return model_id, payload, n
