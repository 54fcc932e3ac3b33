"""Post-deployment check of the serving version, from joined labels (pure).

A version passed its gate on held-out rows; what matters is what it does on live traffic.
``ServedQualityWatch`` keeps, per model, the last ``window_rows`` joined rows that the
serving version itself predicted (``model_version`` on the prediction event), with whether
the served answer was right and whether the online challenger's prequential answer was.
From them it reports:

- a ``VersionChecked`` once ``min_rows`` rows of the version are in (verdict ``ok`` or
  ``short``), and again whenever the verdict changes: the live figures beside the gate's;
- ``short`` when even the upper confidence bound (one-sided, ``z``) of the live accuracy
  is below the gate's accuracy minus ``tolerance``: a ``RetrainRequested`` with rule
  ``underperforming`` and the evidence, repeated every ``reask_rows`` rows while it lasts
  (so a rejected retrain is asked for again, with more rows, until a version recovers);
- a ``challenger`` request when the online challenger is right more often than the
  serving version on the same rows, by ``challenger_margin`` and significantly (a sign
  test on the rows where exactly one of them was right).

Every request carries ``drift_started_ts``: where in the window the error rate changed
(the CUSUM change point), so the trainer trains and validates on the rows after it.
Classification only (accuracy); regression models are not judged here.

State is a small JSON-able dict, saved with the model's other state.

Examples
--------
>>> from driftline.stream.drift.label_join import JoinedRow
>>> w = ServedQualityWatch("m", QualitySettings(window_rows=100, min_rows=50, reask_rows=50))
>>> ok = [JoinedRow("m", str(i), 1e9 + i, "1.0.0", 1, None, 1, None) for i in range(60)]
>>> [type(o).__name__ for o in w.observe("1.0.0", {"accuracy": 0.99}, ok, [None] * 60)]
['VersionChecked']
>>> bad = [JoinedRow("m", str(i), 1e9 + i, "1.0.0", 1, None, i % 2, None) for i in range(60, 160)]
>>> [(type(o).__name__, getattr(o, "rule", "")) for o in w.observe("1.0.0", {"accuracy": 0.99}, bad, [None] * 100)]
[('VersionChecked', ''), ('RetrainRequested', 'underperforming')]
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from driftline.errors import ConfigError
from driftline.schemas.control import RetrainRequested, VersionChecked
from driftline.stream.drift.label_join import JoinedRow

__all__ = ["QualitySettings", "ServedQualityWatch", "change_point"]


@dataclasses.dataclass(frozen=True)
class QualitySettings:
    """``[quality]``: how the stream judges the serving version on live labels."""

    enabled: bool = True
    window_rows: int = 500
    min_rows: int = 200
    tolerance: float = 0.05
    z: float = 2.33
    challenger_margin: float = 0.02
    reask_rows: int = 500

    def __post_init__(self) -> None:
        checks = [
            (self.window_rows >= 20, "window_rows", "must be >= 20"),
            (1 <= self.min_rows <= self.window_rows, "min_rows", "must be in [1, window_rows]"),
            (0.0 <= self.tolerance < 1.0, "tolerance", "must be in [0, 1)"),
            (self.z > 0, "z", "must be > 0"),
            (0.0 <= self.challenger_margin < 1.0, "challenger_margin", "must be in [0, 1)"),
            (self.reask_rows >= 1, "reask_rows", "must be >= 1"),
        ]
        for ok, key, problem in checks:
            if not ok:
                raise ConfigError(f"quality.{key}", problem)


def change_point(errors: Sequence[int]) -> int:
    """Index of the first row after the most likely change in mean (CUSUM; 0 if none).

    Examples
    --------
    >>> change_point([0] * 30 + [1, 0] * 20)
    30
    """
    n = len(errors)
    if n < 2:
        return 0
    total = sum(errors)
    best, best_k, running = 0.0, 0, 0
    for k in range(1, n):
        running += errors[k - 1]
        gap = abs(running - k * total / n)
        if gap > best:
            best, best_k = gap, k
    return best_k


class ServedQualityWatch:
    """One model's live check of its serving version (see the module docstring)."""

    def __init__(self, model_id: str, settings: QualitySettings | None = None) -> None:
        self.model_id = model_id
        self.settings = settings or QualitySettings()
        self.version: str | None = None
        self.rows: collections.deque[tuple[float, int, int]] = collections.deque(maxlen=self.settings.window_rows)
        self.n = 0
        self.checks = 0
        self.verdict: str | None = None
        self.asks = 0
        self.since_ask: int | None = None
        self.episode_start: float | None = None

    # -- feeding ---------------------------------------------------------------------------
    def observe(
        self,
        serving_version: str | None,
        gate: Mapping[str, Any] | None,
        rows: Sequence[JoinedRow],
        challenger_hits: Sequence[bool | None],
    ) -> list[VersionChecked | RetrainRequested]:
        """Feed joined rows (and the challenger's per-row hits, aligned); return checks and requests."""
        if not self.settings.enabled or serving_version is None:
            return []
        if serving_version != self.version:
            self._new_version(serving_version)
        for row, hit in zip(rows, challenger_hits, strict=True):
            if row.model_version != serving_version or row.label is None:
                continue
            self.rows.append((float(row.ts), int(row.prediction == row.label), -1 if hit is None else int(hit)))
            self.n += 1
            if self.since_ask is not None:
                self.since_ask += 1
        if self.n < self.settings.min_rows or len(self.rows) < self.settings.min_rows:
            return []
        return self._judge(_accuracy(gate))

    def _new_version(self, version: str) -> None:
        """A new version serves: its own check, and a shortfall of it is found in its own rows."""
        self.version, self.n, self.checks, self.verdict = version, 0, 0, None
        self.asks, self.since_ask, self.episode_start = 0, None, None
        self.rows.clear()

    # -- judging ---------------------------------------------------------------------------
    def live(self) -> dict[str, float]:
        """Live accuracy of the serving version over the window, its upper bound, and ``n``."""
        n = len(self.rows)
        if not n:
            return {"n": 0.0}
        acc = sum(r[1] for r in self.rows) / n
        return {
            "accuracy": acc,
            "upper_bound": _upper(acc, n, self.settings.z),
            "n": float(n),
            "rows_since_serving": float(self.n),
        }

    def _judge(self, gate_accuracy: float | None) -> list[VersionChecked | RetrainRequested]:
        s = self.settings
        live = self.live()
        out: list[VersionChecked | RetrainRequested] = []
        short = gate_accuracy is not None and live["upper_bound"] < gate_accuracy - s.tolerance
        verdict = "short" if short else "ok"
        gate = {} if gate_accuracy is None else {"accuracy": gate_accuracy}
        if verdict != self.verdict:
            out.append(
                VersionChecked(
                    self.model_id, str(self.version), verdict, live, gate, s.tolerance, self.checks, self._window()
                )
            )
            self.checks += 1
            self.verdict = verdict
        if not short:
            self.episode_start = None
        challenger = self._challenger_lead()
        rule = "underperforming" if short else ("challenger" if challenger is not None else None)
        due = self.since_ask is None or self.since_ask >= s.reask_rows
        if rule is not None and due:
            out.append(self._request(rule, live, gate, challenger))
        return out

    def _challenger_lead(self) -> dict[str, float] | None:
        """The challenger's lead on the same rows when it is significant and above the margin."""
        paired = [(served, hit) for _, served, hit in self.rows if hit >= 0]
        if len(paired) < self.settings.min_rows:
            return None
        wins = sum(1 for served, hit in paired if hit and not served)
        losses = sum(1 for served, hit in paired if served and not hit)
        lead = (wins - losses) / len(paired)
        if wins + losses == 0 or lead < self.settings.challenger_margin:
            return None
        z = (wins - losses) / math.sqrt(wins + losses)
        if z < self.settings.z:
            return None
        return {
            "lead": lead,
            "z": z,
            "n": float(len(paired)),
            "challenger_right_served_wrong": float(wins),
            "served_right_challenger_wrong": float(losses),
        }

    def _request(
        self, rule: str, live: dict[str, float], gate: dict[str, float], challenger: dict[str, float] | None
    ) -> RetrainRequested:
        if self.episode_start is None:
            errors = [1 - served for _, served, _ in self.rows]
            self.episode_start = self.rows[change_point(errors)][0]
        first, last = self.rows[0][0], self.rows[-1][0]
        evidence: dict[str, Any] = {
            "live": live,
            "gate": gate,
            "tolerance": self.settings.tolerance,
            "drift_started_ts": self.episode_start,
            "window": self._window(),
        }
        if challenger is not None:
            evidence["challenger_lead"] = challenger
        reason = (
            f"{self.version} serves at accuracy {live['accuracy']:.3f} on the last {int(live['n'])} labeled "
            f"rows (upper bound {live['upper_bound']:.3f})"
            + (f", its gate measured {gate['accuracy']:.3f}" if gate else "")
            + (f"; the online challenger is right on {challenger['lead']:.1%} more rows" if challenger else "")
        )
        request = RetrainRequested(
            self.model_id,
            first,
            last,
            rule,
            (reason,),
            evidence,
            last,
            self.n,
            self.version,
            id=f"{self.model_id}:{self.version}:{rule}:{self.asks}",
        )
        self.asks += 1
        self.since_ask = 0
        return request

    def _window(self) -> dict[str, Any]:
        if not self.rows:
            return {}
        return {"ts_from": self.rows[0][0], "ts_to": self.rows[-1][0], "rows": len(self.rows)}

    def change_start(self) -> float | None:
        """Event time where the serving version's error rate changed in the window (None when empty)."""
        if len(self.rows) < 2:
            return None
        return self.rows[change_point([1 - served for _, served, _ in self.rows])][0]

    # -- state -----------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "v": 1,
            "version": self.version,
            "rows": [list(r) for r in self.rows],
            "n": self.n,
            "checks": self.checks,
            "verdict": self.verdict,
            "asks": self.asks,
            "since_ask": self.since_ask,
            "episode_start": self.episode_start,
        }

    @classmethod
    def from_state(
        cls, model_id: str, state: Mapping[str, Any], settings: QualitySettings | None = None
    ) -> ServedQualityWatch:
        """Rebuild from ``to_state``; a malformed state raises ``ValueError``."""
        if state.get("v") != 1:
            raise ValueError(f"unknown quality watch state version {state.get('v')!r}")
        w = cls(model_id, settings)
        try:
            w.version = None if state["version"] is None else str(state["version"])
            w.rows.extend((float(ts), int(ok), int(hit)) for ts, ok, hit in state["rows"])
            w.n, w.checks, w.asks = int(state["n"]), int(state["checks"]), int(state["asks"])
            w.verdict = None if state["verdict"] is None else str(state["verdict"])
            w.since_ask = None if state["since_ask"] is None else int(state["since_ask"])
            w.episode_start = None if state["episode_start"] is None else float(state["episode_start"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed quality watch state: {exc}") from exc
        return w


def _accuracy(gate: Mapping[str, Any] | None) -> float | None:
    value = (gate or {}).get("accuracy")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _upper(p: float, n: int, z: float) -> float:
    """Wilson score upper bound of a proportion ``p`` over ``n`` rows."""
    denom = 1 + z * z / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + half) / denom)
