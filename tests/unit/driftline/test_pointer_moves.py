"""Pointer moves: signed whole by the trainer; readers refuse what is not a forward move to a servable version."""

from __future__ import annotations

import orjson
import pytest

from driftline.stream.model_updates import ServingVersions
from driftline.testing.pointers import signed_move
from driftline.trust.keys import Ed25519PrivateKey, TrustedKeys
from driftline.trust.pointer_moves import PointerRejected, sign_pointer, verify_pointer

KEY = Ed25519PrivateKey.generate()
TRUSTED = TrustedKeys([KEY.public_key()])


def _reason(doc: object, keys: TrustedKeys = TRUSTED) -> str:
    with pytest.raises(PointerRejected) as info:
        verify_pointer(doc, keys, "churn")
    return info.value.reason


def test_a_signed_move_verifies_and_survives_a_json_round_trip_and_a_new_artifact_location() -> None:
    move = signed_move(KEY, "churn", "1.1.0", 3, metrics={"accuracy": 0.97}, artifact={"sha256": "ab", "inline": "x"})
    again = orjson.loads(orjson.dumps(move))
    again["artifact"] = {**again["artifact"], "inline": None, "location": "/moved/churn/1.1.0.pkl"}
    verified = verify_pointer(again, TRUSTED, "churn")
    assert (verified.version, verified.sequence, verified.type) == ("1.1.0", 3, "model_version_promoted")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"version": "1.0.0"}, "bad_signature"),
        ({"sequence": 9}, "bad_signature"),
        ({"from_version": "0.9.0"}, "bad_signature"),
        ({"reference_profile": {"features": {}}}, "bad_signature"),
        ({"metrics": {"accuracy": 1.0}}, "bad_signature"),
        ({"artifact": {"sha256": "cd"}}, "bad_signature"),
        ({"type": "anything_at_all"}, "not_a_pointer_move"),
        ({"status": "rejected"}, "not_servable"),
        ({"sequence": None}, "unsigned"),
        ({"sequence": True}, "unsigned"),
        ({"pointer_signature": None}, "unsigned"),
        ({"model_id": "fraud"}, "malformed"),
        ({"version": ["1.0.0"]}, "malformed"),
    ],
)
def test_every_altered_field_is_refused_with_its_reason(change: dict, reason: str) -> None:
    move = signed_move(KEY, "churn", "1.1.0", 2, artifact={"sha256": "ab"})
    assert _reason({**move, **change}) == reason


def test_a_rejected_version_is_refused_even_when_the_trainer_signed_the_move() -> None:
    move = sign_pointer({**signed_move(KEY, "churn", "1.1.0", 2), "status": "rejected"}, KEY)
    assert _reason(move) == "not_servable"


def test_an_unknown_key_and_a_non_object_are_refused() -> None:
    other = Ed25519PrivateKey.generate()
    assert _reason(signed_move(other, "churn", "1.0.0")) == "unknown_key"
    assert _reason(["not", "a", "move"]) == "malformed"
    both = TrustedKeys([KEY.public_key(), other.public_key()])
    assert verify_pointer(signed_move(other, "churn", "1.0.0"), both, "churn").version == "1.0.0"


def test_the_stream_applies_forward_moves_only_and_says_why_it_refuses() -> None:
    serving = ServingVersions(TRUSTED)
    first, second = signed_move(KEY, "churn", "1.0.0", 1), signed_move(KEY, "churn", "1.1.0", 2)
    assert serving.apply(b"churn", orjson.dumps(first)) == "applied"
    assert serving.apply(b"churn", orjson.dumps(second)) == "applied"
    assert serving.apply(b"churn", orjson.dumps(first)).startswith("invalid: older_sequence")
    assert serving.apply(b"churn", orjson.dumps(second)) == "ignored"  # read again after a reader restart
    forged = {**second, "sequence": 3, "version": "0.1.0"}
    assert serving.apply(b"churn", orjson.dumps(forged)).startswith("invalid: bad_signature")
    assert serving.apply(b"churn", orjson.dumps({**second, "type": "hello"})).startswith("invalid: not_a_pointer")
    assert serving.get("churn").version == "1.1.0"
    rollback = signed_move(KEY, "churn", "1.0.0", 3, type="model_version_rolled_back")
    assert serving.apply(b"churn", orjson.dumps(rollback)) == "applied" and serving.get("churn").version == "1.0.0"
