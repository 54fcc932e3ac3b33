"""``driftline ingest``: raw events → validated micro-batches and a dead-letter topic.

One loop, exactly-once: consume a batch of raw messages, validate each, pack valid events
into per-model columnar batches for ``driftline.observations`` and route every invalid
message, bytes unchanged, to ``driftline.dlq``. Outputs and the consumed offsets go into
one Kafka transaction, committed at most every ``batch_max_ms``; a crash anywhere leaves
either all of a transaction's outputs and progress visible or none, so a
``read_committed`` reader sees every event exactly once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from driftline.consumers.ingest.metrics import IngestMetrics
from driftline.consumers.ingest.packer import BatchPacker
from driftline.consumers.ingest.settings import IngestSettings
from driftline.errors import KafkaOperationFailed
from driftline.kafka.clients import KafkaTarget, transactional_consumer_config, transactional_producer_config
from driftline.kafka.dlq import dlq_headers, fit_dlq_record
from driftline.kafka.transactions import RenewableProducer, call_retrying, is_abortable, is_fatal
from driftline.logs import log
from driftline.schemas.codec import check_key, decode_event
from driftline.schemas.columnar import FeatureRun, decode_features
from driftline.schemas.events import Event, EventKind, FeatureEvent, InvalidEvent

__all__ = ["Ingest", "IngestTopics"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestTopics:
    """The raw topics ingest reads (with the event kind each carries) and the two it writes."""

    features: str
    predictions: str
    labels: str
    observations: str
    dlq: str

    def kinds(self) -> dict[str, EventKind]:
        return {self.features: "feature", self.predictions: "prediction", self.labels: "label"}


class Ingest:
    """The transactional consume → validate → pack → produce loop."""

    def __init__(
        self,
        bootstrap: KafkaTarget,
        topics: IngestTopics,
        settings: IngestSettings,
        metrics: IngestMetrics,
        on_commit: Callable[[int, int], None] | None = None,
    ) -> None:
        self.topics = topics
        self.settings = settings
        self.metrics = metrics
        self.on_commit = on_commit
        self._kinds = topics.kinds()
        self._latest_ts = float("inf")  # set per consumed batch: now + settings.max_future_s
        self._packer = BatchPacker(settings.batch_max_events, settings.batch_max_bytes)
        self._consumer = Consumer(transactional_consumer_config(bootstrap, settings.group_id))
        self._txn = RenewableProducer(transactional_producer_config(bootstrap, settings.transactional_id), 30.0)
        self._in_txn = False
        self._txn_started = 0.0
        self._txn_valid = 0
        self._txn_invalid = 0
        self._stop = threading.Event()  # run()'s: ends retries during an outage at shutdown

    def run(self, stop: threading.Event) -> None:
        """Process until ``stop`` is set; then commit (or abort) the open transaction and close."""
        self._stop = stop
        self._txn.init_transactions(stop, self.metrics.kafka_retries.inc)
        self._consumer.subscribe(list(self._kinds), on_revoke=self._on_revoke, on_lost=self._on_lost)
        log(logger, logging.INFO, "ingest started", topics=list(self._kinds), group=self.settings.group_id)
        try:
            while not stop.is_set():
                try:
                    messages = self._consumer.consume(self.settings.consume_batch, timeout=0.1)
                    if messages:
                        self._process(messages)
                    if self._in_txn and (time.monotonic() - self._txn_started) * 1000 >= self.settings.batch_max_ms:
                        self._commit()
                except KafkaException as exc:  # a produce in a transaction the broker outage broke
                    self._recover(exc)
            if self._in_txn:
                self._commit()
        finally:
            self._consumer.close()
            self._producer.flush(5)
            log(logger, logging.INFO, "ingest stopped")

    def _process(self, messages: list[Message]) -> None:
        started = time.perf_counter()
        self._latest_ts = time.time() + self.settings.max_future_s
        if not self._in_txn:
            self._begin()
        per_topic: Tally[str] = Tally()
        valid_per_topic: Tally[str] = Tally()
        features = self.topics.features
        run: list[Message] = []  # consecutive feature messages: validated by column
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log(logger, logging.WARNING, "consume error", code=err.name(), detail=err.str())
                continue
            topic = msg.topic()
            if topic == features:
                run.append(msg)
                continue
            if run:
                valid_per_topic[features] += self._handle_features(run)
                per_topic[features] += len(run)
                run = []
            per_topic[topic] += 1
            if self._handle(msg, topic):
                valid_per_topic[topic] += 1
        if run:
            valid_per_topic[features] += self._handle_features(run)
            per_topic[features] += len(run)
        for topic, n in per_topic.items():
            self.metrics.count_topic(topic, n, valid_per_topic.get(topic, 0))
        self.metrics.processing.observe(time.perf_counter() - started)

    def _handle(self, msg: Message, topic: str) -> bool:
        """Validate one message; produce it to the DLQ or pack it. True if valid."""
        return self._accept(msg, topic, decode_event(msg.value(), self._kinds[topic]))

    def _accept(self, msg: Message, topic: str, result: Event | InvalidEvent) -> bool:
        """Pack a decoded event whose key matches, else DLQ the message. True if packed."""
        if not isinstance(result, InvalidEvent) and result.ts > self._latest_ts:
            result = self._future(result.ts)
        if not isinstance(result, InvalidEvent):
            key_error = check_key(msg.key(), result)
            if key_error is None:
                for full in self._packer.add(result, len(msg.value() or b"")):
                    self._send_batch(*full)
                self._txn_valid += 1
                return True
            result = key_error
        self._send_dlq(msg, topic, result)
        return False

    def _handle_features(self, messages: list[Message]) -> int:
        """Validate consecutive feature messages by column; the number packed."""
        topic = self.topics.features
        valid = 0
        for item in decode_features([m.value() for m in messages], "feature"):
            if type(item) is FeatureRun:
                valid += self._pack_run(item, messages)
            else:
                position, result = item  # type: ignore[misc]
                valid += self._accept(messages[position], topic, result)
        return valid

    def _pack_run(self, run: FeatureRun, messages: list[Message]) -> int:
        """Pack a run of valid feature events, model by model, once their keys match."""
        valid = 0
        for model_id, rows, picked in run.by_model():
            positions = range(len(run)) if picked is None else picked
            keys = [messages[run.start + p].key() for p in positions]
            in_time = max(run.ts[p] for p in positions) <= self._latest_ts
            if in_time and keys.count(model_id.encode()) == len(keys):
                sizes = [len(messages[run.start + p].value() or b"") for p in positions]
                for full in self._packer.add_run(model_id, rows, sizes):
                    self._send_batch(*full)
                valid += len(rows)
                self._txn_valid += len(rows)
                continue
            for p in positions:  # some key is not the model_id, or some ts is ahead: message by message
                event = FeatureEvent(run.model_id[p], run.event_id[p], run.ts[p], run.features[p])
                valid += self._accept(messages[run.start + p], self.topics.features, event)
        return valid

    def _future(self, ts: float) -> InvalidEvent:
        ahead = ts - (self._latest_ts - self.settings.max_future_s)
        return InvalidEvent(
            "ts",
            "future_timestamp",
            f"{ts} is {ahead:,.0f} s ahead of this host's clock, more than ingest.max_future_s "
            f"({self.settings.max_future_s:g} s): check the producer's clock, and that ts is in seconds",
        )

    def _send_batch(self, model_id: str, payload: bytes, n: int) -> None:
        self._producer.produce(self.topics.observations, key=model_id.encode(), value=payload)
        self.metrics.batches_out.inc()
        self.metrics.batch_size.observe(n)
        self._producer.poll(0)

    def _send_dlq(self, msg: Message, topic: str, error: InvalidEvent) -> None:
        headers = dlq_headers(topic, msg.partition(), msg.offset(), error, msg.headers())
        value, headers = fit_dlq_record(msg.key(), msg.value(), headers)
        self._producer.produce(self.topics.dlq, key=msg.key(), value=value, headers=headers)
        self.metrics.count_invalid(topic, error.rule)
        self._txn_invalid += 1
        log(
            logger,
            logging.WARNING,
            "rejected message",
            topic=topic,
            partition=msg.partition(),
            offset=msg.offset(),
            field=error.field,
            rule=error.rule,
            error=str(error),
        )

    @property
    def _producer(self) -> Producer:
        return self._txn.producer

    def _begin(self) -> None:
        self._txn.renew_if_needed(self._stop, self.metrics.kafka_retries.inc)
        self._producer.begin_transaction()
        self._in_txn = True
        self._txn_started = time.monotonic()
        self._txn_valid = self._txn_invalid = 0

    def _commit(self) -> None:
        """Flush open batches, attach consumed offsets, commit; abort and rewind on failure."""
        started = time.perf_counter()
        try:
            for batch in self._packer.drain():
                self._send_batch(*batch)
            positions = [tp for tp in self._consumer.position(self._consumer.assignment()) if tp.offset >= 0]
            metadata = self._consumer.consumer_group_metadata()
            self._retrying(
                "send_offsets_to_transaction",
                lambda: self._producer.send_offsets_to_transaction(positions, metadata, 30),
            )
            self._retrying("commit_transaction", lambda: self._producer.commit_transaction(30))
        except KafkaException as exc:
            self._recover(exc)
            return
        self._in_txn = False
        self.metrics.committed.inc()
        self.metrics.commit.observe(time.perf_counter() - started)
        if self.on_commit is not None:
            self.on_commit(self._txn_valid, self._txn_invalid)

    def _retrying(self, what: str, call: Callable[[], object]) -> None:
        """``call`` retried while the broker is away (until stopped): an outage is waited out."""
        call_retrying(what, call, stop=self._stop, on_retry=self.metrics.kafka_retries.inc)

    def _recover(self, exc: KafkaException) -> None:
        """Abort and re-read after any error that leaves the producer usable (an abortable
        commit, a produce refused in a transaction an outage broke); stop on a fatal one
        (fenced: another instance took over) or when stopped during an outage."""
        error = exc.args[0]
        if is_fatal(exc) or (self._stop.is_set() and not is_abortable(exc)):
            raise KafkaOperationFailed("transaction", error.name(), error.str(), fatal=is_fatal(exc)) from exc
        log(logger, logging.WARNING, "aborting transaction; its input will be re-read", code=error.name())
        if self._in_txn:
            self._abort()
        self._rewind()
        self._stop.wait(0.5)  # a producer that keeps failing is not spun on

    def _abort(self) -> None:
        """Abort the open transaction and forget its unsent batches (their input is re-read)."""
        try:
            self._retrying("abort_transaction", lambda: self._producer.abort_transaction(30))
        except KafkaException as exc:
            if is_fatal(exc):
                raise
            log(logger, logging.WARNING, "abort failed; the transaction is left to time out", error=str(exc)[:200])
        self._in_txn = False
        self._packer.discard()
        self.metrics.aborted.inc()

    def _rewind(self) -> None:
        """Seek every assigned partition back to its committed offset (after an abort)."""
        assignment = self._consumer.assignment()
        if not assignment:
            return
        committed: list[TopicPartition] = []
        self._retrying("committed offsets", lambda: committed.extend(self._consumer.committed(assignment, timeout=30)))
        for tp in committed:
            if tp.offset >= 0:
                self._consumer.seek(tp)
            else:
                self._consumer.seek(TopicPartition(tp.topic, tp.partition, -2))  # OFFSET_BEGINNING

    def _on_revoke(self, _consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        """Commit what was processed before partitions move, so the new owner starts after it."""
        if self._in_txn:
            self._commit()

    def _on_lost(self, _consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        """Partitions lost without a clean revoke: our transaction cannot be trusted; abort it."""
        if self._in_txn:
            self._abort()
