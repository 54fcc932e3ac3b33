"""Artifacts: signed, verified before unpickling, inline or in a directory."""

import base64
import os
import pickle

import pytest

from driftline.consumers.artifacts import ArtifactRejected, key_id, load_model, load_or_create_key, pack_model
from driftline.schemas.registry import ArtifactRef

KEY = b"k" * 32


class _Explodes:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_inline_round_trip_and_contract_round_trip():
    ref = pack_model({"w": [1, 2]}, "m", "1.0.0", KEY)
    assert ref.inline and ref.location is None and ref.key_id == key_id(KEY)
    assert ArtifactRef.from_dict(ref.to_dict()) == ref
    assert load_model(ref, "m", "1.0.0", KEY) == {"w": [1, 2]}


def test_large_artifacts_go_to_the_directory(tmp_path):
    ref = pack_model(b"x" * 5000, "m", "1.0.0", KEY, inline_limit=1000, artifact_dir=tmp_path)
    assert ref.inline is None and ref.location and os.path.exists(ref.location)
    assert load_model(ref, "m", "1.0.0", KEY) == b"x" * 5000


def test_large_artifact_without_directory_is_an_error():
    with pytest.raises(Exception, match="inline limit"):
        pack_model(b"x" * 5000, "m", "1.0.0", KEY, inline_limit=1000)


@pytest.mark.parametrize("change", ["bytes", "unsigned", "other_key", "other_version"])
def test_tampering_is_refused_before_unpickling(tmp_path, change):
    marker = str(tmp_path / "unpickled")
    ref = pack_model({"ok": True}, "m", "1.0.0", KEY)
    key, version = KEY, "1.0.0"
    if change == "bytes":
        ref = ArtifactRef(**{**ref.__dict__, "inline": base64.b64encode(pickle.dumps(_Explodes(marker))).decode()})
    elif change == "unsigned":
        ref = ArtifactRef(**{**ref.__dict__, "signature": ""})
    elif change == "other_key":
        key = b"z" * 32
    else:
        version = "2.0.0"
    with pytest.raises(ArtifactRejected):
        load_model(ref, "m", version, key)
    assert not os.path.exists(marker)


def test_tampered_file_is_refused(tmp_path):
    ref = pack_model(b"x" * 5000, "m", "1.0.0", KEY, inline_limit=10, artifact_dir=tmp_path)
    with open(ref.location, "r+b") as fh:
        fh.write(b"y")
    with pytest.raises(ArtifactRejected, match="digest"):
        load_model(ref, "m", "1.0.0", KEY)


def test_key_file_is_generated_once_with_private_mode(tmp_path):
    path = tmp_path / "keys" / "signing.key"
    key, created = load_or_create_key("", path, create=True)
    assert created and len(key) == 64 and (os.stat(path).st_mode & 0o777) == 0o600
    assert load_or_create_key("", path, create=True) == (key, False)
    assert load_or_create_key("explicit", path, create=True) == (b"explicit", False)
    with pytest.raises(Exception, match="no signing key"):
        load_or_create_key("", tmp_path / "missing", create=False)
