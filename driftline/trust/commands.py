"""Signed governance commands: proof of who moved or approved a version, not a free-text name.

On a control topic anyone with write access can write, ``--by NAME`` proves nothing. So
every `ModelCommand` (approve, reject, promote, rollback, pause, resume, register) carries
an Ed25519 ``command_signature`` by an operator key over its whole content — its ``id``
(random, the nonce), its ``at`` (the timestamp) and its ``actor`` included. The trainer
accepts it only if the key is a configured operator (`OperatorKeys`, ``[governance]
operators``), the signature verifies, the ``actor`` is that key's name, the id was never
seen (the audit log keeps every handled id, so replays stay refused across restarts), it
is not older than ``[governance] command_max_age_s`` (nor from the future) and the key's
roles permit it (`permits`). The audit ``actor`` is then the verified name.

Roles: ``operator`` may send every command except approving a *major* bump, which needs
``approver`` (an approver may do all an operator may); ``stream`` keys may only sign the
stream's own retrain requests and version checks. The trainer-internal actors
(`RESERVED_ACTORS`) can be neither an operator's name nor a command's actor.

Signed bytes: ``driftline-command-v1|`` + the command as canonical JSON (orjson, sorted
keys, after a JSON round trip) without ``command_signature``.

Examples:
    >>> from driftline.trust.keys import Ed25519PrivateKey, public_hex
    >>> key = Ed25519PrivateKey.generate()
    >>> ops = OperatorKeys.from_table({"ana": {"key": public_hex(key.public_key()), "roles": ["operator"]}}, "x")
    >>> cmd = {"type": "promote_version", "model_id": "churn", "actor": "ana", "id": "c1" * 8, "at": 100.0}
    >>> verify_command(sign_command(cmd, key), ops, now=101.0, max_age_s=60, seen=set()).name
    'ana'
    >>> try:
    ...     verify_command({**sign_command(cmd, key), "model_id": "other"}, ops, now=101.0, max_age_s=60, seen=set())
    ... except CommandRejected as exc:
    ...     print(exc.reason)
    bad_signature
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from driftline.errors import DriftlineError
from driftline.trust.keys import (
    ALGORITHM,
    Ed25519PrivateKey,
    Ed25519PublicKey,
    key_id,
    private_key_from_hex,
    public_hex,
    public_key_from_hex,
)

__all__ = [
    "FUTURE_SKEW_S",
    "RESERVED_ACTORS",
    "ROLES",
    "UNVERIFIED_REASONS",
    "CommandRejected",
    "Operator",
    "OperatorKeys",
    "VerifiedCommand",
    "load_operator_key",
    "operator_line",
    "permits",
    "sign_command",
    "verify_command",
    "verify_signature",
    "write_operator_key",
]

ROLES = ("operator", "approver", "stream")
#: Names only the trainer itself writes as an actor.
RESERVED_ACTORS = frozenset({"trainer", "gate"})
#: Refusals of a record whose sender is unknown: its ``id`` is not marked handled, so a
#: forged copy of a genuine command's id cannot make the genuine one look replayed.
UNVERIFIED_REASONS = frozenset({"unsigned", "unknown_key", "bad_signature", "reserved_actor"})
#: How far a command's ``at`` may be ahead of the trainer's clock (clock skew).
FUTURE_SKEW_S = 60.0
_PREFIX = b"driftline-command-v1|"
_FIELD = "command_signature"
_STREAM_TYPES = frozenset({"retrain_requested", "version_checked"})


class CommandRejected(DriftlineError):
    """A command the trainer must not carry out; ``reason`` is a short code kept in the audit record."""

    def __init__(self, reason: str, message: str, signer: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.signer = signer
        """The verified key's name when the signature held (a replay, a stale command…), else ""."""


@dataclass(frozen=True)
class Operator:
    """One trusted key: its name (the audit ``actor``), public key and roles."""

    name: str
    key: Ed25519PublicKey
    roles: frozenset[str]

    @property
    def key_id(self) -> str:
        return key_id(self.key)


