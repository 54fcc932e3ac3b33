"""Idempotence, approvals and rollback against a real broker."""

from __future__ import annotations

from driftline.consumers.subscriber.client import ModelSubscriber
from driftline.consumers.trainer.client import wait_for_outcome
from driftline.schemas.registry import ModelCommand
from driftline.trust.keys import TrustedKeys
from driftline.trust.pointer_moves import verify_pointer

from .trainer_support import (
    PUBLIC_KEY,
    labeled_rows,
    produce_rows,
    request,
    send_signed,
    settings,
    trainer_thread,
    values,
    wait_state,
)

LOOSE = {"accuracy": {"abs": 0.05}}


def test_duplicate_requests_yield_one_version(kafka_bootstrap, topic_names, produce, consume_all, tmp_path):
    produce_rows(produce, topic_names.labeled, labeled_rows("dup", 500))
    same = settings()
    with trainer_thread(kafka_bootstrap, topic_names, tmp_path, same):
        produce(topic_names.control, [request("dup")] * 3)
        state = wait_state(kafka_bootstrap, topic_names, lambda s: len(s.audit.get("dup", [])) >= 4)
    with trainer_thread(kafka_bootstrap, topic_names, tmp_path, same):  # a restarted trainer remembers (audit log)
        produce(topic_names.control, [request("dup")])
        state = wait_state(kafka_bootstrap, topic_names, lambda s: len(s.audit.get("dup", [])) >= 5)
    assert state.taken("dup") == {"1.0.0"}
    skipped = [e for e in state.audit["dup"] if e["type"] == "training_skipped"]
    assert [e["reason"] for e in skipped] == ["duplicate"] * 3
    assert len(values(consume_all, topic_names.registry)) == 1


def test_a_request_during_the_cooldown_is_deferred_and_handled_after_it(
    kafka_bootstrap, topic_names, produce, tmp_path
):
    produce_rows(produce, topic_names.labeled, labeled_rows("cool", 300))
    with trainer_thread(kafka_bootstrap, topic_names, tmp_path, settings(cooldown_s=4.0, recheck_s=0.5)):
        produce(topic_names.control, [request("cool", 0.0), request("cool", 60.0)])
        state = wait_state(kafka_bootstrap, topic_names, lambda s: len(s.taken("cool")) >= 2)
    assert state.taken("cool") == {"1.0.0", "1.0.1"}
    kinds = [(e["type"], e.get("request_id")) for e in state.audit["cool"]]
    deferred = next(e for e in state.audit["cool"] if e["type"] == "retrain_deferred")
    assert deferred["reason"].startswith("cooldown: last version") and deferred["request_id"] == "cool:60:drift"
    created = [e for e in state.audit["cool"] if e["type"] == "model_version_created"]
    assert [e["request_id"] for e in created] == ["cool:0:drift", "cool:60:drift"]
    assert created[1]["at"] - created[0]["at"] >= 4.0  # trained once the cooldown was over, not before
    assert "cool" not in state.pending_retrains, kinds


def test_major_bump_waits_for_approval_then_serves(kafka_bootstrap, topic_names, produce, tmp_path):
    produce_rows(produce, topic_names.labeled, labeled_rows("ap", 600))
    sub = ModelSubscriber(
        "ap", kafka_bootstrap, topic_names.model_updates, PUBLIC_KEY, cache_dir=tmp_path / "c"
    ).start()
    try:
        with trainer_thread(kafka_bootstrap, topic_names, tmp_path, settings(gate_non_regression=LOOSE)):
            produce(topic_names.control, [request("ap", 0.0)])
            assert sub.wait_for("1.0.0", 60)
            # the feature set changes → major bump → waits for a human
            produce_rows(produce, topic_names.labeled, labeled_rows("ap", 600, start=600, seed=1, extra_feature=True))
            produce(topic_names.control, [request("ap", 60.0)])
            state = wait_state(kafka_bootstrap, topic_names, lambda s: "2.0.0" in s.taken("ap"))
            assert state.version("ap", "2.0.0").status == "pending_approval"
            assert state.serving_version("ap") == "1.0.0"
            # an operator without the approver role may not approve a major bump: refused, recorded
            denied = ModelCommand("approve_version", "ap", "ops", "looks fine to me", version="2.0.0")
            send_signed(kafka_bootstrap, topic_names, denied)
            [refused] = wait_for_outcome(kafka_bootstrap, topic_names.audit, denied.id, 30)
            assert (refused["type"], refused["code"], refused["actor"]) == ("command_refused", "not_allowed", "ops")
            assert "approver" in refused["reason"]
            cmd = ModelCommand("approve_version", "ap", "ana", "reviewed the new feature", version="2.0.0")
            send_signed(kafka_bootstrap, topic_names, cmd)
            assert sub.wait_for("2.0.0", 60)
            outcome = wait_for_outcome(kafka_bootstrap, topic_names.audit, cmd.id, 30)
        assert [e["type"] for e in outcome] == ["model_version_approved", "model_version_promoted"]
        assert outcome[1]["actor"] == "ana" and outcome[1]["from_version"] == "1.0.0"
        assert sub.current.event["reference_profile"]["features"].keys() >= {"extra"}
    finally:
        sub.stop()


