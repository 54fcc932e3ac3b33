"""The stream's River state loads through an allow-list: real states do, code does not."""

from __future__ import annotations

import os
import pickle
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest

from driftline.stream.drift.challenger import OnlineChallenger
from driftline.stream.drift.label_join import JoinedRow
from driftline.stream.drift.performance import PerformanceTracker
from driftline.stream.drift.score_drift import ScoreDrift
from driftline.stream.drift.state_pickle import loads_state


def joined(task: str, n: int = 300) -> list[JoinedRow]:
    rng = random.Random(task)
    rows = []
    for i in range(n):
        if task == "regression":
            y, p, s = rng.gauss(0, 1), rng.gauss(0, 1), None
        elif task == "binary":
            y, p, s = rng.random() < 0.5, rng.random() < 0.5, rng.random()
        else:
            y, p, s = rng.choice("abc"), rng.choice("abc"), None
        rows.append(
            JoinedRow(
                "m",
                f"e{i}",
                float(i),
                "1.0.0",
                p,
                s,
                y,
                {"x": rng.random(), "c": rng.choice("uv")},
                {"a": 0.3, "b": 0.7} if task == "multiclass" else None,
            )
        )
    return rows


@pytest.mark.parametrize("task", ["regression", "binary", "multiclass"])
def test_every_state_the_stream_writes_loads_back(task: str) -> None:
    tracker = PerformanceTracker(task)
    tracker.update(joined(task))
    again = PerformanceTracker.from_state(tracker.to_state())
    assert again.metrics_by_version() == tracker.metrics_by_version() != {}
    challenger = OnlineChallenger(task)
    challenger.update(joined(task))
    assert OnlineChallenger.from_state(challenger.to_state()).snapshot() == challenger.snapshot()
    drift = ScoreDrift()
    for _ in range(200):
        drift.update(["1.0.0", "1.0.1"], np.array([0.2, 0.9]))
    assert ScoreDrift.from_state(drift.to_state()).means() == drift.means()


class _Shell:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # what a forged changelog record would hold
        return (os.system, (f"touch {self.path}",))


class _Runner:
    def __reduce__(self):
        return (subprocess.check_call, (["true"],))


@pytest.mark.parametrize(
    "forged",
    [
        lambda tmp: _Shell(tmp / "pwned"),
        lambda tmp: _Runner(),
        lambda tmp: {"v": 1, "versions": eval},  # a builtin that is not a container
        lambda tmp: __import__("river.stream", fromlist=["iter_csv"]).iter_csv,  # a River function
    ],
)
def test_a_forged_state_is_refused_before_anything_runs(forged, tmp_path: Path) -> None:
    blob = pickle.dumps(forged(tmp_path))
    with pytest.raises(pickle.UnpicklingError, match="never holds"):
        PerformanceTracker.from_state(blob)
    with pytest.raises(pickle.UnpicklingError):
        loads_state(blob)
    assert not (tmp_path / "pwned").exists()
