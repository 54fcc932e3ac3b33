"""One closed-loop run's pipeline: its own topics and ids, the three driftline processes,
the first version registered, subscribers, and what the stream and trainer did.

Why one module: the demo, ``bench/closed_loop.py`` and the recovery test all run the
same real processes on a shared broker, and each run must be isolated from every other
(topic prefix, stream app id, ingest/trainer groups and transactional ids; with
``state_dir`` also the signing key, artifacts, stream data and subscriber cache). The
ids and paths live here, once; callers add only what differs (window sizes, ports).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition
from prometheus_client import CollectorRegistry

from driftline.config import Settings, load_settings
from driftline.consumers.ingest.settings import IngestSettings
from driftline.consumers.subscriber import ModelSubscriber, OnError, OnUpdate
from driftline.demo.closed_loop import ClosedLoopResult, ClosedLoopServing, ServingOptions, serving_producer
from driftline.demo.processes import DriftlineProcess
from driftline.demo.scenarios import Scenario, training_rows
from driftline.kafka.admin import KafkaAdmin, create_topics
from driftline.kafka.clients import ClientConfig, KafkaTarget, read_committed_config
from driftline.kafka.topics import TopicNames, topic_specs
from driftline.trust.keys import TrustedKeys, trusted_keys

__all__ = [
    "DEMO_OPERATOR",
    "JoinedTally",
    "LoopConfig",
    "LoopRunner",
    "ScenarioRun",
    "Target",
    "TrainerFacts",
    "demo_operator",
    "read_topic",
    "run_scenario",
]

Say = Callable[[str], None]


@dataclass(frozen=True)
class LoopConfig:
    """What one run needs to be told; everything else is derived from ``run_id``."""

    bootstrap: str
    run_id: str
    log_dir: Path
    state_dir: Path | None = None
    """Signing key, artifacts, stream data and subscriber cache go here (None: the configured ones)."""
    metrics_ports: tuple[int, int, int] = (0, 0, 0)
    """ingest, stream, trainer (0: a free port each)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """More ``DRIFTLINE_*`` settings for the processes."""
    event_partitions: int | None = None
    client: ClientConfig | None = None
    """How this runner's own clients connect (topics, serving producer, reads; None: PLAINTEXT)."""
    process_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Per command (``ingest``, ``stream``, ``trainer``, ``models``): more settings, e.g. its principal."""
    subscriber_client: ClientConfig | None = None
    """How the subscribers made here connect (None: as ``client``)."""


def _future_allowance(scenario: Scenario, options: ServingOptions) -> dict[str, str]:
    """Event time runs ahead of the clock when ``event_rate`` < ``rate`` (or ``rate`` is 0): let ingest
    accept the whole run's event time (``ingest.max_future_s``), twice over."""
    wall_s = scenario.n_events / options.rate if options.rate > 0 else 0.0
    ahead_s = scenario.n_events / options.event_rate - wall_s
    default = IngestSettings().max_future_s
    return {"DRIFTLINE_INGEST_MAX_FUTURE_S": str(int(2 * ahead_s))} if 2 * ahead_s > default else {}


def run_env(config: LoopConfig, base: Settings) -> dict[str, str]:
    """The ``DRIFTLINE_*`` variables that isolate this run from every other on the broker."""
    rid = config.run_id
    env = {
        "DRIFTLINE_TOPICS_PREFIX": f"{base.topics.prefix}{rid}.",
        "DRIFTLINE_STREAM_APP_ID": f"driftline-stream-{rid}",
        "DRIFTLINE_INGEST_GROUP_ID": f"driftline-ingest-{rid}",
        "DRIFTLINE_INGEST_TRANSACTIONAL_ID": f"driftline-ingest-{rid}",
        "DRIFTLINE_TRAINER_GROUP_ID": f"driftline-trainer-{rid}",
        "DRIFTLINE_TRAINER_TRANSACTIONAL_ID": f"driftline-trainer-{rid}",
        # Retrain as soon as drift is decided; production keeps [trainer] cooldown_s.
        "DRIFTLINE_TRAINER_COOLDOWN_S": "0",
    }
    if config.state_dir is not None:
        state = config.state_dir.resolve()
        env |= {
            "DRIFTLINE_TRAINER_SIGNING_KEY_FILE": str(state / "signing.key"),
            "DRIFTLINE_SUBSCRIBER_VERIFY_KEY_FILE": str(state / "signing.pub"),
            "DRIFTLINE_TRAINER_ARTIFACT_DIR": str(state / "artifacts"),
            "DRIFTLINE_STREAM_DATA_DIR": str(state / "stream"),
            "DRIFTLINE_SUBSCRIBER_CACHE_DIR": str(state / "subscriber"),
        }
    return env | dict(config.env)


