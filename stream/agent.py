"""The observation agent: one micro-batch in → outputs delivered → state saved.

``BatchProcessor`` holds all the per-batch logic and knows nothing of faust, so unit
tests drive it with dicts; ``register_agent`` wraps it in a faust agent. Per message:

1. decode (``decode_batch``); an invalid batch, or one whose key is not its
   ``model_id`` (its state would land on the wrong changelog partition), goes to the DLQ
   with its original bytes and headers naming the reason and source position;
2. load the model's ``ModelState``; if the table says this (partition, offset) was
   already applied — a redelivery after a crash or rebalance — skip it;
3. switch the reference if ``driftline.model-updates`` serves a new version;
4. ``ModelMonitor.process(batch)``, the online challenger, the score detector;
5. send closed windows, decisions and joined rows, **await their delivery**;
6. apply the staged label-join writes, then save the state stamped with the offset.

A crash before 6 re-runs the batch from the last saved state and re-sends the same
outputs (ids are deterministic: ``RetrainRequested.id``, ``model_id:window_id`` for
windows, ``(model_id, event_id)`` for joined rows). A crash after 6 skips it.

7. ack the message — only once the changelog has acknowledged every table write of the
   batch, and in arrival order (``OrderedAcks``), so the committed source offset never
   runs ahead of the state in the changelog. faust's own ack (when the agent moves on)
   did: the writes could still sit in its producer buffer at commit time, and a
   ``kill -9`` then lost batches whose offsets were already committed. The agent does
   not wait for these acks; the next batch is processed meanwhile.

Before each batch the agent waits until faust's rebalance and table recovery are done
(``wait_recovered``). faust-streaming can hand the agent a message of a just-assigned
partition while that partition's changelog is still being replayed into the table (seen
on the real broker: batches processed ~1.5 s into the takeover, then the replay put the
older model record back and the batches applied in between were lost — 2,750 events of
two models). Such a batch, once the table is recovered, is applied from the recovered
state; the seek to the committed offsets that ends recovery redelivers it, and the
position stamp skips the duplicate. A batch of a partition this worker lost meanwhile is
acked unprocessed (faust discards commits for revoked partitions; the new owner has it).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import numpy as np
import orjson

from driftline.kafka.dlq import dlq_headers, fit_dlq_record
from driftline.kafka.topics import TopicNames
from driftline.logs import log
from driftline.schemas.batch import KIND_PREDICTION, ObservationBatch
from driftline.schemas.batch_wire import decode_batch
from driftline.schemas.control import VersionChecked
from driftline.schemas.events import InvalidEvent
from driftline.stream.drift.monitor import ModelMonitor, MonitorOutput
from driftline.stream.model_updates import ServingVersions
from driftline.stream.stream_metrics import StreamMetrics
from driftline.stream.tables import JsonView, ModelState, ModelStateStore, StagedStore
from driftline.trust.commands import sign_command
from driftline.trust.keys import Ed25519PrivateKey

__all__ = [
    "BatchProcessor",
    "BatchResult",
    "OrderedAcks",
    "Outgoing",
    "register_agent",
    "wait_recovered",
    "window_record",
]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Outgoing:
    """One record to produce: logical topic (``labeled``, ``control``, ``windows``, ``dlq``)."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None = None


@dataclasses.dataclass
class BatchResult:
    """What ``process`` made of one message; ``commit`` it once ``outgoing`` is delivered."""

    outcome: str  # applied | skipped | invalid
    outgoing: list[Outgoing] = dataclasses.field(default_factory=list)
    state: ModelState | None = None
    staged: StagedStore | None = None
    source: tuple[int, int] = (0, 0)
    output: MonitorOutput | None = None
    events: int = 0


def window_record(closed: Any, thresholds: dict[str, dict[str, float]]) -> dict[str, Any]:
    """A closed window for ``driftline.windows``: ``WindowClosed.to_dict()`` plus its id
    (``model_id:window_id``, deterministic) and the thresholds its scores were judged by."""
    record = closed.to_dict()
    record["id"] = f"{closed.model_id}:{closed.window.window_id}"
    record["thresholds"] = thresholds
    return record


def _thresholds(monitor: ModelMonitor, closed: Any) -> dict[str, dict[str, float]]:
    """Per feature and metric, the threshold a scored window was compared with.

    ``thresholds_for`` is cached per (feature, size bucket) and ``on_window`` has just
    filled exactly these entries, so this reads the cache and never changes the state.
    """
    nulls = getattr(monitor, "_nulls", {})
    n_rows = closed.window.n_rows
    if closed.status not in ("scored", "too_small") or not nulls or n_rows < 1:
        return {}
    n_tests = monitor.policy.n_tests(nulls)
    return {f: monitor.policy.thresholds_for(f, nulls[f], n_rows, n_tests) for f in closed.scores if f in nulls}


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_SORT_KEYS)


