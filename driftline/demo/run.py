"""``driftline demo``: the whole loop on the embedded default, visible as it runs.

Starts (or reuses) the local broker, creates this run's topics, starts ``driftline
ingest``, ``stream`` and ``trainer`` as real processes (``driftline.demo.loop_runner``),
registers version 1.0.0 of two models and serves their traffic **closed-loop**
(``driftline.demo.closed_loop``): each request is predicted by the model the demo's
subscriber serves at that moment, the prediction event carries that ``model_version``
and the features, its label follows 200 events later, and malformed messages are mixed
in. Half-way each model's concept changes in a way 1.0.0 cannot follow.

While it runs it prints, every 2,000 events, the served accuracy of each version serving
in that span (the drop at the drift, the recovery after a swap), and what a
``read_committed`` reader sees grow: valid events in ``driftline.observations``, rejected
messages in ``driftline.dlq``, windows and retrain requests. The summary gives the
versions served with the event each started at, the served accuracy before the drift,
right after it and at the end, and where to look.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
from confluent_kafka import OFFSET_END, Consumer, TopicPartition
from prometheus_client import CollectorRegistry

from driftline.config import Settings
from driftline.demo.closed_loop import ClosedLoopServing, ServingOptions, drive, serving_producer
from driftline.demo.loop_runner import LoopConfig, LoopRunner
from driftline.demo.scenarios import Scenario
from driftline.demo.serving import DemoSubscriber, register_first_versions
from driftline.demo.traffic import demo_scenarios, malformed_every
from driftline.kafka.clients import ClientConfig, KafkaTarget, read_committed_config
from driftline.kafka.topics import TopicNames
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
    rate: float = 400.0
    """Requests served per second and model (wall clock)."""
    label_delay: int = 200
    """Events between a prediction and its label."""
    window_events: int = 2_000
    """Events per printed accuracy line."""
    malformed_every: int = 500


@dataclass
class _Counts:
    produced_valid: int = 0
    produced_invalid: int = 0
    observed_events: int = 0
    observed_batches: int = 0
    dlq: int = 0
    windows: int = 0
    decisions: int = 0


def run_demo(
    settings: Settings, bootstrap: KafkaTarget, options: DemoOptions, say: Callable[[str], None] = print
) -> int:
    """Run the whole loop; returns 0 when every event was accounted for and a retrained version was served.

    ``bootstrap`` may be the process's ``ClientConfig``: the demo's own clients and subscribers use
    it; its ``driftline ingest|stream|trainer`` read ``[kafka]`` from ./driftline.toml and the environment.
    """
    # Every run gets its own topics, stream app id, groups and transactional ids: a rerun
    # starts as clean as the first.
    run_id = time.strftime("demo-%Y%m%d-%H%M%S", time.gmtime())
    base = options.metrics_port_base
    ports = [base + i if base else 0 for i in range(4)]
    runner = LoopRunner(
        LoopConfig(
            str(bootstrap),
            run_id,
            options.log_dir,
            metrics_ports=(ports[0], ports[1], ports[2]),
            client=bootstrap if isinstance(bootstrap, ClientConfig) else None,
        ),
        say,
        settings,
    )
    names = runner.names
    say(
        f"this run's topics start with {names.prefix!r}; "
        f"set DRIFTLINE_TOPICS_PREFIX={names.prefix} to inspect them afterwards"
    )
    runner.start()
    reader = _Reader(bootstrap, names)
    reader.say = say
    registry = CollectorRegistry()  # the demo's subscribers, as one serving process would expose them
    if base:
        serve_metrics(registry, ports[3])
        say(f"the demo's subscribers: metrics http://127.0.0.1:{ports[3]}/metrics")
    scenarios = demo_scenarios(options.events_per_model)
    counts = _Counts()
    subscribers: list[DemoSubscriber] = []
    servings: list[ClosedLoopServing] = []
    try:
        register_first_versions(runner, tuple(scenarios), say)
        subscribers = [DemoSubscriber(runner, m, say, registry) for m in scenarios]
        for subscriber in subscribers:
            subscriber.start()
        if not all(subscriber.wait_for_first(30) for subscriber in subscribers):
            say(
                "a model's first version never reached its subscriber; see the trainer's log:\n"
                + runner.processes[2].tail()
            )
            return 1
        servings = _serve(bootstrap, names, scenarios, subscribers, options, counts, reader, say)
        _wait_for_all(reader, counts, options.timeout_s, runner, subscribers, say)
    finally:
        runner.stop()
        reader.close()
    _summary(counts, names, runner, subscribers, servings, options.window_events, say)
    # ">=": a backlog left by an earlier, interrupted demo run is processed too.
    ok = counts.observed_events >= counts.produced_valid and counts.dlq >= counts.produced_invalid
    return 0 if ok and counts.decisions > 0 and any(len(sub.versions) >= 2 for sub in subscribers) else 1


def _serve(
    bootstrap: KafkaTarget,
    names: TopicNames,
    scenarios: dict[str, Scenario],
    subscribers: list[DemoSubscriber],
    options: DemoOptions,
    counts: _Counts,
    reader: _Reader,
    say: Callable[[str], None],
) -> list[ClosedLoopServing]:
    """Every model's requests, predicted by its subscriber's current model, paced in wall-clock time."""
    producer = serving_producer(bootstrap)
    servings = []
    for k, subscriber in enumerate(subscribers):
        opts = ServingOptions(rate=options.rate, label_delay=options.label_delay, seed=k)
        junk = malformed_every(options.malformed_every) if k == 0 else None  # one stream of junk for the run
        serving = ClosedLoopServing(
            producer, names, subscriber.model_id, scenarios[subscriber.model_id], subscriber, opts, malformed=junk
        )
        subscriber.position = lambda s=serving: s.i
        servings.append(serving)
    changes = ", ".join(
        f"{s.model_id} {s.scenario.name} at {s.scenario.changes[0]:,}" for s in servings if s.scenario.changes
    )
    say(
        f"serving {options.events_per_model:,} requests per model for {len(servings)} models closed-loop at "
        f"{options.rate:g}/s each: predictions by the served version (features inline), labels "
        f"{options.label_delay} events later, malformed messages mixed in; concept changes: {changes}"
    )
    window = _WindowLines(servings, options.window_events, say)
    last = [time.monotonic()]

    def tick(i: int) -> None:
        if time.monotonic() - last[0] >= 1.0:  # keep the counts fresh (and retrain requests shown)
            _tally(servings, counts)
            reader.read(counts, 0.05)
            last[0] = time.monotonic()
        if window.after(i):  # the pipeline's counts beside each accuracy line, not every second
            _tally(servings, counts)
            _progress(counts, say)

    drive(servings, on_event=tick)
    _tally(servings, counts)
    return servings


def _tally(servings: Sequence[ClosedLoopServing], counts: _Counts) -> None:
    counts.produced_valid = sum(s.result.produced_valid for s in servings)
    counts.produced_invalid = sum(s.result.produced_invalid for s in servings)


class _WindowLines:
    """Every ``every`` events: each model's served accuracy per version in that span."""

    def __init__(self, servings: Sequence[ClosedLoopServing], every: int, say: Callable[[str], None]) -> None:
        self.servings, self.every, self.say = servings, every, say

    def after(self, i: int) -> bool:
        """Print the line that ends at round ``i``, if one does; whether it did."""
        n = i + 1
        if self.every <= 0 or n % self.every:
            return False
        start = n - self.every
        parts, notes = [], []
        for s in self.servings:
            r = s.result
            versions = r.by_version(start, n)
            if not versions:
                continue
            served = ", ".join(
                f"{v} {acc:.3f}" + (f" x{k:,}" if len(versions) > 1 else "") for v, (k, acc) in versions.items()
            )
            parts.append(f"{s.model_id} {served} (oracle {r.accuracy(start, n)[2]:.3f})")
            notes += [f"{s.model_id}'s concept changes at {c:,}" for c in r.changes if start <= c < n]
        note = f"   <- {'; '.join(notes)}" if notes else ""
        self.say(f"  served accuracy, events {start:,}-{n:,}:  {'  |  '.join(parts)}{note}")
        return True


