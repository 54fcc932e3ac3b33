"""Settings of the trainer (``[trainer]``), the approval rules (``[governance]``) and
subscribers (``[subscriber]``).

Kept apart from the processes so ``driftline.config`` registers the sections without
importing confluent-kafka or River. Per-model overrides live in ``[trainer.models.<id>]``
and ``[governance.models]``; ``for_model`` resolves them into one ``ModelTrainingConfig``.

The gate's default thresholds are explicit values here, visible in the effective config:
clear both ``gate_floors`` and ``gate_non_regression`` and every candidate is rejected
(the gate fails closed, it never passes for lack of a rule).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from driftline.errors import ConfigError

__all__ = [
    "GovernanceSettings",
    "ModelTrainingConfig",
    "OperatorSettings",
    "SubscriberSettings",
    "TrainerSettings",
    "for_model",
]

_BUMPS = ("initial", "patch", "minor", "major")
_POLICIES = ("last_n", "since_drift")
_OVERRIDABLE = (
    "task",
    "model",
    "params",
    "policy",
    "max_rows",
    "min_rows",
    "validation_fraction",
    "cooldown_s",
    "gate_floors",
    "gate_non_regression",
    "min_rows_after_drift",
    "min_validation_rows",
    "follow_up_factor",
    "gate_beat_baseline",
)


def _default_floors() -> dict[str, float]:
    # Better than a coin on held-out newest rows; regression: better than predicting the mean.
    return {"accuracy": 0.5, "r2": 0.0}


def _default_non_regression() -> dict[str, dict[str, float]]:
    return {
        "accuracy": {"abs": 0.01},
        "macro_f1": {"abs": 0.02},
        "log_loss": {"rel": 0.1},
        "mae": {"rel": 0.05},
        "rmse": {"rel": 0.05},
    }


def _check(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError(key, problem)


@dataclasses.dataclass(frozen=True)
class TrainerSettings:
    """``[trainer]``: the registry's single writer.

    ``signing_key`` (or $DRIFTLINE_TRAINER_SIGNING_KEY, the hex Ed25519 seed) signs
    artifacts; when empty the key is read from ``signing_key_file``, generated there (0600,
    logged) on first start, with its public key beside it (``signing.pub``) for subscribers.
    ``model``: ``auto`` (converged scikit-learn learners; the training window and the
    learner are chosen by validation on the newest rows after the drift start), ``river``
    (one River pipeline), or ``plugin:module:function``. ``policy`` applies to ``river``
    and plug-ins: ``last_n`` (the model's last ``max_rows`` labeled rows) or
    ``since_drift`` (rows since the drift start, at most ``max_rows``).

    A request whose drift start is known waits (pending, never dropped) until
    ``min_rows_after_drift`` labeled rows exist after it; validation uses the newest
    ``validation_fraction`` of those post-drift rows, at least ``min_validation_rows``.
    The default of 600 lets the newest 200 post-drift rows tell a candidate at 0.97
    accuracy from a champion at chance by ~13 standard errors, and a 0.1 difference by
    ~3, while recovery waits only 600 labeled rows. After a published retrain, a
    follow-up is scheduled once ``follow_up_factor`` times as many post-drift rows exist
    (0 turns it off); it publishes only if it beats the serving version on the same rows.
    ``cooldown_s`` holds back drift-only requests; requests saying the serving version
    underperforms (``underperforming``, ``challenger``, ``follow_up``) skip it.
    """

    group_id: str = "driftline-trainer"
    transactional_id: str = "driftline-trainer-0"
    metrics_port: int = 9466
    signing_key: str = ""
    signing_key_file: str = ".driftline/signing.key"
    trusted_public_keys: str = ""
    """Public keys (hex, comma-separated) of signing keys used before a key rotation: the
    trainer still loads champions they signed, and can roll back to them."""
    artifact_dir: str = ".driftline/artifacts"
    inline_limit_bytes: int = 900 * 1024
    policy: str = "last_n"
    max_rows: int = 20_000
    min_rows: int = 200
    validation_fraction: float = 0.2
    cooldown_s: float = 600.0
    task: str = ""
    model: str = "auto"
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    gate_floors: dict[str, float] = dataclasses.field(default_factory=_default_floors)
    gate_non_regression: dict[str, Any] = dataclasses.field(default_factory=_default_non_regression)
    gate_beat_baseline: bool = True
    min_rows_after_drift: int = 600
    min_validation_rows: int = 200
    follow_up_factor: float = 4.0
    recheck_s: float = 0.5
    models: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(bool(self.transactional_id), "trainer.transactional_id", "must not be empty")
        _check(0 <= self.metrics_port <= 65535, "trainer.metrics_port", "must be 0-65535")
        _check(self.policy in _POLICIES, "trainer.policy", f"must be one of {_POLICIES}")
        _check(self.max_rows >= 1 and self.min_rows >= 2, "trainer.max_rows", "max_rows >= 1, min_rows >= 2")
        _check(0.0 < self.validation_fraction < 1.0, "trainer.validation_fraction", "must be in (0, 1)")
        _check(self.cooldown_s >= 0, "trainer.cooldown_s", "must be >= 0")
        _check(self.inline_limit_bytes >= 0, "trainer.inline_limit_bytes", "must be >= 0")
        _check(self.min_rows_after_drift >= 0, "trainer.min_rows_after_drift", "must be >= 0")
        _check(self.min_validation_rows >= 1, "trainer.min_validation_rows", "must be >= 1")
        _check(
            self.follow_up_factor == 0 or self.follow_up_factor > 1,
            "trainer.follow_up_factor",
            "must be 0 (off) or > 1",
        )
        _check(self.recheck_s > 0, "trainer.recheck_s", "must be > 0")
        _check(
            self.model in ("auto", "river") or self.model.startswith("plugin:"),
            "trainer.model",
            "must be 'auto', 'river' or 'plugin:module:function'",
        )
        for model_id, overrides in self.models.items():
            unknown = set(overrides) - set(_OVERRIDABLE)
            _check(not unknown, f"trainer.models.{model_id}", f"unknown keys {sorted(unknown)}; known {_OVERRIDABLE}")


@dataclasses.dataclass(frozen=True)
class GovernanceSettings:
    """``[governance]``: which semver bumps deploy without a human (per model in ``models``).

    ``initial`` is a model's first version (nothing serves yet, so nothing to protect);
    remove it to have first versions wait for approval too.

    Every command must be signed by an operator key (`driftline.trust.commands`):
    ``operators`` (name → ``{ key = "<hex public key>", roles = [...] }``, the line
    ``driftline operators keygen`` prints) plus the same lines in ``operators_file``. With
    none configured every command is refused (``unsigned``/``unknown_key``). A command
    signed more than ``command_max_age_s`` ago is refused (``too_old``). When an operator
    has the ``stream`` role, retrain requests and version checks must be signed by it too;
    otherwise they are trusted to come from the stream because ACLs let only the stream
    and operators write ``driftline.control`` (`driftline acls apply`).
    """

    auto_deploy: tuple[str, ...] = ("initial", "patch", "minor")
    models: dict[str, Any] = dataclasses.field(default_factory=dict)
    operators: dict[str, Any] = dataclasses.field(default_factory=dict)
    operators_file: str = ""
    command_max_age_s: float = 3600.0

    def __post_init__(self) -> None:
        _check(self.command_max_age_s > 0, "governance.command_max_age_s", "must be > 0")
        for bumps in (self.auto_deploy, *self.models.values()):
            _check(set(bumps) <= set(_BUMPS), "governance.auto_deploy", f"bumps must be among {_BUMPS}")

    def auto_deploys(self, model_id: str, bump: str) -> bool:
        return bump in self.models.get(model_id, self.auto_deploy)


@dataclasses.dataclass(frozen=True)
class SubscriberSettings:
    """``[subscriber]``: where a serving process keeps its last good version, and the
    trainer's public key it verifies artifacts with (``verify_key`` hex, else
    ``verify_key_file``): it can verify, never sign."""

    cache_dir: str = ".driftline/subscriber"
    verify_key: str = ""
    verify_key_file: str = ".driftline/signing.pub"
    artifact_dir: str = ""


@dataclasses.dataclass(frozen=True)
class OperatorSettings:
    """``[operator]``: the key the CLI signs governance commands with (``driftline operators
    keygen`` writes it, 0600) and the operator name it is configured under in ``[governance]
    operators`` (default: the key file's name without ``.key``)."""

    key_file: str = ""
    name: str = ""

    def actor(self) -> str:
        return self.name or (Path(self.key_file).stem if self.key_file else "")


@dataclasses.dataclass(frozen=True)
class ModelTrainingConfig:
    """The trainer's settings for one model, overrides applied."""

    task: str
    model: str
    params: dict[str, Any]
    policy: str
    max_rows: int
    min_rows: int
    validation_fraction: float
    cooldown_s: float
    gate_floors: dict[str, float]
    gate_non_regression: dict[str, Any]
    min_rows_after_drift: int = 600
    min_validation_rows: int = 200
    follow_up_factor: float = 4.0
    gate_beat_baseline: bool = True


def for_model(settings: TrainerSettings, model_id: str) -> ModelTrainingConfig:
    """Defaults of ``[trainer]`` with ``[trainer.models.<model_id>]`` on top."""
    base = {name: getattr(settings, name) for name in _OVERRIDABLE}
    base.update(settings.models.get(model_id, {}))
    return ModelTrainingConfig(**base)
