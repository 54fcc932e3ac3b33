"""ADWIN on the serving model's score distribution, per model version.

Why: labels can arrive hours late (or never), but a model's output distribution moves
as soon as its inputs do. ADWIN on the score (the positive-class probability, or a
regression model's numeric prediction) notices a shift in the mean output without any
label. It is a signal for dashboards and logs, not a retrain rule: decisions stay the
monitor's policy, so live and replay decide identically.

State (``to_state``) is orjson bytes of an explicit, versioned document — the delta and,
per version, its score count and its ADWIN in ``adwin_state``'s format — kept by the agent
in its changelogged table. ``from_state`` checks every field and refuses anything else
with a ``ValueError``, the old pickled state included: pickle from a topic can run code.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import orjson
from river import drift

from driftline.stream.drift.adwin_state import adwin_settings, dump_adwin, load_adwin
from driftline.stream.drift.river_state import _name, _num, _short

__all__ = ["MAX_VERSIONS", "ScoreDrift", "ScoreShift"]

MAX_VERSIONS = 10_000
"""Model versions in one state."""
_STATE_FORMAT = "driftline.score-drift"
_STATE_VERSION = 2  # 1 was pickle: refused since
_STATE_FIELDS = frozenset({"format", "v", "delta", "versions"})


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
        """Orjson bytes: ``delta`` and ``versions`` = ``[[model_version, scores counted, ADWIN], ...]``; no pickle."""
        versions = [[v, self.counts[v], dump_adwin(d)] for v, d in self.detectors.items()]
        return orjson.dumps({"format": _STATE_FORMAT, "v": _STATE_VERSION, "delta": self.delta, "versions": versions})

    @classmethod
    def from_state(cls, state: bytes) -> ScoreDrift:
        """The detectors ``to_state`` wrote; ``ValueError`` for anything else, old pickles included."""
        data = bytes(state)
        if data[:1] == b"\x80":  # pickle protocol 2+; what the first version wrote
            raise ValueError(
                "this is an old pickled ScoreDrift state, which is no longer loaded "
                "(pickle from a topic can run code): start fresh score-drift detectors"
            )
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not a ScoreDrift state (not JSON: {exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != _STATE_FORMAT:
            raise ValueError("not a ScoreDrift state (no format marker)")
        if doc.get("v") != _STATE_VERSION or isinstance(doc.get("v"), bool):
            raise ValueError(f"unknown ScoreDrift state version {doc.get('v')!r:.40}")
        if set(doc) != _STATE_FIELDS:
            raise ValueError(
                f"ScoreDrift state: fields {sorted(map(str, set(doc) ^ _STATE_FIELDS))} missing or unknown"
            )
        delta = float(_num(doc["delta"], "ScoreDrift state: delta"))
        if not 0.0 < delta < 1.0:
            raise ValueError(f"ScoreDrift state: delta {delta!r} out of range (a significance level in (0, 1))")
        sd = cls(delta)
        expected = adwin_settings(drift.ADWIN(delta=delta))
        versions = doc["versions"]
        if not isinstance(versions, list) or len(versions) > MAX_VERSIONS:
            raise ValueError(
                f"ScoreDrift state: versions must be a list of at most {MAX_VERSIONS}, got {_short(versions)}"
            )
        for i, entry in enumerate(versions):
            if not isinstance(entry, list) or len(entry) != 3:
                raise ValueError(f"ScoreDrift state: versions[{i}]: expected [model_version, count, ADWIN]")
            v = _name(entry[0], f"ScoreDrift state: versions[{i}] name")
            if v in sd.detectors:
                raise ValueError(f"ScoreDrift state: versions[{i}]: model_version {v!r:.60} repeated")
            count = int(_num(entry[1], f"ScoreDrift state: versions[{i}] count", integer=True, lo=0))
            detector = load_adwin(entry[2])
            if adwin_settings(detector) != expected:
                raise ValueError(f"ScoreDrift state: versions[{i}]: the detector's settings are not this one's")
            sd.detectors[v], sd.counts[v] = detector, count
        return sd
