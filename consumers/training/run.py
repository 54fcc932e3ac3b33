"""One training: rows → candidate → gate → version → signed artifact → the records to write.

Candidate and champion are judged on the same validation rows: the newest rows after the
drift start (``consumers.window_choice``). With ``model = "auto"`` several training
windows × learners compete on them, and so does the stream's online challenger when the
request carried its state; the winner goes through the gate. A published retrain that
saw few post-drift rows schedules a follow-up (``follow_up_factor``), which publishes only
if it beats the serving version on its own validation rows.

No Kafka writes here: ``train_version`` returns the ``Output`` records, and the trainer
writes them in one transaction together with the request's consumed offset. So a crash
anywhere in here publishes nothing, and the re-read request trains again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from driftline.consumers.registry.artifacts import load_model, pack_model
from driftline.consumers.registry.governance import promotion
from driftline.consumers.registry.retrain_queue import PendingRetrain
from driftline.consumers.registry.state import Output, RegistryState
from driftline.consumers.registry.training_set import TrainingSet
from driftline.consumers.registry.validation_gate import GateThresholds, evaluate_gate
from driftline.consumers.registry.versioning import bump_kind, next_version
from driftline.consumers.training.batch_learners import LEARNERS
from driftline.consumers.training.candidate import candidate_spec, train_candidate
from driftline.consumers.training.challenger_model import challenger_from_export
from driftline.consumers.training.config import GovernanceSettings, ModelTrainingConfig
from driftline.consumers.training.evaluation import baseline_metrics, evaluate
from driftline.consumers.training.window_choice import (
    Selection,
    choose_candidate,
    gain_z,
    validation_split,
    validation_summary,
)
from driftline.kafka.topics import TopicNames
from driftline.logs import log
from driftline.schemas.registry import (
    ModelVersion,
    ModelVersionCreated,
    ModelVersionRejected,
    RetrainDeferred,
    TrainingSkipped,
    registry_key,
)
from driftline.stream.drift.reference import ReferenceProfile
from driftline.trust.keys import Ed25519PrivateKey, Ed25519PublicKey, TrustedKeys

__all__ = ["TrainingContext", "TrainingOutcome", "promotion", "skipped", "train_version"]

logger = logging.getLogger(__name__)

#: A follow-up publishes only when it beats the serving version on the same post-drift rows
#: by this many standard errors (paired per-row errors): refinement, not churn.
FOLLOW_UP_Z = 1.0


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
    previous_keys: tuple[Ed25519PublicKey, ...] = ()
    """Public keys of earlier signing keys (a rotation): champions they signed still load."""

    def champion_model(self, record: ModelVersion) -> Any:
        """The champion's model, verified then unpickled once per process."""
        cache_key = (record.model_id, record.version)
        if cache_key not in self.champions:
            self.champions[cache_key] = load_model(
                record.artifact,
                record.model_id,
                record.version,
                TrustedKeys([self.key.public_key(), *self.previous_keys]),
                self.artifact_dir,
            )
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


