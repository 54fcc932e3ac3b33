"""One training: rows → candidate → gate → version → signed artifact → the records to write.

No Kafka writes here: ``train_version`` returns the ``Output`` records, and the trainer
writes them in one transaction together with the request's consumed offset. So a crash
anywhere in here publishes nothing, and the re-read request trains again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from driftline.kafka.topics import TopicNames
from driftline.logs import log
from driftline.schemas.registry import (
    ModelVersion,
    ModelVersionCreated,
    ModelVersionPromoted,
    ModelVersionRejected,
    TrainingSkipped,
    registry_key,
)
from driftline.stream.reference import ReferenceProfile

from driftline.consumers.artifacts import load_model, pack_model
from driftline.consumers.signing import Ed25519PrivateKey
from driftline.consumers.candidate import candidate_spec, evaluate, time_split, train_candidate
from driftline.consumers.registry_state import Output, RegistryState
from driftline.consumers.trainer_config import GovernanceSettings, ModelTrainingConfig
from driftline.consumers.training_set import TrainingSet
from driftline.consumers.validation_gate import GateThresholds, evaluate_gate
from driftline.consumers.versioning import bump_kind, next_version

__all__ = ["TrainingContext", "TrainingOutcome", "train_version", "skipped", "promotion"]

logger = logging.getLogger(__name__)


@dataclass
class TrainingContext:
    """What every training needs besides its rows: keys, stores, rules, loaded champions."""

    key: Ed25519PrivateKey
    """Signs new versions; its public half verifies the champions loaded for comparison."""
    artifact_dir: str
    inline_limit: int
    governance: GovernanceSettings
    reference_bins: int = 10
    reference_top_k: int = 50
    champions: dict[tuple[str, str], Any] = field(default_factory=dict)

    def champion_model(self, record: ModelVersion) -> Any:
        """The champion's model, verified then unpickled once per process."""
        cache_key = (record.model_id, record.version)
        if cache_key not in self.champions:
            self.champions[cache_key] = load_model(record.artifact, record.model_id, record.version, self.key.public_key(),
                                                   self.artifact_dir)
        return self.champions[cache_key]


@dataclass(frozen=True)
class TrainingOutcome:
    """The records to write and a one-word outcome for metrics and logs."""

    outcome: str
    outputs: list[Output]
    version: ModelVersion | None = None


def skipped(model_id: str, request_id: str, reason: str, detail: str = "") -> TrainingOutcome:
    event = TrainingSkipped(model_id, request_id, reason, detail)
    return TrainingOutcome(f"skipped_{reason}", [Output("audit", model_id, event.to_dict())])


def promotion(record: ModelVersion, state: RegistryState, actor: str, reason: str, command_id: str,
              rollback: bool = False) -> list[Output]:
    """Move the serving pointer to ``record``: model-updates value plus its audit copy."""
    from driftline.schemas.registry import ModelVersionRolledBack

    cls = ModelVersionRolledBack if rollback else ModelVersionPromoted
    move = cls(record.model_id, record.version, state.serving_version(record.model_id), actor, reason, command_id,
               record.artifact.to_dict(), record.reference_profile, record.spec, record.metrics)
    return [Output("model_updates", record.model_id, move.to_dict()),
            Output("audit", record.model_id, move.for_audit())]


def train_version(training_set: TrainingSet, cfg: ModelTrainingConfig, ctx: TrainingContext, state: RegistryState,
                  request_id: str, read_s: float, task: str | None = None) -> TrainingOutcome:
    """Train, judge and package a candidate for ``training_set``; the outputs say what happened."""
    rows, lineage = training_set.rows, training_set.lineage
    model_id = lineage.model_id
    if len(rows) < cfg.min_rows:
        return skipped(model_id, request_id, "not_enough_rows", f"{len(rows)} rows < min_rows {cfg.min_rows}")
    champion = state.champion(model_id)
    train_rows, valid_rows = time_split(rows, cfg.validation_fraction)
    started = time.perf_counter()
    task = task or cfg.task or (champion.spec["task"] if champion else None)
    spec = candidate_spec(train_rows, task=task, model=cfg.model, params=cfg.params)
    model = train_candidate(train_rows, spec)
    trained = time.perf_counter()
    metrics = evaluate(model, valid_rows, spec["task"])
    champion_metrics = evaluate(ctx.champion_model(champion), valid_rows, spec["task"]) if champion else None
    gate = evaluate_gate(metrics, champion_metrics, GateThresholds(cfg.gate_floors, cfg.gate_non_regression))
    validated = time.perf_counter()
    bump = bump_kind(spec, champion.spec if champion else None)
    version = next_version(champion.version if champion else None, bump, state.taken(model_id))
    status = "rejected" if not gate.passed else (
        "approved" if ctx.governance.auto_deploys(model_id, bump) else "pending_approval")
    artifact = pack_model(model, model_id, version, ctx.key, inline_limit=ctx.inline_limit,
                          artifact_dir=ctx.artifact_dir)
    profile = ReferenceProfile.from_rows([r["features"] for r in rows], numeric_bins=ctx.reference_bins,
                                         top_k=ctx.reference_top_k)
    durations = {"read": round(read_s, 4), "train": round(trained - started, 4),
                 "validate": round(validated - trained, 4), "package": round(time.perf_counter() - validated, 4)}
    record = ModelVersion(model_id, version, status, bump, champion.version if champion else None, request_id,
                          spec, metrics, champion_metrics, gate.to_dict(), lineage, artifact, profile.to_dict(),
                          status_reason=gate.reason, durations=durations)
    log(logger, logging.INFO, "candidate judged", model_id=model_id, version=version, status=status, bump=bump,
        gate=gate.reason, rows=len(rows), **{f"{k}_s": v for k, v in durations.items()})
    return TrainingOutcome(_outcome(status), _version_outputs(record, state, gate.reason), record)


def _outcome(status: str) -> str:
    return {"approved": "published", "pending_approval": "pending", "rejected": "rejected"}[status]


def _version_outputs(record: ModelVersion, state: RegistryState, gate_reason: str) -> list[Output]:
    created = ModelVersionCreated(record.model_id, record.version, record.status, record.bump,
                                  record.parent_version, record.request_id, record.metrics,
                                  record.champion_metrics, record.gate, record.lineage.to_dict())
    outputs = [Output("registry", registry_key(record.model_id, record.version), record.to_dict()),
               Output("audit", record.model_id, created.to_dict())]
    if record.status == "rejected":
        rejected = ModelVersionRejected(record.model_id, record.version, "gate", gate_reason, record.request_id,
                                        record.gate)
        outputs.append(Output("audit", record.model_id, rejected.to_dict()))
    elif record.status == "approved":
        reason = f"auto-deploy ({record.bump} bump; gate: {gate_reason})"
        outputs += promotion(record, state, "trainer", reason, record.request_id)
    return outputs


def topic_of(names: TopicNames, kind: str) -> str:
    """The topic an ``Output`` of ``kind`` goes to."""
    return {"registry": names.registry, "model_updates": names.model_updates, "audit": names.audit}[kind]
