"""The one validation gate every candidate passes — first version and every retrain alike.

Two kinds of check, both configured per metric: absolute **floors** (``accuracy >= 0.7``,
``mae <= 3.0`` — the direction comes from the metric) and **non-regression** against the
champion measured on the *same* validation rows (``{"accuracy": {"abs": 0.01}}`` = may be
at most 0.01 worse; ``{"rel": 0.05}`` = at most 5 % worse). With no champion only the
floors apply. The gate **fails closed**: if no configured check applies to the
candidate's metrics, it rejects (TFX #5148: a gate without thresholds must not pass).

A third kind, **baseline**, needs the constant predictor's metrics on the same rows
(``candidate.baseline_metrics``): after a concept change the champion serves at chance,
so not regressing against it would pass a candidate that also serves at chance (one that
learned the old rule). The candidate must be strictly better than the constant: log-loss
below the class prior's when it has one, else accuracy above the majority share; MAE
below the median's for regression. When the constant is already perfect on the rows (one
class only, all labels equal) there is nothing to beat and the check does not apply.

Examples
--------
>>> t = GateThresholds(floors={"accuracy": 0.6}, non_regression={"accuracy": {"abs": 0.02}})
>>> evaluate_gate({"accuracy": 0.8}, {"accuracy": 0.81}, t).passed
True
>>> evaluate_gate({"accuracy": 0.7}, {"accuracy": 0.8}, t).reason
'accuracy regressed: 0.7 vs champion 0.8 (allowed worse by 0.02)'
>>> evaluate_gate({"accuracy": 0.9}, None, GateThresholds()).reason
'no thresholds apply (fails closed): configure [trainer] gate_floors / gate_non_regression'
>>> evaluate_gate({"accuracy": 0.62, "log_loss": 0.9}, None, t, baseline={"accuracy": 0.5, "log_loss": 0.69}).reason
'log_loss 0.9 not better than the constant predictor 0.69 on the same rows'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["LOWER_IS_BETTER", "GateCheck", "GateResult", "GateThresholds", "beats_baseline", "evaluate_gate"]

#: Metrics where smaller is better; every other metric is higher-is-better.
LOWER_IS_BETTER = frozenset({"log_loss", "cross_entropy", "mae", "rmse", "mse"})


@dataclass(frozen=True)
class GateThresholds:
    """Floors (metric → bound) and non-regression tolerances (metric → ``{"abs"|"rel": x}``)."""

    floors: Mapping[str, float] = field(default_factory=dict)
    non_regression: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    beat_baseline: bool = True
    """Require beating the constant predictor when ``evaluate_gate`` is given its metrics."""


@dataclass(frozen=True)
class GateCheck:
    """One check's inputs and outcome, recorded on the version and in the audit log."""

    metric: str
    kind: str  # "floor" | "non_regression" | "baseline"
    value: float
    bound: float
    passed: bool
    champion: float | None = None
    baseline: float | None = None
    """The constant predictor's value of ``metric`` (baseline checks; ``bound`` is the same)."""


@dataclass(frozen=True)
class GateResult:
    """The verdict: passed only if at least one check applied and every check passed."""

    passed: bool
    reason: str
    checks: tuple[GateCheck, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reason": self.reason, "checks": [asdict(c) for c in self.checks]}


def _better_or_equal(metric: str, value: float, bound: float) -> bool:
    if math.isnan(value):
        return False
    return value <= bound if metric in LOWER_IS_BETTER else value >= bound


def _floor_checks(metrics: Mapping[str, float], floors: Mapping[str, float]) -> list[GateCheck]:
    return [
        GateCheck(m, "floor", float(metrics[m]), float(b), _better_or_equal(m, float(metrics[m]), float(b)))
        for m, b in sorted(floors.items())
        if m in metrics
    ]


def _allowed_bound(metric: str, champion: float, tolerance: Mapping[str, float]) -> float:
    """The worst value still accepted: champion worsened by the abs and/or rel tolerance (the looser)."""
    slack = max(float(tolerance.get("abs", 0.0)), abs(champion) * float(tolerance.get("rel", 0.0)))
    return champion + slack if metric in LOWER_IS_BETTER else champion - slack


def _regression_checks(
    metrics: Mapping[str, float], champion: Mapping[str, float], tolerances: Mapping[str, Mapping[str, float]]
) -> list[GateCheck]:
    checks = []
    for metric, tolerance in sorted(tolerances.items()):
        if metric not in metrics or metric not in champion or math.isnan(float(champion[metric])):
            continue
        bound = _allowed_bound(metric, float(champion[metric]), tolerance)
        value = float(metrics[metric])
        checks.append(
            GateCheck(
                metric, "non_regression", value, bound, _better_or_equal(metric, value, bound), float(champion[metric])
            )
        )
    return checks


def _baseline_check(metrics: Mapping[str, float], baseline: Mapping[str, float]) -> list[GateCheck]:
    """Strictly better than the constant predictor on the first of log_loss, accuracy, mae both have."""
    for metric, perfect in (("log_loss", 0.0), ("accuracy", 1.0), ("mae", 0.0)):
        if metric in metrics and metric in baseline:
            value, bound = float(metrics[metric]), float(baseline[metric])
            if math.isnan(bound) or abs(bound - perfect) < 1e-9:
                return []  # nothing to beat (one class / constant labels): the other checks decide
            better = value < bound if metric in LOWER_IS_BETTER else value > bound
            return [GateCheck(metric, "baseline", value, bound, better and not math.isnan(value), baseline=bound)]
    return []


def beats_baseline(metrics: Mapping[str, float], baseline: Mapping[str, float]) -> bool:
    """True when ``metrics`` pass the gate's baseline check against ``baseline`` (or it does not apply)."""
    return all(check.passed for check in _baseline_check(metrics, baseline))


def _describe(check: GateCheck, tolerances: Mapping[str, Mapping[str, float]]) -> str:
    if check.kind == "baseline":
        return (
            f"{check.metric} {check.value:.4g} not better than the constant predictor {check.bound:.4g} "
            "on the same rows"
        )
    if check.kind == "floor":
        op = "<=" if check.metric in LOWER_IS_BETTER else ">="
        return f"{check.metric} {check.value:.4g} fails floor {op} {check.bound:.4g}"
    tol = tolerances.get(check.metric, {})
    allowed = " / ".join(f"{'by' if k == 'abs' else 'by rel'} {v:g}" for k, v in sorted(tol.items()))
    return f"{check.metric} regressed: {check.value:.4g} vs champion {check.champion:.4g} (allowed worse {allowed})"


def evaluate_gate(
    metrics: Mapping[str, float],
    champion: Mapping[str, float] | None,
    thresholds: GateThresholds,
    baseline: Mapping[str, float] | None = None,
) -> GateResult:
    """Judge a candidate's ``metrics`` (and the champion's and the constant predictor's on the same rows)."""
    checks = _floor_checks(metrics, thresholds.floors)
    if champion:
        checks += _regression_checks(metrics, champion, thresholds.non_regression)
    if baseline and thresholds.beat_baseline:
        checks += _baseline_check(metrics, baseline)
    if not checks:
        return GateResult(
            False, "no thresholds apply (fails closed): configure [trainer] gate_floors / gate_non_regression", ()
        )
    failed = [c for c in checks if not c.passed]
    if failed:
        return GateResult(False, "; ".join(_describe(c, thresholds.non_regression) for c in failed), tuple(checks))
    return GateResult(True, f"{len(checks)} checks passed", tuple(checks))
