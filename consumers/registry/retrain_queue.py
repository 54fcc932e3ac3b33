"""One pending retrain per model: requests are deferred and merged, never dropped (pure).

A retrain request that cannot be served now — the model is in its cooldown, or fewer
than ``min_rows_after_drift`` labeled rows exist after the drift began — becomes the
model's *pending* request. Later requests merge into it: the earliest drift start wins
(train on the present, all of it), ``urgent`` sticks (the serving version underperforms,
so the cooldown must not hold recovery back), and the newest evidence is kept (it
carries the online challenger's latest state). The trainer re-checks pending requests on
a timer and trains as soon as nothing blocks them.

Pending requests live in Kafka like every other trainer state: each deferral is a
``RetrainDeferred`` audit record, and the pending request ends with the
``ModelVersionCreated`` or ``TrainingSkipped`` whose ``request_id`` is its ``pending_id``
(``RegistryState`` folds both), so a restarted trainer picks them up where it left off.

Examples
--------
>>> from driftline.schemas.registry import RetrainDeferred
>>> first = RetrainDeferred("m", "r1", "r1", "cooldown", drift_start=100.0, rule="drift", at=1.0)
>>> later = RetrainDeferred("m", "r2", "r1", "rows", drift_start=50.0, urgent=True, rule="underperforming", at=2.0)
>>> p = PendingRetrain.from_deferred(first).merge(later)
>>> p.pending_id, p.request_ids, p.drift_start, p.urgent
('r1', ('r1', 'r2'), 50.0, True)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from driftline.schemas.control import RetrainRequested, is_event_time
from driftline.schemas.registry import RetrainDeferred

__all__ = ["URGENT_RULES", "PendingRetrain", "blocked_by", "challenger_seen_until", "drift_start_of"]

#: Rules whose requests skip the cooldown: the serving version is measurably worse than
#: promised (its gate figures, or the online challenger), so waiting costs accuracy.
URGENT_RULES = frozenset({"underperforming", "challenger", "follow_up"})


def drift_start_of(req: RetrainRequested) -> float | None:
    """When the drift began, in event time: evidence ``drift_started_ts``, else a time window's start.

    Count windows bound event numbers, not times: then there is no start time to use.
    """
    evidence = req.evidence or {}
    value = evidence.get("drift_started_ts")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and is_event_time(float(value)):
        return float(value)
    return req.window_start if is_event_time(req.window_start) else None


def challenger_seen_until(pending: PendingRetrain) -> float | None:
    """Event time of the newest row the online challenger sent with ``pending`` learned from.

    The trainer waits for enough rows after it before training, so that the challenger is
    judged with the batch candidates on rows none of them has seen (an online model scored
    on rows it learned looks better than it is). ``None`` without a challenger.

    Examples
    --------
    >>> p = PendingRetrain("m", "r", ("r",), 10.0, True, "challenger", "", 0.0,
    ...                    evidence={"challenger": {"last_ts": 99.5}})
    >>> challenger_seen_until(p), challenger_seen_until(dataclasses.replace(p, evidence={}))
    (99.5, None)
    """
    doc = pending.evidence.get("challenger")
    value = doc.get("last_ts") if isinstance(doc, dict) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


@dataclasses.dataclass(frozen=True)
class PendingRetrain:
    """A model's pending request: every request merged into it and what it still waits for."""

    model_id: str
    pending_id: str
    request_ids: tuple[str, ...]
    drift_start: float | None
    urgent: bool
    rule: str
    reason: str
    since: float
    min_rows: int = 0
    evidence: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_request(cls, req: RetrainRequested, since: float) -> PendingRetrain:
        return cls(
            req.model_id,
            req.id,
            (req.id,),
            drift_start_of(req),
            req.rule in URGENT_RULES,
            req.rule,
            "",
            since,
            0,
            dict(req.evidence or {}),
        )

    @classmethod
    def from_deferred(cls, d: RetrainDeferred) -> PendingRetrain:
        return cls(
            d.model_id,
            d.pending_id,
            tuple(dict.fromkeys((d.pending_id, d.request_id))),
            d.drift_start,
            d.urgent,
            d.rule,
            d.reason,
            d.at,
            d.min_rows,
            dict(d.evidence or {}),
        )

    def merge(self, d: RetrainDeferred) -> PendingRetrain:
        """This request with ``d`` merged in (earliest drift start, urgent sticks, newest evidence)."""
        starts = [s for s in (self.drift_start, d.drift_start) if s is not None]
        return dataclasses.replace(
            self,
            request_ids=tuple(dict.fromkeys((*self.request_ids, d.request_id))),
            drift_start=min(starts) if starts else None,
            urgent=self.urgent or d.urgent,
            rule=d.rule if d.urgent or not self.urgent else self.rule,
            reason=d.reason,
            min_rows=max(self.min_rows, d.min_rows),
            evidence=dict(d.evidence or {}) or self.evidence,
        )

    def with_request(self, req: RetrainRequested) -> PendingRetrain:
        """This request with a newly arrived ``req`` merged in."""
        return self.merge(
            self.deferral(
                req.id, "", req.rule in URGENT_RULES, req.rule, drift_start_of(req), 0, dict(req.evidence or {})
            )
        )

    def deferral(
        self,
        request_id: str,
        reason: str,
        urgent: bool | None = None,
        rule: str | None = None,
        drift_start: float | None = None,
        min_rows: int | None = None,
        evidence: dict[str, Any] | None = None,
    ) -> RetrainDeferred:
        """The audit record that defers ``request_id`` into this pending request."""
        return RetrainDeferred(
            self.model_id,
            request_id,
            self.pending_id,
            reason,
            self.drift_start if drift_start is None else drift_start,
            self.urgent if urgent is None else urgent,
            self.rule if rule is None else rule,
            self.min_rows if min_rows is None else min_rows,
            self.evidence if evidence is None else evidence,
        )

    def trigger(self) -> dict[str, Any]:
        """What asked for the version this request trains (kept on the version record)."""
        evidence = {k: v for k, v in self.evidence.items() if k != "challenger"}
        return {
            "pending_id": self.pending_id,
            "request_ids": list(self.request_ids),
            "rule": self.rule,
            "urgent": self.urgent,
            "drift_start": self.drift_start,
            "deferred_since": self.since,
            "evidence": evidence,
        }


