"""Prometheus metrics of the trainer/registry process (own registry, never the global one).

What an operator asks: how many trainings ended how (``outcome``: published, pending,
rejected, skipped_<reason>, failed), how long they took and in which stage, what the gate
measured, which version each model serves, and how many versions wait for a human.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["TrainerMetrics"]

_OUTCOMES = ("published", "pending", "rejected", "failed", "deferred")
_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)


class TrainerMetrics:
    """Counters, histograms and gauges of the trainer; callers pass plain values."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.trainings = Counter(
            "driftline_trainer_trainings",
            "Retrain requests and registrations handled, by outcome.",
            ["model_id", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "driftline_trainer_training_duration_seconds",
            "Time from request to committed outputs, per stage (read/train/validate/publish/total).",
            ["stage"],
            buckets=_DURATION_BUCKETS,
            registry=registry,
        )
        self.gate_verdicts = Counter(
            "driftline_trainer_gate_verdicts", "Validation gate verdicts.", ["model_id", "verdict"], registry=registry
        )
        self.gate_metric = Gauge(
            "driftline_trainer_gate_metric",
            "Last validation metric of a model's candidate and champion (same rows).",
            ["model_id", "metric", "role"],
            registry=registry,
        )
        self.current_version = Gauge(
            "driftline_trainer_current_version_info",
            "1 for the version each model serves now.",
            ["model_id", "version"],
            registry=registry,
        )
        self.approvals_pending = Gauge(
            "driftline_trainer_approvals_pending", "Versions waiting for approval.", registry=registry
        )
        self.commands = Counter(
            "driftline_trainer_commands",
            "Control commands handled, by type and outcome.",
            ["command", "outcome"],
            registry=registry,
        )
        self.commands_unverified = Counter(
            "driftline_trainer_commands_unverified",
            "Commands (and signed stream records) refused for their signature, freshness or role, by reason.",
            ["reason"],
            registry=registry,
        )
        self.retrains_pending = Gauge(
            "driftline_trainer_retrains_pending",
            "Retrain requests waiting to train (cooldown, rows after the drift start, paused), one per model at most.",
            registry=registry,
        )
        self.records_refused = Counter(
            "driftline_trainer_records_refused",
            "Control records the trainer could not handle: copied to the DLQ with the reason, offset committed.",
            ["reason"],
            registry=registry,
        )
        self.transactions_aborted = Counter(
            "driftline_trainer_transactions_aborted",
            "Transactions aborted (their request is re-read).",
            registry=registry,
        )
        self.kafka_retries = Counter(
            "driftline_trainer_kafka_retries",
            "Kafka calls retried after a retriable error (broker or coordinator away).",
            registry=registry,
        )
        self.broker_errors = Counter(
            "driftline_trainer_broker_errors",
            "Records whose handling failed on the broker (not the record): re-read after a backoff.",
            registry=registry,
        )
        self._serving: dict[str, str] = {}
        self._models: set[str] = set()

    def start_model(self, model_id: str) -> None:
        """A model's training and gate counters at 0, once: a child first exported at 1
        hides that first increment from ``increase()`` (the dashboard's 1 h panels).
        ``skipped_<reason>`` outcomes are open-ended and start at their first count."""
        if model_id in self._models:
            return
        self._models.add(model_id)
        for outcome in _OUTCOMES:
            self.trainings.labels(model_id, outcome).inc(0)
        for verdict in ("passed", "failed"):
            self.gate_verdicts.labels(model_id, verdict).inc(0)

    def observe_stages(self, durations: Mapping[str, float]) -> None:
        for stage, seconds in durations.items():
            self.duration.labels(stage).observe(seconds)

    def observe_gate(
        self, model_id: str, passed: bool, metrics: Mapping[str, float], champion: Mapping[str, float] | None
    ) -> None:
        self.gate_verdicts.labels(model_id, "passed" if passed else "failed").inc()
        for role, values in (("candidate", metrics), ("champion", champion or {})):
            for metric, value in values.items():
                self.gate_metric.labels(model_id, metric, role).set(value)

    def set_serving(self, serving: Iterable[tuple[str, str]]) -> None:
        """Point each model's info gauge at its serving version (old label set removed)."""
        for model_id, version in serving:
            self.start_model(model_id)
            old = self._serving.get(model_id)
            if old == version:
                continue
            if old is not None:
                self.current_version.remove(model_id, old)
            self.current_version.labels(model_id, version).set(1)
            self._serving[model_id] = version
