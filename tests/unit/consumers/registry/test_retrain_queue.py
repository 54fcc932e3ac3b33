"""Pending retrain requests: deferred, merged, kept in the audit fold, resolved once; pause/resume."""

from __future__ import annotations

from driftline.consumers.registry.governance import apply_command
from driftline.consumers.registry.retrain_queue import PendingRetrain, blocked_by, drift_start_of
from driftline.consumers.registry.state import RegistryState
from driftline.schemas.control import RetrainRequested
from driftline.schemas.registry import ModelCommand, ModelVersionCreated, RetrainDeferred, TrainingSkipped

T0 = 1_767_225_600.0


def request(rule: str = "drift", start: float = T0 + 600, drift: float | None = None) -> RetrainRequested:
    evidence = {} if drift is None else {"drift_started_ts": drift}
    return RetrainRequested("m", start, start + 60, rule, ("why",), evidence, start + 70, 1, "1.0.0")


def test_requests_merge_into_one_pending_with_the_earliest_drift_start():
    state = RegistryState()
    first, second = request(drift=T0 + 500), request("underperforming", T0 + 900, drift=T0 + 300)
    pending = PendingRetrain.from_request(first, 1.0)
    state.apply("audit", "m", pending.deferral(first.id, "cooldown", False, "drift", drift_start_of(first)).to_dict())
    merged = state.pending_retrains["m"].with_request(second)
    state.apply("audit", "m", merged.deferral(second.id, "rows", True, second.rule, drift_start_of(second)).to_dict())
    folded = state.pending_retrains["m"]
    assert (folded.pending_id, folded.request_ids) == (first.id, (first.id, second.id))
    assert (folded.drift_start, folded.urgent, folded.rule) == (T0 + 300, True, "underperforming")
    assert {first.id, second.id} <= state.handled  # a redelivered request is a duplicate


def test_the_version_for_the_pending_id_resolves_it_and_marks_every_merged_request_handled():
    state = RegistryState()
    state.apply("audit", "m", RetrainDeferred("m", "r1", "r1", "cooldown", T0).to_dict())
    created = ModelVersionCreated(
        "m", "1.0.1", "approved", "patch", "1.0.0", "r1", {}, None, {}, {}, trigger={"request_ids": ["r1", "r2"]}
    )
    state.apply("audit", "m", created.to_dict())
    assert "m" not in state.pending_retrains and {"r1", "r2"} <= state.handled


def test_a_skip_of_another_request_leaves_the_pending_one():
    state = RegistryState()
    state.apply("audit", "m", RetrainDeferred("m", "r1", "r1", "cooldown", T0).to_dict())
    state.apply("audit", "m", TrainingSkipped("m", "other", "duplicate").to_dict())
    assert state.pending_retrains["m"].pending_id == "r1"
    state.apply("audit", "m", TrainingSkipped("m", "r1", "superseded").to_dict())
    assert "m" not in state.pending_retrains


def test_cooldown_holds_drift_requests_but_not_urgent_ones():
    drift = PendingRetrain.from_request(request(drift=T0), 0.0)
    urgent = PendingRetrain.from_request(request("underperforming", drift=T0), 0.0)
    common = {
        "now": 1000.0,
        "last_created_at": 990.0,
        "cooldown_s": 600.0,
        "paused": False,
        "rows_after_drift": 5000,
        "min_rows_after_drift": 600,
    }
    assert blocked_by(drift, **common).startswith("cooldown")
    assert blocked_by(urgent, **common) is None
    assert (
        blocked_by(urgent, **{**common, "rows_after_drift": 599})
        == "waiting for rows after the drift start: 599 of 600"
    )
    assert blocked_by(urgent, **{**common, "rows_after_drift": None}) is None  # no drift start: nothing to wait for
    assert blocked_by(urgent, **{**common, "paused": True}).startswith("paused")


def test_a_follow_up_waits_for_its_own_row_count():
    follow = PendingRetrain("m", "f", ("f",), T0, True, "follow_up", "", 0.0, min_rows=2400)
    assert (
        blocked_by(
            follow,
            now=0.0,
            last_created_at=None,
            cooldown_s=0.0,
            paused=False,
            rows_after_drift=1000,
            min_rows_after_drift=600,
        )
        == "waiting for rows after the drift start: 1000 of 2400"
    )


def test_drift_start_comes_from_the_evidence_else_a_time_window():
    assert drift_start_of(request(drift=T0 + 5)) == T0 + 5
    assert drift_start_of(request()) == T0 + 600
    assert drift_start_of(request(start=1200.0)) is None  # count window: event numbers, not time


def test_pause_and_resume_are_recorded_and_refused_when_they_change_nothing():
    state = RegistryState()
    state.apply("model_updates", "m", {"type": "model_version_promoted", "model_id": "m", "version": "1.0.0"})
    for out in apply_command(state, ModelCommand("pause_model", "m", "ana", "investigating", id="c1")):
        state.apply(out.kind, out.key, out.value)
    assert state.paused == {"m"}
    refused = apply_command(state, ModelCommand("pause_model", "m", "ana", "again", id="c2"))
    assert refused[0].value["type"] == "command_refused"
    for out in apply_command(state, ModelCommand("resume_model", "m", "ana", "fixed", id="c3")):
        state.apply(out.kind, out.key, out.value)
    assert state.paused == set()
    assert (
        apply_command(state, ModelCommand("pause_model", "nosuch", "ana", "x", id="c4"))[0].value["type"]
        == "command_refused"
    )
