"""The provisioned Grafana dashboard only queries metrics driftline really exports.

A renamed metric would otherwise leave an empty panel that nobody notices.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "driftline.json"
_DECLARED = re.compile(r'(?:Counter|Gauge|Histogram|Summary)\(\s*"(driftline_[a-z_]+)"')
_QUERIED = re.compile(r"\b(driftline_[a-z_]+)")
_SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


def declared_metrics() -> set[str]:
    names: set[str] = set()
    for folder in ("driftline", "consumers", "stream"):
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(_DECLARED.findall(path.read_text()))
    return names


def base_name(series: str, declared: set[str]) -> str:
    for suffix in _SUFFIXES:
        if series.endswith(suffix) and series[: -len(suffix)] in declared:
            return series[: -len(suffix)]
    return series


def queries(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"]]
    return exprs


def test_every_queried_metric_is_declared_in_the_code() -> None:
    declared = declared_metrics()
    assert "driftline_stream_drift_score" in declared, "the scan must find the stream metrics"
    dashboard = json.loads(DASHBOARD.read_text())
    unknown = sorted({base_name(s, declared) for e in queries(dashboard) for s in _QUERIED.findall(e)} - declared)
    assert unknown == [], f"dashboard queries metrics no process exports: {unknown}"


def test_counters_are_queried_with_total_and_histograms_with_buckets() -> None:
    text = {p.stem: p.read_text() for p in (ROOT / "stream").glob("*metrics.py")}
    histograms = set(re.findall(r'Histogram\(\s*"(driftline_[a-z_]+)"', "".join(text.values())))
    for expr in queries(json.loads(DASHBOARD.read_text())):
        for series in _QUERIED.findall(expr):
            if series in histograms:
                raise AssertionError(f"histogram {series} must be queried as {series}_bucket: {expr}")


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
