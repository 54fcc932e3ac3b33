"""Poison control records: the trainer copies each to the DLQ with why, commits past it and carries on."""

from __future__ import annotations

import time

import orjson

from driftline.consumers.trainer.client import wait_for_outcome
from driftline.kafka.dlq import parse_dlq_headers
from driftline.schemas.registry import ModelCommand
from driftline.trust.commands import sign_command

from .trainer_support import OPERATOR_KEYS, labeled_rows, produce_rows, request, send_signed, trainer_thread, wait_state

POISON = [
    ("p", b"{not json"),
    ("p", b"[1, 2, 3]"),
    (
        "p",
        orjson.dumps(
            {"type": "register_model", "model_id": "p", "actor": "x", "reason": "r", "id": "c1", "training_set": [1, 2]}
        ),
    ),
    (
        "p",
        orjson.dumps(
            {"type": "approve_version", "model_id": ["p"], "actor": "x", "reason": "r", "id": "c2", "version": "1.0.0"}
        ),
    ),
    (
        "p",
        orjson.dumps(
            {
                "type": "promote_version",
                "model_id": "p",
                "actor": "x",
                "reason": "r",
                "id": "c3",
                "version": {"major": 1},
            }
        ),
    ),
    (
        "p",
        orjson.dumps(  # signed by an operator (else refused as unsigned first), broken past the checks
            sign_command(
                {
                    "type": "register_model",
                    "model_id": "p",
                    "actor": "ana",
                    "reason": "r",
                    "id": "c4" * 16,
                    "at": time.time(),
                    "training_set": {"topic": None, "ranges": ["not a range"]},
                },
                OPERATOR_KEYS["ana"],
            )
        ),
    ),
]


def test_poison_control_records_go_to_the_dlq_and_the_next_command_is_applied(
    kafka_bootstrap, topic_names, produce, consume_all, tmp_path
):
    produce_rows(produce, topic_names.labeled, labeled_rows("p", 600))
    with trainer_thread(kafka_bootstrap, topic_names, tmp_path) as trainer:
        produce(topic_names.control, POISON)
        produce(topic_names.control, [request("p")])
        wait_state(kafka_bootstrap, topic_names, lambda s: s.serving_version("p") == "1.0.0")
        cmd = ModelCommand("pause_model", "p", "ana", "after the poison")
        send_signed(kafka_bootstrap, topic_names, cmd)
        assert [e["type"] for e in wait_for_outcome(kafka_bootstrap, topic_names.audit, cmd.id, 30)] == ["model_paused"]
        refused = trainer.metrics_registry.get_sample_value  # type: ignore[attr-defined]
        total = sum(
            refused("driftline_trainer_records_refused_total", {"reason": r}) or 0.0
            for r in ("json", "type", "invalid", "processing_error", "required", "pattern")
        )
    dlq = consume_all(topic_names.dlq, min_count=len(POISON))
    assert sorted(r.value for r in dlq) == sorted(value for _, value in POISON)  # the original bytes
    reasons = {r.value: parse_dlq_headers(r.headers) for r in dlq}
    assert all(h["source.topic"] == topic_names.control for h in reasons.values())
    assert reasons[POISON[3][1]]["error.field"] == "model_id" and reasons[POISON[4][1]]["error.field"] == "version"
    assert reasons[POISON[2][1]]["error.field"] == "training_set"
    assert total == len(POISON)
