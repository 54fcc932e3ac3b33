"""A real Prometheus scrapes the demo's processes, and every Grafana panel's query has data.

DESIGN.md's "Real parts": the dashboard is only worth something if each panel shows
data against a live run. So this test starts the Prometheus server (Debian's package;
``scripts/test`` installs it), points it at the four metrics endpoints of a demo run
(ingest, stream, trainer, the demo's subscribers), runs the demo, and then asks
Prometheus for every query of ``deploy/grafana/dashboards/driftline.json`` over the
run's time range, as Grafana would — with the dashboard's ``$model`` variable at "All".
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from driftline.testing.kafka import free_ports

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "driftline.json"
ENDPOINTS = ("ingest", "stream", "trainer", "subscribers")


def prometheus_binary() -> str:
    """The server binary: a failure in CI (scripts/test installs it), a skip elsewhere."""
    found = shutil.which("prometheus")
    if found is None:
        why = "no prometheus binary (apt-get install prometheus; scripts/test does it as root)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    return found


def consecutive_free_ports(count: int) -> int:
    """A base port such that ``base .. base + count - 1`` are all free on loopback."""
    for _ in range(200):
        base = random.randrange(20_000, 60_000)
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError(f"no {count} consecutive free ports found")


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target, ``$model`` as Grafana's "All" sends it."""
    dashboard = json.loads(DASHBOARD.read_text())
    (variable,) = dashboard["templating"]["list"]
    return [
        (panel["title"], target["expr"].replace(f"${variable['name']}", variable["allValue"]))
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def api(port: int, path: str, **params: Any) -> Any:
    url = f"http://127.0.0.1:{port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


MUST_RISE = (
    "Valid events ingested /s",
    "Rejected to the DLQ /s",
    "Events applied by the stream /s",
    "Retrain requests (1 h)",
    "Windows closed by status /min",
    "Label join /s",
    "Serving now (trainer)",
    "Subscribers serving",
    "Trainings by outcome (1 h)",
    "Gate verdicts (1 h)",
    "Serving accuracy: live (last joined rows) vs its gate",
)
"""Panels that a demo run must move above 0 (it ingests, rejects, windows, decides,
joins labels, retrains through the gate and swaps the subscriber)."""


def peak(result: list[dict[str, Any]]) -> float:
    """The largest real number in a range query's result; -inf when it has none (no
    series, or only NaN: histogram_quantile of nothing gives NaN)."""
    values = [
        float(value) for series in result for _, value in series["values"] if value not in ("NaN", "+Inf", "-Inf")
    ]
    return max(values, default=float("-inf"))


def test_a_real_prometheus_has_data_for_every_dashboard_panel(kafka_bootstrap: str, tmp_path: Path) -> None:
    binary = prometheus_binary()
    base = consecutive_free_ports(len(ENDPOINTS))
    (prometheus_port,) = free_ports(1)
    config = tmp_path / "prometheus.yml"
    targets = ", ".join(f'"127.0.0.1:{base + i}"' for i in range(len(ENDPOINTS)))
    config.write_text(
        f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: driftline\n"
        f"    static_configs:\n      - targets: [{targets}]\n"
    )
    prometheus = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("wb"),
    )
    try:
        _wait_ready(prometheus_port, prometheus)
        env = dict(
            os.environ,
            DRIFTLINE_SUBSCRIBER_CACHE_DIR=str(tmp_path / "subscriber"),
            DRIFTLINE_TRAINER_SIGNING_KEY_FILE=str(tmp_path / "signing.key"),
            DRIFTLINE_SUBSCRIBER_VERIFY_KEY_FILE=str(tmp_path / "signing.pub"),
            DRIFTLINE_TRAINER_ARTIFACT_DIR=str(tmp_path / "artifacts"),
            DRIFTLINE_STREAM_DATA_DIR=str(tmp_path / "stream"),
        )
        started = time.time()
        demo = subprocess.run(
            [
                sys.executable,
                "-m",
                "driftline.cli",
                "demo",
                "--bootstrap-servers",
                kafka_bootstrap,
                "--events",
                "20000",
                "--timeout",
                "240",
                "--log-dir",
                str(tmp_path / "logs"),
                "--metrics-port-base",
                str(base),
            ],
            capture_output=True,
            text=True,
            timeout=400,
            env=env,
            cwd=tmp_path,
        )
        ended = time.time()
        assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-2000:]
        for i, name in enumerate(ENDPOINTS):
            assert f"http://127.0.0.1:{base + i}/metrics" in demo.stdout, name
        span = {"start": f"{started:.3f}", "end": f"{ended + 2:.3f}", "step": "2"}
        up = api(prometheus_port, "query_range", query="max_over_time(up[1h])", **span)
        scraped = {
            series["metric"]["instance"]
            for series in up["result"]
            if any(value == "1" for _, value in series["values"])
        }
        assert scraped == {f"127.0.0.1:{base + i}" for i in range(len(ENDPOINTS))}, up
        results = [
            (title, query, api(prometheus_port, "query_range", query=query, **span)["result"])
            for title, query in panel_queries()
        ]
        peaks: dict[str, float] = {}
        empty = []
        for title, query, result in results:
            highest = peak(result)
            if highest == float("-inf"):
                empty.append(f"{title}: {query}")
            peaks[title] = max(peaks.get(title, float("-inf")), highest)
        assert not empty, "panels without data in a live run:\n" + "\n".join(empty)
        flat = [title for title in MUST_RISE if not peaks[title] > 0]
        assert not flat, f"panels that stayed at 0 through a demo run: {flat}"
    finally:
        prometheus.terminate()
        prometheus.wait(15)


def _wait_ready(port: int, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"prometheus exited with {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"prometheus not ready on port {port} after {timeout_s:.0f} s")
