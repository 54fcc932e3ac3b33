"""The demo's traffic: one concept scenario per model, and junk every ingest must survive.

The demo serves closed-loop (``driftline.demo.closed_loop``): each model's events come
from a ``Scenario`` whose concept changes half-way — ``churn`` a feature shift with a new
rule, ``fraud`` a pure concept change — which version 1.0.0 cannot follow, so the drop
and the recovery after a swap are visible in the served accuracy. ``MALFORMED`` is mixed
in through ``malformed_every``; every one of them must land in the DLQ.

``SyntheticTraffic`` is the older *open-loop* generator (its predictions are made here,
not by a served model); the demo no longer uses it, unit tests of the codec still do.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from driftline.demo.closed_loop import MalformedHook
from driftline.demo.scenarios import Scenario, make_scenario

__all__ = ["DEMO_MODELS", "MALFORMED", "RawMessage", "SyntheticTraffic", "demo_scenarios", "malformed_every"]

DEMO_MODELS: dict[str, str] = {"churn": "feature_shift", "fraud": "concept_change"}
"""Model → the scenario it is served: both drift half-way, in a way 1.0.0 cannot follow."""

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


def demo_scenarios(events_per_model: int, models: dict[str, str] | None = None) -> dict[str, Scenario]:
    """Each demo model's scenario over ``events_per_model`` events, the change half-way."""
    return {
        model: make_scenario(kind, events_per_model, change_at=events_per_model // 2)
        for model, kind in (models or DEMO_MODELS).items()
    }


def malformed_every(every: int = 500) -> MalformedHook:
    """A hook that mixes the next ``MALFORMED`` message in after every ``every`` events."""
    sent = [0]

    def hook(i: int) -> Iterable[tuple[str, bytes | None, bytes]]:
        if every <= 0 or i % every != every - 1:
            return ()
        message = MALFORMED[sent[0] % len(MALFORMED)]
        sent[0] += 1
        return (message,)

    return hook


@dataclass(frozen=True)
class RawMessage:
    """One message as a serving app would produce it: topic kind, key, value."""

    kind: str
    key: bytes | None
    value: bytes


class SyntheticTraffic:
    """Open-loop feature, prediction and (lagging) label events for a few models, one drift each.

    Deterministic for a seed. Event time advances ``1 / rate`` seconds per event. After
    ``drift_at`` events one numeric feature's mean moves by ``shift`` standard deviations
    and the label rule flips sign for it. The predictions are a fixed rule's, labelled
    version 1.0.0, whatever a subscriber serves: use ``ClosedLoopServing`` to measure
    what serving achieves.
    """

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
        features: dict[str, Any] = {f"f{j}": round(float(v), 4) for j, v in enumerate(x)}
        features["plan"] = ("basic", "pro", "team")[int(self.rng.integers(3))]
        event_id = f"{model}-{i}"
        key = model.encode()
        score = float(1 / (1 + np.exp(-(x[0] + x[1]))))
        truth = (x[1] - x[0] if drifted else x[0] + x[1]) + self.rng.normal(scale=0.3) > 0
        yield RawMessage(
            "features", key, orjson.dumps({"model_id": model, "event_id": event_id, "ts": ts, "features": features})
        )
        yield RawMessage(
            "predictions",
            key,
            orjson.dumps(
                {
                    "model_id": model,
                    "event_id": event_id,
                    "ts": ts,
                    "model_version": "1.0.0",
                    "prediction": int(score > 0.5),
                    "score": round(score, 4),
                }
            ),
        )
        label = {"model_id": model, "event_id": event_id, "ts": ts + self.label_delay / self.rate, "label": int(truth)}
        pending.append((i + self.label_delay, RawMessage("labels", key, orjson.dumps(label))))