def blocked_by(
    pending: PendingRetrain,
    *,
    now: float,
    last_created_at: float | None,
    cooldown_s: float,
    paused: bool,
    rows_after_drift: int | None,
    min_rows_after_drift: int,
) -> str | None:
    """Why ``pending`` cannot train now (``None``: it can).

    ``rows_after_drift`` is how many labeled rows exist from the drift start on (``None``
    when the request has no drift start: then there is nothing to wait for).

    Examples
    --------
    >>> p = PendingRetrain("m", "r", ("r",), 10.0, False, "drift", "", 0.0)
    >>> blocked_by(p, now=100.0, last_created_at=90.0, cooldown_s=60.0, paused=False, rows_after_drift=5000,
    ...            min_rows_after_drift=600)
    'cooldown: last version 10 s ago < cooldown 60 s'
    >>> blocked_by(p, now=200.0, last_created_at=90.0, cooldown_s=60.0, paused=False, rows_after_drift=100,
    ...            min_rows_after_drift=600)
    'waiting for rows after the drift start: 100 of 600'
    """
    if paused:
        return "paused: driftline models resume MODEL to train again"
    if not pending.urgent and last_created_at is not None and now - last_created_at < cooldown_s:
        return f"cooldown: last version {now - last_created_at:.0f} s ago < cooldown {cooldown_s:g} s"
    need = max(min_rows_after_drift, pending.min_rows)
    if rows_after_drift is not None and rows_after_drift < need:
        return f"waiting for rows after the drift start: {rows_after_drift} of {need}"
    return None
