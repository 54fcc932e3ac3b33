"""The broker benchmarks still run against today's code (small arguments, real broker).

`bench/retrain_to_load.py` had quietly broken when the trainer moved to Ed25519
signatures: it still handed both sides a shared secret, so every training failed. Speed
is never asserted here; only that a benchmark runs through and reports its figures.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]


def test_retrain_to_load_bench_runs_through_a_retrain(kafka_bootstrap: str, tmp_path: Path) -> None:
    out = tmp_path / "report.json"  # not bench/out: that holds the real run's figures
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "retrain_to_load.py"), "--bootstrap-servers", kafka_bootstrap,
         "--rows", "3000", "--features", "5", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert "retrain request -> new version loaded" in done.stdout, done.stderr[-3000:]
    report = orjson.loads(out.read_bytes())
    assert report["rows"] == 3000 and report["seconds"]["total"] > 0
    assert report["metrics"]["n"] > 0 and report["champion_metrics"] is not None