class OperatorKeys:
    """The configured operator keys, by key id (``[governance] operators`` and ``operators_file``).

    Each entry: ``NAME = { key = "<64 hex digits>", roles = ["operator"] }`` — the line
    ``driftline operators keygen`` prints.
    """

    def __init__(self, operators: Collection[Operator] = ()) -> None:
        self._by_id = {op.key_id: op for op in operators}
        self._by_name = {op.name: op for op in operators}

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str) -> OperatorKeys:
        """Operators from a TOML table name → {key, roles}; ``where`` names the setting in errors."""
        found = []
        for name, entry in table.items():
            at = f"{where}.{name}"
            if name in RESERVED_ACTORS:
                raise DriftlineError(f"{at}: {name!r} is the trainer's own actor name; choose another operator name")
            if not isinstance(entry, Mapping) or not isinstance(entry.get("key"), str):
                raise DriftlineError(f'{at}: want {{ key = "<hex public key>", roles = ["operator"] }}')
            roles = entry.get("roles", ["operator"])
            if not isinstance(roles, list) or not roles or not set(roles) <= set(ROLES):
                raise DriftlineError(f"{at}.roles: want a non-empty list among {list(ROLES)}, got {roles!r}")
            found.append(Operator(name, public_key_from_hex(entry["key"], f"{at}.key"), frozenset(roles)))
        return cls(found)

    @classmethod
    def load(cls, table: Mapping[str, Any], path: str) -> OperatorKeys:
        """``[governance] operators`` plus the entries of ``operators_file`` (same lines, as TOML)."""
        merged = dict(table)
        if path:
            try:
                merged.update(tomllib.loads(Path(path).read_text(encoding="utf-8")))
            except OSError as exc:
                raise DriftlineError(f"governance.operators_file: cannot read {path}: {exc.strerror}") from None
            except tomllib.TOMLDecodeError as exc:
                raise DriftlineError(f"governance.operators_file: {path} is not TOML: {exc}") from None
        return cls.from_table(merged, "governance.operators")

    def get(self, kid: str) -> Operator | None:
        return self._by_id.get(kid)

    def __iter__(self) -> Any:
        return iter(sorted(self._by_name.values(), key=lambda op: op.name))

    def __len__(self) -> int:
        return len(self._by_id)

    def has_role(self, role: str) -> bool:
        return any(role in op.roles for op in self._by_id.values())


@dataclass(frozen=True)
class VerifiedCommand:
    """Who signed a command that passed `verify_command`."""

    name: str
    roles: frozenset[str]
    key_id: str


def _plain(doc: Mapping[str, Any]) -> dict[str, Any]:
    content = {k: v for k, v in doc.items() if k != _FIELD}
    plain: dict[str, Any] = orjson.loads(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY))
    return plain


def _signed_bytes(content: Mapping[str, Any]) -> bytes:
    return _PREFIX + orjson.dumps(content, option=orjson.OPT_SORT_KEYS)


