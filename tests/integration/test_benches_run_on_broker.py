"""The broker benchmarks still run against today's code (small arguments, real broker).

`bench/retrain_to_load.py` had quietly broken when the trainer moved to Ed25519
signatures: it still handed both sides a shared secret, so every training failed. Speed
is never asserted here; only that a benchmark runs through and reports its figures,
and what those say about correctness (every event applied, none lost).
"""

from __future__ import annotations

from pathlib import Path

import orjson

from ..bench_runs import bench_output, run_bench


def test_retrain_to_load_bench_runs_through_a_retrain(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = tmp_path / "report.json"  # not bench/out: that holds the real run's figures
    done = run_bench(
        "retrain_to_load.py",
        "--bootstrap-servers",
        kafka_bootstrap,  # exits 1 over 10 s:
        "--rows",
        "3000",
        "--features",
        "5",
        "--out",
        str(out),
    )  # its speed is not checked here
    assert "retrain request -> new version loaded" in done.stdout, done.stderr[-3000:]
    report = orjson.loads(out.read_bytes())
    assert report["rows"] == 3000 and report["seconds"]["total"] > 0
    assert report["metrics"]["n"] > 0 and report["champion_metrics"] is not None


def test_stream_throughput_bench_applies_every_event(kafka_bootstrap: str, tmp_path: Path) -> None:
    bench_output(
        "stream_throughput.py",
        "--events",
        "60000",
        "--models",
        "2",
        "--out-dir",
        str(tmp_path),
        bootstrap=kafka_bootstrap,
    )
    report = orjson.loads((tmp_path / "stream_throughput.json").read_bytes())
    assert report["ingested"] == report["applied"] == 60000
    assert report["pipeline_events_per_s"] > 0 and report["ceiling_confluent_events_per_s"] > 0


def test_stream_latency_bench_measures_window_updates(kafka_bootstrap: str, tmp_path: Path) -> None:
    bench_output(
        "stream_latency.py",
        "--rate",
        "2000",
        "--seconds",
        "5",
        "--models",
        "2",
        "--out-dir",
        str(tmp_path),
        bootstrap=kafka_bootstrap,
    )
    report = orjson.loads((tmp_path / "stream_latency.json").read_bytes())
    assert report["events"] > 0 and 0 < report["p50"] <= report["p99"] <= report["max"]


def test_ingest_throughput_bench_runs(kafka_bootstrap: str) -> None:
    out = bench_output("ingest_throughput.py", "--events", "100000", "--models", "2", bootstrap=kafka_bootstrap)
    assert "ingest   validate+pack+txn" in out and "ratio    ingest / ceiling" in out, out
