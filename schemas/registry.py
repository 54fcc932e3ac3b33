"""The model registry's contracts: versions, pointer moves, audit records and commands.

Declared once here so the trainer (their only writer), the CLI, the subscriber library and
the stream agent share one shape. Topics and keys:

- ``driftline.registry`` (compacted, key ``model_id@version``): one ``ModelVersion`` per
  version, rewritten whole when its status changes (compaction keeps the latest).
- ``driftline.model-updates`` (compacted, key ``model_id``): what to serve now — a
  ``ModelVersionPromoted`` or ``ModelVersionRolledBack``, each carrying the artifact and
  the reference profile of the version to serve.
- ``driftline.audit`` (append-only, kept forever): every decision, each with the control
  command or request id that caused it (which is how a restarted trainer knows what it
  has already handled).
- ``driftline.control`` (key ``model_id``): ``ModelCommand`` written by the CLI, next to
  the monitor's ``RetrainRequested``.

Every value is a JSON object whose ``type`` selects the class; ``decode`` dispatches.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

from driftline.schemas.control import RetrainRequested, VersionChecked

__all__ = [
    "COMMAND_TYPES",
    "STATUSES",
    "ArtifactRef",
    "CommandRefused",
    "ModelCommand",
    "ModelPaused",
    "ModelResumed",
    "ModelVersion",
    "ModelVersionApproved",
    "ModelVersionCreated",
    "ModelVersionPromoted",
    "ModelVersionRejected",
    "ModelVersionRolledBack",
    "OffsetRange",
    "RetrainDeferred",
    "TrainingLineage",
    "TrainingSkipped",
    "VersionUnderperforming",
    "decode",
    "registry_key",
]

#: A version's lifecycle status on ``driftline.registry``. Whether it *serves* is not a
#: status: that is the model's pointer on ``driftline.model-updates``.
STATUSES = ("pending_approval", "approved", "rejected")
#: Commands the CLI writes to ``driftline.control``.
COMMAND_TYPES = (
    "register_model",
    "approve_version",
    "reject_version",
    "promote_version",
    "rollback_model",
    "pause_model",
    "resume_model",
)


def registry_key(model_id: str, version: str) -> str:
    """``model_id@version``, the compaction key of a version on ``driftline.registry``."""
    return f"{model_id}@{version}"


def _now() -> float:
    return round(time.time(), 3)


@dataclass(frozen=True)
class OffsetRange:
    """Offsets ``[start, end)`` of one partition (``end`` exclusive)."""

    partition: int
    start: int
    end: int

    def to_dict(self) -> dict[str, int]:
        return {"partition": self.partition, "start": self.start, "end": self.end}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OffsetRange:
        return cls(int(d["partition"]), int(d["start"]), int(d["end"]))


@dataclass(frozen=True)
class TrainingLineage:
    """Exactly which rows trained a version, so anyone can rebuild the set.

    Selection = the records of ``topic`` in ``ranges`` whose ``model_id`` matches, with a
    label and features, ``ts >= min_ts`` (if set), de-duplicated by ``event_id`` (first by
    offset wins), ordered by ``(ts, event_id)``; ``sha256`` hashes those rows as canonical
    JSON lines (orjson, sorted keys). ``policy`` says how the ranges were chosen.
    """

    topic: str
    model_id: str
    ranges: tuple[OffsetRange, ...]
    n_rows: int
    sha256: str
    policy: str
    min_ts: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "model_id": self.model_id,
            "ranges": [r.to_dict() for r in self.ranges],
            "n_rows": self.n_rows,
            "sha256": self.sha256,
            "policy": self.policy,
            "min_ts": self.min_ts,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainingLineage:
        return cls(
            d["topic"],
            d["model_id"],
            tuple(OffsetRange.from_dict(r) for r in d["ranges"]),
            int(d["n_rows"]),
            d["sha256"],
            d["policy"],
            d.get("min_ts"),
        )


@dataclass(frozen=True)
class ArtifactRef:
    """A signed, serialised model: inline (base64) or at ``location`` (path), never both.

    ``signature`` = the ``signature_alg`` (``ed25519``) signature, hex, by the key whose
    public fingerprint is ``key_id``, over ``driftline-artifact-v1|model_id|version|sha256``
    — binding the bytes to one version, so a valid artifact cannot be replayed as another.
    """

    format: str
    sha256: str
    size: int
    signature: str
    key_id: str
    inline: str | None = None
    location: str | None = None
    signature_alg: str = ""

    def to_dict(self, with_inline: bool = True) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if not with_inline:
            d["inline"] = None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArtifactRef:
        return cls(
            d["format"],
            d["sha256"],
            int(d["size"]),
            d.get("signature") or "",
            d.get("key_id") or "",
            d.get("inline"),
            d.get("location"),
            d.get("signature_alg") or "",
        )


@dataclass(frozen=True)
class ModelVersion:
    """One version on ``driftline.registry``: everything needed to judge and serve it.

    ``spec`` = task, model kind, hyperparameters, feature names (what semver compares);
    ``metrics`` the candidate's on its validation rows, ``champion_metrics`` the champion's
    on the same rows; ``gate`` the verdict with every check.
    """

    model_id: str
    version: str
    status: str
    bump: str
    parent_version: str | None
    request_id: str
    spec: dict[str, Any]
    metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    gate: dict[str, Any]
    lineage: TrainingLineage
    artifact: ArtifactRef
    reference_profile: dict[str, Any]
    created_at: float = field(default_factory=_now)
    status_by: str = "trainer"
    status_reason: str = ""
    updated_at: float = field(default_factory=_now)
    durations: dict[str, float] = field(default_factory=dict)
    trigger: dict[str, Any] = field(default_factory=dict)
    """What asked for this version: request ids, rule, reasons, drift start, evidence summary."""
    selection: dict[str, Any] = field(default_factory=dict)
    """How it was chosen: validation rows' range, every (window, learner) tried and its figures."""

    type: ClassVar[str] = "model_version"

    def with_status(self, status: str, by: str, reason: str) -> ModelVersion:
        return dataclasses.replace(self, status=status, status_by=by, status_reason=reason, updated_at=_now())

    def to_dict(self) -> dict[str, Any]:
        d = {"type": self.type, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}
        d["lineage"] = self.lineage.to_dict()
        d["artifact"] = self.artifact.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelVersion:
        kwargs: dict[str, Any] = {f.name: d.get(f.name) for f in dataclasses.fields(cls) if f.name in d}
        kwargs["lineage"] = TrainingLineage.from_dict(d["lineage"])
        kwargs["artifact"] = ArtifactRef.from_dict(d["artifact"])
        return cls(**kwargs)


