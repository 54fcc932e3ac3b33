"""The README's main command, end to end on the real broker: the whole loop closes.

ingest → stream (drift decided) → trainer (retrained, gated, signed, published) →
subscriber (swaps to the new version), with malformed messages in the DLQ.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_demo_closes_the_loop(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = dict(os.environ, DRIFTLINE_SUBSCRIBER_CACHE_DIR=str(tmp_path / "subscriber"),
               DRIFTLINE_TRAINER_SIGNING_KEY_FILE=str(tmp_path / "signing.key"),
               DRIFTLINE_SUBSCRIBER_VERIFY_KEY_FILE=str(tmp_path / "signing.pub"),
               DRIFTLINE_TRAINER_ARTIFACT_DIR=str(tmp_path / "artifacts"),
               DRIFTLINE_STREAM_DATA_DIR=str(tmp_path / "stream"))
    cmd = [sys.executable, "-m", "driftline.cli", "demo", "--bootstrap-servers", kafka_bootstrap,
           "--events", "20000", "--timeout", "240", "--log-dir", str(tmp_path / "logs")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=400, env=env, cwd=tmp_path)
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-2000:]
    valid = re.search(r"valid events: produced ([\d,]+), in \S+: ([\d,]+)", out)
    assert valid and valid.group(1) == valid.group(2) == "120,000"
    junk = re.search(r"malformed: +produced ([\d,]+), in \S+: ([\d,]+)", out)
    assert junk and junk.group(1) == junk.group(2) != "0"
    assert re.search(r"retrain requested \(", out)
    assert "served 1.0.0 -> 1.0.1" in out
