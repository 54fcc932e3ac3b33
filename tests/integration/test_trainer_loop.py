"""The full loop against a real broker: request + labeled rows → version → subscriber swaps."""

from __future__ import annotations

from driftline.consumers.registry.artifacts import load_model
from driftline.consumers.subscriber.client import ModelSubscriber
from driftline.consumers.trainer.labeled_reader import rebuild

from .trainer_support import PUBLIC_KEY, labeled_rows, produce_rows, request, trainer_thread, values, wait_state


def test_retrain_request_publishes_a_version_the_subscriber_loads(
    kafka_bootstrap, topic_names, produce, consume_all, tmp_path
):
    produce_rows(produce, topic_names.labeled, labeled_rows("churn", 1000) + labeled_rows("other", 300, seed=3))
    updates: list[str] = []
    sub = ModelSubscriber(
        "churn",
        kafka_bootstrap,
        topic_names.model_updates,
        PUBLIC_KEY,
        cache_dir=tmp_path / "cache",
        on_update=lambda m, v, _model, _e: updates.append(v),
    ).start()
    try:
        with trainer_thread(kafka_bootstrap, topic_names, tmp_path) as trainer:
            produce(topic_names.control, [request("churn")])
            state = wait_state(kafka_bootstrap, topic_names, lambda s: s.serving_version("churn") == "1.0.0")
            assert sub.wait_for("1.0.0", 30)
            metric = trainer.metrics_registry.get_sample_value
            assert metric("driftline_trainer_trainings_total", {"model_id": "churn", "outcome": "published"}) == 1
            assert metric("driftline_trainer_gate_verdicts_total", {"model_id": "churn", "verdict": "passed"}) == 1
            assert metric("driftline_trainer_current_version_info", {"model_id": "churn", "version": "1.0.0"}) == 1
            assert metric("driftline_trainer_training_duration_seconds_count", {"stage": "total"}) == 1
            assert metric("driftline_trainer_approvals_pending") == 0
        version = state.version("churn", "1.0.0")
        assert version.status == "approved" and version.gate["passed"]
        assert version.lineage.n_rows == 1000 and version.reference_profile["n_rows"] == 1000
        assert sub.predict_one(labeled_rows("churn", 1, seed=9)[0]["features"]) in (True, False)
        assert updates == ["1.0.0"]
        [update] = values(consume_all, topic_names.model_updates, min_count=1)
        assert {"type", "model_id", "version", "reference_profile", "artifact", "actor", "from_version"} <= set(update)
        audit_types = [e["type"] for e in values(consume_all, topic_names.audit, min_count=2)]
        assert audit_types == ["model_version_created", "model_version_promoted"]
    finally:
        sub.stop()


def test_rebuilding_a_training_set_reproduces_its_sha256(kafka_bootstrap, topic_names, produce, tmp_path):
    rows = labeled_rows("m", 600)
    produce_rows(produce, topic_names.labeled, rows + rows[:50])  # redelivered duplicates
    with trainer_thread(kafka_bootstrap, topic_names, tmp_path):
        produce(topic_names.control, [request("m")])
        state = wait_state(kafka_bootstrap, topic_names, lambda s: "1.0.0" in s.taken("m"))
    lineage = state.version("m", "1.0.0").lineage
    assert lineage.n_rows == 600  # de-duplicated by event_id
    rebuilt = rebuild(kafka_bootstrap, lineage)
    assert rebuilt.lineage.sha256 == lineage.sha256
    assert [r["event_id"] for r in rebuilt.rows] == [r["event_id"] for r in rows]
    model = load_model(state.version("m", "1.0.0").artifact, "m", "1.0.0", PUBLIC_KEY)
    assert set(model.predict_proba_one(rows[0]["features"])) == {False, True}  # a real, loadable model


def test_since_drift_policy_trains_on_rows_after_the_drift_began(kafka_bootstrap, topic_names, produce, tmp_path):
    import orjson

    from driftline.schemas.control import RetrainRequested

    from .trainer_support import T0, settings

    produce_rows(produce, topic_names.labeled, labeled_rows("sd", 1000))
    req = RetrainRequested("sd", T0 + 600, T0 + 660, "drift", ("x",), {"drift_started_ts": T0 + 600}, T0 + 700, 1)
    with trainer_thread(kafka_bootstrap, topic_names, tmp_path, settings(policy="since_drift", model="river")):
        produce(topic_names.control, [("sd", orjson.dumps(req.to_dict()))])
        state = wait_state(kafka_bootstrap, topic_names, lambda s: "1.0.0" in s.taken("sd"))
    lineage = state.version("sd", "1.0.0").lineage
    assert (lineage.policy, lineage.min_ts, lineage.n_rows) == ("since_drift", T0 + 600, 400)
    assert rebuild(kafka_bootstrap, lineage).lineage.sha256 == lineage.sha256


def test_max_rows_caps_the_training_set_across_partitions(kafka_bootstrap, topic_factory, produce):
    """A model's rows in two partitions: the newest ``max_rows`` overall, not ``max_rows`` from each."""
    import orjson

    from driftline.consumers.trainer.labeled_reader import LabeledReader, build_training_set

    topic = topic_factory(partitions=2)
    rows = labeled_rows("split", 1000)
    for partition, part in ((0, rows[0::2]), (1, rows[1::2])):
        produce(topic, [(r["model_id"], orjson.dumps(r)) for r in part], transactional=True, partition=partition)
    reader = LabeledReader(kafka_bootstrap, topic)
    try:
        chosen = build_training_set(reader, "split", max_rows=300, chunk=100)
    finally:
        reader.close()
    assert [r["event_id"] for r in chosen.rows] == [r["event_id"] for r in rows[-300:]]
    assert sorted(r.partition for r in chosen.lineage.ranges) == [0, 1]
    assert rebuild(kafka_bootstrap, chosen.lineage).lineage.sha256 == chosen.lineage.sha256
