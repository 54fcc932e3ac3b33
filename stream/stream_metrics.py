"""Prometheus metrics of the stream worker (own registry; children resolved once).

Everything is updated once per batch from what the batch produced, never per event:
each ``.labels(...)`` call takes a lock, so label children are looked up in small dicts
keyed by their label values and created only the first time a combination is seen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["StreamMetrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SCORED_METRICS = ("psi", "js_distance", "ks", "wasserstein", "missing_rate_delta")
WINDOW_STATUSES = ("scored", "too_small", "reference", "unscored")
"""``WindowClosed.status`` values (``stream.policy``)."""


class _Family:
    """A metric and its children by label values (resolved once each)."""

    def __init__(self, metric: Any) -> None:
        self.metric = metric
        self.children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *labels: str) -> Any:
        child = self.children.get(labels)
        if child is None:
            child = self.children[labels] = self.metric.labels(*labels)
        return child


class StreamMetrics:
    """driftline's own stream metrics (faust's sensor is registered beside them)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.batches = _Family(
            Counter(
                "driftline_stream_batches",
                "Observation batches, by outcome (applied, skipped = redelivered and already applied, invalid).",
                ["outcome"],
                registry=r,
            )
        )
        self.events = _Family(Counter("driftline_stream_events", "Events applied, by model.", ["model_id"], registry=r))
        self.invalid = _Family(
            Counter(
                "driftline_stream_invalid",
                "Messages sent to the DLQ by the stream worker, by source and rule.",
                ["source", "reason"],
                registry=r,
            )
        )
        self.late = _Family(
            Counter(
                "driftline_stream_late_events",
                "Events behind the watermark (not counted in any window).",
                ["model_id"],
                registry=r,
            )
        )
        self.windows = _Family(
            Counter("driftline_stream_windows_closed", "Closed windows by status.", ["model_id", "status"], registry=r)
        )
        self.window_events = _Family(
            Counter("driftline_stream_window_events", "Events in closed windows.", ["model_id"], registry=r)
        )
        self.last_window_events = _Family(
            Gauge(
                "driftline_stream_last_window_events",
                "Events in the model's last closed window.",
                ["model_id"],
                registry=r,
            )
        )
        self.drift = _Family(
            Gauge(
                "driftline_stream_drift_score",
                "Last closed window's drift score.",
                ["model_id", "feature", "metric"],
                registry=r,
            )
        )
        self.threshold = _Family(
            Gauge(
                "driftline_stream_drift_threshold",
                "Threshold the score is compared with.",
                ["model_id", "feature", "metric"],
                registry=r,
            )
        )
        self.decisions = _Family(
            Counter("driftline_stream_decisions", "Retrain requests by rule.", ["model_id", "rule"], registry=r)
        )
        self.join_hits = _Family(
            Counter(
                "driftline_stream_label_join_hits", "Predictions joined with their label.", ["model_id"], registry=r
            )
        )
        self.join_expired = _Family(
            Counter(
                "driftline_stream_label_join_expired",
                "Join entries dropped at TTL (unmatched).",
                ["model_id"],
                registry=r,
            )
        )
        self.online = _Family(
            Gauge(
                "driftline_stream_online_metric",
                "Prequential metric of a serving version "
                "(role=serving) or of the online challenger (role=challenger, version=challenger).",
                ["model_id", "model_version", "role", "metric"],
                registry=r,
            )
        )
        self.serving_accuracy = _Family(
            Gauge(
                "driftline_stream_serving_accuracy",
                "The serving version's accuracy: "
                "live over the last joined rows (source=live) beside what its gate "
                "measured (source=gate).",
                ["model_id", "model_version", "source"],
                registry=r,
            )
        )
        self.score_shifts = _Family(
            Counter(
                "driftline_stream_score_shifts",
                "ADWIN changes of the mean score.",
                ["model_id", "model_version"],
                registry=r,
            )
        )
        self.watermark_lag = _Family(
            Gauge(
                "driftline_stream_watermark_lag_seconds",
                "Wall clock minus the model's event-time watermark.",
                ["model_id"],
                registry=r,
            )
        )
        self.model_updates = _Family(
            Counter(
                "driftline_stream_model_updates",
                "Records read from model-updates, by outcome (applied, ignored, invalid).",
                ["outcome"],
                registry=r,
            )
        )
        self.references = _Family(
            Counter(
                "driftline_stream_reference_changes",
                "References set, by source (published version, first windows).",
                ["model_id", "source"],
                registry=r,
            )
        )
        self.latency = Histogram(
            "driftline_stream_batch_seconds",
            "Time to apply one batch (decode to state saved, outputs delivered).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.stalls = Counter(
            "driftline_stream_partition_stalls",
            "Source partitions found stalled (records waiting, none delivered for stall_after_s) and re-sought.",
            registry=r,
        )
        self.stale_records = Counter(
            "driftline_stream_stale_records",
            "Source records fetched before a seek and delivered after it: dropped, re-fetched in order.",
            registry=r,
        )
        self.state_refused = _Family(
            Counter(
                "driftline_stream_state_refused",
                "Parts of a model's saved state refused on load and started fresh "
                "(part: tracker, score_drift, challenger, quality; reason: pickle = an old pickled state, invalid).",
                ["model_id", "part", "reason"],
                registry=r,
            )
        )
        self.reader_restarts = Counter(
            "driftline_stream_model_updates_reader_restarts",
            "Times the model-updates reader failed (broker down, topic missing, …) and started again.",
            registry=r,
        )
        self._models: set[str] = set()  # models whose counters exist (start_model)

    def start_model(self, model_id: str, performance_rule: str) -> None:
        """Every per-model counter child at 0, once per model and process.

        A counter child first exported at 1 hides that first increment from
        ``increase()`` and ``rate()`` (Prometheus has no earlier sample): the dashboard's
        "retrain requests" panel showed 0 after a model's first retrain request.
        """
        if model_id in self._models:
            return
        self._models.add(model_id)
        for counter in (self.late, self.join_hits, self.join_expired, self.window_events):
            counter(model_id).inc(0)
        for rule in ("drift", performance_rule, "underperforming", "challenger"):
            self.decisions(model_id, rule).inc(0)
        for status in WINDOW_STATUSES:
            self.windows(model_id, status).inc(0)
        for source in ("published", "first_windows"):
            self.references(model_id, source).inc(0)

    def count_windows(self, model_id: str, windows: list[Any], thresholds: Mapping[str, Mapping[str, float]]) -> None:
        """Window counts and, for scored windows, score and threshold gauges."""
        if not windows:
            return
        per_status: dict[str, int] = {}
        events = 0
        for w in windows:
            per_status[w.status] = per_status.get(w.status, 0) + 1
            events += w.window.n_events
        for status, n in per_status.items():
            self.windows(model_id, status).inc(n)
        self.window_events(model_id).inc(events)
        last = windows[-1]
        self.last_window_events(model_id).set(last.window.n_events)
        scored = [w for w in windows if w.status == "scored"]
        if scored:
            for feature, score in scored[-1].scores.items():
                for metric in _SCORED_METRICS:
                    value = getattr(score, metric, None)
                    if value is not None and not math.isnan(value):
                        self.drift(model_id, feature, metric).set(value)
                for metric, thr in thresholds.get(feature, {}).items():
                    self.threshold(model_id, feature, metric).set(thr)

    def set_serving_accuracy(self, model_id: str, version: str | None, live: float | None, gate: float | None) -> None:
        """Live and gate accuracy of the serving version (the post-deployment check's figures)."""
        if version is None:
            return
        if live is not None:
            self.serving_accuracy(model_id, version, "live").set(live)
        if gate is not None:
            self.serving_accuracy(model_id, version, "gate").set(gate)

    def set_online(
        self, model_id: str, by_version: Mapping[str, Mapping[str, float]], challenger: Mapping[str, float] | None
    ) -> None:
        for version, values in by_version.items():
            for metric, value in values.items():
                self.online(model_id, version, "serving", metric).set(value)
        for metric, value in (challenger or {}).items():
            self.online(model_id, "challenger", "challenger", metric).set(value)
