"""Human commands on the registry: approve, reject, promote, roll back, pause, resume (pure).

Each function takes the current ``RegistryState`` and a ``ModelCommand`` and returns the
records to write — or a ``CommandRefused`` audit record saying why not. Every pointer
move carries the actor, the reason and the from- and to-version.
"""

from __future__ import annotations

from driftline.consumers.registry.state import Output, RegistryState
from driftline.schemas.registry import (
    CommandRefused,
    ModelCommand,
    ModelPaused,
    ModelResumed,
    ModelVersion,
    ModelVersionApproved,
    ModelVersionPromoted,
    ModelVersionRejected,
    ModelVersionRolledBack,
    registry_key,
)

__all__ = ["apply_command", "promotion", "refuse"]


def refuse(cmd: ModelCommand, reason: str, code: str = "", actor: str | None = None) -> list[Output]:
    """The audit record of a refused ``cmd``; ``code`` and ``actor`` for a signature/rights refusal
    (``actor`` then the verified name, or "" for an unknown sender whose claim is kept apart)."""
    claimed = "" if actor is None or actor == cmd.actor else cmd.actor
    event = CommandRefused(
        cmd.model_id, cmd.id, cmd.type, cmd.actor if actor is None else actor, reason, code=code, claimed_actor=claimed
    )
    return [Output("audit", cmd.model_id, event.to_dict())]


def _approve(state: RegistryState, cmd: ModelCommand) -> list[Output]:
    record = state.version(cmd.model_id, cmd.version or "")
    if record is None:
        return refuse(cmd, f"no version {cmd.version} of {cmd.model_id}")
    if record.status != "pending_approval":
        return refuse(cmd, f"{cmd.model_id} {record.version} is {record.status}, not pending_approval")
    approved = record.with_status("approved", cmd.actor, cmd.reason)
    event = ModelVersionApproved(cmd.model_id, record.version, cmd.actor, cmd.reason, cmd.id)
    return [
        Output("registry", registry_key(cmd.model_id, record.version), approved.to_dict()),
        Output("audit", cmd.model_id, event.to_dict()),
        *promotion(approved, state, cmd.actor, f"approved: {cmd.reason}", cmd.id),
    ]


def _reject(state: RegistryState, cmd: ModelCommand) -> list[Output]:
    record = state.version(cmd.model_id, cmd.version or "")
    if record is None:
        return refuse(cmd, f"no version {cmd.version} of {cmd.model_id}")
    if record.status == "rejected":
        return refuse(cmd, f"{cmd.model_id} {record.version} is already rejected")
    if state.serving_version(cmd.model_id) == record.version:
        return refuse(cmd, f"{cmd.model_id} {record.version} is serving: roll back first")
    rejected = record.with_status("rejected", cmd.actor, cmd.reason)
    event = ModelVersionRejected(cmd.model_id, record.version, cmd.actor, cmd.reason, cmd.id)
    return [
        Output("registry", registry_key(cmd.model_id, record.version), rejected.to_dict()),
        Output("audit", cmd.model_id, event.to_dict()),
    ]


def _promote(state: RegistryState, cmd: ModelCommand) -> list[Output]:
    record = state.version(cmd.model_id, cmd.version or "")
    if record is None:
        return refuse(cmd, f"no version {cmd.version} of {cmd.model_id}")
    if record.status != "approved":
        hint = "approve it first" if record.status == "pending_approval" else "a rejected version never serves"
        return refuse(cmd, f"{cmd.model_id} {record.version} is {record.status}: {hint}")
    if state.serving_version(cmd.model_id) == record.version:
        return refuse(cmd, f"{cmd.model_id} {record.version} is already serving")
    return promotion(record, state, cmd.actor, cmd.reason, cmd.id)


def _rollback(state: RegistryState, cmd: ModelCommand) -> list[Output]:
    current = state.serving_version(cmd.model_id)
    if current is None:
        return refuse(cmd, f"{cmd.model_id} serves nothing: nothing to roll back")
    target = cmd.version or state.rollback_target(cmd.model_id)
    if target is None:
        return refuse(cmd, f"{cmd.model_id} has no earlier approved version than {current}")
    record = state.version(cmd.model_id, target)
    if record is None or record.status != "approved":
        status = "missing" if record is None else record.status
        return refuse(cmd, f"cannot roll {cmd.model_id} back to {target}: {status}")
    if target == current:
        return refuse(cmd, f"{cmd.model_id} already serves {target}")
    return promotion(record, state, cmd.actor, cmd.reason, cmd.id, rollback=True)


def _pause(state: RegistryState, cmd: ModelCommand) -> list[Output]:
    if cmd.model_id not in state.models():
        return refuse(cmd, f"no model {cmd.model_id!r} in the registry")
    if cmd.model_id in state.paused:
        return refuse(cmd, f"{cmd.model_id} is already paused")
    event = ModelPaused(cmd.model_id, cmd.actor, cmd.reason, cmd.id)
    return [Output("audit", cmd.model_id, event.to_dict())]


def _resume(state: RegistryState, cmd: ModelCommand) -> list[Output]:
    if cmd.model_id not in state.paused:
        return refuse(cmd, f"{cmd.model_id} is not paused")
    event = ModelResumed(cmd.model_id, cmd.actor, cmd.reason, cmd.id)
    return [Output("audit", cmd.model_id, event.to_dict())]


_HANDLERS = {
    "approve_version": _approve,
    "reject_version": _reject,
    "promote_version": _promote,
    "rollback_model": _rollback,
    "pause_model": _pause,
    "resume_model": _resume,
}


def apply_command(state: RegistryState, cmd: ModelCommand) -> list[Output]:
    """The records that carry out ``cmd`` (``register_model`` is the trainer's, not here)."""
    if cmd.id in state.handled:
        return refuse(cmd, "duplicate command id (already handled)")
    return _HANDLERS[cmd.type](state, cmd)


def promotion(
    record: ModelVersion, state: RegistryState, actor: str, reason: str, command_id: str, rollback: bool = False
) -> list[Output]:
    """Move the serving pointer to ``record``: model-updates value plus its audit copy.

    The move's ``sequence`` is one more than the model's last; the trainer signs the
    model-updates value before it writes it (`driftline.trust.pointer_moves.sign_pointer`)."""
    cls = ModelVersionRolledBack if rollback else ModelVersionPromoted
    move = cls(
        record.model_id,
        record.version,
        state.serving_version(record.model_id),
        actor,
        reason,
        command_id,
        record.artifact.to_dict(),
        record.reference_profile,
        record.spec,
        record.metrics,
        sequence=state.last_sequence(record.model_id) + 1,
        status=record.status,
    )
    return [
        Output("model_updates", record.model_id, move.to_dict()),
        Output("audit", record.model_id, move.for_audit()),
    ]