class BatchProcessor:
    """Applies observation batches to per-model state kept in ``table`` (str → bytes)."""

    def __init__(
        self,
        table: MutableMapping,
        store: ModelStateStore,
        serving: ServingVersions,
        metrics: StreamMetrics | None = None,
        source_topic: str = "",
        control_key: Ed25519PrivateKey | None = None,
    ) -> None:
        """``control_key``: signs the retrain requests and version checks, so the trainer can
        tell them from anyone else's writes to ``driftline.control`` (None: unsigned)."""
        self.join_view = JsonView(table)
        self.control_key = control_key
        self.store = store
        self.serving = serving
        self.metrics = metrics
        self.source_topic = source_topic

    def process(
        self, key: bytes | None, value: bytes | None, partition: int, offset: int, headers: Any = None
    ) -> BatchResult:
        batch = decode_batch(value)
        if isinstance(batch, InvalidEvent):
            return self._invalid(key, value, partition, offset, headers, batch)
        if key is None or key != batch.model_id.encode():
            error = InvalidEvent("$key", "key", f"message key {key!r:.80} is not the batch's model_id")
            return self._invalid(key, value, partition, offset, headers, error)
        staged = StagedStore(self.join_view)
        state = self.store.load(batch.model_id, staged)
        if state.applied(partition, offset):
            log(
                logger,
                logging.INFO,
                "redelivered batch skipped",
                model_id=batch.model_id,
                partition=partition,
                offset=offset,
                applied_up_to=state.source[1] if state.source else None,
            )
            self.store.keep(state)
            self._count("skipped")
            return BatchResult("skipped", source=(partition, offset))
        self._follow_serving(state.monitor)
        out = state.monitor.process(batch)
        self._learn(state, batch, out)
        outgoing = self._outgoing(state.monitor, out)
        return BatchResult("applied", outgoing, state, staged, (partition, offset), out, len(batch))

    def commit(self, result: BatchResult) -> None:
        """After ``result.outgoing`` was delivered: persist the join writes, then the state."""
        if result.outcome != "applied":
            return
        assert result.state is not None and result.staged is not None
        result.staged.flush()
        self.store.save(result.state, *result.source)
        self._count("applied")
        if self.metrics is not None and result.output is not None:
            self._observe(result.state, result.output, result.events)

    # -- steps ---------------------------------------------------------------------------

    def _invalid(
        self, key: bytes | None, value: bytes | None, partition: int, offset: int, headers: Any, error: InvalidEvent
    ) -> BatchResult:
        log(
            logger,
            logging.WARNING,
            "invalid observation batch",
            partition=partition,
            offset=offset,
            field=error.field,
            rule=error.rule,
            error=str(error),
        )
        original = [(k, v) for k, v in (headers or [])]
        hdrs = dlq_headers(self.source_topic, partition, offset, error, original)
        value, hdrs = fit_dlq_record(key, value, hdrs)
        if self.metrics is not None:
            self.metrics.invalid("observations", error.rule).inc()
        self._count("invalid")
        return BatchResult("invalid", [Outgoing("dlq", key, value, hdrs)], source=(partition, offset))

    def _follow_serving(self, monitor: ModelMonitor) -> None:
        serving = self.serving.get(monitor.model_id)
        if serving is None or serving.version == monitor.model_version:
            return
        if serving.reference is not None:
            monitor.set_reference(serving.reference, serving.version)
            if self.metrics is not None:
                self.metrics.references(monitor.model_id, "published").inc()
        else:
            monitor.model_version = serving.version  # no profile shipped: keep scoring as before
        log(
            logger,
            logging.INFO,
            "serving version changed",
            model_id=monitor.model_id,
            version=serving.version,
            reference=serving.reference is not None,
        )

    def _learn(self, state: ModelState, batch: ObservationBatch, out: MonitorOutput) -> None:
        challenger = state.challenger
        hits: list[bool | None] = [None] * len(out.joined)
        if challenger is not None:
            task = state.monitor.tracker.task
            if task and task != getattr(challenger, "task", None):
                challenger.set_task(task)
                state.touched("challenger")
            if out.joined:
                hits = challenger.learn(out.joined)  # prequential: each row predicted before it is learned
                state.touched("challenger")
        self._judge_serving(state, out, hits)
        rows = np.flatnonzero(batch.kind == KIND_PREDICTION)
        if len(rows):
            scores = batch.score[rows]
            if np.isnan(scores).all() and state.monitor.tracker.task == "regression":
                scores = np.array(
                    [p if isinstance(p, (int, float)) else np.nan for p in (batch.prediction[i] for i in rows)],
                    dtype=np.float64,
                )
            shifts = state.score_drift.update([batch.model_version[i] for i in rows], scores)
            state.touched("score_drift")
            if shifts and self.metrics is not None:
                for s in shifts:
                    self.metrics.score_shifts(batch.model_id, s.model_version).inc()

    def _judge_serving(self, state: ModelState, out: MonitorOutput, hits: list[bool | None]) -> None:
        """The post-deployment check (``stream.served_quality``), and the evidence every request carries.

        Requests get the change point of the serving version's errors as their drift start
        when the rule that fired has none (a performance signal), and the online
        challenger's learned state, so the trainer can judge it as a candidate.
        """
        quality, monitor = state.quality, state.monitor
        if quality is not None and out.joined:
            gate = self._gate_metrics(monitor.model_id, monitor.model_version)
            for finding in quality.observe(monitor.model_version, gate, out.joined, hits):
                if isinstance(finding, VersionChecked):
                    out.checks.append(finding)
                else:
                    out.decisions.append(finding)
        if not out.decisions:
            return
        change = quality.change_start() if quality is not None else None
        export = state.challenger.export() if state.challenger is not None and state.challenger.n else None
        for i, decision in enumerate(out.decisions):
            evidence = dict(decision.evidence)
            if change is not None and "drift_started_ts" not in evidence:
                evidence["drift_started_ts"] = change
            if export is not None:
                evidence["challenger"] = export
            out.decisions[i] = dataclasses.replace(decision, evidence=evidence)

    def _gate_metrics(self, model_id: str, version: str | None) -> dict[str, float]:
        """What the gate measured for ``version`` of the model, if it is the one model-updates serves."""
        serving = self.serving.get(model_id)
        return serving.gate_metrics if serving is not None and serving.version == version else {}

    def _outgoing(self, monitor: ModelMonitor, out: MonitorOutput) -> list[Outgoing]:
        key = monitor.model_id.encode()
        records = [Outgoing("windows", key, _dumps(window_record(w, _thresholds(monitor, w)))) for w in out.windows]
        records += [Outgoing("control", key, _dumps(self._signed(d.to_dict()))) for d in out.decisions]
        records += [Outgoing("control", key, _dumps(self._signed(c.to_dict()))) for c in out.checks]
        records += [Outgoing("labeled", key, _dumps(r.to_dict())) for r in out.joined]
        return records

    def _signed(self, doc: dict[str, Any]) -> dict[str, Any]:
        return doc if self.control_key is None else sign_command(doc, self.control_key)

    # -- metrics -------------------------------------------------------------------------

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.batches(outcome).inc()

    def _observe(self, state: ModelState, out: MonitorOutput, n: int) -> None:
        m, monitor = self.metrics, state.monitor
        assert m is not None
        mid = monitor.model_id
        m.events(mid).inc(n)
        m.start_model(mid, f"performance:{monitor.tracker.detector}")  # series from 0
        if out.late_events:
            m.late(mid).inc(out.late_events)
        if out.joined:
            m.join_hits(mid).inc(len(out.joined))
        if out.expired_joins:
            m.join_expired(mid).inc(out.expired_joins)
        for d in out.decisions:
            m.decisions(mid, d.rule).inc()
        if out.reference is not None:
            m.references(mid, "first_windows").inc()
        scored = [w for w in out.windows if w.status == "scored"]
        m.count_windows(mid, out.windows, _thresholds(monitor, scored[-1]) if scored else {})
        if out.joined:
            challenger = state.challenger.snapshot() if state.challenger is not None else None
            m.set_online(mid, monitor.tracker.metrics_by_version(), challenger)
            if state.quality is not None and state.quality.version is not None:
                version = state.quality.version
                m.set_serving_accuracy(
                    mid, version, state.quality.live().get("accuracy"), self._gate_metrics(mid, version).get("accuracy")
                )
        watermark = monitor.clock.watermark
        if watermark > float("-inf"):
            m.watermark_lag(mid).set(time.time() - watermark)


