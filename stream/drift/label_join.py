"""Join predictions with their labels (and features) by ``event_id``, on pluggable storage.

The join is pure: all state lives in ``store``, any ``MutableMapping[str, Any]`` whose
values are JSON-able dicts/lists — the live agent passes a faust Table (changelogged, so a
restarted worker resumes), replay passes a dict. Assign values, never mutate them in
place: a faust Table only persists assignments.

Keys (all scoped by ``model_id``, so they co-partition with the batches):

- ``j|<model>|<event_id>`` → the pending entry: first-seen ``t`` (event time), its
  expiry bucket ``b``, and whichever parts arrived: ``f`` features, ``p`` prediction,
  ``l`` label.
- ``b|<model>|<bucket>|<seq>`` → the entry keys first seen in that time bucket, one
  chunk per batch (so a batch writes each touched bucket once, never rewrites a growing
  list).
- ``m|<model>`` → ``{"buckets": {bucket: n_chunks}}``, the live buckets.

**Emission.** A ``JoinedRow`` is emitted as soon as the prediction *and* the label are
present, in either order, with the features if they have arrived by then (``None``
otherwise): waiting for late features would need a second timeout, and features
normally arrive with or before the prediction. Then the entry is deleted — or, with
``tombstones=True``, replaced by a small ``done`` marker until it expires, so a
redelivered prediction/label (faust runs at-least-once) is ignored instead of being
joined twice. Without tombstones, consumers of ``JoinedRow`` must de-duplicate on
``(model_id, event_id)``.

**Expiry.** ``expire(watermark)`` drops entries first seen more than ``ttl_s`` before the
watermark, at bucket granularity: an entry goes between ``ttl_s`` and
``ttl_s + bucket_s`` after it was first seen. Only the chunks of expired buckets are read,
so the cost is proportional to what was first seen in the expired time span, never a
scan of the store.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from driftline.schemas.batch import ObservationBatch

__all__ = ["ExpiryCounts", "JoinedRow", "LabelJoin"]

_PREDICTION, _LABEL = 1, 2


@dataclasses.dataclass(frozen=True)
class JoinedRow:
    """A prediction with its label (and features): the unit of performance metrics and
    the training-row format on ``driftline.labeled``. ``ts`` is the prediction's time."""

    model_id: str
    event_id: str
    ts: float
    model_version: str | None
    prediction: Any
    score: float | None
    label: Any
    features: dict[str, Any] | None
    scores: dict[str, float] | None = None
    label_ts: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JoinedRow:
        fields: dict[str, Any] = {f.name: d.get(f.name) for f in dataclasses.fields(cls)}
        return cls(**fields)


@dataclasses.dataclass(frozen=True)
class ExpiryCounts:
    """What ``expire`` removed, by what was still waiting."""

    unmatched_labels: int = 0
    unmatched_predictions: int = 0
    features_only: int = 0

    def __add__(self, o: ExpiryCounts) -> ExpiryCounts:
        return ExpiryCounts(
            self.unmatched_labels + o.unmatched_labels,
            self.unmatched_predictions + o.unmatched_predictions,
            self.features_only + o.features_only,
        )


