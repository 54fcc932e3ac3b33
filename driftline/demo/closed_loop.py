"""Closed-loop serving: each request is predicted by the model the subscriber serves *now*.

Why: driftline exists so that the model users are served stays accurate after a drift.
That is only measurable when the predictions on the stream come from the served model:
then a version swap changes what the stream (and this module) measures. For event ``i``
``ClosedLoopServing``

1. draws features and the true label from a ``Scenario``;
2. reads ``subscriber.current`` once (so version and model match) and predicts —
   ``predict_proba_one`` when the model has it (prediction ``p >= 0.5``, score ``p``);
3. produces the prediction event (``model_version`` = the version that made it, the
   features inline) keyed by ``model_id``, and releases the label of event
   ``i - label_delay`` (a real label arrives later than its prediction);
4. on the same event, scores two baselines: a plain River online learner
   (``StandardScaler | LogisticRegression``, numeric features) that predicts first and
   learns when the label is released, and the scenario's oracle.

Traffic is paced in wall-clock time (``rate`` events/s per model: a real serving app
cannot wait for the pipeline), while event time runs at ``event_rate`` events/s, so a
60 s window holds ``60 * event_rate`` events. ``ClosedLoopResult`` keeps one byte per
event and series (served version, served/online/oracle correct) and derives blocks,
version starts and, per concept change, the recovery and mean accuracy after it.
"""

from __future__ import annotations

import collections
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import orjson
from confluent_kafka import Producer
from river import linear_model, preprocessing

from driftline.demo.scenarios import Oracle, Scenario
from driftline.kafka.clients import KafkaTarget, producer_config
from driftline.kafka.topics import TopicNames

__all__ = [
    "Block",
    "ChangeReport",
    "ClosedLoopResult",
    "ClosedLoopServing",
    "MalformedHook",
    "ServingOptions",
    "drive",
    "send",
    "serving_producer",
]

RawMessage = tuple[str, bytes | None, bytes]
"""(topic kind — ``features``, ``predictions`` or ``labels`` —, key, value)."""
MalformedHook = Callable[[int], Iterable[RawMessage]]
"""Called after event ``i``; the messages it returns are produced too (counted invalid)."""


class _HasCurrent(Protocol):
    @property
    def current(self) -> Any: ...


@dataclass(frozen=True)
class ServingOptions:
    """How one model's traffic is produced and measured."""

    rate: float = 400.0
    """Wall-clock events per second (per model); 0 = as fast as possible."""
    event_rate: float = 100.0
    """Event-time events per second: ``ts = t0 + i / event_rate``."""
    label_delay: int = 200
    """A label is produced this many events after its prediction."""
    block: int = 1000
    """Events per accuracy block."""
    seed: int = 0
    t0: float | None = None
    """Event time of event 0 (default: now, whole seconds)."""


def serving_producer(bootstrap: KafkaTarget) -> Producer:
    """A plain (idempotent, non-transactional) producer, as a serving app would use."""
    return Producer(
        producer_config(
            bootstrap, **{"linger.ms": 20, "enable.idempotence": True, "message.max.bytes": 8 * 1024 * 1024}
        )
    )


def send(producer: Producer, topic: str, key: bytes | None, value: bytes) -> None:
    """Produce, waiting out a full local queue instead of dropping the message."""
    while True:
        try:
            producer.produce(topic, key=key, value=value)
            return
        except BufferError:
            producer.poll(0.05)


