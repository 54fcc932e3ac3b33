"""No code from data: a forged model record is refused part by part, counted, and never executed.

The stream's state holds no pickle any more, so there is no unpickler whose reachable names
could be walked. What replaces that walk: every state reader accepts only its declared type
tags (checked against every dotted name reachable from River and the drift core), and the
forgeries that matter — random bytes, valid JSON with unknown tags, and the dotted-name
pickle exploit from issue 15 — are refused and counted while the marker file the exploit
would create never appears.
"""

from __future__ import annotations

import base64
import importlib
import pickle
import pkgutil
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from driftline.schemas.batch import BatchBuilder
from driftline.schemas.batch_wire import encode_batch
from driftline.schemas.codec import decode_event
from driftline.stream.agent import BatchProcessor
from driftline.stream.drift import river_state
from driftline.stream.drift.adwin_state import load_adwin
from driftline.stream.drift.challenger import OnlineChallenger
from driftline.stream.drift.monitor import MonitorConfig
from driftline.stream.drift.performance import PerformanceTracker
from driftline.stream.drift.score_drift import ScoreDrift
from driftline.stream.drift.windows import WindowSettings
from driftline.stream.model_updates import ServingVersions
from driftline.stream.tables import ModelStateStore, state_key
from driftline.testing.synthetic import to_jsonl, with_concept_drift
from driftline.trust.keys import Ed25519PrivateKey, TrustedKeys

CONFIG = MonitorConfig(windows=WindowSettings(size_s=20.0, allowed_lateness_s=2.0))
KEY = Ed25519PrivateKey.generate()


def exploit(marker: Path) -> bytes:
    """The reported proof: module ``driftline.stream.agent``, name ``asyncio.subprocess.subprocess.Popen``
    (a dotted name resolves to ``subprocess.Popen``), called with ``["touch", marker]``."""
    module, name = b"driftline.stream.agent", b"asyncio.subprocess.subprocess.Popen"
    args = pickle.dumps((["touch", str(marker)],), protocol=2)[2:-1]  # the tuple's opcodes, no header/STOP
    return (
        b"\x80\x04"
        + pickle.SHORT_BINUNICODE
        + bytes([len(module)])
        + module
        + pickle.SHORT_BINUNICODE
        + bytes([len(name)])
        + name
        + pickle.STACK_GLOBAL
        + args
        + pickle.REDUCE
        + pickle.STOP
    )


def test_the_exploit_runs_a_command_when_unpickled(tmp_path: Path) -> None:
    """So the marker means something: plain pickle does run it."""
    marker = tmp_path / "pwned"
    pickle.loads(exploit(marker)).wait()  # the point of this test: plain pickle runs it
    assert marker.exists()


# -- a model record with every part filled ---------------------------------------------


