"""Client-side writes for the CLI, tests and demos: commands, registration rows, outcomes.

Only the trainer writes the registry; everyone else sends a command to
``driftline.control`` (keyed by ``model_id``, so one model's commands stay in order) and
may wait for the trainer's answer in the audit log, matched by the command id.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer

from driftline.errors import KafkaAccessDenied, KafkaOperationFailed
from driftline.kafka.clients import KafkaTarget, as_client_config, producer_config, transactional_producer_config
from driftline.kafka.failures import explain
from driftline.kafka.reading import read_topic
from driftline.schemas.registry import ModelCommand, OffsetRange
from driftline.trust.commands import sign_command
from driftline.trust.keys import Ed25519PrivateKey

__all__ = ["send_command", "send_json", "wait_for_outcome", "write_training_rows"]


def send_json(bootstrap: KafkaTarget, topic: str, key: str, value: dict[str, Any]) -> None:
    """Produce one JSON record and wait for its delivery."""
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            errors.append(err)

    producer = Producer(producer_config(bootstrap, **{"enable.idempotence": True}))
    producer.produce(topic, key=key.encode(), value=orjson.dumps(value), on_delivery=on_delivery)
    try:
        unsent = producer.flush(30)
    except SystemError as exc:  # a fatal error (PID refused): confluent-kafka's exception rides on it
        cause = exc.__cause__
        if not isinstance(cause, KafkaException):
            raise
        unsent, errors = 1, [cause.args[0]]
    if unsent or errors:
        if errors and (check := explain(errors[0].name(), errors[0].str(), as_client_config(bootstrap).username)):
            raise KafkaAccessDenied(f"produce to {topic}", errors[0].name(), errors[0].str(), check)
        raise KafkaOperationFailed(f"produce to {topic}", "DELIVERY", errors[0].str() if errors else "timed out")


def send_command(
    bootstrap: KafkaTarget, control_topic: str, cmd: ModelCommand, key: Ed25519PrivateKey | None = None
) -> None:
    """Send ``cmd``, signed with the operator's ``key`` (the trainer refuses an unsigned command:
    `driftline.trust.commands`; unsigned only to test that refusal)."""
    doc = cmd.to_dict()
    send_json(bootstrap, control_topic, cmd.model_id, doc if key is None else sign_command(doc, key))


def write_training_rows(
    bootstrap: KafkaTarget, topic: str, model_id: str, rows: Sequence[dict[str, Any]]
) -> list[OffsetRange]:
    """Write registration rows to ``driftline.labeled`` in one transaction; return their offset ranges.

    Each row needs ``features`` and ``label``; ``ts`` defaults to now (+1 µs per row, so the
    file's order is the time order) and ``event_id`` to a fresh unique id.
    """
    base_ts, batch = time.time(), uuid.uuid4().hex[:12]
    producer = Producer(transactional_producer_config(bootstrap, f"driftline-register-{batch}"))
    producer.init_transactions(30)
    producer.begin_transaction()
    seen: dict[int, list[int]] = {}

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is None:
            seen.setdefault(msg.partition(), []).append(msg.offset())

    for i, row in enumerate(rows):
        if "features" not in row or "label" not in row:
            raise KafkaOperationFailed("register", "INVALID_ROW", f"row {i} needs 'features' and 'label'")
        joined = {
            "model_id": model_id,
            "event_id": str(row.get("event_id", f"register-{batch}-{i}")),
            "ts": float(row.get("ts", base_ts + i * 1e-6)),
            "model_version": None,
            "prediction": None,
            "score": None,
            "label": row["label"],
            "features": row["features"],
            "scores": None,
            "label_ts": None,
        }
        while True:
            try:
                producer.produce(topic, key=model_id.encode(), value=orjson.dumps(joined), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(60)
    producer.commit_transaction(60)
    if sum(len(v) for v in seen.values()) != len(rows):
        raise KafkaOperationFailed("register", "DELIVERY", "not every row was delivered")
    return [OffsetRange(p, min(offsets), max(offsets) + 1) for p, offsets in sorted(seen.items())]


def wait_for_outcome(
    bootstrap: KafkaTarget, audit_topic: str, command_id: str, timeout: float
) -> list[dict[str, Any]] | None:
    """The audit records the trainer wrote for ``command_id``, or None if none within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [orjson.loads(v) for _k, v in read_topic(bootstrap, audit_topic) if v]
        found = [e for e in found if command_id in (e.get("command_id"), e.get("request_id"))]
        if found:
            return found
        time.sleep(0.5)
    return None