def _numeric(features: Mapping[str, Any]) -> dict[str, float]:
    """What the online baseline learns from: the numeric features (it has no encoder)."""
    return {k: float(v) for k, v in features.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _positive(proba: Mapping[Any, float]) -> float:
    return float(proba.get(True, proba.get(1, 0.0)))


def _one_thread() -> None:
    """Run native thread pools (OpenMP, BLAS) of the calling thread with one thread.

    Why: a per-request ``predict_proba_one`` through scikit-learn's HistGradientBoosting
    with its default pool (one thread per core) cost ~6 ms on a 2-core machine, ~20 ms
    beside the pipeline's processes, against ~0.7 ms on one thread: the pool's start-up
    and synchronisation dominate a one-row prediction. A serving loop wants one thread.
    Re-applied when a new version serves (it may load a library the pool belongs to).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # no scikit-learn installed: nothing native to limit
        return
    threadpool_limits(1)


def _predict(model: Any, features: Mapping[str, Any]) -> tuple[int, float | None]:
    """(0/1 prediction, probability of 1 or None) of a served model."""
    proba = getattr(model, "predict_proba_one", None)
    if proba is not None:
        p = _positive(proba(dict(features)))
        if math.isfinite(p):
            return int(p >= 0.5), round(p, 6)
    y = model.predict_one(dict(features))
    return int(y is True or y == 1), None


class ClosedLoopServing:
    """One model's closed-loop traffic through a real broker, with both baselines."""

    def __init__(
        self,
        producer: Producer,
        names: TopicNames,
        model_id: str,
        scenario: Scenario,
        subscriber: _HasCurrent,
        options: ServingOptions | None = None,
        malformed: MalformedHook | None = None,
        oracle: Oracle | None = None,
    ) -> None:
        self.producer = producer
        self.names = names
        self.model_id = model_id
        self.key = model_id.encode()
        self.scenario = scenario
        self.subscriber = subscriber
        self.options = options or ServingOptions()
        self.malformed = malformed
        self.oracle = oracle or Oracle(scenario)
        self.online = preprocessing.StandardScaler() | linear_model.LogisticRegression()
        self.t0 = float(math.ceil(time.time())) if self.options.t0 is None else float(self.options.t0)
        self.rng = np.random.default_rng(self.options.seed)
        n = scenario.n_events
        self.result = ClosedLoopResult(model_id, scenario.name, n, tuple(scenario.changes), self.options.block)
        self._pending: collections.deque[tuple[int, int, int, dict[str, float]]] = collections.deque()
        self._topic = {"features": names.features, "predictions": names.predictions, "labels": names.labels}
        self._last_version: str | None = None
        self.i = 0

    @property
    def done(self) -> bool:
        return self.i >= self.scenario.n_events

    def step(self) -> None:
        """Serve event ``self.i``: predict with the served model, produce, release due labels."""
        i, r = self.i, self.result
        features, label = self.scenario.sample(i, self.rng)
        current = self.subscriber.current  # one read: version and model belong together
        if current is None:
            raise LookupError(f"{self.model_id}: no version served yet (wait for the first one)")
        if current.version != self._last_version:
            _one_thread()
            self._last_version = current.version
        started = time.perf_counter()
        prediction, score = _predict(current.model, features)
        r.predict_s += time.perf_counter() - started
        event: dict[str, Any] = {
            "model_id": self.model_id,
            "event_id": f"{self.model_id}-{i}",
            "ts": self.t0 + i / self.options.event_rate,
            "model_version": current.version,
            "prediction": prediction,
        }
        if score is not None:
            event["score"] = score
        event["features"] = features
        send(self.producer, self._topic["predictions"], self.key, orjson.dumps(event))
        x = _numeric(features)
        online = int(_positive(self.online.predict_proba_one(x)) >= 0.5)
        r.record(i, current.version, prediction == label, online == label, self.oracle.predict(i, features) == label)
        r.produced_valid += 1
        self._pending.append((i + self.options.label_delay, i, label, x))
        self._release(i)
        if self.malformed is not None:
            for kind, key, value in self.malformed(i):
                send(self.producer, self._topic[kind], key, value)
                r.produced_invalid += 1
        self.i += 1

    def _release(self, upto: float) -> None:
        while self._pending and self._pending[0][0] <= upto:
            due, i, label, x = self._pending.popleft()
            doc = {
                "model_id": self.model_id,
                "event_id": f"{self.model_id}-{i}",
                "ts": self.t0 + due / self.options.event_rate,
                "label": label,
            }
            send(self.producer, self._topic["labels"], self.key, orjson.dumps(doc))
            self.online.learn_one(x, bool(label))
            self.result.produced_valid += 1

    def finish(self) -> ClosedLoopResult:
        """Release every label still held back (the run is over) and return the result."""
        self._release(math.inf)
        return self.result

    def run(
        self, stop: threading.Event | None = None, on_event: Callable[[int], None] | None = None
    ) -> ClosedLoopResult:
        """Serve every event of the scenario (paced), flush; the result."""
        drive([self], stop, on_event)
        return self.result


def drive(
    servings: Sequence[ClosedLoopServing],
    stop: threading.Event | None = None,
    on_event: Callable[[int], None] | None = None,
) -> None:
    """Serve several models' traffic interleaved in one loop, paced at the first one's
    ``rate`` (events per second per model); ``on_event(i)`` after each round."""
    rate = servings[0].options.rate if servings else 0.0
    producers = list({id(s.producer): s.producer for s in servings}.values())
    n = max((s.scenario.n_events for s in servings), default=0)
    started = time.monotonic()
    for i in range(n):
        if stop is not None and stop.is_set():
            break
        for serving in servings:
            if not serving.done:
                serving.step()
        if on_event is not None:
            on_event(i)
        if i % 100 == 0:
            for producer in producers:
                producer.poll(0)
        if rate > 0:
            ahead = started + (i + 1) / rate - time.monotonic()
            if ahead > 0.002:
                time.sleep(ahead)
    for serving in servings:
        serving.finish()
        serving.result.wall_s = time.monotonic() - started
    for producer in producers:
        producer.flush(60)


# -- results ------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """Accuracy of events ``[start, end)``: served, online baseline, oracle; versions served."""

    start: int
    end: int
    served: float
    online: float
    oracle: float
    versions: tuple[str, ...]


@dataclass(frozen=True)
class ChangeReport:
    """One concept change: recovery and the mean accuracies over ``[at, until)``.

    ``recovery``: events from the change to the end of the first ``block``-event block
    (blocks aligned to the change) whose served accuracy is within ``tolerance`` of the
    oracle's, counting only blocks after the first one that was not (the served model
    lost track); 0 when no block after the change fell outside the tolerance (the served
    model was right for the new concept already, as when a concept returns), ``None``
    when it never came back. Why "after a lost block": in a gradual change the oldest
    blocks still agree with the old model, which is not a recovery. After an abrupt
    change the first block is lost, so this is the first block within the tolerance.
    """

    at: int
    until: int
    recovery: int | None
    served: float
    online: float
    oracle: float


@dataclass
class ClosedLoopResult:
    """Per-event outcomes of one closed-loop run (one byte per event and series)."""

    model_id: str
    scenario: str
    n_events: int
    changes: tuple[int, ...]
    block: int = 1000
    versions: list[str] = field(default_factory=list)
    produced_valid: int = 0
    produced_invalid: int = 0
    wall_s: float = 0.0
    predict_s: float = 0.0
    """Time spent in the served model's predictions (what serving costs per request)."""

    def __post_init__(self) -> None:
        self.served_version = np.full(self.n_events, -1, np.int16)
        self.served_ok = np.zeros(self.n_events, bool)
        self.online_ok = np.zeros(self.n_events, bool)
        self.oracle_ok = np.zeros(self.n_events, bool)
        self.served_events = 0
        self._index: dict[str, int] = {}

    def record(self, i: int, version: str, served: bool, online: bool, oracle: bool) -> None:
        index = self._index.get(version)
        if index is None:
            index = self._index[version] = len(self.versions)
            self.versions.append(version)
        self.served_version[i] = index
        self.served_ok[i], self.online_ok[i], self.oracle_ok[i] = served, online, oracle
        self.served_events = max(self.served_events, i + 1)

    def version_of(self, i: int) -> str | None:
        """The version that predicted event ``i`` (None if it was not served)."""
        index = int(self.served_version[i]) if 0 <= i < self.n_events else -1
        return self.versions[index] if index >= 0 else None

    # -- derived views --------------------------------------------------------------

    def accuracy(self, start: int, end: int) -> tuple[float, float, float]:
        """(served, online, oracle) accuracy over events ``[start, end)`` that were served."""
        end = min(end, self.served_events)
        if end <= start:
            return (math.nan, math.nan, math.nan)
        span = slice(start, end)
        return (
            float(self.served_ok[span].mean()),
            float(self.online_ok[span].mean()),
            float(self.oracle_ok[span].mean()),
        )

    def by_version(self, start: int, end: int) -> dict[str, tuple[int, float]]:
        """Version → (events it served in ``[start, end)``, its served accuracy there)."""
        end = min(end, self.served_events)
        out: dict[str, tuple[int, float]] = {}
        if end <= start:
            return out
        which, ok = self.served_version[start:end], self.served_ok[start:end]
        for index in np.unique(which).tolist():
            if index < 0:
                continue
            mask = which == index
            out[self.versions[index]] = (int(mask.sum()), float(ok[mask].mean()))
        return out

    def blocks(self, start: int = 0, end: int | None = None) -> list[Block]:
        """Consecutive ``block``-event blocks from ``start`` (a shorter last one)."""
        end = self.served_events if end is None else min(end, self.served_events)
        out = []
        for b in range(start, end, self.block):
            e = min(b + self.block, end)
            served, online, oracle = self.accuracy(b, e)
            out.append(Block(b, e, served, online, oracle, tuple(self.by_version(b, e))))
        return out

    def version_starts(self) -> list[tuple[str, int]]:
        """(version, first event it served) each time the served version changed."""
        which = self.served_version[: self.served_events]
        if len(which) == 0:
            return []
        starts = np.flatnonzero(np.diff(which) != 0) + 1
        return [(self.versions[which[0]], 0)] + [(self.versions[which[s]], int(s)) for s in starts.tolist()]

    def change_reports(self, tolerance: float = 0.03) -> list[ChangeReport]:
        """Recovery and mean accuracies after each concept change (to the next change or the end)."""
        out = []
        bounds = [*self.changes, self.served_events]
        for at, until in itertools.pairwise(bounds):
            until = min(until, self.served_events)
            if at >= until:
                continue
            recovery: int | None = 0
            for blk in self.blocks(at, until):
                if blk.end - blk.start < self.block:
                    break
                within = blk.served >= blk.oracle - tolerance
                if recovery == 0 and not within:
                    recovery = None  # lost: from now on, look for the first block back
                elif recovery is None and within:
                    recovery = blk.end - at
                    break
            served, online, oracle = self.accuracy(at, until)
            out.append(ChangeReport(at, until, recovery, served, online, oracle))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (blocks, version starts, change reports; no per-event arrays)."""
        served, online, oracle = self.accuracy(0, self.served_events)
        return {
            "model_id": self.model_id,
            "scenario": self.scenario,
            "n_events": self.n_events,
            "served_events": self.served_events,
            "changes": list(self.changes),
            "block": self.block,
            "produced_valid": self.produced_valid,
            "produced_invalid": self.produced_invalid,
            "wall_s": round(self.wall_s, 2),
            "predict_us": round(1e6 * self.predict_s / max(self.served_events, 1), 1),
            "accuracy": {"served": served, "online": online, "oracle": oracle},
            "version_starts": [{"version": v, "event": e} for v, e in self.version_starts()],
            "blocks": [vars(b) | {"versions": list(b.versions)} for b in self.blocks()],
            "changes_report": [vars(c) for c in self.change_reports()],
        }