DEMO_OPERATOR = "demo"
"""The operator name a run signs its ``driftline models`` commands with (when none is configured)."""


def demo_operator(config: LoopConfig, base: Settings, env: Mapping[str, str]) -> dict[str, str]:
    """An operator key for this run's commands, trusted by this run's trainer — unless one is configured.

    Commands must be signed (`driftline.trust.commands`), and a demo must work without setup:
    with no ``[operator] key_file`` configured, a ``demo`` key (operator and approver) is made
    in the run's state dir (else its log dir), and a ``stream`` key the stream signs its retrain
    requests with; the trainer reads both from an operators file."""
    if base.operator.key_file or "DRIFTLINE_OPERATOR_KEY_FILE" in env:
        return {}
    from driftline.trust.commands import load_operator_key, operator_line, write_operator_key

    where = (config.state_dir or config.log_dir).resolve()
    key_file = where / "operators" / f"{DEMO_OPERATOR}.key"
    key = load_operator_key(key_file) if key_file.exists() else write_operator_key(key_file)
    stream_file = where / "operators" / "stream.key"
    stream_key = load_operator_key(stream_file) if stream_file.exists() else write_operator_key(stream_file)
    operators_file = where / "operators.toml"
    lines = [
        operator_line(DEMO_OPERATOR, key.public_key(), ["operator", "approver"]),
        operator_line("stream", stream_key.public_key(), ["stream"]),
    ]
    operators_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {
        "DRIFTLINE_OPERATOR_KEY_FILE": str(key_file),
        "DRIFTLINE_GOVERNANCE_OPERATORS_FILE": str(operators_file),
        "DRIFTLINE_STREAM_CONTROL_KEY_FILE": str(stream_file),
    }


@dataclass
class TrainerFacts:
    """What the stream asked for and the trainer did for one model (from control and audit)."""

    retrain_requests: list[dict[str, Any]] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    """``model_version_created`` events: version, status, gate."""
    outcomes: dict[str, list[str]] = field(default_factory=dict)
    """request id → audit event types it caused."""
    promoted: list[str] = field(default_factory=list)

    @property
    def pending(self) -> list[str]:
        """Retrain request ids the trainer has not answered (yet)."""
        return [r["id"] for r in self.retrain_requests if r["id"] not in self.outcomes]

    def describe(self) -> str:
        made = ", ".join(f"{c['version']} {c['status']}" for c in self.created) or "none"
        return (
            f"retrain requests {len(self.retrain_requests)} (unanswered {len(self.pending)}); "
            f"versions created: {made}; promoted: {', '.join(self.promoted) or 'none'}"
        )


