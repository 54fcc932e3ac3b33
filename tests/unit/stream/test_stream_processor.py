"""The agent's per-batch logic without Kafka: replay parity, redelivery, crashes, DLQ."""

from __future__ import annotations

import orjson
import pytest

from driftline.schemas.batch import BatchBuilder
from driftline.schemas.batch_wire import encode_batch
from driftline.schemas.codec import decode_event
from driftline.stream.agent import BatchProcessor
from driftline.stream.drift.monitor import MonitorConfig
from driftline.stream.drift.windows import WindowSettings
from driftline.stream.model_updates import ServingVersions
from driftline.stream.replay.engine import read_reference, replay_lines
from driftline.stream.tables import ModelStateStore, state_key
from driftline.testing.pointers import signed_move
from driftline.testing.synthetic import stationary_events, to_jsonl, with_concept_drift, with_mean_shift
from driftline.trust.keys import Ed25519PrivateKey, TrustedKeys

KEY = Ed25519PrivateKey.generate()
CONFIG = MonitorConfig(windows=WindowSettings(size_s=20.0, allowed_lateness_s=2.0))


def _messages(lines: bytes, batch_size: int = 300) -> list[tuple[bytes, bytes]]:
    """(key, value) observation messages, as ingest packs them (one model per batch)."""
    out, builders = [], {}
    for raw in lines.splitlines():
        event = decode_event(raw)
        b = builders.setdefault(event.model_id, BatchBuilder(event.model_id))
        b.add(event)
        if len(b) >= batch_size:
            out.append((event.model_id.encode(), encode_batch(b.build())))
            b.clear()
    out += [(m.encode(), encode_batch(b.build())) for m, b in builders.items() if len(b)]
    return out


def _processor(table: dict, serving: ServingVersions | None = None) -> BatchProcessor:
    return BatchProcessor(
        table, ModelStateStore(table, CONFIG), serving or ServingVersions(TrustedKeys([KEY.public_key()]))
    )


def _run(proc: BatchProcessor, messages, start: int = 0, sent: list | None = None) -> list:
    sent = [] if sent is None else sent
    for offset, (key, value) in enumerate(messages[start:], start):
        result = proc.process(key, value, 0, offset)
        sent += result.outgoing
        proc.commit(result)
    return sent


def _ids(sent, topic: str, field: str = "id") -> list:
    return [orjson.loads(o.value)[field] for o in sent if o.topic == topic]


@pytest.fixture(scope="module")
def drift_lines() -> bytes:
    return to_jsonl(with_mean_shift(20_000, change_at=10_000, feature="x3", shift_sigma=1.0))


def test_live_processor_makes_replays_decisions(drift_lines: bytes) -> None:
    decisions, windows, _ = replay_lines(drift_lines.splitlines(), CONFIG)
    sent = _run(_processor({}), _messages(drift_lines))
    assert decisions, "the scenario must drift"
    assert _ids(sent, "control") == [d.id for d in decisions]
    assert [orjson.loads(o.value)["window"]["n_events"] for o in sent if o.topic == "windows"] == [
        w.window.n_events for w in windows
    ]


def test_redelivery_is_skipped_and_a_restart_continues_exactly(drift_lines: bytes) -> None:
    messages = _messages(drift_lines)
    table: dict = {}
    sent = _run(_processor(table), messages[:30])
    restarted = _processor(table)  # a new worker: empty cache, same changelogged table
    again = restarted.process(*messages[29], 0, 29)
    assert again.outcome == "skipped" and again.outgoing == []
    _run(restarted, messages, start=30, sent=sent)
    reference = _run(_processor({}), messages)
    assert _ids(sent, "control") == _ids(reference, "control")
    assert _ids(sent, "windows") == _ids(reference, "windows")


def test_crash_before_commit_re_sends_the_same_outputs(drift_lines: bytes) -> None:
    messages = _messages(drift_lines)
    table: dict = {}
    proc = _processor(table)
    _run(proc, messages[:40])
    lost = proc.process(*messages[40], 0, 40)  # delivered, then the worker died before commit
    retry = _processor(table).process(*messages[40], 0, 40)
    assert retry.outcome == "applied"
    assert [o.value for o in retry.outgoing] == [o.value for o in lost.outgoing]


def test_label_join_rows_once_and_reference_rows_chunked() -> None:
    lines = to_jsonl(with_concept_drift(3000, change_at=1500, label_delay=100, rate=50.0))
    table: dict = {}
    proc = _processor(table)
    sent = _run(proc, _messages(lines, 200))
    joined = [orjson.loads(o.value) for o in sent if o.topic == "labeled"]
    assert len(joined) == len({(r["model_id"], r["event_id"]) for r in joined}) == 3000
    state = proc.store.load("synthetic", {})
    assert state.challenger is not None and state.challenger.n > 0
    assert not any(k.startswith("rc|") for k in table) or state.chunks


def test_invalid_and_mis_keyed_batches_go_to_the_dlq() -> None:
    proc = _processor({})
    bad = proc.process(b"m", b'{"v": 2}', 3, 7, [("h", b"1")])
    assert bad.outcome == "invalid" and bad.outgoing[0].topic == "dlq" and bad.outgoing[0].value == b'{"v": 2}'
    headers = dict(bad.outgoing[0].headers)
    assert headers["driftline.source.offset"] == b"7" and headers["driftline.source.partition"] == b"3"
    assert headers["h"] == b"1"
    (key, value), *_ = _messages(to_jsonl(stationary_events(10, model_id="m1")))
    wrong = proc.process(b"other", value, 0, 8)
    assert wrong.outcome == "invalid" and dict(wrong.outgoing[0].headers)["driftline.error.rule"] == b"key"


