"""Signed pointer moves: which version to serve, and in which order — not only which bytes.

An artifact signature (`consumers.registry.artifacts`) says "these bytes are version 1.0.0
of churn"; it does not say "serve 1.0.0 now". Without more, anyone able to write
``driftline.model-updates`` could point subscribers back at an old signed version, at a
candidate the gate rejected, or send a record of any ``type``. So the trainer signs the
whole serving decision: type (promoted / rolled back), model, version, the previous
version, the version's status, a per-model ``sequence`` that only grows, the artifact's
digest and the reference profile and gate metrics the stream measures against. Readers
(`ModelSubscriber`, the stream's model-updates reader) accept a move only if it verifies
with a trusted key, is a pointer move to a servable version, and — for a subscriber —
moves forward (a rollback is a *new* move with a higher sequence).

Signed bytes: ``driftline-pointer-v1|`` + the record as canonical JSON (orjson, sorted
keys) without ``pointer_signature`` and without the artifact's ``inline`` bytes and
``location`` (the digest covers the bytes; the location may be re-rooted).

Examples:
    >>> from driftline.trust.keys import Ed25519PrivateKey, TrustedKeys
    >>> key = Ed25519PrivateKey.generate()
    >>> move = {"type": "model_version_promoted", "model_id": "churn", "version": "1.0.1", "sequence": 2,
    ...         "status": "approved", "artifact": {"sha256": "ab", "inline": "..."}}
    >>> signed = sign_pointer(move, key)
    >>> verify_pointer(signed, TrustedKeys([key.public_key()]), "churn").sequence
    2
    >>> try:
    ...     verify_pointer({**signed, "version": "1.0.0"}, TrustedKeys([key.public_key()]), "churn")
    ... except PointerRejected as exc:
    ...     print(exc.reason)
    bad_signature
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature

from driftline.errors import DriftlineError
from driftline.trust.keys import ALGORITHM, Ed25519PrivateKey, TrustedKeys, key_id

__all__ = [
    "POINTER_TYPES",
    "SERVABLE_STATUSES",
    "PointerRejected",
    "VerifiedMove",
    "sign_pointer",
    "verify_pointer",
]

POINTER_TYPES = frozenset({"model_version_promoted", "model_version_rolled_back"})
SERVABLE_STATUSES = frozenset({"approved"})
_PREFIX = b"driftline-pointer-v1|"
_UNSIGNED_ARTIFACT_FIELDS = ("inline", "location")


class PointerRejected(DriftlineError):
    """A model-updates record that must not be served; ``reason`` is a short code for metrics."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class VerifiedMove:
    """The fields of a pointer move that passed `verify_pointer`."""

    model_id: str
    version: str
    sequence: int
    type: str


def _signed_bytes(doc: dict[str, Any]) -> bytes:
    content = {k: v for k, v in doc.items() if k != "pointer_signature"}
    artifact = content.get("artifact")
    if isinstance(artifact, dict):
        content["artifact"] = {k: v for k, v in artifact.items() if k not in _UNSIGNED_ARTIFACT_FIELDS}
    return _PREFIX + orjson.dumps(content, option=orjson.OPT_SORT_KEYS)


def sign_pointer(doc: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """``doc`` (a pointer move's value) with its ``pointer_signature``.

    The record is signed as it will read back from JSON (a round trip first), so numpy
    scalars or tuples in it sign the same bytes a reader re-encodes."""
    plain = orjson.loads(orjson.dumps({k: v for k, v in doc.items() if k != "pointer_signature"}))
    signature = key.sign(_signed_bytes(plain)).hex()
    return {**plain, "pointer_signature": {"alg": ALGORITHM, "key_id": key_id(key.public_key()), "value": signature}}


def verify_pointer(doc: Any, keys: TrustedKeys, model_id: str | None = None) -> VerifiedMove:
    """Raise `PointerRejected` unless ``doc`` is a trainer-signed move to a servable version."""
    if not isinstance(doc, dict):
        raise PointerRejected("malformed", f"a model update must be a JSON object, got {type(doc).__name__}")
    kind, version, sequence = doc.get("type"), doc.get("version"), doc.get("sequence")
    where = f"{doc.get('model_id')!s} {version!s}"
    if kind not in POINTER_TYPES:
        raise PointerRejected(
            "not_a_pointer_move", f"{where}: type {kind!r} is not a pointer move ({', '.join(sorted(POINTER_TYPES))})"
        )
    if not isinstance(doc.get("model_id"), str) or (model_id is not None and doc["model_id"] != model_id):
        raise PointerRejected("malformed", f"{where}: model_id must be {model_id or 'a string'}")
    if not isinstance(version, str) or not version:
        raise PointerRejected("malformed", f"{where}: version must be a non-empty string")
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1:
        raise PointerRejected(
            "unsigned",
            f"{where}: no pointer sequence (written by a trainer older than signed pointer moves); "
            f"move the pointer again with a current trainer: driftline models promote {doc.get('model_id')} {version}",
        )
    if doc.get("status") not in SERVABLE_STATUSES:
        raise PointerRejected("not_servable", f"{where}: status {doc.get('status')!r} is not servable")
    signature = doc.get("pointer_signature")
    if not isinstance(signature, dict) or not isinstance(signature.get("value"), str):
        raise PointerRejected("unsigned", f"{where}: the pointer move is not signed")
    if signature.get("alg") != ALGORITHM:
        raise PointerRejected("unsigned", f"{where}: signature algorithm {signature.get('alg')!r} is not {ALGORITHM}")
    key = keys.get(str(signature.get("key_id")))
    if key is None:
        raise PointerRejected(
            "unknown_key",
            f"{where}: signed with key {signature.get('key_id')!s}, this process trusts "
            f"{', '.join(keys.ids) or 'no key'}; add the trainer's public key to [subscriber] verify_key",
        )
    try:
        key.verify(bytes.fromhex(signature["value"]), _signed_bytes(doc))
    except (InvalidSignature, ValueError):
        raise PointerRejected("bad_signature", f"{where}: bad pointer signature (the record was altered)") from None
    return VerifiedMove(doc["model_id"], version, sequence, kind)
