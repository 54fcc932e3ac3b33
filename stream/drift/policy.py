"""The policy: turns a closed window's scores (and performance signals) into decisions.

Why a policy and not a threshold: a model has many features, each scored with several
metrics, every window; any fixed threshold is crossed by chance eventually, and more
often when windows are small. The policy combines

- thresholds per (feature, metric) calibrated from the reference (``stream.calibration``)
  so that a stationary stream raises a false alarm once in
  ``mean_windows_between_false_alarms`` windows *for the whole model*, optionally raised
  to a fixed minimum effect size per metric (``thresholds``);
- a minimum window size (smaller windows are reported but never decide);
- persistence: ``consecutive_windows`` breaching windows in a row (any test breaching
  makes the window breaching; the calibration accounts for it);
- a cooldown after a decision, in windows and/or seconds, shared with the performance
  rule (a retrain already requested need not be requested again).

State is a small JSON-able dict (streak, cooldown, threshold cache) so the live agent
can persist it with the window state.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar

from driftline.errors import ConfigError
from driftline.schemas.control import RetrainRequested, is_event_time
from driftline.stream.drift.calibration import (
    CALIBRATED_METRICS,
    FeatureNull,
    calibrate_feature,
    size_bucket,
    window_alpha,
)

__all__ = ["Breach", "DriftPolicy", "PolicySettings", "WindowClosed", "WindowInfo"]

FIXED_METRICS = ("psi", "js_distance", "ks", "wasserstein", "missing_rate_delta")
"""Metrics a fixed threshold can apply to: all grow with drift."""
NUMERIC_ONLY = frozenset({"ks", "wasserstein"})
"""Metrics that need ordered bins (``stream.scores`` leaves them None for categoricals)."""


@dataclasses.dataclass(frozen=True)
class PolicySettings:
    """``[policy]``: when a window's scores (or a performance signal) request a retrain.

    ``metrics`` are calibrated per feature (``psi``, ``js_distance``, ``ks``,
    ``missing_rate_delta``); ``thresholds`` maps a metric to a fixed minimum effect size
    (with ``calibrate``, the larger of the two applies; metrics only listed here are
    fixed-threshold tests). ``mean_windows_between_false_alarms`` is the target for the
    whole model on a stationary stream.
    """

    metrics: tuple[str, ...] = ("psi", "missing_rate_delta")
    thresholds: dict[str, float] = dataclasses.field(default_factory=dict)
    calibrate: bool = True
    mean_windows_between_false_alarms: float = 100_000.0
    consecutive_windows: int = 2
    min_window_events: int = 50
    cooldown_windows: int = 10
    cooldown_s: float = 0.0
    performance: bool = True
    task: str = ""
    calibration_samples: int = 4000
    size_bucket_ratio: float = 1.25
    seed: int = 0

    def __post_init__(self) -> None:
        for metric in self.metrics:
            if metric not in CALIBRATED_METRICS:
                raise ConfigError("policy.metrics", f"{metric!r} cannot be calibrated; use one of {CALIBRATED_METRICS}")
        for metric, value in self.thresholds.items():
            if metric not in FIXED_METRICS:
                raise ConfigError("policy.thresholds", f"unknown metric {metric!r}; known: {FIXED_METRICS}")
            if not (isinstance(value, (int, float)) and value >= 0):
                raise ConfigError(f"policy.thresholds.{metric}", "must be a number >= 0")
        checks = [
            (self.mean_windows_between_false_alarms > 1, "mean_windows_between_false_alarms", "must be > 1"),
            (self.consecutive_windows >= 1, "consecutive_windows", "must be >= 1"),
            (self.min_window_events >= 1, "min_window_events", "must be >= 1"),
            (self.cooldown_windows >= 0, "cooldown_windows", "must be >= 0"),
            (self.cooldown_s >= 0, "cooldown_s", "must be >= 0"),
            (
                self.task in ("", "binary", "multiclass", "regression"),
                "task",
                "must be '', 'binary', 'multiclass' or 'regression'",
            ),
            (self.calibration_samples >= 200, "calibration_samples", "must be >= 200"),
            (self.size_bucket_ratio > 1, "size_bucket_ratio", "must be > 1"),
        ]
        for ok, key, problem in checks:
            if not ok:
                raise ConfigError(f"policy.{key}", problem)

    @property
    def window_alpha(self) -> float:
        """Per-window probability that some test breaches on a stationary stream."""
        return window_alpha(self.mean_windows_between_false_alarms, self.consecutive_windows)


@dataclasses.dataclass(frozen=True)
class WindowInfo:
    """A closed window: bounds, sizes, and the row that closed it.

    ``n_events`` counts every event assigned to the window, ``n_rows`` those carrying
    features (what profiles, the minimum size and the calibration look at).
    """

    window_id: int
    start: float
    end: float
    n_events: int
    n_rows: int
    ts: float
    at_index: int


@dataclasses.dataclass(frozen=True)
class Breach:
    """One test over its threshold."""

    feature: str
    metric: str
    score: float
    threshold: float
    n: int

    def reason(self) -> str:
        return f"{self.feature}: {self.metric} {self.score:.4g} > {self.threshold:.4g} (n={self.n})"


@dataclasses.dataclass(frozen=True)
class WindowClosed:
    """What the policy made of one closed window (printed by ``replay --windows``).

    ``status``: ``scored``, ``too_small`` (under ``min_window_events``), ``reference``
    (used to build the reference), ``unscored`` (opened before the reference existed).
    """

    model_id: str
    window: WindowInfo
    status: str
    scores: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    breaches: tuple[Breach, ...] = ()
    streak: int = 0
    decision_id: str | None = None

    type: ClassVar[str] = "window_closed"

    def to_dict(self) -> dict[str, Any]:
        w = self.window
        return {
            "type": self.type,
            "model_id": self.model_id,
            "window": {"id": w.window_id, "start": w.start, "end": w.end, "n_events": w.n_events, "n_rows": w.n_rows},
            "at_index": w.at_index,
            "ts": w.ts,
            "status": self.status,
            "streak": self.streak,
            "breaches": [dataclasses.asdict(b) for b in self.breaches],
            "decision_id": self.decision_id,
            "scores": {feature: _score_dict(score) for feature, score in sorted(self.scores.items())},
        }


class DriftPolicy:
    """Per-model decision state: persistence streak, cooldown and calibrated thresholds.

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace as S
    >>> policy = DriftPolicy("m", PolicySettings(consecutive_windows=2))
    >>> nulls = {"x": FeatureNull(np.full(10, 500), missing=0)}
    >>> calm = {"x": S(psi=0.001, missing_rate_delta=0.0, n=5000)}
    >>> shifted = {"x": S(psi=0.3, missing_rate_delta=0.0, n=5000)}
    >>> info = lambda i: WindowInfo(i, 60.0 * i, 60.0 * i + 60, 5000, 5000, 60.0 * i + 70, 5000 * i)
    >>> [policy.on_window(info(i), s, nulls)[1] is not None for i, s in enumerate([calm, shifted, shifted])]
    [False, False, True]
    """

    def __init__(self, model_id: str, settings: PolicySettings | None = None) -> None:
        self.model_id = model_id
        self.settings = settings or PolicySettings()
        self.streak = 0
        self.streak_start: float | None = None  # start of the streak's first window
        self.cooldown_until_window: int | None = None
        self.cooldown_until_ts = -math.inf
        self.thresholds: dict[str, dict[str, float]] = {}

    def reset(self) -> None:
        """Forget streak and thresholds (a new reference); the cooldown stays."""
        self.streak = 0
        self.thresholds = {}

    def in_cooldown(self, window_id: int, ts: float) -> bool:
        """True while a previous decision's cooldown lasts."""
        by_window = self.cooldown_until_window is not None and window_id <= self.cooldown_until_window
        return by_window or ts < self.cooldown_until_ts

    def _start_cooldown(self, window_id: int, ts: float) -> None:
        self.streak = 0
        self.cooldown_until_window = window_id + self.settings.cooldown_windows
        self.cooldown_until_ts = ts + self.settings.cooldown_s

    def n_tests(self, nulls: Mapping[str, FeatureNull]) -> int:
        """How many (feature, metric) tests share the family's false-alarm budget."""
        s = self.settings
        total = 0
        for null in nulls.values():
            metrics = set(s.metrics if s.calibrate else ()) | set(s.thresholds)
            total += len([m for m in metrics if m not in NUMERIC_ONLY or null.ordered])
        return max(total, 1)

    def thresholds_for(self, feature: str, null: FeatureNull, n: int, n_tests: int) -> dict[str, float]:
        """Thresholds per metric for ``feature`` in a window of ``n`` rows (cached per size bucket).

        The cache is keyed by feature and bucket only: it is valid for one reference and
        one settings object, and ``reset`` clears it when the reference changes.
        """
        s = self.settings
        bucket = size_bucket(n, s.size_bucket_ratio)
        key = f"{feature}|{bucket}"
        if key not in self.thresholds:
            calibrated: dict[str, float] = {}
            if s.calibrate and s.metrics:
                alpha = s.window_alpha / n_tests
                calibrated = calibrate_feature(feature, null, bucket, s.metrics, alpha, s.calibration_samples, s.seed)
            merged = dict(calibrated)
            for metric, floor in s.thresholds.items():
                if metric not in NUMERIC_ONLY or null.ordered:
                    merged[metric] = max(merged.get(metric, 0.0), float(floor))
            self.thresholds[key] = merged
        return self.thresholds[key]

    def evaluate(self, scores: Mapping[str, Any], nulls: Mapping[str, FeatureNull], n_rows: int) -> list[Breach]:
        """The tests over threshold, strongest first.

        ``n_rows`` is the window's rows with features: the size the null is simulated at
        (each feature's present values are then a binomial share of it).
        """
        n_tests = self.n_tests(nulls)
        breaches: list[Breach] = []
        for feature in sorted(scores):
            score = scores[feature]
            null = nulls.get(feature)
            if null is None or n_rows < 1:
                continue
            for metric, threshold in self.thresholds_for(feature, null, n_rows, n_tests).items():
                value = getattr(score, metric, None)
                value = float("nan") if value is None else abs(float(value))
                if value > threshold:
                    breaches.append(Breach(feature, metric, value, threshold, n_rows))
        breaches.sort(key=lambda b: -b.score / max(b.threshold, 1e-12))
        return breaches

    def on_window(
        self,
        window: WindowInfo,
        scores: Mapping[str, Any],
        nulls: Mapping[str, FeatureNull],
        model_version: str | None = None,
    ) -> tuple[WindowClosed, RetrainRequested | None]:
        """Judge one closed window; returns its record and a decision if the policy fires."""
        breaches = self.evaluate(scores, nulls, window.n_rows)
        table = dict(scores)
        if window.n_rows < self.settings.min_window_events:
            return WindowClosed(self.model_id, window, "too_small", table, tuple(breaches), self.streak), None
        self.streak = self.streak + 1 if breaches else 0
        if self.streak == 1:
            self.streak_start = window.start
        closed = WindowClosed(self.model_id, window, "scored", table, tuple(breaches), self.streak)
        if self.streak < self.settings.consecutive_windows or self.in_cooldown(window.window_id, window.ts):
            return closed, None
        decision = self._drift_decision(window, breaches, nulls, model_version)
        self._start_cooldown(window.window_id, window.ts)
        return dataclasses.replace(closed, decision_id=decision.id), decision

    def _drift_decision(
        self, window: WindowInfo, breaches: list[Breach], nulls: Mapping[str, FeatureNull], model_version: str | None
    ) -> RetrainRequested:
        s = self.settings
        evidence = {
            "window": {
                "id": window.window_id,
                "start": window.start,
                "end": window.end,
                "n_events": window.n_events,
                "n_rows": window.n_rows,
            },
            "consecutive_windows": self.streak,
            "drift_started": self.streak_start,
            "breaches": [dataclasses.asdict(b) for b in breaches],
            "family": {
                "mean_windows_between_false_alarms": s.mean_windows_between_false_alarms,
                "window_alpha": s.window_alpha,
                "n_tests": self.n_tests(nulls),
                "test_alpha": s.window_alpha / self.n_tests(nulls),
            },
        }
        if self.streak_start is not None and is_event_time(window.start):
            evidence["drift_started_ts"] = self.streak_start  # time windows: the trainer's since_drift
        reasons = tuple(b.reason() for b in breaches[:10])
        return RetrainRequested(
            self.model_id,
            window.start,
            window.end,
            "drift",
            reasons,
            evidence,
            window.ts,
            window.at_index,
            model_version,
        )

    def on_performance(
        self, window: WindowInfo, detector: str, evidence: dict[str, Any], model_version: str | None = None
    ) -> RetrainRequested | None:
        """A performance detector fired at ``window.at_index``: decide under the shared cooldown."""
        if not self.settings.performance or self.in_cooldown(window.window_id, window.ts):
            return None
        reason = f"performance: {detector} detected a change in the error stream"
        decision = RetrainRequested(
            self.model_id,
            window.start,
            window.end,
            f"performance:{detector}",
            (reason,),
            evidence,
            window.ts,
            window.at_index,
            model_version,
        )
        self._start_cooldown(window.window_id, window.ts)
        return decision

    def to_state(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "streak": self.streak,
            "streak_start": self.streak_start,
            "cooldown_until_window": self.cooldown_until_window,
            "cooldown_until_ts": None if self.cooldown_until_ts == -math.inf else self.cooldown_until_ts,
            "thresholds": self.thresholds,
        }

    @classmethod
    def from_state(cls, model_id: str, state: Mapping[str, Any], settings: PolicySettings | None = None) -> DriftPolicy:
        """Rebuild from ``to_state``."""
        policy = cls(model_id, settings)
        policy.streak = int(state.get("streak", 0))
        start = state.get("streak_start")
        policy.streak_start = None if start is None else float(start)
        policy.cooldown_until_window = state.get("cooldown_until_window")
        ts = state.get("cooldown_until_ts")
        policy.cooldown_until_ts = -math.inf if ts is None else float(ts)
        policy.thresholds = {k: dict(v) for k, v in state.get("thresholds", {}).items()}
        return policy


def _score_dict(score: Any) -> dict[str, float | None]:
    """Numeric fields of a ``FeatureScores``; nan (no data) becomes None for JSON."""
    names = [f.name for f in dataclasses.fields(score)] if dataclasses.is_dataclass(score) else list(vars(score))
    out: dict[str, float | None] = {}
    for key in names:
        value = getattr(score, key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = None if value != value else value
    return out
