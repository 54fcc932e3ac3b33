"""Run a benchmark script as a user does: the tests that keep every bench working."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_bench(script: str, *args: str, bootstrap: str | None = None) -> subprocess.CompletedProcess[str]:
    """``bench/<script> args`` from the repository root (on ``bootstrap``'s broker if given)."""
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap} if bootstrap else None
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def bench_output(script: str, *args: str, bootstrap: str | None = None) -> str:
    """What the bench printed, once it exited 0."""
    done = run_bench(script, *args, bootstrap=bootstrap)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout
