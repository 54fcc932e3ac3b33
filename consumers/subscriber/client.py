"""``ModelSubscriber``: serve the version ``driftline.model-updates`` says, hot-swapped.

For serving processes and edge devices. It follows the compacted model-updates topic
(``read_committed``, by assignment: every subscriber reads the whole topic, no group),
and for each record of its model it

1. checks the pointer move the trainer signed (`driftline.trust.pointer_moves`): a move (promoted or
   rolled back) to a servable version, signed by a trusted key, with a sequence higher
   than the one served — so an old signed version replayed, a rejected candidate or a
   record of another type never serves (``on_error``, ``…_refused{reason}``, a warning);
2. verifies the artifact's SHA-256 and Ed25519 signature (by the key its key id names)
   — a tampered or unsigned artifact is refused and **never unpickled**; the current
   model keeps serving;
3. loads it and swaps it in with a single reference assignment, so concurrent readers
   (``predict_one``/``current``) see the old or the new model, never a mix;
4. persists it (pointer JSON + artifact bytes) under ``cache_dir``, so a restarted or
   offline process serves the last good version at once — verified again on load;
5. calls ``on_update(model_id, version, model, event)``.

At start it catches up to the topic's end first and loads only the highest valid move.
The follow loop never ends on an error: a broker that is down (at start or later) or an
undecodable record is logged and counted, and it carries on — retrying with backoff up
to ``max_backoff_s`` — while the cached version keeps serving.
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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge

from driftline.consumers.registry.artifacts import artifact_bytes, load_verified
from driftline.kafka.clients import ClientConfig, KafkaTarget, read_committed_config
from driftline.kafka.reading import watermarks
from driftline.logs import log
from driftline.schemas.registry import ArtifactRef
from driftline.trust.keys import Ed25519PublicKey, TrustedKeys
from driftline.trust.pointer_moves import PointerRejected, VerifiedMove, verify_pointer

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
    sequence: int = 0


@dataclass(frozen=True)
class _Metrics:
    updates: Counter
    version: Gauge
    refused: Counter
    restarts: Counter


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, _Metrics] = weakref.WeakKeyDictionary()


def _metrics(registry: CollectorRegistry) -> _Metrics:
    """The subscriber metrics in ``registry``, made once: a serving process that follows
    several models gives all its subscribers one registry (one /metrics endpoint)."""
    metrics = _METRICS.get(registry)
    if metrics is None:
        metrics = _METRICS[registry] = _Metrics(
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
            Counter(
                "driftline_subscriber_refused",
                "Model updates refused, by reason (bad_signature, older_sequence, not_servable, artifact, …).",
                ["model_id", "reason"],
                registry=registry,
            ),
            Counter(
                "driftline_subscriber_follow_restarts",
                "Times the follow loop started again after an error (broker down, …).",
                ["model_id"],
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
        keys: Ed25519PublicKey | Iterable[Ed25519PublicKey] | TrustedKeys,
        *,
        cache_dir: str | os.PathLike[str],
        artifact_dir: str | None = None,
        on_update: OnUpdate | None = None,
        on_error: OnError | None = None,
        registry: CollectorRegistry | None = None,
        max_backoff_s: float = 30.0,
        client_config: ClientConfig | None = None,
    ) -> None:
        """``client_config`` (``driftline.runtime.client_config_from``) carries ``[kafka]``'s
        security; without it the subscriber connects to ``bootstrap`` over PLAINTEXT."""
        self.model_id = model_id
        self.topic = topic
        self._keys = TrustedKeys.of(keys)
        self._max_backoff_s = max_backoff_s
        self._artifact_dir = artifact_dir
        self._cache = Path(cache_dir) / model_id
        self._on_update = on_update
        self._on_error = on_error
        self._bootstrap: KafkaTarget = client_config if client_config is not None else bootstrap
        self._current: ServedModel | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._changed = threading.Condition()
        self._metrics = _metrics(registry if registry is not None else CollectorRegistry())
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
        """Follow until stopped; every error is logged and counted, then followed by a retry."""
        backoff = 0.5
        while not self._stop.is_set():
            try:
                self._follow()
                return
            except Exception as exc:
                self._metrics.restarts.labels(self.model_id).inc()
                log(
                    logger,
                    logging.WARNING,
                    "subscriber cannot follow model updates; serving the current version and retrying",
                    model_id=self.model_id,
                    serving=self.version,
                    retry_in_s=backoff,
                    error=str(exc)[:300],
                    hint="check that the broker is reachable and the topic exists (driftline topics create)",
                )
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self._max_backoff_s)

    def _follow(self) -> None:
        consumer = Consumer(
            read_committed_config(
                self._bootstrap, f"driftline-subscriber-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True}
            )
        )
        try:
            metadata = consumer.list_topics(self.topic, timeout=10.0).topics[self.topic]
            if metadata.error is not None:
                raise LookupError(f"topic {self.topic}: {metadata.error.str()}")
            partitions = sorted(metadata.partitions)
            ends = {p: watermarks(consumer, self.topic, p)[1] for p in partitions}
            consumer.assign([TopicPartition(self.topic, p, -2) for p in partitions])
            caught_up = {p for p, end in ends.items() if end == 0}
            best: tuple[VerifiedMove, dict[str, Any]] | None = None
            while not self._stop.is_set():
                for msg in consumer.consume(100, timeout=0.2):
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            caught_up.add(msg.partition())
                        elif err.fatal() or not err.retriable():
                            log(logger, logging.WARNING, "subscriber consume error", code=err.name(), detail=err.str())
                        continue
                    if msg.offset() >= ends.get(msg.partition(), 0) - 1:
                        caught_up.add(msg.partition())
                    if msg.key() == self.model_id.encode() and msg.value():
                        best = self._newer(best, msg)
                if best is not None and len(caught_up) >= len(partitions):
                    self.apply(best[1])
                    best = None
        finally:
            consumer.close()

    def _newer(
        self, best: tuple[VerifiedMove, dict[str, Any]] | None, msg: Message
    ) -> tuple[VerifiedMove, dict[str, Any]] | None:
        """The higher-sequence valid move of ``best`` and ``msg``: while catching up, an older
        move written after a newer one (a replay) does not win by being later in the topic."""
        try:
            event = orjson.loads(msg.value() or b"null")
        except orjson.JSONDecodeError as exc:
            self._refuse(None, "malformed", ValueError(f"offset {msg.offset()}: not JSON: {exc}"))
            return best
        try:
            move = verify_pointer(event, self._keys, self.model_id)
        except PointerRejected as exc:
            self._refuse(_version_of(event), exc.reason, exc)
            return best
        if best is not None and best[0].sequence >= move.sequence:
            if best[0].sequence > move.sequence:
                self._refuse(move.version, "older_sequence", _older(move, best[0].sequence, best[0].version))
            return best
        return move, event

    def apply(self, event: dict[str, Any]) -> bool:
        """Check, verify, load and swap to the version ``event`` points at; False if refused or unchanged."""
        try:
            move = verify_pointer(event, self._keys, self.model_id)
        except PointerRejected as exc:
            self._refuse(_version_of(event), exc.reason, exc)
            return False
        version = move.version
        served = self._current
        if served is not None and move.sequence <= served.sequence:
            if move.sequence < served.sequence or served.version != version:
                self._refuse(version, "older_sequence", _older(move, served.sequence, served.version))
            return False
        started = time.perf_counter()
        try:
            ref = ArtifactRef.from_dict(event["artifact"])
            blob = artifact_bytes(ref, self._artifact_dir)
            model = load_verified(ref, blob, self.model_id, version, self._keys)
        except Exception as exc:
            self._refuse(version, "artifact", exc)
            return False
        self._swap(ServedModel(version, model, event, time.perf_counter() - started, move.sequence))
        self._persist(event, blob)
        self._metrics.updates.labels(self.model_id, "loaded").inc()
        log(
            logger,
            logging.INFO,
            "model swapped",
            model_id=self.model_id,
            version=version,
            sequence=move.sequence,
            from_version=None if served is None else served.version,
            load_s=round(time.perf_counter() - started, 4),
        )
        if self._on_update is not None:
            try:
                self._on_update(self.model_id, version, model, event)
            except Exception as exc:  # the caller's callback: its failure must not stop following
                log(logger, logging.ERROR, "on_update callback failed", model_id=self.model_id, error=repr(exc))
        return True

    def _refuse(self, version: str | None, reason: str, exc: Exception) -> None:
        self._metrics.updates.labels(self.model_id, "refused").inc()
        self._metrics.refused.labels(self.model_id, reason).inc()
        log(
            logger,
            logging.WARNING,
            "model update refused",
            model_id=self.model_id,
            version=version,
            reason=reason,
            error=str(exc),
            serving=self.version,
        )
        self._report(version, exc)

    def _swap(self, served: ServedModel) -> None:
        old = self._current
        self._current = served  # one reference assignment: atomic for concurrent readers
        if old is not None and old.version != served.version:
            self._metrics.version.remove(self.model_id, old.version)
        self._metrics.version.labels(self.model_id, served.version).set(1)
        with self._changed:
            self._changed.notify_all()

    def _report(self, version: str | None, exc: Exception) -> None:
        if self._on_error is not None:
            try:
                self._on_error(self.model_id, version, exc)
            except Exception as callback_exc:
                log(logger, logging.ERROR, "on_error callback failed", model_id=self.model_id, error=repr(callback_exc))

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
            move = verify_pointer(event, self._keys, self.model_id)
            ref = ArtifactRef.from_dict(event["artifact"])
            blob = blob_path.read_bytes()
            model = load_verified(ref, blob, self.model_id, move.version, self._keys)
        except Exception as exc:
            log(logger, logging.WARNING, "cached model refused", model_id=self.model_id, error=str(exc))
            self._report(None, exc)
            return
        self._swap(ServedModel(move.version, model, event, sequence=move.sequence))
        log(logger, logging.INFO, "serving cached model", model_id=self.model_id, version=event["version"])


def _older(move: VerifiedMove, sequence: int, version: str) -> PointerRejected:
    return PointerRejected(
        "older_sequence",
        f"{move.model_id} {move.version}: pointer sequence {move.sequence} is not after {sequence} ({version}), "
        f"the move already served — a replayed or stale record",
    )


def _version_of(event: Any) -> str | None:
    """The version a refused record names, for the error report (None if it names none)."""
    version = event.get("version") if isinstance(event, dict) else None
    return version if isinstance(version, str) else None