class _Event:
    """Plain dataclass events: ``to_dict`` adds ``type``; ``from_dict`` ignores unknown keys."""

    type: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **dataclasses.asdict(self)}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class ModelVersionCreated(_Event):
    """Audit: the trainer built and judged a candidate (``status`` says what happened)."""

    model_id: str
    version: str
    status: str
    bump: str
    parent_version: str | None
    request_id: str
    metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    gate: dict[str, Any]
    lineage: dict[str, Any]
    at: float = field(default_factory=_now)
    trigger: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, Any] = field(default_factory=dict)
    type: ClassVar[str] = "model_version_created"


@dataclass(frozen=True)
class ModelVersionApproved(_Event):
    """Audit: a human approved a ``pending_approval`` version (it is then promoted)."""

    model_id: str
    version: str
    actor: str
    reason: str
    command_id: str
    at: float = field(default_factory=_now)
    type: ClassVar[str] = "model_version_approved"


@dataclass(frozen=True)
class ModelVersionRejected(_Event):
    """Audit: a version will never serve — the gate (``actor="gate"``) or a human said no."""

    model_id: str
    version: str
    actor: str
    reason: str
    command_id: str
    gate: dict[str, Any] | None = None
    at: float = field(default_factory=_now)
    type: ClassVar[str] = "model_version_rejected"


@dataclass(frozen=True)
class _PointerMove(_Event):
    """A move of the model's serving pointer: what ``driftline.model-updates`` carries.

    Holds all a subscriber needs to serve ``version`` without reading the registry
    (artifact, reference profile, spec) and who moved it from ``from_version`` and why.
    ``sequence`` counts the model's moves (1, 2, …; a rollback is a move too) and
    ``status`` is the version's at the move; the trainer signs the whole move
    (``pointer_signature``, `driftline.trust.pointer_moves`), and readers
    refuse a move that is unsigned, not servable or older than the one they serve.
    """

    model_id: str
    version: str
    from_version: str | None
    actor: str
    reason: str
    command_id: str
    artifact: dict[str, Any]
    reference_profile: dict[str, Any] | None
    spec: dict[str, Any]
    metrics: dict[str, float]
    at: float = field(default_factory=_now)
    sequence: int = 0
    status: str = "approved"

    def for_audit(self) -> dict[str, Any]:
        """The audit copy: the same move without the artifact bytes and the profile."""
        d = self.to_dict()
        d["artifact"] = {**d["artifact"], "inline": None}
        d["reference_profile"] = None
        return d


@dataclass(frozen=True)
class ModelVersionPromoted(_PointerMove):
    type: ClassVar[str] = "model_version_promoted"


@dataclass(frozen=True)
class ModelVersionRolledBack(_PointerMove):
    type: ClassVar[str] = "model_version_rolled_back"


