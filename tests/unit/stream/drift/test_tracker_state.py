"""The performance tracker's and the score-drift detectors' state: explicit JSON that resumes exactly.

Property tests feed random streams into a tracker (or detectors), save and restore it at
random points, keep feeding, and compare every output with an unserialised twin.
"""

from __future__ import annotations

import copy
import pickle
import random
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.stream.drift.label_join import JoinedRow
from driftline.stream.drift.performance import PerformanceTracker
from driftline.stream.drift.score_drift import ScoreDrift

LABELS: dict[str, list[Any]] = {
    "bool": [False, True],
    "int01": [0, 1],
    "str2": ["no", "yes"],
    "int5": [0, 1, 2, 3, 4],
    "str3": ["a", "b", "c"],
}


def rows(seed: int, n: int, labels: str | None, versions: int, start: int = 0) -> list[JoinedRow]:
    """Joined rows as the stream sees them: labels of one kind (``None``: regression), scores on some."""
    rng = random.Random(seed)
    step = rng.randrange(max(n, 1))
    out = []
    for i in range(start, start + n):
        version = f"1.{rng.randrange(versions)}.0" if rng.random() > 0.02 else None
        noise = 0.1 if i < start + step else 0.45
        if labels is None:
            y: Any = rng.gauss(0, 1) if rng.random() < 0.9 else rng.randint(-3, 3)
            p: Any = y + rng.gauss(0, noise * 4)
            score, scores = None, None
        else:
            classes = LABELS[labels]
            y = rng.choice(classes)
            p = y if rng.random() > noise else rng.choice(classes)
            score = rng.random() if len(classes) == 2 and rng.random() < 0.7 else None
            scores = {str(c): rng.random() for c in classes} if len(classes) > 2 and rng.random() < 0.7 else None
        out.append(JoinedRow("m", f"e{i}", float(i), version, p, score, y, {"x": rng.random()}, scores, float(i) + 0.5))
    return out


def observe(t: PerformanceTracker) -> tuple[Any, ...]:
    return (t.task, repr(t.pos_label), repr(t.metrics_by_version()), t.detector)


def through_state(t: PerformanceTracker) -> PerformanceTracker:
    state = t.to_state()
    assert isinstance(state, bytes) and not state.startswith(b"\x80")
    return PerformanceTracker.from_state(orjson.dumps(orjson.loads(state)))


@settings(max_examples=35, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    labels=st.sampled_from([None, *LABELS]),
    declared=st.booleans(),
    versions=st.integers(1, 3),
    cuts=st.lists(st.integers(0, 2500), max_size=4),
)
def test_a_restored_tracker_gives_every_output_its_twin_gives(
    seed: int, labels: str | None, declared: bool, versions: int, cuts: list[int]
) -> None:
    stream = rows(seed, 2500, labels, versions)
    task = None
    if declared:
        task = "regression" if labels is None else ("binary" if len(LABELS[labels]) == 2 else "multiclass")
    twin, again = PerformanceTracker(task), PerformanceTracker(task)
    at = 0
    for cut in [*sorted(cuts), len(stream)]:
        batch = stream[at:cut]
        at = max(at, cut)
        assert again.update(batch) == twin.update(batch)
        assert observe(again) == observe(twin)
        again = through_state(again)
        assert observe(again) == observe(twin)
        assert again.to_state() == twin.to_state()
    more = rows(seed + 1, 300, labels, versions, start=len(stream))
    assert again.update(more) == twin.update(more)
    assert observe(again) == observe(twin) and again.to_state() == twin.to_state()


@pytest.mark.parametrize("labels", [None, "bool", "str3"])
def test_a_tracker_still_inferring_its_task_round_trips(labels: str | None) -> None:
    stream = rows(3, 120, labels, 1)
    twin = PerformanceTracker(infer_rows=50)
    twin.update(stream[:30])
    again = through_state(twin)
    assert again.task is None and len(again._buffer) == 30
    assert [r.features for r in again._buffer] == [None] * 30  # features are not tracker state
    assert again.update(stream[30:]) == twin.update(stream[30:])
    assert observe(again) == observe(twin)


def test_the_state_is_versioned_json_holding_no_pickle() -> None:
    t = PerformanceTracker("binary")
    t.update(rows(1, 500, "bool", 2))
    doc = orjson.loads(t.to_state())
    assert doc["format"] == "driftline.performance-tracker" and doc["v"] == 2
    track = dict(doc["versions"])["1.0.0"]
    assert {m["kind"] for m in track["metrics"].values()} == {"Accuracy", "F1", "LogLoss"}
    assert track["detector"]["kind"] == "ADWIN"


def test_an_old_pickled_tracker_state_is_refused_not_loaded() -> None:
    old = pickle.dumps({"v": 1, "task": "binary", "versions": {}})
    with pytest.raises(ValueError, match="old pickled PerformanceTracker state"):
        PerformanceTracker.from_state(old)


def _tracker_doc() -> dict[str, Any]:
    t = PerformanceTracker("binary")
    t.update(rows(2, 400, "bool", 1))
    return orjson.loads(t.to_state())


