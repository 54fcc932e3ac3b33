"""``ModelSubscriber``: serve the version ``driftline.model-updates`` says, hot-swapped.

For serving processes and edge devices. It follows the compacted model-updates topic
(``read_committed``, by assignment: every subscriber reads the whole topic, no group),
and for each pointer move of its model it

1. verifies the artifact's SHA-256 and Ed25519 signature with the trainer's public key
   (it cannot sign) — a tampered, unsigned or wrongly-keyed artifact is refused
   (``on_error`` callback, ``…_updates{outcome=refused}`` metric, a warning log) and
   **never unpickled**; the current model keeps serving;
2. loads it and swaps it in with a single reference assignment, so concurrent readers
   (``predict_one``/``current``) see the old or the new model, never a mix;
3. persists it (pointer JSON + artifact bytes) under ``cache_dir``, so a restarted or
   offline process serves the last good version at once — verified again on load;
4. calls ``on_update(model_id, version, model, event)``.

At start it catches up to the topic's end first and loads only the latest pointer.
Canary routing (serving two versions by traffic share) is not implemented.

Example: ``examples/serving_loop.py``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge

from driftline.consumers.registry.artifacts import artifact_bytes, load_verified
from driftline.consumers.registry.signing import Ed25519PublicKey
from driftline.kafka.clients import read_committed_config
from driftline.kafka.reading import watermarks
from driftline.logs import log
from driftline.schemas.registry import ArtifactRef

__all__ = ["ModelSubscriber", "ServedModel"]

logger = logging.getLogger(__name__)

OnUpdate = Callable[[str, str, Any, dict[str, Any]], None]
OnError = Callable[[str, str | None, Exception], None]


@dataclass(frozen=True)
class ServedModel:
    """What is served now: swapped as one object, so version and model always match."""

    version: str
    model: Any
    event: dict[str, Any]
    load_s: float = 0.0


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, tuple[Counter, Gauge]] = weakref.WeakKeyDictionary()


def _metrics(registry: CollectorRegistry) -> tuple[Counter, Gauge]:
    """The subscriber metrics in ``registry``, made once: a serving process that follows
    several models gives all its subscribers one registry (one /metrics endpoint)."""
    metrics = _METRICS.get(registry)
    if metrics is None:
        metrics = _METRICS[registry] = (
            Counter(
                "driftline_subscriber_updates",
                "Model updates seen, by outcome.",
                ["model_id", "outcome"],
                registry=registry,
            ),
            Gauge(
                "driftline_subscriber_version_info",
                "1 for the version served.",
                ["model_id", "version"],
                registry=registry,
            ),
        )
    return metrics


class ModelSubscriber:
    """Follow one model's serving pointer; ``current`` is always a verified, loaded version."""

    def __init__(
        self,
        model_id: str,
        bootstrap: str,
        topic: str,
        key: Ed25519PublicKey,
        *,
        cache_dir: str | os.PathLike[str],
        artifact_dir: str | None = None,
        on_update: OnUpdate | None = None,
        on_error: OnError | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.model_id = model_id
        self.topic = topic
        self._key = key
        self._artifact_dir = artifact_dir
        self._cache = Path(cache_dir) / model_id
        self._on_update = on_update
        self._on_error = on_error
        self._bootstrap = bootstrap
        self._current: ServedModel | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._changed = threading.Condition()
        self._updates, self._version_gauge = _metrics(registry if registry is not None else CollectorRegistry())
        self._load_cached()

    # -- what serving code calls -------------------------------------------------------
    @property
    def current(self) -> ServedModel | None:
        return self._current

    @property
    def version(self) -> str | None:
        served = self._current
        return None if served is None else served.version

    def predict_one(self, x: dict[str, Any]) -> Any:
        served = self._current
        if served is None:
            raise LookupError(f"{self.model_id}: no version loaded yet")
        return served.model.predict_one(x)

    def wait_for(self, version: str, timeout: float) -> bool:
        """Block until ``version`` serves (tests, demos); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.version != version:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> ModelSubscriber:
        self._thread = threading.Thread(target=self._run, name=f"subscriber-{self.model_id}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> ModelSubscriber:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- the follow loop ---------------------------------------------------------------
    def _run(self) -> None:
        consumer = Consumer(
            read_committed_config(
                self._bootstrap, f"driftline-subscriber-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True}
            )
        )
        try:
            partitions = sorted(consumer.list_topics(self.topic, timeout=10.0).topics[self.topic].partitions)
            ends = {p: watermarks(consumer, self.topic, p)[1] for p in partitions}
            consumer.assign([TopicPartition(self.topic, p, -2) for p in partitions])
            caught_up = {p for p, end in ends.items() if end == 0}
            latest: dict[str, Any] | None = None
            while not self._stop.is_set():
                for msg in consumer.consume(100, timeout=0.2):
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            caught_up.add(msg.partition())
                        else:
                            log(logger, logging.WARNING, "subscriber consume error", code=err.name())
                        continue
                    if msg.offset() >= ends.get(msg.partition(), 0) - 1:
                        caught_up.add(msg.partition())
                    if msg.key() == self.model_id.encode() and msg.value():
                        latest = orjson.loads(msg.value())
                if latest is not None and len(caught_up) >= len(partitions):
                    self.apply(latest)
                    latest = None
        except Exception as exc:
            log(logger, logging.ERROR, "subscriber stopped on error", model_id=self.model_id, error=repr(exc))
            self._report(None, exc)
        finally:
            consumer.close()

    def apply(self, event: dict[str, Any]) -> bool:
        """Verify, load and swap to the version ``event`` points at; False if refused or unchanged."""
        version = str(event.get("version"))
        served = self._current
        if served is not None and served.version == version and served.event.get("artifact") == event.get("artifact"):
            return False
        started = time.perf_counter()
        try:
            ref = ArtifactRef.from_dict(event["artifact"])
            blob = artifact_bytes(ref, self._artifact_dir)
            model = load_verified(ref, blob, self.model_id, version, self._key)
        except Exception as exc:
            self._updates.labels(self.model_id, "refused").inc()
            log(
                logger, logging.WARNING, "model update refused", model_id=self.model_id, version=version, error=str(exc)
            )
            self._report(version, exc)
            return False
        self._swap(ServedModel(version, model, event, time.perf_counter() - started))
        self._persist(event, blob)
        self._updates.labels(self.model_id, "loaded").inc()
        log(
            logger,
            logging.INFO,
            "model swapped",
            model_id=self.model_id,
            version=version,
            from_version=None if served is None else served.version,
            load_s=round(time.perf_counter() - started, 4),
        )
        if self._on_update is not None:
            self._on_update(self.model_id, version, model, event)
        return True

    def _swap(self, served: ServedModel) -> None:
        old = self._current
        self._current = served  # one reference assignment: atomic for concurrent readers
        if old is not None and old.version != served.version:
            self._version_gauge.remove(self.model_id, old.version)
        self._version_gauge.labels(self.model_id, served.version).set(1)
        with self._changed:
            self._changed.notify_all()

    def _report(self, version: str | None, exc: Exception) -> None:
        if self._on_error is not None:
            self._on_error(self.model_id, version, exc)

    # -- the local copy ----------------------------------------------------------------
    def _persist(self, event: dict[str, Any], blob: bytes) -> None:
        """Write artifact then pointer, each atomically, so a crash leaves the last good pair."""
        self._cache.mkdir(parents=True, exist_ok=True)
        for name, data in (
            ("artifact.bin", blob),
            (
                "pointer.json",
                orjson.dumps({**event, "artifact": {**event["artifact"], "inline": None, "location": None}}),
            ),
        ):
            tmp = self._cache / f"{name}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, self._cache / name)

    def _load_cached(self) -> None:
        pointer, blob_path = self._cache / "pointer.json", self._cache / "artifact.bin"
        if not (pointer.exists() and blob_path.exists()):
            return
        try:
            event = orjson.loads(pointer.read_bytes())
            ref = ArtifactRef.from_dict(event["artifact"])
            blob = blob_path.read_bytes()
            model = load_verified(ref, blob, self.model_id, event["version"], self._key)
        except Exception as exc:
            log(logger, logging.WARNING, "cached model refused", model_id=self.model_id, error=str(exc))
            self._report(None, exc)
            return
        self._swap(ServedModel(event["version"], model, event))
        log(logger, logging.INFO, "serving cached model", model_id=self.model_id, version=event["version"])