def train_version(
    training_set: TrainingSet,
    cfg: ModelTrainingConfig,
    ctx: TrainingContext,
    state: RegistryState,
    request_id: str,
    read_s: float,
    task: str | None = None,
    pending: PendingRetrain | None = None,
) -> TrainingOutcome:
    """Train, judge and package a candidate for ``training_set``; the outputs say what happened.

    ``pending`` is the retrain request being served (``None`` for ``models register``):
    its drift start places the validation rows, its evidence may carry the online
    challenger, and its trigger is kept on the version.
    """
    rows, lineage = training_set.rows, training_set.lineage
    model_id = lineage.model_id
    if len(rows) < cfg.min_rows:
        return skipped(model_id, request_id, "not_enough_rows", f"{len(rows)} rows < min_rows {cfg.min_rows}")
    champion = state.champion(model_id)
    drift_start = pending.drift_start if pending is not None else None
    started = time.perf_counter()
    task = task or cfg.task or (champion.spec["task"] if champion else None)
    spec = candidate_spec(rows, task=task, model=cfg.model, params=cfg.params)
    selection = _select(rows, spec, cfg, drift_start, _challenger(pending, model_id), quick=is_quick(pending))
    model, metrics, valid_rows = selection.model, selection.metrics, selection.validation_rows
    trained = time.perf_counter()
    champion_metrics = evaluate(ctx.champion_model(champion), valid_rows, spec["task"]) if champion else None
    baseline = baseline_metrics(valid_rows, spec["task"])
    gate = evaluate_gate(
        metrics,
        champion_metrics,
        GateThresholds(cfg.gate_floors, cfg.gate_non_regression, beat_baseline=cfg.gate_beat_baseline),
        baseline=baseline,
    )
    validated = time.perf_counter()
    if pending is not None and pending.rule == "follow_up" and champion is not None:
        z = gain_z(model, ctx.champion_model(champion), valid_rows, spec["task"])
        if z < FOLLOW_UP_Z:
            return _no_improvement(model_id, request_id, pending, z, selection, cfg, rows)
    bump = bump_kind(spec, champion.spec if champion else None)
    version = next_version(champion.version if champion else None, bump, state.taken(model_id))
    status = (
        "rejected"
        if not gate.passed
        else ("approved" if ctx.governance.auto_deploys(model_id, bump) else "pending_approval")
    )
    artifact = pack_model(
        model, model_id, version, ctx.key, inline_limit=ctx.inline_limit, artifact_dir=ctx.artifact_dir
    )
    profile = ReferenceProfile.from_rows(
        [r["features"] for r in _window_rows(rows, selection, drift_start)],
        numeric_bins=ctx.reference_bins,
        top_k=ctx.reference_top_k,
    )
    durations = {
        "read": round(read_s, 4),
        "train": round(trained - started, 4),
        "validate": round(validated - trained, 4),
        "package": round(time.perf_counter() - validated, 4),
    }
    trigger = pending.trigger() if pending is not None else {"request_ids": [request_id], "rule": "register"}
    chosen = {**selection.to_dict(), "baseline": baseline}
    record = ModelVersion(
        model_id,
        version,
        status,
        bump,
        champion.version if champion else None,
        request_id,
        spec,
        metrics,
        champion_metrics,
        gate.to_dict(),
        lineage,
        artifact,
        profile.to_dict(),
        status_reason=gate.reason,
        durations=durations,
        trigger=trigger,
        selection=chosen,
    )
    log(
        logger,
        logging.INFO,
        "candidate judged",
        model_id=model_id,
        version=version,
        status=status,
        bump=bump,
        gate=gate.reason,
        rows=len(rows),
        window=selection.window,
        learner=selection.learner,
        validation_rows=len(valid_rows),
        **{f"{k}_s": v for k, v in durations.items()},
    )
    outputs = _version_outputs(record, state, gate.reason)
    if status == "approved" and pending is not None:
        outputs += _follow_up(
            model_id, request_id, pending.drift_start, _post_drift(rows, pending.drift_start), cfg, version
        )
    return TrainingOutcome(_outcome(status), outputs, record)


def _challenger(pending: PendingRetrain | None, model_id: str) -> dict[str, Any]:
    """The online challenger carried by the request, as a ready-made candidate (none if absent or bad)."""
    doc = (pending.evidence if pending is not None else {}).get("challenger")
    if not isinstance(doc, dict):
        return {}
    try:
        return {"online_challenger": challenger_from_export(doc)}
    except (ValueError, TypeError, KeyError) as exc:
        log(logger, logging.WARNING, "online challenger state refused", model_id=model_id, error=str(exc)[:300])
        return {}


def is_quick(pending: PendingRetrain | None) -> bool:
    """A retrain while the served version is known to be worse than it could be: publish sooner.

    Requests that say the served model is failing (``underperforming``, ``challenger``, a
    change in its error rate) fit the first (simplest, fastest) learner only; its follow-up,
    with more rows after the drift start, lets the others compete. Measured on the gradual
    closed loop, fitting gradient boosting as well cost 0.6-2 s of every retrain cycle (250-800
    events at 400 events/s) and won once in a dozen.
    """
    if pending is None:
        return False
    return pending.rule in QUICK_RULES or pending.rule.startswith("performance")


#: Request rules served by the quick retrain (see ``is_quick``).
QUICK_RULES = frozenset({"underperforming", "challenger"})


def _select(
    rows: list[dict[str, Any]],
    spec: dict[str, Any],
    cfg: ModelTrainingConfig,
    drift_start: float | None,
    extra: dict[str, Any],
    quick: bool = False,
) -> Selection:
    """``auto``: windows × learners by validation; ``river``/plug-ins: one model on the configured policy."""
    task = spec["task"]
    if cfg.model == "auto":
        learners = list(spec["params"].get("learners") or LEARNERS[task])
        selection = choose_candidate(
            rows,
            task=task,
            features=spec["features"],
            drift_start=drift_start,
            validation_fraction=cfg.validation_fraction,
            min_validation_rows=cfg.min_validation_rows,
            learners=learners[:1] if quick else learners,
            max_rows=cfg.max_rows,
            params=spec["params"],
            extra=extra,
        )
        if quick:
            skipped = "quick retrain: the served version is failing; this learner competes at the follow-up"
            selection.trials.extend(
                {"window": selection.window, "learner": name, "skipped": skipped} for name in learners[1:]
            )
        return selection
    older, valid, used = validation_split(
        rows,
        drift_start=drift_start,
        validation_fraction=cfg.validation_fraction,
        min_validation_rows=cfg.min_validation_rows,
    )
    model = train_candidate(older, spec)
    metrics = evaluate(model, valid, task)
    validation = validation_summary(valid, used)
    trial = {"window": cfg.policy, "learner": cfg.model, "n_train": len(older), "metrics": metrics}
    return Selection(model, cfg.policy, cfg.model, metrics, [trial], validation, valid)


