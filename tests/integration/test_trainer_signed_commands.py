"""Signed governance commands against a real broker: who sent a command is proven, not claimed."""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from driftline.consumers.training.config import GovernanceSettings
from driftline.schemas.registry import ModelCommand
from driftline.trust.commands import sign_command
from driftline.trust.keys import Ed25519PrivateKey, public_hex

from .trainer_support import (
    OPERATOR_KEYS,
    OPERATORS,
    labeled_rows,
    produce_rows,
    request,
    settings,
    trainer_thread,
    wait_state,
)

ANA = OPERATOR_KEYS["ana"]


def _approve(command_id: str, actor: str = "ana", at: float | None = None) -> dict[str, Any]:
    cmd = ModelCommand("approve_version", "sg", actor, "reviewed", version="1.0.0", id=command_id)
    return {**cmd.to_dict(), "at": time.time() if at is None else at}


def _refusals(state: Any) -> dict[str, dict[str, Any]]:
    return {e["code"]: e for e in state.audit.get("sg", []) if e["type"] == "command_refused" and e.get("code")}


def test_only_a_properly_signed_approval_promotes_and_every_other_is_refused_and_recorded(
    kafka_bootstrap, topic_names, produce, tmp_path
):
    produce_rows(produce, topic_names.labeled, labeled_rows("sg", 400))
    governance = GovernanceSettings(auto_deploy=(), operators=OPERATORS)  # even a first version waits for a human
    same = settings()
    genuine_id = os.urandom(16).hex()
    genuine = orjson.dumps(sign_command(_approve(genuine_id), ANA))
    with trainer_thread(kafka_bootstrap, topic_names, tmp_path, same, governance) as trainer:
        produce(topic_names.control, [request("sg")])
        wait_state(kafka_bootstrap, topic_names, lambda s: "1.0.0" in s.taken("sg"))
        stranger = Ed25519PrivateKey.generate()
        produce(
            topic_names.control,
            [
                ("sg", orjson.dumps(_approve(genuine_id))),  # unsigned, and it takes the genuine command's id
                ("sg", orjson.dumps(sign_command(_approve(os.urandom(16).hex()), stranger))),
                ("sg", orjson.dumps(sign_command(_approve(os.urandom(16).hex(), actor="trainer"), ANA))),
                ("sg", orjson.dumps(sign_command(_approve(os.urandom(16).hex(), actor="ops"), ANA))),
                ("sg", orjson.dumps(sign_command(_approve(os.urandom(16).hex(), at=time.time() - 7200), ANA))),
                ("sg", orjson.dumps({**orjson.loads(genuine), "reason": "edited after signing"})),
            ],
        )
        state = wait_state(kafka_bootstrap, topic_names, lambda s: len(_refusals(s)) >= 6)
        assert state.version("sg", "1.0.0").status == "pending_approval" and state.serving_version("sg") is None
        refused = _refusals(state)
        assert set(refused) == {
            "unsigned",
            "unknown_key",
            "reserved_actor",
            "actor_mismatch",
            "too_old",
            "bad_signature",
        }
        # the actor is the verified key's name, never the claim: unknown senders have none
        assert {code: e["actor"] for code, e in refused.items()} == {
            "unsigned": "",
            "unknown_key": "",
            "reserved_actor": "",
            "bad_signature": "",
            "actor_mismatch": "ana",
            "too_old": "ana",
        }
        assert refused["unsigned"]["claimed_actor"] == "ana" and refused["reserved_actor"]["claimed_actor"] == "trainer"
        assert "[operator] key_file" in refused["unsigned"]["reason"]

        produce(topic_names.control, [("sg", genuine)])  # the forged copy did not use up its id
        state = wait_state(kafka_bootstrap, topic_names, lambda s: s.serving_version("sg") == "1.0.0")
        approved = [e for e in state.audit["sg"] if e["type"] == "model_version_approved"]
        moved = [e for e in state.audit["sg"] if e["type"] == "model_version_promoted"]
        assert [(e["actor"], e["command_id"]) for e in approved] == [("ana", genuine_id)]
        assert moved[-1]["actor"] == "ana" and state.version("sg", "1.0.0").status_by == "ana"

        produce(topic_names.control, [("sg", genuine)])  # the very same signed bytes again
        state = wait_state(kafka_bootstrap, topic_names, lambda s: "replayed" in _refusals(s))
        count = trainer.metrics_registry.get_sample_value  # type: ignore[attr-defined]
        assert count("driftline_trainer_commands_unverified_total", {"reason": "replayed"}) == 1.0
    with trainer_thread(kafka_bootstrap, topic_names, tmp_path, same, governance):  # a restart remembers the nonce
        produce(topic_names.control, [("sg", genuine)])
        state = wait_state(
            kafka_bootstrap,
            topic_names,
            lambda s: sum(e.get("code") == "replayed" for e in s.audit.get("sg", [])) == 2,
        )
    assert [e["type"] for e in state.audit["sg"]].count("model_version_approved") == 1


def test_with_a_stream_key_configured_only_signed_retrain_requests_train(
    kafka_bootstrap, topic_names, produce, tmp_path
):
    produce_rows(produce, topic_names.labeled, labeled_rows("sr", 400))
    stream_key = Ed25519PrivateKey.generate()
    operators = {**OPERATORS, "stream": {"key": public_hex(stream_key.public_key()), "roles": ["stream"]}}
    with trainer_thread(kafka_bootstrap, topic_names, tmp_path, governance=GovernanceSettings(operators=operators)):
        key, unsigned = request("sr", 0.0)
        by_operator = orjson.dumps(sign_command(orjson.loads(request("sr", 60.0)[1]), ANA))
        signed = orjson.dumps(sign_command(orjson.loads(request("sr", 120.0)[1]), stream_key))
        produce(topic_names.control, [(key, unsigned), (key, by_operator), (key, signed)])
        state = wait_state(kafka_bootstrap, topic_names, lambda s: s.serving_version("sr") == "1.0.0")
    refused = {e["request_id" if "request_id" in e else "command_id"]: e for e in state.audit["sr"]}
    assert refused["sr:0:drift"]["code"] == "unsigned"
    assert (refused["sr:60:drift"]["code"], refused["sr:60:drift"]["actor"]) == ("not_allowed", "ana")
    created = [e for e in state.audit["sr"] if e["type"] == "model_version_created"]
    assert [e["request_id"] for e in created] == ["sr:120:drift"]
