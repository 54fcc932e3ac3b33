"""The stream's River state loads through an allow-list: real states do, code does not."""

from __future__ import annotations

import io
import os
import pickle
import random
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

from driftline.stream.drift import state_pickle
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


def _global(module: str, name: str) -> bytes:
    """A protocol-4 pickle whose only content is the global ``module``/``name`` (no call)."""
    return (
        b"\x80\x04"
        + pickle.SHORT_BINUNICODE
        + bytes([len(module)])
        + module.encode()
        + (pickle.SHORT_BINUNICODE + bytes([len(name)]) + name.encode() + pickle.STACK_GLOBAL + pickle.STOP)
    )


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("driftline.stream.drift.performance", "collections.abc.Callable"),  # an import of that module
        ("driftline.stream.drift.score_drift", "pickle.Unpickler"),  # a class, but the pickle module's
        ("driftline.stream.drift.score_drift", "drift.ADWIN"),  # a River class, but through a module
        ("river.stream", "nosuch"),
        ("driftline.stream.agent", "asyncio.subprocess.subprocess.Popen"),  # the reported proof
        ("driftline.stream.drift.performance", "PerformanceTracker.__class__"),  # type itself
        ("driftline.stream.worker", "StreamWorker"),  # the worker package is not state
    ],
)
def test_a_name_that_only_reaches_a_class_through_an_allowed_module_is_refused(module: str, name: str) -> None:
    with pytest.raises(pickle.UnpicklingError, match="never holds"):
        loads_state(_global(module, name))


def test_every_dotted_path_the_loader_accepts_is_a_river_or_drift_core_class() -> None:
    """Walk every attribute path (depth 3) from the allowed modules loaded: what loads is ours or River's."""
    import importlib
    import pkgutil
    import sys

    import driftline.stream.drift as drift

    for info in pkgutil.iter_modules(drift.__path__, "driftline.stream.drift."):
        importlib.import_module(info.name)
    allowed = ("river.", "driftline.stream.drift.")
    modules = [name for name in list(sys.modules) if f"{name}.".startswith(allowed)]
    loader = state_pickle._StateUnpickler(io.BytesIO(b""))
    accepted = refused = 0
    warnings.simplefilter("ignore")  # getattr on River's deprecated aliases warns
    for module in modules:
        frontier = [(name, getattr(sys.modules[module], name, None)) for name in dir(sys.modules[module])]
        for depth in range(3):
            nxt = []
            for path, obj in frontier:
                try:
                    found = loader.find_class(module, path)
                except (pickle.UnpicklingError, AttributeError, ValueError):
                    refused += 1
                else:
                    accepted += 1
                    assert isinstance(found, type) and f"{found.__module__}.".startswith(allowed), (module, path)
                if depth < 2 and obj is not None and not path.startswith("_"):
                    nxt.extend((f"{path}.{a}", getattr(obj, a, None)) for a in dir(obj) if not a.startswith("__"))
            frontier = nxt[:20000]
    assert accepted > 50 and refused > accepted
