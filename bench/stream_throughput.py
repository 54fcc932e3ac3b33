"""Ingest + stream throughput on the real broker, beside the same-run consume ceiling.

    python bench/stream_throughput.py [--events 600000] [--workers 1] [--models 6]

Uses $KAFKA_BOOTSTRAP_SERVERS or starts the local broker. Pre-produces N raw 20-feature
events to a fresh topic set (not timed), then starts ``driftline ingest`` and
``--workers`` ``driftline stream`` processes and samples their Prometheus counters every
0.5 s until the workers have applied all N events. Prints:

- pipeline: N / (time from the first to the last event applied by the stream);
- per worker: events applied / the time that worker was applying;
- ceiling: an aiokafka consumer (the client faust uses) and a confluent-kafka consumer
  merely reading the observation topic from the beginning, in the same run, after it.

Target (issue 4): ≥ 50k events/s. Output: bench/out/stream_throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from driftline.config import load_settings
from driftline.kafka.admin import (
    KafkaAdmin,
    create_topics,
)
from driftline.kafka.topics import TopicNames, topic_specs
from driftline.runtime import bootstrap_from
from driftline.testing.events import feature_event
from driftline.testing.kafka import free_ports
from driftline.testing.kafka import produce_records as produce
from driftline.testing.metrics import metric_value, scrape

_N = re.compile(rb'"n":(\d+)')


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (Linux /proc), to see who used the cores."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sample(ports: list[int], name: str) -> list[float]:
    out = []
    for port in ports:
        try:
            out.append(metric_value(scrape(port), name))
        except OSError:
            out.append(0.0)
    return out


def confluent_ceiling(bootstrap: str, topic: str, n: int) -> float:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"ceil-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.max.bytes": 64 * 1024 * 1024,
        }
    )
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, -2) for p in parts])
    seen, started = 0, time.perf_counter()  # timed from the first fetch request: no group join in it
    deadline = time.monotonic() + 120
    while seen < n and time.monotonic() < deadline:
        for m in c.consume(500, timeout=0.5):
            if m.error():
                continue
            match = _N.search(m.value()[:64])
            seen += int(match.group(1)) if match else 0
    c.close()
    return seen / (time.perf_counter() - started)


async def aiokafka_ceiling(bootstrap: str, topic: str, n: int) -> float:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 << 20,
    )
    await c.start()
    tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or await _parts(c, topic))]
    c.assign(tps)
    await c.seek_to_beginning(*tps)
    seen, started = 0, time.perf_counter()  # timed from the first fetch request
    deadline = time.monotonic() + 120
    try:
        while seen < n and time.monotonic() < deadline:
            batches = await c.getmany(timeout_ms=500, max_records=2000)
            for records in batches.values():
                for r in records:
                    match = _N.search(r.value[:64])
                    seen += int(match.group(1)) if match else 0
    finally:
        await c.stop()
    return seen / (time.perf_counter() - started)


async def _parts(c, topic: str) -> set[int]:
    await c._client.force_metadata_update()
    return c.partitions_for_topic(topic) or set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=600_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--models", type=int, default=6)
    parser.add_argument("--store", default="memory", choices=["memory", "rocksdb"])
    parser.add_argument(
        "--out-dir", type=Path, default=ROOT / "bench" / "out", help="the JSON report, logs and state directories"
    )
    args = parser.parse_args()
    settings = load_settings()
    bootstrap = bootstrap_from(settings)
    names = TopicNames(prefix=f"bench-{uuid.uuid4().hex[:8]}.")
    admin = KafkaAdmin(bootstrap)
    create_topics(admin, topic_specs(names))
    out_dir = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    produce(
        bootstrap,
        names.features,
        ((f"m{i % args.models}".encode(), feature_event(f"m{i % args.models}", i)) for i in range(args.events)),
    )
    produce_s = time.perf_counter() - t
    print(f"produced {args.events} raw events in {produce_s:.1f} s ({args.events / produce_s:,.0f}/s)")

    ingest_port, *worker_ports = free_ports(1 + args.workers)
    env = dict(
        os.environ,
        DRIFTLINE_TOPICS_PREFIX=names.prefix,
        DRIFTLINE_INGEST_GROUP_ID=f"ing-{names.prefix}",
        DRIFTLINE_INGEST_TRANSACTIONAL_ID=f"ing-{names.prefix}",
        DRIFTLINE_STREAM_STANDBY_REPLICAS="0",
        DRIFTLINE_STREAM_SESSION_TIMEOUT_S="10",
        DRIFTLINE_STREAM_HEARTBEAT_INTERVAL_S="2",
    )
    py = [sys.executable, "-m", "driftline.cli", "--log-level", "warning"]
    app_id = f"bench-{uuid.uuid4().hex[:8]}"
    procs = [
        start(
            [
                *py,
                "stream",
                "--bootstrap-servers",
                bootstrap,
                "--app-id",
                app_id,
                "--metrics-port",
                str(port),
                "--store",
                args.store,
                "--data-dir",
                str(out_dir / "stream-data" / str(port)),
            ],
            env,
            out_dir / f"stream-worker-{i}.log",
        )
        for i, port in enumerate(worker_ports)
    ]
    try:
        time.sleep(8)  # workers join the group before the observations flow
        procs.append(
            start(
                [*py, "ingest", "--bootstrap-servers", bootstrap, "--metrics-port", str(ingest_port)],
                env,
                out_dir / "stream-ingest.log",
            )
        )
        ingest_first: float | None = None
        ingest_done: float | None = None
        first: list[float | None] = [None] * args.workers
        last_change: list[float] = [0.0] * args.workers
        prev = [0.0] * args.workers
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = time.perf_counter()
            counts = sample(worker_ports, "driftline_stream_events_total")
            ingested = sample([ingest_port], "driftline_ingest_valid_events_total")[0]
            if ingested and ingest_first is None:
                ingest_first = now
            if ingested >= args.events and ingest_done is None:
                ingest_done = now
            for i, c in enumerate(counts):
                if c > prev[i]:
                    first[i] = first[i] or now
                    last_change[i] = now
            prev = counts
            if sum(counts) >= args.events:
                break
        total = sum(prev)
        starts = [f for f in first if f]
        span = max(last_change) - min(starts) if starts else float("nan")
        per_worker = [
            (prev[i] / (last_change[i] - first[i]) if first[i] and last_change[i] > first[i] else 0.0)
            for i in range(args.workers)
        ]
        ingest_events = sample([ingest_port], "driftline_ingest_valid_events_total")[0]
        cpu = {
            "ingest": cpu_seconds(procs[-1].pid),
            **{f"worker-{i}": cpu_seconds(p.pid) for i, p in enumerate(procs[:-1])},
        }
    finally:
        for p in procs:
            p.kill()
            p.wait(10)
    ceil_aio = asyncio.run(aiokafka_ceiling(bootstrap, names.observations, args.events))
    ceil_ck = confluent_ceiling(bootstrap, names.observations, args.events)
    result = {
        "events": args.events,
        "workers": args.workers,
        "models": args.models,
        "store": args.store,
        "cpus": os.cpu_count(),
        "applied": total,
        "ingested": ingest_events,
        "pipeline_events_per_s": total / span if span == span and span > 0 else None,
        "per_worker_events_per_s": per_worker,
        "ingest_events_per_s": (
            args.events / (ingest_done - ingest_first)
            if ingest_first and ingest_done and ingest_done > ingest_first
            else None
        ),
        "cpu_seconds": cpu,
        "ceiling_aiokafka_events_per_s": ceil_aio,
        "ceiling_confluent_events_per_s": ceil_ck,
    }
    print(json.dumps(result, indent=2))
    (out_dir / "stream_throughput.json").write_text(json.dumps(result, indent=2))
    admin.delete_topics(list(names.all()), timeout=10.0)


if __name__ == "__main__":
    main()
