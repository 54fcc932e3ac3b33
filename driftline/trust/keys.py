"""Artifact signing keys: Ed25519, so subscribers can verify but never sign.

Subscribers run on serving hosts and edge devices, many of them outside the trainer's
trust boundary. With a shared secret (HMAC) every one of them could forge a model
update for all the others — and artifacts are pickles, so a forged one runs code. An
Ed25519 key pair keeps signing with the trainer: subscribers hold only the public key.

Keys travel as hex: the private key as its 32-byte seed (``[trainer] signing_key`` or
the 0600 ``signing_key_file``), the public key as its 32 raw bytes (``[subscriber]
verify_key`` or ``verify_key_file``). The trainer writes both files on first start; the
public one (``signing.pub`` beside ``signing.key``) is what subscribers get.

Readers trust a *set* of keys (`TrustedKeys`), chosen by key id: a new signing key is
introduced by adding its public key beside the old one, so versions the old key signed
still load (a rollback to them keeps working) until the old key is removed.

Examples:
    >>> private = private_key_from_hex("11" * 32, "trainer.signing_key")
    >>> public = private.public_key()
    >>> len(public_hex(public)), key_id(public) == key_id(public_key_from_hex(public_hex(public), "x"))
    (64, True)
    >>> private_key_from_hex("zz", "trainer.signing_key")
    Traceback (most recent call last):
    ...
    driftline.errors.DriftlineError: trainer.signing_key: not an Ed25519 private key (want 64 hex digits, the 32-byte seed)
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from driftline.errors import DriftlineError

__all__ = [
    "ALGORITHM",
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "TrustedKeys",
    "key_id",
    "load_or_create_signing_key",
    "private_key_from_hex",
    "public_hex",
    "public_key_file",
    "public_key_from_hex",
    "trusted_keys",
]

ALGORITHM = "ed25519"


def private_key_from_hex(text: str, where: str) -> Ed25519PrivateKey:
    """The private key from its hex seed; ``where`` (a config key or a path) names it in errors."""
    try:
        return Ed25519PrivateKey.from_private_bytes(_hex32(text))
    except ValueError:
        raise DriftlineError(f"{where}: not an Ed25519 private key (want 64 hex digits, the 32-byte seed)") from None


def public_key_from_hex(text: str, where: str) -> Ed25519PublicKey:
    """The public key from its hex bytes; ``where`` names it in errors."""
    try:
        return Ed25519PublicKey.from_public_bytes(_hex32(text))
    except ValueError:
        raise DriftlineError(
            f"{where}: not an Ed25519 public key (want 64 hex digits; the trainer writes it "
            f"to signing.pub beside its signing key)"
        ) from None


def _hex32(text: str) -> bytes:
    raw = bytes.fromhex(text.strip())
    if len(raw) != 32:
        raise ValueError("not 32 bytes")
    return raw


def _public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_hex(key: Ed25519PublicKey) -> str:
    return _public_raw(key).hex()


def key_id(key: Ed25519PublicKey) -> str:
    """A short fingerprint of the public key: tells a wrong key apart from tampering."""
    return hashlib.sha256(b"driftline-key-id|" + _public_raw(key)).hexdigest()[:12]


def public_key_file(private_key_file: str | os.PathLike[str]) -> Path:
    """Where the trainer writes the public key: ``signing.key`` → ``signing.pub``."""
    return Path(private_key_file).with_suffix(".pub")


def load_or_create_signing_key(
    explicit: str, key_file: str | os.PathLike[str], create: bool
) -> tuple[Ed25519PrivateKey, bool]:
    """The trainer's key: ``explicit`` hex (config/env) → ``key_file`` → a new key written there.

    Returns ``(key, created)``. A new key's seed goes to ``key_file`` (0600) and its public
    key to `public_key_file` (0644), so a demo works without setup and no default key
    exists in the code. The public file is rewritten when missing.
    """
    if explicit:
        return private_key_from_hex(explicit, "trainer.signing_key"), False
    path = Path(key_file)
    if path.exists():
        key = private_key_from_hex(path.read_text(encoding="utf-8"), str(path))
        _write_public(path, key)
        return key, False
    if not create:
        raise DriftlineError(
            f"no signing key: set [trainer] signing_key / DRIFTLINE_TRAINER_SIGNING_KEY or provide {path}"
        )
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()).hex()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(seed + "\n")
    _write_public(path, key)
    return key, True


def _write_public(private_file: Path, key: Ed25519PrivateKey) -> None:
    public = public_key_file(private_file)
    if not public.exists():
        tmp = public.with_suffix(".pub.tmp")
        tmp.write_text(public_hex(key.public_key()) + "\n", encoding="utf-8")
        os.replace(tmp, public)


KeySource = Callable[[], list[Ed25519PublicKey]]


class TrustedKeys:
    """The public keys a reader verifies with, by key id (`key_id`).

    ``source`` (a key file) is read again, at most every ``reload_s`` seconds, when a record
    names a key id not trusted yet: a key added to ``signing.pub`` — or the file the trainer
    writes on its first start, after this reader started — is picked up without a restart.

    Examples:
        >>> a, b = (private_key_from_hex(h * 32, "k").public_key() for h in ("11", "22"))
        >>> keys = TrustedKeys([a, b])
        >>> keys.get(key_id(b)) is b, keys.get("nosuch") is None, len(keys.ids)
        (True, True, 2)
    """

    def __init__(self, keys: Iterable[Ed25519PublicKey] = (), source: KeySource | None = None, reload_s: float = 5.0):
        self._fixed = {key_id(k): k for k in keys}
        self._by_id = dict(self._fixed)
        self._source = source
        self._reload_s = reload_s
        self._loaded_at = float("-inf")
        if source is not None:
            self._reload()

    @classmethod
    def of(cls, keys: Ed25519PublicKey | Iterable[Ed25519PublicKey] | TrustedKeys) -> TrustedKeys:
        """``keys`` as a `TrustedKeys` (one key, several, or already one)."""
        if isinstance(keys, TrustedKeys):
            return keys
        if isinstance(keys, Ed25519PublicKey):
            return cls([keys])
        return cls(keys)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._by_id))

    def get(self, kid: str) -> Ed25519PublicKey | None:
        """The trusted key with id ``kid``, or None (after one reload of the source, if due)."""
        key = self._by_id.get(kid)
        if key is None and self._source is not None and time.monotonic() - self._loaded_at >= self._reload_s:
            self._reload()
            key = self._by_id.get(kid)
        return key

    def _reload(self) -> None:
        self._loaded_at = time.monotonic()
        assert self._source is not None
        try:
            loaded = self._source()
        except DriftlineError:
            return  # a half-written or missing file: keep what is trusted, try again later
        self._by_id = {**{key_id(k): k for k in loaded}, **self._fixed}


def _keys_in(text: str, where: str) -> list[Ed25519PublicKey]:
    """Public keys in ``text``: hex, separated by commas, spaces or lines; ``#`` starts a comment."""
    words = re.split(r"[\s,]+", re.sub(r"#[^\n]*", "", text))
    return [public_key_from_hex(word, where) for word in words if word]