def sign_command(doc: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """``doc`` (a command's value, with its ``id``, ``at`` and ``actor``) with its ``command_signature``."""
    plain = _plain(doc)
    signature = key.sign(_signed_bytes(plain)).hex()
    return {**plain, _FIELD: {"alg": ALGORITHM, "key_id": key_id(key.public_key()), "value": signature}}


def verify_command(
    doc: Mapping[str, Any], operators: OperatorKeys, now: float, max_age_s: float, seen: Collection[str]
) -> VerifiedCommand:
    """Raise `CommandRejected` unless ``doc`` is signed by a configured key, its ``actor`` is the
    key's name, its id never seen and it is fresh; the signer otherwise. Roles are `permits`' job."""
    what = f"{doc.get('type')!s} {doc.get('model_id')!s}"
    actor = doc.get("actor")
    if actor in RESERVED_ACTORS:
        raise CommandRejected(
            "reserved_actor", f"{what}: actor {actor!r} is the trainer's own; no command may claim it"
        )
    signer = verify_signature(doc, operators)
    if actor != signer.name:
        raise CommandRejected(
            "actor_mismatch",
            f"{what}: actor {actor!r} but signed by {signer.name!r}'s key; the actor is the key's name",
            signer.name,
        )
    command_id, at = doc.get("id"), doc.get("at")
    if not isinstance(command_id, str) or len(command_id) < 16:
        raise CommandRejected(
            "malformed", f"{what}: id (the nonce) must be a random string of 16+ characters", signer.name
        )
    if command_id in seen:
        raise CommandRejected(
            "replayed", f"{what}: command id {command_id} was already handled (a replay)", signer.name
        )
    if not isinstance(at, (int, float)) or isinstance(at, bool) or not math.isfinite(at):
        raise CommandRejected("malformed", f"{what}: at (the signing time) must be a number", signer.name)
    if now - at > max_age_s:
        raise CommandRejected(
            "too_old",
            f"{what}: signed {now - at:.0f} s ago, more than [governance] command_max_age_s={max_age_s:g}; "
            "sign and send it again",
            signer.name,
        )
    if at - now > FUTURE_SKEW_S:
        raise CommandRejected(
            "from_the_future", f"{what}: signed {at - now:.0f} s ahead of the trainer's clock", signer.name
        )
    return signer


def verify_signature(doc: Mapping[str, Any], operators: OperatorKeys) -> VerifiedCommand:
    """The configured key that signed ``doc``, or `CommandRejected` (``unsigned``, ``unknown_key``,
    ``bad_signature``). Alone, for the stream's records, whose ids are deterministic (the
    trainer de-duplicates them by id) and which carry no actor."""
    what = f"{doc.get('type')!s} {doc.get('model_id')!s}"
    signature = doc.get(_FIELD)
    if not isinstance(signature, Mapping) or not isinstance(signature.get("value"), str):
        hint = "" if len(operators) else " (no operator keys are configured: see `driftline operators keygen`)"
        raise CommandRejected(
            "unsigned", f"{what}: not signed by an operator key; sign it with [operator] key_file{hint}"
        )
    if signature.get("alg") != ALGORITHM:
        raise CommandRejected("unsigned", f"{what}: signature algorithm {signature.get('alg')!r} is not {ALGORITHM}")
    operator = operators.get(str(signature.get("key_id")))
    if operator is None:
        raise CommandRejected(
            "unknown_key",
            f"{what}: signed with key {signature.get('key_id')!s}, which is not in [governance] operators",
        )
    try:
        operator.key.verify(bytes.fromhex(signature["value"]), _signed_bytes(_plain(doc)))
    except (InvalidSignature, ValueError):
        raise CommandRejected("bad_signature", f"{what}: bad signature (the command was altered)") from None
    return VerifiedCommand(operator.name, operator.roles, operator.key_id)


def permits(roles: Collection[str], command_type: str, bump: str | None = None) -> str | None:
    """Why ``roles`` may not send ``command_type`` (for an approval: of a ``bump``), or None.

    Examples:
        >>> permits({"operator"}, "approve_version", "major")
        "approving a major bump needs the 'approver' role"
        >>> permits({"approver"}, "approve_version", "major") is None, permits({"stream"}, "retrain_requested")
        (True, None)
    """
    if command_type in _STREAM_TYPES:
        return None if "stream" in roles else f"{command_type} must be signed by a 'stream' key"
    if not {"operator", "approver"} & set(roles):
        return f"{command_type} needs the 'operator' or 'approver' role"
    if command_type == "approve_version" and bump == "major" and "approver" not in roles:
        return "approving a major bump needs the 'approver' role"
    return None


# -- operator key files -------------------------------------------------------------------
def write_operator_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """A new operator key, its hex seed written to ``path`` (0600, never overwritten)."""
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()).hex()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise DriftlineError(f"{target} exists: keep it, or remove it first to make a new key") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(seed + "\n")
    return key


def load_operator_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """The operator's private key from its file (``[operator] key_file``)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DriftlineError(
            f"operator.key_file: cannot read {path}: {exc.strerror}; make one with `driftline operators keygen NAME`"
        ) from None
    return private_key_from_hex(text, str(path))


def operator_line(name: str, key: Ed25519PublicKey, roles: Collection[str]) -> str:
    """The entry to add to ``[governance] operators`` (or an ``operators_file``) for this key."""
    listed = ", ".join(f'"{r}"' for r in roles)
    return f'{name} = {{ key = "{public_hex(key)}", roles = [{listed}] }}'