def test_rollback_restores_the_previous_version_for_subscribers(kafka_bootstrap, topic_names, produce, tmp_path):
    produce_rows(produce, topic_names.labeled, labeled_rows("rb", 600))
    sub = ModelSubscriber(
        "rb", kafka_bootstrap, topic_names.model_updates, PUBLIC_KEY, cache_dir=tmp_path / "c"
    ).start()
    try:
        with trainer_thread(kafka_bootstrap, topic_names, tmp_path, settings(gate_non_regression=LOOSE)):
            produce(topic_names.control, [request("rb", 0.0)])
            assert sub.wait_for("1.0.0", 60)
            produce_rows(produce, topic_names.labeled, labeled_rows("rb", 600, start=600, seed=2))
            produce(topic_names.control, [request("rb", 60.0)])
            assert sub.wait_for("1.0.1", 60)  # same features and spec, new data → patch, auto-deployed
            first_profile = (
                wait_state(kafka_bootstrap, topic_names, lambda s: "1.0.1" in s.taken("rb"))
                .version("rb", "1.0.0")
                .reference_profile
            )
            cmd = ModelCommand("rollback_model", "rb", "ops", "1.0.1 misbehaves in production")
            send_signed(kafka_bootstrap, topic_names, cmd)
            assert sub.wait_for("1.0.0", 60)
            [moved] = wait_for_outcome(kafka_bootstrap, topic_names.audit, cmd.id, 30)
        assert moved["type"] == "model_version_rolled_back"
        assert (moved["from_version"], moved["version"], moved["actor"]) == ("1.0.1", "1.0.0", "ops")
        assert sub.current.event["reference_profile"] == first_profile
        # a rollback is a new signed move that goes forward: 1.0.0 (1) → 1.0.1 (2) → back to 1.0.0 (3)
        assert moved["sequence"] == sub.current.sequence == 3
        signed = verify_pointer(sub.current.event, TrustedKeys([PUBLIC_KEY]), "rb")
        assert (signed.type, signed.version, signed.sequence) == ("model_version_rolled_back", "1.0.0", 3)
    finally:
        sub.stop()


def test_a_paused_model_records_requests_without_training_until_resumed(
    kafka_bootstrap, topic_names, produce, tmp_path
):
    produce_rows(produce, topic_names.labeled, labeled_rows("pz", 400))
    with trainer_thread(kafka_bootstrap, topic_names, tmp_path, settings(recheck_s=0.5)):
        produce(topic_names.control, [request("pz", 0.0)])
        wait_state(kafka_bootstrap, topic_names, lambda s: s.serving_version("pz") == "1.0.0")
        pause = ModelCommand("pause_model", "pz", "ana", "investigating a data issue")
        send_signed(kafka_bootstrap, topic_names, pause)
        assert [e["type"] for e in wait_for_outcome(kafka_bootstrap, topic_names.audit, pause.id, 30)] == [
            "model_paused"
        ]
        produce(topic_names.control, [request("pz", 60.0)])
        state = wait_state(kafka_bootstrap, topic_names, lambda s: "pz:60:drift" in s.handled)
        assert state.paused == {"pz"} and state.taken("pz") == {"1.0.0"}
        skipped = [e for e in state.audit["pz"] if e.get("request_id") == "pz:60:drift"]
        assert [(e["type"], e["reason"]) for e in skipped] == [("training_skipped", "paused")]
        resume = ModelCommand("resume_model", "pz", "ana", "data fixed")
        send_signed(kafka_bootstrap, topic_names, resume)
        assert [e["type"] for e in wait_for_outcome(kafka_bootstrap, topic_names.audit, resume.id, 30)] == [
            "model_resumed"
        ]
        produce(topic_names.control, [request("pz", 120.0)])
        state = wait_state(kafka_bootstrap, topic_names, lambda s: len(s.taken("pz")) == 2)
    assert state.paused == set()
