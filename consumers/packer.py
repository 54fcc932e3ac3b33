"""Pack validated events into per-model columnar micro-batches.

Faust pays a fixed cost per message, so ingest sends one message per up to
``max_events`` events of one model. A batch never spans two ingest transactions: the
caller drains every open builder before it commits.
"""

from __future__ import annotations

from collections.abc import Iterator

from driftline.schemas.batch import BatchBuilder, encode_batch
from driftline.schemas.columnar import FeatureRun
from driftline.schemas.events import Event, FeatureEvent

__all__ = ["BatchPacker"]


class BatchPacker:
    """Per-``model_id`` builders; yields encoded batches when full or when drained."""

    def __init__(self, max_events: int) -> None:
        self.max_events = max_events
        self._builders: dict[str, BatchBuilder] = {}

    def add(self, event: Event) -> tuple[str, bytes, int] | None:
        """Add one event; return ``(model_id, batch_bytes, n)`` when its batch is full."""
        builder = self._builders.get(event.model_id)
        if builder is None:
            builder = self._builders[event.model_id] = BatchBuilder(event.model_id)
        builder.add(event)
        if len(builder) >= self.max_events:
            return self._take(event.model_id, builder)
        return None

    def add_run(self, run: FeatureRun) -> list[tuple[str, bytes, int]]:
        """Add a run of validated feature rows; return the batches it filled, in order.

        Batches are cut exactly where adding the run's events one by one would cut them.
        """
        ids = run.model_id
        if ids.count(ids[0]) != len(ids):  # several models: one row at a time
            full = [self.add(FeatureEvent(m, e, t, f)) for m, e, t, f
                    in zip(ids, run.event_id, run.ts, run.features)]
            return [batch for batch in full if batch is not None]
        model_id = ids[0]
        builder = self._builders.get(model_id)
        if builder is None:
            builder = self._builders[model_id] = BatchBuilder(model_id)
        out = []
        start, n = 0, len(ids)
        while start < n:
            stop = min(n, start + self.max_events - len(builder))
            whole = start == 0 and stop == n
            builder.add_features(
                run.event_id[start:stop], run.ts[start:stop], run.features[start:stop],
                numeric_only=run.numeric_only, names=run.names if whole else None,
                columns=run.columns if whole else None, numeric=run.numeric if whole else None)
            if len(builder) >= self.max_events:
                out.append(self._take(model_id, builder))
            start = stop
        return out

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
