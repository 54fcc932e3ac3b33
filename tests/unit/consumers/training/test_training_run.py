"""One training without a broker: the present decides, the challenger competes, the record tells why."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

from driftline.commands.models import _list_rows, _show
from driftline.consumers.registry.retrain_queue import PendingRetrain
from driftline.consumers.registry.state import RegistryState
from driftline.consumers.registry.training_set import TrainingSet, rows_sha256
from driftline.consumers.training.config import GovernanceSettings, TrainerSettings, for_model
from driftline.consumers.training.run import TrainingContext, train_version
from driftline.schemas.control import VersionChecked
from driftline.schemas.registry import TrainingLineage
from driftline.stream.drift.challenger import OnlineChallenger
from driftline.stream.drift.label_join import JoinedRow
from driftline.trust.keys import private_key_from_hex

T0 = 1_767_225_600.0
KEY = private_key_from_hex("5e" * 32, "test key")


def rows(start: int, n: int, rule: str) -> list[dict[str, Any]]:
    rng = random.Random(start)
    out = []
    for i in range(start, start + n):
        x = {"f0": rng.gauss(0, 1), "f1": rng.gauss(0, 1)}
        y = (x["f0"] + x["f1"] if rule == "A" else x["f0"] - x["f1"]) > 0
        out.append(
            {
                "model_id": "m",
                "event_id": f"e{i}",
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
    return out


def training_set(data: list[dict[str, Any]]) -> TrainingSet:
    return TrainingSet(data, TrainingLineage("labeled", "m", (), len(data), rows_sha256(data), "last_n"))


def publish(state: RegistryState, outcome: Any) -> None:
    for out in outcome.outputs:
        state.apply(out.kind, out.key, out.value)


def test_a_retrain_records_its_trigger_its_trials_and_the_challenger_it_judged(tmp_path: Path) -> None:
    ctx = TrainingContext(KEY, str(tmp_path), 900 * 1024, GovernanceSettings())
    cfg = for_model(TrainerSettings(min_rows=50), "m")
    state = RegistryState()
    first = rows(0, 3000, "A")
    publish(state, train_version(training_set(first), cfg, ctx, state, "register", 0.0))
    assert state.serving_version("m") == "1.0.0"
    after = rows(3000, 1200, "B")
    challenger = OnlineChallenger("binary")  # exported with the request: it has not seen the newest rows
    challenger.update([JoinedRow.from_dict(r) for r in first + after[:900]])
    req = PendingRetrain(
        "m",
        "r1",
        ("r1", "r2"),
        T0 + 3000,
        True,
        "underperforming",
        "",
        0.0,
        evidence={"challenger": challenger.export(), "live": {"accuracy": 0.5}},
    )
    outcome = train_version(training_set(first + after), cfg, ctx, state, "r1", 0.0, pending=req)
    record = outcome.version
    assert record is not None and record.status == "approved" and record.version == "1.0.1"
    assert record.trigger["request_ids"] == ["r1", "r2"] and record.trigger["drift_start"] == T0 + 3000
    assert "challenger" not in record.trigger["evidence"]  # its state is not kept on the version
    assert record.selection["validation"]["ts_from"] >= T0 + 3000
    judged = {(t["window"], t["learner"]) for t in record.selection["trials"] if "metrics" in t}
    assert ("extra", "online_challenger") in judged and ("since_drift", "logistic") in judged
    assert record.metrics["accuracy"] > 0.95 and record.champion_metrics["accuracy"] < 0.7
    follow = [o.value for o in outcome.outputs if o.value.get("type") == "retrain_deferred"]
    assert [f["rule"] for f in follow] == ["follow_up"] and follow[0]["min_rows"] > 900
    publish(state, outcome)
    assert state.pending_retrains["m"].rule == "follow_up"
    challenger.update([JoinedRow.from_dict(r) for r in after[900:]])  # now it learned the validation rows too
    seen = dataclasses.replace(req, evidence={"challenger": challenger.export()})
    again = train_version(training_set(first + after), cfg, ctx, RegistryState(), "r3", 0.0, pending=seen)
    [trial] = [t for t in again.version.selection["trials"] if t["learner"] == "online_challenger"]
    assert trial["skipped"].startswith("it learned from the validation rows")


def test_models_show_and_list_put_the_live_figures_beside_the_gate(tmp_path: Path) -> None:
    ctx = TrainingContext(KEY, str(tmp_path), 900 * 1024, GovernanceSettings())
    state = RegistryState()
    publish(
        state,
        train_version(
            training_set(rows(0, 1000, "A")), for_model(TrainerSettings(min_rows=50), "m"), ctx, state, "register", 0.0
        ),
    )
    check = VersionChecked("m", "1.0.0", "short", {"accuracy": 0.51, "n": 500.0}, {"accuracy": 0.99}, 0.05, 1)
    state.apply("audit", "m", {**check.to_dict(), "request_id": check.id, "at": T0})
    shown = _show(state, "m", None)
    assert shown["live"] == {"accuracy": 0.51, "n": 500.0, "verdict": "short"}
    assert shown["metrics"]["accuracy"] > 0.95
    [row] = _list_rows(state, "m")
    assert row["live"] == "accuracy=0.51 n=500 short"


def test_a_retrain_for_a_failing_version_fits_the_fast_learner_only_and_its_follow_up_all(tmp_path: Path) -> None:
    ctx = TrainingContext(KEY, str(tmp_path), 900 * 1024, GovernanceSettings())
    cfg = for_model(TrainerSettings(min_rows=50), "m")
    state = RegistryState()
    first = rows(0, 3000, "A")
    publish(state, train_version(training_set(first), cfg, ctx, state, "register", 0.0))
    data = first + rows(3000, 1200, "B")

    def learners_fitted(rule: str) -> tuple[set[str], set[str]]:
        req = PendingRetrain("m", rule, (rule,), T0 + 3000, True, rule, "", 0.0, evidence={})
        trials = train_version(training_set(data), cfg, ctx, state, rule, 0.0, pending=req).version.selection["trials"]
        return (
            {t["learner"] for t in trials if "metrics" in t},
            {t["learner"] for t in trials if "quick retrain" in t.get("skipped", "")},
        )

    for rule in ("underperforming", "challenger", "performance:adwin(delta=0.001)"):
        assert learners_fitted(rule) == ({"logistic"}, {"hist_gbdt"}), rule
    for rule in ("follow_up", "drift"):
        assert learners_fitted(rule) == ({"logistic", "hist_gbdt"}, set()), rule
