"""Synthetic serving traffic for the demo: features, predictions, late labels, a drift, junk.

Deterministic for a seed. Event time advances ``1 / rate`` seconds per event so a short
run covers several 60 s windows. After ``drift_at`` events of a model, one numeric
feature's mean moves by ``shift`` standard deviations and the label rule flips sign for
the drifting feature, so both the data and the model's quality change.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import orjson

__all__ = ["RawMessage", "SyntheticTraffic", "MALFORMED"]

# Every kind of bad input ingest must survive; each must land in the DLQ.
MALFORMED: tuple[tuple[str, bytes | None, bytes], ...] = (
    ("features", b"m", b"\xff\xfe not utf-8"),
    ("features", b"m", b"{not json"),
    ("features", b"m", b"[1, 2, 3]"),
    ("features", b"m", b'{"model_id": "m", "ts": 1, "features": {}}'),
    ("features", b"m", b'{"model_id": "m", "event_id": "x", "ts": 1, "features": {"a": NaN}}'),
    ("features", b"m", b'{"model_id": "m", "event_id": "x", "ts": 1, "features": {"a": {"nested": 1}}}'),
    ("predictions", b"m", b'{"model_id": "m", "event_id": "x", "ts": 1, "prediction": 1}'),
    ("labels", b"m", b""),
    ("labels", None, b'{"model_id": "m", "event_id": "x", "ts": 1, "label": 1}'),
)


@dataclass(frozen=True)
class RawMessage:
    """One message as a serving app would produce it: topic kind, key, value."""

    kind: str
    key: bytes | None
    value: bytes


class SyntheticTraffic:
    """Feature, prediction and (lagging) label events for a few models, with one drift each."""

    def __init__(
        self,
        models: tuple[str, ...] = ("churn", "fraud"),
        n_features: int = 8,
        rate: float = 100.0,
        drift_at: int = 15_000,
        shift: float = 1.5,
        label_delay: int = 50,
        malformed_every: int = 500,
        start_ts: float | None = None,
        seed: int = 7,
    ) -> None:
        self.models = models
        self.n_features = n_features
        self.rate = rate
        self.drift_at = drift_at
        self.shift = shift
        self.label_delay = label_delay
        self.malformed_every = malformed_every
        # Wall-clock minute by default: each demo run has new windows, so new decision ids.
        self.start_ts = float(int(time.time()) // 60 * 60) if start_ts is None else start_ts
        self.rng = np.random.default_rng(seed)

    def messages(self, events_per_model: int) -> Iterator[RawMessage]:
        """Interleaved traffic of every model; labels trail their predictions by ``label_delay``."""
        pending: list[tuple[int, RawMessage]] = []
        junk = 0
        for i in range(events_per_model):
            ts = self.start_ts + i / self.rate
            for model in self.models:
                yield from self._event(model, i, ts, pending)
            while pending and pending[0][0] <= i:
                yield pending.pop(0)[1]
            if self.malformed_every and i % self.malformed_every == self.malformed_every - 1:
                kind, key, value = MALFORMED[junk % len(MALFORMED)]
                junk += 1
                yield RawMessage(kind, key, value)
        for _, message in pending:
            yield message

    def training_rows(self, n: int, seed: int = 11) -> list[dict[str, object]]:
        """Labeled rows from the pre-drift world: what version 1.0.0 is trained on."""
        rng = np.random.default_rng(seed)
        rows = []
        for _ in range(n):
            x = rng.normal(size=self.n_features)
            features: dict[str, object] = {f"f{j}": round(float(v), 4) for j, v in enumerate(x)}
            features["plan"] = ("basic", "pro", "team")[int(rng.integers(3))]
            label = int(x[0] + x[1] + rng.normal(scale=0.3) > 0)
            rows.append({"features": features, "label": label})
        return rows

    def _event(self, model: str, i: int, ts: float, pending: list[tuple[int, RawMessage]]) -> Iterator[RawMessage]:
        x = self.rng.normal(size=self.n_features)
        drifted = i >= self.drift_at
        if drifted:
            x[0] += self.shift
        features = {f"f{j}": round(float(v), 4) for j, v in enumerate(x)}
        features["plan"] = ("basic", "pro", "team")[int(self.rng.integers(3))]
        event_id = f"{model}-{i}"
        key = model.encode()
        score = float(1 / (1 + np.exp(-(x[0] + x[1]))))
        truth = (x[1] - x[0] if drifted else x[0] + x[1]) + self.rng.normal(scale=0.3) > 0
        yield RawMessage("features", key, orjson.dumps(
            {"model_id": model, "event_id": event_id, "ts": ts, "features": features}))
        yield RawMessage("predictions", key, orjson.dumps(
            {"model_id": model, "event_id": event_id, "ts": ts, "model_version": "1.0.0",
             "prediction": int(score > 0.5), "score": round(score, 4)}))
        label = {"model_id": model, "event_id": event_id, "ts": ts + self.label_delay / self.rate, "label": int(truth)}
        pending.append((i + self.label_delay, RawMessage("labels", key, orjson.dumps(label))))