def trusted_keys(
    explicit: str, key_file: str | os.PathLike[str], trainer_key: str = "", *, required: bool = True
) -> TrustedKeys:
    """Every key a reader trusts: ``explicit`` hex keys (config/env; several allowed), the
    public half of ``trainer_key`` (a process whose config holds it anyway), and the keys in
    ``key_file`` (``signing.pub``; several lines allowed), which is re-read when an unknown
    key id shows up. ``required``: raise now if there is none (a subscriber that could never
    load anything); a stream worker starts anyway and picks the file up when it appears."""
    fixed = _keys_in(explicit, "subscriber.verify_key") if explicit.strip() else []
    if trainer_key:
        fixed.append(private_key_from_hex(trainer_key, "trainer.signing_key").public_key())
    path = Path(key_file) if str(key_file) else None

    def from_file() -> list[Ed25519PublicKey]:
        assert path is not None
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            raise DriftlineError(
                f"no verify key: set [subscriber] verify_key / DRIFTLINE_SUBSCRIBER_VERIFY_KEY "
                f"or copy the trainer's signing.pub to {path}"
            ) from None
        return _keys_in(text, str(path))

    if required and not fixed:
        if path is None:
            raise DriftlineError("no verify key: set [subscriber] verify_key / DRIFTLINE_SUBSCRIBER_VERIFY_KEY")
        if not from_file():
            raise DriftlineError(f"{path}: holds no public key; copy the trainer's signing.pub there")
    return TrustedKeys(fixed, from_file if path is not None else None)
