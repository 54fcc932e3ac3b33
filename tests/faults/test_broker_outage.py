"""The broker goes away for a minute mid-run and comes back: nothing restarts, nothing is lost or doubled.

ingest, the stream worker, the trainer and a subscriber run against a broker of this
test's own; it is stopped while raw events are in flight and started again after
``OUTAGE_S`` seconds. Before, a timed-out ``commit_transaction`` ended ingest and the
trainer, and the subscriber's follow thread died; a restart was needed to go on.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from driftline.commands.ingest import ingest_topics
from driftline.consumers.ingest.metrics import IngestMetrics
from driftline.consumers.ingest.service import Ingest
from driftline.consumers.ingest.settings import IngestSettings
from driftline.consumers.subscriber import ModelSubscriber
from driftline.errors import BrokerUnavailable
from driftline.kafka.admin import KafkaAdmin, create_topics
from driftline.kafka.local_broker import LocalBroker
from driftline.kafka.topics import TopicNames, topic_specs
from driftline.testing.kafka import broker_unavailable, consume_all_records, produce_records, start_on_free_ports

from ..integration.stream_support import (
    closing_event,
    feature_events,
    stream_process,
    wait_for_members,
    wait_for_window_tally,
    workers,
)
from ..integration.trainer_support import (
    PUBLIC_KEY,
    labeled_rows,
    load_state,
    produce_rows,
    request,
    settings,
    trainer_thread,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

OUTAGE_S = float(os.environ.get("DRIFTLINE_FAULT_OUTAGE_S", "60"))
NAMES = TopicNames(prefix="outage-loop.")
LOOSE = {"accuracy": {"abs": 0.05}}  # the second version is a patch on the same rule: let it deploy


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker of this test's own: the test stops and starts it."""
    try:
        broker = start_on_free_ports(
            lambda attempt, ports: LocalBroker(tmp_path / f"broker-{attempt}", *ports, die_with_parent=True)
        )
    except BrokerUnavailable as exc:
        broker_unavailable(f"local broker unavailable: {exc}")
    try:
        yield broker
    finally:
        broker.stop()


def _ingest_thread(bootstrap: str, stop: threading.Event, failures: list[BaseException]) -> threading.Thread:
    settings = IngestSettings(group_id="outage-ingest", transactional_id="outage-ingest-0", batch_max_ms=100)
    ingest = Ingest(bootstrap, ingest_topics(NAMES), settings, IngestMetrics(CollectorRegistry()))

    def run() -> None:
        try:
            ingest.run(stop)
        except BaseException as exc:
            failures.append(exc)
            raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _raw(events: list[dict]) -> list[tuple[bytes, bytes]]:
    return [(e["model_id"].encode(), orjson.dumps(e)) for e in events]


def _audit(bootstrap: str) -> list[tuple[str, str | None, str | None]]:
    state = load_state(bootstrap, NAMES)
    return [(e["type"], e.get("version"), e.get("reason")) for es in state.audit.values() for e in es]


def test_a_minute_without_the_broker_is_waited_out_by_every_process(own_broker: LocalBroker, tmp_path: Path) -> None:
    bootstrap = own_broker.bootstrap_servers
    create_topics(KafkaAdmin(bootstrap), topic_specs(NAMES, event_partitions=2))
    produce = partial(produce_records, bootstrap)
    consume_all = partial(consume_all_records, bootstrap)
    stop, failures = threading.Event(), []
    ingest = _ingest_thread(bootstrap, stop, failures)
    stream = stream_process(bootstrap, NAMES.prefix, "outage-stream", tmp_path / "stream", log=tmp_path / "stream.log")
    sub = ModelSubscriber(
        "svc", bootstrap, NAMES.model_updates, PUBLIC_KEY, cache_dir=tmp_path / "cache", max_backoff_s=2.0
    ).start()
    try:
        with workers(stream), trainer_thread(bootstrap, NAMES, tmp_path, settings(gate_non_regression=LOOSE)):
            produce_rows(produce, NAMES.labeled, labeled_rows("svc", 400))
            produce(NAMES.control, [request("svc", 0.0)])
            assert sub.wait_for("1.0.0", 180), f"the first version was not served; audit: {_audit(bootstrap)}"
            wait_for_members(bootstrap, "outage-stream", 1, timeout=90)  # the worker is up and following
            produce(NAMES.features, _raw(feature_events("o", 3000)))  # in flight when the broker stops
            own_broker.stop()
            time.sleep(OUTAGE_S)
            own_broker.start(timeout=90)
            produce(NAMES.features, _raw([*feature_events("o", 3000, start=3000), closing_event("o")]))
            produce_rows(produce, NAMES.labeled, labeled_rows("svc", 600, start=400, seed=3))
            produce(NAMES.control, [request("svc", 60.0)])
            served = sub.wait_for("1.0.1", 150)
            per_model, conflicts = wait_for_window_tally(consume_all, NAMES.windows, {"o": 6000}, timeout=120)
            stream_alive = stream.poll() is None
        audit = [
            (e["type"], e.get("version"), e.get("reason"))
            for es in load_state(bootstrap, NAMES).audit.values()
            for e in es
        ]
        assert ingest.is_alive() and not failures, failures
        assert stream_alive, (tmp_path / "stream.log").read_text()[-3000:]
        assert per_model == {"o": 6000} and conflicts == [], (per_model, conflicts)  # each event once
        assert served, audit
        moves = [orjson.loads(r.value) for r in consume_all(NAMES.model_updates, min_count=2) if r.value]
        assert [(m["version"], m["sequence"]) for m in moves] == [("1.0.0", 1), ("1.0.1", 2)]
        assert sub.version == "1.0.1"
    finally:
        stop.set()
        ingest.join(30)
        sub.stop()
