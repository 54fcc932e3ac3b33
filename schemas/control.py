"""Decisions the drift monitor publishes on ``driftline.control``.

Declared once here, like the raw events, so the monitor, replay, the trainer and the
dashboards share one shape. The faust agent runs at-least-once, so the same decision can
be published twice after a crash or rebalance: ``id`` is a deterministic function of the
model, the window and the rule, and the trainer de-duplicates on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["RetrainRequested", "VersionChecked", "decision_id", "is_event_time"]

_EPOCH_FLOOR = 1e8


def is_event_time(window_bound: float) -> bool:
    """True for a time window's bound (epoch seconds); count windows number events.

    Examples
    --------
    >>> is_event_time(1764158400.0), is_event_time(12000.0)
    (True, False)
    """
    return window_bound > _EPOCH_FLOOR


def decision_id(model_id: str, window_start: float, rule: str) -> str:
    """``model:window_start:rule`` — the same inputs always give the same id.

    Examples
    --------
    >>> decision_id("churn", 1764158400.0, "drift")
    'churn:1764158400:drift'
    >>> decision_id("churn", 12.5, "performance:adwin")
    'churn:12.5:performance:adwin'
    """
    start = int(window_start) if float(window_start).is_integer() else window_start
    return f"{model_id}:{start}:{rule}"


@dataclass(frozen=True)
class RetrainRequested:
    """The monitor's decision that ``model_id`` has drifted and should be retrained.

    ``window_start``/``window_end`` bound the window whose close triggered it (seconds for
    time windows, event numbers for count windows); ``rule`` is ``"drift"`` or
    ``"performance:<detector>"``; ``reasons`` are short human-readable strings and
    ``evidence`` holds the scores against their thresholds and the event counts;
    ``ts`` is the event time of the row that triggered it and ``at_index`` that row's
    position (the input line number in replay).

    Examples
    --------
    >>> r = RetrainRequested("churn", 0.0, 60.0, "drift", ("x: psi 0.4 > 0.1",), {}, 70.0, 7001)
    >>> r.id
    'churn:0:drift'
    >>> RetrainRequested.from_dict(r.to_dict()) == r
    True
    """

    model_id: str
    window_start: float
    window_end: float
    rule: str
    reasons: tuple[str, ...]
    evidence: dict[str, Any]
    ts: float
    at_index: int
    model_version: str | None = None
    id: str = field(default="")

    type: ClassVar[str] = "retrain_requested"

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", decision_id(self.model_id, self.window_start, self.rule))
        object.__setattr__(self, "reasons", tuple(self.reasons))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; ``type`` first so a consumer of ``driftline.control`` can dispatch."""
        return {
            "type": self.type,
            "id": self.id,
            "model_id": self.model_id,
            "model_version": self.model_version,
            "rule": self.rule,
            "window": {"start": self.window_start, "end": self.window_end},
            "at_index": self.at_index,
            "ts": self.ts,
            "reasons": list(self.reasons),
            "evidence": self.evidence,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetrainRequested:
        """Inverse of ``to_dict``."""
        if data.get("type", cls.type) != cls.type:
            raise ValueError(f"not a {cls.type} event: type={data.get('type')!r}")
        window = data["window"]
        return cls(
            model_id=data["model_id"],
            window_start=float(window["start"]),
            window_end=float(window["end"]),
            rule=data["rule"],
            reasons=tuple(data.get("reasons", ())),
            evidence=dict(data.get("evidence", {})),
            ts=float(data["ts"]),
            at_index=int(data["at_index"]),
            model_version=data.get("model_version"),
            id=data.get("id", ""),
        )


@dataclass(frozen=True)
class VersionChecked:
    """The stream's post-deployment check of a serving version: live figures beside its gate figures.

    Sent once per version when ``rows`` joined rows of it have been seen (``verdict`` is
    ``ok`` or ``short``), and again whenever the verdict changes; ``id`` is
    ``model:version:check:<n>`` so a re-sent check is recorded once. The trainer copies it
    to ``driftline.audit``, where ``driftline models show`` reads the live figures.

    Examples
    --------
    >>> c = VersionChecked("churn", "1.0.1", "ok", {"accuracy": 0.99, "n": 500.0}, {"accuracy": 0.98}, 0.05, 0)
    >>> c.id, VersionChecked.from_dict(c.to_dict()) == c
    ('churn:1.0.1:check:0', True)
    """

    model_id: str
    version: str
    verdict: str
    live: dict[str, float]
    gate: dict[str, float]
    tolerance: float
    seq: int
    evidence: dict[str, Any] = field(default_factory=dict)
    id: str = field(default="")

    type: ClassVar[str] = "version_checked"

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", f"{self.model_id}:{self.version}:check:{self.seq}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "id": self.id,
            "model_id": self.model_id,
            "version": self.version,
            "verdict": self.verdict,
            "live": self.live,
            "gate": self.gate,
            "tolerance": self.tolerance,
            "seq": self.seq,
            "evidence": self.evidence,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VersionChecked:
        if data.get("type") != cls.type:
            raise ValueError(f"not a {cls.type} event: type={data.get('type')!r}")
        return cls(
            str(data["model_id"]),
            str(data["version"]),
            str(data["verdict"]),
            dict(data["live"]),
            dict(data["gate"]),
            float(data["tolerance"]),
            int(data["seq"]),
            dict(data.get("evidence") or {}),
            str(data.get("id") or ""),
        )
