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

A retrain request that cannot train yet (cooldown, too few rows since the drift began,
model paused) becomes the model's pending request (``consumers.retrain_queue``), written
to the audit log; the trainer re-checks pending requests every ``recheck_s`` and trains
them in a transaction of their own once nothing blocks them.

Run one instance (same ``transactional_id``): one writer means one ordered history.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from driftline.consumers.registry.governance import apply_command, refuse
from driftline.consumers.registry.retrain_queue import (
    URGENT_RULES,
    PendingRetrain,
    blocked_by,
    challenger_seen_until,
    drift_start_of,
)
from driftline.consumers.registry.state import Output, RegistryState
from driftline.consumers.trainer.labeled_reader import (
    LabeledReader,
    PostDriftCount,
    build_training_set,
    training_set_from_ranges,
)
from driftline.consumers.trainer.metrics import TrainerMetrics
from driftline.consumers.trainer.state_loader import load_state
from driftline.consumers.training.config import ModelTrainingConfig, TrainerSettings, for_model
from driftline.consumers.training.run import TrainingContext, TrainingOutcome, skipped, topic_of, train_version
from driftline.errors import DriftlineError, KafkaOperationFailed
from driftline.kafka.clients import KafkaTarget, transactional_consumer_config, transactional_producer_config
from driftline.kafka.dlq import dlq_headers, fit_dlq_record
from driftline.kafka.topics import TopicNames
from driftline.kafka.transactions import RenewableProducer, call_retrying, is_abortable
from driftline.logs import log
from driftline.schemas.codec import is_valid_model_id
from driftline.schemas.control import RetrainRequested, VersionChecked
from driftline.schemas.events import InvalidEvent
from driftline.schemas.registry import CommandRefused, ModelCommand, OffsetRange, VersionUnderperforming, decode
from driftline.trust.commands import CommandRejected, OperatorKeys, permits, verify_command, verify_signature
from driftline.trust.pointer_moves import sign_pointer

__all__ = ["Trainer"]

logger = logging.getLogger(__name__)


