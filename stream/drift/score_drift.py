"""ADWIN on the serving model's score distribution, per model version.

Why: labels can arrive hours late (or never), but a model's output distribution moves
as soon as its inputs do. ADWIN on the score (the positive-class probability, or a
regression model's numeric prediction) notices a shift in the mean output without any
label. It is a signal for dashboards and logs, not a retrain rule: decisions stay the
monitor's policy, so live and replay decide identically.

State is pickle bytes (River's ADWIN pickles with its buckets), kept by the agent.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from typing import Any

from river import drift

from driftline.stream.drift.state_pickle import loads_state

__all__ = ["ScoreDrift", "ScoreShift"]


@dataclasses.dataclass(frozen=True)
class ScoreShift:
    """ADWIN found the mean score of ``model_version`` changed, at its ``index``-th score."""

    model_version: str
    index: int
    mean: float


class ScoreDrift:
    """One ADWIN per model version over the score column of prediction rows.

    Examples:
        >>> import numpy as np
        >>> d = ScoreDrift(delta=0.002)
        >>> rng = np.random.default_rng(0)
        >>> scores = np.r_[rng.normal(0.2, 0.05, 2000), rng.normal(0.7, 0.05, 500)]
        >>> shifts = d.update(["1"] * 2500, scores)
        >>> len(shifts) >= 1 and 2000 <= shifts[0].index < 2100
        True
    """

    def __init__(self, delta: float = 0.002) -> None:
        self.delta = delta
        self.detectors: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def update(self, versions: list[str | None], scores: Any) -> list[ScoreShift]:
        """Feed one batch's prediction rows (version and score per row; NaN = none)."""
        out: list[ScoreShift] = []
        for version, score in zip(versions, scores):
            s = float(score)
            if not math.isfinite(s):
                continue
            v = version or "unknown"
            det = self.detectors.get(v)
            if det is None:
                det = self.detectors[v] = drift.ADWIN(delta=self.delta)
            det.update(s)
            self.counts[v] = self.counts.get(v, 0) + 1
            if det.drift_detected:
                out.append(ScoreShift(v, self.counts[v] - 1, float(det.estimation)))
        return out

    def means(self) -> dict[str, float]:
        """Current mean score per version (ADWIN's kept window)."""
        return {v: float(d.estimation) for v, d in self.detectors.items()}

    def to_state(self) -> bytes:
        return pickle.dumps({"delta": self.delta, "detectors": self.detectors, "counts": self.counts})

    @classmethod
    def from_state(cls, state: bytes) -> ScoreDrift:
        d = loads_state(state)  # River objects: classes on an allow-list only
        sd = cls(d["delta"])
        sd.detectors, sd.counts = d["detectors"], d["counts"]
        return sd