def _wait_for_all(
    reader: _Reader,
    counts: _Counts,
    timeout_s: float,
    runner: LoopRunner,
    subscribers: list[DemoSubscriber],
    say: Callable[[str], None],
) -> None:
    """Until every event is accounted for and a subscriber swapped to a retrained version, or the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reader.read(counts, 1.0)
        _progress(counts, say)
        caught_up = counts.observed_events >= counts.produced_valid and counts.dlq >= counts.produced_invalid
        if caught_up and counts.decisions > 0 and any(len(sub.versions) >= 2 for sub in subscribers):
            return
        gone = runner.exited()
        if gone is not None:
            say(f"{gone.command} exited early; its last log lines:\n" + gone.tail())
            return
    say(f"timed out after {timeout_s:.0f} s (see the logs below for why)")


_last_progress: list[str] = [""]


def _progress(counts: _Counts, say: Callable[[str], None]) -> None:
    """One progress line, printed only when something changed."""
    line = (
        f"  produced {counts.produced_valid + counts.produced_invalid:>8,}  |  "
        f"valid in observations {counts.observed_events:>8,} ({counts.observed_batches:,} batches)  |  "
        f"dlq {counts.dlq:>4,}  |  windows closed {counts.windows:>3}  |  retrain requests {counts.decisions}"
    )
    if line != _last_progress[0]:
        _last_progress[0] = line
        say(line)


def _summary(
    counts: _Counts,
    names: TopicNames,
    runner: LoopRunner,
    subscribers: list[DemoSubscriber],
    servings: list[ClosedLoopServing],
    span: int,
    say: Callable[[str], None],
) -> None:
    say("")
    say(f"valid events: produced {counts.produced_valid:,}, in {names.observations}: {counts.observed_events:,}")
    say(f"malformed:    produced {counts.produced_invalid:,}, in {names.dlq}: {counts.dlq:,} (original bytes kept)")
    say(f"windows:      {counts.windows} closed (scores vs thresholds in {names.windows})")
    say(f"decisions:    {counts.decisions} retrain requests on {names.control}")
    for subscriber in subscribers:
        say(
            f"serving:      the demo's {subscriber.model_id} subscriber served "
            f"{' -> '.join(subscriber.versions) or 'nothing'}"
        )
    say("served accuracy (every prediction made by the version serving then; the oracle knows each concept):")
    for serving in servings:
        _served_summary(serving, span, say)
    say("where to look:")
    say(f"  kcat -C -b <broker> -t {names.dlq} -f '%h\\n%s\\n' -e    # rejected messages, reasons in headers")
    say(f"  kcat -C -b <broker> -t {names.control} -e                # retrain requests with their evidence")
    say(f"  kcat -C -b <broker> -t {names.labeled} -e                # joined predictions, with model_version")
    say(f"  export DRIFTLINE_TOPICS_PREFIX={names.prefix}")
    say("  driftline models list | driftline models history churn   # versions, lineage, who did what")
    key_file = runner.env.get("DRIFTLINE_OPERATOR_KEY_FILE", "<your [operator] key_file>")
    say(f"  driftline models rollback churn --reason test --key-file {key_file}")
    say("      # move serving back, signed by the demo's operator key (a trainer that trusts it must run)")
    say("  driftline replay <events.jsonl> --windows                # the same policy, backtested on a file")
    for process in runner.processes:
        say(f"  {process.log_path}   # {process.command}'s structured log")
    say("  driftline kafka status | driftline kafka stop           # the local broker keeps running")


def _served_summary(serving: ClosedLoopServing, span: int, say: Callable[[str], None]) -> None:
    """Versions served with their first event; accuracy before the drift, right after, at the end."""
    r = serving.result
    starts = ", ".join(f"{v} from event {e:,}" for v, e in r.version_starts())
    say(f"  {r.model_id} ({r.scenario}): {starts}")
    end = r.served_events
    spans = [("at the end", max(0, end - span), end)]
    if r.changes:
        c = r.changes[0]
        spans = [("before the drift", max(0, c - span), c), ("right after it", c, min(end, c + span)), *spans]
    parts = []
    for name, a, b in spans:
        served, _online, oracle = r.accuracy(a, b)
        parts.append(f"{name} {served:.3f} (oracle {oracle:.3f}, events {a:,}-{b:,})")
    say("    " + "  |  ".join(parts))


class _Reader:
    """Counts what ingest committed since the demo started (read_committed, from the end)."""

    def __init__(self, bootstrap: KafkaTarget, names: TopicNames) -> None:
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
        self.say(
            f"  >> {doc['model_id']}: retrain requested ({doc['rule']}) for window "
            f"{_clock(doc['window']['start'])}-{_clock(doc['window']['end'])}: {'; '.join(doc['reasons'])[:160]}"
        )

    def close(self) -> None:
        self.consumer.close()


def _clock(ts: float) -> str:
    return time.strftime("%H:%M", time.gmtime(ts))
