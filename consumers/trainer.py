"""``driftline trainer``: the registry's single writer, exactly-once from request to version.

Loop: consume one record of ``driftline.control`` → decide (train, approve, roll back, or
record why not) → write the registry / model-updates / audit records *and* the record's
consumed offset in one Kafka transaction. Consequences:

- a crash (even ``kill -9`` mid-training) publishes nothing and leaves the request
  uncommitted, so the restarted trainer reads it again and publishes exactly one version;
  its stable ``transactional.id`` makes ``init_transactions`` abort whatever the dead
  instance left open (and fences it, were it only paused);
- de-duplication needs no memory of its own: every handled request/command id is in the
  audit log, and the state is rebuilt from the topics at start (``load_state``), *after*
  ``init_transactions``, so the read is final.

Run one instance (same ``transactional_id``): one writer means one ordered history.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from driftline.errors import KafkaOperationFailed
from driftline.kafka.clients import transactional_consumer_config, transactional_producer_config
from driftline.kafka.topics import TopicNames
from driftline.logs import log
from driftline.schemas.control import RetrainRequested, is_event_time
from driftline.schemas.registry import ModelCommand, OffsetRange, decode

from driftline.consumers.governance import apply_command, refuse
from driftline.consumers.registry_state import Output, RegistryState, load_state
from driftline.consumers.trainer_config import TrainerSettings, for_model
from driftline.consumers.trainer_metrics import TrainerMetrics
from driftline.consumers.training_run import TrainingContext, TrainingOutcome, skipped, topic_of, train_version
from driftline.consumers.training_set import LabeledReader, build_training_set, training_set_from_ranges

__all__ = ["Trainer"]

logger = logging.getLogger(__name__)


class Trainer:
    """Consumes ``driftline.control``; writes registry, model-updates and audit transactionally."""

    def __init__(self, bootstrap: str, names: TopicNames, settings: TrainerSettings, context: TrainingContext,
                 metrics: TrainerMetrics) -> None:
        self.bootstrap = bootstrap
        self.names = names
        self.settings = settings
        self.context = context
        self.metrics = metrics
        self.state = RegistryState()
        self._consumer = Consumer(transactional_consumer_config(
            bootstrap, settings.group_id, **{"max.poll.interval.ms": 1_800_000}))
        self._producer = Producer(transactional_producer_config(bootstrap, settings.transactional_id))
        self._reader = LabeledReader(bootstrap, names.labeled)
        self._training: dict[str, tuple[float, float]] = {}

    def run(self, stop: threading.Event) -> None:
        """Handle control records until ``stop`` is set."""
        self._producer.init_transactions(60)
        self.state = load_state(self.bootstrap, self.names)
        self._refresh_gauges()
        self._consumer.subscribe([self.names.control])
        log(logger, logging.INFO, "trainer started", control=self.names.control, models=len(self.state.models()),
            handled_ids=len(self.state.handled), transactional_id=self.settings.transactional_id)
        try:
            while not stop.is_set():
                msg = self._consumer.poll(0.5)
                if msg is None:
                    continue
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        log(logger, logging.WARNING, "consume error", code=err.name(), detail=err.str())
                    continue
                self._handle(msg)
        finally:
            self._consumer.close()
            self._reader.close()
            self._producer.flush(10)
            log(logger, logging.INFO, "trainer stopped")

    def _handle(self, msg: Message) -> None:
        started = time.perf_counter()
        event = self._decode(msg)
        outputs: list[Output] = []
        outcome: TrainingOutcome | None = None
        if isinstance(event, RetrainRequested):
            outcome = self._on_retrain(event, msg)
        elif isinstance(event, ModelCommand) and event.type == "register_model":
            outcome = self._on_register(event)
        elif isinstance(event, ModelCommand):
            outputs = apply_command(self.state, event)
        if outcome is not None:
            outputs = outcome.outputs
        publish_started = time.perf_counter()
        if not self._commit(outputs, msg):
            return
        self.state.apply_outputs(outputs)
        self._after_commit(event, outcome, outputs, started, publish_started)

    def _decode(self, msg: Message) -> Any:
        try:
            return decode(orjson.loads(msg.value() or b"null") or {})
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            log(logger, logging.WARNING, "undecodable control record skipped", partition=msg.partition(),
                offset=msg.offset(), error=str(exc))
            return None

    def _on_retrain(self, req: RetrainRequested, msg: Message) -> TrainingOutcome:
        model_id = req.model_id
        if req.id in self.state.handled:
            return skipped(model_id, req.id, "duplicate", "request id already handled")
        busy = self._training.get(model_id)
        produced_ms = msg.timestamp()[1]
        if busy is not None and busy[0] * 1000 <= produced_ms <= busy[1] * 1000:
            return skipped(model_id, req.id, "already_training", "requested while this model was training")
        cfg = for_model(self.settings, model_id)
        since = time.time() - self.state.last_created_at.get(model_id, 0.0)
        if since < cfg.cooldown_s:
            return skipped(model_id, req.id, "cooldown", f"last version {since:.0f} s ago < cooldown {cfg.cooldown_s} s")
        min_ts = _drift_start(req)
        policy = cfg.policy if min_ts is not None else "last_n"
        return self._train(model_id, req.id, lambda: build_training_set(
            self._reader, model_id, max_rows=cfg.max_rows, policy=policy, min_ts=min_ts))

    def _on_register(self, cmd: ModelCommand) -> TrainingOutcome:
        if cmd.id in self.state.handled:
            return TrainingOutcome("skipped_duplicate", refuse(cmd, "duplicate command id (already handled)"))
        spec = cmd.training_set or {}
        if spec.get("topic") not in (None, self.names.labeled) or not spec.get("ranges"):
            return TrainingOutcome("failed", refuse(cmd, "register_model needs training_set ranges of "
                                                         f"{self.names.labeled}"))
        ranges = [OffsetRange.from_dict(r) for r in spec["ranges"]]
        return self._train(cmd.model_id, cmd.id, lambda: training_set_from_ranges(
            self._reader, cmd.model_id, ranges), task=cmd.task)

    def _train(self, model_id: str, request_id: str, read: Any, task: str | None = None) -> TrainingOutcome:
        begun = time.time()
        try:
            read_started = time.perf_counter()
            training_set = read()
            read_s = time.perf_counter() - read_started
            cfg = for_model(self.settings, model_id)
            return train_version(training_set, cfg, self.context, self.state, request_id, read_s, task=task)
        except Exception as exc:  # noqa: BLE001 - a bad plug-in or data must not kill the registry
            log(logger, logging.ERROR, "training failed", model_id=model_id, request_id=request_id, error=repr(exc))
            outcome = skipped(model_id, request_id, "training_failed", repr(exc)[:2000])
            return TrainingOutcome("failed", outcome.outputs)
        finally:
            self._training[model_id] = (begun, time.time())

    def _commit(self, outputs: list[Output], msg: Message) -> bool:
        """Write ``outputs`` and the consumed offset atomically; on an abortable error rewind."""
        try:
            self._producer.begin_transaction()
            for out in outputs:
                self._producer.produce(topic_of(self.names, out.kind), key=out.key.encode(),
                                       value=orjson.dumps(out.value))
            offsets = [TopicPartition(msg.topic(), msg.partition(), msg.offset() + 1)]
            self._producer.send_offsets_to_transaction(offsets, self._consumer.consumer_group_metadata(), 60)
            self._producer.commit_transaction(60)
            return True
        except KafkaException as exc:
            error = exc.args[0]
            if not error.txn_requires_abort():
                raise KafkaOperationFailed("commit transaction", error.name(), error.str()) from exc
            log(logger, logging.WARNING, "transaction aborted; the request will be handled again", code=error.name())
            self._producer.abort_transaction(60)
            self.metrics.transactions_aborted.inc()
            self._consumer.seek(TopicPartition(msg.topic(), msg.partition(), msg.offset()))
            return False

    def _after_commit(self, event: Any, outcome: TrainingOutcome | None, outputs: list[Output],
                      started: float, publish_started: float) -> None:
        now = time.perf_counter()
        if outcome is not None:
            model_id = getattr(event, "model_id", "")
            self.metrics.start_model(model_id)
            self.metrics.trainings.labels(model_id, outcome.outcome).inc()
            if outcome.version is not None:
                v = outcome.version
                self.metrics.observe_gate(model_id, v.gate["passed"], v.metrics, v.champion_metrics)
                self.metrics.observe_stages({**v.durations, "publish": now - publish_started, "total": now - started})
        elif isinstance(event, ModelCommand):
            refused = any(o.value.get("type") == "command_refused" for o in outputs)
            self.metrics.commands.labels(event.type, "refused" if refused else "done").inc()
        for out in outputs:
            log(logger, logging.INFO, "published", topic=out.kind, key=out.key, type=out.value.get("type"),
                version=out.value.get("version"), reason=out.value.get("reason"))
        self._refresh_gauges()

    def _refresh_gauges(self) -> None:
        self.metrics.set_serving((m, p["version"]) for m, p in self.state.serving.items())
        self.metrics.approvals_pending.set(len(self.state.pending()))


def _drift_start(req: RetrainRequested) -> float | None:
    """When the drift began, in event time: evidence ``drift_started_ts``, else a time window's start.

    Count windows bound event numbers, not times: then there is no start time to use.
    """
    evidence = req.evidence or {}
    if isinstance(evidence.get("drift_started_ts"), (int, float)):
        return float(evidence["drift_started_ts"])
    return req.window_start if is_event_time(req.window_start) else None
