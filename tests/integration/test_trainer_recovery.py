"""Retraining after a concept change, on the real broker: train and validate on the present.

Rows follow rule A (x0 + x1 > 0) and then rule B (x0 − x1 > 0), features unchanged. A
request that carries the drift start waits for rows after it, trains on a window chosen by
validation on the newest post-drift rows, and beats a champion serving at chance; a
candidate that learned the old rule is rejected on those same rows.
"""

from __future__ import annotations

import math
import random
import textwrap
from typing import Any

import orjson
import pytest

from driftline.schemas.control import RetrainRequested

from .trainer_support import T0, produce_rows, request, settings, trainer_thread, wait_state

pytestmark = pytest.mark.kafka


def concept_rows(model_id: str, start: int, n: int, rule: str, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed + start)
    rows = []
    for i in range(start, start + n):
        x = {f"f{j}": rng.gauss(0.0, 1.0) for j in range(5)}
        y = (x["f0"] + x["f1"] if rule == "A" else x["f0"] - x["f1"]) + rng.gauss(0.0, 0.05) > 0
        rows.append(
            {
                "model_id": model_id,
                "event_id": f"{model_id}-{i}",
                "ts": T0 + i,
                "model_version": "1.0.0",
                "prediction": y,
                "score": None,
                "label": y,
                "features": x,
                "scores": None,
                "label_ts": None,
            }
        )
    return rows


def drift_request(model_id: str, drift_at: int, rule: str = "underperforming") -> tuple[str, bytes]:
    req = RetrainRequested(
        model_id,
        T0 + drift_at,
        T0 + drift_at + 300,
        rule,
        ("served at chance",),
        {"drift_started_ts": T0 + drift_at},
        T0 + drift_at + 300,
        drift_at,
        "1.0.0",
    )
    return model_id, orjson.dumps(req.to_dict())


def test_a_concept_change_is_retrained_on_the_rows_after_it(kafka_bootstrap, topic_names, produce, tmp_path):
    produce_rows(produce, topic_names.labeled, concept_rows("cc", 0, 3000, "A"))
    with trainer_thread(
        kafka_bootstrap, topic_names, tmp_path, settings(min_rows_after_drift=600, recheck_s=0.5, max_rows=20_000)
    ):
        produce(topic_names.control, [request("cc")])
        wait_state(kafka_bootstrap, topic_names, lambda s: s.serving_version("cc") == "1.0.0")
        produce_rows(produce, topic_names.labeled, concept_rows("cc", 3000, 300, "B"))
        produce(topic_names.control, [drift_request("cc", 3000)])
        state = wait_state(kafka_bootstrap, topic_names, lambda s: "cc" in s.pending_retrains)
        assert state.pending_retrains["cc"].reason == "waiting for rows after the drift start: 300 of 600"
        produce_rows(produce, topic_names.labeled, concept_rows("cc", 3300, 700, "B"))
        state = wait_state(kafka_bootstrap, topic_names, lambda s: s.serving_version("cc") not in (None, "1.0.0"))
    record = state.champion("cc")
    assert record is not None and record.request_id == "cc:1767228600:underperforming"
    valid = record.selection["validation"]
    assert valid["ts_from"] >= T0 + 3000 and valid["n"] >= 200  # judged on post-drift rows only
    assert record.selection["window"] in ("since_drift", "recent_weighted")
    assert record.metrics["accuracy"] >= 0.95 and record.champion_metrics["accuracy"] < 0.65
    assert record.trigger["drift_start"] == T0 + 3000 and record.trigger["rule"] == "underperforming"
    deferred = [e for e in state.audit["cc"] if e["type"] == "retrain_deferred"]
    assert deferred and deferred[0]["reason"].startswith("waiting for rows after the drift start")


PLUGIN = textwrap.dedent('''
    import math

    class OldRule:
        """Learned the rule before the change, confidently."""

        def predict_proba_one(self, x):
            p = 1.0 / (1.0 + math.exp(-8.0 * (x["f0"] + x["f1"])))
            return {True: p, False: 1.0 - p}

        def predict_one(self, x):
            return self.predict_proba_one(x)[True] >= 0.5

    def train(rows, spec):
        return OldRule()
''')


def test_a_candidate_that_learned_the_old_rule_is_rejected_on_post_drift_rows(
    kafka_bootstrap, topic_names, produce, tmp_path, monkeypatch
):
    (tmp_path / "old_rule_plugin.py").write_text(PLUGIN, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    produce_rows(produce, topic_names.labeled, concept_rows("old", 0, 2000, "A"))
    with trainer_thread(kafka_bootstrap, topic_names, tmp_path, settings(recheck_s=0.5)):
        produce(topic_names.control, [request("old")])
        wait_state(kafka_bootstrap, topic_names, lambda s: s.serving_version("old") == "1.0.0")
    produce_rows(produce, topic_names.labeled, concept_rows("old", 2000, 1000, "B"))
    plugin = settings(recheck_s=0.5, model="plugin:old_rule_plugin:train", min_rows_after_drift=600)
    with trainer_thread(kafka_bootstrap, topic_names, tmp_path, plugin):
        produce(topic_names.control, [drift_request("old", 2000)])
        state = wait_state(kafka_bootstrap, topic_names, lambda s: len(s.taken("old")) == 2)
    [candidate] = [v for v in state.versions["old"].values() if v.version != "1.0.0"]
    assert candidate.status == "rejected" and state.serving_version("old") == "1.0.0"
    assert candidate.selection["validation"]["ts_from"] >= T0 + 2000
    baseline = [c for c in candidate.gate["checks"] if c["kind"] == "baseline"]
    assert baseline and not baseline[0]["passed"]
    assert candidate.metrics["log_loss"] > -math.log(0.5)  # worse than a coin on the new rule