class LabelJoin:
    """Meet features, predictions and labels of one ``event_id`` in any order.

    Examples:
        >>> from types import SimpleNamespace as NS
        >>> import numpy as np
        >>> batch = NS(model_id="m", kind=np.array([1, 2], np.int8), event_id=["e1", "e1"],
        ...            ts=np.array([10.0, 20.0]), has_features=np.array([False, False]),
        ...            features={}, model_version=["1.0.0", None], prediction=[1, None],
        ...            score=np.array([0.9, np.nan]), scores=[None, None], label=[None, 1])
        >>> store = {}
        >>> [(r.event_id, r.prediction, r.label) for r in LabelJoin(store).add_batch(batch)]
        [('e1', 1, 1)]
        >>> [k for k in store if k.startswith("j|")]
        []
    """

    def __init__(
        self,
        store: MutableMapping[str, Any],
        ttl_s: float = 86400.0,
        bucket_s: float | None = None,
        tombstones: bool = False,
    ) -> None:
        self.store = store
        self.ttl_s = float(ttl_s)
        self.bucket_s = float(bucket_s) if bucket_s else self.ttl_s / 24
        self.tombstones = tombstones
        self.duplicates = 0
        """Parts that arrived for an already joined event (tombstones only)."""
        self._models: set[str] = set()

    def _bucket(self, ts: float) -> int:
        return math.floor(ts / self.bucket_s)

    def add_batch(self, batch: ObservationBatch) -> list[JoinedRow]:
        """Absorb one batch; return the rows completed by it, in batch order."""
        mid = batch.model_id
        self._models.add(mid)
        kinds, ts = batch.kind.tolist(), batch.ts.tolist()
        hf = batch.has_features.tolist()
        score = batch.score.tolist()
        cols = list(batch.features.items())
        cache: dict[str, dict | None] = {}
        existed: set[str] = set()
        out: list[JoinedRow] = []
        for i, eid in enumerate(batch.event_id):
            key = f"j|{mid}|{eid}"
            if key in cache:
                entry = cache[key]
            else:
                stored = self.store.get(key)
                entry = dict(stored) if stored is not None else None
                if stored is not None:
                    existed.add(key)
            if entry is None:
                entry = {"t": ts[i], "b": self._bucket(ts[i])}
            cache[key] = entry
            if entry.get("done"):
                self.duplicates += 1
                continue
            if hf[i]:
                row = {k: c[i] for k, c in cols if c[i] is not None}
                entry["f"] = {**entry["f"], **row} if entry.get("f") else row
            kind = kinds[i]
            if kind == _PREDICTION:
                s = score[i]
                entry["p"] = {
                    "v": batch.model_version[i],
                    "y": batch.prediction[i],
                    "s": None if s != s else s,
                    "ss": batch.scores[i],
                    "t": ts[i],
                }
            elif kind == _LABEL:
                entry["l"] = {"y": batch.label[i], "t": ts[i]}
            if "p" in entry and "l" in entry:
                out.append(self._joined(mid, eid, entry))
                cache[key] = {"t": entry["t"], "b": entry["b"], "done": 1} if self.tombstones else None
        self._write_back(mid, cache, existed)
        return out

    @staticmethod
    def _joined(mid: str, eid: str, e: dict) -> JoinedRow:
        p, lab = e["p"], e["l"]
        return JoinedRow(mid, eid, p["t"], p["v"], p["y"], p["s"], lab["y"], e.get("f"), p["ss"], lab["t"])

    def _write_back(self, mid: str, cache: dict[str, dict | None], existed: set[str]) -> None:
        new_by_bucket: dict[int, list[str]] = {}
        for key, entry in cache.items():
            if entry is None:
                if key in existed:
                    del self.store[key]
                continue
            self.store[key] = entry
            if key not in existed:
                new_by_bucket.setdefault(entry["b"], []).append(key)
        if not new_by_bucket:
            return
        meta_key = f"m|{mid}"
        buckets = dict((self.store.get(meta_key) or {}).get("buckets", {}))
        for b, keys in new_by_bucket.items():
            seq = buckets.get(str(b), 0)
            self.store[f"b|{mid}|{b}|{seq}"] = keys
            buckets[str(b)] = seq + 1
        self.store[meta_key] = {"buckets": buckets}

    def expire(self, watermark_ts: float, model_id: str | None = None) -> ExpiryCounts:
        """Drop entries first seen more than ``ttl_s`` before ``watermark_ts``.

        ``model_id=None`` expires every model this instance has joined batches for since
        it was created; after a restart pass the model explicitly (or feed a batch first).
        """
        total = ExpiryCounts()
        for mid in [model_id] if model_id is not None else sorted(self._models):
            total = total + self._expire_model(mid, watermark_ts)
        return total

    def _expire_model(self, mid: str, watermark_ts: float) -> ExpiryCounts:
        meta_key = f"m|{mid}"
        meta = self.store.get(meta_key)
        if not meta:
            return ExpiryCounts()
        cutoff = watermark_ts - self.ttl_s
        buckets = dict(meta["buckets"])
        counts = [0, 0, 0]
        due = [b for b in buckets if (int(b) + 1) * self.bucket_s <= cutoff]
        if not due:
            return ExpiryCounts()
        for b_str in due:
            b = int(b_str)
            for seq in range(buckets.pop(b_str)):
                for key in self.store.pop(f"b|{mid}|{b}|{seq}", None) or ():
                    entry = self.store.get(key)
                    if entry is None or entry["b"] != b:
                        continue  # joined already, or re-created later in another bucket
                    del self.store[key]
                    if entry.get("done"):
                        continue
                    has_p, has_l = "p" in entry, "l" in entry
                    counts[0 if has_l else 1 if has_p else 2] += 1
        self.store[meta_key] = {"buckets": buckets}
        return ExpiryCounts(*counts)