class LoopRunner:
    """A run's topics, ``driftline ingest|stream|trainer`` processes and model plumbing."""

    def __init__(self, config: LoopConfig, say: Say = print, settings: Settings | None = None) -> None:
        """``settings``: this process's (default: ``./driftline.toml`` and the environment);
        the run's own ids and paths (``run_env``) are laid over them for the processes."""
        self.config = config
        self.say = say
        self.settings = settings if settings is not None else load_settings()
        self.env = run_env(config, self.settings)
        self.env |= demo_operator(config, self.settings, self.env)
        self.names = TopicNames(prefix=self.env["DRIFTLINE_TOPICS_PREFIX"])
        self.bootstrap = config.bootstrap
        self.client: KafkaTarget = config.client if config.client is not None else config.bootstrap
        ports = config.metrics_ports

        def args(port: int) -> list[str]:
            return ["--bootstrap-servers", config.bootstrap, "--metrics-port", str(port)]

        self.processes = [
            DriftlineProcess(
                command, args(port), config.log_dir, env={**self.env, **config.process_env.get(command, {})}
            )
            for command, port in zip(("ingest", "stream", "trainer"), ports)
        ]
        self._subscribers: list[ModelSubscriber] = []

    # -- lifecycle ------------------------------------------------------------------

    def _setting(self, section: str, key: str) -> str:
        """A setting as the processes see it: this run's env override, else the settings."""
        name = f"DRIFTLINE_{section.upper()}_{key.upper()}"
        return self.env[name] if name in self.env else str(getattr(getattr(self.settings, section), key))

    def create_topics(self) -> Mapping[str, str]:
        partitions = self.config.event_partitions or self.settings.topics.event_partitions
        return create_topics(KafkaAdmin(self.client), topic_specs(self.names, event_partitions=partitions))

    def start(self) -> None:
        """Create the run's topics, then start ingest, stream and trainer."""
        outcome = self.create_topics()
        self.say(
            f"topics: {sum(v == 'created' for v in outcome.values())} created, "
            f"{sum(v == 'exists' for v in outcome.values())} already there  (broker {self.bootstrap}, "
            f"prefix {self.names.prefix!r})"
        )
        for process, port in zip(self.processes, self.config.metrics_ports):
            process.start()
            where = f", metrics http://127.0.0.1:{port}/metrics" if port else ""
            self.say(f"started driftline {process.command} (log: {process.log_path}{where})")

    def stop(self) -> dict[str, int | None]:
        """Stop the subscribers made here, then the processes; their exit codes."""
        for subscriber in self._subscribers:
            subscriber.stop()
        codes = {}
        for process in self.processes:
            codes[process.command] = process.stop()
            self.say(f"stopped {process.command} (exit {codes[process.command]})")
        return codes

    def delete_topics(self) -> None:
        with contextlib.suppress(Exception):
            KafkaAdmin(self.client).delete_topics(list(self.names.all()), timeout=30.0)

    def __enter__(self) -> LoopRunner:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def exited(self) -> DriftlineProcess | None:
        """The first process that is no longer running, if any."""
        return next((p for p in self.processes if not p.running), None)

    # -- models ---------------------------------------------------------------------

    def register(
        self,
        model_id: str,
        rows: Sequence[Mapping[str, Any]],
        reason: str = "first version",
        timeout_s: float = 120.0,
    ) -> tuple[bool, str]:
        """``driftline models register`` from ``rows`` through the trainer's gate; (ok, its last line)."""
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        rows_file = self.config.log_dir / f"training-rows-{model_id}.jsonl"
        rows_file.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
        cmd = [
            sys.executable,
            "-m",
            "driftline.cli",
            "models",
            "--bootstrap-servers",
            self.bootstrap,
            "register",
            model_id,
            "--from-file",
            str(rows_file),
            "--reason",
            reason,
            "--wait",
            str(timeout_s),
        ]
        done = subprocess.run(
            cmd,
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout_s + 60,
            env={**os.environ, **self.env, **self.config.process_env.get("models", {})},
        )
        lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
        return done.returncode == 0, lines[-1] if lines else done.stderr.strip()[-300:]

    def verify_keys(self) -> TrustedKeys:
        """The trainer's public keys, as this run's subscribers must trust them."""
        return trusted_keys(
            self._setting("subscriber", "verify_key"),
            self._setting("subscriber", "verify_key_file"),
            self._setting("trainer", "signing_key"),
        )

    def subscriber(
        self,
        model_id: str,
        on_update: OnUpdate | None = None,
        on_error: OnError | None = None,
        registry: CollectorRegistry | None = None,
    ) -> ModelSubscriber:
        """A ``ModelSubscriber`` of this run's model-updates (not started; stopped by ``stop``)."""
        cache_dir = f"{self._setting('subscriber', 'cache_dir')}/{self.config.run_id}"
        artifact_dir = self._setting("subscriber", "artifact_dir") or None
        subscriber = ModelSubscriber(
            model_id,
            self.bootstrap,
            self.names.model_updates,
            self.verify_keys(),
            cache_dir=cache_dir,
            artifact_dir=artifact_dir,
            on_update=on_update,
            on_error=on_error,
            registry=registry,
            client_config=self.config.subscriber_client or self.config.client,
        )
        self._subscribers.append(subscriber)
        return subscriber

    # -- what happened --------------------------------------------------------------

    def joined(self) -> JoinedTally:
        """A tally of what the stream joined onto this run's ``driftline.labeled`` (from the start)."""
        return JoinedTally(self.client, self.names.labeled)

    def wait_joined(self, tally: JoinedTally, expected: Mapping[str, int], timeout_s: float) -> bool:
        """Until the stream has joined ``expected[model]`` closed-loop events of each model."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            tally.poll(1.0)
            if all(tally.count(model) >= n for model, n in expected.items()):
                return True
            if self.exited() is not None:
                return False
        return False

    def trainer_facts(self, model_id: str) -> TrainerFacts:
        """Retrain requests for ``model_id`` on control, and what the audit says came of them."""
        facts = TrainerFacts()
        for doc in read_topic(self.client, self.names.control):
            if doc.get("type") == "retrain_requested" and doc.get("model_id") == model_id:
                facts.retrain_requests.append(doc)
        for doc in read_topic(self.client, self.names.audit):
            if doc.get("model_id") != model_id:
                continue
            kind = doc.get("type", "")
            if doc.get("request_id"):
                facts.outcomes.setdefault(str(doc["request_id"]), []).append(kind)
            if kind == "model_version_created":
                facts.created.append(
                    {
                        "version": doc.get("version"),
                        "status": doc.get("status"),
                        "bump": doc.get("bump"),
                        "request_id": doc.get("request_id"),
                        "gate": (doc.get("gate") or {}).get("reason"),
                        "metrics": doc.get("metrics"),
                        "champion_metrics": doc.get("champion_metrics"),
                    }
                )
            elif kind == "model_version_promoted":
                facts.promoted.append(str(doc.get("version")))
        return facts

    def wait_for_trainer(self, model_id: str, timeout_s: float) -> TrainerFacts:
        """Until every retrain request of ``model_id`` has an outcome in the audit (or the timeout)."""
        deadline = time.monotonic() + timeout_s
        facts = self.trainer_facts(model_id)
        while facts.pending and time.monotonic() < deadline:
            time.sleep(2.0)
            facts = self.trainer_facts(model_id)
        return facts


def read_topic(bootstrap: KafkaTarget, topic: str, timeout_s: float = 30.0) -> Iterator[dict[str, Any]]:
    """Every JSON value of ``topic`` up to its end now (``read_committed``); others skipped."""
    consumer = Consumer(
        read_committed_config(bootstrap, f"driftline-loop-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True})
    )
    try:
        partitions = sorted(consumer.list_topics(topic, timeout=10.0).topics[topic].partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10.0)[1] for p in partitions}
        todo = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, -2) for p in todo])
        deadline = time.monotonic() + timeout_s
        while todo and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        todo.discard(msg.partition())
                    continue
                if msg.offset() >= ends[msg.partition()] - 1:
                    todo.discard(msg.partition())
                try:
                    doc = orjson.loads(msg.value() or b"")
                except orjson.JSONDecodeError:
                    continue
                if isinstance(doc, dict):
                    yield doc
    finally:
        consumer.close()


class JoinedTally:
    """Which model version the stream saw for each closed-loop event (``<model>-<i>``) it joined.

    Why: the joined rows are what the stream measured and what the trainer trains on;
    their ``model_version`` shows the prediction events carried the version that served
    them, and their count shows the stream has caught up. Two bytes per event and model
    (an index into the versions seen), so a long run stays small.
    """

    def __init__(self, bootstrap: KafkaTarget, topic: str) -> None:
        self.topic = topic
        self.others = 0
        """Joined rows that are not closed-loop events (registration rows)."""
        self._seen: dict[str, np.ndarray] = {}
        self._names: dict[str, list[str | None]] = {}
        self._consumer = Consumer(read_committed_config(bootstrap, f"driftline-loop-{uuid.uuid4().hex[:8]}"))
        partitions = self._consumer.list_topics(topic, timeout=10.0).topics[topic].partitions
        self._consumer.assign([TopicPartition(topic, p, -2) for p in sorted(partitions)])

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self._consumer.consume(1000, timeout=0.1):
                if msg.error() is None:
                    with contextlib.suppress(orjson.JSONDecodeError):
                        self._add(orjson.loads(msg.value()))

    def _add(self, row: dict[str, Any]) -> None:
        model, event_id = str(row.get("model_id")), str(row.get("event_id"))
        head, _, tail = event_id.rpartition("-")
        if head != model or not tail.isdigit():
            self.others += 1
            return
        i, names = int(tail), self._names.setdefault(model, [])
        seen = self._seen.get(model)
        if seen is None or i >= len(seen):
            grown = np.full(max(2 * i + 1, 1024), -1, np.int16)
            if seen is not None:
                grown[: len(seen)] = seen
            seen = self._seen[model] = grown
        version = row.get("model_version")
        if version not in names:
            names.append(version)
        seen[i] = names.index(version)

    def count(self, model_id: str) -> int:
        """Distinct closed-loop events of ``model_id`` joined so far."""
        seen = self._seen.get(model_id)
        return 0 if seen is None else int((seen >= 0).sum())

    def mismatches(self, model_id: str, served: Callable[[int], str | None]) -> int:
        """Joined events whose ``model_version`` is not the one ``served(i)`` says made the prediction."""
        seen, names = self._seen.get(model_id), self._names.get(model_id, [])
        if seen is None:
            return 0
        return sum(1 for i in np.flatnonzero(seen >= 0).tolist() if names[seen[i]] != served(i))

    def close(self) -> None:
        self._consumer.close()


# -- one scenario, end to end ----------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One PASS/FAIL line of a run."""

    name: str
    passed: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'} {self.name}: {self.detail}"


