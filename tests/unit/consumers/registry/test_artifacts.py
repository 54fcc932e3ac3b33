"""Artifacts: signed (Ed25519), verified before unpickling, inline or in a directory."""

import base64
import os
import pickle

import pytest

from driftline.consumers.registry.artifacts import ArtifactRejected, load_model, pack_model, sign
from driftline.errors import DriftlineError
from driftline.schemas.registry import ArtifactRef
from driftline.trust.keys import (
    Ed25519PrivateKey,
    TrustedKeys,
    key_id,
    load_or_create_signing_key,
    public_hex,
    public_key_file,
    trusted_keys,
)

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key()


class _Explodes:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_inline_round_trip_and_contract_round_trip():
    ref = pack_model({"w": [1, 2]}, "m", "1.0.0", KEY)
    assert ref.inline and ref.location is None and ref.key_id == key_id(PUBLIC)
    assert ref.signature_alg == "ed25519" and len(ref.signature) == 128
    assert ArtifactRef.from_dict(ref.to_dict()) == ref
    assert load_model(ref, "m", "1.0.0", PUBLIC) == {"w": [1, 2]}


def test_large_artifacts_go_to_the_directory(tmp_path):
    ref = pack_model(b"x" * 5000, "m", "1.0.0", KEY, inline_limit=1000, artifact_dir=tmp_path)
    assert ref.inline is None and ref.location and os.path.exists(ref.location)
    assert load_model(ref, "m", "1.0.0", PUBLIC) == b"x" * 5000


def test_large_artifact_without_directory_is_an_error():
    with pytest.raises(Exception, match="inline limit"):
        pack_model(b"x" * 5000, "m", "1.0.0", KEY, inline_limit=1000)


@pytest.mark.parametrize(
    "change", ["bytes", "unsigned", "other_key", "other_version", "forged", "garbled", "legacy_hmac"]
)
def test_tampering_is_refused_before_unpickling(tmp_path, change):
    marker = str(tmp_path / "unpickled")
    ref = pack_model({"ok": True}, "m", "1.0.0", KEY)
    key, version = PUBLIC, "1.0.0"
    evil = pickle.dumps(_Explodes(marker))
    if change == "bytes":
        ref = ArtifactRef(**{**ref.__dict__, "inline": base64.b64encode(evil).decode()})
    elif change == "unsigned":
        ref = ArtifactRef(**{**ref.__dict__, "signature": ""})
    elif change == "other_key":
        key = Ed25519PrivateKey.generate().public_key()
    elif change == "other_version":
        version = "2.0.0"
    elif change == "forged":  # evil bytes, correct digest, signed by another key under the trainer's key id
        import hashlib

        digest = hashlib.sha256(evil).hexdigest()
        ref = ArtifactRef(
            **{
                **ref.__dict__,
                "inline": base64.b64encode(evil).decode(),
                "sha256": digest,
                "size": len(evil),
                "signature": sign("m", "1.0.0", digest, Ed25519PrivateKey.generate()),
            }
        )
    elif change == "garbled":
        ref = ArtifactRef(**{**ref.__dict__, "signature": "not hex"})
    else:
        ref = ArtifactRef(**{**ref.__dict__, "signature_alg": ""})
    with pytest.raises(ArtifactRejected) as info:
        load_model(ref, "m", version, key)
    assert not os.path.exists(marker)
    expected = {
        "bytes": "digest mismatch",
        "unsigned": "unsigned",
        "other_key": "signed with key",
        "other_version": "bad signature",
        "forged": "bad signature",
        "garbled": "bad signature",
        "legacy_hmac": "register the model again",
    }[change]
    assert expected in str(info.value)


def test_tampered_file_is_refused(tmp_path):
    ref = pack_model(b"x" * 5000, "m", "1.0.0", KEY, inline_limit=10, artifact_dir=tmp_path)
    with open(ref.location, "r+b") as fh:
        fh.write(b"y")
    with pytest.raises(ArtifactRejected, match="digest"):
        load_model(ref, "m", "1.0.0", PUBLIC)


def test_key_pair_is_generated_once_private_file_private(tmp_path):
    path = tmp_path / "keys" / "signing.key"
    key, created = load_or_create_signing_key("", path, create=True)
    assert created and (os.stat(path).st_mode & 0o777) == 0o600
    public_file = public_key_file(path)
    assert public_file.name == "signing.pub" and public_file.read_text().strip() == public_hex(key.public_key())
    again, created_again = load_or_create_signing_key("", path, create=True)
    assert not created_again and public_hex(again.public_key()) == public_hex(key.public_key())
    # a subscriber verifies with the public file alone: it holds nothing that signs
    verify_key = trusted_keys("", public_file)
    ref = pack_model({"v": 1}, "m", "1.0.0", key)
    assert load_model(ref, "m", "1.0.0", verify_key) == {"v": 1}
    with pytest.raises(DriftlineError, match="no signing key"):
        load_or_create_signing_key("", tmp_path / "missing", create=False)
    with pytest.raises(DriftlineError, match="signing.pub"):
        trusted_keys("", tmp_path / "missing.pub")


def test_explicit_keys_and_bad_hex_name_the_setting():
    seed = "ab" * 32
    key, created = load_or_create_signing_key(seed, "/nonexistent/signing.key", create=True)
    assert not created
    assert trusted_keys("", "/nonexistent.pub", trainer_key=seed).ids == (key_id(key.public_key()),)
    assert trusted_keys(public_hex(key.public_key()), "/nonexistent.pub").ids == (key_id(key.public_key()),)
    with pytest.raises(DriftlineError, match="trainer.signing_key"):
        load_or_create_signing_key("k" * 32, "/nonexistent/signing.key", create=True)
    with pytest.raises(DriftlineError, match="subscriber.verify_key"):
        trusted_keys("12" * 31, "/nonexistent.pub")


def test_a_rotated_key_is_trusted_beside_the_old_one_so_old_versions_still_load(tmp_path):
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    old_ref = pack_model({"v": 1}, "m", "1.0.0", old)
    new_ref = pack_model({"v": 2}, "m", "1.1.0", new)
    both = trusted_keys(f"{public_hex(old.public_key())}, {public_hex(new.public_key())}", "")
    assert load_model(old_ref, "m", "1.0.0", both) == {"v": 1}
    assert load_model(new_ref, "m", "1.1.0", both) == {"v": 2}
    with pytest.raises(ArtifactRejected, match=f"signed with key {key_id(old.public_key())}"):
        load_model(old_ref, "m", "1.0.0", TrustedKeys([new.public_key()]))


def test_a_key_file_written_after_start_is_picked_up_on_an_unknown_key_id(tmp_path):
    path = tmp_path / "signing.pub"
    keys = trusted_keys("", path, required=False)  # a stream worker started before the trainer
    assert keys.ids == ()
    key = Ed25519PrivateKey.generate()
    path.write_text(f"# the trainer's key\n{public_hex(key.public_key())}\n")
    keys._loaded_at = float("-inf")  # the reload interval has passed
    assert keys.get(key_id(key.public_key())) is not None
    ref = pack_model({"v": 1}, "m", "1.0.0", key)
    assert load_model(ref, "m", "1.0.0", keys) == {"v": 1}
    with pytest.raises(DriftlineError, match="holds no public key"):
        (tmp_path / "empty.pub").write_text("# nothing\n")
        trusted_keys("", tmp_path / "empty.pub")
