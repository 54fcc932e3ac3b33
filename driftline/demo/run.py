"""``driftline demo``: the whole loop on the embedded default, visible as it runs.

Starts (or reuses) the local broker, creates the topics, starts ``driftline ingest`` as a
real process, produces synthetic drifting traffic with malformed messages mixed in, and
prints what a ``read_committed`` reader sees grow: valid events in
``driftline.observations`` and rejected messages in ``driftline.dlq``. At the end it says
where to look.
"""

from __future__ import annotations

import time
import uuid

import orjson
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition
from prometheus_client import CollectorRegistry

from driftline.config import Settings
from driftline.demo.processes import DriftlineProcess
from driftline.demo.serving import DemoSubscriber, register_first_versions
from driftline.demo.traffic import MALFORMED, SyntheticTraffic
from driftline.kafka.admin import KafkaAdmin
from driftline.kafka.clients import read_committed_config
from driftline.kafka.topics import TopicNames, create_topics, topic_specs
from driftline.metrics_server import serve_metrics
from driftline.schemas.batch_wire import decode_batch
from driftline.schemas.events import InvalidEvent

__all__ = ["DemoOptions", "run_demo"]


@dataclass(frozen=True)
class DemoOptions:
    events_per_model: int = 30_000
    timeout_s: float = 240.0
    log_dir: Path = Path(".driftline/demo")
    metrics_port_base: int = 0
    """Ingest, stream, trainer and the demo's subscribers serve metrics on this port and
    the next three (0: each on a free port)."""


@dataclass
class _Counts:
    produced_valid: int = 0
    produced_invalid: int = 0
    observed_events: int = 0
    observed_batches: int = 0
    dlq: int = 0
    windows: int = 0
    decisions: int = 0


def run_demo(settings: Settings, bootstrap: str, options: DemoOptions, say: Callable[[str], None] = print) -> int:
    """Run the whole loop; returns 0 when every event was accounted for and a retrained version was served."""
    # Every run gets its own topics (and stream app id): a rerun starts as clean as the first.
    run_id = time.strftime("demo-%Y%m%d-%H%M%S", time.gmtime())
    prefix = f"{settings.topics.prefix}{run_id}."
    names = TopicNames(prefix=prefix)
    run_env = {"DRIFTLINE_TOPICS_PREFIX": prefix, "DRIFTLINE_STREAM_APP_ID": f"driftline-stream-{run_id}"}
    say(f"this run's topics start with {prefix!r}; set DRIFTLINE_TOPICS_PREFIX={prefix} to inspect them afterwards")
    outcome = create_topics(KafkaAdmin(bootstrap), topic_specs(names, event_partitions=settings.topics.event_partitions))
    say(f"topics: {sum(v == 'created' for v in outcome.values())} created, "
        f"{sum(v == 'exists' for v in outcome.values())} already there  (broker {bootstrap})")
    reader = _Reader(bootstrap, names)
    reader.say = say
    base = options.metrics_port_base
    ports = [base + i if base else 0 for i in range(4)]

    def args(port: int) -> list[str]:
        return ["--bootstrap-servers", bootstrap, "--metrics-port", str(port)]

    # The demo retrains as soon as drift is decided; production keeps [trainer] cooldown_s.
    processes = [DriftlineProcess("ingest", args(ports[0]), options.log_dir, env=run_env),
                 DriftlineProcess("stream", args(ports[1]), options.log_dir, env=run_env),
                 DriftlineProcess("trainer", args(ports[2]), options.log_dir,
                                  env={**run_env, "DRIFTLINE_TRAINER_COOLDOWN_S": "0"})]
    for process, port in zip(processes, ports):
        process.start()
        where = f", metrics http://127.0.0.1:{port}/metrics" if port else ""
        say(f"started driftline {process.command} (log: {process.log_path}{where})")
    registry = CollectorRegistry()  # the demo's subscribers, as one serving process would expose them
    if base:
        serve_metrics(registry, ports[3])
        say(f"the demo's subscribers: metrics http://127.0.0.1:{ports[3]}/metrics")
    models = SyntheticTraffic().models
    counts = _Counts()
    subscribers: list[DemoSubscriber] = []
    try:
        register_first_versions(bootstrap, models, options.log_dir, run_env, say)
        subscribers = [DemoSubscriber(settings, bootstrap, names, m, run_id, say, registry) for m in models]
        for subscriber in subscribers:
            subscriber.start()
            subscriber.wait_for_first(30)
        _produce(bootstrap, names, options, counts, reader, say)
        _wait_for_all(reader, counts, options.timeout_s, processes, subscribers, say)
    finally:
        for subscriber in subscribers:
            subscriber.stop()
        for process in processes:
            say(f"stopped {process.command} (exit {process.stop()})")
        reader.close()
    busiest = max(subscribers, key=lambda sub: len(sub.versions), default=None)
    served = busiest.versions if busiest is not None else []
    _summary(counts, names, processes, busiest.model_id if busiest else "-", served, say)
    # ">=": a backlog left by an earlier, interrupted demo run is processed too.
    ok = counts.observed_events >= counts.produced_valid and counts.dlq >= counts.produced_invalid
    return 0 if ok and counts.decisions > 0 and len(served) >= 2 else 1