@dataclass
class ScenarioRun:
    """What one closed-loop scenario run measured, and what the pipeline did meanwhile."""

    result: ClosedLoopResult
    facts: TrainerFacts
    swaps: list[tuple[str, int]]
    """(version, the event being served when the subscriber swapped to it)."""
    registered: str
    joined: int
    version_mismatches: int
    caught_up: bool
    log_dir: Path

    def new_versions(self) -> list[dict[str, Any]]:
        """Versions the trainer created after the registered first one."""
        return [c for c in self.facts.created if c.get("bump") != "initial"]

    def targets(self, max_recovery: int = 10_000, ratio: float = 0.95) -> list[Target]:
        """Recovery and mean-after-change per change; with no change, no new version."""
        out = []
        for change in self.result.change_reports():
            got = "never" if change.recovery is None else f"{change.recovery:,} events"
            out.append(
                Target(
                    f"recovery within {max_recovery:,} events of the change at {change.at:,}",
                    change.recovery is not None and change.recovery <= max_recovery,
                    got,
                )
            )
            out.append(
                Target(
                    f"mean served accuracy after the change at {change.at:,} >= {ratio} x oracle's",
                    change.served >= ratio * change.oracle,
                    f"{change.served:.3f} vs {ratio * change.oracle:.3f} "
                    f"(oracle {change.oracle:.3f}, online {change.online:.3f})",
                )
            )
        if not self.result.changes:
            made = self.new_versions()
            out.append(
                Target(
                    "no version published after the first",
                    not made and len(self.result.versions) <= 1,
                    f"versions created after the first: {len(made)}; served "
                    f"{' -> '.join(self.result.versions)}; retrain requests "
                    f"{len(self.facts.retrain_requests)}",
                )
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.result.to_dict(),
            "registered": self.registered,
            "swaps": self.swaps,
            "joined": self.joined,
            "version_mismatches": self.version_mismatches,
            "caught_up": self.caught_up,
            "log_dir": str(self.log_dir),
            "pipeline": {
                "retrain_requests": [
                    {k: r.get(k) for k in ("id", "rule", "reasons", "window")} for r in self.facts.retrain_requests
                ],
                "created": self.facts.created,
                "promoted": self.facts.promoted,
            },
            "targets": [vars(t) for t in self.targets()],
        }


