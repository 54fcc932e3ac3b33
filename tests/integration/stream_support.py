"""Helpers for the stream worker tests: worker processes, observation batches, window tallies."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson
from confluent_kafka.admin import AdminClient

from driftline.schemas.batch import BatchBuilder
from driftline.schemas.batch_wire import encode_batch
from driftline.schemas.codec import decode_event

WINDOW_S = 10.0
FAST_GROUP = {
    "DRIFTLINE_STREAM_SESSION_TIMEOUT_S": "6",
    "DRIFTLINE_STREAM_HEARTBEAT_INTERVAL_S": "1",
    "DRIFTLINE_STREAM_COMMIT_INTERVAL_S": "1",
    "DRIFTLINE_STREAM_STANDBY_REPLICAS": "0",
    "DRIFTLINE_STREAM_UPDATES_WAIT_S": "5",
    "DRIFTLINE_STREAM_STALL_AFTER_S": "10",
    "DRIFTLINE_WINDOWS_SIZE_S": str(WINDOW_S),
    "DRIFTLINE_WINDOWS_ALLOWED_LATENESS_S": "1",
}


def stream_process(
    bootstrap: str,
    prefix: str,
    app_id: str,
    data_dir: Path,
    metrics_port: int = 0,
    store: str = "memory",
    log: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``driftline stream`` as a real OS process (its own session, so kill -9 hits only it)."""
    env = {
        **os.environ,
        "DRIFTLINE_TOPICS_PREFIX": prefix,
        "DRIFTLINE_STREAM_DATA_DIR": str(data_dir),
        **FAST_GROUP,
        **(extra_env or {}),
    }
    level = (
        ["--log-level", os.environ["STREAM_TEST_LOG_LEVEL"]] if os.environ.get("STREAM_TEST_LOG_LEVEL") else []
    )  # e.g. info: faust's rebalance/recovery steps
    cmd = [
        sys.executable,
        "-m",
        "driftline.cli",
        *level,
        "stream",
        "--bootstrap-servers",
        bootstrap,
        "--app-id",
        app_id,
        "--metrics-port",
        str(metrics_port),
        "--store",
        store,
    ]
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=out, start_new_session=True)


@contextlib.contextmanager
def workers(*processes: subprocess.Popen[bytes]) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Kill every worker process at the end, whatever happened."""
    running = list(processes)
    try:
        yield running
    finally:
        for p in running:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        for p in running:
            with contextlib.suppress(Exception):
                p.wait(10)


def kill_9(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(10)


def wait_for_members(bootstrap: str, group: str, count: int, timeout: float = 60.0) -> None:
    """Until the faust group has ``count`` members in a stable state."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            desc = admin.describe_consumer_groups([group])[group].result(10)
            last = (len(desc.members), str(desc.state))
            if len(desc.members) == count and "STABLE" in str(desc.state).upper():
                return
        time.sleep(0.5)
    raise AssertionError(f"group {group} never had {count} stable members (last: {last})")


def observation_messages(events: Iterable[dict], batch_size: int = 500) -> list[tuple[bytes, bytes]]:
    """Events → ``(model_id, batch)`` messages as ingest packs them (per model, in order)."""
    out, builders = [], {}
    for event_dict in events:
        event = decode_event(orjson.dumps(event_dict))
        builder = builders.setdefault(event.model_id, BatchBuilder(event.model_id))
        builder.add(event)
        if len(builder) >= batch_size:
            out.append((event.model_id.encode(), encode_batch(builder.build())))
            builder.clear()
    out += [(m.encode(), encode_batch(b.build())) for m, b in builders.items() if len(b)]
    return out


def feature_events(
    model_id: str, n: int, start: int = 0, rate: float = 100.0, t0: float = 1_767_225_600.0
) -> list[dict]:
    """``n`` in-order feature events (no jitter, so none is late)."""
    return [
        {
            "model_id": model_id,
            "event_id": f"{model_id}-{i}",
            "ts": t0 + i / rate,
            "features": {"a": float(i % 17), "b": float((i * 7) % 13), "c": ["x", "y", "z"][i % 3]},
        }
        for i in range(start, start + n)
    ]


def closing_event(model_id: str, t0: float = 1_767_225_600.0) -> dict:
    """A far-future event: the watermark passes every open window, so all of them close."""
    return {"model_id": model_id, "event_id": f"{model_id}-close", "ts": t0 + 10_000_000.0, "features": {"a": 1.0}}


def window_tally(records: Iterable[object]) -> tuple[dict[str, int], dict[str, int], list[str]]:
    """Per model: events in distinct closed windows and late events; ids re-sent with other counts.

    A window re-sent after a crash has the same id; if its count differs, something was
    counted twice (or lost) — those ids are returned as conflicts.
    """
    seen: dict[str, int] = {}
    conflicts: list[str] = []
    per_model: dict[str, int] = defaultdict(int)
    for record in records:
        w = orjson.loads(record.value)  # type: ignore[attr-defined]
        wid, n = w["id"], w["window"]["n_events"]
        if wid in seen:
            if seen[wid] != n:
                conflicts.append(wid)
            continue
        seen[wid] = n
        per_model[w["model_id"]] += n
    return dict(per_model), seen, conflicts


def wait_for_window_tally(
    consume_all, topic: str, expected: dict[str, int], timeout: float
) -> tuple[dict[str, int], list[str]]:
    """Until every model's closed windows hold ``expected`` events (or ``timeout``):
    the last ``window_tally`` per model and its conflicts."""
    deadline = time.monotonic() + timeout
    per_model: dict[str, int] = {}
    conflicts: list[str] = []
    while time.monotonic() < deadline:
        per_model, _, conflicts = window_tally(consume_all(topic, timeout=30))
        if all(per_model.get(m, 0) >= n for m, n in expected.items()):
            break
        time.sleep(1)
    return per_model, conflicts
