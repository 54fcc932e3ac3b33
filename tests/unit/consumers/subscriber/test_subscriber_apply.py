"""What a subscriber accepts from model-updates: forward, signed moves to servable versions only.

``apply`` is the subscriber's whole decision; these tests call it directly (no broker), as
the follow loop does for each record of its model."""

from __future__ import annotations

import orjson
from prometheus_client import CollectorRegistry

from driftline.consumers.registry.artifacts import pack_model
from driftline.consumers.subscriber import ModelSubscriber
from driftline.testing.pointers import signed_move
from driftline.trust.keys import Ed25519PrivateKey, TrustedKeys

KEY = Ed25519PrivateKey.generate()


class _Constant:
    def __init__(self, answer: int) -> None:
        self.answer = answer

    def predict_one(self, _x: dict) -> int:
        return self.answer


def _move(version: str, sequence: int, key: Ed25519PrivateKey = KEY, **fields) -> dict:
    artifact = pack_model(_Constant(sequence), "churn", version, key).to_dict()
    return signed_move(key, "churn", version, sequence, artifact=artifact, **fields)


def _subscriber(tmp_path, keys=None, errors=None, registry=None) -> ModelSubscriber:
    return ModelSubscriber(
        "churn",
        "127.0.0.1:1",
        "driftline.model-updates",
        KEY.public_key() if keys is None else keys,
        cache_dir=tmp_path / "cache",
        on_error=None if errors is None else (lambda _m, v, exc: errors.append((v, str(exc)))),
        registry=registry,
    )


def test_an_old_signed_version_sent_as_any_type_or_replayed_never_serves_again(tmp_path) -> None:
    registry = CollectorRegistry()
    errors: list = []
    sub = _subscriber(tmp_path, errors=errors, registry=registry)
    old, new = _move("1.0.0", 1), _move("1.1.0", 2)
    assert sub.apply(old) and sub.apply(new) and sub.version == "1.1.0"
    assert not sub.apply({**old, "type": "anything_at_all"})  # the proof
    assert not sub.apply(old)  # the genuine, signed 1.0.0 move, replayed
    assert not sub.apply(orjson.loads(orjson.dumps(new)))  # the served move read again: unchanged, no error
    assert sub.version == "1.1.0" and sub.predict_one({}) == 2
    assert [v for v, _ in errors] == ["1.0.0", "1.0.0"]
    assert "not a pointer move" in errors[0][1] and "sequence 1 is not after 2" in errors[1][1]
    refused = {
        r: registry.get_sample_value("driftline_subscriber_refused_total", {"model_id": "churn", "reason": r})
        for r in ("not_a_pointer_move", "older_sequence")
    }
    assert refused == {"not_a_pointer_move": 1.0, "older_sequence": 1.0}


def test_a_rollback_is_a_new_move_with_a_higher_sequence(tmp_path) -> None:
    sub = _subscriber(tmp_path)
    assert sub.apply(_move("1.0.0", 1)) and sub.apply(_move("1.1.0", 2))
    assert sub.apply(_move("1.0.0", 3, type="model_version_rolled_back")) and sub.version == "1.0.0"
    assert sub.predict_one({}) == 3


def test_rejected_candidates_and_forged_moves_are_refused_before_any_unpickling(tmp_path) -> None:
    errors: list = []
    sub = _subscriber(tmp_path, errors=errors)
    assert sub.apply(_move("1.0.0", 1))
    rejected = _move("1.1.0", 2, status="rejected")  # the trainer signs the artifact of every candidate
    forged = {**_move("1.2.0", 2), "version": "9.0.0"}
    stranger = _move("1.3.0", 2, key=Ed25519PrivateKey.generate())
    for event in (rejected, forged, stranger):
        assert not sub.apply(event)
    assert sub.version == "1.0.0"
    assert ["not servable" in errors[0][1], "bad pointer signature" in errors[1][1], "trusts" in errors[2][1]] == [
        True,
        True,
        True,
    ]


def test_the_cache_keeps_the_sequence_so_a_restart_cannot_be_moved_back(tmp_path) -> None:
    sub = _subscriber(tmp_path)
    assert sub.apply(_move("1.0.0", 1)) and sub.apply(_move("1.1.0", 2))
    again = _subscriber(tmp_path)  # a restarted process: serves its cache before any Kafka read
    assert again.version == "1.1.0" and again.current is not None and again.current.sequence == 2
    assert not again.apply(_move("1.0.0", 1))


def test_a_key_rotation_keeps_old_versions_loadable(tmp_path) -> None:
    new_key = Ed25519PrivateKey.generate()
    sub = _subscriber(tmp_path, keys=TrustedKeys([KEY.public_key(), new_key.public_key()]))
    assert sub.apply(_move("1.0.0", 1))  # signed by the old key
    assert sub.apply(_move("1.1.0", 2, key=new_key))
    # rolling back to 1.0.0: the new key signs the move; the artifact keeps the old key's signature
    old_artifact = _move("1.0.0", 1)["artifact"]
    rollback = signed_move(new_key, "churn", "1.0.0", 3, artifact=old_artifact, type="model_version_rolled_back")
    assert sub.apply(rollback) and sub.version == "1.0.0"


def test_a_failing_callback_does_not_stop_the_subscriber(tmp_path) -> None:
    def explode(*_args) -> None:
        raise RuntimeError("serving code bug")

    sub = ModelSubscriber(
        "churn", "127.0.0.1:1", "t", KEY.public_key(), cache_dir=tmp_path / "c", on_update=explode, on_error=explode
    )
    assert sub.apply(_move("1.0.0", 1)) and sub.version == "1.0.0"
    assert not sub.apply(_move("0.9.0", 1, type="nope"))