class Trainer:
    """Consumes ``driftline.control``; writes registry, model-updates and audit transactionally."""

    def __init__(
        self,
        bootstrap: KafkaTarget,
        names: TopicNames,
        settings: TrainerSettings,
        context: TrainingContext,
        metrics: TrainerMetrics,
    ) -> None:
        self.bootstrap = bootstrap
        self.names = names
        self.settings = settings
        self.context = context
        self.metrics = metrics
        self.state = RegistryState()
        self._consumer = Consumer(
            transactional_consumer_config(bootstrap, settings.group_id, **{"max.poll.interval.ms": 1_800_000})
        )
        self._txn = RenewableProducer(transactional_producer_config(bootstrap, settings.transactional_id))
        self._reader = LabeledReader(bootstrap, names.labeled)
        self._next_check = 0.0
        self._waiting: dict[str, str] = {}
        self._counts: dict[tuple[str, float], PostDriftCount] = {}
        self._stop = threading.Event()  # run()'s: ends retries during an outage at shutdown
        self._operator_keys: OperatorKeys | None = None
        self._operators_at = 0.0

    def run(self, stop: threading.Event) -> None:
        """Handle control records (and pending requests) until ``stop`` is set."""
        self._stop = stop
        self._txn.init_transactions(stop, self.metrics.kafka_retries.inc)
        self.state = self._load_state(stop)
        operators = self._operators  # a broken [governance] operators stops the trainer here, in one line
        self._refresh_gauges()
        self._consumer.subscribe([self.names.control])
        log(
            logger,
            logging.INFO,
            "trainer started",
            control=self.names.control,
            models=len(self.state.models()),
            handled_ids=len(self.state.handled),
            operators=[f"{op.name}({','.join(sorted(op.roles))})" for op in operators],
            pending=sorted(self.state.pending_retrains),
            transactional_id=self.settings.transactional_id,
        )
        try:
            backoff = 0.5
            while not stop.is_set():
                msg = self._consumer.poll(0.5)
                try:
                    if msg is not None:
                        err = msg.error()
                        if err is None:
                            self._handle(msg)
                        elif err.code() != KafkaError._PARTITION_EOF:
                            log(logger, logging.WARNING, "consume error", code=err.name(), detail=err.str())
                    if time.monotonic() >= self._next_check:
                        self._check_pending()
                        self._next_check = time.monotonic() + self.settings.recheck_s
                    backoff = 0.5
                except (KafkaException, KafkaOperationFailed) as exc:
                    if _is_fatal(exc) or stop.is_set():
                        raise
                    self._broker_trouble(msg, exc, backoff)
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
        finally:
            self._consumer.close()
            self._reader.close()
            self._producer.flush(10)
            log(logger, logging.INFO, "trainer stopped")

    def _load_state(self, stop: threading.Event) -> RegistryState:
        """The registry state from its topics, read again (with backoff) while the broker is away."""
        backoff = 1.0
        while True:
            try:
                return load_state(self.bootstrap, self.names)
            except (KafkaException, KafkaOperationFailed) as exc:
                if stop.is_set():
                    raise
                log(
                    logger,
                    logging.WARNING,
                    "cannot read the registry yet; retrying",
                    error=str(exc)[:300],
                    retry_in_s=backoff,
                    hint="check that the broker is reachable and `driftline topics create` has run",
                )
                self.metrics.kafka_retries.inc()
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _broker_trouble(self, msg: Message | None, exc: Exception, backoff: float) -> None:
        """A record whose handling failed on the broker, not on its content: nothing of it was
        committed, so read it again (seek back) after ``backoff``; pending requests stay pending."""
        self.metrics.broker_errors.inc()
        log(
            logger,
            logging.WARNING,
            "broker error while handling a record; it is read again",
            offset=None if msg is None else msg.offset(),
            error=str(exc)[:300],
            retry_in_s=backoff,
        )
        if msg is not None and msg.error() is None:
            try:
                self._consumer.seek(TopicPartition(msg.topic(), msg.partition(), msg.offset()))
            except KafkaException as seek_exc:  # not assigned any more: its new owner reads it
                log(logger, logging.INFO, "record not re-read here", error=str(seek_exc)[:200])

    @property
    def _producer(self) -> Producer:
        return self._txn.producer

    def _retrying(self, what: str, call: Any) -> None:
        """``call`` retried while the broker is away (until stopped): an outage is waited out."""
        call_retrying(what, call, stop=self._stop, on_retry=self.metrics.kafka_retries.inc)

    def _handle(self, msg: Message) -> None:
        started = time.perf_counter()
        try:
            doc, event = self._decode(msg)
            refused = self._authorize(doc, event)
            outcome, outputs = (None, refused) if refused is not None else self._dispatch(event)
        except (KafkaException, KafkaOperationFailed):
            raise  # the broker, not the record: handled by the loop (and retried)
        except Exception as exc:
            self._refuse_record(msg, exc)
            return
        publish_started = time.perf_counter()
        published = self._publish(outputs, msg)
        if published is not None:
            self._after_commit(event, outcome, published, started, publish_started)

    def _dispatch(self, event: Any) -> tuple[TrainingOutcome | None, list[Output]]:
        outputs: list[Output] = []
        outcome: TrainingOutcome | None = None
        if isinstance(event, RetrainRequested):
            outcome = self._on_retrain(event)
        elif isinstance(event, VersionChecked):
            outputs = self._on_check(event)
        elif isinstance(event, ModelCommand) and event.type == "register_model":
            outcome = self._on_register(event)
        elif isinstance(event, ModelCommand):
            outputs = apply_command(self.state, event)
        if outcome is not None:
            outputs = outcome.outputs
        return outcome, outputs

    def _authorize(self, doc: dict[str, Any], event: Any) -> list[Output] | None:
        """The ``command_refused`` record of a command (or stream record) that did not prove who
        sent it or that its sender may; None when it may be carried out (`driftline.trust.commands`)."""
        gov = self.context.governance
        operators = self._operators
        if isinstance(event, ModelCommand):
            try:
                signer = verify_command(doc, operators, time.time(), gov.command_max_age_s, self.state.handled)
            except CommandRejected as exc:
                return self._refused(event, exc.reason, str(exc), exc.signer)
            version = self.state.version(event.model_id, event.version or "")
            bump = version.bump if event.type == "approve_version" and version is not None else None
            why = permits(signer.roles, event.type, bump)
            return None if why is None else self._refused(event, "not_allowed", f"{signer.name}: {why}", signer.name)
        if isinstance(event, (RetrainRequested, VersionChecked)) and operators.has_role("stream"):
            try:
                signer = verify_signature(doc, operators)
            except CommandRejected as exc:
                return self._refused(event, exc.reason, str(exc), exc.signer)
            why = permits(signer.roles, event.type)
            return None if why is None else self._refused(event, "not_allowed", f"{signer.name}: {why}", signer.name)
        return None

    def _refused(self, event: Any, code: str, reason: str, signer: str) -> list[Output]:
        log(logger, logging.WARNING, "command refused", model_id=event.model_id, id=event.id, code=code, reason=reason)
        self.metrics.commands_unverified.labels(code).inc()
        if isinstance(event, ModelCommand):
            return refuse(event, reason, code, actor=signer)
        refusal = CommandRefused(event.model_id, event.id, event.type, signer, reason, code=code)
        return [Output("audit", event.model_id, refusal.to_dict())]

    @property
    def _operators(self) -> OperatorKeys:
        """The operator keys, read from the settings (and ``operators_file``) at most every 5 s."""
        now = time.monotonic()
        if self._operator_keys is None or now - self._operators_at >= 5.0:
            gov = self.context.governance
            try:
                self._operator_keys = OperatorKeys.load(gov.operators, gov.operators_file)
            except DriftlineError as exc:
                if self._operator_keys is None:
                    raise
                log(logger, logging.WARNING, "operator keys not reloaded; keeping the last ones", error=str(exc))
            self._operators_at = now
        return self._operator_keys

    def _decode(self, msg: Message) -> tuple[dict[str, Any], Any]:
        """The record's JSON and its command or event, common fields type-checked; raises ``RecordRefused``."""
        try:
            doc = orjson.loads(msg.value() or b"null")
        except orjson.JSONDecodeError as exc:
            raise RecordRefused("$", "json", f"not JSON: {exc}") from exc
        if not isinstance(doc, dict):
            raise RecordRefused("$", "type", f"must be a JSON object, got {type(doc).__name__}")
        check_control_fields(doc)
        try:
            return doc, decode(doc)
        except KeyError as exc:
            raise RecordRefused(str(exc.args[0]) if exc.args else "$", "required", "is required") from exc
        except (TypeError, ValueError, AttributeError) as exc:
            raise RecordRefused("$", "invalid", str(exc)[:300]) from exc

    def _refuse_record(self, msg: Message, exc: Exception) -> None:
        """Copy a record that cannot be handled to the DLQ with why, count it, commit its offset."""
        error = exc.error if isinstance(exc, RecordRefused) else InvalidEvent("$", "processing_error", repr(exc)[:500])
        log(
            logger,
            logging.WARNING,
            "control record refused; copied to the DLQ",
            partition=msg.partition(),
            offset=msg.offset(),
            error=str(error),
            hint=f"see the DLQ copy: kcat -C -b <broker> -t {self.names.dlq} -J; fix the sender and send it again",
        )
        headers = dlq_headers(msg.topic(), msg.partition(), msg.offset(), error, msg.headers())
        value, headers = fit_dlq_record(msg.key(), msg.value(), headers)
        if self._commit([], msg, raw=[(self.names.dlq, msg.key(), value, headers)]):
            self.metrics.records_refused.labels(error.rule).inc()

    # -- retrain requests ------------------------------------------------------------------
    def _on_retrain(self, req: RetrainRequested) -> TrainingOutcome:
        model_id = req.model_id
        if req.id in self.state.handled:
            return skipped(model_id, req.id, "duplicate", "request id already handled")
        serving = self.state.serving_version(model_id)
        if req.model_version and serving and req.model_version != serving:
            return skipped(model_id, req.id, "stale", f"asked about {req.model_version}; {serving} serves now")
        if model_id in self.state.paused:
            return skipped(
                model_id, req.id, "paused", f"automatic retraining is paused: driftline models resume {model_id}"
            )
        cfg = for_model(self.settings, model_id)
        existing = self.state.pending_retrains.get(model_id)
        first = self._underperforming(req)
        if existing is not None and existing.rule == "follow_up":
            # a new drift supersedes the refinement of the last one: train from *its* start
            first += skipped(model_id, existing.pending_id, "superseded", f"by request {req.id} ({req.rule})").outputs
            existing = None
        pending = existing.with_request(req) if existing is not None else PendingRetrain.from_request(req, time.time())
        reason = self._blocked(pending, cfg)
        if reason is not None:
            deferral = pending.deferral(
                req.id,
                reason,
                req.rule in URGENT_RULES,
                req.rule,
                drift_start_of(req),
                evidence=dict(req.evidence or {}),
            )
            self._waiting[model_id] = reason
            log(
                logger,
                logging.INFO,
                "retrain deferred",
                model_id=model_id,
                request_id=req.id,
                pending_id=pending.pending_id,
                reason=reason,
            )
            return TrainingOutcome("deferred", [*first, Output("audit", model_id, deferral.to_dict())])
        outcome = self._train_pending(pending, cfg)
        return TrainingOutcome(outcome.outcome, [*first, *outcome.outputs], outcome.version)

    def _underperforming(self, req: RetrainRequested) -> list[Output]:
        """The audit record of a request that says the serving version falls short (with its evidence)."""
        if req.rule not in ("underperforming", "challenger"):
            return []
        evidence = {k: v for k, v in (req.evidence or {}).items() if k != "challenger"}
        event = VersionUnderperforming(
            req.model_id,
            req.model_version,
            req.id,
            req.rule,
            dict(evidence.get("live") or {}),
            dict(evidence.get("gate") or {}),
            evidence,
        )
        return [Output("audit", req.model_id, event.to_dict())]

    def _on_check(self, check: VersionChecked) -> list[Output]:
        if check.id in self.state.handled:
            return []
        return [Output("audit", check.model_id, {**check.to_dict(), "request_id": check.id, "at": time.time()})]

    def _blocked(self, pending: PendingRetrain, cfg: ModelTrainingConfig) -> str | None:
        rows: int | None = None
        need = max(cfg.min_rows_after_drift, pending.min_rows)
        unseen_after = challenger_seen_until(pending)
        starts = {s for s in (pending.drift_start if need > 0 else None, unseen_after) if s is not None}
        self._counts = {k: c for k, c in self._counts.items() if k[0] != pending.model_id or k[1] in starts}
        if pending.drift_start is not None and need > 0:
            counted = self._count(pending.model_id, pending.drift_start, need)
            if isinstance(counted, str):
                return counted
            rows = counted
        reason = blocked_by(
            pending,
            now=time.time(),
            last_created_at=self.state.last_created_at.get(pending.model_id),
            cooldown_s=cfg.cooldown_s,
            paused=pending.model_id in self.state.paused,
            rows_after_drift=rows,
            min_rows_after_drift=cfg.min_rows_after_drift,
        )
        if reason is None and unseen_after is not None and cfg.model == "auto":
            unseen = self._count(pending.model_id, unseen_after, cfg.min_validation_rows)
            if isinstance(unseen, str):
                return unseen
            if unseen < cfg.min_validation_rows:
                return (
                    f"waiting for rows the online challenger has not learned, to judge it fairly: "
                    f"{unseen} of {cfg.min_validation_rows}"
                )
        return reason

    def _count(self, model_id: str, since: float, need: int) -> int | str:
        """Labeled rows of ``model_id`` from ``since`` on (incremental), or why they could not be read."""
        key = (model_id, since)
        counter = self._counts.get(key)
        if counter is None:
            counter = self._counts[key] = PostDriftCount(self._reader, model_id, since)
        try:
            return counter.update(need)
        except KafkaOperationFailed as exc:
            self._counts.pop(key, None)
            return f"could not read {self.names.labeled}: {exc}"

    def _check_pending(self) -> None:
        """Train every pending request that nothing blocks any more (each in its own transaction)."""
        for model_id, pending in list(self.state.pending_retrains.items()):
            cfg = for_model(self.settings, model_id)
            reason = self._blocked(pending, cfg)
            if reason is not None:
                if self._waiting.get(model_id) != reason:
                    self._waiting[model_id] = reason
                    log(
                        logger,
                        logging.INFO,
                        "retrain pending",
                        model_id=model_id,
                        pending_id=pending.pending_id,
                        reason=reason,
                    )
                continue
            self._waiting.pop(model_id, None)
            started = time.perf_counter()
            outcome = self._train_pending(pending, cfg)
            publish_started = time.perf_counter()
            published = self._publish(outcome.outputs, None)
            if published is not None:
                self._after_commit(pending, outcome, published, started, publish_started)

    def _train_pending(self, pending: PendingRetrain, cfg: ModelTrainingConfig) -> TrainingOutcome:
        model_id = pending.model_id
        use_since = cfg.model != "auto" and cfg.policy == "since_drift" and pending.drift_start is not None
        policy = "since_drift" if use_since else "last_n"
        return self._train(
            model_id,
            pending.pending_id,
            lambda: build_training_set(
                self._reader, model_id, max_rows=cfg.max_rows, policy=policy, min_ts=pending.drift_start
            ),
            pending=pending,
        )

    def _on_register(self, cmd: ModelCommand) -> TrainingOutcome:
        if cmd.id in self.state.handled:
            return TrainingOutcome("skipped_duplicate", refuse(cmd, "duplicate command id (already handled)"))
        spec = cmd.training_set or {}
        if spec.get("topic") not in (None, self.names.labeled) or not spec.get("ranges"):
            return TrainingOutcome(
                "failed", refuse(cmd, f"register_model needs training_set ranges of {self.names.labeled}")
            )
        ranges = [OffsetRange.from_dict(r) for r in spec["ranges"]]
        return self._train(
            cmd.model_id, cmd.id, lambda: training_set_from_ranges(self._reader, cmd.model_id, ranges), task=cmd.task
        )

    def _train(
        self, model_id: str, request_id: str, read: Any, task: str | None = None, pending: PendingRetrain | None = None
    ) -> TrainingOutcome:
        try:
            read_started = time.perf_counter()
            training_set = read()
            read_s = time.perf_counter() - read_started
        except KafkaOperationFailed as exc:
            # a read that timed out (broker away): the request stays pending, tried again later
            log(
                logger,
                logging.WARNING,
                "training read failed; request kept pending",
                model_id=model_id,
                request_id=request_id,
                error=str(exc),
            )
            if pending is None:
                raise
            deferral = pending.deferral(request_id, f"could not read {self.names.labeled}: {exc}"[:500])
            return TrainingOutcome("deferred", [Output("audit", model_id, deferral.to_dict())])
        try:
            cfg = for_model(self.settings, model_id)
            return train_version(
                training_set, cfg, self.context, self.state, request_id, read_s, task=task, pending=pending
            )
        except Exception as exc:
            log(logger, logging.ERROR, "training failed", model_id=model_id, request_id=request_id, error=repr(exc))
            outcome = skipped(model_id, request_id, "training_failed", repr(exc)[:2000])
            return TrainingOutcome("failed", outcome.outputs)

    # -- writing -------------------------------------------------------------------------
    def _publish(self, outputs: list[Output], msg: Message | None) -> list[Output] | None:
        """Sign the pointer moves in ``outputs``, write them with ``msg``'s offset, fold them
        into the state; the records as written, or None when the transaction was aborted."""
        key = self.context.key
        sealed = [
            Output(out.kind, out.key, sign_pointer(out.value, key)) if out.kind == "model_updates" else out
            for out in outputs
        ]
        if not self._commit(sealed, msg):
            return None
        self.state.apply_outputs(sealed)
        return sealed

    def _commit(
        self,
        outputs: list[Output],
        msg: Message | None,
        raw: Sequence[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = (),
    ) -> bool:
        """Write ``outputs`` (and ``raw`` records: topic, key, value, headers) and the consumed offset
        (if any) atomically; on an abortable error rewind."""
        if msg is None and not outputs and not raw:
            return True
        self._txn.renew_if_needed(self._stop, self.metrics.kafka_retries.inc)
        try:
            self._producer.begin_transaction()
            for out in outputs:
                self._producer.produce(
                    topic_of(self.names, out.kind), key=out.key.encode(), value=orjson.dumps(out.value)
                )
            for topic, key, value, headers in raw:
                self._producer.produce(topic, key=key, value=value, headers=headers)
            if msg is not None:
                offsets = [TopicPartition(msg.topic(), msg.partition(), msg.offset() + 1)]
                metadata = self._consumer.consumer_group_metadata()
                self._retrying(
                    "send_offsets_to_transaction",
                    lambda: self._producer.send_offsets_to_transaction(offsets, metadata, 60),
                )
            self._retrying("commit_transaction", lambda: self._producer.commit_transaction(60))
            return True
        except KafkaException as exc:
            error = exc.args[0]
            if not is_abortable(exc):
                if not error.fatal():
                    self._abort_quietly()  # leave no half-written transaction open for the retry
                fatal = error.fatal()
                raise KafkaOperationFailed("commit transaction", error.name(), error.str(), fatal=fatal) from exc
            log(logger, logging.WARNING, "transaction aborted; the request will be handled again", code=error.name())
            self._retrying("abort_transaction", lambda: self._producer.abort_transaction(60))
            self.metrics.transactions_aborted.inc()
            if msg is not None:
                self._consumer.seek(TopicPartition(msg.topic(), msg.partition(), msg.offset()))
            return False

    def _abort_quietly(self) -> None:
        try:
            self._producer.abort_transaction(10)
        except KafkaException as exc:  # no transaction open, or the broker away: nothing to undo here
            log(logger, logging.INFO, "abort after a failed transaction", error=str(exc)[:200])

    def _after_commit(
        self, event: Any, outcome: TrainingOutcome | None, outputs: list[Output], started: float, publish_started: float
    ) -> None:
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
            log(
                logger,
                logging.INFO,
                "published",
                topic=out.kind,
                key=out.key,
                type=out.value.get("type"),
                version=out.value.get("version"),
                reason=out.value.get("reason"),
            )
        self._refresh_gauges()

    def _refresh_gauges(self) -> None:
        self.metrics.set_serving((m, p["version"]) for m, p in self.state.serving.items())
        self.metrics.approvals_pending.set(len(self.state.pending()))
        self.metrics.retrains_pending.set(len(self.state.pending_retrains))


def _is_fatal(exc: Exception) -> bool:
    """A client that cannot go on (a fenced producer): the trainer stops instead of retrying."""
    if isinstance(exc, KafkaOperationFailed):
        return exc.fatal
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and error.fatal()


class RecordRefused(Exception):
    """A control record the trainer cannot handle, and why (a field, the rule it broke)."""

    def __init__(self, field: str, rule: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.error = InvalidEvent(field, rule, detail)


#: Fields every control record may carry, with the types they must have when present.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "type": (str,),
    "model_id": (str,),
    "id": (str,),
    "version": (str,),
    "actor": (str,),
    "reason": (str,),
    "model_version": (str,),
    "training_set": (dict,),
    "evidence": (dict,),
    "reasons": (list,),
    "task": (str,),
}


_KIND_NAMES: dict[type, str] = {str: "a string", dict: "an object", list: "a list"}


def check_control_fields(doc: dict[str, Any]) -> None:
    """Refuse a control record whose common fields have the wrong type or an invalid ``model_id``.

    Examples
    --------
    >>> check_control_fields({"type": "approve_version", "model_id": "churn", "version": "1.0.0"})
    >>> check_control_fields({"type": "approve_version", "model_id": ["churn"]})
    Traceback (most recent call last):
    ...
    driftline.consumers.trainer.service.RecordRefused: model_id: must be a string, got list
    """
    for name, types in _FIELD_TYPES.items():
        value = doc.get(name)
        if value is not None and not isinstance(value, types):
            kind = _KIND_NAMES[types[0]]
            raise RecordRefused(name, "type", f"must be {kind}, got {type(value).__name__}")
    model_id = doc.get("model_id")
    if model_id is not None and not is_valid_model_id(model_id):
        raise RecordRefused("model_id", "pattern", f"{model_id[:80]!r} is not a valid model id")