def _produce(bootstrap: str, names: TopicNames, options: DemoOptions, counts: _Counts,
             reader: _Reader, say: Callable[[str], None]) -> None:
    traffic = SyntheticTraffic()
    topic_of = {"features": names.features, "predictions": names.predictions, "labels": names.labels}
    bad = {value for _, _, value in MALFORMED}
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "message.max.bytes": 8 * 1024 * 1024})
    say(f"producing {options.events_per_model:,} events per model for {len(traffic.models)} models "
        f"(features, predictions, late labels; a drift after {traffic.drift_at:,}; malformed messages mixed in)")
    last = time.monotonic()
    for message in traffic.messages(options.events_per_model):
        _send(producer, topic_of[message.kind], message.key, message.value)
        if message.value in bad:
            counts.produced_invalid += 1
        else:
            counts.produced_valid += 1
        if time.monotonic() - last >= 1.0:
            producer.poll(0)
            reader.read(counts, 0.05)
            _progress(counts, say)
            last = time.monotonic()
    producer.flush(30)


def _send(producer: Producer, topic: str, key: bytes | None, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, key=key, value=value)
            return
        except BufferError:
            producer.poll(0.05)


def _wait_for_all(reader: _Reader, counts: _Counts, timeout_s: float, processes: list[DriftlineProcess],
                  subscribers: list[DemoSubscriber], say: Callable[[str], None]) -> None:
    """Until every event is accounted for and the subscriber swapped to a retrained version, or the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reader.read(counts, 1.0)
        _progress(counts, say)
        caught_up = counts.observed_events >= counts.produced_valid and counts.dlq >= counts.produced_invalid
        if caught_up and counts.decisions > 0 and any(len(sub.versions) >= 2 for sub in subscribers):
            return
        for process in processes:
            if not process.running:
                say(f"{process.command} exited early; its last log lines:\n" + process.tail())
                return
    say(f"timed out after {timeout_s:.0f} s (see the logs below for why)")


_last_progress: list[str] = [""]


def _progress(counts: _Counts, say: Callable[[str], None]) -> None:
    """One progress line, printed only when something changed."""
    line = (f"  produced {counts.produced_valid + counts.produced_invalid:>8,}  |  "
        f"valid in observations {counts.observed_events:>8,} ({counts.observed_batches:,} batches)  |  "
        f"dlq {counts.dlq:>4,}  |  windows closed {counts.windows:>3}  |  retrain requests {counts.decisions}")
    if line != _last_progress[0]:
        _last_progress[0] = line
        say(line)


def _summary(counts: _Counts, names: TopicNames, processes: list[DriftlineProcess], model_id: str,
             served: list[str], say: Callable[[str], None]) -> None:
    say("")
    say(f"valid events: produced {counts.produced_valid:,}, in {names.observations}: {counts.observed_events:,}")
    say(f"malformed:    produced {counts.produced_invalid:,}, in {names.dlq}: {counts.dlq:,} (original bytes kept)")
    say(f"windows:      {counts.windows} closed (scores vs thresholds in {names.windows})")
    say(f"decisions:    {counts.decisions} retrain requests on {names.control}")
    say(f"serving:      the demo's {model_id} subscriber served {' -> '.join(served) or 'nothing'}")
    say("where to look:")
    say(f"  kcat -C -b <broker> -t {names.dlq} -f '%h\\n%s\\n' -e    # rejected messages, reasons in headers")
    say(f"  kcat -C -b <broker> -t {names.control} -e                # retrain requests with their evidence")
    say(f"  export DRIFTLINE_TOPICS_PREFIX={names.prefix}")
    say("  driftline models list | driftline models history churn   # versions, lineage, who did what")
    say("  driftline models rollback churn --by you --reason test   # move serving back (subscribers follow)")
    say("  driftline replay <events.jsonl> --windows                # the same policy, backtested on a file")
    for process in processes:
        say(f"  {process.log_path}   # {process.command}'s structured log")
    say("  driftline kafka status | driftline kafka stop           # the local broker keeps running")


class _Reader:
    """Counts what ingest committed since the demo started (read_committed, from the end)."""

    def __init__(self, bootstrap: str, names: TopicNames) -> None:
        self.names = names
        self.consumer = Consumer(read_committed_config(bootstrap, f"driftline-demo-{uuid.uuid4()}"))
        self.consumer.assign(self._ends([names.observations, names.dlq, names.windows, names.control]))
        self.say: Callable[[str], None] = print

    def _ends(self, topics: list[str]) -> list[TopicPartition]:
        """Every partition at its end (resolved lazily by the client, so fresh topics work)."""
        metadata = self.consumer.list_topics(timeout=10)
        return [
            TopicPartition(topic, partition, OFFSET_END)
            for topic in topics
            for partition in metadata.topics[topic].partitions
        ]

    def read(self, counts: _Counts, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            messages = self.consumer.consume(1000, timeout=0.05)
            if not messages:
                continue
            for msg in messages:
                if msg.error():
                    continue
                topic = msg.topic()
                if topic == self.names.dlq:
                    counts.dlq += 1
                    continue
                if topic == self.names.windows:
                    counts.windows += 1
                    continue
                if topic == self.names.control:
                    self._control(msg.value(), counts)
                    continue
                batch = decode_batch(msg.value())
                if not isinstance(batch, InvalidEvent):
                    counts.observed_events += len(batch)
                    counts.observed_batches += 1

    def _control(self, value: bytes, counts: _Counts) -> None:
        doc = orjson.loads(value)
        if doc.get("type") != "retrain_requested":
            return
        counts.decisions += 1
        self.say(f"  >> {doc['model_id']}: retrain requested ({doc['rule']}) for window "
                 f"{_clock(doc['window']['start'])}-{_clock(doc['window']['end'])}: {'; '.join(doc['reasons'])[:160]}")

    def close(self) -> None:
        self.consumer.close()


def _clock(ts: float) -> str:
    return time.strftime("%H:%M", time.gmtime(ts))