def _window_rows(rows: list[dict[str, Any]], selection: Selection, drift_start: float | None) -> list[dict[str, Any]]:
    """The rows the reference profile describes: the present (since the drift) when the winner trained on it."""
    if selection.window == "since_drift" and drift_start is not None:
        recent = [r for r in rows if float(r["ts"]) >= drift_start]
        if recent:
            return recent
    return rows


def _post_drift(rows: list[dict[str, Any]], drift_start: float | None) -> int:
    return 0 if drift_start is None else sum(1 for r in rows if float(r["ts"]) >= drift_start)


def _follow_up(
    model_id: str, request_id: str, drift_start: float | None, n_post: int, cfg: ModelTrainingConfig, after: str
) -> list[Output]:
    """A pending follow-up once ``follow_up_factor`` times ``n_post`` rows exist after the drift start.

    None when follow-ups are off, there is no drift start, or it would need more than ``max_rows``.
    """
    want = int(n_post * cfg.follow_up_factor)
    if cfg.follow_up_factor <= 0 or drift_start is None or n_post < 1 or want > cfg.max_rows:
        return []
    follow_id = f"{request_id.split(':follow-up:')[0]}:follow-up:{want}"
    deferred = RetrainDeferred(
        model_id,
        follow_id,
        follow_id,
        f"follow-up of {after}: retrain once {want} rows exist after the drift start",
        drift_start,
        True,
        "follow_up",
        want,
        {"after_version": after},
    )
    return [Output("audit", model_id, deferred.to_dict())]


def _no_improvement(
    model_id: str,
    request_id: str,
    pending: PendingRetrain,
    z: float,
    selection: Selection,
    cfg: ModelTrainingConfig,
    rows: list[dict[str, Any]],
) -> TrainingOutcome:
    """A follow-up that does not beat the serving version: recorded, no version; the next follow-up scheduled."""
    detail = (
        f"follow-up candidate ({selection.window}/{selection.learner}) is not better than the serving "
        f"version on {selection.validation.get('n')} post-drift rows (gain {z:.2f} standard errors "
        f"< {FOLLOW_UP_Z:g})"
    )
    event = TrainingSkipped(model_id, request_id, "no_improvement", detail)
    serving = str(pending.evidence.get("after_version", "the serving version"))
    return TrainingOutcome(
        "skipped_no_improvement",
        [
            Output("audit", model_id, event.to_dict()),
            *_follow_up(
                model_id, request_id, pending.drift_start, _post_drift(rows, pending.drift_start), cfg, serving
            ),
        ],
    )


def _outcome(status: str) -> str:
    return {"approved": "published", "pending_approval": "pending", "rejected": "rejected"}[status]


def _version_outputs(record: ModelVersion, state: RegistryState, gate_reason: str) -> list[Output]:
    created = ModelVersionCreated(
        record.model_id,
        record.version,
        record.status,
        record.bump,
        record.parent_version,
        record.request_id,
        record.metrics,
        record.champion_metrics,
        record.gate,
        record.lineage.to_dict(),
        trigger=record.trigger,
        selection=record.selection,
    )
    outputs = [
        Output("registry", registry_key(record.model_id, record.version), record.to_dict()),
        Output("audit", record.model_id, created.to_dict()),
    ]
    if record.status == "rejected":
        rejected = ModelVersionRejected(
            record.model_id, record.version, "gate", gate_reason, record.request_id, record.gate
        )
        outputs.append(Output("audit", record.model_id, rejected.to_dict()))
    elif record.status == "approved":
        reason = f"auto-deploy ({record.bump} bump; gate: {gate_reason})"
        outputs += promotion(record, state, "trainer", reason, record.request_id)
    return outputs


def topic_of(names: TopicNames, kind: str) -> str:
    """The topic an ``Output`` of ``kind`` goes to."""
    return {"registry": names.registry, "model_updates": names.model_updates, "audit": names.audit}[kind]