def _track(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["versions"][0][1]


TRACKER_FORGERIES = {
    "format": lambda d: d.update(format="driftline.online-challenger"),
    "version": lambda d: d.update(v=1),
    "extra field": lambda d: d.update(extra=1),
    "task": lambda d: d.update(task="subprocess.Popen"),
    "delta": lambda d: d.update(delta=2.0),
    "infer_rows": lambda d: d.update(infer_rows=0),
    "buffer beside a task": lambda d: d.update(buffer=[["m", "e", 0.0, None, 1, None, 1, None, None]]),
    "metric kind": lambda d: _track(d)["metrics"]["f1"].update(kind="asyncio.subprocess.subprocess.Popen"),
    "metric swapped": lambda d: _track(d)["metrics"].update(f1=_track(d)["metrics"]["accuracy"]),
    "metric missing": lambda d: _track(d)["metrics"].pop("log_loss"),
    "detector kind": lambda d: _track(d)["detector"].update(kind="PageHinkley"),
    "detector settings": lambda d: _track(d)["detector"].update(delta=0.5),
    "n": lambda d: _track(d).update(n=-1),
    "recent too long": lambda d: _track(d).update(recent=[0.0] * 101),
    "recent text": lambda d: _track(d).update(recent=["0.5"]),
    "warmup after clip": lambda d: _track(d).update(clip=1.0, warmup=[1.0]),
    "repeated version": lambda d: d.update(versions=d["versions"] * 2),
    "version name": lambda d: d["versions"][0].__setitem__(0, 7),
}


@pytest.mark.parametrize("name", sorted(TRACKER_FORGERIES))
def test_a_forged_tracker_state_is_refused(name: str) -> None:
    doc = _tracker_doc()
    TRACKER_FORGERIES[name](doc)
    with pytest.raises(ValueError):
        PerformanceTracker.from_state(orjson.dumps(doc))


@pytest.mark.parametrize(
    "row",
    [
        ["m", "e", 0.0, None, [1], None, 1, None, None],  # a list prediction
        ["m", "e", "yesterday", None, 1, None, 1, None, None],
        ["m", "e", 0.0, None, 1, None, {"a": 1}, None, None],
        ["m", "e", 0.0, None, 1, None, 1, {"a": "x"}, None],
        ["m", 5, 0.0, None, 1, None, 1, None, None],
        ["m", "e", 0.0, None, 1, None, 1, None],
    ],
)
def test_a_forged_buffered_row_is_refused(row: list[Any]) -> None:
    t = PerformanceTracker()
    doc = orjson.loads(t.to_state())
    doc["buffer"] = [row]
    with pytest.raises(ValueError):
        PerformanceTracker.from_state(orjson.dumps(doc))


# -- score drift -------------------------------------------------------------------------


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    cuts=st.lists(st.integers(0, 4000), max_size=4),
    delta=st.sampled_from([0.002, 0.01]),
)
def test_restored_score_detectors_give_every_shift_their_twins_give(seed: int, cuts: list[int], delta: float) -> None:
    rng = np.random.default_rng(seed)
    n = 4000
    versions = [None if rng.random() < 0.02 else f"1.{int(rng.integers(3))}.0" for _ in range(n)]
    scores = np.where(np.arange(n) < rng.integers(n), rng.normal(0.3, 0.1, n), rng.normal(0.6, 0.1, n))
    scores[rng.random(n) < 0.05] = np.nan
    twin, again = ScoreDrift(delta), ScoreDrift(delta)
    at = 0
    for cut in [*sorted(cuts), n]:
        part = slice(at, max(at, cut))
        at = max(at, cut)
        assert again.update(versions[part], scores[part]) == twin.update(versions[part], scores[part])
        again = ScoreDrift.from_state(again.to_state())
        assert again.means() == twin.means() and again.counts == twin.counts
        assert again.to_state() == twin.to_state()


def test_an_old_pickled_score_drift_state_is_refused() -> None:
    with pytest.raises(ValueError, match="old pickled ScoreDrift state"):
        ScoreDrift.from_state(pickle.dumps({"delta": 0.002, "detectors": {}, "counts": {}}))


def _score_doc() -> dict[str, Any]:
    d = ScoreDrift()
    d.update(["1.0.0"] * 300, np.linspace(0, 1, 300))
    return orjson.loads(d.to_state())


@pytest.mark.parametrize(
    "forge",
    [
        lambda d: d.update(format="x"),
        lambda d: d.update(v=True),
        lambda d: d.update(delta=0),
        lambda d: d.update(versions={"1.0.0": 1}),
        lambda d: d["versions"][0].__setitem__(1, -1),
        lambda d: d["versions"][0][2].update(kind="builtins.eval"),
        lambda d: d["versions"][0][2].update(delta=0.3),  # not this instance's detector
        lambda d: d.update(versions=d["versions"] * 2),
        lambda d: d["versions"].append(["1.1.0", 1]),
    ],
)
def test_a_forged_score_drift_state_is_refused(forge: Any) -> None:
    doc = _score_doc()
    forge(doc)
    with pytest.raises(ValueError):
        ScoreDrift.from_state(orjson.dumps(doc))


@pytest.mark.parametrize("blob", [b"", b"\x00\xff", b"null", b"[]", b'{"format": 1}', b"\x80\x04K\x01."])
def test_bytes_that_are_no_state_are_refused(blob: bytes) -> None:
    with pytest.raises(ValueError):
        PerformanceTracker.from_state(blob)
    with pytest.raises(ValueError):
        ScoreDrift.from_state(blob)


def test_a_deep_copy_of_a_forged_document_does_not_leak_between_cases() -> None:
    doc = _tracker_doc()
    forged = copy.deepcopy(doc)
    TRACKER_FORGERIES["metric kind"](forged)
    assert PerformanceTracker.from_state(orjson.dumps(doc)).task == "binary"