def run_scenario(
    bootstrap: str,
    scenario: Scenario,
    options: ServingOptions,
    work_dir: Path,
    *,
    model_id: str | None = None,
    first_rows: int = 20_000,
    env: Mapping[str, str] | None = None,
    report_every: int = 5_000,
    settle_timeout_s: float = 180.0,
    keep_topics: bool = False,
    say: Say = print,
    run_id: str | None = None,
    client: ClientConfig | None = None,
    process_env: Mapping[str, Mapping[str, str]] | None = None,
    subscriber_client: ClientConfig | None = None,
) -> ScenarioRun:
    """Run ``scenario`` closed-loop through its own ingest/stream/trainer processes.

    Registers 1.0.0 on ``first_rows`` concept-A rows, serves every event with the
    subscriber's current model, then waits until the stream has joined every event and
    the trainer has answered every retrain request (at most ``settle_timeout_s`` each).
    On a secured cluster: ``client`` for this function's own clients, ``process_env`` for
    each process's principal, ``subscriber_client`` for the subscriber's (``LoopConfig``).
    """
    model = model_id or scenario.name
    run_id = run_id or f"cl-{scenario.name.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
    config = LoopConfig(
        bootstrap,
        run_id,
        work_dir / "logs",
        state_dir=work_dir / "state",
        env=_future_allowance(scenario, options) | dict(env or {}),
        client=client,
        process_env=dict(process_env or {}),
        subscriber_client=subscriber_client,
    )
    runner = LoopRunner(config, say)
    swaps: list[tuple[str, int]] = []
    serving: ClosedLoopServing | None = None

    def on_update(_model: str, version: str, _m: Any, event: dict[str, Any]) -> None:
        at = serving.i if serving is not None else 0
        swaps.append((version, at))
        say(
            f"  >> {model} now serving {version} at event {at:,} "
            f"({event.get('type')} by {event.get('actor')}: {str(event.get('reason'))[:100]})"
        )

    runner.start()
    tally: JoinedTally | None = None
    try:
        ok, registered = runner.register(
            model,
            training_rows(first_rows),
            reason=f"first version: {first_rows:,} rows of concept A",
        )
        say(f"registered {model}: {registered}")
        if not ok:
            raise RuntimeError(f"registering {model} failed: {registered}")
        subscriber = runner.subscriber(model, on_update=on_update)
        subscriber.start()
        if not subscriber.wait_for("1.0.0", 60.0):
            raise RuntimeError(f"{model}: the subscriber never loaded 1.0.0")
        tally = runner.joined()
        producer = serving_producer(runner.client)
        serving = ClosedLoopServing(producer, runner.names, model, scenario, subscriber, options)
        say(
            f"serving {scenario.n_events:,} events of {scenario.name} closed-loop at {options.rate:g} ev/s "
            f"(event time {options.event_rate:g} ev/s, labels {options.label_delay} events late; "
            f"changes at {', '.join(f'{c:,}' for c in scenario.changes) or 'none'})"
        )
        serving.run(on_event=_progress(serving, report_every, say))
        result = serving.result
        caught_up = runner.wait_joined(tally, {model: result.served_events}, settle_timeout_s)
        facts = runner.wait_for_trainer(model, settle_timeout_s)
        joined = tally.count(model)
        mismatches = tally.mismatches(model, result.version_of)
        if not caught_up:
            gone = runner.exited()
            say(
                f"the stream joined {joined:,} of {result.served_events:,} events"
                + (f"; {gone.command} exited:\n{gone.tail()}" if gone else "")
            )
        return ScenarioRun(result, facts, swaps, registered, joined, mismatches, caught_up, config.log_dir)
    finally:
        if tally is not None:
            tally.close()
        runner.stop()
        if not keep_topics:
            runner.delete_topics()


def _progress(serving: ClosedLoopServing, every: int, say: Say) -> Callable[[int], None]:
    """A structured progress line every ``every`` events: version, last block's accuracies, rate."""
    started = time.monotonic()

    def on_event(i: int) -> None:
        n = i + 1
        if every <= 0 or n % every:
            return
        r = serving.result
        served, online, oracle = r.accuracy(n - min(every, r.block), n)
        say(
            f"  [{r.scenario}] event {n:>9,}/{r.n_events:,}  serving {r.version_of(i)}  last {r.block:,}: "
            f"served {served:.3f} online {online:.3f} oracle {oracle:.3f}  "
            f"({n / max(time.monotonic() - started, 1e-9):.0f} ev/s)"
        )

    return on_event
