"""Metrics of the serving side and the trainer: shared registries, series from 0."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry, generate_latest

from driftline.consumers.subscriber.client import ModelSubscriber


def test_subscribers_of_several_models_share_one_registry(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    key = Ed25519PrivateKey.generate().public_key()
    subscribers = [
        ModelSubscriber(model_id, "127.0.0.1:1", "updates", key, cache_dir=tmp_path, registry=registry)
        for model_id in ("churn", "fraud")
    ]
    for sub, version in zip(subscribers, ("1.0.0", "2.0.0")):
        sub._metrics.version.labels(sub.model_id, version).set(1)
    text = generate_latest(registry).decode()
    assert 'driftline_subscriber_version_info{model_id="churn",version="1.0.0"} 1.0' in text
    assert 'driftline_subscriber_version_info{model_id="fraud",version="2.0.0"} 1.0' in text
    alone = ModelSubscriber("other", "127.0.0.1:1", "updates", key, cache_dir=tmp_path)
    assert alone._metrics.version is not subscribers[0]._metrics.version  # its own registry


def test_the_trainer_exports_a_models_counters_at_0_before_its_first_training() -> None:
    """A child first exported at 1 hides that increment from the dashboard's increase()."""
    from driftline.consumers.trainer.metrics import TrainerMetrics

    registry = CollectorRegistry()
    metrics = TrainerMetrics(registry)
    metrics.start_model("churn")
    metrics.trainings.labels("churn", "published").inc()
    metrics.start_model("churn")  # again: nothing is reset
    text = generate_latest(registry).decode()
    assert 'driftline_trainer_trainings_total{model_id="churn",outcome="published"} 1.0' in text
    assert 'driftline_trainer_trainings_total{model_id="churn",outcome="rejected"} 0.0' in text
    assert 'driftline_trainer_gate_verdicts_total{model_id="churn",verdict="failed"} 0.0' in text
    metrics.set_serving([("fraud", "1.0.0")])
    assert (
        'driftline_trainer_gate_verdicts_total{model_id="fraud",verdict="passed"} 0.0'
        in generate_latest(registry).decode()
    )
