"""Latency from an event's production to its window update, at a steady rate.

    python bench/stream_latency.py [--rate 10000] [--seconds 30]

Produces raw 20-feature events at ``--rate``/s with ``ts`` = the wall clock at
production, through ``driftline ingest`` and one ``driftline stream`` worker, with 1 s
windows and no allowed lateness. A window closes on the first event past its end, in the
same batch update that applies that event, and the closed window's record on
``driftline.windows`` carries that event's ``ts``; so (record timestamp − ``ts``) is the
production → window-update latency of that event (ingest batching included). Prints
p50/p95/p99 over all closed windows. Target (issue 4): p99 ≤ 2 s at 10k events/s.
Output: bench/out/stream_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import orjson
from confluent_kafka import Producer

ROOT = Path(__file__).resolve().parents[1]

from driftline.config import load_settings
from driftline.kafka.admin import (
    KafkaAdmin,
    create_topics,
)
from driftline.kafka.topics import TopicNames, topic_specs
from driftline.runtime import bootstrap_from
from driftline.testing.kafka import consume_all_records


def paced_produce(bootstrap: str, topic: str, rate: int, seconds: float, models: int) -> int:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "queue.buffering.max.messages": 1_000_000})
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        now = time.time()
        for _ in range(per_tick):
            model = f"m{n % models}"
            event = {
                "model_id": model,
                "event_id": f"{model}-{n}",
                "ts": now,
                "features": {f"f{j}": (n * 7 + j) % 97 / 10.0 for j in range(20)},
            }
            producer.produce(topic, key=model.encode(), value=orjson.dumps(event))
            n += 1
        producer.poll(0)
        sleep = started + (n / rate) - time.perf_counter()
        if sleep > 0:
            time.sleep(sleep)
    producer.flush(30)
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--models", type=int, default=6)
    parser.add_argument(
        "--out-dir", type=Path, default=ROOT / "bench" / "out", help="the JSON report, logs and state directories"
    )
    args = parser.parse_args()
    bootstrap = bootstrap_from(load_settings())
    names = TopicNames(prefix=f"lat-{uuid.uuid4().hex[:8]}.")
    admin = KafkaAdmin(bootstrap)
    create_topics(admin, topic_specs(names))
    out_dir = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        DRIFTLINE_TOPICS_PREFIX=names.prefix,
        DRIFTLINE_INGEST_GROUP_ID=f"ing-{names.prefix}",
        DRIFTLINE_INGEST_TRANSACTIONAL_ID=f"ing-{names.prefix}",
        DRIFTLINE_INGEST_BATCH_MAX_MS="100",
        DRIFTLINE_WINDOWS_SIZE_S="1",
        DRIFTLINE_WINDOWS_ALLOWED_LATENESS_S="0",
        DRIFTLINE_STREAM_STANDBY_REPLICAS="0",
        DRIFTLINE_STREAM_COMMIT_INTERVAL_S="1",
    )
    py = [sys.executable, "-m", "driftline.cli", "--log-level", "warning"]
    procs = [
        subprocess.Popen(
            [
                *py,
                "stream",
                "--bootstrap-servers",
                bootstrap,
                "--app-id",
                f"lat-{uuid.uuid4().hex[:6]}",
                "--metrics-port",
                "0",
                "--store",
                "memory",
                "--data-dir",
                str(out_dir / "lat-data"),
            ],
            env=env,
            stdout=open(out_dir / "latency-stream.log", "wb"),
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [*py, "ingest", "--bootstrap-servers", bootstrap, "--metrics-port", "0"],
            env=env,
            stdout=open(out_dir / "latency-ingest.log", "wb"),
            stderr=subprocess.STDOUT,
        ),
    ]
    try:
        time.sleep(10)  # group joins
        n = paced_produce(bootstrap, names.features, args.rate, args.seconds, args.models)
        time.sleep(5)
    finally:
        for p in procs:
            p.kill()
            p.wait(10)
    records = consume_all_records(bootstrap, names.windows, timeout=60)
    lat = np.array([r.timestamp_ms / 1000.0 - orjson.loads(r.value)["ts"] for r in records])
    result = {"rate": args.rate, "seconds": args.seconds, "events": n, "windows": len(lat)}
    if len(lat):
        result.update({f"p{q}": float(np.percentile(lat, q)) for q in (50, 95, 99)}, max=float(lat.max()))
    print(json.dumps(result, indent=2))
    (out_dir / "stream_latency.json").write_text(json.dumps(result, indent=2))
    admin.delete_topics(list(names.all()), timeout=10.0)


if __name__ == "__main__":
    main()
