"""The stream's model-updates reader follows only committed pointer moves.

The trainer moves a model's pointer inside a Kafka transaction; if it dies before the
commit, the aborted record must never become the version the stream scores against.
"""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from confluent_kafka import Producer

from driftline.kafka.clients import transactional_producer_config
from driftline.stream.model_updates import ModelUpdatesReader, ServingVersions
from driftline.testing.pointers import signed_move
from driftline.trust.keys import Ed25519PrivateKey, TrustedKeys

pytestmark = [pytest.mark.kafka]

KEY = Ed25519PrivateKey.generate()


def _pointer(version: str, sequence: int) -> bytes:
    return orjson.dumps(signed_move(KEY, "churn", version, sequence))


def test_an_aborted_pointer_move_is_never_served(kafka_bootstrap, topic_names) -> None:
    producer = Producer(transactional_producer_config(kafka_bootstrap, f"test-trainer-{uuid.uuid4().hex[:8]}"))
    producer.init_transactions(30)
    for sequence, (version, commit) in enumerate([("1.0.0", True), ("9.9.9", False)], start=1):
        producer.begin_transaction()
        producer.produce(topic_names.model_updates, key=b"churn", value=_pointer(version, sequence))
        producer.flush(30)
        (producer.commit_transaction if commit else producer.abort_transaction)(30)

    serving = ServingVersions(TrustedKeys([KEY.public_key()]))
    outcomes: list[str] = []
    reader = ModelUpdatesReader(kafka_bootstrap, topic_names.model_updates, serving, on_outcome=outcomes.append)

    async def read_until_caught_up() -> None:
        stopped = asyncio.Event()
        task = asyncio.ensure_future(reader.run(stopped))
        await asyncio.wait_for(reader.ready.wait(), 30)
        await asyncio.sleep(1.0)  # an uncommitted record would be delivered by now
        stopped.set()
        await asyncio.wait_for(task, 10)

    asyncio.run(read_until_caught_up())
    assert serving.get("churn").version == "1.0.0"
    assert outcomes == ["applied"]
