"""Model artifacts: serialise, sign, store, and verify *before* anything is unpickled.

Models are pickled (River models carry their full state that way), and unpickling
untrusted bytes runs code — so ``load_model`` checks the SHA-256 digest and the
Ed25519 signature first and refuses (``ArtifactRejected``) without ever calling
``pickle.loads`` on bytes that fail. The trainer signs with its private key; verifying
needs only the public key (`driftline.trust.keys`), so no subscriber can sign. The
signature covers model id, version and digest, so a genuine artifact cannot be
relabelled as another version.

Artifacts up to ``inline_limit`` bytes (default 900 KiB, so the base64 form fits a
record) travel inline in the event; larger ones are written to ``artifact_dir`` and the
event carries their location and digest.

Examples
--------
>>> from driftline.trust.keys import Ed25519PrivateKey
>>> key = Ed25519PrivateKey.generate()
>>> ref = pack_model({"w": 1}, "churn", "1.0.0", key)
>>> load_model(ref, "churn", "1.0.0", key.public_key())
{'w': 1}
>>> try:
...     load_model(ref, "churn", "2.0.0", key.public_key())  # relabelled as another version
... except ArtifactRejected as exc:
...     print(exc)
churn 2.0.0: bad signature (Ed25519 signature does not verify)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import pickle
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature

from driftline.errors import DriftlineError
from driftline.schemas.registry import ArtifactRef
from driftline.trust.keys import ALGORITHM, Ed25519PrivateKey, Ed25519PublicKey, TrustedKeys, key_id

__all__ = [
    "INLINE_LIMIT",
    "ArtifactRejected",
    "artifact_bytes",
    "load_model",
    "load_verified",
    "pack_model",
    "sign",
    "verify",
]

INLINE_LIMIT = 900 * 1024
FORMAT = "pickle"


class ArtifactRejected(DriftlineError):
    """An artifact failed verification (unsigned, tampered, wrong key, missing): never loaded."""


def _message(model_id: str, version: str, digest: str) -> bytes:
    return f"driftline-artifact-v1|{model_id}|{version}|{digest}".encode()


def sign(model_id: str, version: str, digest: str, key: Ed25519PrivateKey) -> str:
    """Ed25519 signature (hex) binding ``digest`` to ``model_id`` and ``version``."""
    return key.sign(_message(model_id, version, digest)).hex()


def pack_model(
    model: Any,
    model_id: str,
    version: str,
    key: Ed25519PrivateKey,
    *,
    inline_limit: int = INLINE_LIMIT,
    artifact_dir: str | os.PathLike[str] | None = None,
) -> ArtifactRef:
    """Pickle, hash and sign ``model``; inline if small, else write it under ``artifact_dir``."""
    blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    digest = hashlib.sha256(blob).hexdigest()
    signature = sign(model_id, version, digest, key)
    public_id = key_id(key.public_key())
    if len(blob) <= inline_limit:
        return ArtifactRef(
            FORMAT,
            digest,
            len(blob),
            signature,
            public_id,
            inline=base64.b64encode(blob).decode(),
            signature_alg=ALGORITHM,
        )
    if artifact_dir is None:
        raise DriftlineError(
            f"{model_id} {version}: artifact is {len(blob)} bytes (> inline limit "
            f"{inline_limit}) and no [trainer] artifact_dir is configured"
        )
    path = Path(artifact_dir).resolve() / model_id / f"{version}-{digest[:12]}.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, path)
    return ArtifactRef(FORMAT, digest, len(blob), signature, public_id, location=str(path), signature_alg=ALGORITHM)


def artifact_bytes(ref: ArtifactRef, artifact_dir: str | os.PathLike[str] | None = None) -> bytes:
    """The raw bytes of ``ref`` (inline or from its file; ``artifact_dir`` re-roots a moved store)."""
    if ref.inline is not None:
        return base64.b64decode(ref.inline, validate=True)
    if not ref.location:
        raise ArtifactRejected("artifact has neither inline bytes nor a location")
    path = Path(ref.location)
    if artifact_dir is not None and not path.exists():
        path = Path(artifact_dir) / path.parent.name / path.name
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ArtifactRejected(f"artifact not readable at {path}: {exc.strerror}") from None


Keys = Ed25519PublicKey | TrustedKeys


def verify(ref: ArtifactRef, blob: bytes, model_id: str, version: str, keys: Keys) -> None:
    """Raise ``ArtifactRejected`` unless ``blob`` is exactly what a trusted key signed."""
    where = f"{model_id} {version}"
    if ref.format != FORMAT:
        raise ArtifactRejected(f"{where}: unknown artifact format {ref.format!r}")
    if not ref.signature:
        raise ArtifactRejected(f"{where}: unsigned artifact")
    if ref.signature_alg != ALGORITHM:
        raise ArtifactRejected(
            f"{where}: signature algorithm {ref.signature_alg or 'HMAC (driftline 0.1)'!r} is not "
            f"{ALGORITHM!r}; register the model again with a current trainer"
        )
    digest = hashlib.sha256(blob).hexdigest()
    if not hmac.compare_digest(digest, ref.sha256) or len(blob) != ref.size:
        raise ArtifactRejected(f"{where}: digest mismatch (artifact bytes were altered)")
    trusted = TrustedKeys.of(keys)
    key = trusted.get(ref.key_id) if ref.key_id else (trusted.get(trusted.ids[0]) if len(trusted.ids) == 1 else None)
    if key is None:
        raise ArtifactRejected(
            f"{where}: signed with key {ref.key_id or '(no key id)'}, this process trusts "
            f"{', '.join(trusted.ids) or 'no key'}; add the trainer's public key to [subscriber] verify_key"
        )
    try:
        key.verify(bytes.fromhex(ref.signature), _message(model_id, version, digest))
    except (InvalidSignature, ValueError):  # ValueError: not hex
        raise ArtifactRejected(f"{where}: bad signature (Ed25519 signature does not verify)") from None


def load_model(
    ref: ArtifactRef,
    model_id: str,
    version: str,
    keys: Keys,
    artifact_dir: str | os.PathLike[str] | None = None,
) -> Any:
    """Fetch (inline or file), verify, then unpickle."""
    return load_verified(ref, artifact_bytes(ref, artifact_dir), model_id, version, keys)


def load_verified(ref: ArtifactRef, blob: bytes, model_id: str, version: str, keys: Keys) -> Any:
    """Verify ``blob`` against ``ref``, then unpickle: the only place driftline unpickles an artifact."""
    verify(ref, blob, model_id, version, keys)
    return pickle.loads(blob)
