"""The provisioned Grafana dashboard only queries metrics driftline really exports.

A renamed metric would otherwise leave an empty panel that nobody notices.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "driftline.json"
_DECLARED = re.compile(r'(Counter|Gauge|Histogram|Summary)\(\s*"(driftline_[a-z_]+)"')
_QUERIED = re.compile(r"\b(driftline_[a-z_]+)")
_EXPOSED = {
    "Counter": ("_total",),
    "Gauge": ("",),
    "Histogram": ("_bucket", "_sum", "_count"),
    "Summary": ("", "_sum", "_count"),
}


def declared_metrics() -> dict[str, str]:
    """Metric name → kind, for every metric the code declares."""
    kinds: dict[str, str] = {}
    for folder in ("driftline", "consumers", "stream"):
        for path in (ROOT / folder).rglob("*.py"):
            kinds.update((name, kind) for kind, name in _DECLARED.findall(path.read_text()))
    return kinds


def exposed_series(declared: dict[str, str]) -> set[str]:
    """The series names Prometheus scrapes for them (a counter only as ``_total``)."""
    return {name + suffix for name, kind in declared.items() for suffix in _EXPOSED[kind]}


def queries(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"]]
    return exprs


def test_every_queried_series_is_one_the_code_exports() -> None:
    declared = declared_metrics()
    assert declared.get("driftline_stream_drift_score") == "Gauge", "the scan must find the stream metrics"
    assert declared.get("driftline_stream_batch_seconds") == "Histogram"
    exposed = exposed_series(declared)
    dashboard = json.loads(DASHBOARD.read_text())
    unknown = sorted({s for e in queries(dashboard) for s in _QUERIED.findall(e)} - exposed)
    assert unknown == [], (
        f"dashboard queries series no process exports (counters end in _total, "
        f"histograms are queried as _bucket/_sum/_count): {unknown}"
    )


def test_panels_do_not_overlap_and_use_the_provisioned_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        g = panel["gridPos"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "prometheus", panel["title"]
    provisioned = (ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    assert "uid: prometheus" in provisioned