@dataclass(frozen=True)
class TrainingSkipped(_Event):
    """Audit: a retrain request was recorded but not acted on (duplicate, cooldown, …)."""

    model_id: str
    request_id: str
    reason: str
    detail: str = ""
    at: float = field(default_factory=_now)
    type: ClassVar[str] = "training_skipped"


@dataclass(frozen=True)
class RetrainDeferred(_Event):
    """Audit: a retrain request is kept pending (cooldown, too few rows since the drift, paused…).

    One pending request per model: ``pending_id`` is the request that opened it; a later
    request merges into it (``request_id`` is then the merged one) and the earliest
    ``drift_start`` wins. ``urgent`` requests (the serving version underperforms) skip
    the cooldown. The pending request ends with the ``ModelVersionCreated`` or
    ``TrainingSkipped`` whose ``request_id`` is ``pending_id``.
    """

    model_id: str
    request_id: str
    pending_id: str
    reason: str
    drift_start: float | None = None
    urgent: bool = False
    rule: str = ""
    min_rows: int = 0
    evidence: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=_now)
    type: ClassVar[str] = "retrain_deferred"


@dataclass(frozen=True)
class VersionUnderperforming(_Event):
    """Audit: the stream found the serving version's live metric short of its gate figures
    (or of the online challenger); the evidence holds both figures and the rows behind them."""

    model_id: str
    version: str | None
    request_id: str
    rule: str
    live: dict[str, Any]
    gate: dict[str, Any]
    evidence: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=_now)
    type: ClassVar[str] = "version_underperforming"


@dataclass(frozen=True)
class _RetrainSwitch(_Event):
    """Audit: a person turned a model's automatic retraining off or on, and why."""

    model_id: str
    actor: str
    reason: str
    command_id: str
    at: float = field(default_factory=_now)


@dataclass(frozen=True)
class ModelPaused(_RetrainSwitch):
    """Requests for this model are recorded, not acted on, until it is resumed."""

    type: ClassVar[str] = "model_paused"


@dataclass(frozen=True)
class ModelResumed(_RetrainSwitch):
    type: ClassVar[str] = "model_resumed"


@dataclass(frozen=True)
class CommandRefused(_Event):
    """Audit: a control command that could not be carried out, and why.

    ``code`` names a refusal of the command's signature or rights (`driftline.trust.commands`:
    ``unsigned``, ``unknown_key``, ``bad_signature``, ``replayed``, ``too_old``, ``actor_mismatch``,
    ``reserved_actor``, ``not_allowed``…; empty for a refusal on the registry's state).
    ``actor`` is the verified key's name — empty when the sender is unknown, the name the
    command claimed is then in ``claimed_actor``.
    """

    model_id: str
    command_id: str
    command: str
    actor: str
    reason: str
    at: float = field(default_factory=_now)
    code: str = ""
    claimed_actor: str = ""
    type: ClassVar[str] = "command_refused"


@dataclass(frozen=True)
class ModelCommand:
    """A human's (or a script's) command on ``driftline.control``; ``type`` in ``COMMAND_TYPES``.

    ``id`` is unique per command (uuid4 unless given), so a re-sent command is carried out
    once. ``register_model`` names its training rows in ``training_set``
    (``{"topic", "ranges": [...]}``) — the CLI first writes the rows to
    ``driftline.labeled`` — and may declare the ``task``.
    """

    type: str
    model_id: str
    actor: str
    reason: str
    version: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    at: float = field(default_factory=_now)
    training_set: dict[str, Any] | None = None
    task: str | None = None

    def __post_init__(self) -> None:
        if self.type not in COMMAND_TYPES:
            raise ValueError(f"unknown command type {self.type!r}; known: {', '.join(COMMAND_TYPES)}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCommand:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


_BY_TYPE: dict[str, Any] = {
    c.type: c
    for c in (
        ModelVersion,
        ModelVersionCreated,
        ModelVersionApproved,
        ModelVersionRejected,
        ModelVersionPromoted,
        ModelVersionRolledBack,
        TrainingSkipped,
        RetrainDeferred,
        VersionUnderperforming,
        ModelPaused,
        ModelResumed,
        CommandRefused,
        RetrainRequested,
        VersionChecked,
    )
}


def decode(d: dict[str, Any]) -> Any:
    """The event object for a decoded JSON value, by its ``type``; ``None`` for unknown types.

    Examples
    --------
    >>> cmd = ModelCommand("approve_version", "churn", "ana", "looks good", version="2.0.0", id="c1", at=1.0)
    >>> decode(cmd.to_dict()) == cmd
    True
    >>> decode({"type": "something_else"}) is None
    True
    """
    kind = d.get("type")
    if kind in COMMAND_TYPES:
        return ModelCommand.from_dict(d)
    cls = _BY_TYPE.get(kind)  # type: ignore[arg-type]
    return None if cls is None else cls.from_dict(d)