def test_a_published_version_sets_the_reference(drift_lines: bytes) -> None:
    reference = read_reference(to_jsonl(stationary_events(5000, seed=3)).splitlines(), CONFIG)["synthetic"]
    serving = ServingVersions(TrustedKeys([KEY.public_key()]))
    update = signed_move(KEY, "synthetic", "2.0.0", reference_profile=reference.to_dict())
    assert serving.apply(b"synthetic", orjson.dumps(update)) == "applied"
    table: dict = {}
    proc = _processor(table, serving)
    _run(proc, _messages(drift_lines)[:3])
    state = proc.store.load("synthetic", {})
    assert state.monitor.model_version == "2.0.0" and state.monitor.reference == reference
    assert orjson.loads(table[state_key("synthetic")].partition(b"\n")[2])["monitor"]["model_version"] == "2.0.0"


def test_a_models_counters_are_exported_at_0_from_its_first_batch() -> None:
    """A counter first exported at 1 hides its first increment from ``increase()``: the
    dashboard showed no retrain request after a model's first one. So every per-model
    counter exists, at 0, once the model's first batch is applied."""
    import re

    from prometheus_client import CollectorRegistry, generate_latest

    from driftline.stream.stream_metrics import StreamMetrics

    registry = CollectorRegistry()
    table: dict = {}
    proc = BatchProcessor(
        table,
        ModelStateStore(table, CONFIG),
        ServingVersions(TrustedKeys([KEY.public_key()])),
        metrics=StreamMetrics(registry),
    )
    _run(proc, _messages(to_jsonl(stationary_events(50, rate=10.0, model_id="fresh")))[:1])
    text = generate_latest(registry).decode()
    assert re.search(
        r'driftline_stream_decisions_total\{model_id="fresh",rule="performance:adwin\(delta=[^"]+\)"\} 0\.0', text
    ), "the performance rule, as the policy names it"
    for series in (
        'driftline_stream_decisions_total{model_id="fresh",rule="drift"} 0.0',
        'driftline_stream_windows_closed_total{model_id="fresh",status="scored"} 0.0',
        'driftline_stream_late_events_total{model_id="fresh"} 0.0',
        'driftline_stream_label_join_expired_total{model_id="fresh"} 0.0',
    ):
        assert series in text, series


def _served_lines(n: int, change_at: int, delay: int = 50) -> bytes:
    """Predictions by a served 1.0.0 that learned rule A; labels follow rule B after ``change_at``."""
    import random

    rng = random.Random(5)
    t0, lines, labels = 1_767_225_600.0, [], []
    for i in range(n):
        x = {"x0": rng.gauss(0, 1), "x1": rng.gauss(0, 1)}
        served = x["x0"] + x["x1"] > 0
        truth = (x["x0"] + x["x1"] if i < change_at else x["x0"] - x["x1"]) > 0
        lines.append(
            {
                "model_id": "m",
                "event_id": f"e{i}",
                "ts": t0 + i / 10,
                "model_version": "1.0.0",
                "prediction": int(served),
                "score": 0.9 if served else 0.1,
                "features": x,
            }
        )
        labels.append(
            (i + delay, {"model_id": "m", "event_id": f"e{i}", "ts": t0 + (i + delay) / 10, "label": int(truth)})
        )
        while labels and labels[0][0] <= i:
            lines.append(labels.pop(0)[1])
    return b"\n".join(orjson.dumps(line) for line in lines)


def test_a_served_version_that_falls_short_of_its_gate_is_asked_for_with_its_evidence() -> None:
    serving = ServingVersions(TrustedKeys([KEY.public_key()]))
    move = signed_move(KEY, "m", "1.0.0", metrics={"accuracy": 0.99, "n": 800})
    assert serving.apply(b"m", orjson.dumps(move)) == "applied"
    sent = _run(_processor({}, serving), _messages(_served_lines(6000, change_at=3000), batch_size=200))
    control = [orjson.loads(o.value) for o in sent if o.topic == "control"]
    checks = [c for c in control if c["type"] == "version_checked"]
    asked = [c for c in control if c["type"] == "retrain_requested" and c["rule"] == "underperforming"]
    assert [(c["version"], c["verdict"]) for c in checks] == [("1.0.0", "ok"), ("1.0.0", "short")]
    assert checks[0]["live"]["accuracy"] > 0.95 and checks[1]["live"]["accuracy"] < 0.9
    assert asked and asked[0]["model_version"] == "1.0.0" and asked[0]["evidence"]["gate"] == {"accuracy": 0.99}
    change_ts = 1_767_225_600.0 + 3000 / 10
    assert abs(asked[0]["evidence"]["drift_started_ts"] - change_ts) < 10  # within 100 events of the change
    assert asked[0]["evidence"]["challenger"]["format"] == "driftline.challenger-export"
    assert asked[0]["at_index"] < 3000 + 400  # found within a few hundred labeled rows