async def wait_recovered(app: Any, poll_s: float = 0.05) -> bool:
    """Until no rebalance is running and every active table is recovered; True if it waited."""
    waited = False
    while app.rebalancing or not app.tables.actives_ready:
        waited = True
        await asyncio.sleep(poll_s)
    return waited


class OrderedAcks:
    """Acks events in arrival order, each once its changelog writes are acknowledged.

    In order because faust's commit (``Consumer._new_offset``) treats a single missing
    offset right after the committed one as no gap: acking batch N+1 before batch N
    could commit past N. A failed write stops all later acks (nothing is committed past
    it; a restart re-runs from there) and calls ``on_error``.
    """

    def __init__(self, on_error: Callable[[BaseException], None] | None = None) -> None:
        self.on_error = on_error
        self._queue: collections.deque[tuple[Any, asyncio.Future | None]] = collections.deque()
        self.failed: BaseException | None = None

    def add(self, event: Any, writes: list[asyncio.Future]) -> None:
        done = asyncio.gather(*writes) if writes else None
        self._queue.append((event, done))
        if done is not None:
            done.add_done_callback(self._drain)
        self._drain()

    def __len__(self) -> int:
        return len(self._queue)

    def _drain(self, _: Any = None) -> None:
        while self._queue and self.failed is None:
            event, done = self._queue[0]
            if done is not None:
                if not done.done():
                    return
                error = done.exception() if not done.cancelled() else asyncio.CancelledError()
                if error is not None:
                    self.failed = error
                    log(logger, logging.ERROR, "changelog write failed; not acking from here on", error=repr(error))
                    if self.on_error is not None:
                        self.on_error(error)
                    return
            self._queue.popleft()
            event.ack()


