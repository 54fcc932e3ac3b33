"""A subscriber outlives its broker: started offline it serves its cache and keeps retrying,
then follows once the broker is there; a broker that goes away and comes back is followed again.

An edge device boots when it boots. Before, the follow thread died for good when the broker
was down at its start (``list_topics`` raised), so such a device never updated again.
"""

from __future__ import annotations

import time

import orjson
import pytest
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from driftline.consumers.registry.artifacts import pack_model
from driftline.consumers.subscriber import ModelSubscriber
from driftline.errors import BrokerUnavailable
from driftline.kafka.admin import KafkaAdmin, create_topics
from driftline.kafka.clients import producer_config
from driftline.kafka.local_broker import LocalBroker
from driftline.kafka.topics import TopicNames, topic_specs
from driftline.testing.kafka import broker_unavailable, free_ports
from driftline.testing.pointers import signed_move
from driftline.testing.waiting import eventually
from driftline.trust.keys import Ed25519PrivateKey

pytestmark = [pytest.mark.kafka]

KEY = Ed25519PrivateKey.generate()
NAMES = TopicNames(prefix="outage.")


def _start(broker: LocalBroker) -> None:
    try:
        broker.start(timeout=90)
    except BrokerUnavailable as exc:
        broker_unavailable(f"local broker unavailable: {exc}")


def _publish(bootstrap: str, version: str, sequence: int) -> None:
    artifact = pack_model({"version": version}, "edge", version, KEY).to_dict()
    move = signed_move(KEY, "edge", version, sequence, artifact=artifact)
    producer = Producer(producer_config(bootstrap))
    producer.produce(NAMES.model_updates, key=b"edge", value=orjson.dumps(move))
    assert producer.flush(30) == 0


def test_a_subscriber_started_with_the_broker_down_follows_once_it_is_up_and_after_a_restart(tmp_path) -> None:
    port, controller_port = free_ports(2)
    broker = LocalBroker(tmp_path / "broker", port, controller_port, die_with_parent=True)
    bootstrap = f"127.0.0.1:{port}"
    registry = CollectorRegistry()
    sub = ModelSubscriber(
        "edge",
        bootstrap,
        NAMES.model_updates,
        KEY.public_key(),
        cache_dir=tmp_path / "cache",
        registry=registry,
        max_backoff_s=2.0,
    ).start()

    def restarts() -> float:
        return registry.get_sample_value("driftline_subscriber_follow_restarts_total", {"model_id": "edge"}) or 0.0

    try:
        assert eventually(lambda: restarts() >= 1, 30, interval=0.2), "the follow loop should fail, count it, and retry"
        assert sub._thread is not None and sub._thread.is_alive()
        _start(broker)
        create_topics(KafkaAdmin(bootstrap), [s for s in topic_specs(NAMES) if s.name == NAMES.model_updates])
        _publish(bootstrap, "1.0.0", 1)
        assert sub.wait_for("1.0.0", 60), "the subscriber should follow once the broker is there"
        broker.stop()
        time.sleep(3)  # down: the subscriber keeps serving what it has
        assert sub.current is not None and sub.current.model == {"version": "1.0.0"}
        _start(broker)
        _publish(bootstrap, "1.1.0", 2)
        assert sub.wait_for("1.1.0", 90), "the subscriber should follow again after the broker came back"
    finally:
        sub.stop()
        broker.stop()