def _messages(n: int = 3000) -> list[tuple[bytes, bytes]]:
    out, b = [], BatchBuilder("m")
    for raw in to_jsonl(with_concept_drift(n, change_at=n // 2, label_delay=50, model_id="m")).splitlines():
        b.add(decode_event(raw))
        if len(b) >= 300:
            out.append((b"m", encode_batch(b.build())))
            b.clear()
    return out


@pytest.fixture(scope="module")
def messages() -> list[tuple[bytes, bytes]]:
    return _messages()


def _filled(messages: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    proc = BatchProcessor(table, ModelStateStore(table, CONFIG), ServingVersions(TrustedKeys([KEY.public_key()])))
    for offset, (key, value) in enumerate(messages[:6]):
        proc.commit(proc.process(key, value, 0, offset))
    return table


def _record(table: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    head, _, body = table[state_key("m")].partition(b"\n")
    return head, orjson.loads(body)


def _b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode()


def _unknown_tags(part: str, doc: dict[str, Any]) -> str:
    """The part's own valid JSON state with a type tag nothing declares."""
    blob = base64.b64decode(doc["monitor"]["tracker"] if part == "tracker" else doc[part])
    state = orjson.loads(blob)
    if part == "tracker":
        state["versions"][0][1]["metrics"]["accuracy"]["kind"] = "asyncio.subprocess.subprocess.Popen"
    elif part == "score_drift":
        state["versions"][0][2]["kind"] = "subprocess.Popen"
    else:
        state["model"]["steps"][0]["estimator"]["kind"] = "os.system"
    return _b64(orjson.dumps(state))


def _put(doc: dict[str, Any], part: str, value: Any) -> None:
    if part == "tracker":
        doc["monitor"]["tracker"] = value
    else:
        doc[part] = value


FORGERIES: dict[str, tuple[str, Callable[[Path, str, dict[str, Any]], Any]]] = {
    "exploit pickle": ("pickle", lambda marker, part, doc: _b64(exploit(marker))),
    "random bytes": ("invalid", lambda marker, part, doc: _b64(bytes(range(256)) * 3)),
    "unknown type tags": ("invalid", lambda marker, part, doc: _unknown_tags(part, doc)),
    "not base64": ("invalid", lambda marker, part, doc: "%%%not base64%%%"),
    "not a string": ("invalid", lambda marker, part, doc: {"kind": "builtins.eval"}),
}


@pytest.mark.parametrize("part", ["tracker", "score_drift", "challenger"])
@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_forged_part_is_refused_counted_and_never_run(
    part: str, forgery: str, messages: list[tuple[bytes, bytes]], tmp_path: Path
) -> None:
    table = _filled(messages)
    head, doc = _record(table)
    reason, forge = FORGERIES[forgery]
    marker = tmp_path / "pwned"
    _put(doc, part, forge(marker, part, doc))
    table[state_key("m")] = head + b"\n" + orjson.dumps(doc)
    seen: list[tuple[str, str, str]] = []
    store = ModelStateStore(table, CONFIG, on_refused=lambda *a: seen.append(a))
    state = store.load("m", {})
    assert seen == [("m", part, reason)] and store.refused == {(part, reason): 1}
    assert not marker.exists()
    fresh = {"tracker": state.monitor.tracker._versions, "score_drift": state.score_drift.detectors}
    if part in fresh:
        assert fresh[part] == {}
    else:
        assert state.challenger is not None and state.challenger.n == 0
    assert state.monitor.counters["events"] > 0  # the rest of the record loaded
    if part != "tracker":
        assert state.monitor.tracker.metrics_by_version() != {}
    # the worker carries on with the fresh part, and saves a record without the forgery
    proc = BatchProcessor(table, store, ServingVersions(TrustedKeys([KEY.public_key()])))
    for offset, (key, value) in enumerate(messages[6:], 6):
        proc.commit(proc.process(key, value, 0, offset))
    again = ModelStateStore(table, CONFIG)
    assert again.load("m", {}).monitor.tracker.metrics_by_version() != {} and again.refused == {}
    assert not marker.exists()


def test_a_forged_quality_state_is_refused_and_counted(messages: list[tuple[bytes, bytes]]) -> None:
    table = _filled(messages)
    head, doc = _record(table)
    doc["quality"] = {"kind": "subprocess.Popen"}
    table[state_key("m")] = head + b"\n" + orjson.dumps(doc)
    store = ModelStateStore(table, CONFIG)
    store.load("m", {})
    assert store.refused == {("quality", "invalid"): 1}


def test_an_old_record_with_pickled_parts_loads_with_those_parts_fresh(messages: list[tuple[bytes, bytes]]) -> None:
    """What a worker upgraded from a pickle-state version finds in its changelog."""
    table = _filled(messages)
    head, doc = _record(table)
    old = _b64(pickle.dumps({"v": 1, "versions": {}}))
    doc["monitor"]["tracker"], doc["score_drift"] = old, old
    table[state_key("m")] = head + b"\n" + orjson.dumps(doc)
    store = ModelStateStore(table, CONFIG)
    state = store.load("m", {})
    assert store.refused == {("tracker", "pickle"): 1, ("score_drift", "pickle"): 1}
    assert state.monitor.tracker.metrics_by_version() == {} and state.score_drift.detectors == {}
    assert state.challenger is not None and state.challenger.n > 0


# -- every reader accepts its declared tags and nothing else ---------------------------


def _reachable_names() -> set[str]:
    """Every attribute path (depth 2) from River's and the drift core's modules, bare and dotted:
    what the pickle allow-list had to reason about, and more."""
    import driftline.stream.drift as drift_core

    for info in pkgutil.iter_modules(drift_core.__path__, "driftline.stream.drift."):
        importlib.import_module(info.name)
    importlib.import_module("river.drift")
    names: set[str] = {"asyncio.subprocess.subprocess.Popen", "subprocess.Popen", "os.system", "builtins.eval"}
    warnings.simplefilter("ignore")  # River's deprecated aliases warn on getattr
    for module_name in [m for m in list(sys.modules) if m.startswith(("river", "driftline.stream.drift"))]:
        module = sys.modules[module_name]
        for a in dir(module):
            names |= {a, f"{module_name}.{a}"}
            obj = getattr(module, a, None)
            if isinstance(obj, type) or type(obj).__name__ == "module":
                names |= {f"{a}.{b}" for b in dir(obj) if not b.startswith("__")}
    return names


DECLARED = {
    "metric": {"Accuracy", "F1", "LogLoss", "CrossEntropy", "MacroF1", "MAE", "RMSE"},
    "adwin": {"ADWIN"},
    "pipeline": {"Pipeline"},
}


def _tag_accepted(reader: str, tag: str) -> bool:
    doc = {"format": river_state.FORMAT, "v": river_state.FORMAT_VERSION, "kind": tag}
    read = {"metric": river_state.load_metric, "adwin": load_adwin, "pipeline": river_state.load_pipeline}[reader]
    with pytest.raises(ValueError) as caught:  # a bare tag has no fields: never a valid state
        read(doc)
    return "unknown kind" not in str(caught.value)


def test_readers_accept_only_their_declared_type_tags() -> None:
    names = _reachable_names()
    assert len(names) > 5000
    for reader, declared in DECLARED.items():
        accepted = {tag for tag in names | declared if _tag_accepted(reader, tag)}
        assert accepted == declared, reader


@pytest.mark.parametrize(
    "read",
    [PerformanceTracker.from_state, ScoreDrift.from_state, OnlineChallenger.from_state],
    ids=["tracker", "score_drift", "challenger"],
)
def test_state_documents_accept_only_their_own_format_tag(read: Callable[[bytes], Any]) -> None:
    own = {
        PerformanceTracker.from_state: "driftline.performance-tracker",
        ScoreDrift.from_state: "driftline.score-drift",
        OnlineChallenger.from_state: "driftline.online-challenger",
    }
    for tag in [*sorted(_reachable_names())[:3000], "driftline.river-state", *(t for t in own.values())]:
        with pytest.raises(ValueError) as caught:
            read(orjson.dumps({"format": tag, "v": 2}))
        assert ("no format marker" in str(caught.value)) == (tag != own.get(read)), tag


def test_a_refusal_reaches_the_workers_counter(messages: list[tuple[bytes, bytes]], tmp_path: Path) -> None:
    """The wiring the worker uses: ``on_refused`` → ``driftline_stream_state_refused_total``."""
    from prometheus_client import CollectorRegistry, generate_latest

    from driftline.stream.stream_metrics import StreamMetrics

    registry = CollectorRegistry()
    metrics = StreamMetrics(registry)
    table = _filled(messages)
    head, doc = _record(table)
    doc["monitor"]["tracker"] = _b64(exploit(tmp_path / "pwned"))
    table[state_key("m")] = head + b"\n" + orjson.dumps(doc)
    store = ModelStateStore(table, CONFIG, on_refused=lambda m, p, r: metrics.state_refused(m, p, r).inc())
    store.load("m", {})
    text = generate_latest(registry).decode()
    assert 'driftline_stream_state_refused_total{model_id="m",part="tracker",reason="pickle"} 1.0' in text
    assert not (tmp_path / "pwned").exists()