def register_agent(
    app: Any,
    names: TopicNames,
    processor: BatchProcessor,
    metrics: StreamMetrics | None = None,
    ready: asyncio.Event | None = None,
    ready_timeout_s: float = 10.0,
    writes: Any = None,
    progress: Any = None,
    seek_guard: Any = None,
) -> Any:
    """Declare the faust agent on ``names.observations``; returns it.

    ``ready`` (model updates caught up) is awaited once, up to ``ready_timeout_s``, before
    the first batch, so a restarted worker scores against the versions actually serving.
    ``writes`` (``stream.app.ChangelogWrites`` of the state table): when given, the
    agent acks messages itself once their changelog writes are acknowledged (step 7).
    ``progress`` (``stream.stall_watchdog.PartitionProgress``) notes every arrival;
    ``seek_guard`` (``stream.seek_guard.SeekGuard``) tells records fetched before the
    last seek, which are left unprocessed and unacked (the seek re-fetches them).
    """
    source = app.topic(
        names.observations, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    outputs = {
        logical: app.topic(getattr(names, logical), key_serializer="raw", value_serializer="raw")
        for logical in ("labeled", "control", "windows", "dlq")
    }

    crashing: set[asyncio.Future[Any]] = set()  # held until done: the loop keeps only weak references

    def crash(error: BaseException) -> None:
        task = asyncio.ensure_future(app.crash(error))
        crashing.add(task)
        task.add_done_callback(crashing.discard)

    async def observations(stream: Any) -> None:
        if ready is not None:
            try:
                await asyncio.wait_for(ready.wait(), ready_timeout_s)
            except TimeoutError:
                log(logger, logging.WARNING, "model updates not caught up; starting anyway")
        acks = OrderedAcks(crash) if writes is not None else None
        events = stream.noack().events() if acks is not None else stream.events()
        async for event in events:
            message = event.message
            if progress is not None:
                progress.saw(message.partition, message.offset)
            if await wait_recovered(app):
                assigned = message.tp in app.consumer.assignment()
                log(
                    logger,
                    logging.INFO,
                    "batch arrived during a rebalance; waited for table recovery",
                    partition=message.partition,
                    offset=message.offset,
                    still_assigned=assigned,
                )
                if not assigned:
                    if acks is not None:
                        acks.add(event, [])
                    continue
            if seek_guard is not None and not seek_guard.fresh(message):
                continue
            started = time.perf_counter()
            try:
                result = processor.process(
                    message.key, message.value, message.partition, message.offset, message.headers
                )
            except Exception as exc:
                log(
                    logger,
                    logging.ERROR,
                    "batch processing failed; sent to the DLQ",
                    partition=message.partition,
                    offset=message.offset,
                    error=repr(exc),
                )
                error = InvalidEvent("$", "processing_error", repr(exc)[:500])
                result = processor._invalid(
                    message.key, message.value, message.partition, message.offset, message.headers, error
                )
            generation = app.consumer_generation_id
            pending = [
                await outputs[o.topic].send(key=o.key, value=o.value, headers=o.headers) for o in result.outgoing
            ]
            if pending:
                await asyncio.gather(*pending)
            if app.rebalancing or app.consumer_generation_id != generation:
                # recovery may be replaying the table right now: a save would be undone by
                # it (or land in a changelog partition another worker owns). Not acked, so
                # it is redelivered; its outputs were sent and are re-sent with the same ids.
                log(
                    logger,
                    logging.INFO,
                    "batch overlapped a rebalance; discarded for redelivery",
                    partition=message.partition,
                    offset=message.offset,
                )
                continue
            processor.commit(result)
            if acks is not None:
                acks.add(event, writes.take())
            if metrics is not None:
                metrics.latency.observe(time.perf_counter() - started)

    return app.agent(source, name="observations")(observations)
