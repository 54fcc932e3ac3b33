"""Model artifacts: serialise, sign, store, and verify *before* anything is unpickled.

Models are pickled (River models carry their full state that way), and unpickling
untrusted bytes runs code — so ``load_model`` checks the SHA-256 digest and the
HMAC-SHA-256 signature first and refuses (``ArtifactRejected``) without ever calling
``pickle.loads`` on bytes that fail. The signature covers model id, version and digest,
so a genuine artifact cannot be relabelled as another version.

Artifacts up to ``inline_limit`` bytes (default 900 KiB, so the base64 form fits a
record) travel inline in the event; larger ones are written to ``artifact_dir`` and the
event carries their location and digest.

Examples
--------
>>> key = b"k" * 32
>>> ref = pack_model({"w": 1}, "churn", "1.0.0", key)
>>> load_model(ref, "churn", "1.0.0", key)
{'w': 1}
>>> try:
...     load_model(ref, "churn", "2.0.0", key)  # relabelled as another version
... except ArtifactRejected as exc:
...     print(exc)
churn 2.0.0: bad signature (HMAC-SHA-256 does not match)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import pickle
import secrets
from pathlib import Path
from typing import Any

from driftline.errors import DriftlineError
from driftline.schemas.registry import ArtifactRef

__all__ = [
    "INLINE_LIMIT",
    "ArtifactRejected",
    "key_id",
    "sign",
    "pack_model",
    "artifact_bytes",
    "verify",
    "load_model",
    "load_verified",
    "load_or_create_key",
]

INLINE_LIMIT = 900 * 1024
FORMAT = "pickle"


class ArtifactRejected(DriftlineError):
    """An artifact failed verification (unsigned, tampered, wrong key, missing): never loaded."""


def key_id(key: bytes) -> str:
    """A short public fingerprint of a signing key (so a mismatch can be told apart from tampering)."""
    return hashlib.sha256(b"driftline-key-id|" + key).hexdigest()[:12]


def _message(model_id: str, version: str, digest: str) -> bytes:
    return f"driftline-artifact-v1|{model_id}|{version}|{digest}".encode()


def sign(model_id: str, version: str, digest: str, key: bytes) -> str:
    """HMAC-SHA-256 (hex) binding ``digest`` to ``model_id`` and ``version``."""
    return hmac.new(key, _message(model_id, version, digest), hashlib.sha256).hexdigest()


def pack_model(model: Any, model_id: str, version: str, key: bytes, *, inline_limit: int = INLINE_LIMIT,
               artifact_dir: str | os.PathLike[str] | None = None) -> ArtifactRef:
    """Pickle, hash and sign ``model``; inline if small, else write it under ``artifact_dir``."""
    blob = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    digest = hashlib.sha256(blob).hexdigest()
    signature = sign(model_id, version, digest, key)
    if len(blob) <= inline_limit:
        return ArtifactRef(FORMAT, digest, len(blob), signature, key_id(key), inline=base64.b64encode(blob).decode())
    if artifact_dir is None:
        raise DriftlineError(f"{model_id} {version}: artifact is {len(blob)} bytes (> inline limit "
                             f"{inline_limit}) and no [trainer] artifact_dir is configured")
    path = Path(artifact_dir).resolve() / model_id / f"{version}-{digest[:12]}.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(blob)
    os.replace(tmp, path)
    return ArtifactRef(FORMAT, digest, len(blob), signature, key_id(key), location=str(path))


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


def verify(ref: ArtifactRef, blob: bytes, model_id: str, version: str, key: bytes) -> None:
    """Raise ``ArtifactRejected`` unless ``blob`` is exactly what the trainer signed."""
    where = f"{model_id} {version}"
    if ref.format != FORMAT:
        raise ArtifactRejected(f"{where}: unknown artifact format {ref.format!r}")
    if not ref.signature:
        raise ArtifactRejected(f"{where}: unsigned artifact")
    digest = hashlib.sha256(blob).hexdigest()
    if not hmac.compare_digest(digest, ref.sha256) or len(blob) != ref.size:
        raise ArtifactRejected(f"{where}: digest mismatch (artifact bytes were altered)")
    if ref.key_id and ref.key_id != key_id(key):
        raise ArtifactRejected(f"{where}: signed with key {ref.key_id}, this process has key {key_id(key)}")
    if not hmac.compare_digest(sign(model_id, version, digest, key), ref.signature):
        raise ArtifactRejected(f"{where}: bad signature (HMAC-SHA-256 does not match)")


def load_model(ref: ArtifactRef, model_id: str, version: str, key: bytes,
               artifact_dir: str | os.PathLike[str] | None = None) -> Any:
    """Fetch (inline or file), verify, then unpickle."""
    return load_verified(ref, artifact_bytes(ref, artifact_dir), model_id, version, key)


def load_verified(ref: ArtifactRef, blob: bytes, model_id: str, version: str, key: bytes) -> Any:
    """Verify ``blob`` against ``ref``, then unpickle: the only place driftline unpickles an artifact."""
    verify(ref, blob, model_id, version, key)
    return pickle.loads(blob)  # noqa: S301 - verified above: digest and HMAC match


def load_or_create_key(explicit: str, key_file: str | os.PathLike[str], create: bool) -> tuple[bytes, bool]:
    """The signing key: ``explicit`` (config/env) → ``key_file`` → a new random key written there.

    Returns ``(key, created)``. A new key is 32 random bytes, hex in a 0600 file, so a
    demo works without setup and no default key ever exists in the code.
    """
    if explicit:
        return explicit.encode(), False
    path = Path(key_file)
    if path.exists():
        return path.read_text(encoding="utf-8").strip().encode(), False
    if not create:
        raise DriftlineError(f"no signing key: set [trainer] signing_key / DRIFTLINE_TRAINER_SIGNING_KEY "
                             f"or provide {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secrets.token_hex(32))
    return path.read_text(encoding="utf-8").strip().encode(), True
