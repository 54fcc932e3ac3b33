"""Benchmark: retrain request → new version loaded by a subscriber (target ≤ 10 s).

50,000 labeled rows × 20 numeric features on a real broker, River logistic regression.
A first version (1.0.0) is trained untimed, so the timed retrain does the full job of a
real one: read the rows by offsets, train, validate candidate *and* champion on the same
rows, gate, version (patch), sign, publish transactionally, and a running subscriber
verifies, loads and swaps. Prints the breakdown; writes bench/out/retrain_to_load.json.

    .venv/bin/python bench/retrain_to_load.py [--bootstrap-servers HOST:PORT] [--rows 50000] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import orjson
from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from driftline import logs
from driftline.consumers.subscriber import ModelSubscriber
from driftline.consumers.trainer.metrics import TrainerMetrics
from driftline.consumers.trainer.service import Trainer
from driftline.consumers.training.config import GovernanceSettings, TrainerSettings
from driftline.consumers.training.run import TrainingContext
from driftline.kafka.admin import KafkaAdmin, create_topics
from driftline.kafka.clients import transactional_producer_config
from driftline.kafka.local_broker import LocalBroker
from driftline.kafka.topics import TopicNames, topic_specs
from driftline.schemas.control import RetrainRequested
from driftline.trust.keys import Ed25519PrivateKey

OUT = Path(__file__).parent / "out"
KEY = Ed25519PrivateKey.generate()
"""The trainer signs with the private key; the subscriber verifies with the public one."""


def produce_rows(bootstrap: str, topic: str, model_id: str, n: int, n_features: int, seed: int) -> None:
    rng = random.Random(seed)
    weights = [rng.uniform(-1, 1) for _ in range(n_features)]
    producer = Producer(
        transactional_producer_config(
            bootstrap, f"bench-{uuid.uuid4().hex[:8]}", **{"queue.buffering.max.messages": 1_000_000}
        )
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(n):
        x = {f"f{j}": rng.gauss(0, 1) for j in range(n_features)}
        y = sum(w * x[f"f{j}"] for j, w in enumerate(weights)) + rng.gauss(0, 0.5) > 0
        row = {
            "model_id": model_id,
            "event_id": f"{seed}-{i}",
            "ts": 1.7e9 + i,
            "model_version": None,
            "prediction": y,
            "score": None,
            "label": y,
            "features": x,
            "scores": None,
            "label_ts": None,
        }
        while True:
            try:
                producer.produce(topic, key=model_id.encode(), value=orjson.dumps(row))
                break
            except BufferError:
                producer.poll(0.05)
    producer.commit_transaction(120)


def request(bootstrap: str, topic: str, model_id: str, start: float) -> float:
    req = RetrainRequested(model_id, start, start + 60, "drift", ("bench",), {}, start, 0)
    producer = Producer({"bootstrap.servers": bootstrap})
    sent = time.perf_counter()
    producer.produce(topic, key=model_id.encode(), value=orjson.dumps(req.to_dict()))
    producer.flush(10)
    return sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap-servers")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--out", type=Path, default=OUT / "retrain_to_load.json", help="the JSON report")
    args = parser.parse_args()
    logs.configure("warning")  # a failed training says why (structured lines on stderr)
    broker = None
    bootstrap = args.bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
    if not bootstrap:  # a throw-away local broker, stopped at the end (never a lingering one)
        broker = LocalBroker(
            tempfile.mkdtemp(prefix="driftline-bench-kafka-"), _free_port(), _free_port(), die_with_parent=True
        )
        broker.start(timeout=120.0)
        bootstrap = broker.bootstrap_servers
    names = TopicNames(prefix=f"bench-{uuid.uuid4().hex[:8]}.")
    admin = KafkaAdmin(bootstrap)
    create_topics(admin, topic_specs(names, event_partitions=6))
    try:
        return run(bootstrap, names, args.rows, args.features, args.out)
    finally:
        admin.delete_topics(list(names.all()), timeout=30.0)
        if broker is not None:
            broker.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(bootstrap: str, names: TopicNames, n_rows: int, n_features: int, out: Path) -> int:
    model_id = "bench"
    produce_rows(bootstrap, names.labeled, model_id, n_rows, n_features, seed=1)
    tmp = Path(tempfile.mkdtemp(prefix="driftline-bench-"))
    settings = TrainerSettings(
        transactional_id=f"bench-{uuid.uuid4().hex[:8]}",
        group_id=f"bench-{uuid.uuid4().hex}",
        cooldown_s=0.0,
        max_rows=n_rows,
    )
    ctx = TrainingContext(KEY, str(tmp / "artifacts"), settings.inline_limit_bytes, GovernanceSettings())
    trainer = Trainer(bootstrap, names, settings, ctx, TrainerMetrics(CollectorRegistry()))
    stop = threading.Event()
    threading.Thread(target=trainer.run, args=(stop,), daemon=True).start()
    sub = ModelSubscriber(model_id, bootstrap, names.model_updates, KEY.public_key(), cache_dir=tmp / "cache").start()
    try:
        request(bootstrap, names.control, model_id, 0.0)
        if not sub.wait_for("1.0.0", 120):
            print("first version never loaded", file=sys.stderr)
            return 1
        sent = request(bootstrap, names.control, model_id, 60.0)
        if not sub.wait_for("1.0.1", 120):
            print("retrained version never loaded", file=sys.stderr)
            return 1
        total = time.perf_counter() - sent  # wait_for returns as the swap happens
        version = trainer.state.version(model_id, "1.0.1")
        report(
            total,
            version.durations,
            sub.current.load_s,
            n_rows,
            n_features,
            version.metrics,
            version.champion_metrics,
            out,
        )
        return 0 if total <= 10.0 else 1
    finally:
        sub.stop()
        stop.set()


def report(
    total: float,
    durations: dict[str, float],
    load_s: float,
    n_rows: int,
    n_features: int,
    metrics: dict[str, float],
    champion: dict[str, float] | None,
    out: Path,
) -> None:
    inside = sum(durations.values()) + load_s
    breakdown = {
        **durations,
        "load": round(load_s, 4),
        "publish_and_delivery": round(total - inside, 4),
        "total": round(total, 4),
    }
    print(f"retrain request -> new version loaded, {n_rows} rows x {n_features} features (River logistic regression)")
    for stage, seconds in breakdown.items():
        print(f"  {stage:<22}{seconds:8.3f} s")
    print(f"  target <= 10 s: {'met' if total <= 10.0 else 'MISSED'}")
    print(f"  candidate {metrics}\n  champion  {champion}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(
        orjson.dumps(
            {
                "rows": n_rows,
                "features": n_features,
                "seconds": breakdown,
                "metrics": metrics,
                "champion_metrics": champion,
                "cpus": os.cpu_count(),
                "python": sys.version.split()[0],
            },
            option=orjson.OPT_INDENT_2,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
