"""The registry's state, rebuilt from the topics the trainer writes — never kept only in memory.

``RegistryState`` folds records of ``driftline.registry`` (every version, latest status),
``driftline.model-updates`` (what each model serves) and ``driftline.audit`` (every
decision, with the request/command id that caused it). The trainer rebuilds it at start
(after ``init_transactions`` has aborted whatever a dead predecessor left open, so a
``read_committed`` read is final) and then applies its own committed outputs, so its
memory always equals what a restart would rebuild. The CLI uses the same fold to show
``models list|show|history``. Pure: the reading is ``driftline.consumers.trainer.state_loader``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from driftline.consumers.registry.retrain_queue import PendingRetrain
from driftline.consumers.registry.versioning import parse
from driftline.schemas.registry import (
    CommandRefused,
    ModelPaused,
    ModelResumed,
    ModelVersion,
    ModelVersionCreated,
    RetrainDeferred,
    TrainingSkipped,
)
from driftline.trust.commands import UNVERIFIED_REASONS

__all__ = ["Output", "RegistryState"]

_MOVES = ("model_version_promoted", "model_version_rolled_back")


@dataclass(frozen=True)
class Output:
    """One record the trainer writes: ``kind`` is ``registry`` | ``model_updates`` | ``audit``."""

    kind: str
    key: str
    value: dict[str, Any]


@dataclass
class RegistryState:
    """Versions, serving pointers, pointer history, handled ids and last training times."""

    versions: dict[str, dict[str, ModelVersion]] = field(default_factory=lambda: defaultdict(dict))
    serving: dict[str, dict[str, Any]] = field(default_factory=dict)
    moves: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    audit: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    handled: set[str] = field(default_factory=set)
    last_created_at: dict[str, float] = field(default_factory=dict)
    pending_retrains: dict[str, PendingRetrain] = field(default_factory=dict)
    """model_id → its one pending retrain request (``consumers.retrain_queue``)."""
    paused: set[str] = field(default_factory=set)
    """Models whose automatic retraining a person paused."""

    def apply(self, kind: str, key: str | None, value: dict[str, Any] | None) -> None:
        """Fold one record of ``kind``; ``value=None`` is a tombstone."""
        if kind == "registry" and value is not None:
            version = ModelVersion.from_dict(value)
            self.versions[version.model_id][version.version] = version
        elif kind == "model_updates" and key is not None:
            if value is None:
                self.serving.pop(key, None)
            else:
                self.serving[key] = value
        elif kind == "audit" and value is not None:
            self._apply_audit(value)

    def _apply_audit(self, value: dict[str, Any]) -> None:
        model_id = value.get("model_id", "")
        self.audit[model_id].append(value)
        kind = value.get("type")
        unverified = kind == CommandRefused.type and value.get("code") in UNVERIFIED_REASONS
        for id_key in ("request_id", "command_id"):
            if value.get(id_key) and not unverified:  # a forged copy must not use up a genuine id
                self.handled.add(value[id_key])
        trigger = value.get("trigger")
        if isinstance(trigger, dict):
            self.handled.update(str(i) for i in trigger.get("request_ids") or ())
        if kind == ModelVersionCreated.type:
            self.last_created_at[model_id] = max(self.last_created_at.get(model_id, 0.0), float(value["at"]))
        if kind in _MOVES:
            self.moves[model_id].append(value)
        if kind == RetrainDeferred.type:
            deferred = RetrainDeferred.from_dict(value)
            pending = self.pending_retrains.get(model_id)
            self.pending_retrains[model_id] = (
                PendingRetrain.from_deferred(deferred) if pending is None else pending.merge(deferred)
            )
        elif kind in (ModelVersionCreated.type, TrainingSkipped.type):
            pending = self.pending_retrains.get(model_id)
            if pending is not None and value.get("request_id") == pending.pending_id:
                del self.pending_retrains[model_id]
        elif kind == ModelPaused.type:
            self.paused.add(model_id)
        elif kind == ModelResumed.type:
            self.paused.discard(model_id)

    def apply_outputs(self, outputs: Iterable[Output]) -> None:
        for out in outputs:
            self.apply(out.kind, out.key, out.value)

    def serving_version(self, model_id: str) -> str | None:
        pointer = self.serving.get(model_id)
        return None if pointer is None else pointer["version"]

    def last_sequence(self, model_id: str) -> int:
        """The highest pointer-move sequence of ``model_id`` (0 before its first move)."""
        seen = [self.serving.get(model_id, {}).get("sequence")]
        seen += [move.get("sequence") for move in self.moves.get(model_id, ())]
        return max((s for s in seen if isinstance(s, int) and not isinstance(s, bool)), default=0)

    def champion(self, model_id: str) -> ModelVersion | None:
        """The registry record of the version the model serves now, if any."""
        version = self.serving_version(model_id)
        return None if version is None else self.versions.get(model_id, {}).get(version)

    def version(self, model_id: str, version: str) -> ModelVersion | None:
        return self.versions.get(model_id, {}).get(version)

    def taken(self, model_id: str) -> set[str]:
        return set(self.versions.get(model_id, {}))

    def pending(self) -> list[ModelVersion]:
        return [v for vs in self.versions.values() for v in vs.values() if v.status == "pending_approval"]

    def rollback_target(self, model_id: str) -> str | None:
        """The most recently served version older (semver) than the current one, not rejected."""
        current = self.serving_version(model_id)
        if current is None:
            return None
        for move in reversed(self.moves.get(model_id, [])):
            for candidate in (move["version"], move.get("from_version")):
                record = self.version(model_id, candidate) if candidate else None
                if record is not None and record.status == "approved" and parse(candidate) < parse(current):
                    return candidate
        return None

    def models(self) -> list[str]:
        return sorted(set(self.versions) | set(self.serving))
