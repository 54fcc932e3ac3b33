"""The README's main command, end to end on the real broker: the whole loop closes.

ingest → stream (drift decided) → trainer (retrained, gated, signed, published) →
subscriber (swaps to the new version), with malformed messages in the DLQ. The demo
serves closed-loop: every prediction is made by the version its subscriber serves, so
the printed served accuracy is what users got.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

EVENTS = 20_000
MODELS = ("churn", "fraud")


def test_demo_closes_the_loop(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = dict(
        os.environ,
        DRIFTLINE_SUBSCRIBER_CACHE_DIR=str(tmp_path / "subscriber"),
        DRIFTLINE_TRAINER_SIGNING_KEY_FILE=str(tmp_path / "signing.key"),
        DRIFTLINE_SUBSCRIBER_VERIFY_KEY_FILE=str(tmp_path / "signing.pub"),
        DRIFTLINE_TRAINER_ARTIFACT_DIR=str(tmp_path / "artifacts"),
        DRIFTLINE_STREAM_DATA_DIR=str(tmp_path / "stream"),
    )
    cmd = [
        sys.executable,
        "-m",
        "driftline.cli",
        "demo",
        "--bootstrap-servers",
        kafka_bootstrap,
        "--events",
        str(EVENTS),
        "--timeout",
        "240",
        "--log-dir",
        str(tmp_path / "logs"),
    ]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=400, env=env, cwd=tmp_path)
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-2000:]
    # Each request is a prediction and a label; there are no feature events any more.
    valid = re.search(r"valid events: produced ([\d,]+), in \S+: ([\d,]+)", out)
    assert valid and valid.group(1) == valid.group(2) == f"{2 * EVENTS * len(MODELS):,}"
    junk = re.search(r"malformed: +produced ([\d,]+), in \S+: ([\d,]+)", out)
    assert junk and junk.group(1) == junk.group(2) == f"{EVENTS // 500:,}"
    assert re.search(r"retrain requested \(", out)
    assert re.search(r"subscriber served 1\.0\.0 -> \d+\.\d+\.\d+", out), out[-3000:]
    assert re.search(r"now serving \d+\.\d+\.\d+ at event [\d,]+", out)  # a swap while requests were served
    # Closed loop: 1.0.0 serves concept A well, and the accuracy is printed as it goes.
    assert "served accuracy, events 0-2,000:  churn 1.0.0 " in out
    before = [float(x) for x in re.findall(r"before the drift (0\.\d+)", out)]
    assert len(before) == len(MODELS) and min(before) >= 0.95, before
